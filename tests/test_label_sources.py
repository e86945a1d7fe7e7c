"""Realized performance by label source, tested statistically on simulated deployments with a known truth.

Each deployment (tests/label_sim.py) holds out 20% of units, and on the model's arm a flag
prevents the bad outcome, so the model arm's delayed outcomes say every flag was wrong. Over
many seeds the holdout's interval must cover the model's true precision at about its nominal
rate, the audit-weighted recall must be unbiased with honest intervals, and the naive view
must stay wrong.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import cohen_kappa_score

from mlcase.monitor.estimators import kappa, proportion, weighted_ratio
from mlcase.monitor.label_sources import summarize, window_parts
from tests.label_sim import deploy, population, truth

SEEDS = 200


def y_of(s):
    return s.astype(float).to_numpy()


def coverage_band(n: int, level: float = 0.95) -> tuple[float, float]:
    """The share of n independent 95% intervals covering the truth lies here with probability 0.998."""
    return binom.ppf(0.001, n, level) / n, binom.ppf(0.999, n, level) / n


def run(seed: int, n: int = 3000, **kw):
    pop = population(n, seed)
    log = deploy(pop, seed, **kw)
    return summarize(window_parts(log, y_of, None)), truth(pop, log), log


def test_holdout_recovers_the_precision_the_acted_labels_hide():
    covered, acted, estimates, truths = 0, [], [], []
    for seed in range(SEEDS):
        out, t, _ = run(seed)
        h = out["holdout"]["precision"]
        covered += h["low"] <= t["precision"] <= h["high"]
        acted.append(out["acted"]["precision"]["value"])
        estimates.append(h["value"])
        truths.append(t["precision"])
        assert out["bias"]["precision"]["outside"]  # every single deployment calls the acted labels biased
    lo, hi = coverage_band(SEEDS)
    assert lo <= covered / SEEDS <= hi, covered / SEEDS
    assert max(acted) == 0.0  # the model's action prevented every bad outcome it flagged
    assert abs(np.mean(estimates) - np.mean(truths)) < 0.01  # unbiased
    assert 0.6 < np.mean(truths) < 0.8


def test_audit_weighted_recall_matches_the_truth():
    covered = {"recall": 0, "positive_rate": 0}
    errors = []
    for seed in range(SEEDS):
        out, t, log = run(seed)
        a = out["audit"]
        for m in covered:
            covered[m] += a[m]["low"] <= t[m] <= a[m]["high"]
        errors.append(a["recall"]["value"] - t["recall"])
        # every flagged case is reviewed: the audit's precision is the flagged cases' own (a census)
        flagged = log["_dec"].to_numpy() == "flag"
        assert a["precision"]["value"] == pytest.approx(log["y"].to_numpy()[flagged].mean(), abs=1e-12)
    lo, hi = coverage_band(SEEDS)
    for m, c in covered.items():
        assert lo <= c / SEEDS <= hi, (m, c / SEEDS)
    assert abs(np.mean(errors)) < 0.01


def test_cases_not_reviewed_yet_are_stood_in_for_by_their_stratum():
    """Half the audited cases still wait for a verdict: the estimate stays unbiased, the interval widens."""
    errs, widths = [], []
    for seed in range(60):
        pop = population(3000, seed)
        log = deploy(pop, seed)
        full = summarize(window_parts(log, y_of, None))["audit"]["recall"]
        waiting = (log["_audit"] == 1) & (np.random.default_rng(seed).random(len(log)) < 0.5)
        log.loc[waiting, "_rlabel"] = None
        part = summarize(window_parts(log, y_of, None))["audit"]
        assert part["reviewed_share"]["audit"] < 0.6 and part["reviewed_share"]["census"] == 1.0
        errs.append(part["recall"]["value"] - truth(pop, log)["recall"])
        widths.append((part["recall"]["high"] - part["recall"]["low"]) / (full["high"] - full["low"]))
    assert abs(np.mean(errs)) < 0.015
    assert np.mean(widths) > 1.2


def test_value_given_up_is_the_paired_cost_difference_on_the_holdout():
    from mlcase.tasks import RowCosts

    pop = population(4000, 3)
    log = deploy(pop, 3)
    n = len(log)
    costs = RowCosts(tp=np.full(n, 10.0), fp=np.full(n, 10.0), fn=np.full(n, 100.0), tn=np.zeros(n))
    h = summarize(window_parts(log, y_of, costs))["holdout"]
    hold = log[log["_arm"] == "holdout"]
    y, f = hold["y"].to_numpy(), hold["_flag"].to_numpy()
    model = np.where(f == 1, 10.0, np.where(y == 1, 100.0, 0.0))
    never = np.where(y == 1, 100.0, 0.0)
    gap = h["value_given_up"]["per_decision"]
    assert gap["value"] == pytest.approx((never - model).mean())
    assert gap["low"] < gap["value"] < gap["high"] and gap["n"] == len(hold)
    assert h["value_given_up"]["total"]["value"] == pytest.approx(gap["value"] * len(hold))
    assert h["cost_policy"]["value"] == pytest.approx(never.mean())
    sizing = h["sizing"] if "sizing" in h else summarize(window_parts(log, y_of, costs), with_sizing=True)[
        "holdout"]["sizing"]
    assert sizing["holdout_rows_needed"] > 0 and sizing["value_given_up"] > 0


def test_the_estimate_check_passes_a_calibrated_model_and_fails_a_miscalibrated_one():
    passed = 0
    for seed in range(100):
        out, _, _ = run(seed)
        passed += bool(out["estimate_check"]["within"])
    assert passed >= 90  # the family-wise level is 95%
    pop = population(3000, 5)
    log = deploy(pop, 5)
    log["_score"] = log["p"] * 0.5  # probabilities off by half
    check = summarize(window_parts(log, y_of, None))["estimate_check"]
    assert check["within"] is False and not check["metrics"]["positive_rate"]["within"]


def test_kappa_against_sklearn_and_its_interval():
    rng = np.random.default_rng(0)
    a = rng.choice(["Yes", "No"], 300, p=[0.3, 0.7])
    b = np.where(rng.random(300) < 0.8, a, rng.choice(["Yes", "No"], 300))
    k = kappa(a, b)
    assert k["value"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert k["low"] < k["value"] < k["high"] and k["n"] == 300
    assert k["agreement"] == pytest.approx((a == b).mean())
    three = rng.choice(["a", "b", "c"], 200)
    assert kappa(three, three)["value"] == pytest.approx(1.0)
    assert kappa(["x"] * 5, ["x"] * 5)["value"] is None  # one category: undefined, not 1
    # total agreement where statsmodels' variance rounds below zero: kappa 1, no interval, and no
    # "invalid value encountered in sqrt" printed over `mlcase monitor`'s table (seen on Ecdat::Fishing)
    same = [str(v) for v in [3, 0, 2, 1, 3, 0, 3, 0, 2, 2, 3, 1, 3, 2, 3, 0, 3]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = kappa(same, same)
    assert k["value"] == pytest.approx(1.0) and k["agreement"] == 1.0 and k["low"] is None


def test_reviewers_of_a_regression_case_are_compared_as_numbers_not_as_categories():
    """Kappa of carData::SLID's reviewed wages read 1.0 for identical numbers and would call 10.5 against
    10.6 a plain disagreement; numbers get the mean absolute difference and the share that agree exactly."""
    import pandas as pd

    from mlcase.monitor.reviews import _between

    v = pd.DataFrame({"_rid": ["a", "a", "b", "b", "c", "c"], "_reviewer": ["ann", "bob"] * 3,
                      "_label": ["10.5", "10.5", "20", "21", "7", "9"]})
    bt = _between(v, "regression")
    assert bt["n"] == 3 and bt["value"] is None and bt["measure"] == "mean absolute difference"
    assert bt["mean_abs_diff"] == pytest.approx(1.0) and bt["agreement"] == pytest.approx(1 / 3)
    assert _between(v, "multiclass")["value"] == pytest.approx(cohen_kappa_score(["10.5", "20", "7"],
                                                                                 ["10.5", "21", "9"]))


def test_weighted_ratio_and_proportion_edges():
    census = weighted_ratio(np.array([1, 0, 1.0]), np.ones(3), np.ones(3))
    assert census["value"] == pytest.approx(2 / 3) and census["sd"] == 0.0  # nothing sampled, no spread
    assert weighted_ratio(np.zeros(3), np.zeros(3), np.ones(3))["value"] is None
    assert proportion(0, 0)["value"] is None
    p = proportion(30, 100)
    assert p["low"] < 0.3 < p["high"] and p["n"] == 100
