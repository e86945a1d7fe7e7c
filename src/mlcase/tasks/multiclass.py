"""Multiclass decisions: one class per row, priced by ``costs.matrix[actual][predicted]``.

Labels and codes: the dataset's target holds the class labels (strings) and
``bundle.classes`` their sorted list; the bake-off fits models on codes into
that list (``classes_`` = 0..K-1, or fewer when a rare class is absent from the
training part), a notebook user may fit on the labels. :meth:`MulticlassTask.scores`
returns one probability column per class of ``bundle.classes`` whatever the
model's own ``classes_`` (a class the model never saw gets probability 0), and
:meth:`MulticlassTask.model_target` spells ``y`` as the model's ``classes_``
do, so calibrators and conformal scores see the labels the model knows.

Model-free policies: the cost-optimal constant class (on the training rows)
and the prior (each class at random by its training share; its cost is the
exact expectation over the classes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..case import Case
from .base import EPS, ModelFreePolicy, Task, pct


def multiclass_cost(case: Case, y, pred) -> np.ndarray:
    """Per-row cost of multiclass decisions: ``costs.matrix[actual][predicted]``; a cell not given
    costs 0 on the diagonal and 1 off it; with no matrix, each error costs 1."""
    matrix = case.spec.costs.matrix
    n = len(y)
    codes, names = _as_text(np.concatenate([np.asarray(y, dtype=object), np.asarray(pred, dtype=object)]))
    if not matrix:
        return (codes[:n] != codes[n:]).astype(float)
    k = len(names)
    pairs, seen = pd.factorize(codes[:n] * k + codes[n:])
    return np.array([_cell(matrix, names[p // k], names[p % k]) for p in seen], dtype=float)[pairs]


def _as_text(values) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, texts)``: each value's position in ``texts``, the distinct labels as strings (values that
    read the same are one label: 1 and '1').

    One hash pass and one ``str()`` per distinct value: ``astype(str)`` of the rows, and a dict
    lookup per row, took 25 s of openintro::military's run (226,335 test rows, costs read ~100
    times).
    """
    codes, distinct = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    same, texts = pd.factorize(np.array([str(v) for v in distinct], dtype=object))
    return same[codes], np.asarray(texts, dtype=object)


def _positions(values, classes) -> np.ndarray:
    """Each value's position in ``classes`` compared as text (-1 where it is none of them)."""
    codes, texts = _as_text(values)
    pos = {str(c): i for i, c in enumerate(classes)}
    return np.array([pos.get(t, -1) for t in texts], dtype=int)[codes]


def check_matrix(matrix: dict | None, classes) -> None:
    """A :class:`~mlcase.errors.SpecError` where ``costs.matrix`` names a class the target does not have."""
    from ..errors import SpecError

    names = [str(c) for c in classes]
    for a, row in (matrix or {}).items():
        for p in row:
            if str(a) not in names or str(p) not in names:
                raise SpecError(f"costs.matrix names class '{a if str(a) not in names else p}', which the target "
                                "does not have", f"use the target's classes: {', '.join(names)}")


def _cell(matrix: dict, actual, predicted) -> float:
    """``costs.matrix[actual][predicted]``; a cell not given costs 0 on the diagonal and 1 off it."""
    a, p = str(actual), str(predicted)
    return float(matrix.get(a, {}).get(p, 0.0 if a == p else 1.0))


def cost_matrix(case: Case, classes) -> list[list[float]] | None:
    """``C[i][j]``: the money when the truth is ``classes[i]`` and the decision ``classes[j]``
    (:func:`multiclass_cost`'s cells), or None where every error costs the same and a right answer
    nothing: the most probable class is then the cheapest decision."""
    matrix = case.spec.costs.matrix
    if not matrix or classes is None:
        return None
    m = np.array([[_cell(matrix, a, p) for p in classes] for a in classes])
    off = m[~np.eye(len(classes), dtype=bool)]
    if np.allclose(np.diag(m), 0) and len(off) and np.allclose(off, off[0]) and off[0] > 0:
        return None
    return m.tolist()


def decide_classes(proba, classes, matrix: list | None) -> np.ndarray:
    """The decision per row: the class of least expected cost, ``argmin_j sum_i p_i C[i][j]`` (the Bayes
    decision), or the most probable class where :func:`cost_matrix` is None.

    With an uneven matrix the two differ: on a three-class table where calling a 'high' case 'low'
    costs 5 and every other error 1, a row with P = (low 0.5, mid 0.1, high 0.4) is called 'high'
    (expected cost 0.6, against 2.1 for 'low' and 0.9 for 'mid').
    """
    proba = np.asarray(proba, dtype="float64")
    labels = np.asarray(classes, dtype=object)
    if matrix is None:
        return labels[np.argmax(proba, axis=1)]
    return labels[np.argmin(proba @ np.asarray(matrix, dtype="float64"), axis=1)]


class MulticlassCosts:
    """``.of(y, pred)``: the cost matrix row by row (labels in, money out)."""

    def __init__(self, case: Case):
        self.case = case

    def of(self, y, pred) -> np.ndarray:
        return multiclass_cost(self.case, y, pred)


def _codes(model) -> bool:
    """Whether a fitted classifier's ``classes_`` are integer codes into ``bundle.classes``."""
    known = getattr(model, "classes_", None)
    return known is not None and np.asarray(known).dtype.kind in "iub"


def constant_class(label) -> ModelFreePolicy:
    return ModelFreePolicy(f"constant:{label}", f"always predicting '{label}'", "constant", {"class": str(label)},
                           lambda costs, y: costs.of(y, np.full(len(y), str(label), dtype=object)))


def prior_policy(classes: list, shares: np.ndarray) -> ModelFreePolicy:
    def expected(costs, y):
        out = np.zeros(len(y))
        for c, q in zip(classes, shares, strict=True):
            if q > 0:
                out += q * costs.of(y, np.full(len(y), str(c), dtype=object))
        return out

    text = ", ".join(f"{c} {pct(q)}" for c, q in zip(classes, shares, strict=True))
    return ModelFreePolicy("prior", f"predicting each class at random by its training share ({text})", "prior",
                           {"shares": {str(c): float(q) for c, q in zip(classes, shares, strict=True)}}, expected)


class MulticlassTask(Task):
    name = "multiclass"
    primary_metric = "log_loss"
    greater_is_better = False

    def metrics(self, y, proba, classes=None, **_) -> dict[str, float]:
        from sklearn import metrics as m

        proba = np.asarray(proba, dtype=float)
        classes = [str(c) for c in classes] if classes is not None else sorted(map(str, np.unique(y)))
        y = np.asarray(y).astype(str)
        pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)].astype(str)
        losses, _, _ = self.row_losses(y, proba, classes)
        return {"log_loss": float(losses.mean()),
                "accuracy": float(m.accuracy_score(y, pred)),
                "macro_f1": float(m.f1_score(y, pred, labels=classes, average="macro", zero_division=0))}

    def row_losses(self, y, scores, classes=None):
        proba = np.clip(np.asarray(scores, dtype=float), EPS, 1)
        proba = proba / proba.sum(axis=1, keepdims=True)
        col = self.class_index(y, classes)
        pick = np.where(col >= 0, proba[np.arange(len(col)), np.clip(col, 0, None)], EPS)
        return -np.log(pick), None, "log_loss"

    def costs(self, case: Case, rows: pd.DataFrame, classes=None) -> MulticlassCosts:
        return MulticlassCosts(case)

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """The constant class that costs least on the training rows, and the prior."""
        codes, seen = _as_text(y)
        per_text = np.bincount(codes, minlength=len(seen)).astype(float)
        classes = [str(c) for c in (classes if classes is not None else sorted(seen))]
        count_of = dict(zip(seen, per_text, strict=True))
        counts = np.array([count_of.get(c, 0.0) for c in classes], dtype=float)
        shares = counts / max(counts.sum(), 1)
        # a constant decision's mean cost, from the count of each actual class (a cell per class, not per row)
        matrix = case.spec.costs.matrix or {}
        n = max(float(per_text.sum()), 1.0)
        mean_cost = [sum(k * _cell(matrix, a, c) for a, k in count_of.items()) / n if len(codes) else 0.0
                     for c in classes]
        # cheapest; on a tie the most frequent class
        best = min(range(len(classes)), key=lambda i: (round(mean_cost[i], 12), -counts[i]))
        return [constant_class(classes[best]), prior_policy(classes, shares)]

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None):
        y = np.asarray(y).astype(str)
        return self.costs(case, rows).of(y, y), {}

    def scores(self, model, X, classes=None) -> np.ndarray:
        """Probabilities with one column per class of ``classes`` (0 for a class the model never saw)."""
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        known = getattr(model, "classes_", None)
        if classes is None or known is None:
            return proba
        k = len(classes)
        if _codes(model):
            cols = np.asarray(known, dtype=int)
        else:
            pos = {str(c): i for i, c in enumerate(classes)}
            cols = np.array([pos.get(str(c), -1) for c in known])
        if proba.shape[1] == k and np.array_equal(cols, np.arange(k)):
            return proba
        full = np.zeros((proba.shape[0], k))
        ok = (cols >= 0) & (cols < k)
        full[:, cols[ok]] = proba[:, ok]
        return full

    def model_target(self, model, y, classes=None) -> np.ndarray:
        """Labels as codes into ``classes`` for a model fitted on codes, else as strings."""
        y = np.asarray(y)
        if classes is not None and _codes(model) and y.dtype.kind not in "iub":
            return _positions(y, classes)
        if y.dtype.kind in "iub":
            return y
        codes, texts = _as_text(y)
        return texts.astype(str)[codes]

    def class_index(self, y, classes=None) -> np.ndarray:
        y = np.asarray(y)
        if classes is None:
            return y.astype(int)
        return _positions(y, classes)
