"""A/A simulation: the false-positive rate stays in a binomial band around alpha, and broken tests show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlcase.abtest import aa_test
from mlcase.abtest import stats as st
from mlcase.abtest.aa import simulate_pvalues
from mlcase.errors import DataError, MlcaseError


def band(n_sims, alpha, level=0.999):
    lo, hi = stats.binom.ppf([(1 - level) / 2, (1 + level) / 2], n_sims, alpha) / n_sims
    return lo, hi


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(42)
    n = 4000
    return pd.DataFrame({"user": np.arange(n), "orders": rng.poisson(2.0, n) + rng.normal(0, 1, n),
                         "converted": (rng.random(n) < 0.12).astype(int), "spend": rng.lognormal(0, 1.0, n)})


@pytest.mark.parametrize("metric,alpha", [("orders", 0.05), ("converted", 0.05), ("orders", 0.10)])
def test_false_positive_rate_within_binomial_band(history, metric, alpha):
    n_sims = 3000
    res = aa_test(history, metric, n_sims=n_sims, alpha=alpha, seed=1)
    m = res.metric(metric)
    lo, hi = band(n_sims, alpha)
    assert lo <= m["false_positive_rate"] <= hi
    assert m["within_band"]
    assert m["ks_uniform_p"] > 0.001 or metric == "converted"  # discrete p-values are not exactly uniform
    assert "keeps its false-positive rate" in res.conclusion


def test_unequal_split_and_mann_whitney_keep_alpha(history):
    res = aa_test(history, ["spend"], split="20/80", n_sims=2000, method="mann-whitney", seed=2)
    m = res.metric("spend")
    assert m["method"] == "mann-whitney"
    lo, hi = band(2000, 0.05)
    assert lo <= m["false_positive_rate"] <= hi
    assert res.split == [0.2, 0.8]


def test_vectorised_pvalues_equal_the_scalar_tests():
    rng = np.random.default_rng(3)
    y = np.round(rng.gamma(2, 3, 300), 1)
    masks = rng.random((5, 300)) < 0.5
    ranks = stats.rankdata(y)
    for mask in masks:
        yc, yt = y[~mask], y[mask]
        w = st.welch_from_stats(yc.mean(), yc.var(ddof=1), len(yc), yt.mean(), yt.var(ddof=1), len(yt))
        assert w["p_value"] == pytest.approx(stats.ttest_ind(yt, yc, equal_var=False).pvalue, rel=1e-9)
        mw = st.mann_whitney_from_ranks(ranks[mask].sum(), len(yc), len(yt), st.tie_term(y))
        assert mw["p_value"] == pytest.approx(stats.mannwhitneyu(yt, yc, method="asymptotic").pvalue, rel=1e-9)
    # the same p-values come out of the simulation when it draws the same masks
    p = simulate_pvalues(y, "mean", "welch", n_sims=5, seed=9)
    rng9 = np.random.default_rng(9)
    m9 = rng9.random((5, 300)) < 0.5
    ref = [stats.ttest_ind(y[m], y[~m], equal_var=False).pvalue for m in m9]
    np.testing.assert_allclose(p, ref, rtol=1e-8)


def test_dependent_rows_inflate_the_false_positive_rate():
    # 300 users with 8 near-identical rows each: splitting rows instead of users breaks independence
    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(300), 8)
    level = rng.normal(0, 3, 300)[users]
    df = pd.DataFrame({"user": users, "minutes": level + rng.normal(0, 0.5, len(users))})
    rows = aa_test(df, "minutes", unit="user", n_sims=1000, method="welch", seed=5)
    m = rows.metric("minutes")
    assert m["false_positive_rate"] > 0.3 and not m["within_band"]
    assert "too eager" in rows.conclusion and any("analysed as independent" in n for n in rows.notes)
    assert (m["n_rows"], m["n_units"]) == (2400, 300)
    per_user = aa_test(df, "minutes", unit="user", aggregate="mean", n_sims=1000, method="welch", seed=5)
    lo, hi = band(1000, 0.05)
    assert lo <= per_user.metric("minutes")["false_positive_rate"] <= hi
    assert per_user.metric("minutes")["n_units"] == 300


def test_bootstrap_and_winsorized_paths(history):
    small = history.iloc[:400]
    boot = aa_test(small, "spend", n_sims=60, method="bootstrap", seed=6)
    assert boot.metric("spend")["method"] == "bootstrap"
    assert 0 <= boot.metric("spend")["false_positive_rate"] <= 0.2
    assert any("bootstrap" in n for n in boot.notes)
    win = aa_test(history, "spend", n_sims=1500, winsorize=0.99, seed=7)
    assert win.metric("spend")["method"] == "winsorized"
    lo, hi = band(1500, 0.05)
    assert lo <= win.metric("spend")["false_positive_rate"] <= hi


def test_aa_errors(history):
    with pytest.raises(MlcaseError, match="two arms"):
        aa_test(history, "orders", split="34/33/33")
    with pytest.raises(MlcaseError, match="too few simulations"):
        aa_test(history, "orders", n_sims=5)
    with pytest.raises(DataError, match="no column 'revenue'"):
        aa_test(history, "revenue")
    dup = pd.concat([history, history.iloc[:3]])
    with pytest.raises(MlcaseError, match="--aggregate 'median' is not known"):
        aa_test(dup, "orders", unit="user", aggregate="median")
