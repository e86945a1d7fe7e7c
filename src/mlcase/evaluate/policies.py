"""Decision policies on the validation rows: each bundle's threshold under the review capacity,
and the model-free policies (never act, act at random, a constant, the prior) that are the
floor every model is judged against.

Model-free policies learn their parameters (class shares, a mean, a median, a
quantile) from the training labels, like the baselines; the best of them is
chosen on the validation rows, like the best baseline; the test rows judge
them once, with their exact expected per-row cost (a random policy is
averaged, never sampled), so each pairs row by row with a model's cost in the
bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import tasks as T
from ..case import Case
from .common import is_trivial, valid_scores


@dataclass
class FloorPolicies:
    """The model-free policies of a case, their expected per-row costs, and the best on validation."""

    policies: list[T.ModelFreePolicy]
    valid_cost: dict[str, float]
    best: str

    def by_name(self, name: str) -> T.ModelFreePolicy:
        return next(p for p in self.policies if p.name == name)

    def test_costs(self, costs, y) -> dict[str, np.ndarray]:
        """Each policy's expected cost per row under ``costs`` (the task's cost object of these rows)."""
        return {p.name: p.costs(costs, y) for p in self.policies}


def model_free_policies(case: Case, dataset) -> FloorPolicies:
    """Fit the task's model-free policies on the training labels and pick the cheapest on validation.

    On a tie the earlier policy wins (never act before acting at random; the
    constant class before the prior; the mean before the median).
    """
    task = T.get_task(case.spec.task)
    policies = task.model_free(case, dataset.rows("train"), dataset.y_train, dataset.classes)
    rows_v, y_v = dataset.rows("valid"), dataset.y_valid
    costs_v = task.costs(case, rows_v, dataset.classes)
    valid_cost = {p.name: float(p.costs(costs_v, y_v).mean()) if len(y_v) else 0.0 for p in policies}
    best = min(policies, key=lambda p: round(valid_cost[p.name], 9)).name
    return FloorPolicies(policies, valid_cost, best)


def decision_threshold(case: Case, rows: pd.DataFrame, y, p) -> tuple[float, float]:
    """Threshold on P(positive) that minimises the rows' own costs within ``review_capacity``.

    Parameters
    ----------
    rows : DataFrame
        All columns of the rows (per-row cost expressions read them).
    y, p : array
        0/1 truth and P(positive) of the same rows.

    Returns
    -------
    (threshold, mean cost per decision); flagging is ``p >= threshold``.
    """
    return T.choose_threshold(y, p, T.binary_costs(case, rows), T.capacity_share(case))


def rate_matched(bundle, dataset, oof: np.ndarray, t: float, tie_share: float | None = None
                 ) -> tuple[float, float | None, str] | None:
    """The threshold at which the served model flags as many validation rows as the plan, where the
    threshold chosen on out-of-fold scores would not.

    The threshold is chosen on out-of-fold scores (models that did not see the rows), and the
    model that serves is refitted on more rows. Where most scores crowd near 0 or 1, the two
    differ at the cut by less than the gaps between rows, and the same threshold flags a very
    different share: on ISLR::College (73% private; review capacity 10%) the out-of-fold
    threshold was 0.9982, and the refitted ensemble flagged 1.3% of the test rows, not 10%
    (LightGBM 38%, HistGradientBoosting 0%); the case ended NO_GO with a log loss of 0.25.
    The decision is a cut in the ranking, so it is carried over by its rate: the served model's own
    scores on the validation rows are cut where they flag the share the plan flagged (within the
    capacity, ties kept out). On College the five fitted models then flagged 3% to 10% of the
    test rows against the planned 9.7% (before: 0% to 55%). The rest of the gap is the served
    model's own fit to the validation rows it was refitted on, which makes its scores there a
    little more extreme than on new rows. Returns None where the threshold already flags that share.
    """
    if getattr(bundle, "oof_valid", None) is None or len(oof) == 0:
        return None
    carried = T.carried_by_rate(bundle.scores(dataset.X_valid), oof, t, tie_share)
    if carried is None:
        return None
    matched, share, planned, served = carried
    return matched, share, (f"the out-of-fold threshold {t:.6g} would make the served model flag {served:.1%} of the "
                            f"validation rows instead of the planned {planned:.1%}; it serves at {matched:.6g}, "
                            "the cut where its own scores flag the planned share"
                            + (f" ({share:.1%} of the rows tied at it, drawn at random)" if share is not None else ""))


def choose_thresholds(case: Case, dataset, bundles: dict) -> tuple[dict, dict, dict]:
    """Every bundle's decision rule and validation cost, from :func:`valid_scores`.

    Binary bundles get their cost-minimising ``threshold`` within the review
    capacity; regression bundles their ``point`` map where the costs call for one
    (:func:`mlcase.tasks.choose_point`); both are set on the bundle. Returns
    ``(thresholds, valid_cost, valid_scores)``.
    """
    task_name = case.spec.task
    task = T.get_task(task_name)
    rows_v, y_v = dataset.rows("valid"), dataset.y_valid
    costs_v = task.costs(case, rows_v, dataset.classes)
    capacity = T.capacity_share(case) if task_name == "binary" else None
    thresholds: dict[str, float | None] = {}
    valid_cost: dict[str, float] = {}
    scores: dict[str, np.ndarray] = {}
    floor = T.target_floor(dataset.y_train, y_v) if task_name == "regression" else None
    for name, b in bundles.items():
        s = scores[name] = valid_scores(b, dataset)
        if task_name == "binary":
            b.threshold, b.tie_share, valid_cost[name] = T.choose_cut(y_v, s, costs_v, capacity)
            b.metrics.pop("threshold_oof", None)
            b.metrics.pop("threshold_note", None)
            b.metrics.pop("tie_share_oof", None)
            matched = rate_matched(b, dataset, s, b.threshold, b.tie_share)
            if matched is not None:
                b.metrics["threshold_oof"], b.metrics["threshold_note"] = float(b.threshold), matched[2]
                b.metrics["tie_share_oof"] = b.tie_share
                b.threshold, b.tie_share = matched[0], matched[1]
            thresholds[name] = float(b.threshold)
        else:
            if task_name == "multiclass":
                b.cost_matrix = T.cost_matrix(case, b.classes)
            if task_name == "regression" and not is_trivial(b):  # a constant stays the constant it is named
                b.point, b.metrics["point_note"] = T.choose_point(y_v, s, costs_v.under, costs_v.over)
                if floor is not None:
                    b.point = {**(b.point or {}), "floor": floor}
                    b.metrics["point_note"] += f", never below {floor:g} (no training target was)"
            valid_cost[name] = float(costs_v.of(y_v, b.decide(s)).mean()) if len(y_v) else 0.0
            thresholds[name] = None
    return thresholds, valid_cost, scores
