"""A/A simulation: does the analysis keep its false-positive rate on *your* data?

Historical units are re-split at random many times (no treatment at all), and
each split is analysed with the test the A/B analysis would use. With a valid
test the share of "significant" results is about ``alpha``; a rate outside the
binomial band around ``alpha`` means the test is wrong for this metric (heavy
tails, clustered units, too few units). The re-splits are a matrix, so a
thousand simulations cost a few matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..arguments import whole_number
from ..errors import DataError, MlcaseError
from . import stats as st
from .analyze import METHODS, check_options, choose_method
from .frames import _Rows, numeric_metric, read_frame

MAX_SIMS = 100_000


@dataclass
class AAResult:
    """False-positive rates of the A/A simulation; ``to_dict()`` for JSON."""

    alpha: float
    n_sims: int
    split: list[float]
    metrics: list[dict]
    conclusion: str
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str) -> dict:
        for m in self.metrics:
            if m["metric"] == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "n_sims": self.n_sims, "split": self.split, "seed": self.seed,
                "metrics": self.metrics, "notes": self.notes,
                "conclusion": self.conclusion}


def _masks(n: int, share_t: float, n_sims: int, rng: np.random.Generator, budget: int,
           groups: np.ndarray | None = None):
    """Chunks of a boolean matrix (sims x rows): True = the row is in the pseudo-treatment arm.

    With ``groups`` (a unit code per row) whole units are re-split, as the real assignment does.
    """
    n_draw = n if groups is None else int(groups.max()) + 1
    step = max(1, budget // max(n, 1))
    for start in range(0, n_sims, step):
        b = min(step, n_sims - start)
        draw = rng.random((b, n_draw)) < share_t
        yield draw if groups is None else draw[:, groups]


def simulate_pvalues(y: np.ndarray, kind: str, method: str, n_sims: int = 1000, share_t: float = 0.5,
                     alpha: float = 0.05, seed: int = 0, winsorize: float | None = None,
                     proportion_ci: str = "newcombe", n_boot: int = 200, budget: int = 5_000_000,
                     groups: np.ndarray | None = None) -> np.ndarray:
    """P-values of ``n_sims`` random re-splits of ``y`` analysed with ``method``.

    Welch (plain or winsorized), the proportion z-test and Mann-Whitney run as
    matrix products over all re-splits; the bootstrap loops (``n_boot`` resamples
    each). ``groups`` (unit code per row) re-splits whole units while the test
    still treats rows as independent: the A/A rate then shows what analysing
    rows instead of units costs.
    """
    y = np.asarray(y, float)
    rng = np.random.default_rng(seed)
    out = []
    if kind == "mean" and method == "winsorized":
        lower, upper = st.winsor_caps(y, winsorize or 0.99)
        y = np.clip(y, lower, upper)
        method = "welch"
    ranks = ties = None
    if kind == "mean" and method == "mann-whitney":
        from scipy import stats

        ranks = stats.rankdata(y)
        ties = st.tie_term(y)
    yc_ = y - y.mean()  # centred: sums of squares without cancellation
    total, total_sq = yc_.sum(), (yc_**2).sum()
    n = len(y)
    # a split that leaves an arm with fewer than 2 units is NaN, as the analysis refuses it: such splits were counted
    # "not significant" (ToothGrowth re-split 3/97 left the pseudo-treatment 0 or 1 guinea pigs in 47% of the splits,
    # and Welch's 12.5% over the others read as 6.6%, "within the band"); their divisions by zero are silent
    with np.errstate(all="ignore"):
        for mask in _masks(n, share_t, n_sims, rng, budget, groups):
            m = mask.astype(float)
            nt = m.sum(axis=1)
            nc = n - nt
            tested = (nt >= 2) & (nc >= 2)
            if kind == "proportion":
                ct = m @ y
                r = st.proportion_test(y.sum() - ct, nc, ct, nt, alpha, proportion_ci)
                p = r["p_value"]
            elif method == "welch":
                st_, sq_t = m @ yc_, m @ (yc_**2)
                mt, mc = st_ / nt, (total - st_) / nc
                vt = (sq_t - nt * mt**2) / (nt - 1)
                vc = (total_sq - sq_t - nc * mc**2) / (nc - 1)
                p = st.welch_from_stats(mc, vc, nc, mt, vt, nt, alpha)["p_value"]
            elif method == "mann-whitney":
                p = st.mann_whitney_from_ranks(m @ ranks, nc, nt, ties, alpha)["p_value"]
            elif method == "bootstrap":
                p = np.asarray([st.bootstrap_diff(y[~row], y[row], alpha, n_boot=n_boot, seed=seed + i)["p_value"]
                                if ok else np.nan for i, (row, ok) in enumerate(zip(mask, tested, strict=True))])
            else:
                raise MlcaseError(f"--method {method!r} is not known", "use auto, welch, bootstrap, mann-whitney or winsorized")
            out.append(np.where(tested, np.asarray(p, dtype=float), np.nan))
    return np.concatenate([np.atleast_1d(p) for p in out])


def aa_test(data: pd.DataFrame | str | Path, metrics: Sequence[str] | str, *, split: str | Sequence[float] = "50/50",
            n_sims: int = 1000, alpha: float = 0.05, method: str = "auto", winsorize: float | None = None,
            unit: str | None = None, aggregate: str | None = None, proportion_ci: str = "newcombe",
            n_boot: int = 200, seed: int = 0) -> AAResult:
    """Run an A/A simulation on historical data.

    Parameters
    ----------
    data : DataFrame or path
        Past units, one row each. With ``unit``, whole units are re-split (as the
        real assignment does); rows of a unit are then combined by ``aggregate``,
        or, without it, analysed as independent rows, which the A/A rate exposes.
    metrics : str or list of str
        Metric columns to check.
    split : str or sequence
        The planned two-way split, control first (``"50/50"``, ``"10/90"``).
    n_sims : int
        Number of random re-splits.
    method : str
        As in :func:`mlcase.abtest.analyze`; ``auto`` picks the test the analysis would pick.

    Returns
    -------
    AAResult
        Per metric: the false-positive rate, its 99% binomial band around
        ``alpha``, whether it is inside, and a Kolmogorov-Smirnov check that the
        p-values are uniform.
    """
    from scipy import stats

    from .assign import parse_split

    from_file = not isinstance(data, pd.DataFrame)
    df = (read_frame(data) if from_file else data.copy()).reset_index(drop=True)
    rows = _Rows(from_file)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    shares = parse_split(split)
    if len(shares) != 2:
        raise MlcaseError(f"--split {split!r}: the A/A simulation re-splits into two arms", "pass a two-way split like 50/50")
    n_sims = whole_number(n_sims, "--sims", "a whole number of re-splits", "pass --sims 1000")
    if n_sims < 20:
        raise MlcaseError(f"--sims {n_sims}: too few simulations to estimate a false-positive rate", "pass --sims 1000")
    if n_sims > MAX_SIMS:
        # --sims 1000000000 ran for hours towards a p-value array of 8 GB
        raise MlcaseError(f"--sims {n_sims:,}: more re-splits than the check needs (at {MAX_SIMS:,} the 99% band is "
                          "within 0.2 points of alpha)", f"pass --sims 1000 (at most {MAX_SIMS:,})")
    # --seed -1 was an internal error (numpy's generator takes no negative seed)
    seed = whole_number(seed, "--seed", "a seed (a whole number of at least 0)", "pass e.g. --seed 0", minimum=0)
    if not 0 < alpha < 1:
        raise MlcaseError(f"--alpha must be between 0 and 1, got {alpha}", "pass e.g. --alpha 0.05")
    if winsorize is not None and not 0.5 < winsorize < 1:
        raise MlcaseError(f"--winsorize must be a quantile between 0.5 and 1, got {winsorize}",
                          "pass e.g. --winsorize 0.99")
    if method not in METHODS:
        raise MlcaseError(f"--method {method!r} is not known", f"use one of {', '.join(METHODS)}")
    check_options(aggregate=aggregate, proportion_ci=proportion_ci)
    for col in metrics + ([unit] if unit else []):
        if col not in df.columns:
            raise DataError(f"no column {col!r}; the columns are {', '.join(map(str, df.columns[:20]))}",
                            "pass --metric (and --unit) with columns of the data", column=col)
    values = pd.DataFrame({col: numeric_metric(df[col], col, rows) for col in metrics})
    notes = []
    codes = None
    if unit:
        ids = df[unit].astype("string")
        if ids.duplicated().any():
            if aggregate is None:
                codes = pd.factorize(ids)[0]
                notes.append(f"{unit!r} repeats: whole units are re-split but each row is analysed as independent "
                             "(pass --aggregate to analyse one value per unit)")
            else:
                if aggregate not in ("sum", "mean", "max", "first"):
                    raise MlcaseError(f"--aggregate {aggregate!r} is not known", "use sum, mean, max or first")
                values = values.groupby(ids.to_numpy(), sort=False).agg(aggregate)
                notes.append(f"rows combined per unit by {aggregate}: {len(values):,} units")
    out = []
    rng = np.random.default_rng(seed)
    for i, col in enumerate(metrics):
        present = values[col].notna().to_numpy()
        y = values[col].to_numpy(float)[present]
        groups = None if codes is None else pd.factorize(codes[present])[0]
        if len(y) < 20:
            raise DataError(f"metric {col!r}: {len(y)} values are too few for an A/A simulation", "use more history")
        if groups is not None and groups.max() + 1 < 20:
            # ToothGrowth with --unit supp (2 units of 30 rows): half the re-splits put both in one arm, and the
            # rest said "0.0% significant: the test is conservative"
            raise DataError(f"metric {col!r}: {groups.max() + 1} units of {unit!r} are too few for an A/A simulation "
                            "(whole units are re-split)", "use more history, or check that --unit names the unit id",
                            column=unit)
        kind = "proportion" if np.isin(y, (0.0, 1.0)).all() else "mean"
        reason = "0/1 values: the pooled two-proportion z-test"
        chosen = "z-test"
        if kind == "mean":
            probe = rng.random(len(y)) < shares[1]
            chosen, reason, _ = choose_method(y[~probe], y[probe], method, winsorize)
            if chosen == "bootstrap":
                notes.append(f"{col}: each of the {n_sims} splits runs a {n_boot}-resample bootstrap (the slow path)")
        p = simulate_pvalues(y, kind, chosen, n_sims, shares[1], alpha, seed + 1000 * i, winsorize, proportion_ci,
                             n_boot, groups=groups)
        tested = np.isfinite(p)
        n_tested = int(tested.sum())
        if n_tested < 20:
            raise DataError(f"metric {col!r}: {n_sims - n_tested} of {n_sims} re-splits left an arm with fewer than 2 "
                            f"units (a {'/'.join(f'{s * 100:g}' for s in shares)} split of {len(y)} values)",
                            "use more history or a less lopsided --split")
        if n_tested < n_sims:
            notes.append(f"{col}: {n_sims - n_tested} of {n_sims} re-splits left an arm with fewer than 2 units, which "
                         f"the analysis refuses; the rate is over the other {n_tested}")
        p = p[tested]
        band = st.binomial_band(n_tested, alpha)
        fpr = float(np.mean(p < alpha))
        ks = stats.kstest(p, "uniform")
        within = band[0] <= fpr <= band[1]
        out.append({"metric": col, "kind": kind, "method": chosen, "method_reason": reason, "n_rows": int(len(y)),
                    "n_units": int(len(y) if groups is None else groups.max() + 1),
                    "n_splits_tested": n_tested, "false_positive_rate": fpr, "expected": alpha, "band_99": list(band), "within_band": bool(within),
                    "ks_uniform_p": float(ks.pvalue), "p_values_quantiles": np.quantile(p, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist()})
    return AAResult(alpha=alpha, n_sims=n_sims, split=shares, metrics=out,
                    conclusion=_conclude(out, alpha, n_sims), seed=seed, notes=notes)


def _conclude(rows: list[dict], alpha: float, n_sims: int) -> str:
    parts = []
    for r in rows:
        lo, hi = r["band_99"]
        head = (f"{r['metric']} ({r['method']}): {r['false_positive_rate']:.1%} of {r['n_splits_tested']} A/A splits were 'significant' "
                f"at alpha {alpha:g}")
        if r["within_band"]:
            parts.append(f"{head}, within the 99% band {lo:.1%}-{hi:.1%} around {alpha:.0%}: the analysis keeps its "
                         "false-positive rate on this data.")
        elif r["false_positive_rate"] > hi:
            parts.append(f"{head}, above the 99% band {lo:.1%}-{hi:.1%}: the test is too eager on this metric "
                         "(heavy tail or dependent rows); try --winsorize 0.99, another --method, or one row per unit.")
        else:
            parts.append(f"{head}, below the 99% band {lo:.1%}-{hi:.1%}: the test is conservative here, and "
                         "loses power.")
    return " ".join(parts)

