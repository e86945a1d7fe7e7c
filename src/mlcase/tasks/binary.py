"""Binary decisions: act on a row (flag it) or not, at a threshold on P(positive), within review capacity.

Model-free policies: never act, always act (only where the review capacity
allows every case), and act on a random share of cases at the capacity. With
per-row costs the expected cost of acting at random at rate ``r`` is linear in
``r`` (``r * cost_if_flagged + (1 - r) * cost_if_not``, row by row), so the
best random rate is 0 (never act) or the capacity: those are the policies
listed, and their costs are exact expectations, not samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..case import Case
from ..rules import cost_values
from .base import EPS, ModelFreePolicy, Task, capacity_rows, capacity_share, pct


# --------------------------------------------------------------------------- costs
@dataclass
class RowCosts:
    """Money per row for each outcome of a binary decision (flag = act on the row)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    def of(self, y: np.ndarray, flag: np.ndarray) -> np.ndarray:
        """Cost of each row given the truth ``y`` (0/1) and the decision ``flag`` (0/1)."""
        y = np.asarray(y).astype(bool)
        f = np.asarray(flag).astype(bool)
        return np.where(f, np.where(y, self.tp, self.fp), np.where(y, self.fn, self.tn))

    def take(self, idx) -> RowCosts:
        return RowCosts(self.tp[idx], self.fp[idx], self.fn[idx], self.tn[idx])

    def if_flagged(self, y) -> np.ndarray:
        """Each row's cost if it is flagged."""
        return self.of(y, np.ones(len(y), dtype=int))

    def if_not_flagged(self, y) -> np.ndarray:
        """Each row's cost if it is not flagged."""
        return self.of(y, np.zeros(len(y), dtype=int))

    @property
    def gain_of_flagging(self) -> np.ndarray:
        """Per row: how much cheaper flagging is than not flagging, if the row is positive / negative."""
        return self.fn - self.tp, self.tn - self.fp


def binary_costs(case: Case, rows: pd.DataFrame) -> RowCosts:
    """Per-row costs from the spec (numbers or SQL expressions over the row).

    With no costs given, a unit cost per error (fp = fn = 1) is used, so cost is the error count.
    """
    c = case.spec.costs
    if not c.binary_given():
        n = len(rows)
        return RowCosts(np.zeros(n), np.ones(n), np.ones(n), np.zeros(n))
    return RowCosts(
        tp=cost_values(c.true_positive, rows, "costs.true_positive"),
        fp=cost_values(c.false_positive, rows, "costs.false_positive"),
        fn=cost_values(c.false_negative, rows, "costs.false_negative"),
        tn=cost_values(c.true_negative, rows, "costs.true_negative"),
    )


# --------------------------------------------------------------------------- thresholds under capacity
def choose_threshold(y: np.ndarray, p: np.ndarray, costs: RowCosts, capacity: float | None = None
                     ) -> tuple[float, float]:
    """Threshold on ``p`` minimising total cost with at most ``capacity`` of rows flagged.

    Candidates are the distinct scores; flagging is ``p >= t``. Returns
    ``(threshold, mean cost per row)``. Ties in cost go to the higher threshold
    (fewer flags). :func:`choose_cut` also cuts inside a block of tied scores.
    """
    t, _, cost = _cut(y, p, costs, capacity, split_ties=False)
    return t, cost


def choose_cut(y: np.ndarray, p: np.ndarray, costs: RowCosts, capacity: float | None = None
               ) -> tuple[float, float | None, float]:
    """:func:`choose_threshold` that may also cut a block of tied scores where the review capacity falls inside it.

    Returns ``(threshold, tie_share, mean cost per row)``: rows scored above the threshold are flagged, and
    ``tie_share`` of the rows scored at it (None: all of them). A model whose scores come in a few tied
    values (a table of one or two coded features) has a top block larger than the capacity; a threshold
    between distinct scores then flags nobody and the capacity goes unused, while the block's rows are
    still the likeliest. Flagging a share of them, drawn at random, is what a review queue does with
    equal scores: stevedata::fakeLogit (10,000 rows, one feature of five values) and Stat2Data::Putts1
    went NO_GO, "no model beats flagging 10% of cases at random", with a model that flagged 0% of the
    test rows. The cost of the partial block is its exact expectation.
    """
    return _cut(y, p, costs, capacity, split_ties=True)


def _cut(y, p, costs: RowCosts, capacity, split_ties: bool) -> tuple[float, float | None, float]:
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    n = len(y)
    if n == 0:
        return 1.0, None, 0.0
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    base = costs.if_not_flagged(y).sum()  # flag nobody
    delta = (costs.if_flagged(y) - costs.if_not_flagged(y))[order]
    cum = np.concatenate([[0.0], np.cumsum(delta)])  # cost change after flagging the top k
    # only cut between distinct scores: k such that ps[k-1] > ps[k]
    valid_k = np.concatenate([[True], ps[:-1] > ps[1:], [True]])
    ks = np.arange(n + 1)
    allowed = valid_k.copy()
    cap_k = None
    if capacity is not None:
        cap_k = capacity_rows(capacity, n)
        allowed &= ks <= cap_k
    total = np.where(allowed, base + cum, np.inf)
    k = int(np.argmin(total))  # first minimum = fewest flags among ties
    if split_ties and cap_k is not None and 0 < cap_k < n and not valid_k[cap_k]:
        # the capacity falls inside a block of tied scores [a, b): flag (cap_k - a) / (b - a) of it
        a = int(np.flatnonzero(valid_k[:cap_k + 1])[-1])
        b = cap_k + int(np.flatnonzero(valid_k[cap_k:])[0])
        share = (cap_k - a) / (b - a)
        partial = base + cum[a] + share * (cum[b] - cum[a])
        if partial < total[k] - 1e-9 * max(1.0, abs(total[k])):
            return float(ps[a]), float(share), float(partial / n)
    # flag nobody: just above the top score, with room for float noise of a recomputed score
    t = max(float(ps[0]) + 1e-12, float(np.nextafter(ps[0], np.inf))) if k == 0 else float(ps[k - 1])
    return t, None, float(total[k] / n)


AT_CUT = 1e-9   # relative: scores this close to the threshold are at it (one row scored alone or in a batch)


def at_threshold(p, threshold: float) -> np.ndarray:
    """Which scores sit at the threshold (within :data:`AT_CUT`): the rows a split threshold flags by a draw."""
    t = float(threshold)
    return np.abs(np.asarray(p, dtype=float) - t) <= AT_CUT * max(1.0, abs(t))


def binary_flags(p, threshold: float | None, tie_share: float | None = None, draws=None) -> np.ndarray:
    """0/1 flags: ``p >= threshold``, or, with ``tie_share``, every row above the threshold and that share of the
    rows at it (see :func:`choose_cut`).

    ``draws`` (one uniform number in [0, 1) per row) flags a row at the threshold where its draw is below the
    share: the server draws one per request; batch scoring takes a fixed one per input row
    (:func:`mlcase.score.row_draws`), so a row's decision does not depend on its chunk or engine. Without draws,
    exactly the share (rounded) of the rows at the threshold is flagged, chosen by a fixed random permutation:
    the evaluation's way, whose cost is then that of the share planned, the same on every run.
    """
    p = np.asarray(p, dtype=float)
    t = 0.5 if threshold is None else float(threshold)
    if tie_share is None:
        return (p >= t).astype("int64")
    at = at_threshold(p, t)
    flags = (p > t) & ~at
    idx = np.flatnonzero(at)
    if draws is None:
        chosen = idx[np.random.default_rng(0).permutation(len(idx))[:int(round(float(tie_share) * len(idx)))]]
    else:
        chosen = idx[np.asarray(draws, dtype=float).reshape(-1)[idx] < float(tie_share)]
    flags[chosen] = True
    return flags.astype("int64")


def capacity_threshold(p, capacity) -> float | None:
    """The lowest threshold whose flagged share stays within ``capacity`` (on these scores)."""
    if capacity is None or len(p) == 0:
        return None
    ps = np.sort(np.asarray(p, dtype=float))[::-1]
    k = capacity_rows(capacity, len(ps))
    if k == 0:
        return float(np.nextafter(ps[0], np.inf))
    if k >= len(ps):
        return float(ps[-1])
    # the k-th highest score, raised past ties with the (k+1)-th
    t = ps[k - 1]
    return float(t if ps[k] < t else np.nextafter(t, np.inf))


def capacity_cut(p, share: float) -> tuple[float, float | None]:
    """``(threshold, tie_share)`` that flags ``share`` of these scores: where that share falls inside a block of
    tied scores, the block's score and the part of it to flag (:func:`binary_flags`)."""
    ps = np.sort(np.asarray(p, dtype=float))[::-1]
    k = capacity_rows(share, len(ps))
    if k == 0 or k >= len(ps) or ps[k] < ps[k - 1]:
        return capacity_threshold(ps, share), None
    t = ps[k - 1]
    above, at = int((ps > t).sum()), int((ps == t).sum())
    return float(t), float((k - above) / at)


RATE_TOLERANCE = 0.25   # a model may flag this share more or fewer rows than planned (at least 2 points)


def carried_by_rate(own, reference, t: float, tie_share: float | None = None
                    ) -> tuple[float, float | None, float, float] | None:
    """``(threshold, tie_share, planned, served)``: the cut in ``own`` scores that flags the share ``t`` (with
    ``tie_share``) flags in ``reference``.

    Both are scores of the same rows by two fits of one configuration (out-of-fold and refitted,
    or refitted on more rows). Where ``t`` flags about the same share of ``own`` (within
    :data:`RATE_TOLERANCE` of it, at least 2 points), returns None: the threshold carries over as it is.
    Where the share falls inside a block of tied scores of ``own``, that share of the block is flagged
    (:func:`capacity_cut`), not none of it.
    """
    own, reference = np.asarray(own, dtype="float64"), np.asarray(reference, dtype="float64")
    if len(own) == 0 or len(reference) == 0:
        return None
    planned = float(np.mean(binary_flags(reference, t, tie_share)))
    served = float(np.mean(binary_flags(own, t, tie_share)))
    if planned == 0 or abs(served - planned) <= max(0.02, RATE_TOLERANCE * planned):
        return None
    cut, share = capacity_cut(own, planned)
    return cut, share, planned, served


def cost_curve(y, p, costs: RowCosts, grid: np.ndarray | None = None) -> pd.DataFrame:
    """Mean cost per row and share flagged for thresholds on a grid (for plots)."""
    grid = np.linspace(0, 1, 101) if grid is None else grid
    y = np.asarray(y).astype(int)
    rows = []
    for t in grid:
        flag = (p >= t).astype(int)
        rows.append({"threshold": float(t), "cost": float(costs.of(y, flag).mean()),
                     "flagged": float(flag.mean())})
    return pd.DataFrame(rows)


def perfect_cost(y, costs: RowCosts, capacity: float | None) -> tuple[float, np.ndarray]:
    """Mean cost per row of a classifier that knows the truth but may flag at most ``capacity``.

    It flags the rows where flagging saves the most (given their true label and
    their own costs), never a row where flagging saves nothing. Returns the
    mean cost and the 0/1 flags.
    """
    y = np.asarray(y).astype(bool)
    n = len(y)
    base = costs.if_not_flagged(y)
    gain = base - costs.if_flagged(y)  # how much flagging this row saves
    order = np.argsort(-gain, kind="stable")
    k = int((gain > 0).sum())
    if capacity is not None:
        k = min(k, capacity_rows(capacity, n))
    flags = np.zeros(n, dtype=int)
    flags[order[:k]] = 1
    return float((base.sum() - gain[order[:k]].sum()) / max(n, 1)), flags


# --------------------------------------------------------------------------- model-free policies
def random_review(rate: float) -> ModelFreePolicy:
    """Act on a share ``rate`` of cases chosen at random: each row's expected cost, exactly."""
    def expected(costs: RowCosts, y):
        return rate * costs.if_flagged(y) + (1 - rate) * costs.if_not_flagged(y)

    return ModelFreePolicy("random_review", f"flagging {pct(rate)} of cases at random", "random",
                           {"rate": float(rate)}, expected)


def never_act() -> ModelFreePolicy:
    return ModelFreePolicy("do_nothing", "never acting, flagging nobody", "never", {"rate": 0.0},
                           lambda costs, y: costs.if_not_flagged(y))


def always_act() -> ModelFreePolicy:
    return ModelFreePolicy("always_act", "acting on every case", "always", {"rate": 1.0},
                           lambda costs, y: costs.if_flagged(y))


# --------------------------------------------------------------------------- the task
class BinaryTask(Task):
    name = "binary"
    primary_metric = "log_loss"
    greater_is_better = False

    def metrics(self, y, p, threshold: float | None = 0.5, tie_share: float | None = None, **_) -> dict[str, float]:
        from sklearn import metrics as m

        y = np.asarray(y).astype(int)
        flag = binary_flags(p, threshold, tie_share)
        p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
        out = {"log_loss": float(m.log_loss(y, p, labels=[0, 1])),
               "brier": float(m.brier_score_loss(y, p, labels=[0, 1])),
               "accuracy": float(m.accuracy_score(y, flag)),
               "precision": float(m.precision_score(y, flag, zero_division=0)),
               "recall": float(m.recall_score(y, flag, zero_division=0)),
               "f1": float(m.f1_score(y, flag, zero_division=0)),
               "flag_rate": float(flag.mean())}
        if len(np.unique(y)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y, p))
            out["pr_auc"] = float(m.average_precision_score(y, p))
        return out

    def row_losses(self, y, scores, classes=None):
        p = np.clip(np.asarray(scores, dtype=float), EPS, 1 - EPS)
        yy = np.asarray(y).astype(int)
        return -(yy * np.log(p) + (1 - yy) * np.log(1 - p)), None, "log_loss"

    def costs(self, case: Case, rows: pd.DataFrame, classes=None) -> RowCosts:
        return binary_costs(case, rows)

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """Never act; act at random on the review capacity's share (0 < capacity < 1); always act
        where no capacity (or a capacity of every case) allows it."""
        capacity = capacity_share(case)
        out = [never_act()]
        if capacity is None or capacity >= 1:
            out.append(always_act())
        elif capacity > 0:
            out.append(random_review(capacity))
        return out

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None):
        costs = binary_costs(case, rows)
        _, flags = perfect_cost(y, costs, capacity_share(case))
        return costs.of(y, flags), {"flag_rate": float(flags.mean()) if len(flags) else 0.0}

    def scores(self, model, X, classes=None) -> np.ndarray:
        """P(positive): the column of class 1 in ``predict_proba`` (0 or 1 throughout if the model saw one class)."""
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        known = list(getattr(model, "classes_", [0, 1]))
        if proba.ndim == 2 and proba.shape[1] == len(known):
            for i, c in enumerate(known):
                if _is_one(c):
                    return proba[:, i]
            if len(known) == 1:  # a model that only ever saw the negative class
                return np.zeros(len(proba))
        return proba[:, 1]

    def class_index(self, y, classes=None) -> np.ndarray:
        return np.asarray(y).astype(int)


def _is_one(c) -> bool:
    try:
        return float(c) == 1.0
    except (TypeError, ValueError):
        return False
