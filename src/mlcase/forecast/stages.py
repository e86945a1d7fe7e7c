"""The pieces of a forecast run that :func:`mlcase.pipeline.run` calls after the bake-off and evaluation:
SHAP on the boosting model's features, the bundles (fitted on the whole history) and their registration.
"""

from __future__ import annotations

import pandas as pd

from ..bundle import ModelBundle
from .bakeoff import ForecastBakeoff, default_input_size, rule_names
from .data import ID, SeriesData
from .features import max_lag
from .models import GlobalForecaster, LocalForecaster, RuleForecaster


def explain_boosting(case, data: SeriesData, bake: ForecastBakeoff, max_rows: int = 300) -> dict | None:
    """Mean |SHAP| per feature of the best LightGBM, fitted on the history before the test period, on its
    last ``max_rows`` training rows (mlforecast's features: lags, rolling windows, calendar, covariates)."""
    if "lightgbm" not in bake.families:
        return None
    from ..explain import explain_global
    from .features import make_mlforecast, scale_frame, series_scale, with_past_lags

    recipe, model = bake.configured("lightgbm", case.spec.split.seed)
    df = with_past_lags(data.before_test(), recipe)
    fc = make_mlforecast(recipe, {})
    rows = fc.preprocess(scale_frame(df, series_scale(df)), static_features=[], dropna=True).tail(2000)
    features = list(fc.ts.features_order_)
    X = rows[features]
    model.fit(X, rows["y"])
    bundle = ModelBundle(model=model, name="lightgbm", role="candidate", task="regression", features=features,
                         schema={})
    out = explain_global(bundle, X, max_rows=max_rows, seed=case.spec.split.seed)
    out["note"] = ("SHAP of LightGBM on mlforecast's features (refitted on the last 2,000 training rows before the "
                   "test period; target scaled per series" + (", then each step's change" if recipe.get("diff") else "")
                   + ")")
    return out


#: the fewest past values a local model fits on: statsforecast's AutoETS raises "tiny datasets" below 7
#: (datasets::nhtemp, yearly, served AutoETS with a ``min_history`` of 2 and failed its own warm-up)
LOCAL_MIN_HISTORY = {"auto_ets": 7}


def schema_of(data: SeriesData, recipe: dict | None, name: str | None = None) -> dict:
    """The forecast schema a bundle carries: what a request must send (``name``: the served model)."""
    need = max(max_lag(recipe) if recipe else 0, 2 * data.season_length, LOCAL_MIN_HISTORY.get(name, 1))
    return {"task": "forecast", "target": data.target, "time": data.time, "series": data.series_col,
            "freq": data.freq, "horizon": data.horizon, "season_length": data.season_length,
            "known": list(data.known), "past_only": list(data.past_only), "min_history": int(need), "columns": [],
            **({"fill": data.fill} if data.fill else {})}


def make_model(case, data: SeriesData, bake: ForecastBakeoff, name: str):
    """The unfitted forecaster of a model name (a family, a statsforecast baseline, a rule)."""
    if name in bake.families:
        recipe, model = bake.configured(name, case.spec.split.seed)
        return GlobalForecaster(recipe=recipe, regressor=model)
    rules = rule_names(case)
    if name in rules:
        return RuleForecaster(expression=rules[name], known=tuple(data.known), season_length=data.season_length,
                              freq=data.freq, horizon=data.horizon)
    size = default_input_size(data, case.spec.forecast.input_size) if name in ("auto_ets", "auto_arima") else None
    return LocalForecaster(kind=name, season_length=data.season_length, freq=data.freq, horizon=data.horizon,
                           input_size=size)


def build_bundle(case, data: SeriesData, bake: ForecastBakeoff, ev: dict, name: str) -> ModelBundle:
    """``name`` fitted on every series' whole history, with its intervals, quantile offsets and test numbers."""
    model = make_model(case, data, bake, name).fit(data.frame)
    cal = dict(ev["conformal"][name])
    cal["scales"] = dict(bake.scale)  # the scale the conformal scores were calibrated with
    cal["floor"] = dict(ev["conformal"]["seasonal_naive"])  # the fallback's intervals
    test = ev["models"][name]["test"]
    reference = {"backtest_mase": ev["models"][name]["backtest"]["mase"], "test_mase": test["mase"],
                 "floor_test_mase": ev["models"]["seasonal_naive"]["test"]["mase"],
                 "mae_by_step_scaled": test["by_step"]["mase"], "coverage": test["coverage"]["coverage"],
                 "residual_offsets": cal.get("quantile_offsets"),
                 "residual_deciles": residual_deciles(bake.backtest, name, bake.scale)}
    role = "candidate" if name in bake.families else "baseline"
    return ModelBundle(model=model, name=name, role=role, task="forecast",
                       features=list(data.known) + list(data.past_only),
                       schema=schema_of(data, bake.recipe_of(name) if name in bake.families else None, name),
                       conformal=cal,
                       reference=reference, metrics={k: test[k] for k in ("mase", "smape", "rmse", "cost_per_point")},
                       params=bake.families.get(name, {}).get("params") or {}, rule=rule_names(case).get(name),
                       case_name=case.name, data_fingerprint=data.fingerprint)


def residual_deciles(cv: pd.DataFrame, name: str, scale: dict) -> list[float]:
    """Deciles of ``name``'s scaled signed residuals on the backtests (monitoring's drift reference)."""
    import numpy as np

    s = cv[ID].map(scale).to_numpy(dtype=float)
    r = (cv["y"].to_numpy(dtype=float) - cv[name].to_numpy(dtype=float)) / s
    return [float(v) for v in np.quantile(r, np.linspace(0.1, 0.9, 9))]


def register_forecast(case, data: SeriesData, bake: ForecastBakeoff, ev: dict) -> dict:
    """Register the candidate (alias ``candidate``) and the best baseline (``baseline``), fitted on all history."""
    from .. import tracking

    out: dict = {"by_name": {}}
    names = [n for n in (bake.candidate, bake.best_baseline) if n]
    with tracking.run(case, "forecast-models", tags=tracking.base_tags(case, data.fingerprint, "registry")):
        for name in dict.fromkeys(names):
            bundle = build_bundle(case, data, bake, ev, name)
            alias = "candidate" if bundle.role == "candidate" else "baseline"
            version = tracking.log_bundle(case, bundle, aliases=[alias], tags={
                "mlcase.rows_seen": len(data.frame), "mlcase.fitted_on": "every series' whole history",
                "mlcase.test_numbers": "measured by the same configuration fitted before the test period",
                **{f"mlcase.test_{k}": v for k, v in bundle.metrics.items()}})
            out["by_name"][name] = version
            out[f"{alias}_version"] = version
            out[alias] = name
    return out
