"""Lag, rolling and calendar features, built by mlforecast per cut-off so no feature sees past it.

A *recipe* is plain data (lists of numbers and names), so a fitted model can carry it in a
signed skops bundle; :func:`make_mlforecast` turns it into an ``mlforecast.MLForecast``
whenever features are needed (backtests, the final fit, a served forecast). mlforecast
computes every lag and rolling window from the target up to the cut-off and forecasts the
horizon recursively, feeding its own forecasts back as lags, so a step never reads an actual
after the cut-off.

Covariates are kept apart:

- ``known`` (calendar, holidays, schedules, planned prices) are dynamic exogenous columns:
  mlforecast reads their value at the step forecast (the caller supplies the future's);
- ``past_only`` (weather, other sales) are observed only up to the cut-off, so they enter
  lagged by the horizon (``<name>_lag<H>``, mlforecast's ``transform_exog``): at every step
  1..H that lag lies at or before the cut-off. The raw column is never a feature.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .data import DS, ID, Y, year_of

# mlforecast warns on every fit and forecast whose early rows lack the deepest lags (60 times in one
# run on fpp3::us_employment). Missing lags are expected: LightGBM reads them as missing and the
# linear model imputes them (linear_model), so the warning says nothing a user can act on.
warnings.filterwarnings("ignore", message="Found null values in", category=UserWarning, module="mlforecast")

#: calendar features by the frequency's base (mlforecast date features: pandas ``DatetimeIndex`` attributes)
_CALENDAR = {"D": ["dayofweek", "month", "dayofyear"], "B": ["dayofweek", "month", "dayofyear"],
             "W": ["week", "month"], "M": ["month"], "MS": ["month"], "ME": ["month"], "Q": ["quarter"],
             "QS": ["quarter"], "QE": ["quarter"], "h": ["hour", "dayofweek"], "H": ["hour", "dayofweek"]}
#: rows a series must keep for fitting after its deepest default lag (or a season, if longer)
MIN_FIT_ROWS = 12
#: calendar features a linear model sees one-hot (their numbers are labels, not amounts)
ONE_HOT = ("dayofweek", "month", "quarter", "hour")


def default_recipe(data, spec_lags: list[int] | None = None) -> dict:
    """The feature recipe of a case: lags 1..season, whole seasons, a year back; rolling means; calendar."""
    from .data import _base

    m = max(1, data.season_length)
    # a window spans at least two steps: with a season of one step (yearly data) a 1-step mean is lag 1
    # again, and mlforecast's 1-step std is NaN or inf (0/0). On dslabs::gapminder (185 yearly series)
    # that inf made every ridge trial fail, and dropping its NaN rows left LightGBM 22% of the rows
    rolling = ([[1, "mean", m]] if m > 1 else []) + [[1, "mean", 4 * m], [1, "std", m if m > 1 else 4]]
    if m > 1:
        rolling.append([m, "seasonal_mean", 4])
    if spec_lags:
        lags = sorted({int(x) for x in spec_lags})
    else:
        lags = set(range(1, m + 1)) | {2 * m, 3 * m, 4 * m}
        year = year_of(data.freq)
        lengths = data.frame.groupby(ID, observed=True).size()
        shortest = int(lengths.min())
        if year and year > 4 * m and shortest - data.test_span - data.backtest_span > 2 * year:
            lags.add(year)
        # the first backtest cut-off trains on the history before it; a lag deeper than that history
        # leaves no row to fit (datasets::AirPassengers: 36 months before it, lags to 48 and a 48-month
        # window: every trial failed). Keep what leaves a typical series at least a season of rows
        room = int(lengths.median()) - data.test_span - data.backtest_span - max(m, MIN_FIT_ROWS)
        lags = sorted({x for x in lags if x <= room} or {1})
        kept = []
        for lag, kind, window in rolling:
            if kind == "seasonal_mean":  # a window of whole seasons: shortened, kept while it spans two
                window = min(window, (room - lag) // m)
                if window >= 2:
                    kept.append([lag, kind, window])
            elif lag + window <= room:
                kept.append([lag, kind, window])
        rolling = kept
    return {"freq": data.freq, "season_length": m, "lags": lags, "rolling": rolling,
            "calendar": list(_CALENDAR.get(_base(data.freq), [])), "known": list(data.known),
            "past_only": list(data.past_only), "past_lag": int(data.horizon), "horizon": int(data.horizon)}


def max_lag(recipe: dict) -> int:
    """Steps of history the recipe reads back from a cut-off (its largest lag plus rolling window)."""
    deepest = max([int(x) for x in recipe["lags"]] + [0])
    for lag, kind, window in recipe["rolling"]:
        span = int(window) * (recipe["season_length"] if kind == "seasonal_mean" else 1)
        deepest = max(deepest, int(lag) + span)
    if recipe["past_only"]:
        deepest = max(deepest, int(recipe["past_lag"]))
    return deepest + int(recipe.get("diff") or 0)  # a differenced target loses its first steps too


def _lag_transforms(recipe: dict) -> dict:
    from mlforecast.lag_transforms import RollingMean, RollingStd, SeasonalRollingMean

    out: dict[int, list] = {}
    for lag, kind, window in recipe["rolling"]:
        if kind == "mean":
            tf = RollingMean(window_size=int(window))
        elif kind == "std":
            tf = RollingStd(window_size=int(window))
        else:
            tf = SeasonalRollingMean(season_length=int(recipe["season_length"]), window_size=int(window))
        out.setdefault(int(lag), []).append(tf)
    return out


def make_mlforecast(recipe: dict, models: dict):
    """An ``mlforecast.MLForecast`` with the recipe's features and ``models`` (name -> estimator)."""
    from mlforecast import MLForecast

    extra = {}
    if recipe.get("diff"):
        from mlforecast.target_transforms import Differences

        extra["target_transforms"] = [Differences([int(recipe["diff"])])]
    return MLForecast(models=models, freq=recipe["freq"], lags=[int(x) for x in recipe["lags"]],
                      lag_transforms=_lag_transforms(recipe), date_features=list(recipe["calendar"]),
                      num_threads=1, **extra)


def with_past_lags(frame: pd.DataFrame, recipe: dict) -> pd.DataFrame:
    """``frame`` with each past-only covariate replaced by its value ``past_lag`` steps back (mlforecast's
    ``transform_exog``); rows sorted by series and time. Known covariates pass through."""
    keep = [ID, DS, Y, *recipe["known"]]
    keep = [c for c in keep if c in frame.columns]
    out = frame[keep].copy()
    if recipe["past_only"]:
        from mlforecast.feature_engineering import transform_exog

        lagged = transform_exog(frame[[ID, DS, *recipe["past_only"]]], lags=[int(recipe["past_lag"])])
        names = [f"{c}_lag{int(recipe['past_lag'])}" for c in recipe["past_only"]]
        out[names] = lagged[names].to_numpy()
    return out


def exog_columns(recipe: dict) -> list[str]:
    """The dynamic exogenous columns a model is given (known covariates and the lagged past-only ones)."""
    return list(recipe["known"]) + [f"{c}_lag{int(recipe['past_lag'])}" for c in recipe["past_only"]]


def linear_model(recipe: dict, alpha: float = 1.0):
    """Ridge on the same features: calendar labels one-hot, the rest scaled, missing lags imputed."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    onehot = [c for c in recipe["calendar"] if c in ONE_HOT]
    pre = ColumnTransformer([("calendar", OneHotEncoder(handle_unknown="ignore"), onehot)],
                            remainder=Pipeline([("impute", SimpleImputer(strategy="mean")),
                                                ("scale", StandardScaler())]))
    return Pipeline([("features", pre), ("ridge", Ridge(alpha=float(alpha)))])


def boosting_model(params: dict | None = None, seed: int = 0):
    """LightGBM regressor (one thread, quiet) with ``params``."""
    import lightgbm as lgb

    p = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
         "subsample": 1.0, "subsample_freq": 0, "colsample_bytree": 1.0, "reg_lambda": 0.0}
    p.update(params or {})
    return lgb.LGBMRegressor(random_state=seed, n_jobs=1, verbose=-1, **p)


def series_scale(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per-series ``(mean, sd)`` of the target (sd 1 for a constant series): what the learned models scale by."""
    g = frame.groupby(ID, observed=True)[Y]
    mu, sd = g.mean(), g.std(ddof=0).fillna(0.0)
    return {str(k): (float(mu[k]), float(sd[k]) if sd[k] > 0 else 1.0) for k in mu.index}


def scale_frame(frame: pd.DataFrame, scale: dict, inverse: bool = False, cols=(Y,)) -> pd.DataFrame:
    """``(y - mean) / sd`` per series (``inverse``: back); a series without stats uses its own."""
    out = frame.copy()
    ids = out[ID].astype(str)
    missing = sorted(set(ids) - set(scale))
    if missing:
        scale = {**scale, **series_scale(out[out[ID].astype(str).isin(missing)])} if Y in out.columns else {
            **scale, **{m: (0.0, 1.0) for m in missing}}
    mu = ids.map(lambda s: scale[s][0]).to_numpy(dtype=float)
    sd = ids.map(lambda s: scale[s][1]).to_numpy(dtype=float)
    for c in cols:
        if c in out.columns:
            v = out[c].to_numpy(dtype=float)
            out[c] = v * sd + mu if inverse else (v - mu) / sd
    return out


def steps(frame: pd.DataFrame) -> np.ndarray:
    """The horizon step (1..H) of each row of a cross-validation frame (``unique_id, ds, cutoff``)."""
    return frame.groupby([ID, "cutoff"], observed=True)[DS].rank(method="first").to_numpy(dtype="int64")
