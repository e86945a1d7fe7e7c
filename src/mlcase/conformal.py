"""Conformal prediction with deferral to human review; the only module that imports MAPIE.

Split conformal on the validation fold (the calibration set):

- classification: prediction sets with the LAC score (``1 - p(true class)``)
  or APS (cumulated probability up to the true class, randomised at
  calibration; sets include the last label, so APS over-covers slightly);
- regression: intervals ``prediction +- q`` from absolute residuals, and, in
  the evaluation only, conformalized quantile regression (CQR) for boosted
  models.

:func:`calibrate` runs MAPIE and keeps only what serving needs to rebuild the
sets from ``bundle.scores`` (method, alpha, the conformal quantile): a small
JSON dict stored in ``bundle.conformal``. :func:`predict_sets` rebuilds sets
or intervals from that dict with numpy alone; a test pins it to MAPIE's own
``predict_set`` / ``predict_interval``.

:func:`evaluate_conformal` measures coverage and set size (or width) on the
test split and the deferral policy: a case whose set is not a single class (or
whose interval is wider than ``conformal.max_interval_width``) goes to human
review, most uncertain first, as long as flagged + deferred cases stay within
``constraints.review_capacity``.

The quantile is the ``ceil((n + 1)(1 - alpha))``-th smallest calibration score,
so for exchangeable data coverage is at least ``1 - alpha`` and, with
continuous scores, at most ``1 - alpha + 1/(n + 1)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from .errors import ModelError

CONFORMAL_VERSION = 1
EPSILON = 1e-8            # MAPIE's tolerance when comparing scores with the quantile
CLASSIFICATION_METHODS = ("lac", "aps")
REGRESSION_METHODS = ("absolute",)
BOOSTED = ("hist_gbm", "lightgbm", "xgboost")


# --------------------------------------------------------------------------- calibration
def calibrate(bundle, X_valid: pd.DataFrame, y_valid, alpha: float, method: str = "lac",
              seed: int = 0, scores=None) -> dict:
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
    scores : ndarray, optional
        The model's scores on the calibration rows, when they must not come from the model
        itself (:func:`mlcase.evaluate.valid_scores`: out-of-fold scores of a model that was
        refitted on these rows).

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
    if bundle.task == "regression":
        method = "absolute"
        conformity = _mapie_regression_scores(bundle, X_valid, y_valid, alpha, scores)
    else:
        if method not in CLASSIFICATION_METHODS:
            raise ModelError(f"conformal.method '{method}' is not known", "use 'lac' or 'aps'")
        if bundle.task == "binary" and method != "lac":
            notes.append(f"'{method}' sets need three or more classes (MAPIE refuses them for a binary "
                         "target); LAC was used")
            method = "lac"
        conformity = _mapie_classification_scores(bundle, X_valid, y_valid, alpha, method, seed, scores)
    q = conformal_quantile(conformity, alpha)
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
    bundle.conformal = result
    return result


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


def _prefit(model, fixed=None):
    """``model`` as MAPIE's prefit check accepts it.

    MAPIE 1.x probes a prefit estimator that has ``n_features_in_`` by predicting on
    a numpy array of zeros; mlcase's models read named DataFrame columns, and a
    calibrated wrapper around a pipeline fails that probe although it is fitted.
    The adapter forwards predictions unchanged and has no ``n_features_in_``.
    With ``fixed`` (the model's output on the calibration rows, computed elsewhere), it
    returns that for a batch of the same length instead of asking the model.
    """
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    is_classifier = hasattr(model, "predict_proba")
    base = ClassifierMixin if is_classifier else RegressorMixin

    class _Fitted(base, BaseEstimator):
        def __init__(self):
            self.fitted_ = True
            if is_classifier:
                self.classes_ = model.classes_

        def fit(self, X, y=None):  # pragma: no cover - prefit: never refitted
            return self

        def predict(self, X):
            if fixed is not None and len(X) == len(fixed):
                return self.classes_[np.argmax(fixed, axis=1)] if is_classifier else fixed
            return model.predict(X)

        if is_classifier:
            def predict_proba(self, X):
                if fixed is not None and len(X) == len(fixed):
                    return fixed
                return model.predict_proba(X)

    return _Fitted()


def _fixed(bundle, scores):
    """The model's raw output (``predict_proba`` or ``predict``) from bundle scores."""
    if scores is None:
        return None
    s = np.asarray(scores, dtype="float64")
    return np.column_stack([1 - s, s]) if bundle.task == "binary" else s


def _mapie_classification_scores(bundle, X, y, alpha, method, seed, scores=None) -> np.ndarray:
    from mapie.classification import SplitConformalClassifier

    scc = SplitConformalClassifier(estimator=_prefit(bundle.model, _fixed(bundle, scores)), confidence_level=1 - alpha,
                                   conformity_score=method, prefit=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scc.conformalize(X, y)
    return np.asarray(scc.conformity_scores, dtype="float64").ravel()


def _mapie_regression_scores(bundle, X, y, alpha, scores=None) -> np.ndarray:
    from mapie.regression import SplitConformalRegressor

    scr = SplitConformalRegressor(estimator=_prefit(bundle.model, _fixed(bundle, scores)), confidence_level=1 - alpha,
                                  conformity_score="absolute", prefit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scr.conformalize(X, np.asarray(y, dtype="float64"))
    return np.abs(np.asarray(scr.conformity_scores, dtype="float64").ravel())


# --------------------------------------------------------------------------- serving-side sets
def predict_sets(bundle, X: pd.DataFrame, conformal: dict | None = None) -> list:
    """Prediction sets (class-label lists) or intervals ``(low, high)`` from ``bundle.conformal``.

    Needs no MAPIE object: only ``bundle.scores(X)`` and the stored quantile.
    """
    conf = _conf(bundle, conformal)
    if bundle.task == "regression":
        low, high = intervals_from_scores(bundle.scores(X), conf)
        return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    member = sets_from_scores(_proba(bundle, bundle.scores(X)), conf)
    labels = np.asarray(conf.get("classes") or bundle.classes, dtype=object)
    return [[_plain(c) for c in labels[row]] for row in member]


def sets_from_scores(proba: np.ndarray, conformal: dict) -> np.ndarray:
    """Boolean membership ``(n, n_classes)`` from class probabilities and a calibration dict."""
    proba = np.asarray(proba, dtype="float64")
    q = conformal.get("quantile")
    if q is None:
        return np.ones(proba.shape, dtype=bool)
    if conformal["method"] == "lac":
        return (1 - proba) - q <= EPSILON
    if conformal["method"] == "aps":
        return _aps_sets(proba, float(q))
    raise ModelError(f"stored conformal method '{conformal['method']}' is not a classification method",
                     "re-run `mlcase run` to recalibrate")


def _aps_sets(proba: np.ndarray, q: float) -> np.ndarray:
    """APS sets as MAPIE builds them with ``include_last_label=True``.

    Classes in decreasing probability until the cumulated probability first
    reaches ``q``; ties with the last included probability are included too.
    """
    order = np.argsort(proba, axis=1)[:, ::-1]
    sorted_p = np.take_along_axis(proba, order, axis=1)
    cum = np.take_along_axis(np.cumsum(sorted_p, axis=1), np.argsort(order, axis=1), axis=1)
    diff = cum - q
    last = np.asarray(np.ma.masked_less(diff, -EPSILON).argmin(axis=1))
    none_reach = np.all(diff < -EPSILON, axis=1)   # only by rounding: the total is 1 and q <= 1
    p_last = proba[np.arange(len(proba)), last]
    tiny = p_last <= EPSILON
    if tiny.any():
        smallest_nonzero = np.where(proba < EPSILON, np.inf, proba).min(axis=1)
        p_last = np.where(tiny, smallest_nonzero, p_last)
    member = proba - p_last[:, None] >= -EPSILON
    member[none_reach] = True
    return member


def intervals_from_scores(pred: np.ndarray, conformal: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` arrays: prediction -+ the calibrated absolute-residual quantile."""
    pred = np.asarray(pred, dtype="float64")
    q = conformal.get("quantile")
    q = math.inf if q is None else float(q)
    return pred - q, pred + q


def _conf(bundle, conformal: dict | None) -> dict:
    conf = conformal if conformal is not None else bundle.conformal
    if not conf:
        raise ModelError(f"model '{bundle.name}' has no conformal calibration",
                         "run `mlcase run` (it calibrates the champion) or call mlcase.conformal.calibrate")
    if conf.get("version", CONFORMAL_VERSION) != CONFORMAL_VERSION:
        raise ModelError(f"conformal calibration format {conf.get('version')} is not readable by this mlcase",
                         "re-run `mlcase run` to recalibrate")
    return conf


def _proba(bundle, scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype="float64")
    if bundle.task == "binary":
        return np.column_stack([1 - scores, scores])
    return scores


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


# --------------------------------------------------------------------------- evaluation
def evaluate_conformal(case, bundle, X_test: pd.DataFrame, y_test, rows_test: pd.DataFrame | None = None, *,
                       calibration: tuple | None = None, train: tuple | None = None, seed: int = 0) -> dict:
    """Coverage, set size / width and the deferral policy on the test split.

    Parameters
    ----------
    case : Case
    bundle : ModelBundle
        Calibrated (``bundle.conformal`` set), or ``calibration`` given.
    X_test, y_test
        Test features and encoded target.
    rows_test : DataFrame, optional
        All columns of the test rows (for SQL cost expressions); defaults to ``X_test``.
    calibration : (X_valid, y_valid) or (X_valid, y_valid, scores), optional
        Calibrates the bundle when it is not calibrated yet, and lets the
        evaluation compare LAC with APS (classification); ``scores`` are the
        model's scores on those rows when they must not come from the model
        (:func:`mlcase.evaluate.valid_scores`).
    train : (X_train, y_train), optional
        Regression with a boosted model: fits quantile models for CQR
        (reported next to the absolute-residual intervals; not served).
    seed : int

    Returns
    -------
    dict
        ``method``, ``alpha``, ``target_coverage``, ``coverage``,
        ``coverage_bounds`` (the interval the theory allows, before sampling
        noise), ``mean_set_size`` or ``mean_width``, ``deferral`` (policy
        numbers: deferred and flagged counts, review load, capacity, error
        rates and costs of automated vs deferred decisions, combined vs
        model-only cost), ``methods`` (one row per conformal method compared),
        ``metrics`` (a flat dict to log to MLflow), ``assumptions``.
    """
    spec = case.spec.conformal
    if not bundle.conformal:
        if calibration is None:
            raise ModelError(f"model '{bundle.name}' has no conformal calibration",
                             "pass calibration=(X_valid, y_valid) or call calibrate first")
        calibrate(bundle, calibration[0], calibration[1], spec.alpha, spec.method, seed=seed,
                  scores=calibration[2] if len(calibration) > 2 else None)
    conf = bundle.conformal
    rows_test = X_test if rows_test is None else rows_test
    y_test = np.asarray(y_test)
    n_cal, alpha = conf["n_calibration"], conf["alpha"]
    out = {
        "model": bundle.name,
        "task": bundle.task,
        "method": conf["method"],
        "alpha": alpha,
        "target_coverage": 1 - alpha,
        "n_calibration": n_cal,
        "n_test": int(len(y_test)),
        "quantile": conf.get("quantile"),
        "coverage_bounds": [1 - alpha, min(1.0, 1 - alpha + 1 / (n_cal + 1))],
        "coverage_sd": coverage_sd(n_cal, alpha, len(y_test)),
    }
    scores = bundle.scores(X_test)
    if bundle.task == "regression":
        out.update(_evaluate_regression(case, bundle, conf, scores, y_test, rows_test))
        out["methods"] = [_method_row("absolute", out["coverage"], width=out["mean_width"],
                                      wider=out["deferral"]["wider_than_limit_share"])]
        cqr = _cqr(case, bundle, X_test, y_test, calibration, train, alpha)
        if cqr is not None:
            out["methods"].append(cqr)
    else:
        out.update(_evaluate_classification(case, bundle, conf, scores, y_test, rows_test))
        out["methods"] = [_method_row(conf["method"], out["coverage"], size=out["mean_set_size"],
                                      singleton=out["singleton_share"])]
        if calibration is not None:
            for other in CLASSIFICATION_METHODS if bundle.task == "multiclass" else ():
                if other == conf["method"]:
                    continue
                alt = dict(conf, method=other, quantile=_alt_quantile(bundle, calibration, alpha, other, seed))
                member = sets_from_scores(_proba(bundle, scores), alt)
                covered = member[np.arange(len(y_test)), _class_index(bundle, y_test)]
                sizes = member.sum(axis=1)
                out["methods"].append(_method_row(other, float(covered.mean()), size=float(sizes.mean()),
                                                  singleton=float((sizes == 1).mean())))
    if case.spec.split.method == "time":
        out["assumptions"] = list(out.get("assumptions") or []) + [
            "coverage assumes calibration and new rows are exchangeable; with a time split, later rows may drift "
            "away from the calibration rows, so watch coverage over time"]
    d = out["deferral"]
    out["metrics"] = {
        "conformal_coverage": out["coverage"],
        "conformal_target_coverage": 1 - alpha,
        ("conformal_mean_width" if bundle.task == "regression" else "conformal_mean_set_size"):
            out.get("mean_width", out.get("mean_set_size")),
        "conformal_deferred_share": d["deferred_share"],
        "conformal_review_load": d["review_load"],
        "conformal_cost_combined": d["cost_combined"],
        "conformal_cost_model_only": d["cost_model_only"],
    }
    return out


def coverage_sd(n_calibration: int, alpha: float, n_test: int | None = None) -> float:
    """Spread of the empirical test coverage.

    Over calibration sets, coverage follows Beta(n + 1 - l, l) with
    ``l = floor((n + 1) alpha)``; a finite test set adds binomial noise.
    """
    n = n_calibration
    l_ = max(1, math.floor((n + 1) * alpha))
    a, b = n + 1 - l_, l_
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    if n_test:
        cov = a / (a + b)
        var += cov * (1 - cov) / n_test
    return float(math.sqrt(var))


def _alt_quantile(bundle, calibration, alpha, method, seed):
    X, y = calibration[0], calibration[1]
    scores = calibration[2] if len(calibration) > 2 else None
    q = conformal_quantile(_mapie_classification_scores(bundle, X, np.asarray(y), alpha, method, seed, scores), alpha)
    return None if not math.isfinite(q) else q


def _method_row(method, coverage, size=None, singleton=None, width=None, wider=None, note=None) -> dict:
    row = {"method": method, "coverage": coverage}
    if size is not None:
        row.update(mean_set_size=size, singleton_share=singleton)
    if width is not None:
        row.update(mean_width=width, wider_than_limit_share=wider)
    if note:
        row["note"] = note
    return row


def _class_index(bundle, y) -> np.ndarray:
    if bundle.task == "binary":
        return np.asarray(y).astype(int)
    lookup = {str(c): i for i, c in enumerate(bundle.classes)}
    return np.array([lookup.get(str(v), -1) for v in y])


def _capacity(case, n: int) -> tuple[float | None, int]:
    from .tasks import capacity_rows, capacity_share

    share = capacity_share(case)
    return share, capacity_rows(share, n)


def _choose_deferred(candidates: np.ndarray, uncertainty: tuple, room: int) -> np.ndarray:
    """Defer the most uncertain candidates (lexicographic ``uncertainty`` keys, largest first) up to ``room``."""
    deferred = np.zeros(len(candidates), dtype=bool)
    idx = np.flatnonzero(candidates)
    if room <= 0 or len(idx) == 0:
        return deferred
    keys = [np.asarray(k)[idx] for k in uncertainty]
    order = np.lexsort([-k for k in reversed(keys)])
    deferred[idx[order[:room]]] = True
    return deferred


def _evaluate_classification(case, bundle, conf, scores, y, rows) -> dict:
    from .tasks import binary_costs

    proba = _proba(bundle, scores)
    n = len(y)
    member = sets_from_scores(proba, conf)
    yi = _class_index(bundle, y)
    covered = member[np.arange(n), yi] & (yi >= 0)
    sizes = member.sum(axis=1)
    k = proba.shape[1]
    by_size = []
    for s in range(k + 1):
        m = sizes == s
        if m.any():
            by_size.append({"set_size": s, "share": float(m.mean()), "count": int(m.sum()),
                            "coverage": float(covered[m].mean())})
    ambiguous = sizes != 1
    share, cap_n = _capacity(case, n)
    defer_on = case.spec.conformal.defer
    top2 = np.sort(proba, axis=1)[:, -2:] if k >= 2 else np.zeros((n, 2))
    margin = top2[:, 1] - top2[:, 0]
    if bundle.task == "binary":
        t = 0.5 if bundle.threshold is None else float(bundle.threshold)
        flag = np.asarray(bundle.decide(scores)).astype(bool)
        y01 = y.astype(int)
        wrong = flag.astype(int) != y01
        room = max(0, cap_n - int(flag.sum()))
        candidates = ambiguous & ~flag if defer_on else np.zeros(n, dtype=bool)
        deferred = _choose_deferred(candidates, (sizes, -np.abs(scores - t)), room)
        costs = binary_costs(case, rows)
        model_only = costs.of(y01, flag)
        combined = np.where(deferred, costs.of(y01, y01), model_only)
        if_flagged = np.where(deferred, costs.of(y01, np.ones(n, dtype=int)), model_only)
        review = flag | deferred
        extra = {"threshold": t, "flagged": int(flag.sum()), "flagged_share": float(flag.mean()),
                 "cost_combined_if_reviewers_flag": float(if_flagged.mean())}
    else:
        pred = np.argmax(proba, axis=1)
        wrong = pred != yi
        flag = np.zeros(n, dtype=bool)
        candidates = ambiguous if defer_on else np.zeros(n, dtype=bool)
        deferred = _choose_deferred(candidates, (sizes, -margin), cap_n)
        cost_of = _multiclass_costs(case, bundle)
        model_only = cost_of(yi, pred)
        combined = np.where(deferred, cost_of(yi, yi), model_only)
        review = deferred
        extra = {}
    automated = ~deferred
    deferral = {
        "enabled": bool(defer_on),
        "capacity_share": share,
        "capacity_rows": cap_n,
        "wanted": int(candidates.sum()),
        "wanted_share": float(candidates.mean()),
        "deferred": int(deferred.sum()),
        "deferred_share": float(deferred.mean()),
        "capacity_binding": bool(candidates.sum() > deferred.sum()),
        "review_rows": int(review.sum()),
        "review_load": float(review.mean()),
        "automated_share": float(automated.mean()),
        "error_rate_automated": _rate(wrong, automated),
        "error_rate_deferred": _rate(wrong, deferred),
        "error_rate_model_only": float(wrong.mean()),
        "cost_model_only": float(model_only.mean()),
        "cost_combined": float(combined.mean()),
        "cost_saving": float(model_only.mean() - combined.mean()),
        **extra,
    }
    return {
        "coverage": float(covered.mean()),
        "mean_set_size": float(sizes.mean()),
        "singleton_share": float((sizes == 1).mean()),
        "empty_share": float((sizes == 0).mean()),
        "by_set_size": by_size,
        "deferral": deferral,
        "assumptions": _ASSUMPTIONS,
    }


_ASSUMPTIONS = [
    "flagged and deferred cases share the review capacity; deferral takes only what flags leave free",
    "cost_combined assumes reviewers decide deferred cases correctly (no separate review fee in the costs); "
    "cost_combined_if_reviewers_flag (binary) counts each deferred case as flagged instead",
    "error rates of deferred cases are those of the model's own decision on them",
]


def _multiclass_costs(case, bundle):
    """Per-row costs of decisions given as class indices (the matrix lookup is :func:`mlcase.tasks.multiclass_cost`)."""
    from .tasks import multiclass_cost

    classes = np.asarray([str(c) for c in bundle.classes] + [None], dtype=object)  # index -1: a label not known

    def cost(actual_idx, pred_idx):
        return multiclass_cost(case, classes[np.asarray(actual_idx)], classes[np.asarray(pred_idx)])

    return cost


def _evaluate_regression(case, bundle, conf, pred, y, rows) -> dict:
    from .tasks import regression_cost

    low, high = intervals_from_scores(pred, conf)
    y = y.astype("float64")
    n = len(y)
    covered = (y >= low) & (y <= high)
    width = high - low
    limit = case.spec.conformal.max_interval_width
    wide = width > limit if limit is not None else np.zeros(n, dtype=bool)
    share, cap_n = _capacity(case, n)
    candidates = wide if case.spec.conformal.defer else np.zeros(n, dtype=bool)
    deferred = _choose_deferred(candidates, (width,), cap_n)
    automated = ~deferred
    model_only = regression_cost(case, rows, y, pred)
    combined = np.where(deferred, 0.0, model_only)
    abs_err = np.abs(pred - y)
    finite = np.isfinite(width)
    fw = width[finite]
    if len(fw) and np.ptp(fw) > 0:
        hist_counts, edges = np.histogram(fw, bins=20)
    else:
        hist_counts, edges = np.array([len(fw)]), np.array([fw[0], fw[0]] if len(fw) else [])
    return {
        "coverage": float(covered.mean()),
        "mean_width": float(np.mean(width)) if finite.all() else None,
        "median_width": float(np.median(width)) if finite.all() else None,
        "max_interval_width": limit,
        "width_histogram": {"counts": hist_counts.tolist(), "edges": [float(e) for e in edges]},
        "deferral": {
            "enabled": bool(case.spec.conformal.defer),
            "capacity_share": share,
            "capacity_rows": cap_n,
            "wanted": int(candidates.sum()),
            "wanted_share": float(candidates.mean()),
            "wider_than_limit_share": float(wide.mean()),
            "deferred": int(deferred.sum()),
            "deferred_share": float(deferred.mean()),
            "capacity_binding": bool(candidates.sum() > deferred.sum()),
            "review_rows": int(deferred.sum()),
            "review_load": float(deferred.mean()),
            "automated_share": float(automated.mean()),
            "mae_automated": _mean(abs_err, automated),
            "mae_deferred": _mean(abs_err, deferred),
            "error_rate_automated": None,
            "error_rate_deferred": None,
            "cost_model_only": float(model_only.mean()),
            "cost_combined": float(combined.mean()),
            "cost_saving": float(model_only.mean() - combined.mean()),
        },
        "assumptions": [
            "cost_combined assumes reviewers set deferred cases to their true value (no review fee in the costs)",
            "absolute-residual intervals all have the same width; adaptive widths come from CQR",
        ],
    }


def _cqr(case, bundle, X_test, y_test, calibration, train, alpha) -> dict | None:
    """CQR intervals from quantile versions of a boosted model (report only)."""
    if calibration is None or train is None or bundle.name not in BOOSTED:
        return None
    from mapie.regression import ConformalizedQuantileRegressor

    from .explain import unwrap

    estimator = _quantile_pipeline(unwrap(bundle.model)[0])
    if estimator is None:
        return None
    cqr = ConformalizedQuantileRegressor(estimator=estimator, confidence_level=1 - alpha, prefit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cqr.fit(train[0], np.asarray(train[1], dtype="float64"))
        cqr.conformalize(calibration[0], np.asarray(calibration[1], dtype="float64"))
        _, bounds = cqr.predict_interval(X_test)
    low, high = bounds[:, 0, 0], bounds[:, 1, 0]
    y = np.asarray(y_test, dtype="float64")
    width = high - low
    limit = case.spec.conformal.max_interval_width
    return _method_row("cqr", float(((y >= low) & (y <= high)).mean()), width=float(width.mean()),
                       wider=float((width > limit).mean()) if limit is not None else 0.0,
                       note=f"quantile {type(estimator[-1]).__name__} on the same preprocessing; report only")


def _quantile_pipeline(model):
    """A clone of the model's pipeline whose last step fits quantiles (None if not possible)."""
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return None
    last = model[-1]
    name = type(last).__name__
    steps = [(n, clone(s)) for n, s in model.steps[:-1]]
    if name == "HistGradientBoostingRegressor":
        q = clone(last).set_params(loss="quantile", quantile=0.5)
    elif name == "LGBMRegressor":
        q = clone(last).set_params(objective="quantile", alpha=0.5)
    else:
        q = HistGradientBoostingRegressor(loss="quantile", quantile=0.5, max_iter=200, random_state=0)
    return Pipeline(steps + [(model.steps[-1][0], q)])


def _rate(wrong: np.ndarray, mask: np.ndarray) -> float | None:
    return float(wrong[mask].mean()) if mask.any() else None


def _mean(v: np.ndarray, mask: np.ndarray) -> float | None:
    return float(v[mask].mean()) if mask.any() else None
