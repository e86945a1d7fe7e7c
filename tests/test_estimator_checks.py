"""scikit-learn's estimator checks over every estimator mlcase defines."""

from __future__ import annotations

from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlcase.bakeoff.ensemble import EnsembleClassifier, EnsembleRegressor
from mlcase.baselines import MajorityBaseline, MeanBaseline, RuleBaseline

ESTIMATORS = [
    MajorityBaseline(),
    MajorityBaseline(strategy="majority"),
    MeanBaseline(),
    MeanBaseline(strategy="median"),
    # estimator checks pass plain arrays: their columns are read as x0, x1, ...
    RuleBaseline("x0 > 0", task="binary"),
    RuleBaseline("2 * x0 + 1", task="regression"),
    EnsembleClassifier([("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3))], weights=[2, 1]),
    EnsembleRegressor([("lr", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=3))]),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
