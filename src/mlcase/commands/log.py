"""``mlcase log compact``: the serving log's closed windows into date-partitioned Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load


def register(app: typer.Typer) -> None:
    log_app = typer.Typer(help="The serving log: compaction into Parquet.", no_args_is_help=True)
    app.add_typer(log_app, name="log")

    @log_app.command("compact")
    def compact_cmd(
        case: CaseArg = None,
        log: Annotated[Path | None, typer.Option("--log", help="The SQLite serving log (default: serving.log or "
                                                 "<case>/predictions.db).", show_default=False)] = None,
        before: Annotated[str | None, typer.Option(help="Compact rows logged before this date or time, never past "
                                                   "the start of the current monitoring window (also the default), so "
                                                   "closed windows only.",
                                                   show_default=False)] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Copy the closed windows of the SQLite log into date-partitioned Parquet beside it.

        Safe to kill at any moment and to run again: a batch counts only once its manifest row is
        committed in the log; `mlcase monitor` then reads the Parquet part plus the live tail.
        """
        from ..formats import markup_escape
        from ..monitor.compact import compact

        c = load(case)
        result = compact(c, log=log, before=before)
        if json_out:
            emit_json(result.to_dict())
            return
        out = console(quiet)
        if result.rows:
            out.print(f"compacted {result.rows:,} row(s) logged before {result.cut} into {result.files} Parquet file(s) "
                      f"in {markup_escape(result.folder)} ({result.seconds:.1f}s); {result.tail_rows:,} row(s) in the live tail")
        else:
            out.print(f"nothing to compact before {result.cut}; {result.tail_rows:,} row(s) in the live tail")
        if result.lowered_from:
            out.print(f"--before {markup_escape(before)} is past the start of the current window: compacted up to "
                      f"{result.cut} only (rows still logged into this window would stay in the live tail for good)")
        if result.removed_orphans:
            out.print(f"removed {result.removed_orphans} file(s) an interrupted compaction had left")
