"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE).

The idea behind NannyML's CBPE: given calibrated probabilities, each row's
outcome is an independent Bernoulli(p), so the expected confusion counts (and
the business cost) follow from the probabilities alone, with a band for the
sampling spread of the realized value.
"""

from __future__ import annotations

import math

import numpy as np

BAND_Z = 1.959963984540054  # 95% band of the estimated performance


def cbpe(p: np.ndarray, f: np.ndarray, costs=None) -> dict:
    """Performance expected from calibrated probabilities ``p`` and decisions ``f`` (1 = flag), with a 95% band.

    Given the probabilities, each row's outcome is an independent Bernoulli(p), so
    the expected confusion counts are sums of ``p`` and ``1 - p`` and the band is
    the sampling spread of the realized value around them (delta method for the
    ratios).
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    f = np.asarray(f, dtype=float)
    n = len(p)
    v = p * (1 - p)
    etp = float((f * p).sum())
    n_flag = float(f.sum())
    n_pos = float(p.sum())

    def band(value, sd, lo=0.0, hi=1.0):
        if value is None:
            return {"value": None, "low": None, "high": None}
        return {"value": float(value), "low": float(max(lo, value - BAND_Z * sd)),
                "high": float(min(hi, value + BAND_Z * sd)), "sd": float(sd)}

    q = f * p + (1 - f) * (1 - p)  # P(the decision is right)
    out = {"accuracy": band(q.mean(), math.sqrt((q * (1 - q)).sum()) / n),
           "positive_rate": band(n_pos / n, math.sqrt(v.sum()) / n),
           "flag_rate": float(n_flag / n)}
    a = float((f * v).sum())
    out["precision"] = band(etp / n_flag, math.sqrt(a) / n_flag) if n_flag > 0 else band(None, 0)
    if n_pos > 0:
        r = etp / n_pos
        var = (a - 2 * r * a + r * r * float(v.sum())) / n_pos ** 2
        out["recall"] = band(r, math.sqrt(max(var, 0.0)))
    else:
        out["recall"] = band(None, 0)
    if costs is not None:
        c1 = costs.of(np.ones(n), f)  # cost of the row if it is positive
        c0 = costs.of(np.zeros(n), f)
        mean = float((p * c1 + (1 - p) * c0).mean())
        sd = math.sqrt(float((v * (c1 - c0) ** 2).sum())) / n
        out["cost"] = band(mean, sd, lo=-math.inf, hi=math.inf)
        out["cost_total"] = float(mean * n)
    return out
