"""Conformal prediction intervals per horizon step, calibrated on the backtest residuals.

Split conformal prediction (Vovk, Gammerman & Shafer 2005; Lei et al. 2018, "Distribution-free
predictive inference for regression"), applied to each horizon step on its own as in
Stankevičiūtė, Alaa & van der Schaar (2021), "Conformal time-series forecasting" (NeurIPS):
the step-``h`` forecasts of every backtest cut-off and series are the calibration set of step
``h``. The score is the absolute error scaled by the series' MASE scale, so series of different
size share one calibration set; the interval is ``yhat ± q_h · scale``, with ``q_h`` the
``ceil((n + 1)(1 - alpha))``-th smallest of the ``n`` scores (infinite when that exceeds ``n``).
When the scores are exchangeable with a future step's, its coverage is at least ``1 - alpha``
and, without ties, at most ``1 - alpha + 1/(n + 1)`` (marginally, for each step; not jointly
over the horizon: that would need a Bonferroni level ``alpha / H``).

Why not mlforecast's ``PredictionIntervals``: it takes ``np.quantile`` of the scores per series
and step without the ``(n + 1)`` correction, which under-covers with the few windows a backtest
has. Measured (20,000 simulated calibration sets of |N(0, 1)| scores, 90% target): with 10
windows ``np.quantile`` covers 83.3%, the conformal rank 90.9%; with 20, 86.4% and 90.5%; with
30, 87.4% and 90.3%. It also refits the model on extra windows of its own instead of reusing
the backtest's residuals.

The same residuals give the quantile forecast the costs call for: ``yhat + Q_q(residual_h) · scale``
(:func:`quantile_offsets`), the forecast that minimises ``under``/``over`` costs when ``q`` is
``under / (under + over)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .data import ID, Y


def conformal_level(n: int, alpha: float) -> int:
    """The rank ``ceil((n + 1)(1 - alpha))`` of the conformal quantile among ``n`` scores.

    >>> conformal_level(19, 0.1), conformal_level(8, 0.1)
    (18, 9)
    """
    return int(math.ceil((n + 1) * (1 - alpha) - 1e-12))


#: the widest alpha a fix or a draft suggests: an 80% interval needs 4 scores per step; fewer calibrate an
#: "interval" from two or three errors, which says little about the next one
MAX_SUGGESTED_ALPHA = 0.2


def widest_alpha(n: int) -> float | None:
    """The smallest ``alpha``, in steps of 0.05, whose interval ``n`` scores calibrate (None past
    :data:`MAX_SUGGESTED_ALPHA`)."""
    alpha = math.ceil(20 / (n + 1)) / 20 if n >= 1 else 1.0
    return alpha if alpha <= MAX_SUGGESTED_ALPHA + 1e-9 else None


def calibrate(cv: pd.DataFrame, model: str, scale: dict[str, float], alpha: float) -> dict:
    """Per-step conformal quantiles of ``model``'s scaled absolute errors in a backtest frame.

    Returns ``{"alpha", "steps": [1..H], "n": [...], "quantile": [... scaled; None when infinite]}``.
    """
    s = cv[ID].map(scale).to_numpy(dtype=float)
    score = np.abs(cv[Y].to_numpy(dtype=float) - cv[model].to_numpy(dtype=float)) / s
    steps = cv["step"].to_numpy()
    out = {"alpha": float(alpha), "method": "split conformal per horizon step (scaled absolute error)",
           "steps": [], "n": [], "quantile": []}
    for h in sorted(np.unique(steps)):
        v = np.sort(score[steps == h])
        v = v[np.isfinite(v)]
        k = conformal_level(len(v), alpha)
        out["steps"].append(int(h))
        out["n"].append(int(len(v)))
        out["quantile"].append(float(v[k - 1]) if 1 <= k <= len(v) else None)
    return out


def interval(cv: pd.DataFrame, model: str, scale: dict[str, float], cal: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` of ``model``'s forecasts in ``cv`` from a :func:`calibrate` result (inf where infinite)."""
    q = dict(zip(cal["steps"], [np.inf if v is None else v for v in cal["quantile"]], strict=True))
    width = cv["step"].map(q).to_numpy(dtype=float) * cv[ID].map(scale).to_numpy(dtype=float)
    yhat = cv[model].to_numpy(dtype=float)
    return yhat - width, yhat + width


def coverage(cv: pd.DataFrame, model: str, scale: dict[str, float], cal: dict) -> dict:
    """Measured coverage of the intervals in ``cv`` per step, with the theory's bound and whether it holds."""
    from ..conformal.evaluation import COVERAGE_SDS, coverage_sd

    lo, hi = interval(cv, model, scale, cal)
    y = cv[Y].to_numpy(dtype=float)
    inside = (y >= lo) & (y <= hi)
    width = hi - lo
    rows = []
    alpha = cal["alpha"]
    for h, n_cal in zip(cal["steps"], cal["n"], strict=True):
        mask = cv["step"].to_numpy() == h
        n_test = int(mask.sum())
        if not n_test:
            continue
        cov = float(inside[mask].mean())
        lo_b, hi_b = 1 - alpha, min(1.0, 1 - alpha + 1 / (n_cal + 1))
        sd = coverage_sd(n_cal, alpha, n_test)
        band = [max(0.0, lo_b - COVERAGE_SDS * sd), min(1.0, hi_b + COVERAGE_SDS * sd)]
        rows.append({"step": int(h), "coverage": cov, "n_test": n_test, "n_calibration": int(n_cal),
                     "bounds": [lo_b, hi_b], "band": band, "ok": bool(band[0] <= cov <= band[1]),
                     "mean_width": float(np.mean(width[mask])) if np.isfinite(width[mask]).all() else None})
    overall = float(inside.mean()) if len(inside) else None
    bad = [r["step"] for r in rows if not r["ok"]]
    note = None
    if bad:
        low = [r["step"] for r in rows if not r["ok"] and r["coverage"] < r["band"][0]]
        note = (f"coverage is outside its statistical bound at step(s) {', '.join(map(str, bad[:8]))}"
                + (": the test period is not like the backtest windows (drift), so the intervals cannot be trusted "
                   "at their stated level there" if low else ": the intervals are conservative there"))
    return {"alpha": alpha, "target": 1 - alpha, "coverage": overall, "by_step": rows, "ok": not bad,
            "note": note, "sds": COVERAGE_SDS}


def quantile_offsets(cv: pd.DataFrame, model: str, scale: dict[str, float], q: float) -> dict[int, float]:
    """Per step, the ``q``-quantile of ``model``'s scaled signed residuals ``(y - yhat) / scale`` in ``cv``."""
    s = cv[ID].map(scale).to_numpy(dtype=float)
    r = (cv[Y].to_numpy(dtype=float) - cv[model].to_numpy(dtype=float)) / s
    steps = cv["step"].to_numpy()
    return {int(h): float(np.quantile(r[steps == h], q)) for h in sorted(np.unique(steps))}


def quantile_forecast(cv: pd.DataFrame, model: str, scale: dict[str, float], offsets: dict[int, float]) -> np.ndarray:
    """``yhat + offset_h · scale``: the forecast at the chosen quantile."""
    off = cv["step"].map(offsets).fillna(0.0).to_numpy(dtype=float)
    return cv[model].to_numpy(dtype=float) + off * cv[ID].map(scale).to_numpy(dtype=float)
