"""Monitoring command: ``mlcase monitor``.

Exit codes: 0 no alert, 1 at least one alert (for cron and CI), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load

LogOpt = Annotated[str | None, typer.Option(
    "--log", help="Prediction log (SQLite file or SQLAlchemy URL) or a CSV/Parquet of recent records "
                  "(default: serving.log or <case>/predictions.db).", show_default=False)]
LabelsOpt = Annotated[Path | None, typer.Option(
    "--labels", help="CSV/Parquet of delayed labels: request_id, label[, ts]; the last label per request wins.",
    show_default=False)]
WindowOpt = Annotated[str | None, typer.Option(
    "--window", help="Window length, e.g. 1d, 6h (default: monitoring.window).", show_default=False)]


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor_cmd(
        case: CaseArg = None,
        log: LogOpt = None,
        labels: LabelsOpt = None,
        window: WindowOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Drift, delayed-label performance, estimated performance and alerts per time window.

        Exits 1 when an alert fires (drift, fallback share, estimated or realized cost, broken
        assumption), 0 otherwise; the results are saved for `mlcase report`.
        """
        from .. import results
        from ..monitor import monitor

        c = load(case)
        result = monitor(c, log=log, labels=labels, window=window)
        data = result.to_dict()
        results.save(c, "monitoring", data)
        if json_out:
            emit_json(data)
        else:
            print_result(console(quiet), data)
        if result.alerts:
            raise typer.Exit(1)


def print_result(out, data: dict) -> None:
    """A table of the windows, then the alerts and warnings."""
    from rich.table import Table

    model = data.get("model") or {}
    version = f" v{model['version']}" if model.get("version") is not None else ""
    out.print(f"[bold]{data['case']}[/bold]: {data['n_rows']} predictions in {data['n_windows']} window(s) of "
              f"{_duration(data['window_seconds'])} from {data['source']} (model {model.get('name')}{version})")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("window", "n", "labels", "top drift (PSI)", "score PSI", "fallback", "est. cost [95%]",
                "realized cost"):
        t.add_column(col, justify="left" if col in ("window", "top drift (PSI)", "labels") else "right",
                     no_wrap=col == "window")
    daily = data["window_seconds"] % 86400 == 0
    for w in data["windows"]:
        drift = sorted(((s["psi"], f, s["status"]) for f, s in w["drift"].items() if s.get("psi") is not None),
                       reverse=True)
        top = f"{drift[0][1]} {drift[0][0]:.3f}" + (" [red]drift[/red]" if drift[0][2] == "drift" else "") if drift else "–"
        sd = w.get("score_drift")
        est = (w.get("estimated") or {}).get("cost")
        real = w.get("realized") or w.get("realized_so_far")
        labels = "immature" if not w["mature"] else f"{1 - (w['labels']['unlabelled_share'] or 0):.0%} labelled"
        real_txt = "–"
        if real and real.get("cost") is not None:
            real_txt = f"{real['cost']:.4g}" + ("" if w.get("realized") else " (not final)")
        t.add_row(w["window"].removesuffix("T00:00:00Z") if daily else w["window"], str(w["n"]) + (" (small)" if w["too_small"] else ""), labels, top,
                  f"{sd['psi']:.3f}" if sd and sd.get("psi") is not None else "–",
                  f"{w['fallback']['share']:.1%}",
                  f"{est['value']:.3g} [{est['low']:.3g}, {est['high']:.3g}]" if est else "–", real_txt)
    out.print(t)
    for line in label_lines(data):
        out.print(line)
    for w in data.get("warnings", []):
        out.print(f"[yellow]warning[/yellow] {w['message']}")
    for a in data["alerts"]:
        out.print(f"[red]ALERT[/red] {a['kind']}: {a['message']}")
    if data["alerts"]:
        out.print(f"[red]{len(data['alerts'])} alert(s)[/red]; details with --json or in `mlcase report`")
    else:
        out.print("[green]no alerts[/green]")


def label_lines(data: dict) -> list[str]:
    """What the realized numbers rest on: holdout vs acted-on labels, the audit, reviewers, the backlog."""
    def ci(m):
        return "–" if not m or m.get("value") is None else (
            f"{m['value']:.3g}" + (f" [{m['low']:.3g}, {m['high']:.3g}]" if m.get("low") is not None else ""))

    src = (data.get("overall") or {}).get("by_source") or {}
    lines = []
    h, a, au = src.get("holdout"), src.get("acted"), src.get("audit")
    if h:
        line = (f"holdout: {h['n']} units, precision {ci(h['precision'])}, recall {ci(h['recall'])} on "
                f"{h['labels']['n']} labels")
        if a:
            line += f"; the model's own labels say precision {ci(a['precision'])}"
        gap = (h.get("value_given_up") or {}).get("per_decision")
        if gap and gap.get("value") is not None:
            line += f"; value given up per held-out decision {ci(gap)}"
        lines.append(line)
    if au:
        lines.append(f"audit-weighted ({au['labels']['review']} reviews, {au['labels']['audit']} audited): precision "
                     f"{ci(au['precision'])}, recall {ci(au.get('recall'))}")
    rev = data.get("reviews")
    if rev:
        bt = rev.get("between_reviewers") or {}
        kappa = f", reviewer vs reviewer kappa {ci(bt)} on {bt['n']} cases" if bt.get("n") else ""
        lines.append(f"reviews: {rev['n_verdicts']} verdicts on {rev['n_cases']} cases{kappa}; backlog "
                     f"{(rev.get('backlog') or {}).get('backlog', 0)}")
    return lines


def _duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
