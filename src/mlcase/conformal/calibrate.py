"""Split-conformal calibration: MAPIE computes conformity scores from the scores mlcase gives it
(the validation rows' :func:`mlcase.evaluate.valid_scores`), and the finite-sample quantile."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..candidates import BOOSTED  # noqa: F401  (re-exported: conformal.BOOSTED)
from ..errors import ModelError
from .sets import CONFORMAL_VERSION, EPSILON, _class_index  # noqa: F401  (EPSILON: re-exported)

CLASSIFICATION_METHODS = ("lac", "aps")
REGRESSION_METHODS = ("absolute",)


# --------------------------------------------------------------------------- calibration
def calibrate(bundle, X_valid: pd.DataFrame | None, y_valid, alpha: float, method: str = "lac",
              seed: int = 0, scores=None, floor: float | None = None) -> dict:
    """Calibrate split-conformal sets (or intervals) for ``bundle`` on the validation fold.

    Parameters
    ----------
    bundle : ModelBundle
        Fitted; its model is not refitted.
    X_valid, y_valid
        The calibration set (``y`` encoded as the model was trained: 0/1 for
        binary, labels for multiclass, floats for regression).
    alpha : float
        Miscoverage: sets hold the truth for at least ``1 - alpha`` of cases.
    method : {"lac", "aps"}
        Classification score; a binary target always uses "lac" (MAPIE's
        rule; noted in the result) and regression "absolute".
    seed : int
        Seeds the APS randomisation.
    scores : array, optional
        The bundle's scores on the calibration rows; default ``bundle.scores(X_valid)``.
        The pipeline passes :func:`mlcase.evaluate.valid_scores` (out-of-fold scores
        where the model was refitted on the validation rows); see :func:`calibrate_on`.
    floor : float, optional
        Regression: the least value the target takes; intervals are not drawn below it.
        :func:`calibrate_on` passes 0 when no train or validation target is negative.

    Returns
    -------
    dict
        ``{"version", "task", "method", "alpha", "quantile", "n_calibration",
        "classes", "notes"}``, also stored in ``bundle.conformal``. ``quantile`` is
        None when the calibration set is too small for ``alpha`` (sets hold
        every class, intervals are unbounded).
    """
    if not 0 < alpha < 1:
        raise ModelError(f"conformal.alpha {alpha} is outside (0, 1)", "set conformal.alpha to e.g. 0.1")
    y_valid = np.asarray(y_valid)
    n = len(y_valid)
    if n == 0:
        raise ModelError("conformal: the calibration set is empty", "raise split.valid_size")
    notes: list[str] = []
    s = bundle.scores(X_valid) if scores is None else np.asarray(scores, dtype="float64")
    if len(s) != n:
        raise ModelError(f"conformal: {len(s)} scores for {n} calibration rows", "pass one score per row")
    if bundle.task == "regression":
        method = "absolute"
        conformity = _mapie_regression_scores(s, y_valid, alpha)
    else:
        if method not in CLASSIFICATION_METHODS:
            raise ModelError(f"conformal.method '{method}' is not known", "use 'lac' or 'aps'")
        if bundle.task == "binary" and method != "lac":
            notes.append(f"'{method}' sets need three or more classes (MAPIE refuses them for a binary "
                         "target); LAC was used")
            method = "lac"
        conformity = _mapie_classification_scores(bundle, s, y_valid, alpha, method, seed)
    q = conformal_quantile(conformity, alpha)
    if not math.isfinite(q):
        # MASS::Pima.tr at alpha 0.01: 32 validation rows; every set held both classes, the test coverage read 100%
        # "within its bound", and nothing said why
        need = math.ceil(round(1 / alpha - 1, 9))
        notes.append(f"{n} calibration rows are too few for conformal.alpha {alpha:g} (it needs at least {need}): "
                     + ("every interval is unbounded" if bundle.task == "regression" else "every set holds every class")
                     + f", so coverage is 100% by construction; raise split.valid_size or set conformal.alpha to "
                       f"{_alpha_for(n):g} or more")
    result = {
        "version": CONFORMAL_VERSION,
        "task": bundle.task,
        "method": method,
        "alpha": float(alpha),
        "quantile": None if not math.isfinite(q) else float(q),
        "n_calibration": int(n),
        "classes": None if bundle.classes is None else list(bundle.classes),
        "notes": notes,
    }
    if bundle.task == "regression" and floor is not None:
        result["floor"] = float(floor)
    bundle.conformal = result
    return result


def calibrate_on(bundle, dataset, alpha: float, method: str = "lac", seed: int = 0, case=None) -> dict:
    """:func:`calibrate` on the dataset's validation rows, with their scores from
    :func:`mlcase.evaluate.valid_scores` (the one source of validation-row scores).

    Where the served model was refitted on the validation rows, those scores are out of fold, from
    the fold models, and the served model's own can sit apart from them. Its quantile is then at
    least the one its own scores of the calibration rows give: sets that do not cover even the rows
    the model was fitted on cover fewer new ones. modeldata::small_fine_foods: the linear baseline
    read every review as an unseen category and answered one probability, 0.35360 for every row;
    the fold models' constants straddled it, the out-of-fold quantile (0.646350) fell just below
    1 - 0.35360, and every served set left out the positive class: 66% coverage of 800 new rows
    against the 90% promised. A model whose own scores give the smaller quantile, as a model
    scoring the rows it was fitted on nearly always does, keeps the out-of-fold one.
    """
    from ..evaluate import valid_scores
    from ..tasks import target_floor

    floor = target_floor(dataset.y_train, dataset.y_valid) if bundle.task == "regression" else None
    own = None
    if getattr(bundle, "oof_valid", None) is not None:
        own = calibrate(bundle, dataset.X_valid, dataset.y_valid, alpha, method, seed=seed, floor=floor)["quantile"]
    scores = valid_scores(bundle, dataset)
    result = calibrate(bundle, None, dataset.y_valid, alpha, method, seed=seed, scores=scores, floor=floor)
    q = result["quantile"]
    if own is not None and q is not None and own > q:
        result["notes"].append(f"the quantile was raised from {q:.6g}, the out-of-fold scores', to {own:.6g}, the "
                               "served model's own on the calibration rows it was refitted on: its scores sit apart "
                               "from its fold models' there")
        result.update(quantile=own, out_of_fold_quantile=q)
    if case is not None:
        from .deferral import validation_cut

        cut = validation_cut(case, bundle, scores, result)
        if cut is not None:
            result["defer_cut"] = cut
    return result


def _alpha_for(n: int) -> float:
    """The least alpha, rounded up to 2 significant digits, that ``n`` calibration rows can give a finite quantile."""
    a = 1 / (n + 1)
    digits = 1 - math.floor(math.log10(a))
    return math.ceil(a * 10 ** digits) / 10 ** digits


def conformal_quantile(scores, alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest score (``inf`` when that exceeds ``n``).

    The same finite-sample order statistic MAPIE uses.

    >>> conformal_quantile(np.arange(1, 10), 0.2)   # ceil(10 * 0.8) = 8th smallest
    8.0
    """
    s = np.asarray(scores, dtype="float64").ravel()
    n = len(s)
    level = np.ceil((n + 1) * (1 - alpha)) / n
    if level > 1:
        return math.inf
    return float(np.quantile(s, level, method="lower"))


def _scores_estimator(task: str, scores: np.ndarray, n_classes: int | None = None):
    """A fitted estimator that answers with given scores, looked up by row position (``X[:, 0]``).

    MAPIE then computes its conformity scores from exactly the scores mlcase
    gives it (the validation rows' :func:`mlcase.evaluate.valid_scores`), not
    from a new prediction. Classification answers ``predict_proba`` with one
    column per class of the bundle (``classes_`` = 0..K-1, the targets are passed
    as those indices), so a model fitted on labels or on codes, or one that never
    saw a rare class, calibrates alike.
    """
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    scores = np.asarray(scores, dtype="float64")
    if task == "regression":
        class _Lookup(RegressorMixin, BaseEstimator):
            def __init__(self):
                self.fitted_ = True

            def fit(self, X, y=None):  # pragma: no cover - prefit: never refitted
                return self

            def predict(self, X):
                return scores[np.asarray(X)[:, 0].astype(int)]

        return _Lookup()
    proba = np.column_stack([1 - scores, scores]) if task == "binary" else scores

    class _ProbaLookup(ClassifierMixin, BaseEstimator):
        def __init__(self):
            self.fitted_ = True
            self.classes_ = np.arange(n_classes or proba.shape[1])

        def fit(self, X, y=None):  # pragma: no cover - prefit: never refitted
            return self

        def predict_proba(self, X):
            return proba[np.asarray(X)[:, 0].astype(int)]

        def predict(self, X):
            return np.argmax(self.predict_proba(X), axis=1)

    return _ProbaLookup()


def _rows(n: int) -> np.ndarray:
    return np.arange(n).reshape(-1, 1)


def _mapie_classification_scores(bundle, scores, y, alpha, method, seed) -> np.ndarray:
    from mapie.classification import SplitConformalClassifier

    y_idx = _class_index(bundle, np.asarray(y))
    if (y_idx < 0).any():
        bad = np.asarray(y)[y_idx < 0][0]
        raise ModelError(f"conformal: the calibration target holds '{bad}', which is not a class of model "
                         f"'{bundle.name}' ({', '.join(map(str, bundle.classes or []))})",
                         "calibrate on rows of the same data the model was trained on")
    n_classes = 2 if bundle.task == "binary" else len(bundle.classes)
    est = _scores_estimator(bundle.task, scores, n_classes)
    scc = SplitConformalClassifier(estimator=est, confidence_level=1 - alpha, conformity_score=method, prefit=True,
                                   random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scc.conformalize(_rows(len(y_idx)), y_idx)
    return np.asarray(scc.conformity_scores, dtype="float64").ravel()


def _mapie_regression_scores(scores, y, alpha) -> np.ndarray:
    from mapie.conformity_scores import AbsoluteConformityScore
    from mapie.regression import SplitConformalRegressor

    y = np.asarray(y, dtype="float64")
    score = AbsoluteConformityScore()
    # MAPIE checks that y == y_pred + |y - y_pred| within an absolute eps (1e-8): a check of float arithmetic,
    # which round-off alone fails on a target in the 1e13s (openintro::gdp_countries, GDP in dollars: an internal
    # error). Its tolerance scales with the values here: 16 ulps of the largest.
    values = np.abs(np.concatenate([np.asarray(scores, dtype="float64").ravel(), y]))
    top = float(np.max(values[np.isfinite(values)], initial=0.0))
    score.eps = max(float(score.eps), 16 * float(np.finfo(float).eps) * top)
    scr = SplitConformalRegressor(estimator=_scores_estimator("regression", scores), confidence_level=1 - alpha,
                                  conformity_score=score, prefit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scr.conformalize(_rows(len(scores)), y)
    return np.abs(np.asarray(scr.conformity_scores, dtype="float64").ravel())
