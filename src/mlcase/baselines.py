"""Baseline estimators: what every model must beat, on the same rows.

Three scikit-learn estimators (the linear baseline is the ``logistic`` / ``ridge``
candidate of :mod:`mlcase.candidates` with default parameters):

- :class:`MajorityBaseline` (classification): the class prior or the majority class,
  like :class:`sklearn.dummy.DummyClassifier`.
- :class:`MeanBaseline` (regression): the training mean or median.
- :class:`RuleBaseline`: an expert's rule written as a SQL expression over the
  case's columns (``balance > 1800 AND student = 'Yes'``), parsed and guarded by
  :class:`mlcase.rules.Rule` and evaluated by DuckDB. For a binary task it
  learns the positive rate among the rows the rule flags and among the rows it
  does not, so ``predict_proba`` is a calibrated two-valued score ordered by the
  rule and ``predict`` is the rule's own decision. For regression the rule is a
  numeric expression and its value is the prediction.

All three take a DataFrame (the rule reads columns by name); a plain array is
read as columns ``x0, x1, ...``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

__all__ = ["MajorityBaseline", "MeanBaseline", "RuleBaseline"]


def _n_rows(X) -> int:
    if hasattr(X, "shape"):
        return int(X.shape[0])
    return len(X) if hasattr(X, "__len__") else int(np.asarray(X).shape[0])


def _check_y(y, n: int, numeric: bool) -> np.ndarray:
    y = column_or_1d(check_array(y, ensure_2d=False, dtype="numeric" if numeric else None,
                                 ensure_all_finite=numeric, input_name="y"), warn=True)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}; pass one target value per row")
    if len(y) == 0:
        raise ValueError("the training data is empty (0 samples); pass at least one row")
    return y


class MajorityBaseline(ClassifierMixin, BaseEstimator):
    """Predicts without looking at the features: the class prior or the majority class.

    Parameters
    ----------
    strategy : {"prior", "majority"}, default="prior"
        ``"prior"``: ``predict_proba`` is the training class shares.
        ``"majority"``: ``predict_proba`` is 1 for the most frequent class.
        Both predict the most frequent class.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
    majority_ : object
        The most frequent training class (the first one in sorted order on a tie).

    Examples
    --------
    >>> import numpy as np
    >>> m = MajorityBaseline().fit(np.zeros((4, 1)), [0, 1, 1, 1])
    >>> m.predict_proba(np.zeros((1, 1))).tolist(), m.predict(np.zeros((1, 1))).tolist()
    ([[0.25, 0.75]], [1])
    """

    def __init__(self, strategy: str = "prior"):
        self.strategy = strategy

    def fit(self, X, y):
        if self.strategy not in ("prior", "majority"):
            raise ValueError(f"MajorityBaseline: unknown strategy {self.strategy!r}; use 'prior' or 'majority'")
        validate_data(self, X, skip_check_array=True)
        y = _check_y(y, _n_rows(X), numeric=False)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.class_prior_ = counts / counts.sum()
        self.majority_ = self.classes_[int(np.argmax(counts))]
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        n = _n_rows(X)
        if self.strategy == "prior":
            return np.tile(self.class_prior_, (n, 1))
        proba = np.zeros((n, len(self.classes_)))
        proba[:, int(np.argmax(self.class_prior_))] = 1.0
        return proba

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        return np.full(_n_rows(X), self.majority_, dtype=self.classes_.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.no_validation = True
        return tags


class MeanBaseline(RegressorMixin, BaseEstimator):
    """Predicts the training mean or median of the target for every row.

    Parameters
    ----------
    strategy : {"mean", "median"}, default="mean"

    Attributes
    ----------
    constant_ : float

    Examples
    --------
    >>> import numpy as np
    >>> MeanBaseline("median").fit(np.zeros((3, 1)), [1.0, 2.0, 10.0]).predict(np.zeros((2, 1))).tolist()
    [2.0, 2.0]
    """

    def __init__(self, strategy: str = "mean"):
        self.strategy = strategy

    def fit(self, X, y):
        if self.strategy not in ("mean", "median"):
            raise ValueError(f"MeanBaseline: unknown strategy {self.strategy!r}; use 'mean' or 'median'")
        validate_data(self, X, skip_check_array=True)
        y = _check_y(y, _n_rows(X), numeric=True).astype("float64")
        self.constant_ = float(np.mean(y) if self.strategy == "mean" else np.median(y))
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        validate_data(self, X, skip_check_array=True, reset=False)
        return np.full(_n_rows(X), self.constant_, dtype="float64")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.no_validation = True
        return tags


def _has_proba(est) -> bool:
    return est.task == "binary"


class RuleBaseline(BaseEstimator):
    """An expert rule as a model: a SQL expression over the case's columns.

    Parameters
    ----------
    expression : str
        ``task="binary"``: a boolean expression, true = the positive decision
        (``balance > 1800 AND student = 'Yes'``); NULL counts as false.
        ``task="regression"``: a numeric expression whose value is the prediction
        (``0.8 * last_month_sales``); NULL is replaced by the training mean.
    task : {"binary", "regression"}, default="binary"

    Attributes
    ----------
    rule_ : mlcase.rules.Rule
        The validated rule (raises :class:`mlcase.errors.RuleError` on a bad column,
        bad syntax, a statement or a table function).
    classes_ : ndarray of shape (2,)
        Binary only: ``[negative, positive]`` (the sorted training labels).
    rate_flagged_, rate_unflagged_ : float
        Binary only: the share of positives among training rows the rule flags /
        does not flag, shrunk towards the overall share by one pseudo-row so an
        empty side still gets a finite score.
    n_flagged_ : int
        Binary only: training rows the rule flags.
    fill_value_ : float
        Regression only: the prediction where the expression is NULL.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"balance": [500, 2000, 2500, 100]})
    >>> m = RuleBaseline("balance > 1800").fit(X, [0, 1, 1, 0])
    >>> m.predict(X).tolist()
    [0, 1, 1, 0]
    """

    def __init__(self, expression: str = "", task: str = "binary"):
        self.expression = expression
        self.task = task

    # ------------------------------------------------------------------ input
    def _frame(self, X, reset: bool) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            validate_data(self, X, skip_check_array=True, reset=reset)
            if X.shape[0] == 0 and reset:
                raise ValueError("the training data is empty (0 samples); pass at least one row")
            return X
        arr = check_array(X, dtype=None, ensure_all_finite="allow-nan")
        validate_data(self, arr, skip_check_array=True, reset=reset)
        return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        from .rules import Rule

        if self.task not in ("binary", "regression"):
            raise ValueError(f"RuleBaseline: task {self.task!r} is not supported; use 'binary' or 'regression'")
        frame = self._frame(X, reset=True)
        self.rule_ = Rule(expression=self.expression, columns=[str(c) for c in frame.columns],
                          kind="boolean" if self.task == "binary" else "numeric", where="rule baseline")
        if self.task == "regression":
            yy = _check_y(y, len(frame), numeric=True).astype("float64")
            self.fill_value_ = float(np.mean(yy))
            return self
        yy = _check_y(y, len(frame), numeric=False)
        y_type = type_of_target(yy, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(f"Only binary classification is supported by RuleBaseline(task='binary'). "
                             f"The type of the target is {y_type}.")
        self.classes_ = np.unique(yy)
        if len(self.classes_) != 2:
            raise ValueError(f"RuleBaseline(task='binary') needs 2 classes in y, got {len(self.classes_)} class; "
                             "a rule decides positive or negative")
        positive = (yy == self.classes_[1]).astype("float64")
        flags = self.rule_.predict(frame).astype(bool)
        return self._set_rates(len(positive), float(positive.sum()), int(flags.sum()), float(positive[flags].sum()))

    def _set_rates(self, rows: int, positives: float, flagged: int, flagged_positives: float):
        """The positive rate where the rule fires and where it does not, from four counts (shrunk by one pseudo-row)."""
        prior = positives / rows
        self.n_flagged_ = int(flagged)
        self.rate_flagged_ = float((flagged_positives + prior) / (flagged + 1))
        self.rate_unflagged_ = float((positives - flagged_positives + prior) / (rows - flagged + 1))
        return self

    @classmethod
    def from_sums(cls, expression: str, columns: list[str], task: str = "binary", *, rows: int, positives: float = 0.0,
                  flagged: int = 0, flagged_positives: float = 0.0, mean: float = 0.0, where: str = "rule baseline"):
        """A fitted rule baseline from sums over its training rows, for rows that are never in one place.

        The out-of-core bake-off (:mod:`mlcase.bakeoff.large`) sums, per partition, the rows, the positives, the
        rows the rule flags and the positives among them; with these sums this is the model :meth:`fit` gives on
        the same rows. The classes are ``[0.0, 1.0]`` (binary); ``mean`` is the training mean (regression).
        """
        from .rules import Rule

        self = cls(expression, task)
        self.rule_ = Rule(expression=expression, columns=[str(c) for c in columns],
                          kind="boolean" if task == "binary" else "numeric", where=where)
        validate_data(self, pd.DataFrame(columns=self.rule_.columns), skip_check_array=True)  # the feature names
        if task == "regression":
            self.fill_value_ = float(mean)
            return self
        if rows <= 0:
            raise ValueError("the training data is empty (0 samples); pass at least one row")
        self.classes_ = np.array([0.0, 1.0])
        return self._set_rates(rows, positives, flagged, flagged_positives)

    # ------------------------------------------------------------------ predict
    def flags(self, X) -> np.ndarray:
        """0/1 per row: whether the rule fires (binary)."""
        check_is_fitted(self)
        return self.rule_.predict(self._frame(X, reset=False))

    def score_of(self, flags) -> np.ndarray:
        """P(positive) of rows from whether the rule fires on them (binary): the serving rule tier evaluates the rule
        on the raw record and asks the fitted baseline for the score its threshold cuts."""
        check_is_fitted(self)
        return np.where(np.asarray(flags).astype(bool), self.rate_flagged_, self.rate_unflagged_)

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        p = self.score_of(self.flags(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        if self.task == "regression":
            v = self.rule_.evaluate(self._frame(X, reset=False))
            return np.where(np.isnan(v), self.fill_value_, v)
        return self.classes_[self.flags(X)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (binary) or R² (regression), as scikit-learn's mixins define them."""
        if self.task == "regression":
            return RegressorMixin.score(self, X, y, sample_weight)
        return ClassifierMixin.score(self, X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.task == "regression":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags(poor_score=True)
        else:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=False, poor_score=True)
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags
