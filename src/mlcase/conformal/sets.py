"""Prediction sets and intervals from a bundle's scores and its stored calibration, with numpy
alone (serving rebuilds them per request; a test pins them to MAPIE's own)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ModelError

CONFORMAL_VERSION = 1
EPSILON = 1e-8            # MAPIE's tolerance when comparing scores with the quantile


# --------------------------------------------------------------------------- serving-side sets
def predict_sets(bundle, X: pd.DataFrame, conformal: dict | None = None) -> list:
    """Prediction sets (class-label lists) or intervals ``(low, high)`` from ``bundle.conformal``.

    Needs no MAPIE object: only ``bundle.scores(X)`` and the stored quantile.
    """
    conf = _conf(bundle, conformal)
    return sets_of_scores(bundle, bundle.scores(X), conf)


def sets_of_scores(bundle, scores: np.ndarray, conformal: dict | None = None) -> list:
    """:func:`predict_sets` for scores already computed (``bundle.scores(X)``): no model call, no frame.

    The server answers each record's set from the score it has just computed; it built a pandas frame of the
    records for a stand-in model that ignored it (1.4 ms of the 2.6 ms of CPU a churn request took).
    """
    conf = _conf(bundle, conformal)
    if bundle.task == "regression":
        low, high = intervals_from_scores(scores, conf)
        return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    member = sets_from_scores(_proba(bundle, scores), conf)
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


def distinct_rows(member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and each row's index among them (``np.unique(axis=0)``'s answer).

    Up to 62 columns, each row is one integer (a bit per column) and the integers are
    made unique: ``np.unique(member, axis=0)`` sorts the rows as structured records, which
    took 0.16 s of the 0.95 s ``mlcase score`` spent on 200k rows of a binary model
    (benchmarks/score_speed.py, ``mlcase.score``); this takes a few milliseconds.
    """
    member = np.asarray(member, dtype=bool)
    k = member.shape[1] if member.ndim == 2 else 0
    if member.ndim != 2 or k > 62:
        patterns, inverse = np.unique(member, axis=0, return_inverse=True)
        return patterns, np.asarray(inverse).reshape(-1)
    bits = np.arange(k, dtype=np.int64)
    codes = member.astype(np.int64) @ (np.int64(1) << bits)
    uniq, inverse = np.unique(codes, return_inverse=True)
    return ((uniq[:, None] >> bits) & 1).astype(bool), np.asarray(inverse).reshape(-1)


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
    """``(low, high)`` arrays: prediction -+ the calibrated absolute-residual quantile, the low side
    raised to the calibration's ``floor`` where it has one (a target never below 0 in the rows it was
    learnt from: a price or a count gets no negative bound, and no covered value leaves the interval)."""
    pred = np.asarray(pred, dtype="float64")
    q = conformal.get("quantile")
    q = math.inf if q is None else float(q)
    low, high = pred - q, pred + q
    floor = conformal.get("floor")
    if floor is not None and math.isfinite(q):   # an unbounded interval (too few calibration rows) stays unbounded
        low = np.maximum(low, float(floor))
        high = np.maximum(high, float(floor))
    return low, high


def json_interval(low, high) -> list[float | None]:
    """``[low, high]`` for JSON: an unbounded side is ``null`` (a calibration set too small for the level
    gives (-inf, inf); JSON has no infinity, and a server that wrote it failed every request with a 500)."""
    return [float(v) if math.isfinite(float(v)) else None for v in (low, high)]


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


def _class_index(bundle, y) -> np.ndarray:
    from ..tasks import get_task

    return get_task(bundle.task).class_index(y, bundle.classes)
