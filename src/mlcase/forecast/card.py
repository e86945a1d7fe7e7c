"""The model card of a forecast case (Mitchell et al. 2019), from its stage results.

:func:`mlcase.cards.card_markdown` hands a forecast case here; the HTML, the file names and
the logging to the registry are the same as every other card's.
"""

from __future__ import annotations


def _f(v, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def forecast_card_markdown(case, res: dict) -> str:
    """The card as Markdown (``res`` = :func:`mlcase.results.load_all`)."""
    from ..cards import TODO, _md_table, _now, _pkg_version
    from ..formats import md_code, md_text

    spec = case.spec
    ev = res.get("forecast_evaluation") or {}
    data = res.get("data") or {}
    dec = res.get("decision") or {}
    bake = res.get("forecast_bakeoff") or {}
    cand = ev.get("candidate")
    L = [f"# Model card: {case.name}", "",
         f"> Written by mlcase {_pkg_version('mlcase')} on {_now()} from the stage results in `.mlcase/`. "
         "Sections marked TODO need a person.", "", "## Model details", "",
         f"- Task: forecast {md_code(spec.data.target)} {spec.forecast.horizon} steps ahead "
         f"(frequency {data.get('freq')}, season {data.get('season_length')} steps), "
         f"{data.get('series')} series from {md_code(spec.data.source)}.",
         f"- Candidate: {cand} on mlforecast lag, rolling and calendar features (params: "
         f"`{(bake.get('families') or {}).get(cand, {}).get('params')}`); the registered model is refitted on every "
         "series' whole history.",
         f"- Decision: **{dec.get('verdict')}** (champion: {md_text(_champion(res, dec))}).", "",
         "## Intended use", "", f"- {md_text(spec.decision)}",
         f"- {TODO} who acts on the forecast, and what they must not use it for.", "",
         "## Evaluation", "",
         f"Test period {_day((ev.get('test_period') or {}).get('start'))} to "
         f"{_day((ev.get('test_period') or {}).get('end'))}: "
         f"{(ev.get('test_period') or {}).get('windows')} rolling cut-offs per series, forecast once, by models fitted "
         f"before it. Intervals: split conformal per horizon step on the backtest residuals, target coverage "
         f"{1 - (ev.get('alpha') or 0.1):.0%}. Costs at the {_f(ev.get('quantile'), 2)} quantile "
         f"({ev.get('quantile_source')}).", ""]
    rows = []
    for name, m in (ev.get("models") or {}).items():
        t = m["test"]
        rows.append({"model": name, "role": m["role"], "MASE": t["mase"], "sMAPE": t["smape"], "RMSE": t["rmse"],
                     "pinball": t.get("pinball"), "cost / point": t["cost_per_point"],
                     "coverage": t["coverage"]["coverage"], "backtest MASE": m["backtest"]["mase"]})
    L += _md_table(rows) + [""]
    L += ["## Reasons for the decision", ""] + [f"- {md_text(r)}" for r in dec.get("reasons") or []] + [""]
    exp = res.get("forecast_explain") or {}
    if exp.get("importance"):
        L += ["## What drives the forecasts (SHAP)", ""]
        L += _md_table([{"feature": r["feature"], "mean |SHAP|": r["mean_abs_shap"]} for r in exp["importance"][:10]])
        L += ["", f"_Note: {exp.get('note')}._", ""]
    L += ["## Caveats", "",
          "- Forecasts past the horizon are not evaluated; a covariate declared known in advance must really be "
          "known when the forecast is made.",
          "- The served model falls back to seasonal naive when it fails or the history is too short.",
          f"- {TODO} events the history does not hold (a pandemic, a new product)."]
    return "\n".join(L).rstrip() + "\n"


def _champion(res: dict, dec: dict) -> str:
    """The registry's champion now in words (fpp2::h02's NO_GO card read "champion: None")."""
    from ..report.registry_now import champion_text

    registry = res.get("registry") or {}
    return (champion_text(registry, dec.get("champion")) if registry else None) or dec.get("champion") or "none"


def _day(v) -> str | None:
    """A period's day as the report writes it (the card read "2000-07-01 00:00:00" for a monthly period)."""
    text = None if v is None else str(v)
    return text[:10] if text and text[10:].strip(" :0T") == "" else text
