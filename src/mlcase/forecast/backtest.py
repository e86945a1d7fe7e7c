"""Rolling-origin backtests: every model forecasts ``horizon`` steps from every cut-off of a period.

Each function returns one long frame ``unique_id, ds, cutoff, step, y, <model>`` (one column
per model), the layout of statsforecast's and mlforecast's ``cross_validation``:

- :func:`stats_backtest`: statsforecast's ``cross_validation``, the local models refitted at
  every cut-off on the last ``input_size`` steps (AutoETS on 15 years of daily data takes
  ~60 s for 10 cut-offs on this box, ~3 s on the last year: measured, see the closing note);
- :func:`rule_backtest`: the spec's SQL rule per cut-off, lags after the cut-off NULL;
- :func:`learned_backtest`: mlforecast's ``cross_validation`` with ``refit=False``: the model is
  fitted once on the history before the period's first cut-off and then, as the origin rolls,
  reads the new actuals (not retrained), as a model retrained once per period would in use.
  Each series is scaled by the mean and sd of that same history.

``period`` is ``"backtest"`` (the cut-offs before the test period, on each series without its
test period) or ``"test"`` (the last cut-offs, on the whole series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import DS, ID, SeriesData, Y, drop_last
from .features import make_mlforecast, scale_frame, series_scale, steps, with_past_lags


def period_frame(data: SeriesData, period: str) -> tuple[pd.DataFrame, int]:
    """``(frame, n_windows)`` of a period: the backtest never sees the test period."""
    if period == "test":
        return data.frame, data.test_windows
    if period == "backtest":
        return data.before_test(), data.backtest_windows
    raise ValueError(f"period must be 'backtest' or 'test', got {period!r}")


def history_before(frame: pd.DataFrame, n_windows: int, data: SeriesData) -> pd.DataFrame:
    """Each series up to the first cut-off of a period of ``n_windows`` windows ending at the frame's end."""
    return drop_last(frame, (n_windows - 1) * data.step + data.horizon)


def _finish(cv: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    cv = cv.copy()
    cv[ID] = cv[ID].astype(str)
    cv = cv.sort_values([ID, "cutoff", DS], kind="stable").reset_index(drop=True)
    cv.insert(3, "step", steps(cv))
    return cv[[ID, DS, "cutoff", "step", Y, *names]]


def stats_backtest(data: SeriesData, kinds: list[str], period: str, input_size: int | None = None) -> pd.DataFrame:
    """statsforecast baselines over a period's cut-offs (refitted at each)."""
    from statsforecast import StatsForecast

    from .models import stats_model

    frame, n = period_frame(data, period)
    sf = StatsForecast(models=[stats_model(k, data.season_length) for k in kinds], freq=data.freq, n_jobs=1)
    cv = sf.cross_validation(df=frame[[ID, DS, Y]], h=data.horizon, n_windows=n, step_size=data.step,
                             input_size=input_size)
    return _finish(cv.reset_index() if ID not in cv.columns else cv, kinds)


def rule_backtest(data: SeriesData, expression: str, period: str, name: str = "rule") -> pd.DataFrame:
    """The SQL rule at every cut-off of a period (seasonal naive where it gives NULL)."""
    from ..rules import Rule
    from .models import rule_columns, rule_frame, rule_lags

    frame, n = period_frame(data, period)
    rule = Rule(expression, rule_columns(expression, data.known), kind="numeric", where="baselines.rule")
    lags, h, m = rule_lags(expression), data.horizon, data.season_length
    rows, frames = [], []
    for uid, part in frame.groupby(ID, observed=True, sort=False):
        values = part[Y].to_numpy(dtype=float)
        ds = pd.DatetimeIndex(part[DS])
        for k in range(n):
            cut = len(values) - h - (n - 1 - k) * data.step - 1
            target = np.arange(cut + 1, cut + 1 + h)
            known = part.iloc[target][data.known] if data.known else None
            frames.append(rule_frame(values, ds[target], cut, target, lags, known))
            back = target - m * (((target - cut - 1) // m) + 1)
            rows.append(pd.DataFrame({ID: uid, DS: ds[target], "cutoff": ds[cut], Y: values[target],
                                      "_fallback": values[np.clip(back, 0, None)]}))
    out = pd.concat(rows, ignore_index=True)
    yhat = rule.evaluate(pd.concat(frames, ignore_index=True))
    out[name] = np.where(np.isnan(yhat), out["_fallback"].to_numpy(), yhat)
    return _finish(out.drop(columns="_fallback"), [name])


def learned_backtest(data: SeriesData, recipe: dict, regressors: dict, period: str,
                     frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """mlforecast models (name -> unfitted regressor) over a period's cut-offs, fitted once before the first.

    ``frame`` replaces the period's data (tests alter the future and check nothing changes).
    """
    base, n = period_frame(data, period)
    frame = base if frame is None else frame
    df = with_past_lags(frame, recipe)
    scale = series_scale(history_before(df, n, data))
    fc = make_mlforecast(recipe, dict(regressors))
    cv = fc.cross_validation(df=scale_frame(df, scale), n_windows=n, h=data.horizon, step_size=data.step,
                             static_features=[], refit=False)
    cv = scale_frame(cv, scale, inverse=True, cols=(Y, *regressors))
    return _finish(cv, list(regressors))


def merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame with every model's column (frames from the same period share their rows)."""
    out = None
    for f in frames:
        if out is None:
            out = f
            continue
        cols = [c for c in f.columns if c not in (ID, DS, "cutoff", "step", Y)]
        out = out.merge(f[[ID, DS, "cutoff", *cols]], on=[ID, DS, "cutoff"], how="inner", validate="1:1")
    return out
