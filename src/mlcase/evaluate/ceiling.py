"""The value ceiling, before any model is trained: what the processes that need no model cost,
and the most a perfect model could save over the best of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import tasks as T
from ..case import Case
from ..tasks import perfect_cost  # noqa: F401  (re-exported: mlcase.evaluate.perfect_cost)
from .common import money, num, pct, per_period, volume


@dataclass
class Ceiling:
    """What the current process costs and what a perfect model within capacity could save.

    ``stop`` is True when even the perfect model cannot beat the best current
    process (a model-free policy or a rule) by ``operating_cost + min_lift`` per
    decision.
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


def _current(case: Case, dataset, rows, y, capacity) -> dict[str, dict]:
    """Model-free policies (fitted on the training labels) and rule baselines, costed on ``rows``."""
    from ..rules import Rule

    spec = case.spec
    task = T.get_task(spec.task)
    costs = task.costs(case, rows, dataset.classes)
    current: dict[str, dict] = {}
    for p in task.model_free(case, dataset.rows("train"), dataset.y_train, dataset.classes):
        c = float(p.costs(costs, y).mean())
        current[p.name] = {"cost_per_decision": c, "cost_per_period": per_period(case, c),
                           "description": p.description, "model_free": True, "kind": p.kind}
        if spec.task == "binary":
            current[p.name]["flag_rate"] = float(p.params.get("rate", 0.0))
    if spec.task != "binary":
        return current
    for i, rb in enumerate(spec.baselines):
        if not hasattr(rb, "rule"):
            continue
        rule = Rule(expression=rb.rule, columns=list(dataset.frame.columns), kind="boolean",
                    where=f"baselines[{i}].rule")
        flags = rule.predict(rows).astype(bool)
        share = float(flags.mean())
        within = None if capacity is None else bool(share <= capacity + 1e-12)
        c = float(costs.of(y, flags).mean())
        entry = {"description": rb.rule, "model_free": False, "within_capacity": within, "fires": share}
        if within is False:
            # a rule that fires on more rows than the review capacity flags only a share of them, cut as the
            # evaluation cuts its scores (mlcase.tasks.choose_cut: its block of flagged rows split at the capacity,
            # or none where flagging them costs more). Costed at its raw rate it beat a perfect classifier held
            # to the capacity, and the run stopped before training (modeldata::credit_data's `Records = 'yes'`,
            # 17% of applicants at a capacity of 5%: $293.88 a decision against the perfect model's $352.32)
            from ..tasks.binary import at_threshold

            scores = flags.astype(float)
            t, tie, c = T.choose_cut(y, scores, costs, capacity)
            at = at_threshold(scores, t)   # the expected share flagged, as choose_cut's cost is the expected one
            held = float(np.mean(scores > t) - np.mean(at & (scores > t)) + (1.0 if tie is None else tie) * np.mean(at))
            entry["held_to_capacity"] = held / share
            share = held
        current[rb.name or f"rule: {rb.rule}"] = {
            "cost_per_decision": c, "flag_rate": share, "cost_per_period": per_period(case, c), **entry}
    return current


def value_ceiling(case: Case, dataset) -> Ceiling:
    """The most any model could save, computed on the train and validation rows before training.

    Parameters
    ----------
    case : Case
    dataset : mlcase.data.Dataset

    Returns
    -------
    Ceiling
        ``stop`` is True when a perfect model (binary: within ``review_capacity``)
        cannot beat the best current process (a model-free policy: never act, act
        at random at the capacity, a constant, the prior; or a rule baseline) by
        ``constraints.operating_cost + constraints.min_lift`` per decision
        (``operating_cost: auto`` counts as 0 here: nothing is measured yet).
    """
    spec = case.spec
    currency = spec.costs.currency
    task = T.get_task(spec.task)
    idx = np.concatenate([dataset.split.train, dataset.split.valid])
    rows = dataset.frame.iloc[idx]
    y = np.asarray(dataset.y[idx])
    n = len(y)
    capacity = T.capacity_share(case) if spec.task == "binary" else None
    oc = spec.constraints.operating_cost
    op = 0.0 if oc == "auto" else float(oc)
    min_lift = float(spec.constraints.min_lift)
    required = op + min_lift

    current = _current(case, dataset, rows, y, capacity)
    best = min(current, key=lambda k: current[k]["cost_per_decision"])
    best_cost = current[best]["cost_per_decision"]
    perfect_rows, perfect_info = task.perfect_cost(case, rows, y, dataset.classes)
    pc = float(perfect_rows.mean()) if n else 0.0
    saving = best_cost - pc
    stop = bool(saving <= 0 or saving < required)
    vol = volume(case)
    reasons = _reasons(case, current, best, best_cost, pc, saving, required, op, min_lift, capacity, n, vol,
                       perfect_info, stop)
    return Ceiling(stop=stop, reasons=reasons, task=spec.task, n_rows=n, currency=currency, capacity=capacity,
                   volume=vol, current=current, best_current=best,
                   perfect={"cost_per_decision": pc, "cost_per_period": per_period(case, pc), **perfect_info},
                   max_saving_per_decision=float(saving), required_per_decision=float(required),
                   operating_cost=op, min_lift=min_lift)


def _reasons(case, current, best, best_cost, pc, saving, required, op, min_lift, capacity, n, vol,
             perfect_info, stop) -> list[str]:
    spec = case.spec
    currency = spec.costs.currency
    oc = spec.constraints.operating_cost
    per = f" per {vol['period']}" if vol else ""
    d = current[best]
    best_txt = d["description"] if d.get("model_free") else f"the rule '{d['description']}'" + (
        f" (it fires on {pct(d['fires'])} of cases; {pct(d['flag_rate'])} of them flagged at random, the review "
        "capacity)" if d.get("held_to_capacity") else "")
    if spec.task == "binary":
        perfect_txt = ("a perfect classifier " + (f"flagging at most {pct(capacity)} of cases (review capacity)"
                                                  if capacity is not None else "with no review capacity limit"))
    else:
        perfect_txt = "a perfect model (every prediction right)"
    sav_period = (f" ({money(saving * vol['count'], currency, 0)}{per} at {num(vol['count'])} decisions{per})"
                  if vol else "")
    line = (f"on {n:,} labelled rows, the best process that needs no trained model is {best_txt} at "
            f"{money(best_cost, currency)} per decision; {perfect_txt} would cost {money(pc, currency)} per "
            f"decision, so a model can save at most {money(saving, currency)} per decision{sav_period}")
    need = (f"the model must add {money(required, currency)} per decision (operating cost "
            f"{money(op, currency)}{' [auto: not measured yet, counted as 0]' if oc == 'auto' else ''} + min_lift "
            f"{money(min_lift, currency)})")
    if not stop:
        return [line, f"{need}; the ceiling leaves room for that, so training goes on"]
    if saving <= 0:   # plm::Crime by year: popularity's top 10 counties were all relevant, as perfect as can be
        reasons = [line, f"{best_txt} already costs what a perfect model would on these rows: there is nothing "
                         "for a model to save, so the run stops before training"]
    else:
        reasons = [line, f"{need}, more than the most any model could save: no model could pay for itself, "
                         "so the run stops before training"]
    flag_rate = perfect_info.get("flag_rate")
    if capacity is not None and flag_rate is not None and flag_rate >= capacity - 1.0 / max(n, 1):
        reasons.append(f"the review capacity ({pct(capacity)}) binds: a larger capacity or cheaper reviews "
                       "would raise the ceiling")
    return reasons
