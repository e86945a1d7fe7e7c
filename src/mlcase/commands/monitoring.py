"""Monitoring command: ``mlcase monitor``.

Exit codes: 0 no alert, 1 at least one alert (for cron and CI), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from ..formats import duration
from ._engine import EngineOpt, SchedulerOpt
from ._listing import Column, FormatOpt, Listing, check_format, number, show

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
        no_notify: Annotated[bool, typer.Option("--no-notify", help="Do not run monitoring.notify commands.")] = False,
        fmt: FormatOpt = "table",
        engine: EngineOpt = None,
        scheduler: SchedulerOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Drift, delayed-label performance, estimated performance and alerts per time window.

        Exits 1 when an alert fires (drift, fallback share, estimated or realized cost, broken
        assumption, stale features, review backlog, no traffic, monitoring gap), 0 otherwise. Alerts
        are grouped by their owner, and each owner's are sent to the monitoring.notify commands; the
        results are saved for `mlcase report`.
        """
        from .. import results
        from ..governance.notify import monitoring_done, warn_failures
        from ..monitor import monitor

        fmt = check_format(fmt)
        from ..engine import engine_for

        c = load(case)
        if c.spec.task == "forecast":  # realized error by horizon step against the actuals (mlcase.forecast.monitor)
            from ..errors import DataError
            from ..forecast.monitor import monitor_forecasts

            # a forecast case is monitored per horizon step over every logged forecast, in this process: --window 0
            # and --engine bogus were accepted and ignored, as if they had been applied
            unused = [f for f, v in (("--window", window), ("--engine", engine), ("--scheduler", scheduler)) if v]
            if unused:
                raise DataError(f"{unused[0]} does not apply to a forecast case: its monitoring is by horizon step "
                                "over every logged forecast with an actual, not by time window or on a cluster",
                                f"drop {unused[0]}")
            data = monitor_forecasts(c, log=log, labels=labels)  # its alerts reach their owners like any other
            data = monitoring_done(c, {**data, "n_rows": data.get("requests")}, log=log, send=not no_notify)
            results.save(c, "forecast_monitoring", data)
            if json_out or quiet:  # no listing: an owner not told is still said, on stderr
                warn_failures(data["notifications"])
            if json_out:
                emit_json(data)
            else:
                print_forecast(console(quiet), data, fmt)
            if data["alerts"]:
                raise typer.Exit(1)
            return
        with engine_for(c, engine, scheduler, console=None if quiet or json_out else console(quiet)) as eng:
            result = monitor(c, log=log, labels=labels, window=window, engine=eng)
        data = monitoring_done(c, result.to_dict(), log=log, send=not no_notify)
        results.save(c, "monitoring", data)
        if json_out or quiet:  # no listing: an owner not told is still said, on stderr
            warn_failures(data["notifications"])
        if json_out:
            emit_json(data)
        else:
            print_result(console(quiet), data, fmt)
        if data["alerts"]:  # with the dead-man's alerts monitoring_done added (exit 0 with only those)
            raise typer.Exit(1)


def print_forecast(out, data: dict, fmt: str = "table") -> None:
    """A forecast case's monitoring: the listing by horizon step (``fmt``: csv and md on stdout), then the
    assumptions, warnings and alerts on stderr. ``--format csv`` printed the steps on stderr, nothing on stdout."""
    from ..formats import markup_escape

    out.print(f"{data['points']} forecast points with actuals, from {data['requests']} logged forecasts")
    if data["by_step"] or fmt != "table":
        show(forecast_listing(data), fmt, out)
    if len(data.get("by_series") or []) > 1 and fmt != "csv":   # csv: one table on stdout
        show(series_listing(data), fmt, out)
    for a in data.get("assumptions") or []:
        shown = {"ok": "holds", "broken": "broken", "unknown": "is NULL",
                 "too_small": "false"}[a["status"]] + f" on {a['n']} actuals"
        if a["status"] == "too_small":
            shown += ", too few to alert (monitoring.min_window_rows)"
        out.print(f"  assumption '{markup_escape(a['text'])}': {shown}")
    for w in data["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {markup_escape(w)}")
    for a in data["alerts"]:
        out.print(f"[red]alert ({a['kind']}):[/red] {markup_escape(a['message'])}")


def forecast_listing(data: dict) -> Listing:
    """One row per horizon step: points with an actual, the model's and seasonal naive's MASE, interval coverage."""
    def share(v):
        return "– (no interval)" if v is None else f"{v:.1%}"

    columns = [Column("step", right=True), Column("points", right=True),
               Column("MASE", lambda v: f"{v:.3f}", True), Column("seasonal naive MASE", lambda v: f"{v:.3f}", True),
               Column("coverage", share, True), Column("mean scaled residual", lambda v: f"{v:+.3f}", True)]
    rows = [[r["step"], r["points"], r["model_mase"], r["seasonal_naive_mase"], r["coverage"], r["mean_residual"]]
            for r in data["by_step"]]
    return Listing(title="Forecast monitoring by horizon step", columns=columns, rows=rows)


def series_listing(data: dict) -> Listing:
    """One row per series: points and forecasts with an actual, MASE, coverage and its Holm-adjusted p-value."""
    def share(v):
        return "– (no interval)" if v is None else f"{v:.1%}"

    def p(v):
        return "– (too few forecasts)" if v is None else ("< 0.0001" if v < 1e-4 else f"{v:.4f}")

    columns = [Column("series"), Column("points", right=True), Column("forecasts", right=True),
               Column("MASE", lambda v: f"{v:.3f}", True), Column("seasonal naive MASE", lambda v: f"{v:.3f}", True),
               Column("coverage", share, True), Column("coverage p (Holm)", p, True),
               Column("mean scaled residual", lambda v: f"{v:+.3f}", True)]
    rows = [[r["series"], r["points"], r["forecasts"], r["model_mase"], r["seasonal_naive_mase"], r["coverage"],
             r["p_adjusted"], r["mean_residual"]] for r in data["by_series"]]
    return Listing(title="Forecast monitoring by series", columns=columns, rows=rows)


def print_result(out, data: dict, fmt: str = "table") -> None:
    """A listing of the windows, then the warnings and alerts (on stderr)."""
    from ..formats import markup_escape

    model = data.get("model") or {}
    version = f" v{model['version']}" if model.get("version") is not None else ""
    out.print(f"[bold]{markup_escape(str(data['case']))}[/bold]: {data['n_rows']} predictions in {data['n_windows']} "
              f"window(s) of {duration(data['window_seconds'])} from {markup_escape(str(data['source']))} "
              f"(model {markup_escape(str(model.get('name')))}{version})")
    show(windows_listing(data), fmt, out)
    for line in ranking_lines(data):
        out.print(markup_escape(line))
    for line in label_lines(data):
        out.print(markup_escape(line))
    for w in data.get("warnings", []):
        out.print(f"[yellow]warning[/yellow] {markup_escape(w['message'])}")
    print_alerts(out, data)


def print_alerts(out, data: dict) -> None:
    """The alerts grouped by owner, then what the notify commands did (on stderr)."""
    from ..formats import markup_escape
    from ..governance.notify import notify_lines
    from ..governance.owners import by_owner

    for owner, alerts in by_owner(data["alerts"]).items():
        out.print(f"[bold]{markup_escape(owner)}[/bold]: {len(alerts)} alert(s)")
        for a in alerts:
            out.print(f"  [red]ALERT[/red] {markup_escape(a['kind'])}: {markup_escape(a['message'])}")
    for line in notify_lines(data.get("notifications") or [], data.get("notify_held") or 0):
        out.print(markup_escape(line))
    if data["alerts"]:
        out.print(f"[red]{len(data['alerts'])} alert(s)[/red]; details with --json or in `mlcase report`")
    else:
        out.print("[green]no alerts[/green]")


def windows_listing(data: dict) -> Listing:
    """One row per monitoring window: size, labels, the top drifting feature, score drift, fallbacks, cost."""
    columns = [Column("window"), Column("n", right=True), Column("labels"), Column("top drift (PSI)"),
               Column("score PSI", lambda v: "–" if v is None else f"{v:.3f}", True),
               Column("fallback", lambda v: "–" if v is None else f"{v:.1%}", True),
               Column("est. cost [95%]", right=True), Column("realized cost", right=True)]
    ranking = data.get("ranking") if data.get("task") == "ranking" else None
    by_window = {}
    if ranking is not None:
        # a ranking model's realized quality is NDCG@k over the lists with feedback (mlcase.monitor.ranking); the
        # listing showed only est. and realized cost, always '–' for lists, and the NDCG was in --json alone
        k = ranking.get("k")
        columns[-2:] = [Column("lists (with feedback)", right=True),
                        Column(f"NDCG@{k}", lambda v: "–" if v is None else f"{v:.3f}", True)]
        by_window = {r["window"]: r for r in ranking.get("windows") or []}
    daily = data["window_seconds"] % 86400 == 0
    rows, styles = [], []
    for wi, w in enumerate(data["windows"]):
        drift = sorted(((s["psi"], f, s["status"]) for f, s in w["drift"].items() if s.get("psi") is not None),
                       reverse=True)
        top = (f"{drift[0][1]} {drift[0][0]:.3f}" + (" drift" if drift[0][2] == "drift" else "")) if drift else "–"
        sd = w.get("score_drift")
        est = (w.get("estimated") or {}).get("cost")
        real = w.get("realized") or w.get("realized_so_far")
        labels = "immature" if not w["mature"] else f"{1 - (w['labels']['unlabelled_share'] or 0):.0%} labelled"
        real_txt = "–"
        if real and real.get("cost") is not None:
            real_txt = number(real["cost"], 4) + ("" if w.get("realized") else " (not final)")
        last = [f"{number(est['value'], 3)} [{number(est['low'], 3)}, {number(est['high'], 3)}]" if est else "–",
                real_txt]
        if ranking is not None:
            r = by_window.get(wi) or {}
            last = [f"{r.get('n_lists', 0)} ({r.get('n_lists_with_feedback', 0)})", r.get("realized_ndcg")]
        rows.append([w["window"].removesuffix("T00:00:00Z") if daily else w["window"],
                     str(w["n"]) + (" (small)" if w["too_small"] else ""), labels, top,
                     sd["psi"] if sd and sd.get("psi") is not None else "–", w["fallback"]["share"], *last])
        styles.append("red" if drift and drift[0][2] == "drift" else None)
    return Listing(title="Monitoring windows", columns=columns, rows=rows, styles=styles)


def ranking_lines(data: dict) -> list[str]:
    """A ranking case's lists over all windows: realized NDCG@k, relevant items per list, the rate by position."""
    r = data.get("ranking") if data.get("task") == "ranking" else None
    if not r or not r.get("n_lists"):
        return [f"lists: {r['note']}"] if r and r.get("note") else []
    k = r.get("k")
    line = f"lists: {r['n_lists']} served, {r['n_lists_with_feedback']} with feedback on {r['n_items_labelled']} item(s)"
    if r.get("realized_ndcg") is not None:
        line += f"; realized NDCG@{k} {r['realized_ndcg']:.3f} over {r['n_lists_ndcg']} list(s) with a relevant item"
    elif r.get("n_lists_with_feedback"):
        line += (f"; no NDCG@{k}: no labelled item reached ranking.relevant_from "
                 f"{(r.get('relevance') or {}).get('relevant_from')}")
    if r.get("clicks_per_list") is not None:
        line += f"; {r['clicks_per_list']:.3g} relevant item(s) per list in the top {k}"
    rates = [f"{p['position']}: {p['rate']:.0%} of {p['n']}" for p in r.get("rate_by_position") or [] if p["n"]]
    return [line] + ([f"relevant rate by position: {', '.join(rates)}"] if rates else [])


def label_lines(data: dict) -> list[str]:
    """What the realized numbers rest on: holdout vs acted-on labels, the audit, reviewers, the backlog."""
    def ci(m):
        return "–" if not m or m.get("value") is None else (
            f"{m['value']:.3g}" + (f" [{m['low']:.3g}, {m['high']:.3g}]" if m.get("low") is not None else ""))

    src = (data.get("overall") or {}).get("by_source") or {}
    lines = []
    h, a, au = src.get("holdout"), src.get("acted"), src.get("audit")
    if h:
        # units, not requests: a unit sent twice is one unit (was "60 units" for 30 units of carData::Mroz sent twice)
        units, lab_units = h.get("units", h["n"]), h["labels"].get("units", h["labels"]["n"])
        reqs = f" ({h['n']} requests)" if h["n"] != units else ""
        labs = f"{lab_units} labelled units ({h['labels']['n']} labels)" if h["labels"]["n"] != lab_units else (
            f"{h['labels']['n']} labels")
        line = (f"holdout: {units} units{reqs}, precision {ci(h['precision'])}, recall {ci(h['recall'])} on {labs}")
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
        if bt.get("n") and bt.get("mean_abs_diff") is not None:  # regression: numbers, not categories
            kappa = (f", reviewers differ by {number(bt['mean_abs_diff'], 4)} on average on {bt['n']} cases "
                     f"reviewed twice ({bt['agreement']:.0%} identical)")
        lines.append(f"reviews: {rev['n_verdicts']} verdicts on {rev['n_cases']} cases{kappa}; backlog "
                     f"{(rev.get('backlog') or {}).get('backlog', 0)}")
    return lines
