"""The ``--engine`` / ``--scheduler`` options every command that can run on Dask shares."""

from __future__ import annotations

from typing import Annotated

import typer

EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="local (this process) or dask (a Dask cluster; default: the spec's engine, else local).",
    show_default=False)]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); without it --engine dask starts a "
                        "local cluster sized to this machine.", show_default=False)]
