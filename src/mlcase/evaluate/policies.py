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
from .common import valid_scores


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


def choose_thresholds(case: Case, dataset, bundles: dict) -> tuple[dict, dict, dict]:
    """Every bundle's decision rule and validation cost, from :func:`valid_scores`.

    Binary bundles get their cost-minimising ``threshold`` within the review
    capacity (set on the bundle). Returns ``(thresholds, valid_cost, valid_scores)``.
    """
    task_name = case.spec.task
    task = T.get_task(task_name)
    rows_v, y_v = dataset.rows("valid"), dataset.y_valid
    costs_v = task.costs(case, rows_v, dataset.classes)
    capacity = T.capacity_share(case) if task_name == "binary" else None
    thresholds: dict[str, float | None] = {}
    valid_cost: dict[str, float] = {}
    scores: dict[str, np.ndarray] = {}
    for name, b in bundles.items():
        s = scores[name] = valid_scores(b, dataset)
        if task_name == "binary":
            b.threshold, valid_cost[name] = T.choose_threshold(y_v, s, costs_v, capacity)
            thresholds[name] = float(b.threshold)
        else:
            valid_cost[name] = float(costs_v.of(y_v, b.decide(s)).mean()) if len(y_v) else 0.0
            thresholds[name] = None
    return thresholds, valid_cost, scores
