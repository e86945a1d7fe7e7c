"""Report sections of a forecast case: backtests, the test period, intervals and SHAP, monitoring.

Reads ``forecast_bakeoff``, ``forecast_evaluation``, ``forecast_explain`` and
``forecast_monitoring`` (written by :func:`mlcase.pipeline.run` and ``mlcase monitor`` for a
``task: forecast`` case). A case of another task has none of them and gets no section from here;
a forecast case has no results of the tabular bake-off, evaluation, trust and monitoring
stages, whose placeholders these sections replace (:data:`REPLACES`).
"""

from __future__ import annotations

from . import Section, esc, figure, table

TITLE = "Forecast"
ORDER = 20
STAGES = ()  # no placeholder: a case of another task has nothing to show here
#: the tabular sections whose "not run yet" placeholders a forecast case drops
REPLACES = ("bakeoff", "evaluation", "trust", "monitoring", "readiness", "analysis")


def build(results: dict[str, dict]) -> list[Section]:
    bake, ev = results.get("forecast_bakeoff"), results.get("forecast_evaluation")
    out = []
    if bake:
        out.append(Section(id="forecast-bakeoff", title="Baselines and bake-off (backtests)", order=20,
                           html=_bakeoff_html(bake)))
    if ev:
        out.append(Section(id="forecast-evaluation", title="Evaluation on the test period", order=30,
                           html=_evaluation_html(ev), status=_status(results.get("decision"))))
        out.append(Section(id="forecast-trust", title="Forecasts, intervals and explanations", order=40,
                           html=_trust_html(ev, results.get("forecast_explain"))))
    mon = results.get("forecast_monitoring")
    if mon:
        out.append(Section(id="forecast-monitoring", title="Monitoring", order=60, html=monitoring_html(mon),
                           status="error" if mon.get("alerts") else "ok"))
    return out


def _status(decision: dict | None) -> str | None:
    v = (decision or {}).get("verdict")
    return {"GO": "ok", "USE_BASELINE": "warning", "INCONCLUSIVE": "warning", "NO_GO": "error"}.get(v)


def _bakeoff_html(bake: dict) -> str:
    rows = [{"model": r["model"], "role": r["role"], "backtest MASE": r["backtest_mase"], "trials": r["trials"],
             "seconds": r["seconds"], "params": str(r["params"]) if r.get("params") else ""}
            for r in bake.get("leaderboard") or []]
    recipe = bake.get("recipe") or {}
    parts = [f"<p>Every model forecast each backtest cut-off; candidates were tuned on these windows for "
             f"{bake.get('seconds', 0):.0f} s of a {bake.get('budget_seconds', 0):.0f} s budget "
             f"({_n(len(bake.get('trials') or []), 'trial')}). Candidate: <strong>{esc(bake.get('candidate'))}</strong>; "
             f"best baseline: <strong>{esc(bake.get('best_baseline'))}</strong>.</p>",
             table(rows, caption="Leaderboard on the backtest windows (MASE, lower is better)"),
             "<p>Features (mlforecast, built per cut-off): lags "
             f"{esc(', '.join(map(str, recipe.get('lags') or [])))}; rolling windows "
             f"{esc('; '.join(f'{k} of {w} at lag {lag}' for lag, k, w in recipe.get('rolling') or []))}; calendar "
             f"{esc(', '.join(recipe.get('calendar') or []))}; known covariates "
             f"{esc(', '.join(recipe.get('known') or []) or 'none')}; past-only covariates (lagged "
             f"{esc(recipe.get('past_lag'))} steps) {esc(', '.join(recipe.get('past_only') or []) or 'none')}.</p>"]
    parts += [f'<p class="muted">{esc(n)}</p>' for n in bake.get("notes") or []]
    return "".join(parts)


def _evaluation_html(ev: dict) -> str:
    cur = (ev.get("costs") or {}).get("currency", "$")
    rows = []
    for name, m in ev["models"].items():
        t = m["test"]
        rows.append({"model": name, "role": m["role"], "MASE": t["mase"], "sMAPE": t["smape"], "RMSE": t["rmse"],
                     f"pinball @{ev['quantile']:.2f}": t["pinball"], f"cost / point ({cur})": t["cost_per_point"],
                     # a model with no interval at any step has no coverage: fpp2::a10's 6 backtest forecasts per
                     # step calibrate none, and its infinite "intervals" read coverage 1 for every model
                     "coverage": t["coverage"]["coverage"] if _has_interval(ev, name) else None,
                     "backtest MASE": m["backtest"]["mase"]})
    lifts = []
    for name, d in (ev.get("lifts") or {}).items():
        for against, key in (("seasonal naive", "over_floor"), (ev.get("best_baseline"), "over_best_baseline")):
            # the best baseline can be the floor itself (fpp2::h02: seasonal_naive): one row, not the same one twice
            if key == "over_best_baseline" and ev.get("best_baseline") == ev.get("floor") and "over_floor" in d:
                continue
            if key in d:
                lm, lc = d[key]["mase"], d[key]["cost"]
                lifts.append({"model": name, "over": against, "MASE gain": lm["estimate"], "CI low": lm["ci_low"],
                              "CI high": lm["ci_high"], f"saves / point ({cur})": lc["estimate"],
                              "cost CI low": lc["ci_low"], "cost CI high": lc["ci_high"]})
    tp = ev["test_period"]
    return "".join([
        f"<p>Test period {esc(tp['start'][:10])} to {esc(tp['end'][:10])}: {tp['windows']} cut-offs per series, "
        f"{tp['series']} series, {tp['points']} forecast points, forecast once by models fitted before it. Costs at "
        f"the {ev['quantile']:.0%} quantile ({esc(ev['quantile_source'])}): under {ev['costs']['under']:g}, over "
        f"{ev['costs']['over']:g} per unit.</p>",
        table(rows, caption="Test period, every model"),
        table(lifts, caption="Lifts with 95% bootstrap CIs over (series, cut-off) blocks"),
        figure(_by_step_figure(ev), height=360, caption="MASE by horizon step on the test period")])


def _by_step_figure(ev: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in ev["models"].items():
        v = m["test"]["by_step"]["mase"]
        fig.add_trace(go.Scatter(x=list(range(1, len(v) + 1)), y=v, mode="lines+markers", name=name))
    fig.update_layout(xaxis_title="horizon step", yaxis_title="MASE (log scale)", yaxis_type="log", margin={"t": 20})
    return fig


def _trust_html(ev: dict, explain: dict | None) -> str:
    cand = ev.get("candidate")
    parts = []
    for item in ev.get("samples") or []:
        drawn = bool(cand) and len(_steps_without_interval(ev, cand)) < len(((ev.get("conformal") or {}).get(cand)
                                                                               or {}).get("steps") or [None])
        parts.append(figure(_series_figure(item, cand), height=320,
                            # one unnamed series (data.series: null) is called "series": "Series series:"
                            caption=f"{_series_name(item, ev)}: history, the last test window, the forecast and "
                                    + (f"its {1 - ev['alpha']:.0%} interval" if drawn else
                                       f"no {1 - ev['alpha']:.0%} interval (too few backtest forecasts to calibrate "
                                       "one)")))
    cov = ((ev["models"].get(cand) or {}).get("test") or {}).get("coverage") if cand else None
    if cov:
        # a step whose calibration holds too few backtest forecasts has no interval (an infinite one): it covers
        # nothing to check, so no coverage and no "ok" (fpp2::a10 read coverage 1, "ok: yes" at every step)
        none = _steps_without_interval(ev, cand)
        parts.append(table([{"step": r["step"], "coverage": None if r["step"] in none else r["coverage"],
                             "band low": r["band"][0], "band high": r["band"][1],
                             "ok": "no interval" if r["step"] in none else r["ok"],
                             "calibration n": r["n_calibration"], "mean width": r["mean_width"]}
                            for r in cov["by_step"]],
                           caption=f"{cand}: conformal coverage per horizon step (target {cov['target']:.2f}; split "
                                   "conformal per step on the backtest residuals)"))
        if none:
            need = _needed(cov["alpha"])
            which = "any step" if len(none) == len(cov["by_step"]) else f"step(s) {', '.join(map(str, sorted(none)))}"
            parts.append(f'<p class="warn">{esc(cand)} has no {cov["target"]:.0%} interval at {esc(which)}: a step '
                         f"needs {need} backtest forecasts to calibrate one, and the backtests hold "
                         f"{esc(', '.join(sorted({str(r['n_calibration']) for r in cov['by_step'] if r['step'] in none})))}"
                         " (see the check <code>no_intervals</code>); no coverage is measured there.</p>")
        if cov.get("note"):
            parts.append(f'<p class="warn">{esc(cov["note"])}</p>')
    if explain and explain.get("importance"):
        import plotly.graph_objects as go

        top = explain["importance"][:15][::-1]
        fig = go.Figure(go.Bar(x=[r["mean_abs_shap"] for r in top], y=[r["feature"] for r in top], orientation="h"))
        fig.update_layout(xaxis_title="mean |SHAP|", margin={"t": 20})
        parts.append(figure(fig, height=420, caption=explain.get("note")))
    return "".join(parts) or "<p>No forecasts to show.</p>"


def _n(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _series_name(item: dict, ev: dict) -> str:
    """``Series <name>``, or ``The series`` for a case of one series that has no name of its own."""
    one = (ev.get("test_period") or {}).get("series") == 1
    return "The series" if one and str(item.get("series")) == "series" else f"Series {item['series']}"


def _steps_without_interval(ev: dict, model: str | None) -> set[int]:
    """The horizon steps where ``model`` has no interval: its conformal quantile there is null (too few backtest
    forecasts per step), so its interval is infinite."""
    cal = (ev.get("conformal") or {}).get(model) or {}
    return {int(h) for h, q in zip(cal.get("steps") or [], cal.get("quantile") or [], strict=False) if q is None}


def _has_interval(ev: dict, model: str) -> bool:
    cal = (ev.get("conformal") or {}).get(model) or {}
    return not cal or any(q is not None for q in cal.get("quantile") or [])


def _needed(alpha: float) -> int:
    """Backtest forecasts a step needs for a split-conformal interval at ``alpha`` (the check ``no_intervals``'s
    count): the fewest ``n`` whose conformal rank ``ceil((n + 1)(1 - alpha))`` is at most ``n``."""
    from ...forecast.conformal import conformal_level

    return next(k for k in range(1, 10_000) if conformal_level(k, alpha) <= k)


def _series_figure(item: dict, cand: str | None):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=item["history"]["ds"], y=item["history"]["y"], mode="lines", name="history"))
    fig.add_trace(go.Scatter(x=item["window"]["ds"], y=item["window"]["y"], mode="lines+markers", name="actual"))
    for name, m in item["models"].items():
        if name == cand:
            fig.add_trace(go.Scatter(x=item["window"]["ds"] + item["window"]["ds"][::-1], y=m["hi"] + m["lo"][::-1],
                                     fill="toself", line={"width": 0}, opacity=0.25, name=f"{name} interval"))
        fig.add_trace(go.Scatter(x=item["window"]["ds"], y=m["yhat"], mode="lines", name=name,
                                 line={"dash": "solid" if name == cand else "dot"}))
    fig.update_layout(margin={"t": 20})
    return fig


def monitoring_html(mon: dict) -> str:
    """Realized error and coverage by horizon step, residual drift and alerts (``forecast_monitoring``)."""
    parts = [f"<p>{mon.get('points', 0)} forecast points with actuals, from {mon.get('requests', 0)} logged "
             "forecasts.</p>"]
    if mon.get("by_step"):
        parts.append(table(mon["by_step"], caption="Realized error and coverage by horizon step"))
    if len(mon.get("by_series") or []) > 1:
        parts.append(table(mon["by_series"], caption="Realized error and coverage by series (coverage tested "
                           "against its target, forecasts as draws, Holm over the series)"))
    if mon.get("drift"):
        parts.append(table([mon["drift"]], caption="Residual drift against the backtests"))
    if mon.get("assumptions"):
        parts.append(table([{k: a.get(k) for k in ("text", "check", "n", "status")} for a in mon["assumptions"]],
                           caption="The case's assumptions, checked on the actuals of the logged forecasts"))
    for a in mon.get("alerts") or []:
        parts.append(f'<p class="warn">alert: {esc(a.get("message"))}</p>')
    return "".join(parts)
