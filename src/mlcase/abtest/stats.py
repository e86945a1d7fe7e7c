"""The statistics behind :mod:`mlcase.abtest`: tests, intervals and corrections.

Functions taking summary statistics work element-wise on numpy arrays, so the
A/A simulation runs thousands of re-splits at once with the same code the
analysis uses. Each one matches its scipy/statsmodels counterpart (tested):
Welch's t (``scipy.stats.ttest_ind(equal_var=False)``), the pooled two-proportion
z-test (``statsmodels.stats.proportion.proportions_ztest``), Newcombe's hybrid
score interval (``confint_proportions_2indep(method="newcomb")``), Mann-Whitney
(``scipy.stats.mannwhitneyu``, asymptotic), Holm (tested against ``multipletests``; see
:func:`mlcase.numeric.holm` for why it is not called) and Benjamini-Hochberg (``multipletests`` itself).
"""

from __future__ import annotations

import math

import numpy as np

#: Kohavi, Tang & Xu (2020): Welch's t is adequate when each arm has more than 355 * skewness**2 units.
SKEW_RULE = 355.0
BOOTSTRAP_MIN_N = 100  # below this many units per arm a bootstrap CI of a skewed mean is not trusted either


def _z(alpha: float) -> float:
    from scipy import stats

    return float(stats.norm.isf(alpha / 2))


# --------------------------------------------------------------------------- means
def welch_from_stats(mc, vc, nc, mt, vt, nt, alpha: float = 0.05) -> dict:
    """Welch's t for ``treatment - control`` from means, variances (ddof=1) and counts.

    Returns ``diff, se, df, t, p_value, ci_low, ci_high`` (arrays when given arrays).
    """
    from scipy import stats

    mc, vc, nc, mt, vt, nt = (np.asarray(a, dtype=float) for a in (mc, vc, nc, mt, vt, nt))
    diff = mt - mc
    a, b = vt / nt, vc / nc
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (nt - 1) + b**2 / (nc - 1))
        t = diff / se
    df = np.where(np.isfinite(df), df, np.maximum(nt + nc - 2, 1))
    p = 2 * stats.t.sf(np.abs(t), df)
    zero = se == 0
    p = np.where(zero, np.where(diff == 0, 1.0, 0.0), p)
    crit = stats.t.isf(alpha / 2, df)
    out = {"diff": diff, "se": se, "df": df, "t": np.where(zero, 0.0, t), "p_value": p,
           "ci_low": diff - crit * se, "ci_high": diff + crit * se}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def welch(yc: np.ndarray, yt: np.ndarray, alpha: float = 0.05) -> dict:
    """Welch's t-test and CI of ``mean(yt) - mean(yc)``."""
    yc, yt = np.asarray(yc, float), np.asarray(yt, float)
    return welch_from_stats(yc.mean(), yc.var(ddof=1), len(yc), yt.mean(), yt.var(ddof=1), len(yt), alpha)


def relative_ci(mc, se_c, mt, se_t, alpha: float = 0.05) -> tuple[float, float, float]:
    """``mt / mc - 1`` and its delta-method CI (both means uncertain)."""
    if mc == 0 or not np.isfinite(mc):
        return (math.nan, math.nan, math.nan)
    rel = mt / mc - 1
    se = math.sqrt(se_t**2 / mc**2 + (mt**2) * se_c**2 / mc**4)
    z = _z(alpha)
    return (float(rel), float(rel - z * se), float(rel + z * se))


# --------------------------------------------------------------------------- proportions
def wilson(count, n, alpha: float = 0.05) -> tuple:
    """Wilson score interval of ``count / n`` (element-wise)."""
    count, n = np.asarray(count, float), np.asarray(n, float)
    z = _z(alpha)
    p = count / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def proportion_test(cc, nc, ct, nt, alpha: float = 0.05, ci: str = "newcombe") -> dict:
    """Pooled two-proportion z-test and CI of ``ct/nt - cc/nc`` (element-wise).

    ``ci="newcombe"`` is Newcombe's hybrid score interval (method 10), which
    keeps its coverage near 0 and 1; ``ci="wald"`` is the textbook interval.
    """
    from scipy import stats

    cc, nc, ct, nt = (np.asarray(a, dtype=float) for a in (cc, nc, ct, nt))
    pc, pt = cc / nc, ct / nt
    diff = pt - pc
    pool = (cc + ct) / (nc + nt)
    se0 = np.sqrt(pool * (1 - pool) * (1 / nc + 1 / nt))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se0 > 0, diff / se0, 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    se = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    if ci == "wald":
        zc = _z(alpha)
        lo, hi = diff - zc * se, diff + zc * se
    elif ci == "newcombe":
        lt, ut = wilson(ct, nt, alpha)
        lc, uc = wilson(cc, nc, alpha)
        lo = diff - np.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
        hi = diff + np.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
    else:
        raise ValueError(f"unknown proportion CI {ci!r}; use 'newcombe' or 'wald'")
    out = {"diff": diff, "se": se, "z": z, "p_value": p, "ci_low": lo, "ci_high": hi}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


# --------------------------------------------------------------------------- heavy tails
def skewness(y: np.ndarray) -> float:
    y = np.asarray(y, float)
    sd = y.std()
    if len(y) < 3 or sd == 0:
        return 0.0
    return float(np.mean((y - y.mean()) ** 3) / sd**3)


def bootstrap_moments(y: np.ndarray, n_boot: int, rng: np.random.Generator,
                      budget: int = 20_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Means and variances (ddof=1) of ``n_boot`` resamples of ``y``, vectorised in chunks of ``budget`` draws."""
    y = np.asarray(y, float)
    n = len(y)
    means, variances = np.empty(n_boot), np.empty(n_boot)
    step = max(1, budget // max(n, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        sample = y[rng.integers(0, n, size=(b, n))]
        means[start:start + b] = sample.mean(axis=1)
        variances[start:start + b] = sample.var(axis=1, ddof=1)
    return means, variances


def bootstrap_diff(yc: np.ndarray, yt: np.ndarray, alpha: float = 0.05, n_boot: int = 2000,
                   seed: int = 0) -> dict:
    """Symmetric bootstrap-t CI and p-value of ``mean(yt) - mean(yc)``.

    Each arm is resampled on its own. The studentised statistic
    ``|d* - d| / se*`` calibrates the interval ``d ± c·se`` and the p-value
    ``P(|t*| >= |d / se|)``. On skewed data it keeps its level where the
    percentile interval is too eager (Hall 1988; checked by the A/A tests).
    The relative difference uses the same ``c`` with its delta-method error.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        from ..errors import SpecError

        raise SpecError(f"n_boot {n_boot!r}: not a whole number of resamples", "pass n_boot=2000, say (at least 1)")
    rng = np.random.default_rng(seed)
    yc, yt = np.asarray(yc, float), np.asarray(yt, float)
    mc_b, vc_b = bootstrap_moments(yc, n_boot, rng)
    mt_b, vt_b = bootstrap_moments(yt, n_boot, rng)
    mc, mt = float(yc.mean()), float(yt.mean())
    se = math.sqrt(yc.var(ddof=1) / len(yc) + yt.var(ddof=1) / len(yt))
    diff = mt - mc
    se_b = np.sqrt(vc_b / len(yc) + vt_b / len(yt))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_b = np.abs((mt_b - mc_b) - diff) / se_b
    t_b = np.where(se_b > 0, t_b, 0.0)
    c = float(np.quantile(t_b, 1 - alpha))
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float((np.sum(t_b >= abs(diff) / se) + 1) / (n_boot + 1))
    if mc != 0:
        rel = mt / mc - 1
        se_rel = math.sqrt(yt.var(ddof=1) / len(yt) / mc**2 + mt**2 * yc.var(ddof=1) / len(yc) / mc**4)
        rlo, rhi = rel - c * se_rel, rel + c * se_rel
    else:
        rlo = rhi = math.nan
    return {"diff": diff, "se": se, "p_value": p, "ci_low": diff - c * se, "ci_high": diff + c * se,
            "critical": c, "rel_ci_low": float(rlo), "rel_ci_high": float(rhi), "n_boot": n_boot}


def mann_whitney_from_ranks(rank_sum_t, nc, nt, tie_term, alpha: float = 0.05) -> dict:
    """Asymptotic Mann-Whitney U test (continuity and tie corrected) from the treatment rank sum.

    ``tie_term`` is ``sum(t**3 - t)`` over tied groups of the pooled sample; it
    does not change under re-splitting, which keeps the A/A simulation vectorised.
    """
    from scipy import stats

    rank_sum_t, nc, nt = (np.asarray(a, float) for a in (rank_sum_t, nc, nt))
    n = nc + nt
    u_t = rank_sum_t - nt * (nt + 1) / 2
    mu = nc * nt / 2
    sigma = np.sqrt(nc * nt / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    u = np.maximum(u_t, nc * nt - u_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, (u - mu - 0.5) / sigma, 0.0)
    p = np.clip(2 * stats.norm.sf(z), 0, 1)
    out = {"u": u_t, "p_value": p, "auc": u_t / (nc * nt)}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def tie_term(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    counts = counts.astype(float)
    return float(np.sum(counts**3 - counts))


def mann_whitney(yc: np.ndarray, yt: np.ndarray, alpha: float = 0.05, max_pairs: int = 4_000_000,
                 seed: int = 0) -> dict:
    """Mann-Whitney U test plus the Hodges-Lehmann shift and its distribution-free CI.

    The shift is the median of all ``treatment - control`` differences; the CI
    takes the order statistics Lehmann's normal approximation points to. Above
    ``max_pairs`` pairs both arms are subsampled for the shift (the p-value
    always uses every unit).
    """
    from scipy import stats

    yc, yt = np.asarray(yc, float), np.asarray(yt, float)
    pooled = np.concatenate([yc, yt])
    ranks = stats.rankdata(pooled)
    res = mann_whitney_from_ranks(ranks[len(yc):].sum(), len(yc), len(yt), tie_term(pooled), alpha)
    c, t = yc, yt
    if len(c) * len(t) > max_pairs:
        rng = np.random.default_rng(seed)
        k = int(math.sqrt(max_pairs))
        c = rng.choice(c, min(k, len(c)), replace=False)
        t = rng.choice(t, min(k, len(t)), replace=False)
    d = np.sort((t[:, None] - c[None, :]).ravel())
    m, n, N = len(t), len(c), len(d)
    k = int(math.floor(m * n / 2 - _z(alpha) * math.sqrt(m * n * (m + n + 1) / 12)))
    k = min(max(k, 1), N)
    res.update(shift=float(np.median(d)), ci_low=float(d[k - 1]), ci_high=float(d[N - k]))
    return res


def winsor_caps(values: np.ndarray, q: float) -> tuple[float | None, float]:
    """Lower and upper caps at the pooled ``1 - q`` and ``q`` quantiles (no lower cap for non-negative data)."""
    values = np.asarray(values, float)
    upper = float(np.quantile(values, q))
    lower = float(np.quantile(values, 1 - q)) if values.min() < 0 else None
    return lower, upper


# --------------------------------------------------------------------------- corrections
from ..numeric import holm  # noqa: E402, F401  (one Holm for the A/B analysis and the slice search)


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``statsmodels.stats.multitest.multipletests``, ``fdr_bh``)."""
    return _adjusted(p, "fdr_bh")


def _adjusted(p, method: str) -> np.ndarray:
    """Adjusted p-values over the tests that have one; a NaN p-value (no test) stays NaN and is not counted."""
    p = np.asarray(p, float)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def srm(counts, shares) -> dict:
    """Chi-square test of observed units per arm against the planned shares."""
    from scipy import stats

    counts = np.asarray(counts, float)
    shares = np.asarray(shares, float) / np.sum(shares)
    expected = counts.sum() * shares
    chi2, p = stats.chisquare(counts, expected)
    return {"chi2": float(chi2), "p_value": float(p), "expected": expected.tolist()}


def binomial_band(n: int, alpha: float, level: float = 0.99) -> tuple[float, float]:
    """Range of false-positive rates consistent with ``alpha`` over ``n`` independent tests (binomial quantiles)."""
    from scipy import stats

    lo = stats.binom.ppf((1 - level) / 2, n, alpha) / n
    hi = stats.binom.isf((1 - level) / 2, n, alpha) / n
    return float(lo), float(hi)
