"""Classifiers that look given scores up by row position, so scikit-learn's calibrators can be
fitted on out-of-fold scores (imported only when a bundle has them)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class _ScoresLookup(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose ``predict_proba`` looks scores up by row position (``X[:, 0]``).

    Lets scikit-learn's calibrators be fitted on given scores (the validation
    rows' out-of-fold :func:`valid_scores`) instead of the model's own
    predictions; never stored in a bundle.
    """

    _never_stored = True  # tests/test_bundle.py: no allowlist entry, so save_bundle would refuse it

    def __init__(self, proba=None, classes=None):
        self.proba = proba
        self.classes = classes
        self.classes_ = np.asarray(classes)

    def fit(self, X, y=None):  # pragma: no cover - frozen: never refitted
        return self

    def predict_proba(self, X):
        return self.proba[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class _LogitLookup(_ScoresLookup):
    """A lookup that also answers ``decision_function`` as the logit of P(positive), like a binary
    model whose probability is the logistic function of its decision function."""

    _never_stored = True

    def decision_function(self, X):
        p = np.clip(self.predict_proba(X)[:, 1], 1e-15, 1 - 1e-15)
        return np.log(p) - np.log1p(-p)
