"""Leaderboard entries: the baselines, each family's best trial and the ensemble; choosing among them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import candidates as C
from ..case import Case
from ..errors import SpecError
from ..numeric import sig

COMPLEXITY_ENSEMBLE = 4


# --------------------------------------------------------------------------- leaderboard entries
@dataclass
class _Entry:
    """A leaderboard entry while the bake-off runs (a baseline, a family's best trial, or the ensemble)."""

    name: str
    kind: str
    family: str
    make: Any                     # () -> unfitted estimator (baselines)
    params: dict
    folds: list[float] = field(default_factory=list)        # selection metric per fold
    loss_folds: list[float] = field(default_factory=list)
    cost_folds: list[float] = field(default_factory=list)
    oof: np.ndarray | None = None                           # scores on the search's scored rows
    n_trials: int = 1
    n_trees: int | None = None
    fold_fit_s: float = 0.0
    search_s: float = 0.0
    note: list[str] = field(default_factory=list)
    rule: str | None = None
    measures: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    rows_seen: int | None = None
    cv_override: float | None = None                        # the ensemble's cross-fitted score
    model: Any = None                                       # holdout mode: the fitted model the holdout scored

    @property
    def cv_mean(self) -> float | None:
        if self.cv_override is not None:
            return self.cv_override
        return float(np.mean(self.folds)) if self.folds else None

    @property
    def cv_std(self) -> float | None:
        return float(np.std(self.folds, ddof=1)) if len(self.folds) > 1 else (0.0 if self.folds else None)

    @property
    def cv_loss(self) -> float | None:
        return float(np.mean(self.loss_folds)) if self.loss_folds else None

    @property
    def cv_cost(self) -> float | None:
        vals = [c for c in self.cost_folds if c is not None]
        return float(np.mean(vals)) if vals and len(vals) == len(self.cost_folds) else None


def _baseline_entries(case: Case, dataset) -> list[_Entry]:
    from ..baselines import MajorityBaseline, MeanBaseline, RuleBaseline
    from ..rules import Rule
    from ..spec import RuleBaseline as RuleSpec

    spec = case.spec
    task = spec.task
    groups = C.column_groups(dataset.X_train, dataset.schema.to_dict())
    seed = spec.split.seed
    entries: list[_Entry] = []
    rule_names = iter(spec.rule_names())
    for i, b in enumerate(spec.baselines):
        if isinstance(b, RuleSpec):
            where = f"baselines[{i}].rule"
            if task == "multiclass":
                raise SpecError(f"{where}: rule baselines decide positive/negative, and this case is multiclass",
                                "remove the rule baseline or make the task binary")
            Rule(expression=b.rule, columns=list(dataset.features),
                 kind="boolean" if task == "binary" else "numeric", where=where)  # fail before any fitting
            name = next(rule_names)
            entries.append(_Entry(name, "baseline", "rule", lambda e=b.rule: RuleBaseline(e, task=task),
                                  {"expression": b.rule}, rule=b.rule))
            continue
        if b == "linear":
            fam = C.resolve_family("logistic", task)
            entries.append(_Entry("linear", "baseline", fam,
                                  lambda f=fam: C.build_pipeline(f, task, groups, None, seed), C.default_params(fam)))
            continue
        if task == "regression":
            strategy = b if b in ("mean", "median") else "mean"
            entries.append(_Entry(strategy, "baseline", "constant", lambda s=strategy: MeanBaseline(s),
                                  {"strategy": strategy}))
        else:
            strategy = b if b in ("majority", "prior") else "prior"
            entries.append(_Entry(strategy, "baseline", "constant", lambda s=strategy: MajorityBaseline(s),
                                  {"strategy": strategy}))
    if not any(e.family == "constant" for e in entries):  # the trivial baseline always runs
        if task == "regression":
            entries.insert(0, _Entry("mean", "baseline", "constant", lambda: MeanBaseline("mean"), {"strategy": "mean"}))
        else:
            entries.insert(0, _Entry("prior", "baseline", "constant", lambda: MajorityBaseline("prior"),
                                     {"strategy": "prior"}))
    seen, unique = set(), []
    for e in entries:
        if e.name not in seen:
            seen.add(e.name)
            unique.append(e)
    return unique


# --------------------------------------------------------------------------- choosing
def _ranked(entries: dict[str, _Entry]) -> list[_Entry]:
    return sorted(entries.values(), key=lambda e: (e.cv_mean is None, e.cv_mean if e.cv_mean is not None else 0.0,
                                                   _complexity(e)))


def _complexity(e: _Entry) -> int:
    return COMPLEXITY_ENSEMBLE if e.family == "ensemble" else C.COMPLEXITY.get(e.family, -1)


def _gap(a: _Entry, b: _Entry, k: int, row_loss=None, y=None) -> tuple[float, float]:
    """How much worse ``a`` scored than ``b``, and the noise of that difference, in the same units.

    With out-of-fold scores on the same rows (selection on the loss): the mean paired per-row
    loss difference (log loss; squared error for regression, the units the RMSE is the root of)
    and its standard error. Otherwise: the difference of the CV means and the larger fold
    standard deviation over the square root of the number of folds.
    """
    if row_loss is not None and a.oof is not None and b.oof is not None:
        d = row_loss(y, a.oof) - row_loss(y, b.oof)
        d = d[np.isfinite(d)]
        if len(d) > 1:
            return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(len(d)))
    return a.cv_mean - b.cv_mean, max(a.cv_std or 0, b.cv_std or 0) / math.sqrt(max(k, 1))


def _choose(entries: dict[str, _Entry], folds, row_loss=None, y=None) -> tuple[str | None, str | None]:
    """The best candidate.

    Ranked on business cost (no ``row_loss``: a step function of a few hundred rows), scores within
    CV noise go to the simpler family (then fewer trees). Ranked on a proper loss with per-row
    out-of-fold scores (``row_loss``), the lowest CV loss is chosen and a simpler family within
    noise is only named in the leaderboard note: the decision already weighs the linear baseline
    against the candidate with confidence intervals, and on the development tables the tie rule
    cost log loss where it fired (swisslabor at 30 s: logistic 0.660 on test against LightGBM's 0.633).
    """
    cands = [e for e in entries.values() if e.kind == "candidate" and e.cv_mean is not None and e.family != "ensemble"]
    if not cands:
        return None, None
    top = min(cands, key=lambda e: e.cv_mean)
    k = len(folds)
    gaps = {e.name: _gap(e, top, k, row_loss, y) for e in cands}
    close = [e for e in cands if gaps[e.name][0] <= gaps[e.name][1]]
    pick = min(close, key=lambda e: (_complexity(e), e.n_trees or 0, e.cv_mean))
    if pick is top:
        return top.name, None
    diff, noise = gaps[pick.name]
    unit = " per row" if row_loss is not None and pick.oof is not None and top.oof is not None else ""
    if row_loss is not None:
        top.note.append(f"{pick.name} is simpler and within CV noise ({sig(diff, 4)}{unit} worse, noise {sig(noise, 4)}); "
                        "the lowest loss is kept")
        return top.name, None
    top.note.append(f"{pick.name} chosen instead: within CV noise and simpler")
    return pick.name, (f"chosen over {top.name}: {sig(diff, 4)}{unit} worse, within CV noise ({sig(noise, 4)}); "
                       "the simpler model wins ties")


def _best_baseline(entries: dict[str, _Entry]) -> str | None:
    base = [e for e in entries.values() if e.kind == "baseline" and e.cv_mean is not None]
    smart = [e for e in base if e.family != "constant"]
    pool = smart or base
    return min(pool, key=lambda e: e.cv_mean).name if pool else None


# --------------------------------------------------------------------------- the leaderboard
def _leaderboard(entries: dict, bundles: dict, metric: str, candidate: str | None) -> list[dict]:
    rows = []
    for e in _ranked(entries):
        m = e.measures
        rows.append({"name": e.name, "kind": e.kind, "cv_mean": e.cv_mean, "cv_std": e.cv_std, "metric": metric,
                     "cv_loss": e.cv_loss if e.cv_override is None else e.cv_override, "cv_cost": e.cv_cost,
                     "n_trials": e.n_trials, "rows_seen": e.rows_seen, "fit_cpu_s": m.get("fit_cpu_s"),
                     "size_bytes": m.get("size_bytes"), "peak_mem_mb": m.get("peak_mem_mb"),
                     "predict_1_ms": m.get("predict_1_ms"), "predict_1000_ms": m.get("predict_1000_ms"),
                     "operating_cost_per_decision": m.get("operating_cost_per_decision"),
                     "note": "; ".join(dict.fromkeys(e.note)), "family": e.family, "params": _jsonable(e.params),
                     "folds": e.folds, "n_trees": e.n_trees, "search_s": round(e.search_s, 3),
                     "selected": e.name == candidate, "refitted": e.name in bundles})
    return rows


def _jsonable(params: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}


