"""What every task type shares: the :class:`Task` interface, model-free policies, capacity and volume.

A task object answers every question a stage would otherwise answer by
branching on ``spec.task``: its metrics and their direction, the per-row
pieces of its primary metric, its costs (one object with ``.of(y, decision)``
per task), the policies that need no model at all (the floor every model is
judged against), how a fitted model's output becomes the bundle's scores (the
response shape), and how the target is spelled for a model's ``classes_``.
Adding a task type (ranking, forecast) is adding one module beside
``binary.py``, ``multiclass.py`` and ``regression.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..case import Case
from ..errors import SpecError
from ..spec import PERIOD_SECONDS, parse_rate

EPS = 1e-15


# --------------------------------------------------------------------------- capacity and volume
def capacity_share(case: Case) -> float | None:
    """``review_capacity`` as a share of decisions (a count per period is divided by the volume)."""
    cap = case.spec.constraints.review_capacity
    if cap is None:
        return None
    if isinstance(cap, float):
        return cap
    count, period = parse_rate(cap, "review capacity")
    vol = case.spec.problem.volume_rate
    if vol is None:
        raise SpecError(f"constraints.review_capacity '{cap}' is a count per {period}, which needs problem.volume",
                        "set problem.volume (e.g. '12000/month') or give the capacity as a share (0.08)")
    vcount, vperiod = vol
    per_sec_cap = count / PERIOD_SECONDS[period]
    per_sec_vol = vcount / PERIOD_SECONDS[vperiod or period]
    return float(min(1.0, per_sec_cap / per_sec_vol))


def capacity_rows(capacity: float | None, n: int) -> int:
    """How many of ``n`` rows a review capacity share lets through (all of them when there is no limit)."""
    return n if capacity is None else int(np.floor(capacity * n + 1e-9))


def volume_per_period(case: Case) -> tuple[float, str] | None:
    """``(decisions, period)`` from ``problem.volume``, or None."""
    vol = case.spec.problem.volume_rate
    if vol is None:
        return None
    return vol[0], vol[1] or "period"


# --------------------------------------------------------------------------- model-free policies
@dataclass
class ModelFreePolicy:
    """A decision policy that needs no model: never act, act at random, a constant, the prior.

    Parameters
    ----------
    name : str
        Key in results (``do_nothing``, ``random_review``, ``constant:VF``, ``median`` ...).
    description : str
        What the policy does, in words that fit into a sentence ("flag 30% of cases at random").
    kind : str
        ``never`` / ``always`` / ``random`` (binary), ``constant`` / ``prior`` (multiclass),
        ``mean`` / ``median`` / ``quantile`` (regression).
    params : dict
        What was learned from the training labels (a rate, a class, class shares, a value).
    expected_cost : callable
        ``expected_cost(costs, y) -> ndarray``: each row's *expected* cost under the task's
        cost object (random policies are averaged exactly, never sampled, so the per-row
        costs pair with a model's for a bootstrap).
    """

    name: str
    description: str
    kind: str
    params: dict = field(default_factory=dict)
    expected_cost: Any = field(default=None, repr=False, compare=False)

    def costs(self, costs, y) -> np.ndarray:
        """Expected cost of each row (see ``expected_cost``)."""
        return np.asarray(self.expected_cost(costs, y), dtype=float)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "params": {k: _plain(v) for k, v in self.params.items()}}


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    return v


def pct(share: float) -> str:
    """A share as a short percentage (``0.3`` -> ``30%``)."""
    return f"{100 * share:.3g}%"


# --------------------------------------------------------------------------- task interface
class Task:
    """The interface of one task type; see the module docstring."""

    name: str
    primary_metric: str
    greater_is_better: bool
    #: the model-free policy every model must beat when nothing else is known
    floor_description: str = ""

    def metrics(self, y, scores, **kw) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def row_losses(self, y, scores, classes=None) -> tuple[np.ndarray, Any, str]:  # pragma: no cover - abstract
        """Per-row pieces of the primary metric, the function turning their mean into it, and its name."""
        raise NotImplementedError

    def costs(self, case: Case, rows: pd.DataFrame, classes=None):  # pragma: no cover - abstract
        """The case's money for these rows: an object with ``.of(y, decisions) -> per-row cost``."""
        raise NotImplementedError

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """Every policy that needs no model, with its parameters learned from ``(rows, y)`` (training labels)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None) -> tuple[np.ndarray, dict]:
        """Per-row cost of a model that knows the truth (within the review capacity), and a summary."""
        raise NotImplementedError  # pragma: no cover - abstract

    def scores(self, model, X, classes=None) -> np.ndarray:
        """The bundle's scores from a fitted model: its response shape (see each task)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def model_target(self, model, y, classes=None) -> np.ndarray:
        """``y`` spelled as the fitted ``model.classes_`` spells the target (identity by default)."""
        return np.asarray(y)

    def class_index(self, y, classes=None) -> np.ndarray:
        """Column of each row's true class in the bundle's score matrix (-1: unknown); classification only."""
        raise NotImplementedError  # pragma: no cover - abstract
