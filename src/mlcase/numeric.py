"""Small numeric helpers that must not fail on degenerate data (constant or near-constant values)."""

from __future__ import annotations

import numpy as np


def histogram(values, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram`` of the finite values that never raises on (near-)constant data.

    numpy refuses to cut ``bins`` finite-sized bins when the values differ only by
    floating-point rounding (``Too many bins for data range``): absolute-residual
    conformal intervals, for example, all have the same width up to rounding.
    Values closer together than 8 float steps per bin are counted as one bin
    ``[min, max]``; no finite value gives ``([], [])``.

    >>> histogram([1.0, 1.0 + 1e-16, 1.0])
    (array([3]), array([1., 1.]))
    """
    v = np.asarray(values, dtype="float64").ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.array([], dtype=int), np.array([], dtype="float64")
    lo, hi = float(v.min()), float(v.max())
    bins = max(1, int(bins))
    if hi - lo <= 8 * bins * float(np.spacing(max(abs(lo), abs(hi)))):
        return np.array([len(v)]), np.array([lo, hi])
    return np.histogram(v, bins=bins)


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values, as ``statsmodels``' ``multipletests(p, method="holm")[1]``.

    Kept by hand on purpose: statsmodels 0.15's ``holm`` branch runs ``gc.collect()`` on every call,
    measured at 64-85 ms per call in a process holding a few hundred thousand objects (its ``fdr_bh``
    takes 0.01 ms), and the slice search and the A/B analysis call it many times; these numpy lines take
    microseconds. Tested equal to statsmodels in ``tests/test_abtest_analyze.py`` and
    ``tests/test_analysis_slices.py``. A NaN p-value (no test) stays NaN and is not counted.

    >>> holm([0.01, 0.04, float("nan"), 0.03]).round(3).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    p = np.asarray(p, float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="mergesort")]
        out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return out


#: a gain counts when it exceeds this many standard errors of the paired per-row differences (the ensemble's rule
#: in :mod:`mlcase.bakeoff.ensemble` and the calibration's in :mod:`mlcase.evaluate.calibration`)
NOISE_Z = 2.0


def mean_se(d, groups=None) -> tuple[float, float]:
    """Mean and standard error of paired per-row differences ``d`` (an infinite error for a single one).

    With ``groups``, the error is cluster-robust (the sandwich estimate over groups, with the small-sample
    factor G / (G - 1)): rows of one group move together, and counting them as independent would shrink
    the error by up to the square root of the group size. One group gives an infinite error.

    >>> mean_se([1.0, 2.0, 3.0])
    (2.0, 0.5773502691896258)
    >>> mean_se([1.0, 1.0, 3.0, 3.0], groups=["a", "a", "b", "b"])
    (2.0, 1.0)
    """
    d = np.asarray(d, dtype="float64")
    mean = float(d.mean())
    if groups is None:
        return mean, (float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf"))
    import pandas as pd

    codes, uniq = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), use_na_sentinel=False)
    g = len(uniq)
    if g < 2:
        return mean, float("inf")
    per = np.bincount(codes, weights=d - mean, minlength=g)  # each group's summed deviation
    return mean, float(np.sqrt(g / (g - 1) * np.sum(per ** 2)) / len(d))


def sig(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits without an exponent, for notes people read.

    A per-row loss difference is often around 1e-4; ``f"{v:.3g}"`` would print ``9.06e-05``.

    >>> sig(-9.06123e-05), sig(0.00131), sig(12.345), sig(0.5, 4)
    ('-0.0000906', '0.00131', '12.3', '0.5')
    """
    return np.format_float_positional(float(v), precision=digits, unique=False, fractional=False, trim="-")
