"""Which cases conformal deferral sends to review: one rule for the evaluation, ``mlcase score``, the server and
``mlcase replay``.

A case asks to be deferred when its set is not one class (binary: and the threshold did not flag it already) or
its interval is wider than ``conformal.max_interval_width``; the most uncertain go first (bigger sets, then a
score closer to the threshold, a smaller margin between the two likeliest classes, a wider interval) as long as
flagged plus deferred cases stay within ``constraints.review_capacity`` on new cases too, with 95% confidence
(:func:`held_rows`). A server answers one case at a time and
cannot rank it against the others, so that ranking is turned into a cut on the validation rows, as the threshold
is: :func:`choose_cut` keeps the uncertainty of the least uncertain case that still fits, and :func:`apply_cut`
defers the cases at least that uncertain (a tied block at the cut by a draw, as a split threshold flags).

ggplot2::mpg (7 classes, review capacity 20%): the evaluation deferred 9 of 47 test cases, while `mlcase score`
and the server sent every case whose set held two classes or more to review, 42 of 47 (89%).
"""

from __future__ import annotations

import numpy as np

#: the confidence that the share of new cases sent to review (flagged and deferred) stays within the capacity. The
#: cut is the uncertainty of the k-th most uncertain of n validation rows; the share of new cases at least that
#: uncertain is Beta(k, n + 1 - k) (order statistics), whose mean is k / (n + 1): a cut that fills the capacity on
#: the validation rows overfills it on about half of the new batches (modeldata::credit_data served: 288 flagged and
#: 14 deferred of 891 test rows, 302 for a capacity of 267). The cut keeps the room this bound leaves.
HOLD = 0.95

#: keys within this share of the cut (at least this much) count as tied with it: equal intervals' widths differ by
#: round-off that grows with the target's scale
TIE = 1e-9


def keys(task: str, scores, sizes, threshold: float | None = None, width=None) -> tuple[np.ndarray, np.ndarray]:
    """Each case's uncertainty as ``(set size, closeness)``, both larger for a more uncertain case: closeness is
    minus the distance of the score to the threshold (binary), minus the margin between the two likeliest classes
    (multiclass), the interval's width (regression, whose size is 0)."""
    scores = np.asarray(scores, dtype="float64")
    if task == "regression":
        w = np.asarray(width, dtype="float64")
        return np.zeros(len(w)), np.where(np.isfinite(w), w, np.finfo("float64").max)
    sizes = np.asarray(sizes, dtype="float64")
    if task == "binary":
        t = 0.5 if threshold is None else float(threshold)
        return sizes, -np.abs(scores.reshape(-1) - t)
    top2 = np.sort(scores.reshape(len(scores), -1), axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0] if top2.shape[1] == 2 else np.ones(len(scores))
    return sizes, -margin


def choose_cut(candidates, size, close, room: int) -> dict:
    """The cut that defers the ``room`` most uncertain candidates (of the validation rows).

    ``{"all": True}`` where every candidate fits, ``{"none": True}`` where none does, else the size and
    closeness of the last one deferred, with the share of the candidates tied with it that fit (``tie_share``).
    """
    candidates = np.asarray(candidates, dtype=bool)
    n_cand = int(candidates.sum())
    if room >= n_cand:
        return {"all": True}
    if room <= 0:
        return {"none": True}
    idx = np.flatnonzero(candidates)
    order = np.lexsort((-np.asarray(close)[idx], -np.asarray(size)[idx]))
    last = idx[order[room - 1]]
    s, c = float(size[last]), float(close[last])
    at = candidates & (np.asarray(size) == s) & (np.abs(np.asarray(close) - c) <= _tie(c))
    beyond = candidates & _beyond(size, close, s, c)
    share = (room - int(beyond.sum())) / max(1, int(at.sum()))
    return {"size": s, "closeness": c, "tie_share": float(min(1.0, max(0.0, share)))}


def apply_cut(cut: dict, candidates, size, close, draws) -> np.ndarray:
    """The candidates deferred under ``cut`` (``draws``: one uniform number per case for a tie at the cut)."""
    candidates = np.asarray(candidates, dtype=bool)
    if cut.get("all"):
        return candidates.copy()
    if cut.get("none"):
        return np.zeros(len(candidates), dtype=bool)
    s, c = float(cut["size"]), float(cut["closeness"])
    size, close = np.asarray(size, dtype="float64"), np.asarray(close, dtype="float64")
    at = (size == s) & (np.abs(close - c) <= _tie(c))
    return candidates & (_beyond(size, close, s, c) | (at & (np.asarray(draws) < float(cut["tie_share"]))))


def draws(rows) -> np.ndarray:
    """A case's draw for a tie at the deferral cut, fixed by its row number (``mlcase score``, the evaluation): a
    low-discrepancy sequence apart from the one a split threshold draws from (:func:`mlcase.score.row_draws`)."""
    step = 2 ** 0.5 - 1
    return np.modf((np.asarray(rows, dtype="float64") + 1.0) * step)[0]


def _beyond(size, close, s: float, c: float) -> np.ndarray:
    size, close = np.asarray(size, dtype="float64"), np.asarray(close, dtype="float64")
    return (size > s) | ((size == s) & (close > c + _tie(c)))


def _tie(c: float) -> float:
    return TIE * max(1.0, abs(c))


def held_rows(capacity: float | None, n: int, hold: float = HOLD) -> int:
    """The most of ``n`` validation rows a policy may send to review so that, with confidence ``hold``, the share of
    new rows it sends stays within ``capacity``: the largest k whose Beta(k, n + 1 - k) ``hold`` quantile is at most
    ``capacity`` (all ``n`` without a capacity)."""
    from scipy.stats import beta

    from ..tasks import capacity_rows

    top = capacity_rows(capacity, n)
    if capacity is None or top <= 0:
        return max(0, top)
    k = np.arange(1, top + 1)
    ok = k[beta.ppf(hold, k, n + 1 - k) <= capacity + 1e-12]
    return int(ok.max()) if len(ok) else 0


def validation_cut(case, bundle, scores, conformal: dict) -> dict | None:
    """The deferral cut for ``bundle`` from its validation scores and calibration (None: deferral is off)."""
    from ..tasks import capacity_rows, capacity_share
    from .sets import _proba, intervals_from_scores, sets_from_scores

    spec = case.spec.conformal
    if not spec.defer or bundle.task not in ("binary", "multiclass", "regression"):
        return None
    scores = np.asarray(scores, dtype="float64")
    n = len(scores)
    share = capacity_share(case)
    room, capacity_room = held_rows(share, n), capacity_rows(share, n)
    if bundle.task == "regression":
        if spec.max_interval_width is None:
            return None
        low, high = intervals_from_scores(scores, conformal)
        width = high - low
        size, close = keys("regression", scores, None, width=width)
        candidates = width > spec.max_interval_width
    else:
        sizes = sets_from_scores(_proba(bundle, scores), conformal).sum(axis=1)
        size, close = keys(bundle.task, scores, sizes, bundle.threshold)
        candidates = sizes != 1
        if bundle.task == "binary":
            from ..score import row_draws

            flag = np.asarray(bundle.decide(scores, row_draws(np.arange(n)) if bundle.tie_share is not None
                                            else None)).astype(bool)
            candidates &= ~flag
            room -= int(flag.sum())
            capacity_room -= int(flag.sum())
    cut = choose_cut(candidates, size, close, room)
    cut.update(n_validation=int(n), wanted=int(candidates.sum()), room=int(max(0, room)),
               capacity_room=int(max(0, capacity_room)), hold=HOLD)
    return cut
