"""The test period, forecast once: accuracy, intervals, money at the chosen quantile, lifts with CIs.

Every model (the baselines and each family's best configuration) forecasts every cut-off of
the test period, fitted on the history before its first cut-off. The intervals and the
quantile forecasts come from the backtest residuals (:mod:`mlcase.forecast.conformal`), so the
test period is read once, here, and by nothing else before.

The quantile acted on is ``forecast.quantile``, else ``under / (under + over)`` (the
newsvendor's critical ratio: the forecast that minimises the expected ``under``/``over`` cost is
that quantile of the predictive distribution, not its mean), else the median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bakeoff import ForecastBakeoff, baseline_backtests, default_input_size
from .data import DS, ID, SeriesData, Y, most_test_windows

FLOOR = "seasonal_naive"


def chosen_quantile(case) -> tuple[float, str]:
    """``(q, where it comes from)``."""
    f, c = case.spec.forecast, case.spec.costs
    if f.quantile is not None:
        return float(f.quantile), "forecast.quantile"
    if c.under is not None or c.over is not None:
        under, over = float(c.under if c.under is not None else 1.0), float(c.over if c.over is not None else 1.0)
        if under + over > 0:
            return under / (under + over), "costs (under / (under + over))"
    return 0.5, "the median (no costs given)"


def unit_prices(case) -> tuple[float, float]:
    c = case.spec.costs
    return (float(c.under) if c.under is not None else 1.0), (float(c.over) if c.over is not None else 1.0)


def test_backtests(case, data: SeriesData, bake: ForecastBakeoff) -> pd.DataFrame:
    """Every model over the test period (baselines refitted per cut-off; learned models fitted once before it)."""
    from .backtest import learned_backtest, merge

    frames, _ = baseline_backtests(case, data, "test", default_input_size(data, case.spec.forecast.input_size))
    seed = case.spec.split.seed
    for f in bake.families:  # each on its own recipe (levels or changes)
        recipe, model = bake.configured(f, seed)
        frames.append(learned_backtest(data, recipe, {f: model}, "test"))
    return merge(frames)


def evaluate_forecast(case, data: SeriesData, bake: ForecastBakeoff) -> tuple[dict, pd.DataFrame]:
    """The evaluation's results (saved as ``forecast_evaluation``) and the test-period frame."""
    from . import conformal as C
    from .metrics import Blocks, accuracy, mase_scale, pinball, scaled_errors, unit_costs
    from .stages import residual_deciles

    test = test_backtests(case, data, bake)
    models = bake.baselines + list(bake.families)
    history = data.before_test()
    scale = mase_scale(history, data.season_length)
    acc_test = accuracy(test, models, history, data.season_length)
    acc_bt = accuracy(bake.backtest, models, data.train_part(), data.season_length)
    q, q_source = chosen_quantile(case)
    under, over = unit_prices(case)
    alpha = case.spec.conformal.alpha
    blocks = Blocks(test, n_boot=case.spec.evaluation.bootstrap, seed=case.spec.split.seed)
    per_model, errors, costs, calibrations = {}, {}, {}, {}
    for name in models:
        cal = C.calibrate(bake.backtest, name, bake.scale, alpha)
        offsets = C.quantile_offsets(bake.backtest, name, bake.scale, q)
        fq = C.quantile_forecast(test, name, bake.scale, offsets)
        cost = unit_costs(test[Y].to_numpy(), fq, under, over)
        point_cost = unit_costs(test[Y].to_numpy(), test[name].to_numpy(), under, over)
        errors[name], costs[name] = scaled_errors(test, name, scale), cost
        cov = C.coverage(test, name, bake.scale, cal)  # the scores' scale: the same as calibration's
        pb = pinball(test, fq, q)
        calibrations[name] = {**cal, "quantile_offsets": offsets, "q": q}
        by_step_cost = pd.Series(cost).groupby(test["step"].to_numpy()).mean()
        per_model[name] = {
            "role": "candidate" if name in bake.families else "baseline",
            "test": {**{k: acc_test[name][k] for k in ("mase", "smape", "rmse")}, "by_step": acc_test[name]["by_step"],
                     "pinball": pb["pinball"], "pinball_by_step": pb["by_step"],
                     "cost_per_point": float(cost.mean()), "cost_by_step": by_step_cost.tolist(),
                     "cost_per_point_at_mean": float(point_cost.mean()), "coverage": cov},
            "backtest": {k: acc_bt[name][k] for k in ("mase", "smape", "rmse")}}
    candidate = bake.candidate
    best_baseline = bake.best_baseline
    lifts = {}
    for name in models:
        if name == FLOOR:
            continue
        lifts[name] = {"over_floor": {"mase": blocks.lift(errors[FLOOR], errors[name]),
                                      "cost": blocks.lift(costs[FLOOR], costs[name])}}
        if name in bake.families and best_baseline:
            lifts[name]["over_best_baseline"] = {"mase": blocks.lift(errors[best_baseline], errors[name]),
                                                 "cost": blocks.lift(costs[best_baseline], costs[name])}
    out = {"task": "forecast", "candidate": candidate, "best_baseline": best_baseline, "floor": FLOOR,
           "models": per_model, "lifts": lifts, "quantile": q, "quantile_source": q_source,
           "costs": {"under": under, "over": over, "currency": case.spec.costs.currency}, "alpha": alpha,
           "horizon": data.horizon, "freq": data.freq, "season_length": data.season_length,
           "test_period": {"start": str(test[DS].min()), "end": str(test[DS].max()), "windows": data.test_windows,
                           "series": data.n_series, "points": int(len(test)), "blocks": blocks.n_blocks,
                           "most_blocks": data.n_series * most_test_windows(
                               int(data.frame.groupby(ID, observed=True).size().min()), data.season_length,
                               data.horizon, data.step)},
           "backtest_period": {"start": str(bake.backtest[DS].min()), "end": str(bake.backtest[DS].max()),
                               "windows": data.backtest_windows},
           "conformal": calibrations, "samples": samples(data, test, [m for m in (candidate, best_baseline, FLOOR) if m],
                                                         bake.scale, calibrations),
           "conformal_scale": "each series' MASE scale before the first backtest cut-off (calibration and use alike)",
           # monitoring's reference where seasonal naive answers with no model (a NO_GO case): its residual drift
           # had nothing to compare with
           "floor_reference": {"backtest_mase": per_model[FLOOR]["backtest"]["mase"],
                               "residual_deciles": residual_deciles(bake.backtest, FLOOR, bake.scale)},
           "bootstrap": {"draws": int(case.spec.evaluation.bootstrap), "blocks": "series x cut-off"}}
    return out, test


def samples(data: SeriesData, test: pd.DataFrame, models: list[str], scale: dict, calibrations: dict,
            max_series: int = 6) -> list[dict]:
    """For the report's plots: per series (the first few), recent history and the last test window with intervals."""
    from . import conformal as C

    out = []
    last_cut = test.groupby(ID, observed=True)["cutoff"].transform("max")
    window = test[test["cutoff"] == last_cut]
    for uid in list(dict.fromkeys(test[ID]))[:max_series]:
        part = window[window[ID] == uid]
        hist = data.frame[(data.frame[ID] == uid) & (data.frame[DS] <= part["cutoff"].iloc[0])].tail(
            max(4 * data.season_length, 3 * data.horizon, 30))
        item = {"series": uid, "history": {"ds": hist[DS].astype(str).tolist(), "y": hist[Y].round(6).tolist()},
                "window": {"ds": part[DS].astype(str).tolist(), "y": part[Y].round(6).tolist()}, "models": {}}
        for m in models:
            lo, hi = C.interval(part, m, scale, calibrations[m])
            item["models"][m] = {"yhat": part[m].round(6).tolist(), "lo": np.round(lo, 6).tolist(),
                                 "hi": np.round(hi, 6).tolist()}
        out.append(item)
    return out
