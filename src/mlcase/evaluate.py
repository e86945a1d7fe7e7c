"""Evaluation in the decision's units: value ceiling, money, lift CIs, calibration, slices, latency.

Two stage functions:

- :func:`value_ceiling` runs right after the data checks, before any model is
  trained: what the current process (each rule baseline, or doing nothing)
  costs per decision, and what a *perfect* classifier limited to the review
  capacity would cost. When even that perfect classifier cannot save
  ``operating_cost + min_lift`` per decision, the run stops with ``NO_GO``.
- :func:`evaluate` judges the candidate against the baselines. Every choice
  (calibration, thresholds, which baseline is the best) is made on the
  validation part; the test part is used once, for the numbers reported:
  metrics, money per decision / per 1,000 / per period, a paired bootstrap
  CI of the lift over the best baseline (money and primary metric, same
  resampled rows), slices and fairness gaps, and latency.

Money follows the spec's cost matrix, row by row (costs may be SQL
expressions over the row, e.g. ``"0.6 * loan_amount"``). Lift is always
oriented so that a positive number favours the candidate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import tasks as T
from .case import Case
from .errors import ModelError

#: bundle names (or name prefixes before ':') that count as trivial baselines
TRIVIAL = ("majority", "prior", "mean", "median", "constant", "do_nothing")
#: ECE (on the validation part) above which ``calibrate: auto`` tries a calibrator
ECE_POOR = 0.02
#: single-row latency samples and 1,000-row batch samples
LATENCY_SINGLE, LATENCY_BATCH = 50, 5
MAX_CURVE_POINTS = 200
SLICE_BOOTSTRAP = 200


# =========================================================================== helpers
def _money(v: float | None, currency: str = "$", digits: int = 2) -> str:
    if v is None:
        return "n/a"
    sign = "-" if v < 0 else ""
    return f"{sign}{currency}{abs(v):,.{digits}f}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.3g}%"


def is_trivial(bundle) -> bool:
    """Whether a bundle is a trivial baseline (majority/prior/mean/median/constant)."""
    name = str(getattr(bundle, "name", bundle)).lower().split(":")[0]
    if name in TRIVIAL:
        return True
    model = getattr(bundle, "model", None)
    return type(model).__name__ in ("MajorityBaseline", "DummyClassifier", "DummyRegressor")


def _is_rule(bundle) -> bool:
    return bool(getattr(bundle, "rule", None)) or type(getattr(bundle, "model", None)).__name__ == "RuleBaseline"


def operating_cost(case: Case, bundle=None) -> tuple[float, str]:
    """Operating cost per decision and where it came from.

    ``constraints.operating_cost: auto`` uses what the bake-off measured
    (``bundle.metrics["operating_cost_per_decision"]``), else 0.
    """
    oc = case.spec.constraints.operating_cost
    if oc == "auto":
        measured = (getattr(bundle, "metrics", None) or {}).get("operating_cost_per_decision")
        if measured is not None:
            return float(measured), "measured by the bake-off (operating_cost: auto)"
        return 0.0, "operating_cost: auto, not measured yet (counted as 0)"
    return float(oc), "constraints.operating_cost"


def _volume(case: Case) -> dict | None:
    v = T.volume_per_period(case)
    return None if v is None else {"count": float(v[0]), "period": v[1]}


def _per_period(case: Case, per_decision: float | None) -> float | None:
    v = T.volume_per_period(case)
    return None if (v is None or per_decision is None) else float(per_decision * v[0])


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
    """Per bin: mean predicted probability, observed rate and row count (empty bins dropped)."""
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


def _ece_of(task: str, y, scores, classes=None) -> float:
    if task == "binary":
        return expected_calibration_error(y, scores)
    conf, right = _top_label(y, scores, classes)
    return expected_calibration_error(right, conf)


def _reliability_of(task: str, y, scores, classes=None) -> dict:
    if task == "binary":
        return reliability_curve(y, scores)
    conf, right = _top_label(y, scores, classes)
    return reliability_curve(right, conf)


def _top_label(y, proba, classes):
    proba = np.asarray(proba, dtype=float)
    pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    return proba.max(axis=1), (pred == np.asarray(y, dtype=object)).astype(float)


# =========================================================================== value ceiling
@dataclass
class Ceiling:
    """What the current process costs and what a perfect model within capacity could save.

    ``stop`` is True when even the perfect classifier cannot beat the best
    current process by ``operating_cost + min_lift`` per decision.
    """

    stop: bool
    reasons: list[str]
    task: str
    applicable: bool = True
    n_rows: int = 0
    currency: str = "$"
    capacity: float | None = None
    volume: dict | None = None
    current: dict[str, dict] = field(default_factory=dict)
    best_current: str | None = None
    perfect: dict = field(default_factory=dict)
    max_saving_per_decision: float | None = None
    required_per_decision: float | None = None
    operating_cost: float = 0.0
    min_lift: float = 0.0

    def to_dict(self) -> dict:
        return {"stop": bool(self.stop), "reasons": list(self.reasons), "task": self.task,
                "applicable": self.applicable, "n_rows": int(self.n_rows), "currency": self.currency,
                "capacity": self.capacity, "volume": self.volume, "current": self.current,
                "best_current": self.best_current, "perfect": self.perfect,
                "max_saving_per_decision": self.max_saving_per_decision,
                "max_saving_per_period": None if self.volume is None or self.max_saving_per_decision is None
                else self.max_saving_per_decision * self.volume["count"],
                "required_per_decision": self.required_per_decision,
                "operating_cost": self.operating_cost, "min_lift": self.min_lift}


def perfect_cost(y, costs: T.RowCosts, capacity: float | None) -> tuple[float, np.ndarray]:
    """Mean cost per row of a classifier that knows the truth but may flag at most ``capacity``.

    It flags the rows where flagging saves the most (given their true label and
    their own costs), never a row where flagging saves nothing. Returns the
    mean cost and the 0/1 flags.
    """
    y = np.asarray(y).astype(bool)
    n = len(y)
    base = costs.of(y, np.zeros(n, dtype=int))
    gain = base - costs.of(y, np.ones(n, dtype=int))  # how much flagging this row saves
    order = np.argsort(-gain, kind="stable")
    k = int((gain > 0).sum())
    if capacity is not None:
        k = min(k, T.capacity_rows(capacity, n))
    flags = np.zeros(n, dtype=int)
    flags[order[:k]] = 1
    return float((base.sum() - gain[order[:k]].sum()) / max(n, 1)), flags


def value_ceiling(case: Case, dataset) -> Ceiling:
    """The most any model could save, computed on the train and validation rows before training.

    Parameters
    ----------
    case : Case
    dataset : mlcase.data.Dataset

    Returns
    -------
    Ceiling
        ``stop`` is True when a perfect classifier within ``review_capacity``
        cannot beat the best current process (doing nothing, or a rule baseline)
        by ``constraints.operating_cost + constraints.min_lift`` per decision
        (``operating_cost: auto`` counts as 0 here: nothing is measured yet).
    """
    from .rules import Rule

    spec = case.spec
    currency = spec.costs.currency
    if spec.task != "binary":
        return Ceiling(stop=False, task=spec.task, applicable=False, currency=currency, volume=_volume(case),
                       reasons=[f"the value ceiling is computed for binary decisions (flag or not); a {spec.task} "
                                "case goes on to training, and its money is judged on the test rows instead"])
    idx = np.concatenate([dataset.split.train, dataset.split.valid])
    rows = dataset.frame.iloc[idx]
    y = np.asarray(dataset.y[idx]).astype(int)
    n = len(y)
    costs = T.binary_costs(case, rows)
    capacity = T.capacity_share(case)
    oc = spec.constraints.operating_cost
    op = 0.0 if oc == "auto" else float(oc)
    min_lift = float(spec.constraints.min_lift)
    required = op + min_lift

    current: dict[str, dict] = {}
    never = costs.of(y, np.zeros(n, dtype=int))
    current["do_nothing"] = {"cost_per_decision": float(never.mean()), "flag_rate": 0.0,
                             "cost_per_period": _per_period(case, float(never.mean())),
                             "description": "never flag"}
    for i, rb in enumerate(spec.baselines):
        if not hasattr(rb, "rule"):
            continue
        rule = Rule(expression=rb.rule, columns=list(dataset.frame.columns), kind="boolean",
                    where=f"baselines[{i}].rule")
        flags = rule.predict(rows)
        c = float(costs.of(y, flags).mean())
        share = float(flags.mean())
        current[rb.name or f"rule: {rb.rule}"] = {
            "cost_per_decision": c, "flag_rate": share, "cost_per_period": _per_period(case, c),
            "description": rb.rule, "within_capacity": None if capacity is None else bool(share <= capacity + 1e-12)}
    best = min(current, key=lambda k: current[k]["cost_per_decision"])
    best_cost = current[best]["cost_per_decision"]
    pc, pflags = perfect_cost(y, costs, capacity)
    saving = best_cost - pc
    stop = bool(saving <= 0 or saving < required)

    vol = _volume(case)
    per = f" per {vol['period']}" if vol else ""
    cap_txt = (f"flagging at most {_pct(capacity)} of cases (review capacity)" if capacity is not None
               else "with no review capacity limit")
    best_txt = "doing nothing (never flag)" if best == "do_nothing" else f"the rule '{current[best]['description']}'"
    sav_period = (f" ({_money(saving * vol['count'], currency, 0)}{per} at {_num(vol['count'])} decisions{per})"
                  if vol else "")
    line = (f"on {n:,} labelled rows, the best current process is {best_txt} at {_money(best_cost, currency)} "
            f"per decision; a perfect classifier {cap_txt} would cost {_money(pc, currency)} per decision, "
            f"so a model can save at most {_money(saving, currency)} per decision{sav_period}")
    need = (f"the model must add {_money(required, currency)} per decision (operating cost "
            f"{_money(op, currency)}{' [auto: not measured yet, counted as 0]' if oc == 'auto' else ''} + min_lift "
            f"{_money(min_lift, currency)})")
    if stop:
        reasons = [line, f"{need}, more than the most any model could save: no model could pay for itself, "
                         "so the run stops before training"]
        if capacity is not None and float(pflags.mean()) >= capacity - 1.0 / max(n, 1):
            reasons.append(f"the review capacity ({_pct(capacity)}) binds: a larger capacity or cheaper reviews "
                           "would raise the ceiling")
    else:
        reasons = [line, f"{need}; the ceiling leaves room for that, so training goes on"]
    return Ceiling(stop=stop, reasons=reasons, task="binary", n_rows=n, currency=currency, capacity=capacity,
                   volume=vol, current=current, best_current=best,
                   perfect={"cost_per_decision": pc, "flag_rate": float(pflags.mean()),
                            "cost_per_period": _per_period(case, pc)},
                   max_saving_per_decision=float(saving), required_per_decision=float(required),
                   operating_cost=op, min_lift=min_lift)


# =========================================================================== bootstrap
def bootstrap_means(arrays: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """Means of each per-row array over the same ``n_boot`` resamples of the rows.

    Resample ``b`` draws row indices ``rng.integers(0, n, n)`` (``rng =
    np.random.default_rng(seed)``), the same indices for every array, so
    differences are paired. Returns an ``(n_boot, len(arrays))`` matrix.
    """
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    n = len(arrays[0]) if arrays else 0
    out = np.empty((n_boot, len(arrays)))
    if n == 0:
        out[:] = np.nan
        return out
    rng = np.random.default_rng(seed)
    step = max(1, 2_000_000 // n)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        for j, a in enumerate(arrays):
            out[start:start + b, j] = a[idx].mean(axis=1)
    return out


def paired_bootstrap(baseline_rows, candidate_rows, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     transform=None) -> dict:
    """Lift of the candidate over the baseline with a paired percentile bootstrap CI.

    Both arguments are per-row losses or costs (lower is better) on the same
    rows; the lift is ``f(mean(baseline)) - f(mean(candidate))`` with ``f`` =
    ``transform`` (identity; ``np.sqrt`` turns squared errors into RMSE), so a
    positive lift favours the candidate. Each resample uses the same rows for
    both.

    Returns
    -------
    dict
        ``estimate`` (on all rows), ``ci_low``, ``ci_high``, ``samples`` (the
        resampled lifts).
    """
    f = transform or (lambda v: v)
    b = np.asarray(baseline_rows, dtype=float)
    c = np.asarray(candidate_rows, dtype=float)
    means = bootstrap_means([b, c], n_boot, seed)
    samples = f(means[:, 0]) - f(means[:, 1])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return {"estimate": float(f(b.mean()) - f(c.mean())), "ci_low": float(lo), "ci_high": float(hi),
            "samples": samples}


# =========================================================================== per task
def _row_losses(task: str, y, scores, classes=None) -> tuple[np.ndarray, Any, str]:
    """Per-row pieces of the primary metric, the function turning their mean into it, and its name."""
    if task == "binary":
        p = np.clip(np.asarray(scores, dtype=float), T.EPS, 1 - T.EPS)
        yy = np.asarray(y).astype(int)
        return -(yy * np.log(p) + (1 - yy) * np.log(1 - p)), None, "log_loss"
    if task == "multiclass":
        proba = np.clip(np.asarray(scores, dtype=float), T.EPS, 1)
        pos = {c: i for i, c in enumerate(classes)}
        col = np.array([pos.get(v, -1) for v in np.asarray(y, dtype=object)])
        pick = np.where(col >= 0, proba[np.arange(len(col)), np.clip(col, 0, None)], T.EPS)
        return -np.log(pick), None, "log_loss"
    err = np.asarray(scores, dtype=float) - np.asarray(y, dtype=float)
    return err ** 2, np.sqrt, "rmse"


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


def _row_costs(case: Case, task: str, bundle, rows, y, scores, costs: T.RowCosts | None) -> np.ndarray:
    if task == "binary":
        return costs.of(y, bundle.decide(scores))
    if task == "multiclass":
        return T.multiclass_cost(case, y, bundle.decide(scores))
    return T.regression_cost(case, rows, y, scores)


def _metrics(task_obj, task: str, bundle, y, scores) -> dict:
    if task == "binary":
        return task_obj.metrics(y, scores, threshold=0.5 if bundle.threshold is None else bundle.threshold)
    if task == "multiclass":
        return task_obj.metrics(y, scores, classes=bundle.classes)
    return task_obj.metrics(y, scores)


def _X(rows: pd.DataFrame, bundle, dataset) -> pd.DataFrame:
    cols = list(bundle.features) if getattr(bundle, "features", None) else list(dataset.features)
    return rows[cols]


def valid_scores(bundle, dataset) -> np.ndarray:
    """The bundle's scores on the validation rows: every choice made on those rows uses this one function.

    A model refitted on rows that include the validation part carries cross-fitted
    (out-of-fold) scores for them as ``bundle.oof_valid`` (aligned with
    ``dataset.split.valid``): those are returned. Otherwise, the model's own scores.
    """
    oof = getattr(bundle, "oof_valid", None)
    if oof is not None:
        return np.asarray(oof)
    return bundle.scores(_X(dataset.rows("valid"), bundle, dataset))


# =========================================================================== calibration
def _calibrator(model, method: str, X, y, scores=None, task: str = "binary"):
    """``CalibratedClassifierCV(FrozenEstimator(model))`` fitted on ``X, y``.

    With ``scores`` (out-of-fold scores of the rows of ``X``, for a model that saw them), its
    calibrators are refitted on what scikit-learn would read from an unseen model on those rows:
    the log-odds for a binary model with a decision function, else the probabilities.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    cal = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(X, y)
    if scores is None:
        return cal
    resp = _response(model, scores, task)
    cc = cal.calibrated_classifiers_[0]
    classes = list(cal.classes_)
    y = np.asarray(y)
    if task == "binary":
        cc.calibrators[0].fit(resp, (y == classes[1]).astype(float))
    else:
        for k, c in enumerate(cc.calibrators):
            c.fit(resp[:, k], (y == classes[k]).astype(float))
    return cal


def _response(model, scores, task: str):
    """What scikit-learn's calibration reads from ``model``, rebuilt from its scores (None when it cannot be)."""
    s = np.asarray(scores, dtype="float64")
    if not hasattr(model, "decision_function"):
        return s
    if task == "binary":
        p = np.clip(s, 1e-15, 1 - 1e-15)
        return np.log(p / (1 - p))
    return None  # a multiclass decision function is not recoverable from probabilities


def _calibrated_scores(cal, model, scores, task: str) -> np.ndarray:
    """The calibrated wrapper's scores for rows whose (out-of-fold) scores are ``scores``."""
    resp = _response(model, scores, task)
    cc = cal.calibrated_classifiers_[0]
    if task == "binary":
        return np.clip(cc.calibrators[0].predict(resp), 0.0, 1.0)
    P = np.column_stack([c.predict(resp[:, k]) for k, c in enumerate(cc.calibrators)])
    total = P.sum(axis=1, keepdims=True)
    return np.where(total > 0, P / np.where(total > 0, total, 1.0), 1.0 / P.shape[1])


def calibrate_bundle(case: Case, dataset, bundle) -> dict:
    """Calibrate a classifier on the validation part when its ECE is poor (``evaluation.calibrate``).

    ``auto`` tries calibrators only when the validation ECE exceeds
    :data:`ECE_POOR`: sigmoid and isotonic are each scored by a two-fold
    cross-fit on the validation rows, and the one with the lowest ECE is kept
    if it lowers the ECE without raising the log loss (isotonic on little
    signal can do the first and not the second). ``isotonic``/``sigmoid``
    always calibrate with that method; ``none`` never. On success
    ``bundle.model`` becomes ``CalibratedClassifierCV(FrozenEstimator(model))``
    fitted on all validation rows. Every number comes from :func:`valid_scores`:
    for a model refitted on the validation rows, the calibrator is fitted on their
    out-of-fold scores, and ``bundle.oof_valid`` is calibrated with it. Returns what
    was done, with the numbers.
    """
    task = case.spec.task
    setting = case.spec.evaluation.calibrate
    out: dict[str, Any] = {"setting": setting, "applied": False, "method": None}
    if task == "regression":
        out["note"] = "regression predictions are not probabilities; nothing to calibrate"
        return out
    rows = dataset.rows("valid")
    X, y = _X(rows, bundle, dataset), np.asarray(dataset.y_valid)
    oof = getattr(bundle, "oof_valid", None)
    scores = valid_scores(bundle, dataset)
    ece_before = _ece_of(task, y, scores, bundle.classes)
    out["ece_valid_before"] = ece_before
    if oof is not None:
        out["valid_scores"] = "out-of-fold"
    if setting == "none":
        out["note"] = "evaluation.calibrate is 'none'"
        return out
    if len(np.unique(y)) < len(bundle.classes or [0, 1]) or np.unique(y, return_counts=True)[1].min() < 2:
        out["note"] = "the validation part lacks some classes; cannot calibrate"
        return out
    if oof is not None and _response(bundle.model, oof, task) is None:
        out["note"] = ("the model saw the validation rows and its multiclass decision function cannot be rebuilt "
                       "from their out-of-fold scores; not calibrated")
        return out
    method = setting
    if setting == "auto":
        if ece_before <= ECE_POOR:
            out["note"] = f"validation ECE {ece_before:.4f} is at most {ECE_POOR}; kept as is"
            return out
        trials = {m: _crossfit(case, bundle, X, y, m, oof) for m in ("sigmoid", "isotonic")}
        out["crossfit"] = trials
        good = [m for m, t in trials.items()
                if t["ece_after"] < t["ece_before"] and t["log_loss_after"] <= t["log_loss_before"]]
        if not good:
            out["note"] = ("neither sigmoid nor isotonic calibration lowered the cross-fitted validation ECE "
                           "without raising the log loss; kept as is")
            return out
        method = min(good, key=lambda m: trials[m]["ece_after"])
    out["method"] = method
    out["uncalibrated_model"] = bundle.model
    cal = _calibrator(bundle.model, method, X, y, oof, task)
    if oof is not None:
        bundle.oof_valid = _calibrated_scores(cal, bundle.model, oof, task)
    bundle.model = cal
    bundle.params = {**(bundle.params or {}), "calibration": method}
    out["applied"] = True
    return out


def _crossfit(case, bundle, X, y, method, oof=None) -> dict:
    """ECE and log loss before/after calibration, each half scored by a calibrator fitted on the other half."""
    from sklearn.model_selection import StratifiedKFold

    task = case.spec.task
    folds = StratifiedKFold(2, shuffle=True, random_state=case.spec.split.seed)
    raw = bundle.scores(X) if oof is None else np.asarray(oof)
    after = np.zeros_like(np.asarray(raw, dtype=float))
    for fit_idx, score_idx in folds.split(X, y):
        if oof is None:
            cal = _calibrator(bundle.model, method, X.iloc[fit_idx], y[fit_idx])
            proba = np.asarray(cal.predict_proba(X.iloc[score_idx]), dtype=float)
            after[score_idx] = proba[:, 1] if task == "binary" else proba
        else:
            cal = _calibrator(bundle.model, method, X.iloc[fit_idx], y[fit_idx], raw[fit_idx], task)
            after[score_idx] = _calibrated_scores(cal, bundle.model, raw[score_idx], task)
    return {"ece_before": _ece_of(task, y, raw, bundle.classes), "ece_after": _ece_of(task, y, after, bundle.classes),
            "log_loss_before": float(_row_losses(task, y, raw, bundle.classes)[0].mean()),
            "log_loss_after": float(_row_losses(task, y, after, bundle.classes)[0].mean())}


# =========================================================================== slices
def _slice_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > 10:
        codes, edges = pd.qcut(s, 4, labels=False, retbins=True, duplicates="drop")
        labels = [f"{_edge(edges[i])} to {_edge(edges[i + 1])}" for i in range(len(edges) - 1)]
        named = pd.Series([labels[int(c)] if c == c else "(missing)" for c in codes], index=s.index)
        return named.astype(str)
    return s.astype(str).where(s.notna(), "(missing)")


def _edge(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _group_boot(num: np.ndarray, den: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap samples of sum(num)/sum(den) (or mean(num)) resampling the group's rows (NaN: empty denominator)."""
    if den is None:
        return bootstrap_means([num], n_boot, seed)[:, 0]
    m = bootstrap_means([num, den], n_boot, seed)  # same resampled rows: a ratio of means is a ratio of sums
    return np.where(m[:, 1] > 0, m[:, 0] / np.where(m[:, 1] > 0, m[:, 1], 1), np.nan)


def _quantiles(samples: np.ndarray) -> list[float]:
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return [float("nan"), float("nan")]
    return [float(v) for v in np.quantile(samples, [0.025, 0.975])]


def _slice_metric_defs(task: str):
    """name -> (numerator(y, pred, cost), denominator or None, fairlearn-style point function)."""
    if task == "binary":
        return {
            "selection_rate": (lambda y, f, c: f, None),
            "accuracy": (lambda y, f, c: (f == y).astype(float), None),
            "recall": (lambda y, f, c: (f * y).astype(float), lambda y, f, c: y.astype(float)),
            "false_positive_rate": (lambda y, f, c: (f * (1 - y)).astype(float), lambda y, f, c: (1 - y).astype(float)),
            "precision": (lambda y, f, c: (f * y).astype(float), lambda y, f, c: f.astype(float)),
            "cost_per_decision": (lambda y, f, c: c, None),
        }
    if task == "multiclass":
        return {"accuracy": (lambda y, f, c: (f == y).astype(float), None),
                "cost_per_decision": (lambda y, f, c: c, None)}
    return {"mae": (lambda y, f, c: np.abs(f - y), None),
            "mean_error": (lambda y, f, c: f - y, None),
            "cost_per_decision": (lambda y, f, c: c, None)}


GAP_METRICS = {"binary": ("accuracy", "recall", "false_positive_rate", "selection_rate"),
               "multiclass": ("accuracy",), "regression": ("mae",)}


def _slices(case: Case, task: str, rows: pd.DataFrame, y, pred, cost_cand, cost_base, seed: int) -> dict:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
    )

    spec = case.spec
    alert = spec.evaluation.slice_gap_alert
    min_n = spec.evaluation.min_slice_size
    n_boot = min(spec.evaluation.bootstrap, SLICE_BOOTSTRAP)
    columns = list(dict.fromkeys([*spec.slices, *spec.sensitive]))
    defs = _slice_metric_defs(task)
    if task == "multiclass":
        yv, fv = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    else:
        yv, fv = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    out: dict[str, Any] = {"columns": {}, "min_slice_size": min_n, "gap_alert": alert, "flags": []}
    for col in columns:
        if col not in rows.columns:
            out["columns"][col] = {"error": f"column '{col}' is not in the data"}
            continue
        groups = _slice_values(rows[col]).to_numpy()

        def point(name, num, den):
            def fn(y_true, y_pred, cost):
                yt, yp, cc = np.asarray(y_true), np.asarray(y_pred), np.asarray(cost, dtype=float)
                a = num(yt, yp, cc)
                if den is None:
                    return float(np.mean(a)) if len(a) else float("nan")
                d = den(yt, yp, cc).sum()
                return float(a.sum() / d) if d > 0 else float("nan")
            fn.__name__ = name
            return fn

        metrics = {name: point(name, num, den) for name, (num, den) in defs.items()}
        mf = MetricFrame(metrics=metrics, y_true=yv, y_pred=fv, sensitive_features=pd.Series(groups, name=col),
                         sample_params={name: {"cost": np.asarray(cost_cand, dtype=float)} for name in metrics})
        by_group = mf.by_group
        table = []
        boot: dict[tuple[str, str], np.ndarray] = {}
        for g in by_group.index:
            m = groups == g
            n_g = int(m.sum())
            entry: dict[str, Any] = {"group": str(g), "n": n_g, "insufficient_evidence": n_g < min_n}
            if task == "binary":
                entry["positives"] = int(yv[m].sum())
            cc = np.asarray(cost_cand, dtype=float)[m]
            for j, (name, (num, den)) in enumerate(defs.items()):
                entry[name] = _clean(by_group.loc[g, name])
                d = None if den is None else np.asarray(den(yv[m], fv[m], cc), dtype=float)
                if d is not None:
                    entry[f"{name}_n"] = int(d.sum())  # rows the rate is taken over (positives for recall)
                if n_g >= min_n:
                    a = np.asarray(num(yv[m], fv[m], cc), dtype=float)
                    boot[(str(g), name)] = _group_boot(a, d, n_boot, seed + j)
                    entry[f"{name}_ci"] = _quantiles(boot[(str(g), name)])
            entry["baseline_cost_per_decision"] = float(np.mean(np.asarray(cost_base)[m]))
            entry["lift_per_decision"] = entry["baseline_cost_per_decision"] - float(np.mean(np.asarray(cost_cand)[m]))
            table.append(entry)
        ok = [e for e in table if not e["insufficient_evidence"]]
        gaps = {}
        overall_mae = float(np.mean(np.abs(fv - yv))) if task == "regression" else None
        for name in GAP_METRICS[task]:
            # a rate counts only where it rests on min_slice_size rows (recall: positives)
            vals = [(e[name], e["group"]) for e in ok
                    if e.get(name) is not None and e.get(f"{name}_n", e["n"]) >= min_n]
            if len(vals) >= 2:
                (lo_v, lo_g), (hi_v, hi_g) = min(vals), max(vals)
                scale = (1 / overall_mae if overall_mae else 0.0) if task == "regression" else 1.0
                # groups are resampled independently, so the gap's samples are differences of theirs
                gap_ci = _quantiles((boot[(hi_g, name)] - boot[(lo_g, name)]) * scale)
                gaps[name] = {"gap": float((hi_v - lo_v) * scale), "ci": gap_ci, "low_group": lo_g,
                              "high_group": hi_g, "relative_to_overall": task == "regression"}
        largest = max(gaps.items(), key=lambda kv: kv[1]["gap"]) if gaps else None
        info: dict[str, Any] = {"sensitive": col in spec.sensitive, "groups": table, "gaps": gaps,
                                "insufficient": [e["group"] for e in table if e["insufficient_evidence"]]}
        if largest:
            info["largest_gap"] = {"metric": largest[0], **largest[1], "flagged": bool(largest[1]["gap"] > alert)}
            if largest[1]["gap"] > alert:
                lo_ci, hi_ci = largest[1]["ci"]
                out["flags"].append(f"{col}: {largest[0]} differs by {largest[1]['gap']:.3f} between "
                                    f"'{largest[1]['low_group']}' and '{largest[1]['high_group']}' "
                                    f"(95% CI {lo_ci:.3f} to {hi_ci:.3f}; alert above {alert})")
        if col in spec.sensitive and task == "binary":
            keep = np.isin(groups, [e["group"] for e in ok])
            if keep.any() and len(ok) >= 2:
                dp = float(demographic_parity_difference(yv[keep], fv[keep], sensitive_features=groups[keep]))
                eo = float(equalized_odds_difference(yv[keep], fv[keep], sensitive_features=groups[keep]))
                info["demographic_parity_difference"] = dp
                info["equalized_odds_difference"] = eo
                for label, v in (("demographic parity difference", dp), ("equalized odds difference", eo)):
                    if v > alert:
                        out["flags"].append(f"{col}: {label} {v:.3f} (alert above {alert})")
        out["columns"][col] = info
    return out


def _clean(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if f != f else f


# =========================================================================== latency
def measure_latency(bundle, X: pd.DataFrame, limit_ms: float | None = None, n_single: int = LATENCY_SINGLE,
                    n_batch: int = LATENCY_BATCH, seed: int = 0) -> dict:
    """Single-row and 1,000-row predict times (p50, p95 in ms) of ``bundle.scores`` on this machine."""
    if len(X) == 0:
        return {"note": "no rows to time"}
    rng = np.random.default_rng(seed)
    bundle.scores(X.iloc[:1])  # warm-up
    singles = []
    for i in rng.integers(0, len(X), size=n_single):
        row = X.iloc[[int(i)]]
        t0 = time.perf_counter()
        bundle.scores(row)
        singles.append((time.perf_counter() - t0) * 1000)
    batch = X.iloc[rng.integers(0, len(X), size=1000)]
    batches = []
    for _ in range(n_batch):
        t0 = time.perf_counter()
        bundle.scores(batch)
        batches.append((time.perf_counter() - t0) * 1000)
    s50, s95 = np.percentile(singles, [50, 95])
    b50, b95 = np.percentile(batches, [50, 95])
    return {"single_p50_ms": float(s50), "single_p95_ms": float(s95), "batch1000_p50_ms": float(b50),
            "batch1000_p95_ms": float(b95), "n_single": n_single, "n_batch": n_batch,
            "limit_p95_ms": limit_ms, "ok": None if limit_ms is None else bool(s95 <= limit_ms)}


# =========================================================================== curves
def _thin(*arrays, n: int = MAX_CURVE_POINTS):
    m = len(arrays[0])
    if m <= n:
        return [np.asarray(a).tolist() for a in arrays]
    keep = np.unique(np.linspace(0, m - 1, n).round().astype(int))
    return [np.asarray(a)[keep].tolist() for a in arrays]


def _binary_curves(y, scores: dict[str, np.ndarray]) -> dict:
    from sklearn.metrics import precision_recall_curve, roc_curve

    roc, pr = {}, {}
    if len(np.unique(y)) < 2:
        return {"roc": roc, "pr": pr}
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        roc[name] = dict(zip(("fpr", "tpr"), _thin(fpr, tpr), strict=True))
        prec, rec, _ = precision_recall_curve(y, s)
        pr[name] = dict(zip(("recall", "precision"), _thin(rec, prec), strict=True))
    return {"roc": roc, "pr": pr}


def _cost_curve(y, p, costs: T.RowCosts, chosen: float) -> dict:
    qs = np.quantile(p, np.linspace(0, 1, 101)) if len(p) else np.array([])
    grid = np.unique(np.concatenate([np.linspace(0, 1, 51), qs, [chosen] if chosen <= 1 else []]))
    df = T.cost_curve(y, p, costs, grid)
    return {"threshold": df["threshold"].tolist(), "cost": df["cost"].tolist(), "flagged": df["flagged"].tolist()}


# =========================================================================== evaluation
@dataclass
class Evaluation:
    """The test-set judgement of the candidate against the baselines (see :func:`evaluate`)."""

    data: dict

    def __getitem__(self, key):
        return self.data[key]

    def get(self, key, default=None):
        return self.data.get(key, default)

    @property
    def candidate(self) -> str:
        return self.data["champion_candidate"]

    @property
    def best_baseline(self) -> str:
        return self.data["best_baseline"]

    def to_dict(self) -> dict:
        return self.data


def evaluate(case: Case, dataset, bundles, candidate: str | None = None, *, seed: int | None = None) -> Evaluation:
    """Judge the candidate against every baseline on the untouched test rows.

    Parameters
    ----------
    case : Case
    dataset : mlcase.data.Dataset
    bundles : dict of str to ModelBundle
        The candidate (role ``candidate``) and every baseline (role
        ``baseline``), each fitted on the train part. A bake-off result with
        ``.bundles`` and ``.candidate`` is accepted too.
    candidate : str
        The key of the candidate in ``bundles``.
    seed : int, optional
        Bootstrap seed (default ``split.seed``).

    Returns
    -------
    Evaluation
        ``.to_dict()`` holds ``champion_candidate``, ``best_baseline``,
        ``metrics``, ``thresholds``, ``cost_per_decision``,
        ``cost_sd_per_decision``, ``lift``, ``value_per_period``,
        ``calibration``, ``slices``, ``latency``, ``curves``, ``n_test`` and more.

    Notes
    -----
    Side effects on the bundles: a poorly calibrated candidate gets a
    calibrated model (fitted on the validation part), and every binary bundle
    gets its cost-minimising ``threshold`` (chosen on the validation part
    within ``review_capacity``).
    """
    if not isinstance(bundles, dict) and hasattr(bundles, "bundles"):
        candidate = candidate or getattr(bundles, "candidate", None)
        bundles = bundles.bundles
    if hasattr(candidate, "model"):
        candidate = next((k for k, b in bundles.items() if b is candidate), candidate.name)
    if candidate not in bundles:
        raise ModelError(f"evaluate: the candidate '{candidate}' is not among the bundles ({', '.join(bundles)})",
                         "pass the key of the candidate bundle")
    spec = case.spec
    task = spec.task
    task_obj = T.get_task(task)
    seed = spec.split.seed if seed is None else seed
    n_boot = spec.evaluation.bootstrap
    currency = spec.costs.currency
    cand = bundles[candidate]
    capacity = T.capacity_share(case) if task == "binary" else None
    # baselines are the bundles not in the candidate role (other candidate families are shown, not compared)
    baselines = [k for k, b in bundles.items() if k != candidate and getattr(b, "role", "baseline") != "candidate"]
    trivial = [k for k in baselines if is_trivial(bundles[k])]
    nontrivial = [k for k in baselines if not is_trivial(bundles[k])]
    pool = nontrivial or trivial
    if not pool:
        raise ModelError("evaluate: no baseline bundle to compare the candidate with",
                         "keep at least the majority baseline in baselines:")

    # ---- choices on the validation part ------------------------------------------------
    calibration = calibrate_bundle(case, dataset, cand)
    uncalibrated = calibration.pop("uncalibrated_model", None)
    rows_v, y_v = dataset.rows("valid"), dataset.y_valid
    costs_v = T.binary_costs(case, rows_v) if task == "binary" else None
    thresholds: dict[str, float | None] = {}
    valid_cost: dict[str, float] = {}
    for name, b in bundles.items():
        s = valid_scores(b, dataset)
        if task == "binary":
            b.threshold, valid_cost[name] = T.choose_threshold(y_v, s, costs_v, capacity)
            thresholds[name] = float(b.threshold)
        else:
            valid_cost[name] = float(_row_costs(case, task, b, rows_v, y_v, s, None).mean())
            thresholds[name] = None

    # the cheapest on validation; on a tie the simpler one (a rule before a fitted model)
    best = min(pool, key=lambda k: (round(valid_cost[k], 9), 0 if _is_rule(bundles[k]) else 1))

    # ---- the test part, once ------------------------------------------------------------
    rows_t, y_t = dataset.rows("test"), dataset.y_test
    n_test = len(y_t)
    costs_t = T.binary_costs(case, rows_t) if task == "binary" else None
    vol = _volume(case)
    scores, row_cost, metrics, losses = {}, {}, {}, {}
    finalize, metric_name = None, task_obj.primary_metric
    for name, b in bundles.items():
        s = b.scores(_X(rows_t, b, dataset))
        scores[name] = s
        metrics[name] = _metrics(task_obj, task, b, y_t, s)
        rc = _row_costs(case, task, b, rows_t, y_t, s, costs_t)
        row_cost[name] = np.asarray(rc, dtype=float)
        losses[name], finalize, metric_name = _row_losses(task, y_t, s, b.classes)

    def money(name):
        c = row_cost[name]
        per = float(c.mean())
        return {"per_decision": per, "per_1000": per * 1000, "total_test": float(c.sum()),
                "per_period": _per_period(case, per)}

    money_all = {k: money(k) for k in bundles}
    sd = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in row_cost.items()}

    # the trivial reference (majority; else doing nothing / the mean) for "does anything beat it"
    if trivial:
        ref_name = min(trivial, key=lambda kk: valid_cost[kk])
        ref_cost = row_cost[ref_name]
    else:
        ref_name, ref_cost = "do_nothing", _implied_trivial_cost(case, task, dataset, rows_t, y_t, costs_t)

    # paired bootstrap: every money and metric figure from the same resampled rows
    f = finalize or (lambda v: v)
    names = list(bundles)
    boot = bootstrap_means([row_cost[kk] for kk in names] + [losses[kk] for kk in names] + [ref_cost],
                           n_boot, seed)
    col = {kk: i for i, kk in enumerate(names)}
    k = len(names)

    def ci(samples: np.ndarray, est: float) -> dict:
        lo, hi = np.quantile(samples, [0.025, 0.975])
        return {"estimate": est, "ci_low": float(lo), "ci_high": float(hi)}

    money_samples = boot[:, col[best]] - boot[:, col[candidate]]
    metric_samples = f(boot[:, k + col[best]]) - f(boot[:, k + col[candidate]])
    diff = row_cost[best] - row_cost[candidate]
    lift = {"baseline": best, "candidate": candidate, "level": 0.95, "n_boot": n_boot, "seed": seed,
            "money_per_decision": ci(money_samples, float(diff.mean())),
            "metric": {"name": metric_name, "lower_is_better": not task_obj.greater_is_better,
                       **ci(metric_samples, float(f(losses[best].mean()) - f(losses[candidate].mean())))},
            "diff_sd_per_decision": float(np.std(diff, ddof=1)) if n_test > 1 else 0.0,
            "samples_quantiles": np.quantile(money_samples, np.linspace(0, 1, 101)).tolist()}
    lift_over_trivial = {
        name: {**ci(boot[:, 2 * k] - boot[:, col[name]], float(ref_cost.mean() - row_cost[name].mean())),
               "diff_sd_per_decision": float(np.std(ref_cost - row_cost[name], ddof=1)) if n_test > 1 else 0.0}
        for name in names if name != ref_name}

    op, op_source = operating_cost(case, cand)
    value = None
    if vol:
        cnt = vol["count"]
        m = lift["money_per_decision"]
        value = {"period": vol["period"], "decisions": cnt,
                 "low": m["ci_low"] * cnt, "expected": m["estimate"] * cnt, "high": m["ci_high"] * cnt,
                 "net_low": (m["ci_low"] - op) * cnt, "net_expected": (m["estimate"] - op) * cnt,
                 "net_high": (m["ci_high"] - op) * cnt, "operating_cost_per_period": op * cnt,
                 "versus": best}

    # calibration report on test (before/after where a calibrator was fitted)
    if task != "regression":
        calibration["ece_test"] = _ece_of(task, y_t, scores[candidate], cand.classes)
        key = "reliability_after" if uncalibrated is not None else "reliability"
        calibration[key] = _reliability_of(task, y_t, scores[candidate], cand.classes)
        if uncalibrated is not None:
            proba = np.asarray(uncalibrated.predict_proba(_X(rows_t, cand, dataset)), dtype=float)
            s_raw = proba[:, 1] if task == "binary" else proba
            calibration["ece_test_before"] = _ece_of(task, y_t, s_raw, cand.classes)
            calibration["ece_test_after"] = calibration["ece_test"]
            calibration["reliability_before"] = _reliability_of(task, y_t, s_raw, cand.classes)
            calibration["log_loss_test_before"] = float(_row_losses(task, y_t, s_raw, cand.classes)[0].mean())
            calibration["log_loss_test_after"] = float(losses[candidate].mean())

    # curves for the report
    curves: dict[str, Any] = {}
    if task == "binary":
        curves.update(_binary_curves(y_t, scores))
        p_v = valid_scores(cand, dataset)
        curves["cost_vs_threshold"] = {
            "part": "valid", "bundle": candidate, **_cost_curve(y_v, p_v, costs_v, cand.threshold),
            "chosen_threshold": cand.threshold, "capacity": capacity,
            "capacity_threshold": _capacity_threshold(p_v, capacity)}
    elif task == "regression":
        idx = np.random.default_rng(seed).permutation(n_test)[:300]
        curves["predicted_vs_actual"] = {"actual": np.asarray(y_t, dtype=float)[idx].tolist(),
                                         "predicted": np.asarray(scores[candidate])[idx].tolist()}
    curves["lift_samples"] = lift["samples_quantiles"]

    # slices and fairness (candidate's decisions)
    if spec.slices or spec.sensitive:
        pred = cand.decide(scores[candidate]) if task != "regression" else scores[candidate]
        slices = _slices(case, task, rows_t, y_t, pred, row_cost[candidate], row_cost[best], seed)
    else:
        slices = {"columns": {}, "flags": [], "note": "no slices or sensitive columns in the spec"}

    latency = measure_latency(cand, _X(rows_t, cand, dataset), spec.constraints.latency_p95_ms, seed=seed)

    flag_rate = None
    capacity_check = None
    if task == "binary":
        flag_rate = {kk: float(metrics[kk]["flag_rate"]) for kk in names}
        if capacity is not None:
            capacity_check = {"capacity": capacity,
                              "valid_flag_rate": float(cand.decide(valid_scores(cand, dataset)).mean()),
                              "test_flag_rate": flag_rate[candidate],
                              "test_over_capacity": bool(flag_rate[candidate] > capacity)}

    data = {
        "task": task, "currency": currency, "champion_candidate": candidate, "best_baseline": best,
        "trivial_baseline": ref_name, "baselines": baselines,
        "nontrivial_baselines": nontrivial, "roles": {kk: b.role for kk, b in bundles.items()},
        "primary_metric": metric_name, "metrics": metrics, "thresholds": thresholds,
        "valid_cost_per_decision": valid_cost,
        "cost_per_decision": {kk: v["per_decision"] for kk, v in money_all.items()},
        "cost_sd_per_decision": sd, "money": money_all, "flag_rate": flag_rate, "capacity": capacity,
        "capacity_check": capacity_check, "lift": lift, "lift_over_trivial": lift_over_trivial,
        "operating_cost": {"per_decision": op, "source": op_source}, "min_lift": float(spec.constraints.min_lift),
        "volume": vol, "value_per_period": value, "calibration": calibration, "slices": slices,
        "latency": latency, "curves": curves, "n_test": int(n_test), "n_valid": int(len(y_v)),
        "n_labelled": int(len(dataset.split.train) + len(y_v) + n_test),
        "test_size": float(spec.split.test_size),
    }
    return Evaluation(data)


def _capacity_threshold(p, capacity) -> float | None:
    """The lowest threshold whose flagged share stays within ``capacity`` (on these scores)."""
    if capacity is None or len(p) == 0:
        return None
    ps = np.sort(np.asarray(p, dtype=float))[::-1]
    k = T.capacity_rows(capacity, len(ps))
    if k == 0:
        return float(np.nextafter(ps[0], np.inf))
    if k >= len(ps):
        return float(ps[-1])
    # the k-th highest score, raised past ties with the (k+1)-th
    t = ps[k - 1]
    return float(t if ps[k] < t else np.nextafter(t, np.inf))


def _implied_trivial_cost(case, task, dataset, rows, y, costs) -> np.ndarray:
    """Per-row cost of the trivial process when no trivial bundle was given."""
    if task == "binary":
        return costs.of(y, np.zeros(len(y), dtype=int))
    if task == "multiclass":
        values, counts = np.unique(np.asarray(dataset.y_train, dtype=object), return_counts=True)
        return T.multiclass_cost(case, y, np.full(len(y), values[np.argmax(counts)], dtype=object))
    return T.regression_cost(case, rows, y, np.full(len(y), float(np.mean(dataset.y_train))))
