"""Cross-validated refits of the candidate's configuration on fewer rows or fewer columns, within a deadline.

The learning curve and the feature-group value both ask the same question of the bake-off:
"what would the candidate's configuration have scored out of fold with this much data?".
:class:`Refits` answers it with the bake-off's own protocol: the same folds of the same rows
(:class:`~mlcase.bakeoff.scoring.Plan`), the same pipeline (``candidates.build_pipeline``), the
same early stopping (``candidates.fit_with_deadline(..., early_stopping=True)``) and the same
scorer, so the point at 100% of the rows and all columns is the candidate's own out-of-fold
scores. Costs per row follow the case's cost matrix; a binary threshold is chosen on the
out-of-fold scores themselves (within the review capacity), the same way at every point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import candidates as C
from .. import tasks as T
from ..case import Case


@dataclass
class Refits:
    """The candidate's configuration refitted on the bake-off's folds (see the module)."""

    case: Case
    dataset: object
    plan: object
    recipe: dict
    deadline: float
    X: pd.DataFrame = field(init=False, repr=False)
    y: np.ndarray = field(init=False, repr=False)
    rows: pd.DataFrame = field(init=False, repr=False)
    fits: int = 0
    seconds: float = 0.0
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        from ..bakeoff.scoring import Scorer

        ds, spec = self.dataset, self.case.spec
        pool = self.plan.pool
        self.X = ds.frame.iloc[pool][list(ds.features)].reset_index(drop=True)
        self.rows = ds.frame.iloc[pool].reset_index(drop=True)
        y = ds.y[pool]
        self.y_labels = y
        if spec.task == "multiclass":
            y = np.searchsorted(np.asarray(ds.classes, dtype=object).astype(str), np.asarray(y).astype(str))
        self.y = y
        self.task = spec.task
        self.seed = spec.split.seed
        self.scorer = Scorer(self.case, self.rows, self.y, ds.classes if self.task == "multiclass" else None)
        self.schema = ds.schema.to_dict()
        self.scored = np.concatenate([val for _, val in self.plan.folds])
        # per-row costs of the scored rows (cost expressions are evaluated once)
        self.costs = T.get_task(self.task).costs(self.case, self.rows.iloc[self.scored], ds.classes)
        # the scored rows' entities under a group split (the folds keep each on one side): the curve's band and the
        # groups' CIs resample them whole
        from .core import row_groups

        self.groups = row_groups(self.case, self.rows.iloc[self.scored])

    # ------------------------------------------------------------------ time
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def estimate_s(self, fraction: float = 1.0, n_columns: int | None = None) -> float:
        """Seconds one cross-validated refit should take, from the bake-off's timed folds of this recipe."""
        per_row = float(self.recipe.get("fit_s_per_row") or 0.0)
        fit_rows = sum(len(f) for f, _ in self.plan.folds) * fraction
        share = 1.0 if n_columns is None else max(n_columns, 1) / max(len(self.X.columns), 1)
        return 1.3 * per_row * fit_rows * (0.5 + 0.5 * share) + 0.02 * len(self.plan.folds)

    # ------------------------------------------------------------------ fits
    def oof(self, fraction: float = 1.0, columns: list[str] | None = None) -> dict | None:
        """Out-of-fold scores (pool order, NaN where unscored) of the recipe fitted on ``fraction`` of each
        fold's fit rows and on ``columns`` (default all); None when it would not finish before the deadline."""
        cols = list(self.X.columns) if columns is None else list(columns)
        need = self.estimate_s(fraction, len(cols))
        if need > self.left():
            return None
        X = self.X[cols]
        groups = C.column_groups(X, self.schema)
        oof, fit_rows, truncated = None, [], False
        t0 = time.monotonic()
        with C.single_thread():
            for k, (fit, val) in enumerate(self.plan.folds):
                take = _subsample(fit, fraction, self.seed + k, self.y if self.task != "regression" else None)
                if self.task != "regression" and len(np.unique(self.y[take])) < 2:
                    return None  # a fold with one class cannot be fitted at any fraction (skipped, as for time)
                pipe = C.build_pipeline(self.recipe["family"], self.task, groups, self.recipe["params"], self.seed)
                out = C.fit_with_deadline(pipe, X.iloc[take], self.y[take], self.deadline, early_stopping=True,
                                          seed=self.seed + k)
                truncated |= bool(out["truncated"])
                fit_rows.append(len(take))
                s = self.scorer.scores(pipe, X.iloc[val])
                if oof is None:
                    oof = np.full((len(self.X),) + s.shape[1:], np.nan)
                oof[val] = s
                self.fits += 1
        self.seconds += time.monotonic() - t0
        return {"scores": oof, "fit_rows": float(np.mean(fit_rows)), "truncated": truncated,
                "seconds": time.monotonic() - t0}

    # ------------------------------------------------------------------ money
    def row_costs(self, scores: np.ndarray) -> np.ndarray:
        """Cost of each scored row under the case's costs (binary: threshold chosen on these scores)."""
        s = scores[self.scored]
        y = self.y_labels[self.scored]
        if self.task == "binary":
            t, share, _ = T.choose_cut(y, s, self.costs, T.capacity_share(self.case))
            decided = T.binary_flags(s, t, share)
        elif self.task == "multiclass":
            decided = T.decide_classes(s, self.dataset.classes, T.cost_matrix(self.case, self.dataset.classes))
        else:  # regression: the point map chosen on these scores, as the binary threshold is, at the served floor
            floor = T.target_floor(self.dataset.y_train, self.dataset.y_valid)
            decided = T.decide_point(s, None if floor is None else {"floor": floor}, y, self.costs)
        return np.asarray(self.costs.of(y, decided), dtype=float)

    def row_loss(self, scores: np.ndarray) -> np.ndarray:
        idx = self.scored
        return self.scorer.row_loss(self.y[idx], scores[idx])


def _subsample(fit: np.ndarray, fraction: float, seed: int, y: np.ndarray | None = None) -> np.ndarray:
    """The first ``fraction`` of a fixed random order of the fold's fit rows (smaller samples nest in larger).

    With the labels ``y`` (classification), the fraction is taken of each class apart, at least one row of
    each, as scikit-learn's stratified splitters keep the class shares: a plain random fraction of a time
    split's early fold can hold one class only (KMsurv::baboon, 152 rows, the first 19 by date all 0: the
    learning curve's 10% of the first fold had no 1 and the logistic fit stopped the run).
    """
    if fraction >= 1.0:
        return fit
    if y is not None:
        labels = np.asarray(y)[fit]
        parts = []
        for i, c in enumerate(pd.unique(labels)):
            members = fit[labels == c]
            order = np.random.default_rng(seed + 7919 * i).permutation(len(members))
            parts.append(members[order[:max(1, int(round(fraction * len(members))))]])
        return np.sort(np.concatenate(parts))
    order = np.random.default_rng(seed).permutation(len(fit))
    k = max(2, int(round(fraction * len(fit))))
    return np.sort(fit[order[:k]])


def recipe_of(bakeoff: dict, name: str | None) -> tuple[str | None, dict | None, str | None]:
    """The recipe the analysis refits: the candidate's, or for an ensemble its strongest member's.

    Returns ``(name, recipe, note)``; the recipe is None for a rule or a baseline without one.
    """
    recipes = bakeoff.get("recipes") or {}
    if name in recipes and recipes[name].get("family") and not recipes[name].get("members"):
        return name, recipes[name], None
    rec = recipes.get(name) or {}
    if rec.get("members"):
        weights = rec.get("weights") or [1.0] * len(rec["members"])
        best = rec["members"][int(np.argmax(weights))]
        return best.get("name"), best, (f"the ensemble's heaviest member ({best.get('name')}, {best['family']}) "
                                        "stands for it: refitting every member would cost as many fits again")
    return None, None, None
