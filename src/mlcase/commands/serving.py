"""Serving commands: serve, score, label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load, load_after_file
from ._engine import EngineOpt, SchedulerOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        case: CaseArg = None,
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        version: Annotated[int | None, typer.Option(help="Serve this registry version instead of the champion.")] = None,
        challenger: Annotated[int | None, typer.Option(
            help="Registry version scored in shadow on the same requests (logged, not returned).")] = None,
        log: Annotated[str | None, typer.Option(
            help="Prediction log: a file path or SQLAlchemy URL (default serving.log or <case>/predictions.db).")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
        canary: Annotated[str | None, typer.Option(
            help="VERSION:SHARE, e.g. 3:10%: registry version (or alias) acted on for that share of units "
                 "(default serving.canary).")] = None,
    ):
        """Serve the case's champion over HTTP (FastAPI on uvicorn): /predict, /labels, /health, /ready, /metrics, /docs.

        The champion follows the registry's alias (checked every serving.reload_every); /release shows
        the versions in service and the canary.
        """
        from ..arguments import registry_version
        from ..serve.app import serve as run_server

        for flag, value in (("--version", version), ("--challenger", challenger)):
            if value is not None:
                registry_version(value, flag)
        c = load(case)

        def announce(_case, notes=()) -> None:  # after the models and the log are loaded: a bad input fails before
            console().print(f"mlcase: serving case '{c.name}' on http://{host}:{port} (docs at /docs, ready at /ready)",
                            markup=False, highlight=False)
            # said where the operator reads it: `--canary 2:50%` on the version already served started no canary,
            # and only /ready's notes said so
            for note in notes:
                console().print(f"mlcase: note: {note}", markup=False, highlight=False)

        run_server(c, host=host, port=port, version=version, challenger=challenger, log_url=log, log_level=log_level,
                   announce=announce, canary=canary)

    @app.command()
    def score(
        first: Annotated[Path, typer.Argument(metavar="[CASE]", show_default=False,
                                              help="case.yaml or its folder (default ./case.yaml); "
                                                   "with a single argument, that argument is INPUT.")],
        second: Annotated[Path | None, typer.Argument(metavar="INPUT", show_default=False,
                                                      help="CSV or Parquet file of records to score.")] = None,
        output: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet file to write.")] = ...,
        engine: EngineOpt = None,
        scheduler: SchedulerOpt = None,
        version: Annotated[int | None, typer.Option(help="Score with this registry version instead of the champion.")] = None,
        chunk_rows: Annotated[int, typer.Option(help="Rows per chunk (local) or per partition (dask CSV).")] = 50_000,
        errors: Annotated[Path | None, typer.Option(help="Where invalid rows go (default OUTPUT.errors.csv).")] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Score a file in chunks with the same validation and fallbacks as the server."""
        from ..score import score_file

        if engine is not None and engine not in ("local", "dask"):
            from ..errors import SpecError

            raise SpecError(f"--engine {engine!r} is not known", "use --engine local or --engine dask")
        if version is not None:
            from ..arguments import registry_version

            registry_version(version, "--version")
        case, input = (first, second) if second is not None else (None, first)
        c = load(case)
        result = score_file(c, input, output, engine=engine, scheduler=scheduler, version=version,
                            chunk_rows=chunk_rows, errors_path=errors,
                            progress=not (quiet or json_out), console=console(quiet or json_out))
        if json_out:
            emit_json(result.to_dict())
        else:
            result.print(console(quiet))

    @app.command()
    def label(
        file: Annotated[Path, typer.Argument(help="CSV or Parquet with request_id and label columns.", show_default=False)],
        case: CaseArg = None,
        log: Annotated[str | None, typer.Option(help="Prediction log path or SQLAlchemy URL (default the case's).")] = None,
        json_out: JsonOpt = False,
    ):
        """Attach delayed outcomes to logged predictions by request id."""
        from ..serve.predlog import label_file

        c = load_after_file(file, case, "label")
        if c.spec.task == "forecast":  # one number on a whole forecast was stored, and nothing reads it
            from ..errors import DataError

            raise DataError(f"{file.name}: a forecast case's actuals are per series and time, not one label per "
                            "logged request, so nothing was attached",
                            f"pass them to `mlcase monitor --labels {file.name}` laid out like the case's data")
        out = label_file(c, file, url=log)
        if json_out:
            emit_json(out)
        else:
            blank = out.get("blank") or 0
            msg = f"attached {out['attached'] - blank} label(s) to predictions in {out['log']}"
            if blank:
                msg += f"; {blank} blank label(s) stored as no outcome yet"
            if out.get("repeated"):
                msg += f"; {out['repeated']} row(s) repeating a label of the same request skipped"
            if out["unknown"]:
                msg += f"; {out['unknown']} request id(s) are not in the log (e.g. {', '.join(out['unknown_request_ids'][:3])})"
            console().print(msg, markup=False)  # request ids come from the labels file: text, never markup
