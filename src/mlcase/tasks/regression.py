"""Regression: a number per row, priced per unit below (``costs.under``) and above (``costs.over``) the truth.

Model-free policies: the training mean and median, and, when under- and
over-prediction cost differently, the cost-optimal constant: the weighted
quantile of the training target where the money of predicting a little more
equals the money of predicting a little less (``under / (under + over)`` for
flat rates; per-row rates weight each row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..case import Case
from ..formats import number
from ..rules import cost_values
from .base import ModelFreePolicy, Task, pct


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


class RegressionCosts:
    """``.of(y, pred)``: each row's money for its prediction error."""

    def __init__(self, under: np.ndarray, over: np.ndarray):
        self.under, self.over = under, over

    def of(self, y, pred) -> np.ndarray:
        return regression_cost_of(self.under, self.over, y, pred)


def optimal_constant(y, under, over) -> float:
    """The constant ``c`` minimising ``sum(under * (y - c)+ + over * (c - y)+)``: a weighted quantile.

    The cost is convex and piecewise linear in ``c`` with kinks at the ``y``
    values, so the minimum is at the first sorted ``y`` where the weight of
    rows below (their ``over``) reaches the weight of rows above (their ``under``).

    >>> optimal_constant([1.0, 2.0, 3.0, 4.0], under=3.0, over=1.0)   # the 75% quantile
    3.0
    """
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return 0.0
    under = np.broadcast_to(np.asarray(under, dtype=float), y.shape)
    over = np.broadcast_to(np.asarray(over, dtype=float), y.shape)
    order = np.argsort(y, kind="stable")
    ys, u, o = y[order], under[order], over[order]
    below = np.cumsum(o)                 # over-cost weight of rows at or below ys[k]
    above = u.sum() - np.cumsum(u)       # under-cost weight of rows strictly above ys[k]
    k = int(np.argmax(below >= above))
    return float(ys[k])


POINT_ROWS = 20_000   # rows the point map is fitted on (a deterministic sample past that)
POINT_FOLDS = 5       # the map is kept only where it lowers the cost on rows it was not fitted on


def point_map(y, s, under, over) -> tuple[float, float]:
    """``(intercept, slope)`` of the prediction ``intercept + slope * s`` that costs least on these rows.

    A model's score estimates the mean, which is the money-optimal prediction only when the money is
    squared error. Priced per unit below (``under``) and above (``over``) the truth, the cheapest
    prediction is a quantile of the outcome (the median where both are equal), and on a skewed
    target the two differ by far: on Ecdat::MedExp (medical expenses, skew 27) LightGBM's mean
    prediction had a mean absolute error of 242 against 159 for the training median, and 157 once
    mapped. This is quantile regression of ``y`` on the score, with each row's own rates:
    a linear program (HiGHS through SciPy), solved in its dual form. scikit-learn's
    ``QuantileRegressor`` solves the primal with the same solver, takes one quantile for all rows
    (``costs.under``/``costs.over`` may differ per row) and took 8.8 s on 20,000 rows where this takes 0.23 s.
    """
    from scipy.optimize import linprog

    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    n = len(y)
    u = np.broadcast_to(np.asarray(under, dtype=float), (n,))
    o = np.broadcast_to(np.asarray(over, dtype=float), (n,))
    if n > POINT_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(n, POINT_ROWS, replace=False))
        y, s, u, o, n = y[keep], s[keep], u[keep], o[keep], POINT_ROWS
    centre, scale = float(np.mean(s)), float(np.std(s)) or 1.0
    X = np.column_stack([np.ones(n), (s - centre) / scale])
    # the dual of  min sum(under * below + over * above)  s.t.  y = X beta + below - above:
    # max y'l  s.t.  X'l = 0,  -over <= l <= under; beta is the constraints' multipliers. Two constraints
    # instead of n: 0.23 s for 20,000 rows against 8.6 s for the primal (what QuantileRegressor solves)
    res = linprog(-y, A_eq=X.T, b_eq=np.zeros(2), bounds=np.column_stack([-o, u]), method="highs")
    if res.status != 0:
        return 0.0, 1.0
    a, b = (float(v) for v in -res.eqlin.marginals)
    return a - b * centre / scale, b / scale


def choose_point(y, s, under, over) -> tuple[dict | None, str]:
    """The point map for these validation scores (see :func:`point_map`), or None with the reason.

    Like a binary threshold, the map is fitted on scores of rows the model did not see; it is
    kept only where, cross-fitted over :data:`POINT_FOLDS` folds of those rows, it costs less than
    the score itself by more than one standard error of the paired difference. So a model whose
    score is already the cheapest prediction (squared error, or a symmetric outcome) keeps it.
    One standard error, not two: on the six tables of ``benchmarks/regression_point.py`` (three
    splits each) two kept fewer maps and saved less (mean test cost over the score's 0.934 against
    0.915 at 1:1, 0.955 against 0.932 at 3:1); one lost once (Ecdat::Doctor at 3:1, 4% over the score).
    """
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    n = len(y)
    u = np.broadcast_to(np.asarray(under, dtype=float), (n,))
    o = np.broadcast_to(np.asarray(over, dtype=float), (n,))
    if n < 10 * POINT_FOLDS or not (np.isfinite(s).all() and np.isfinite(y).all()):
        return None, f"{n} validation rows are too few to fit a prediction map on"
    folds = np.random.default_rng(0).permutation(n) % POINT_FOLDS
    mapped = np.empty(n)
    for k in range(POINT_FOLDS):
        fit, held = folds != k, folds == k
        a, b = point_map(y[fit], s[fit], u[fit], o[fit])
        mapped[held] = a + b * s[held]
    as_scored = regression_cost_of(u, o, y, s)
    saving = as_scored - regression_cost_of(u, o, y, mapped)
    se = float(np.std(saving, ddof=1) / np.sqrt(n))
    plain, gain = float(as_scored.mean()), float(saving.mean())
    if gain <= se:
        return None, (f"the score as prediction costs {_num(plain)} per case on the validation rows; a fitted map "
                      f"would save {_num(gain)} (standard error {_num(se)}), not enough to keep")
    a, b = point_map(y, s, u, o)
    return ({"intercept": a, "slope": b},
            f"predicts {_num(a + 0.0)} {'-' if b < 0 else '+'} {abs(b):.4g} x score, the cheapest prediction for the "
            f"costs: cross-fitted on the validation rows it costs {_num(plain - gain)} per case against "
            f"{_num(plain)} for the score itself")


def target_floor(*ys) -> float | None:
    """0 where the target was never below 0 in these labelled rows (a count, an amount, a duration),
    else None: the floor a point prediction (:func:`decide_point`) and a conformal interval stop at."""
    seen = np.concatenate([np.asarray(y, dtype="float64").ravel() for y in ys]) if ys else np.empty(0)
    seen = seen[np.isfinite(seen)]
    return 0.0 if len(seen) and seen.min() >= 0 else None


def decide_point(s, point: dict | None, y=None, costs=None) -> np.ndarray:
    """Predictions from scores ``s``: ``point``'s map, or without one the map fitted on these labelled
    rows (``y`` and their :class:`RegressionCosts`; in sample, as the analysis chooses a binary
    threshold on the rows it compares), else the scores; never below ``point["floor"]`` where the
    point has one (:func:`target_floor`). A linear model, or a map with an intercept, can predict
    -0.48 trips on AER::RecreationDemand, where no row of the training data was below 0; by the
    pinball loss's shape, raising a prediction to the floor never costs more on a row whose truth is
    at or above it."""
    s = np.asarray(s, dtype="float64")
    point = point or {}
    floor = point.get("floor")
    if "slope" not in point and y is not None and costs is not None and len(s):
        a, b = point_map(y, s, costs.under, costs.over)
        point = {**point, "intercept": a, "slope": b}
    pred = point["intercept"] + point["slope"] * s if "slope" in point else s
    return pred if floor is None else np.maximum(pred, float(floor))


def constant_value(name: str, description: str, value: float) -> ModelFreePolicy:
    return ModelFreePolicy(name, description, name.split(":")[0], {"value": float(value)},
                           lambda costs, y: costs.of(y, np.full(len(y), float(value))))


def _num(v: float) -> str:
    # never scientific: Ecdat::Housing's median price read "predicting the training median (6.295e+04)"
    return number(v, 4)


class RegressionTask(Task):
    name = "regression"
    primary_metric = "rmse"
    greater_is_better = False

    def metrics(self, y, pred, **_) -> dict[str, float]:
        from sklearn import metrics as m

        y = np.asarray(y, dtype=float)
        pred = np.asarray(pred, dtype=float)
        out = {"rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
               "mae": float(m.mean_absolute_error(y, pred)),
               "r2": float(m.r2_score(y, pred)) if len(y) > 1 else float("nan")}
        if len(y) and np.all(y != 0):
            out["mape"] = float(m.mean_absolute_percentage_error(y, pred))
        return out

    def row_losses(self, y, scores, classes=None):
        err = np.asarray(scores, dtype=float) - np.asarray(y, dtype=float)
        return err ** 2, np.sqrt, "rmse"

    def costs(self, case: Case, rows: pd.DataFrame, classes=None) -> RegressionCosts:
        return RegressionCosts(*regression_rates(case, rows))

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """Mean and median of the training target; the cost-optimal constant when under and over differ."""
        y = np.asarray(y, dtype=float)
        mean = float(np.mean(y)) if len(y) else 0.0
        median = float(np.median(y)) if len(y) else 0.0
        out = [constant_value("mean", f"predicting the training mean ({_num(mean)}) for every case", mean),
               constant_value("median", f"predicting the training median ({_num(median)}) for every case", median)]
        if case.spec.costs.regression_given():
            under, over = regression_rates(case, rows)
            if not (np.allclose(under, under[:1]) and np.allclose(over, over[:1]) and np.allclose(under, over)):
                c = optimal_constant(y, under, over)
                share = float(np.mean(y <= c)) if len(y) else 0.0
                out.append(constant_value(
                    "quantile", f"predicting the cost-optimal constant {_num(c)} (the training {pct(share)} "
                                "quantile, where under- and over-prediction cost balance)", c))
        return out

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None):
        return np.zeros(len(y)), {}

    def scores(self, model, X, classes=None) -> np.ndarray:
        return np.asarray(model.predict(X), dtype="float64")
