"""task: forecast, stage by stage: the spec, features that never see past the cut-off, MASE by hand,
conformal coverage per horizon step within its bound, the bootstrap, the decision's floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.case import case_from_spec
from mlcase.errors import SpecError
from mlcase.forecast import backtest as B
from mlcase.forecast import conformal as C
from mlcase.forecast.data import load_series
from mlcase.forecast.features import boosting_model, default_recipe, linear_model
from mlcase.forecast.metrics import Blocks, accuracy, mase_scale, scaled_errors
from mlcase.spec import spec_from_dict


def spec(**over) -> dict:
    d = {"name": "fc", "decision": "stock", "task": "forecast",
         "data": {"source": "data.csv", "target": "y", "time": "date", "series": "store"},
         "forecast": {"horizon": 7, "backtest_windows": 6, "test_windows": 3, "known": ["promo"],
                      "past_only": ["temp"]},
         "costs": {"under": 3, "over": 1}}
    for k, v in over.items():
        d[k] = v
    return d


def synthetic(n_series=3, days=400, seed=0) -> pd.DataFrame:
    """Weekly seasonality, AR(1) noise, a promotion effect (known) and a temperature (past-only)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        ds = pd.date_range("2020-01-01", periods=days, freq="D")
        e = np.zeros(days)
        for t in range(1, days):
            e[t] = 0.5 * e[t - 1] + rng.normal(0, 1)
        promo = (rng.random(days) < 0.1).astype(int)
        temp = 10 + 8 * np.sin(np.arange(days) / 58) + rng.normal(0, 1, days)
        y = 50 + 10 * s + 6 * np.sin(2 * np.pi * ds.dayofweek / 7) + 8 * promo + e
        rows.append(pd.DataFrame({"store": f"s{s}", "date": ds, "y": y, "promo": promo, "temp": temp}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    case = case_from_spec(spec(), tmp_path_factory.mktemp("fc"))
    return case, load_series(case, synthetic())


# --------------------------------------------------------------------------- spec
@pytest.mark.parametrize("change, field", [
    ({"forecast": None}, "forecast"),
    ({"baselines": ["majority"]}, "baselines"),
    ({"candidates": ["xgboost"]}, "candidates"),
    ({"forecast": {"horizon": 7, "known": ["promo"], "past_only": ["promo"]}}, "forecast.known"),
    ({"costs": {"under": "2 * y", "over": 1}}, "costs.under"),
    ({"forecast": {"horizon": 0}}, "forecast.horizon"),
])
def test_spec_errors_name_the_field(change, field):
    d = spec(**change)
    if d.get("forecast") is None:
        d.pop("forecast")
    with pytest.raises(SpecError) as err:
        spec_from_dict(d)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_defaults_and_other_tasks():
    s = spec_from_dict(spec())
    assert s.baselines == ["naive", "seasonal_naive", "moving_average", "auto_ets"]
    assert s.candidates == ["lightgbm", "ridge"]
    with pytest.raises(SpecError, match="forecast baseline"):
        spec_from_dict({"name": "b", "decision": "d", "task": "regression", "baselines": ["auto_ets"],
                        "data": {"source": "x.csv", "target": "y"}})


def test_windows_and_cutoffs(series):
    _case, data = series
    assert data.freq == "D" and data.season_length == 7 and data.n_series == 3
    test = data.cutoffs("test")
    bt = data.cutoffs("backtest")
    last = data.frame["ds"].max()
    assert test["cutoff"].max() == last - pd.Timedelta(days=7)            # the last window ends at the end
    assert bt["cutoff"].max() + pd.Timedelta(days=7) == test["cutoff"].min()  # the backtest ends where the test starts
    assert len(test) == 3 * 3 and len(bt) == 3 * 6


# --------------------------------------------------------------------------- no leakage
def _alter_after(frame: pd.DataFrame, cut: pd.Timestamp, h: int, rng) -> pd.DataFrame:
    """Targets and past-only covariates after the cut-off, and known covariates after its window, replaced."""
    out = frame.copy()
    after = out["ds"] > cut
    out.loc[after, "y"] = rng.normal(1000, 500, after.sum())
    out.loc[after, "temp"] = rng.normal(-50, 30, after.sum())
    later = out["ds"] > cut + pd.Timedelta(days=h)
    out.loc[later, "promo"] = 1 - out.loc[later, "promo"]
    return out


@pytest.mark.parametrize("family", ["lightgbm", "ridge"])
def test_no_feature_reads_past_the_cutoff(series, family):
    """Alter everything a forecast from a cut-off may not know; its forecasts do not move."""
    case, data = series
    recipe = default_recipe(data)
    model = (boosting_model({"n_estimators": 30}) if family == "lightgbm" else linear_model(recipe))
    base = B.learned_backtest(data, recipe, {family: model}, "backtest")
    first, last = base["cutoff"].min(), base["cutoff"].max()
    rng = np.random.default_rng(1)
    for cut in (first, last):
        altered = _alter_after(data.before_test(), cut, data.horizon, rng)
        again = B.learned_backtest(data, recipe, {family: model}, "backtest", frame=altered)
        window = base["cutoff"] == cut
        np.testing.assert_allclose(again.loc[window, family].to_numpy(), base.loc[window, family].to_numpy(),
                                   rtol=1e-9, atol=1e-9)
    # and the check can fail: altering the history before the last cut-off moves its forecasts
    altered = data.before_test().copy()
    altered.loc[altered["ds"] == last, "y"] += 100
    moved = B.learned_backtest(data, recipe, {family: model}, "backtest", frame=altered)
    window = base["cutoff"] == last
    assert not np.allclose(moved.loc[window, family], base.loc[window, family])


def test_rule_reads_no_lag_after_the_cutoff(series):
    case, data = series
    base = B.rule_backtest(data, "1.1 * lag_7 + 0 * lag_1", "backtest")
    cut = base["cutoff"].min()
    altered = _alter_after(data.frame, cut, data.horizon, np.random.default_rng(2))
    data2 = load_series(case, altered.rename(columns={"unique_id": "store", "ds": "date"}))
    again = B.rule_backtest(data2, "1.1 * lag_7 + 0 * lag_1", "backtest")
    window = base["cutoff"] == cut
    # windows are counted from each series' end; the altered frame has the same end
    np.testing.assert_allclose(again.loc[window, "rule"], base.loc[window, "rule"])


def test_past_only_covariates_enter_lagged_by_the_horizon(series):
    _case, data = series
    recipe = default_recipe(data)
    from mlcase.forecast.features import exog_columns, with_past_lags

    assert exog_columns(recipe) == ["promo", "temp_lag7"]
    out = with_past_lags(data.frame, recipe)
    assert "temp" not in out.columns
    part = data.frame[data.frame["unique_id"] == "s0"]
    lagged = out[out["unique_id"] == "s0"]["temp_lag7"].to_numpy()
    np.testing.assert_allclose(lagged[7:], part["temp"].to_numpy()[:-7])


# --------------------------------------------------------------------------- metrics
def test_mase_equals_a_hand_computation():
    hist = pd.DataFrame({"unique_id": ["a"] * 10 + ["b"] * 10,
                         "ds": list(pd.date_range("2024-01-01", periods=10)) * 2,
                         "y": [1, 3, 2, 5, 4, 6, 5, 8, 7, 9] + [10, 10, 12, 11, 14, 13, 15, 16, 15, 18]})
    cv = pd.DataFrame({"unique_id": ["a", "a", "b", "b"], "ds": pd.to_datetime(["2024-01-11", "2024-01-12"] * 2),
                       "cutoff": pd.Timestamp("2024-01-10"), "step": [1, 2, 1, 2], "y": [10.0, 11.0, 17.0, 19.0],
                       "m": [9.0, 13.0, 18.0, 18.5]})
    # by hand, season 2: scale_a = mean |y_t - y_{t-2}| over a's history
    ya, yb = np.array([1, 3, 2, 5, 4, 6, 5, 8, 7, 9.0]), np.array([10, 10, 12, 11, 14, 13, 15, 16, 15, 18.0])
    sa, sb = np.mean(np.abs(ya[2:] - ya[:-2])), np.mean(np.abs(yb[2:] - yb[:-2]))
    mase_a, mase_b = np.mean([1, 2]) / sa, np.mean([1, 0.5]) / sb
    acc = accuracy(cv, ["m"], hist, season=2)["m"]
    assert acc["mase"] == pytest.approx((mase_a + mase_b) / 2, rel=1e-12)
    assert acc["by_step"]["mase"][0] == pytest.approx((1 / sa + 1 / sb) / 2, rel=1e-12)
    assert acc["rmse"] == pytest.approx((np.sqrt((1 + 4) / 2) + np.sqrt((1 + 0.25) / 2)) / 2)
    scale = mase_scale(hist, 2)
    assert scale == pytest.approx({"a": sa, "b": sb})
    blocks = Blocks(cv, n_boot=200)
    assert blocks.mean(scaled_errors(cv, "m", scale)) == pytest.approx(acc["mase"], rel=1e-12)


def test_bootstrap_lift_is_paired_by_block():
    cv = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 20), "cutoff": np.tile(np.repeat(np.arange(4), 5), 2),
                       "ds": np.arange(40), "y": 0.0})
    rng = np.random.default_rng(0)
    base = rng.normal(2, 1, 40)
    lift = Blocks(cv, n_boot=500).lift(base, base - 0.5)
    assert lift["estimate"] == pytest.approx(0.5) and lift["ci_low"] == pytest.approx(0.5)  # a constant gain: no spread
    assert lift["blocks"] == 8


# --------------------------------------------------------------------------- conformal
def test_conformal_coverage_per_step_within_its_bound(tmp_path):
    """Split conformal per step on the backtest residuals covers each step of the test period within the
    theory's band (many exchangeable windows of a stationary series; seasonal naive, so it is quick)."""
    d = spec()
    d["forecast"] = {"horizon": 5, "backtest_windows": 40, "test_windows": 40, "step": 5}
    d["data"]["series"] = "store"
    case = case_from_spec(d, tmp_path)
    frame = synthetic(n_series=12, days=470, seed=3)
    data = load_series(case, frame)
    bt = B.stats_backtest(data, ["seasonal_naive"], "backtest")
    test = B.stats_backtest(data, ["seasonal_naive"], "test")
    scale = mase_scale(data.train_part(), 7)  # one scale per series for calibration and use (as evaluate does)
    cal = C.calibrate(bt, "seasonal_naive", scale, alpha=0.1)
    assert cal["n"] == [40 * 12] * 5
    cov = C.coverage(test, "seasonal_naive", scale, cal)
    assert cov["ok"], cov["by_step"]
    assert all(r["band"][0] <= r["coverage"] <= r["band"][1] for r in cov["by_step"])
    assert 0.85 <= cov["coverage"] <= 0.96


def test_conformal_level_and_infinite_interval():
    cv = pd.DataFrame({"unique_id": "a", "step": [1] * 5, "y": [1.0, 2, 3, 4, 5], "m": 0.0})
    cal = C.calibrate(cv, "m", {"a": 1.0}, alpha=0.1)
    assert cal["quantile"] == [None]  # ceil(6 * 0.9) = 6 > 5 scores: no finite 90% interval
    cal = C.calibrate(cv, "m", {"a": 1.0}, alpha=0.2)
    assert cal["quantile"] == [5.0]   # ceil(6 * 0.8) = 5: the largest score


# --------------------------------------------------------------------------- bundles
def test_every_forecaster_round_trips_through_a_signed_bundle(series, tmp_path):
    """Each forecaster a forecast bundle can hold is saved and read back through the exact allowlist and
    forecasts the same numbers."""
    from mlcase.bundle import ModelBundle, read_bundle, save_bundle
    from mlcase.forecast.models import GlobalForecaster, LocalForecaster, RuleForecaster

    _case, data = series
    recipe = default_recipe(data)
    history = data.before_test()
    future = data.frame[data.frame["ds"] > history["ds"].max()].groupby("unique_id").head(7)
    models = {"lightgbm": GlobalForecaster(recipe, boosting_model({"n_estimators": 20})),
              "ridge": GlobalForecaster(recipe, linear_model(recipe)),
              "seasonal_naive": LocalForecaster("seasonal_naive", 7, "D", 7),
              "rule": RuleForecaster("1.05 * lag_7 + promo", known=("promo",), season_length=7, freq="D", horizon=7)}
    for name, model in models.items():
        model.fit(history)
        b = ModelBundle(model=model, name=name, role="candidate", task="forecast", features=[], schema={})
        folder = tmp_path / name
        loaded = read_bundle(folder, save_bundle(b, folder))
        before, after = model.forecast(history, future), loaded.model.forecast(history, future)
        assert len(before) == 7 * 3
        np.testing.assert_allclose(after["yhat"], before["yhat"], rtol=1e-12)


def test_money_at_the_quantile_against_an_unsettled_mase_is_inconclusive_not_no_model_needed():
    """vcdExtra::CyclingDeaths (London cyclist deaths per fortnight, 0 to 3): over 8 test windows no model beat
    seasonal naive in MASE with a CI above zero, and the case said "no model needed", while the forecasts acted
    on (at the median, the quantile its costs ask for) saved money over seasonal naive with CIs well above zero.
    The numbers are that run's; with the money's CI down to zero the verdict is still NO_GO."""
    from types import SimpleNamespace

    from mlcase.forecast.decision import decide_forecast

    def lift(mase, mase_ci, cost, cost_ci):
        return {"mase": {"estimate": mase, "ci_low": mase_ci[0], "ci_high": mase_ci[1], "sd": 0.1, "blocks": 8},
                "cost": {"estimate": cost, "ci_low": cost_ci[0], "ci_high": cost_ci[1], "sd": 0.06, "blocks": 8}}

    ev = {"candidate": "lightgbm", "best_baseline": "moving_average", "quantile": 0.5,
          "costs": {"under": 1.0, "over": 1.0, "currency": "$"},
          "test_period": {"windows": 8, "series": 1, "blocks": 8, "most_blocks": 9},
          "models": {"seasonal_naive": {"test": {"mase": 0.725}}, "moving_average": {"test": {"mase": 0.714}},
                     "lightgbm": {"test": {"mase": 0.689}}},
          "lifts": {"lightgbm": {"over_floor": lift(0.036, (-0.147, 0.244), 0.258, (0.123, 0.398))},
                    "moving_average": {"over_floor": lift(0.011, (-0.200, 0.228), 0.371, (0.270, 0.486))}}}
    case = SimpleNamespace(spec=SimpleNamespace(constraints=SimpleNamespace(operating_cost=0.0, min_lift=0.0)))
    d = decide_forecast(case, ev)
    assert (d.verdict, d.champion, d.evidence["measures_disagree"]) == ("INCONCLUSIVE", None, True)
    assert d.reasons[0].startswith("the candidate's (lightgbm) and the best baseline's (the moving average) forecasts "
                                   "at the 50% quantile save money over seasonal naive with a 95% CI above zero")
    assert "at the quantile it saves $0.371 (95% CI $0.270 to $0.486)" in d.reasons[2]
    assert d.reasons[-1] == "no champion is set: seasonal naive keeps serving until the two agree"

    # the money's CI down to zero for both: nothing is evidence for a model, and seasonal naive stays
    for name in ("lightgbm", "moving_average"):
        ev["lifts"][name]["over_floor"]["cost"]["ci_low"] = -0.01
    d = decide_forecast(case, ev)
    assert d.verdict == "NO_GO" and d.reasons[-1].endswith("no model needed") and "measures_disagree" not in d.evidence
    # a bar above the saving's lower bound (operating cost per point) is not cleared either
    ev["lifts"]["moving_average"]["over_floor"]["cost"]["ci_low"] = 0.270
    case.spec.constraints.operating_cost = 0.3
    assert decide_forecast(case, ev).verdict == "NO_GO"
    case.spec.constraints.operating_cost = 0.0
    assert decide_forecast(case, ev).reasons[0].startswith("the best baseline's (the moving average) forecast at")
