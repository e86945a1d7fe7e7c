"""Baseline estimators on real data: the rule's learned rates, guarded rule errors, trivial baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.baselines import MajorityBaseline, MeanBaseline, RuleBaseline
from mlcase.errors import MlcaseError, RuleError, SpecError


@pytest.fixture(scope="module")
def default_xy(default_df):
    X = default_df[["student", "balance", "income"]]
    y = (default_df["default"] == "Yes").astype(int).to_numpy()
    return X, y


def test_rule_learns_the_positive_rate_on_each_side_of_the_rule(default_xy):
    X, y = default_xy
    m = RuleBaseline("balance > 1800 AND student = 'Yes'").fit(X, y)
    fires = ((X["balance"] > 1800) & (X["student"] == "Yes")).to_numpy()
    prior = y.mean()
    assert m.n_flagged_ == fires.sum() == 161
    # positive share among flagged / unflagged rows, shrunk by one pseudo-row towards the prior
    assert m.rate_flagged_ == pytest.approx((y[fires].sum() + prior) / (fires.sum() + 1))
    assert m.rate_unflagged_ == pytest.approx((y[~fires].sum() + prior) / ((~fires).sum() + 1))
    assert m.rate_flagged_ > 0.3 > 0.03 > m.rate_unflagged_
    proba = m.predict_proba(X)
    assert set(np.round(proba[:, 1], 12)) == {round(m.rate_flagged_, 12), round(m.rate_unflagged_, 12)}
    np.testing.assert_array_equal(m.predict(X), fires.astype(int))  # predict is the rule's own decision
    # calibrated: the mean score equals the positive share on the training rows (up to the shrinkage)
    assert proba[:, 1].mean() == pytest.approx(y.mean(), abs=1e-3)


def test_rule_treats_null_as_not_flagged_and_keeps_string_labels():
    X = pd.DataFrame({"balance": [2500.0, np.nan, 100.0, 3000.0, 50.0, np.nan]})
    y = np.array(["bad", "good", "good", "bad", "good", "bad"])
    m = RuleBaseline("balance > 1800").fit(X, y)
    assert list(m.classes_) == ["bad", "good"]  # sorted; the second is the positive class
    # the rule flags rows 0 and 3 (NULL rows are not flagged); flagged means the positive class 'good'
    np.testing.assert_array_equal(m.predict(X), ["good", "bad", "bad", "good", "bad", "bad"])
    assert m.n_flagged_ == 2


def test_regression_rule_predicts_the_expression_and_fills_nulls_with_the_mean():
    X = pd.DataFrame({"last_month": [10.0, 20.0, np.nan, 40.0]})
    y = np.array([11.0, 19.0, 30.0, 44.0])
    m = RuleBaseline("1.1 * last_month", task="regression").fit(X, y)
    np.testing.assert_allclose(m.predict(X), [11.0, 22.0, y.mean(), 44.0])
    assert m.score(X, y) > 0.7


@pytest.mark.parametrize(("expression", "expected"), [
    ("balanse > 1800", ["unknown column 'balanse'", "did you mean 'balance'", "use the data's column names"]),
    ("balance >> AND", ["not a valid SQL expression", "balance >> AND"]),
    ("1; DROP TABLE x", ["';' is not allowed", "one SQL expression"]),
    ("read_csv('/etc/passwd') IS NOT NULL", ["read_csv() is not allowed", "no files"]),
    ("balance > (SELECT max(balance) FROM mlcase_rows)", ["not allowed"]),
    ("avg(balance) > 800", ["aggregate avg() is not allowed in a row rule"]),
])
def test_rule_errors_are_clean_and_name_the_problem(default_xy, expression, expected):
    X, y = default_xy
    with pytest.raises(RuleError) as info:
        RuleBaseline(expression).fit(X, y)
    message = str(info.value)
    assert isinstance(info.value, MlcaseError) and isinstance(info.value, ValueError)
    assert message.startswith("rule baseline: ")
    for part in expected:
        assert part in message
    assert "\n" not in message


def test_a_bad_rule_in_the_spec_stops_the_bakeoff_before_any_fit(tmp_path, default_df):
    from mlcase.bakeoff import run_bakeoff
    from mlcase.case import case_from_spec
    from mlcase.data import prepare

    default_df.to_csv(tmp_path / "d.csv", index=False)
    case = case_from_spec({"name": "bad-rule", "decision": "review", "task": "binary",
                           "data": {"source": "d.csv", "target": "default", "id": "account_id"},
                           "baselines": ["majority", {"rule": "balance > 1800; DROP TABLE x"}]}, tmp_path)
    with pytest.raises(RuleError, match=r"^baselines\[1\]\.rule: ';' is not allowed"):
        run_bakeoff(case, prepare(case), budget=5, quiet=True)
    # the target is not a feature: a rule that reads it is rejected as an unknown column
    case.spec.baselines = ["majority", {"rule": "default = 'Yes'"}]
    with pytest.raises(RuleError, match=r"baselines\[1\]\.rule: unknown column 'default'"):
        run_bakeoff(case, prepare(case), budget=5, quiet=True)
    assert not (tmp_path / "leaderboard.csv").exists()


def test_rule_baseline_on_a_multiclass_case_is_a_spec_error(tmp_path):
    from mlcase.bakeoff import run_bakeoff
    from mlcase.case import case_from_spec
    from mlcase.data import prepare

    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=60), "y": rng.choice(["a", "b", "c"], 60)}).to_csv(tmp_path / "m.csv", index=False)
    case = case_from_spec({"name": "multi", "decision": "route", "task": "multiclass",
                           "data": {"source": "m.csv", "target": "y"}, "baselines": [{"rule": "x > 0"}]}, tmp_path)
    with pytest.raises(SpecError, match=r"baselines\[0\]\.rule: rule baselines decide positive/negative.*multiclass"):
        run_bakeoff(case, prepare(case), budget=5, quiet=True)


def test_majority_and_prior_baselines(default_xy):
    X, y = default_xy
    prior = MajorityBaseline("prior").fit(X, y)
    np.testing.assert_allclose(prior.predict_proba(X[:3]), [[1 - y.mean(), y.mean()]] * 3)
    assert (prior.predict(X) == 0).all() and prior.majority_ == 0
    majority = MajorityBaseline("majority").fit(X, y)
    np.testing.assert_array_equal(majority.predict_proba(X[:2]), [[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="unknown strategy 'mode'; use 'prior' or 'majority'"):
        MajorityBaseline("mode").fit(X, y)


def test_mean_and_median_baselines():
    X = np.zeros((5, 2))
    y = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    assert MeanBaseline().fit(X, y).predict(X[:1]).tolist() == [22.0]
    assert MeanBaseline("median").fit(X, y).predict(X[:2]).tolist() == [3.0, 3.0]
