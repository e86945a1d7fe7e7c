"""One object per task type: metrics and their direction, costs, threshold policy.

Stages ask the task object instead of branching on ``spec.task``, so adding a
task is adding one class here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .case import Case
from .errors import SpecError
from .rules import cost_values
from .spec import PERIOD_SECONDS, parse_rate

EPS = 1e-15


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


def regression_rates(case: Case, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(under, over)``: money per unit of prediction below / above the truth (1 where not given)."""
    c = case.spec.costs
    under = cost_values(c.under if c.under is not None else 1.0, rows, "costs.under")
    over = cost_values(c.over if c.over is not None else 1.0, rows, "costs.over")
    return under, over


def regression_cost_of(under, over, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row cost of predictions given the rows' :func:`regression_rates`."""
    err = np.asarray(pred, dtype=float) - np.asarray(y, dtype=float)
    return np.where(err < 0, -err * under, err * over)


def regression_cost(case: Case, rows: pd.DataFrame, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row cost of a regression prediction: ``under`` per unit below the truth, ``over`` per unit above."""
    return regression_cost_of(*regression_rates(case, rows), y, pred)


def multiclass_cost(case: Case, y, pred) -> np.ndarray:
    """Per-row cost of multiclass decisions: ``costs.matrix[actual][predicted]``; a cell not given
    costs 0 on the diagonal and 1 off it; with no matrix, each error costs 1."""
    matrix = case.spec.costs.matrix
    y = np.asarray(y, dtype=object)
    pred = np.asarray(pred, dtype=object)
    if not matrix:
        return (y != pred).astype(float)
    return np.array([float(matrix.get(str(a), {}).get(str(p), 0.0 if a == p else 1.0))
                     for a, p in zip(y, pred, strict=True)], dtype=float)


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
    vol = case.spec.problem.volume_rate
    if vol is None:
        return None
    return vol[0], vol[1] or "period"


def choose_threshold(y: np.ndarray, p: np.ndarray, costs: RowCosts, capacity: float | None = None
                     ) -> tuple[float, float]:
    """Threshold on ``p`` minimising total cost with at most ``capacity`` of rows flagged.

    Candidates are the distinct scores; flagging is ``p >= t``. Returns
    ``(threshold, mean cost per row)``. Ties in cost go to the higher threshold
    (fewer flags).
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    n = len(y)
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    base = costs.of(y, np.zeros(n, dtype=int)).sum()  # flag nobody
    delta = (costs.of(y, np.ones(n, dtype=int)) - costs.of(y, np.zeros(n, dtype=int)))[order]
    cum = np.concatenate([[0.0], np.cumsum(delta)])  # cost change after flagging the top k
    # only cut between distinct scores: k such that ps[k-1] > ps[k]
    valid_k = np.concatenate([[True], ps[:-1] > ps[1:], [True]])
    ks = np.arange(n + 1)
    allowed = valid_k.copy()
    if capacity is not None:
        allowed &= ks <= capacity_rows(capacity, n)
    total = base + cum
    total = np.where(allowed, total, np.inf)
    k = int(np.argmin(total))  # first minimum = fewest flags among ties
    if k == 0:
        t = float(ps[0] + 1e-12) if n else 1.0
        t = max(t, np.nextafter(ps[0], np.inf)) if n else 1.0
    else:
        t = float(ps[k - 1])
    return t, float(total[k] / max(n, 1))


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


# --------------------------------------------------------------------------- tasks
class Task:
    name: str
    primary_metric: str
    greater_is_better: bool

    def metrics(self, y, scores, **kw) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


class BinaryTask(Task):
    name = "binary"
    primary_metric = "log_loss"
    greater_is_better = False

    def metrics(self, y, p, threshold: float = 0.5) -> dict[str, float]:
        from sklearn import metrics as m

        y = np.asarray(y).astype(int)
        p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
        flag = (p >= threshold).astype(int)
        out = {"log_loss": float(m.log_loss(y, p, labels=[0, 1])),
               "brier": float(m.brier_score_loss(y, p)),
               "accuracy": float(m.accuracy_score(y, flag)),
               "precision": float(m.precision_score(y, flag, zero_division=0)),
               "recall": float(m.recall_score(y, flag, zero_division=0)),
               "f1": float(m.f1_score(y, flag, zero_division=0)),
               "flag_rate": float(flag.mean())}
        if len(np.unique(y)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y, p))
            out["pr_auc"] = float(m.average_precision_score(y, p))
        return out


class MulticlassTask(Task):
    name = "multiclass"
    primary_metric = "log_loss"
    greater_is_better = False

    def metrics(self, y, proba, classes=None) -> dict[str, float]:
        from sklearn import metrics as m

        proba = np.asarray(proba, dtype=float)
        classes = list(classes) if classes is not None else sorted(np.unique(y))
        pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
        return {"log_loss": float(m.log_loss(y, np.clip(proba, EPS, 1), labels=classes)),
                "accuracy": float(m.accuracy_score(y, pred)),
                "macro_f1": float(m.f1_score(y, pred, average="macro", zero_division=0))}


class RegressionTask(Task):
    name = "regression"
    primary_metric = "rmse"
    greater_is_better = False

    def metrics(self, y, pred) -> dict[str, float]:
        from sklearn import metrics as m

        y = np.asarray(y, dtype=float)
        pred = np.asarray(pred, dtype=float)
        out = {"rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
               "mae": float(m.mean_absolute_error(y, pred)),
               "r2": float(m.r2_score(y, pred))}
        if np.all(y != 0):
            out["mape"] = float(m.mean_absolute_percentage_error(y, pred))
        return out


TASKS = {"binary": BinaryTask(), "multiclass": MulticlassTask(), "regression": RegressionTask()}


def get_task(name: str) -> Task:
    return TASKS[name]
