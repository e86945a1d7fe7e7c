"""``mlcase check``: the data checks and the datasheet, without fitting anything."""

from __future__ import annotations

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from ._listing import Column, FormatOpt, Listing, check_format, show

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim", "accepted": "cyan"}


def register(app: typer.Typer) -> None:
    @app.command()
    def check(case: CaseArg = None, fmt: FormatOpt = "table", json_out: JsonOpt = False, quiet: QuietOpt = False):
        """Check the data against the case: leakage, imbalance, assumptions, label maturity, shift, proxies.

        Writes datasheet.md in the case folder and the results for the report.
        Exits 0 when no check is an error, 1 when one is (2 for bad input).
        """
        from .. import results
        from ..checks import profile as P
        from ..checks import run_checks
        from ..checks.datasheet import datasheet_dict, write_datasheet
        from ..data import prepare
        from ..lock import case_lock

        fmt = check_format(fmt)
        c = load(case)
        large = P.is_large(c)
        with case_lock(c, "check"):
            prof = None
            if c.spec.task == "forecast":  # series checks (mlcase.forecast.checks); no datasheet for series yet
                from ..forecast.checks import run_forecast_checks
                from ..forecast.data import load_series

                report, path = run_forecast_checks(c, load_series(c)), None
            else:
                if large:  # out of core: every row profiled by DuckDB under a memory cap, the checks on a sample
                    prof = P.profile(c)
                    dataset = prepare(c, frame=P.sample_frame(c))
                    results.save(c, "profile", prof)
                else:
                    dataset = prepare(c)
                from ..analysis import check_spec

                check_spec(c, dataset)   # as `mlcase run` checks the spec against the data, before writing
                report = run_checks(c, dataset)
                path = write_datasheet(c, dataset, report)
                results.save(c, "datasheet", {**datasheet_dict(c, dataset, report), "path": str(path)})
            results.save(c, "checks", report.to_dict())
        note = None
        if prof is not None:
            note = (f"the source ({prof['bytes'] / 2**20:,.0f} MiB of Parquet) exceeds engine.memory_share of memory: "
                    f"{prof['rows']:,} rows profiled out of core (DuckDB, memory limit {prof['memory_limit']}), "
                    f"the checks ran on a uniform sample of {len(dataset.frame):,} rows")
        if json_out:
            emit_json({"case": c.name, **report.to_dict(), "datasheet": str(path) if path else None,
                       **({"profile": prof, "note": note} if prof is not None else {})})
        elif fmt != "table":
            out = console(quiet)
            show(findings_listing(c.name, report), fmt, out)
            if path:
                out.print(f"datasheet: {path}", markup=False)
        else:
            from ..formats import markup_escape

            out = console(quiet)
            lines = report.summary_lines()
            out.print(f"[bold]{markup_escape(c.name)}[/bold]: {markup_escape(lines[0])}")
            if note:
                out.print(f"[yellow]note:[/yellow] {markup_escape(note)}")
            for chk in report.checks:
                out.print(f"[{_STYLE[chk.label]}]{chk.label.upper():<7}[/] {markup_escape(chk.line())}")
                if chk.accepted:
                    out.print(f"        [dim]accepted:[/dim] {markup_escape(chk.accepted)}")
                elif chk.fix and chk.severity != "info":
                    out.print(f"        [dim]fix:[/dim] {markup_escape(chk.fix)}")
            if path:
                out.print(f"datasheet: {markup_escape(str(path))}")
        if report.has_errors:
            raise typer.Exit(1)


def findings_listing(name: str, report) -> Listing:
    """The findings of the checks, one row each (errors first), for ``--format csv|md``."""
    rows = [[c.label, c.id, c.column or "", c.title, c.accepted or c.fix or ""] for c in report.checks]
    return Listing(title=f"Data checks of '{name}': {report.summary_lines()[0]}",
                   columns=[Column("severity"), Column("check"), Column("column"), Column("finding"), Column("fix")],
                   rows=rows)
