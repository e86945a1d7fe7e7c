"""The estimators realized performance rests on, each with its interval and the rows it used.

- :func:`proportion`: a share with its Wilson interval (statsmodels), for metrics
  on an unbiased sample such as the holdout arm;
- :func:`mean_ci`: a mean (cost per decision) with its t interval;
- :func:`weighted_ratio`: a ratio of inverse-probability-weighted totals (precision,
  recall and the positive rate of the whole population from the review and audit
  samples), with a Taylor-linearised variance under Poisson sampling;
- :func:`binary_metrics`: precision, recall, positive rate and accuracy of 0/1
  flags against 0/1 outcomes, each a :func:`proportion`;
- :func:`kappa`: Cohen's kappa of two raters with its asymptotic interval
  (statsmodels).

Every result is a dict with ``value``, ``low``, ``high`` and ``n`` (the rows it
rests on), so a report can always say how much evidence a number has.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def _none(n: int = 0) -> dict:
    return {"value": None, "low": None, "high": None, "n": int(n)}


def proportion(k: float, n: float) -> dict:
    """``k / n`` with its 95% Wilson interval (``statsmodels.stats.proportion.proportion_confint``)."""
    if n <= 0:
        return _none()
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(int(k), int(n), alpha=0.05, method="wilson")
    return {"value": float(k / n), "low": float(lo), "high": float(hi), "n": int(n)}


def mean_ci(x: np.ndarray) -> dict:
    """The mean of ``x`` with its 95% t interval (``statsmodels`` ``DescrStatsW``)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return _none()
    if len(x) == 1:
        return {"value": float(x[0]), "low": None, "high": None, "n": 1}
    from statsmodels.stats.weightstats import DescrStatsW

    lo, hi = DescrStatsW(x).tconfint_mean(alpha=0.05)
    return {"value": float(x.mean()), "low": float(lo), "high": float(hi), "n": int(len(x))}


def binary_metrics(y: np.ndarray, f: np.ndarray) -> dict:
    """Precision, recall, positive rate and accuracy of flags ``f`` against outcomes ``y`` (both 0/1)."""
    y = np.asarray(y, dtype=int)
    f = np.asarray(f, dtype=int)
    tp = int(((f == 1) & (y == 1)).sum())
    return {"precision": proportion(tp, int(f.sum())), "recall": proportion(tp, int(y.sum())),
            "positive_rate": proportion(int(y.sum()), len(y)), "flag_rate": proportion(int(f.sum()), len(y)),
            "accuracy": proportion(int((f == y).sum()), len(y))}


def weighted_ratio(a: np.ndarray, b: np.ndarray, pi: np.ndarray) -> dict:
    """``sum(a / pi) / sum(b / pi)`` over the sampled rows, with a 95% interval.

    ``pi`` is each row's inclusion probability (1 for a case that is always
    reviewed, the audit share for an audited automatic decision). The variance is
    the Taylor linearisation of the ratio under Poisson sampling,
    ``sum((1 - pi) / pi**2 * (a - R b)**2) / sum(b / pi)**2``, so a census stratum
    (``pi = 1``) adds none.

    Kept by hand, not from a survey library: samplics 0.6 (the maintained one on
    the package index) linearises ratios too, but its default design is
    with-replacement (no ``1 - pi`` factor, so a census stratum would add
    variance) and it pulls in polars, whose runtime wheel alone is 54 MB
    (``pip download polars-runtime-32``, 2026-12), for these three lines.
    tests/test_label_sources.py checks the interval's coverage over simulated
    deployments (recall 96.0%, positive rate 95.75% of 400 seeds in a run here).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    pi = np.asarray(pi, dtype=float)
    ok = pi > 0
    a, b, pi = a[ok], b[ok], pi[ok]
    n = int(len(a))
    w = 1.0 / pi
    den = float((w * b).sum())
    if n == 0 or den <= 0:
        return {**_none(n), "weighted_n": float(w.sum()) if n else 0.0}
    r = float((w * a).sum() / den)
    z = a - r * b
    var = float(((1.0 - pi) * (w * z) ** 2).sum()) / den ** 2
    sd = math.sqrt(max(var, 0.0))
    return {"value": r, "low": max(0.0, r - Z95 * sd), "high": min(1.0, r + Z95 * sd), "n": n,
            "weighted_n": float(w.sum()), "sd": sd}


def kappa(a, b) -> dict:
    """Cohen's kappa of two raters' labels ``a`` and ``b`` with its 95% asymptotic interval."""
    a = np.asarray(a).astype(str)
    b = np.asarray(b).astype(str)
    n = int(len(a))
    if n == 0:
        return {**_none(), "agreement": None}
    agree = float((a == b).mean())
    cats = sorted(set(a) | set(b))
    if len(cats) < 2:  # one category only: kappa is undefined, agreement is total
        return {**_none(n), "agreement": agree}
    from statsmodels.stats.inter_rater import cohens_kappa

    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    np.add.at(table, ([index[x] for x in a], [index[x] for x in b]), 1)
    with np.errstate(invalid="ignore"):  # total agreement: a variance of -1e-17 has no square root (no interval)
        res = cohens_kappa(table, return_results=True)
    value = float(res.kappa)
    if not math.isfinite(value):
        return {**_none(n), "agreement": agree}
    lo, hi = float(res.kappa_low), float(res.kappa_upp)
    return {"value": value, "low": max(-1.0, lo) if math.isfinite(lo) else None,
            "high": min(1.0, hi) if math.isfinite(hi) else None, "n": n, "agreement": agree}
