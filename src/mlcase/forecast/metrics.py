"""Forecast accuracy and money: MASE, sMAPE, RMSE, pinball loss, cost at the quantile; paired bootstrap.

The headline numbers are utilsforecast's losses (``mase``, ``smape``, ``rmse``,
``quantile_loss``), each computed per series and averaged over series, overall and per
horizon step. MASE scales each series' absolute errors by the mean absolute seasonal
difference of that series' history before the period's first cut-off (Hyndman & Koehler
2006). Its sMAPE is ``|y - yhat| / (|y| + |yhat|)`` (0 to 1).

Lifts carry 95% bootstrap CIs over (series, cut-off) blocks: every block (one series' ``H``
forecasts from one cut-off) is drawn whole, the same draws for every model, so the errors of
one forecast stay together and every comparison is paired.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import DS, ID, Y


def mase_scale(history: pd.DataFrame, season: int) -> dict[str, float]:
    """Per series, ``mean |y_t - y_{t-m}|`` of its history (m = 1 when the history is shorter than two seasons)."""
    out = {}
    for uid, part in history.groupby(ID, observed=True, sort=False):
        y = part[Y].to_numpy(dtype=float)
        m = season if len(y) > season else 1
        d = np.abs(y[m:] - y[:-m]) if len(y) > m else np.array([])
        v = float(d.mean()) if len(d) else 0.0
        out[str(uid)] = v if v > 0 else (float(np.abs(y).mean()) or 1.0)
    return out


def _train_df(history: pd.DataFrame) -> pd.DataFrame:
    return history[[ID, DS, Y]].assign(**{ID: history[ID].astype(str)})


def accuracy(cv: pd.DataFrame, models: list[str], history: pd.DataFrame, season: int) -> dict[str, dict]:
    """MASE, sMAPE and RMSE per model, overall and per step (lists in step order), from utilsforecast."""
    from utilsforecast.losses import mase, rmse, smape

    train = _train_df(history)
    m = season if train.groupby(ID, observed=True).size().min() > season else 1
    out = {}
    parts = [("all", cv)] + [(int(h), g) for h, g in cv.groupby("step", sort=True)]
    for name in models:
        out[name] = {"mase": None, "smape": None, "rmse": None, "by_step": {"mase": [], "smape": [], "rmse": []}}
    for key, part in parts:
        df = part[[ID, DS, Y, *models]]
        values = {"mase": mase(df, models, seasonality=m, train_df=train),
                  "smape": smape(df, models), "rmse": rmse(df, models)}
        for metric, table in values.items():
            for name in models:
                v = float(table[name].mean())
                if key == "all":
                    out[name][metric] = v
                else:
                    out[name]["by_step"][metric].append(v)
    return out


def pinball(cv: pd.DataFrame, forecast: np.ndarray, q: float) -> dict:
    """Pinball (quantile) loss at ``q`` of a forecast column, overall and per step (utilsforecast)."""
    from utilsforecast.losses import quantile_loss

    df = cv[[ID, DS, Y, "step"]].assign(f=forecast)
    overall = float(quantile_loss(df[[ID, DS, Y, "f"]], {"f": "f"}, q=q)["f"].mean())
    by_step = [float(quantile_loss(g[[ID, DS, Y, "f"]], {"f": "f"}, q=q)["f"].mean())
               for _, g in df.groupby("step", sort=True)]
    return {"q": float(q), "pinball": overall, "by_step": by_step}


def unit_costs(y: np.ndarray, forecast: np.ndarray, under: float, over: float) -> np.ndarray:
    """Money per forecast point: ``under`` per unit the actual exceeds it, ``over`` per unit it exceeds the actual."""
    e = np.asarray(y, dtype=float) - np.asarray(forecast, dtype=float)
    return np.where(e > 0, under * e, -over * e)


def scaled_errors(cv: pd.DataFrame, model: str, scale: dict[str, float]) -> np.ndarray:
    """``|y - yhat| / scale`` per row: the pieces whose per-series mean is MASE."""
    s = cv[ID].map(scale).to_numpy(dtype=float)
    return np.abs(cv[Y].to_numpy(dtype=float) - cv[model].to_numpy(dtype=float)) / s


class Blocks:
    """Paired bootstrap over (series, cut-off) blocks: :meth:`lift` of one per-row array over another.

    ``mean`` of a per-row array is the mean over series of its per-series mean (every block of a
    period holds ``H`` rows and every series the same number of blocks, so that is the mean of
    the block means), which for scaled errors is the MASE.
    """

    def __init__(self, cv: pd.DataFrame, n_boot: int = 1000, seed: int = 0):
        key = cv[ID].astype(str) + "\x00" + cv["cutoff"].astype(str)
        self.codes, uniques = pd.factorize(key, sort=False)
        self.n_blocks = len(uniques)
        self.counts = np.bincount(self.codes, minlength=self.n_blocks).astype(float)
        rng = np.random.default_rng(seed)
        self.draws = rng.integers(0, self.n_blocks, size=(n_boot, self.n_blocks))
        self.n_series = int(cv[ID].nunique())
        self.n_cutoffs = int(cv["cutoff"].nunique())

    def block_means(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=np.asarray(values, dtype=float), minlength=self.n_blocks) / self.counts

    def mean(self, values: np.ndarray) -> float:
        return float(self.block_means(values).mean())

    def lift(self, baseline: np.ndarray, model: np.ndarray) -> dict:
        """``mean(baseline) - mean(model)`` (positive: the model's loss is lower) with a 95% percentile CI."""
        diff = self.block_means(baseline) - self.block_means(model)
        boots = diff[self.draws].mean(axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return {"estimate": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi),
                "sd": float(boots.std(ddof=1)), "blocks": int(self.n_blocks), "series": self.n_series,
                "cutoffs": self.n_cutoffs}
