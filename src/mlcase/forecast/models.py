"""The forecasters a forecast bundle holds: scikit-learn style estimators whose state is plain data.

Each takes a long history frame (``unique_id, ds, y`` and the covariates) and returns
``unique_id, ds, yhat`` for the ``h`` steps after each series' last time:

- :class:`GlobalForecaster`: a regressor (LightGBM or the ridge pipeline) on mlforecast's lag,
  rolling and calendar features (:mod:`mlcase.forecast.features`), one model for every series,
  each series scaled by its training mean and sd;
- :class:`LocalForecaster`: a statsforecast model (naive, seasonal naive, moving average,
  AutoETS, AutoARIMA) fitted on each history it is given, as such local models are used;
- :class:`RuleForecaster`: the spec's SQL rule over ``lag_<k>`` columns (``1.05 * lag_364``),
  evaluated in :mod:`mlcase.sql`'s sandbox; seasonal naive where the rule gives NULL.

They hold no mlforecast or statsforecast object (those cannot be stored by skops), only
their recipe and the fitted regressor, so a bundle stays a signed skops file of trusted types.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ..errors import DataError, RuleError
from ..times import TIME_DTYPE
from .data import DS, ID, Y, series_named

YHAT = "yhat"


def future_frame(history: pd.DataFrame, h: int, freq: str) -> pd.DataFrame:
    """``unique_id, ds`` of the ``h`` steps after each series' last time in ``history``."""
    offset = pd.tseries.frequencies.to_offset(freq)
    last = history.groupby(ID, observed=True, sort=False)[DS].max()
    parts = [pd.DataFrame({ID: uid, DS: pd.date_range(end + offset, periods=h, freq=offset)})
             for uid, end in last.items()]
    return pd.concat(parts, ignore_index=True)


def _future_covariates(history: pd.DataFrame, future: pd.DataFrame | None, h: int, freq: str,
                       known: list[str]) -> pd.DataFrame:
    """The future steps with their known covariates (from ``future``; a missing one is a :class:`DataError`)."""
    steps = future_frame(history, h, freq)
    if not known:
        return steps
    if future is None:
        raise DataError(f"the forecast needs the known covariates {', '.join(known)} for the next {h} steps",
                        "send them for every step of the horizon (future rows with the covariates)")
    cols = [c for c in known if c not in future.columns]
    if cols:
        raise DataError(f"the future rows lack the known covariate(s) {', '.join(cols)}",
                        "send every known covariate for every step of the horizon")
    fut = future[[ID, DS, *known]].copy()
    fut[ID] = fut[ID].astype(str)
    fut[DS] = pd.to_datetime(fut[DS]).astype(TIME_DTYPE)
    out = steps.merge(fut, on=[ID, DS], how="left")
    missing = out[known].isna().any(axis=1)
    if missing.any():
        first = out[missing].iloc[0]
        raise DataError(f"known covariates are missing for {int(missing.sum())} future step(s) (e.g. series "
                        f"'{first[ID]}' at {first[DS]})", "send them for every step of the horizon")
    return out


class _Forecaster(BaseEstimator):
    """``predict(history)``: the forecast frame (what MLflow's pyfunc flavour calls)."""

    _never_stored = True  # an abstract base: only its subclasses are saved in bundles

    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        return self.forecast(history)


class GlobalForecaster(_Forecaster):
    """A regressor on mlforecast features, shared by every series (see the module docstring).

    Parameters
    ----------
    recipe : dict
        :func:`mlcase.forecast.features.default_recipe`.
    regressor : estimator
        Unfitted scikit-learn compatible regressor.
    """

    def __init__(self, recipe=None, regressor=None):
        self.recipe = recipe
        self.regressor = regressor

    def fit(self, frame: pd.DataFrame):
        from .features import make_mlforecast, scale_frame, series_scale, with_past_lags

        df = with_past_lags(frame, self.recipe)
        self.scale_ = series_scale(df)
        fc = make_mlforecast(self.recipe, {"m": clone(self.regressor)})
        fc.fit(scale_frame(df, self.scale_), static_features=[], dropna=True)
        self.regressor_ = fc.models_["m"]
        self.features_ = list(fc.ts.features_order_)
        return self

    def forecast(self, history: pd.DataFrame, future: pd.DataFrame | None = None, h: int | None = None) -> pd.DataFrame:
        from .features import exog_columns, make_mlforecast, scale_frame, with_past_lags

        check_is_fitted(self, "regressor_")
        r = self.recipe
        h = int(h or r["horizon"])
        steps = _future_covariates(history, future, h, r["freq"], list(r["known"]))
        both = pd.concat([history, steps], ignore_index=True).sort_values([ID, DS], kind="stable")
        both = with_past_lags(both, r)
        is_future = both[Y].isna().to_numpy() & both.set_index([ID, DS]).index.isin(
            steps.set_index([ID, DS]).index)
        hist = scale_frame(both[~is_future], self.scale_)
        fc = make_mlforecast(r, {"m": self.regressor_})
        fc.preprocess(hist, static_features=[], dropna=False)
        fc.models_ = {"m": self.regressor_}
        exog = exog_columns(r)
        X_df = both.loc[is_future, [ID, DS, *exog]] if exog else None
        out = fc.predict(h, X_df=X_df)
        out = out.rename(columns={"m": YHAT})
        return scale_frame(out, self.scale_, inverse=True, cols=(YHAT,))[[ID, DS, YHAT]]


#: statsforecast models by the spec's baseline name
LOCAL_KINDS = ("naive", "seasonal_naive", "moving_average", "auto_ets", "auto_arima")


def stats_model(kind: str, season_length: int):
    """The statsforecast model of a baseline name, aliased to that name."""
    from statsforecast import models as M

    m = max(1, int(season_length))
    return {"naive": lambda: M.Naive(alias=kind),
            "seasonal_naive": lambda: M.SeasonalNaive(season_length=m, alias=kind),
            "moving_average": lambda: M.WindowAverage(window_size=m, alias=kind),
            "auto_ets": lambda: M.AutoETS(season_length=m, alias=kind),
            "auto_arima": lambda: M.AutoARIMA(season_length=m, alias=kind)}[kind]()


class LocalForecaster(_Forecaster):
    """A statsforecast model fitted on each history it forecasts from.

    Parameters
    ----------
    kind : str
        One of :data:`LOCAL_KINDS`.
    season_length : int
    freq : str
    horizon : int
    input_size : int or None
        Steps of each history the model fits on (the last ones); None: all.
    """

    def __init__(self, kind="seasonal_naive", season_length=7, freq="D", horizon=1, input_size=None):
        self.kind = kind
        self.season_length = season_length
        self.freq = freq
        self.horizon = horizon
        self.input_size = input_size

    def fit(self, frame: pd.DataFrame | None = None):
        if self.kind not in LOCAL_KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {LOCAL_KINDS}")
        self.fitted_ = True
        return self

    def forecast(self, history: pd.DataFrame, future: pd.DataFrame | None = None, h: int | None = None) -> pd.DataFrame:
        from statsforecast import StatsForecast

        check_is_fitted(self, "fitted_")
        h = int(h or self.horizon)
        hist = history[[ID, DS, Y]]
        if self.input_size:
            hist = hist.groupby(ID, observed=True, sort=False).tail(int(self.input_size))
        short = hist.groupby(ID, observed=True).size()
        need = self.season_length if self.kind in ("seasonal_naive", "moving_average") else 1
        if (short < need).any():
            raise DataError(f"{self.kind} needs at least {need} past values per series; "
                            f"{series_named(hist, short.idxmin())} has {int(short.min())}",
                            f"send at least {need} past values")
        sf = StatsForecast(models=[stats_model(self.kind, self.season_length)], freq=self.freq, n_jobs=1)
        out = sf.forecast(df=hist, h=h)
        return out.rename(columns={self.kind: YHAT})[[ID, DS, YHAT]]


_LAG = re.compile(r"\blag_(\d+)\b", re.I)
CALENDAR_COLUMNS = ("step", "dayofweek", "month", "dayofyear", "year")


def rule_lags(expression: str) -> list[int]:
    """The ``lag_<k>`` columns a rule reads."""
    return sorted({int(k) for k in _LAG.findall(expression)})


def rule_columns(expression: str, known: list[str]) -> list[str]:
    """Every column a forecast rule may name: its lags, the step, calendar parts and the known covariates."""
    return [f"lag_{k}" for k in rule_lags(expression)] + list(CALENDAR_COLUMNS) + list(known)


def rule_frame(values: np.ndarray, ds: pd.DatetimeIndex, cut_pos: int, target_pos: np.ndarray,
               lags: list[int], known: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows a rule is evaluated on: ``lag_<k>`` = the value ``k`` steps before each target step, NULL
    unless it lies at or before the cut-off (position ``cut_pos`` in ``values``)."""
    target_pos = np.asarray(target_pos)
    out = {}
    for k in lags:
        src = target_pos - k
        ok = (src >= 0) & (src <= cut_pos)
        col = np.full(len(target_pos), np.nan)
        col[ok] = values[src[ok]]
        out[f"lag_{k}"] = col
    out["step"] = target_pos - cut_pos
    out["dayofweek"] = ds.day_of_week.to_numpy()   # the column keeps its name; the attribute is pandas 3's
    out["month"] = ds.month.to_numpy()
    out["dayofyear"] = ds.dayofyear.to_numpy()
    out["year"] = ds.year.to_numpy()
    frame = pd.DataFrame(out)
    if known is not None:
        for c in known.columns:
            frame[c] = known[c].to_numpy()
    return frame


class RuleForecaster(_Forecaster):
    """Today's rule as a SQL expression over ``lag_<k>`` (``k`` steps back), ``step``, calendar parts and the
    known covariates, e.g. ``1.05 * lag_364`` (same day last year plus 5%). A NULL (a lag after the cut-off,
    or before the history) falls back to seasonal naive."""

    def __init__(self, expression="", known=(), season_length=7, freq="D", horizon=1):
        self.expression = expression
        self.known = known
        self.season_length = season_length
        self.freq = freq
        self.horizon = horizon

    def fit(self, frame: pd.DataFrame | None = None):
        from ..rules import Rule

        self.rule_ = Rule(self.expression, rule_columns(self.expression, list(self.known)), kind="numeric",
                          where="baselines.rule")
        return self

    def forecast(self, history: pd.DataFrame, future: pd.DataFrame | None = None, h: int | None = None) -> pd.DataFrame:
        check_is_fitted(self, "rule_")
        h = int(h or self.horizon)
        known = list(self.known)
        steps = _future_covariates(history, future, h, self.freq, known)
        lags = rule_lags(self.expression)
        parts = []
        for uid, part in history.groupby(ID, observed=True, sort=False):
            values = part[Y].to_numpy(dtype=float)
            fut = steps[steps[ID] == uid]
            n = len(values)
            frame = rule_frame(values, pd.DatetimeIndex(fut[DS]), n - 1, np.arange(n, n + len(fut)), lags,
                               fut[known] if known else None)
            yhat = self.rule_.evaluate(frame)
            back = np.arange(n, n + len(fut)) - self.season_length * ((np.arange(len(fut)) // self.season_length) + 1)
            fallback = np.where(back >= 0, values[np.clip(back, 0, None)], values[-1])
            parts.append(pd.DataFrame({ID: uid, DS: fut[DS].to_numpy(), YHAT: np.where(np.isnan(yhat), fallback, yhat)}))
        if not parts:
            raise RuleError("the rule got no history to forecast from", "send the series' recent values")
        return pd.concat(parts, ignore_index=True)
