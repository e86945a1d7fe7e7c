"""Model commands: ``mlcase bakeoff``, ``mlcase leaderboard``, ``mlcase models``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from ._engine import EngineOpt, SchedulerOpt
from ._listing import Column, FormatOpt, Listing, check_format, money, number, show, size


def _bakeoff_large(c, engine, scheduler, json_out: bool, quiet: bool) -> None:
    """``mlcase bakeoff`` on a source larger than memory (:mod:`mlcase.bakeoff.large`); saved as ``bakeoff_large``."""
    from .. import results
    from ..bakeoff.large import check_large, run_large_bakeoff
    from ..engine import engine_for
    from ..formats import markup_escape
    from ..lock import case_lock

    out = console(quiet)
    with engine_for(c, engine, scheduler, console=None if quiet or json_out else out) as eng:
        check_large(c, eng)  # before anything is written
        with case_lock(c, "bakeoff"):
            res = run_large_bakeoff(c, eng, console=out, quiet=quiet or json_out).to_dict()
            results.save(c, "bakeoff_large", res)
    if json_out:
        emit_json(res)
        return
    out.print(f"out of core: {res['rows']:,} rows in {res['partitions']} partitions ({res['source_bytes'] / 2**20:,.1f} "
              f"MiB), validated on {res['valid_rows']:,}")
    for r in res["leaderboard"]:
        out.print(f"  {markup_escape(r['name']):<10} {r['kind']:<9} {res['metric']} {r[res['metric']]:.4f}  {markup_escape(r['estimator'])}")
    out.print(f"best candidate: {markup_escape(str(res['candidate']))}")


def register(app: typer.Typer) -> None:
    @app.command()
    def bakeoff(
        case: CaseArg = None,
        budget: Annotated[str | None, typer.Option(help="Time budget, e.g. 90s or 2m (default: the spec's budget).")] = None,
        engine: EngineOpt = None,
        scheduler: SchedulerOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Run the baselines and the time-boxed bake-off only; print and store the leaderboard.

        Registers nothing (``mlcase run`` does, after evaluation and the decision).
        """
        from .. import results
        from ..bakeoff import run_bakeoff
        from ..data import prepare
        from ..engine import engine_for
        from ..lock import case_lock, take_over
        from ..tracking import client

        c = load(case)
        from ..checks.profile import is_large

        if is_large(c):  # Parquet past engine.memory_share: LightGBM's and XGBoost's Dask estimators
            return _bakeoff_large(c, engine, scheduler, json_out, quiet)
        from ..pipeline import bakeoff_engine

        engine, scheduler = bakeoff_engine(c, engine, scheduler, console(quiet), quiet or json_out)
        with engine_for(c, engine, scheduler, console=None if quiet or json_out else console(quiet)) as eng, \
                case_lock(c, "bakeoff") as held:
            dataset = prepare(c)
            client(c)
            take_over(c, held)
            res = run_bakeoff(c, dataset, budget=budget, console=console(quiet), quiet=quiet or json_out, engine=eng)
            res.wait_tracking()
            results.save(c, "bakeoff", res.to_dict())
        if json_out:
            emit_json(_summary(res.to_dict()))
        else:
            show(leaderboard_listing(res.to_dict(), c.spec.costs.currency), "table", console(quiet))
            _print_summary(console(quiet), res.to_dict())

    @app.command()
    def leaderboard(case: CaseArg = None, fmt: FormatOpt = "table", json_out: JsonOpt = False):
        """Print the stored leaderboard of the last bake-off (baselines and candidates)."""
        from .. import results
        from ..errors import NotFoundError

        fmt = check_format(fmt)
        c = load(case)
        forecast = c.spec.task == "forecast"
        data = results.load(c, "forecast_bakeoff" if forecast else "bakeoff")
        if data is None:
            why = None if forecast else results.ceiling_stop(c)
            if why:
                from ..tracking import CEILING_FIX

                raise NotFoundError(f"case '{c.name}' has no bake-off: its last run stopped at the value ceiling "
                                    f"({why})", CEILING_FIX)
            raise NotFoundError(f"no bake-off results for case '{c.name}' in {c.work_dir}",
                                "run `mlcase run` or `mlcase bakeoff` first")
        if forecast:
            if json_out:
                emit_json({k: data.get(k) for k in ("task", "leaderboard", "candidate", "best_baseline", "seconds",
                                                    "budget_seconds", "notes")})
            else:
                show(forecast_listing(data), fmt, console())
            return
        if json_out:
            emit_json(_summary(data))
            return
        show(leaderboard_listing(data, c.spec.costs.currency), fmt, console())
        _print_summary(console(), data)

    @app.command()
    def models(case: CaseArg = None, fmt: FormatOpt = "table", json_out: JsonOpt = False):
        """List the registered model versions of the case with their aliases and tags."""
        from .. import tracking
        from ..errors import redact_url

        fmt = check_format(fmt)
        c = load(case)
        rows = tracking.versions(c)
        if json_out:
            emit_json({"case": c.name, "tracking_uri": redact_url(c.tracking_uri), "versions": rows})
            return
        if not rows:
            console().print(f"no registered versions of '{c.name}' in {redact_url(c.tracking_uri)}; `mlcase run` registers "
                            "them", markup=False)
            return
        show(models_listing(c.name, rows), fmt, console())


def leaderboard_listing(data: dict, currency: str = "$") -> Listing:
    """The leaderboard of a stored bake-off result (``BakeoffResult.to_dict()``): one row per model."""
    metric = data.get("metric", "score")
    title = f"Leaderboard ({metric}, lower is better; {(data.get('cv') or {}).get('folds', '?')}-fold CV" + (
        ", interrupted" if data.get("interrupted") else "") + "); ★ candidate, ◆ best baseline"
    columns = [Column(""), Column("name"), Column("kind"), Column("cv mean", number, True),
               Column("± std", number, True), Column("trials", lambda v: "" if v is None else str(v), True),
               Column("fit cpu s", lambda v: number(v, 3), True), Column("size", size, True),
               Column("1-row ms", lambda v: number(v, 3), True),
               Column(f"{currency}/decision", lambda v: money(v, currency), True), Column("note")]
    rows = []
    for r in data.get("leaderboard", []):
        mark = "★" if r.get("selected") else ("◆" if r.get("name") == data.get("best_baseline") else "")
        rows.append([mark, r.get("name"), r.get("kind"), r.get("cv_mean"), r.get("cv_std"), r.get("n_trials"),
                     r.get("fit_cpu_s"), r.get("size_bytes"), r.get("predict_1_ms"),
                     r.get("operating_cost_per_decision"), r.get("note") or ""])
    return Listing(title=title, columns=columns, rows=rows, notes=list(data.get("notes") or []))


def models_listing(name: str, rows: list[dict]) -> Listing:
    """The registered versions of a case, newest first as the registry lists them."""
    columns = [Column("version", right=True), Column("aliases"), Column("role"), Column("family"),
               Column("cv mean", number, True), Column("created"), Column("run"), Column("decision")]
    out = []
    for r in rows:
        tags = r.get("tags", {})
        cv = tags.get("mlcase.cv_mean")
        try:
            cv = float(cv) if cv not in (None, "") else None
        except ValueError:
            pass
        out.append([r["version"], ", ".join(sorted(r.get("aliases", []))), tags.get("mlcase.role", ""),
                    tags.get("mlcase.family", ""), cv, (r.get("created") or "")[:16].replace("T", " "),
                    r.get("run_id") or "", tags.get("mlcase.verdict", "")])
    return Listing(title=f"Registered versions of '{name}'", columns=columns, rows=out)


def forecast_listing(data: dict) -> Listing:
    """The leaderboard of a stored forecast bake-off (``ForecastBakeoff.to_dict()``): one row per model."""
    title = (f"Leaderboard (backtest MASE, lower is better; {data.get('seconds', 0):.1f}s of "
             f"{data.get('budget_seconds', 0):g}s budget); ★ candidate, ◆ best baseline")
    columns = [Column(""), Column("model"), Column("role"), Column("backtest MASE", lambda v: number(v, 4), True),
               Column("trials", lambda v: "" if v is None else str(v), True),
               Column("seconds", lambda v: number(v, 3), True)]
    rows = [["★" if r.get("model") == data.get("candidate") else ("◆" if r.get("model") == data.get("best_baseline")
             else ""), r.get("model"), r.get("role"), r.get("backtest_mase"), r.get("trials"), r.get("seconds")]
            for r in data.get("leaderboard", [])]
    return Listing(title=title, columns=columns, rows=rows, notes=list(data.get("notes") or []))


def _summary(data: dict) -> dict:
    keep = ("leaderboard", "candidate", "best_baseline", "metric", "metric_direction", "budget_s", "elapsed_s",
            "interrupted", "cv", "notes", "run_id")
    return {k: data.get(k) for k in keep}


def _print_summary(out, data: dict) -> None:
    from ..bakeoff.timebox import search_starved
    from ..formats import markup_escape

    if data.get("candidate"):
        out.print(f"candidate: [bold]{markup_escape(data['candidate'])}[/bold]; best baseline: "
                  f"{markup_escape(str(data.get('best_baseline')))}; {data.get('elapsed_s', 0):.1f}s of "
                  f"{data.get('budget_s', 0):g}s budget")
        starved = search_starved(data.get("phases") or {}, float(data.get("budget_s") or 0),
                                 data.get("families") or {}, bool(data.get("interrupted")))
        if starved and starved not in (data.get("notes") or []):  # the listing's notes say it already
            out.print(f"note: {markup_escape(starved)}")
