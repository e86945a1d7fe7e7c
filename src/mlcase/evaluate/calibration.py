"""Calibration: expected calibration error, reliability curves, and calibrating a classifier on
the validation rows' scores (from :func:`mlcase.evaluate.valid_scores`) when its ECE is poor."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tasks as T
from ..case import Case
from ..numeric import NOISE_Z, mean_se, sig
from .common import features_of, valid_scores

#: ECE (on the validation part) above which ``calibrate: auto`` tries a calibrator
ECE_POOR = 0.02
#: validation rows below which ``calibrate: auto`` does not try isotonic calibration (scikit-learn's guide: it
#: overfits "with too few calibration samples (<<1000)"; measured in :func:`calibrate_bundle`)
ISOTONIC_MIN_ROWS = 1000


def expected_calibration_error(y, p, n_bins: int = 10, strategy: str = "quantile") -> float:
    """Expected calibration error: the row-weighted mean gap between predicted and observed rates.

    Binary ``p`` is P(positive) against 0/1 ``y``; a probability matrix uses the
    top-label confidence against whether the top label is right (then ``y`` is
    1 where the prediction is right).

    >>> expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    0.0
    """
    curve = reliability_curve(y, p, n_bins, strategy)
    n = sum(curve["count"])
    return float(sum(c * abs(o - m) for m, o, c in zip(curve["mean_predicted"], curve["observed"],
                                                        curve["count"], strict=True)) / max(n, 1))


def reliability_curve(y, p, n_bins: int = 10, strategy: str = "quantile") -> dict:
    """Per bin: mean predicted probability, observed rate and row count (empty bins dropped).

    Quantile edges collapse where scores repeat (a constant score is one bin),
    so a model with few distinct scores never gets empty or degenerate bins.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1))) if len(p) else np.array([0.0, 1.0])
    else:
        edges = np.linspace(0, 1, n_bins + 1)
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    out = {"mean_predicted": [], "observed": [], "count": []}
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            out["mean_predicted"].append(float(p[m].mean()))
            out["observed"].append(float(y[m].mean()))
            out["count"].append(int(m.sum()))
    return out


def top_label(y, proba, classes):
    """Top-label confidence and whether the top label is right (multiclass)."""
    proba = np.asarray(proba, dtype=float)
    pred = np.asarray([str(c) for c in classes], dtype=object)[np.argmax(proba, axis=1)]
    return proba.max(axis=1), (pred == np.asarray(y).astype(str)).astype(float)


def ece_of(task: str, y, scores, classes=None) -> float:
    if task == "binary":
        return expected_calibration_error(y, scores)
    conf, right = top_label(y, scores, classes)
    return expected_calibration_error(right, conf)


def reliability_of(task: str, y, scores, classes=None) -> dict:
    if task == "binary":
        return reliability_curve(y, scores)
    conf, right = top_label(y, scores, classes)
    return reliability_curve(right, conf)


# --------------------------------------------------------------------------- calibrators
def _rows(idx) -> np.ndarray:
    return np.asarray(idx).reshape(-1, 1)


class _Calibrators:
    """Fits ``CalibratedClassifierCV(FrozenEstimator(...))`` on some validation rows and scores others.

    Without ``bundle.oof_valid`` the calibrators see the model itself on the
    validation rows (its scores there are :func:`valid_scores`). With
    out-of-fold scores they see a lookup of those scores answering the same
    response method scikit-learn would ask the model for (``decision_function``
    before ``predict_proba``), and the final calibrated model gets the real
    model put in the lookup's place, so the stored object is the usual
    ``CalibratedClassifierCV(FrozenEstimator(model))``.
    """

    def __init__(self, task_name: str, bundle, X, proba: np.ndarray, y_model):
        self.task_name, self.bundle, self.X, self.y_model = task_name, bundle, X, np.asarray(y_model)
        self.task = T.get_task(task_name)
        self.oof = getattr(bundle, "oof_valid", None) is not None
        self.lookup = None
        if self.oof:
            from ._lookup import _LogitLookup, _ScoresLookup

            model = bundle.model
            kind = _ScoresLookup
            if hasattr(model, "decision_function"):
                kind = _LogitLookup if self._logit_link(model, X) else None
            self.lookup = None if kind is None else kind(proba, model.classes_)

    def _logit_link(self, model, X) -> bool:
        """Whether a binary model's P(positive) is the logistic function of its decision function."""
        if self.task_name != "binary" or len(X) == 0:
            return False
        sample = X.iloc[:20]
        d = np.asarray(model.decision_function(sample), dtype=float).ravel()
        p = self.task.scores(model, sample)
        return bool(np.allclose(1 / (1 + np.exp(-d)), p, atol=1e-6))

    @property
    def usable(self) -> bool:
        return not self.oof or self.lookup is not None

    def fit(self, method: str, idx, bound: bool = False):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator

        idx = np.asarray(idx)
        # a frozen model predicts the same on every fold (ensemble="auto" is False for it): the folds only have to
        # exist, so 2 (scikit-learn's default of 5 needs 5 rows of each class, which a small validation part lacks)
        if not self.oof:
            cal = CalibratedClassifierCV(FrozenEstimator(self.bundle.model), method=method, cv=2).fit(
                self.X.iloc[idx], self.y_model[idx])
        else:
            cal = CalibratedClassifierCV(FrozenEstimator(self.lookup), method=method, cv=2).fit(
                _rows(idx), self.y_model[idx])
        return bounded(cal, len(idx)) if bound and method == "isotonic" else cal

    def scores(self, cal, idx) -> np.ndarray:
        idx = np.asarray(idx)
        X = self.X.iloc[idx] if not self.oof else _rows(idx)
        return self.task.scores(cal, X, self.bundle.classes)

    def final(self, method: str):
        """The calibrated model for the bundle, fitted on every validation row."""
        from sklearn.frozen import FrozenEstimator

        every = np.arange(len(self.y_model))
        cal = self.fit(method, every, bound=True)
        if not self.oof:
            return cal, None
        calibrated_oof = self.scores(cal, every)
        model = self.bundle.model
        frozen = FrozenEstimator(model)
        cal.estimator = frozen
        for inner in cal.calibrated_classifiers_:
            inner.estimator = frozen
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(model, attr):
                setattr(cal, attr, getattr(model, attr))
            elif hasattr(cal, attr):
                delattr(cal, attr)
        return cal, calibrated_oof


def bounded(cal, n: int):
    """Keep a fitted isotonic calibrator's probabilities within [1/(n+2), (n+1)/(n+2)] for ``n`` calibration rows.

    Isotonic regression gives a block of rows its observed rate, so a block with no positive says 0 and one with
    no negative says 1: certainties that ``n`` rows cannot support, and that the log loss charges without limit
    where they are wrong. fpp2::elecdaily's `WorkDay` (58 validation rows) got the map 0, 0, 1, 1, a hard
    classifier; 3 of its 73 test rows were work days scored 0, and the test log loss went 0.149 -> 1.424. Bounded,
    the same map gives 0.189. The bound is Laplace's rule of succession for a block of all ``n`` rows with no
    event: a smaller block's rule gives more, so no value the rows support moves. Refitting on the fitted
    thresholds, which are already monotone, returns them clipped to ``y_min``/``y_max`` (scikit-learn's own bounds),
    so the map is otherwise unchanged.

    Only the calibrator that ships is bounded. The cross-fit that chooses between sigmoid and isotonic scores the
    unbounded map, whose certainties its log loss punishes: bounded there too, isotonic won the cross-fit on the
    churn table of ``tests/e2e/test_cli_trust.py``, where it had lost, so the bound would have made isotonic, which
    scikit-learn advises against on small calibration sets, the choice more often. Bounding the shipped map alone
    keeps the choice where it was and limits what a certainty the validation halves did not meet can cost.
    ``auto`` no longer tries isotonic below :data:`ISOTONIC_MIN_ROWS` validation rows; the bound still serves
    ``calibrate: isotonic`` there, and the rare block of a larger part with no event.
    """
    lo = 1.0 / (n + 2)
    for inner in cal.calibrated_classifiers_:
        for iso in inner.calibrators:
            iso.set_params(y_min=lo, y_max=1.0 - lo).fit(iso.X_thresholds_, iso.y_thresholds_)
    return cal


def regressed(cal: dict) -> list[str]:
    """The test measures (``ECE``, ``log loss``) that an applied calibration made worse."""
    pairs = (("ECE", "ece_test_before", "ece_test_after"),
             ("log loss", "log_loss_test_before", "log_loss_test_after"))
    return [name for name, b, a in pairs
            if cal.get(b) is not None and cal.get(a) is not None and cal[a] > cal[b]]


def _skip_reason(bundle, y_model, classes) -> str | None:
    known = getattr(bundle.model, "classes_", None)
    n_classes = len(classes or [0, 1])
    if known is None or not hasattr(bundle.model, "predict_proba"):
        return "the model has no predict_proba; cannot calibrate"
    if len(known) < n_classes:
        return (f"the model knows {len(known)} of the {n_classes} classes (a class is absent from its training "
                "rows); cannot calibrate")
    values, counts = np.unique(np.asarray(y_model), return_counts=True)
    if len(values) < n_classes or -1 in set(values.tolist()) or counts.min() < 2:
        return "the validation part lacks some classes (or has a class with fewer than 2 rows); cannot calibrate"
    return None


def calibrate_bundle(case: Case, dataset, bundle) -> dict:
    """Calibrate a classifier on the validation part when its ECE is poor (``evaluation.calibrate``).

    ``auto`` tries calibrators only when the validation ECE exceeds :data:`ECE_POOR`: sigmoid (and
    isotonic, from :data:`ISOTONIC_MIN_ROWS` validation rows) are each scored by a two-fold cross-fit on
    the validation rows, and one is kept only if it lowers the ECE and lowers the log loss by more than
    :data:`~mlcase.numeric.NOISE_Z` standard errors of the paired per-row difference, the rule an
    ensemble is held to (cluster-robust, with folds that keep each group on one side, under a group
    split); of those, the one with the lowest ECE. ``isotonic``/``sigmoid`` always calibrate with that
    method; ``none`` never. On success ``bundle.model`` becomes
    ``CalibratedClassifierCV(FrozenEstimator(model))`` fitted on the validation rows. Scores come from
    :func:`~mlcase.evaluate.valid_scores` (out-of-fold where the bake-off refitted on those rows), and
    the target is spelled as the model's ``classes_`` (codes or labels). Returns what was done, with the
    numbers.

    Measured on the 122 real tables of the round-2 sweeps (binary and multiclass) whose candidate's
    validation ECE exceeded :data:`ECE_POOR`, each calibrator fitted as here and scored once on the test
    rows. The bake-off's candidate (an ensemble on 108 of them; 20 s each): the earlier rule (any ECE
    drop without a cross-fitted log-loss rise) calibrated 27 and raised the test log loss on 19 (worst
    +35%; mean over all 122 +0.48%); this rule calibrated 4, one raised it by 0.9% (mean -0.01%). Fixed
    models that are often miscalibrated (a random forest, gradient boosting with and without early
    stopping; 366 fits): the earlier rule calibrated 207 and raised the test log loss on 41 (worst +140%,
    isotonic on 58 rows; mean -4.6%); this rule calibrated 68 and raised it on 4 (worst +16%; mean
    -3.1%). The isotonic threshold alone gives -5.2% there but +0.34% on the bake-off's candidates: the
    noise rule gives up small gains on weak models so as not to pay for noise on the models mlcase serves.
    """
    task_name = case.spec.task
    setting = case.spec.evaluation.calibrate
    out: dict[str, Any] = {"setting": setting, "applied": False, "method": None}
    if task_name == "regression":
        out["note"] = "regression predictions are not probabilities; nothing to calibrate"
        return out
    task = T.get_task(task_name)
    y = np.asarray(dataset.y_valid)
    s = valid_scores(bundle, dataset)
    ece_before = ece_of(task_name, y, s, bundle.classes)
    out["ece_valid_before"] = ece_before
    out["valid_scores"] = "out-of-fold" if getattr(bundle, "oof_valid", None) is not None else "model"
    if setting == "none":
        out["note"] = "evaluation.calibrate is 'none'"
        return out
    y_model = task.model_target(bundle.model, y, bundle.classes)
    skip = _skip_reason(bundle, y_model, bundle.classes)
    if skip:
        out["note"] = skip
        return out
    X = features_of(dataset.rows("valid"), bundle, dataset)
    fitter = _Calibrators(task_name, bundle, X, _as_matrix(task_name, s), y_model)
    if not fitter.usable:
        out["note"] = ("the model was refitted on the validation rows and scikit-learn would calibrate its "
                       "decision function, which its out-of-fold probabilities do not give; kept as is")
        return out
    method = setting
    if setting == "auto":
        if ece_before <= ECE_POOR:
            out["note"] = f"validation ECE {ece_before:.4f} is at most {ECE_POOR}; kept as is"
            return out
        methods = ("sigmoid", "isotonic") if len(y) >= ISOTONIC_MIN_ROWS else ("sigmoid",)
        groups = _groups(case, dataset)
        trials = {m: _crossfit(case, fitter, s, y, m, groups) for m in methods}
        out["crossfit"] = trials
        good = [m for m, t in trials.items() if t["ece_after"] < t["ece_before"] and t["gain"] > NOISE_Z * t["noise"]]
        if not good:
            out["note"] = _kept_note(trials, len(y))
            return out
        method = min(good, key=lambda m: trials[m]["ece_after"])
    out["method"] = method
    out["uncalibrated_model"] = bundle.model
    bundle.model, calibrated_oof = fitter.final(method)
    if calibrated_oof is not None:
        bundle.oof_valid = calibrated_oof
    bundle.params = {**(bundle.params or {}), "calibration": method}
    out["applied"] = True
    return out


def _as_matrix(task: str, scores) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    return np.column_stack([1 - s, s]) if task == "binary" else s


def _groups(case: Case, dataset) -> np.ndarray | None:
    """The validation rows' groups under a group split (rows of one group move together), else None."""
    if case.spec.split.method != "group" or not case.spec.data.group:
        return None
    return dataset.frame[case.spec.data.group].to_numpy()[dataset.split.valid]


def _kept_note(trials: dict, n_valid: int) -> str:
    """Why ``auto`` kept the model's own scores, with each calibrator's cross-fitted numbers."""
    parts = [f"{m}: ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f}, log loss gain {sig(t['gain'])} per row, "
             f"standard error {sig(t['noise'])}" for m, t in trials.items() if np.isfinite(t["gain"])]
    iso = ("" if "isotonic" in trials else
           f"; isotonic was not tried on {n_valid} validation rows (it overfits below {ISOTONIC_MIN_ROWS})")
    return (f"no calibration lowered the cross-fitted validation ECE with a log-loss gain above {NOISE_Z:g} "
            f"standard errors ({'; '.join(parts) or 'not measurable'}){iso}; kept as is")


def _crossfit(case, fitter: _Calibrators, raw, y, method, groups=None) -> dict:
    """ECE and log loss before/after calibration, each half scored by a calibrator fitted on the other half.

    ``gain`` is the mean per-row log loss the calibration saved and ``noise`` its standard error (paired);
    with ``groups`` the halves keep each group on one side and the error is cluster-robust.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    task_name = case.spec.task
    task = fitter.task
    classes = fitter.bundle.classes
    raw = np.asarray(raw, dtype=float)
    before = task.row_losses(y, raw, classes)[0]
    out = {"ece_before": ece_of(task_name, y, raw, classes), "log_loss_before": float(before.mean())}
    nan = float("nan")
    seed = case.spec.split.seed
    groups = None if groups is None else np.asarray(groups).astype(str)
    if groups is not None and len(np.unique(groups)) >= 2:
        halves = StratifiedGroupKFold(2, shuffle=True, random_state=seed).split(raw, fitter.y_model, groups=groups)
        out["groups"] = int(len(np.unique(groups)))
    else:
        groups = None
        halves = StratifiedKFold(2, shuffle=True, random_state=seed).split(raw, fitter.y_model)
    after = np.zeros_like(raw)
    for fit_idx, score_idx in halves:
        values, counts = np.unique(fitter.y_model[fit_idx], return_counts=True)
        if counts.min() < 2 or len(values) < len(np.unique(fitter.y_model)):  # a class too rare to fit on half
            return {**out, "ece_after": nan, "log_loss_after": nan, "gain": nan, "noise": nan,
                    "note": "a class has fewer than 2 rows in half of the validation part: not measurable"}
        after[score_idx] = fitter.scores(fitter.fit(method, fit_idx), score_idx)
    after_rows = task.row_losses(y, after, classes)[0]
    gain, noise = mean_se(before - after_rows, groups)
    return {**out, "ece_after": ece_of(task_name, y, after, classes), "log_loss_after": float(after_rows.mean()),
            "gain": gain, "noise": noise}


def calibration_report(case: Case, calibration: dict, uncalibrated, cand, X_test, y_test, scores_test,
                       losses_test) -> dict:
    """Add test-set ECE and reliability (before/after where a calibrator was fitted) to ``calibration``."""
    task_name = case.spec.task
    if task_name == "regression":
        return calibration
    calibration["ece_test"] = ece_of(task_name, y_test, scores_test, cand.classes)
    key = "reliability_after" if uncalibrated is not None else "reliability"
    calibration[key] = reliability_of(task_name, y_test, scores_test, cand.classes)
    if uncalibrated is not None:
        task = T.get_task(task_name)
        s_raw = task.scores(uncalibrated, X_test, cand.classes)
        calibration["ece_test_before"] = ece_of(task_name, y_test, s_raw, cand.classes)
        calibration["ece_test_after"] = calibration["ece_test"]
        calibration["reliability_before"] = reliability_of(task_name, y_test, s_raw, cand.classes)
        calibration["log_loss_test_before"] = float(task.row_losses(y_test, s_raw, cand.classes)[0].mean())
        calibration["log_loss_test_after"] = float(np.mean(losses_test))
    return calibration
