"""Governance commands: ``mlcase forget`` (erasure), ``mlcase retention`` (pruning), ``mlcase deadman``.

Exit codes: 0 done (``deadman``: all quiet), 1 ``deadman`` found a silence, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from .review import LogOpt

NowOpt = Annotated[str | None, typer.Option(
    "--now", help="The time to count back from (ISO 8601; default now).", show_default=False)]


def register(app: typer.Typer) -> None:
    @app.command("forget")
    def forget_cmd(
        case: CaseArg = None,
        subject: Annotated[str, typer.Option("--subject", help="The data.id value of the person to erase.")] = ...,
        log: LogOpt = None,
        file: Annotated[list[Path] | None, typer.Option(
            "--file", help="Also erase from this CSV/Parquet file of records (repeatable).", show_default=False)] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Erase a person's rows from the prediction log, its labels, the review and label files and every
        registered store, and leave a receipt that holds no identifier.

        Killed mid-way, every store stays consistent; the same command again finishes the job.
        """
        from ..governance.forget import forget

        c = load(case)
        receipt = forget(c, subject, log=log, files=file)
        if json_out:
            emit_json(receipt)
            return
        from ..formats import markup_escape

        out = console(quiet)
        out.print(f"erased {receipt['rows']} row(s) from {len(receipt['stores'])} store(s)"
                  + (f" (finished a run that was interrupted; {receipt['runs']} runs)" if receipt["runs"] > 1 else "")
                  + ("; not complete: rows hashed under another log key were not searched (see the first note)"
                     if receipt.get("other_key_rows") else ""))
        for s in receipt["stores"]:
            out.print(f"  {markup_escape(str(s['store']))}: {s['rows']} row(s) ({markup_escape(str(s['location']))})")
        out.print(f"receipt: {markup_escape(str(receipt['path']))}")
        for note in receipt["notes"]:
            out.print(f"[yellow]note[/yellow] {markup_escape(note)}")

    @app.command("retention")
    def retention_cmd(
        case: CaseArg = None,
        log: LogOpt = None,
        now: NowOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be pruned; change nothing.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Prune rows older than serving.retention from every store, whole monitoring windows at a time,
        keeping those windows' monitoring aggregates (the report still shows them)."""
        from ..formats import duration
        from ..governance.retention import apply_retention

        c = load(case)
        out_data = apply_retention(c, log=log, now=now, dry_run=dry_run)
        if json_out:
            emit_json(out_data)
            return
        out = console(quiet)
        verb = "would prune" if dry_run else "pruned"
        out.print(f"{verb} {out_data['rows']} row(s) older than {out_data['before']} "
                  f"(serving.retention {duration(out_data['retention_seconds'])})")
        for s in out_data["stores"]:
            out.print(f"  {s['store']}: {s['rows']} row(s) ({s['location']})", markup=False)
        if out_data["archived_windows"]:
            out.print(f"kept {len(out_data['archived_windows'])} monitoring window(s) as aggregates "
                      f"({out_data['archived_windows'][0]} to {out_data['archived_windows'][-1]})")

    @app.command("deadman")
    def deadman_cmd(
        case: CaseArg = None,
        log: LogOpt = None,
        now: NowOpt = None,
        windows: Annotated[int | None, typer.Option(
            "--windows", min=1, help="Empty windows before the switch fires (default monitoring.dead_man_windows).",
            show_default=False)] = None,
        no_notify: Annotated[bool, typer.Option("--no-notify", help="Do not run monitoring.notify commands.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """The dead-man's switch: alert when no prediction arrived, or monitoring did not run, for N windows.

        Run it from another scheduler than `mlcase monitor`. Exits 1 when the switch fires.
        """
        from ..errors import SpecError
        from ..governance import deadman
        from ..governance.notify import notify_due, warn_failures
        from .monitoring import print_alerts

        c = load(case)
        if not (windows or c.spec.monitoring.dead_man_windows):
            raise SpecError("the dead-man's switch is off: monitoring.dead_man_windows is not set",
                            "set it in case.yaml (e.g. 3), or pass --windows N")
        data = deadman.check(c, now=now, log=log, windows=windows)
        data["notifications"], data["notify_held"] = (([], 0) if no_notify else
                                                      notify_due(c, data["alerts"], source="deadman", now=now))
        if json_out or quiet:  # no listing: an owner not told is still said, on stderr
            warn_failures(data["notifications"])
        if json_out:
            emit_json(data)
        else:
            out = console(quiet)
            out.print(f"last prediction: {data['last_prediction'] or 'none'}; last monitoring run: "
                      f"{data['last_monitor_run'] or 'never'}")
            print_alerts(out, data)
        if data["alerts"]:
            raise typer.Exit(1)
