"""``mlcase report``: rebuild the HTML report from the saved stage results, without retraining."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        case: CaseArg = None,
        open_path: Annotated[bool, typer.Option(
            "--open-path", help="Print the report as a file:// URL to open in a browser, instead of a path.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Rebuild <case>/report/index.html from <case>/.mlcase/*.json (no retraining) and print its path."""
        from ..lock import case_lock
        from ..report.render import write_report

        c = load(case)
        # not while a run rewrites the results it reads and the report it writes: a report built then said
        # "5 not run yet", and one finishing after the run's replaced the run's full report (a folder this user
        # may not write has no run of theirs to wait for: write_report names the file it cannot write)
        with case_lock(c, "report") if os.access(c.work_dir, os.W_OK) else contextlib.nullcontext():
            result = write_report(c)   # refuses a case with no stage results (it would empty the report)
        if json_out:
            emit_json(result.to_dict())
            return
        out = console(quiet)
        n = len(result.sections)
        from ..formats import markup_escape

        out.print(f"report: {n} section(s)"
                  + (f", [red]{len(result.failed)} failed[/red] ({markup_escape(', '.join(result.failed))})" if result.failed else "")
                  + (f", {len(result.not_run)} not run yet ({markup_escape(', '.join(result.not_run))})" if result.not_run else ""))
        typer.echo(result.path.resolve().as_uri() if open_path else str(result.path))
