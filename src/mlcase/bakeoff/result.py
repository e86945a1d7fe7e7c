"""What the bake-off returns: :class:`BakeoffResult`, its leaderboard and the Rich table of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..bundle import ModelBundle

LEADERBOARD_COLUMNS = ["name", "kind", "cv_mean", "cv_std", "metric", "cv_loss", "cv_cost", "n_trials", "rows_seen",
                       "fit_cpu_s", "size_bytes", "peak_mem_mb", "predict_1_ms", "predict_1000_ms",
                       "operating_cost_per_decision", "note"]


@dataclass
class BakeoffResult:
    """What the bake-off found.

    Attributes
    ----------
    leaderboard : list of dict
        One row per baseline and per candidate family, best (lowest ``cv_mean``) first;
        columns :data:`LEADERBOARD_COLUMNS` plus ``family``, ``params``, ``folds``,
        ``n_trees``, ``selected`` and a few more.
    bundles : dict of str to ModelBundle
        Every baseline and the best trial of each candidate family (and the ensemble when one
        was built), refitted on the rows the search used: train + validation in cv mode, where
        ``bundle.oof_valid`` holds the out-of-fold scores of the validation rows; the
        (sub)sample of the train part in holdout mode.
    candidate : str or None
        Name of the chosen candidate (the lowest CV loss; ranked on cost, ties within CV noise go to the
        simpler family).
    best_baseline : str or None
        Name of the best non-trivial baseline (rule or linear), else the trivial one.
    plan : dict
        Which rows the search used (:meth:`mlcase.bakeoff.scoring.Plan.to_dict`).
    ensemble : dict
        The ensemble selection: members, weights, CV gain and its noise, and whether it was kept and why.
    recipes : dict
        How to rebuild each bundle's model on other rows (used by :func:`mlcase.bakeoff.refit_all`).
    """

    leaderboard: list[dict]
    bundles: dict[str, ModelBundle]
    candidate: str | None
    best_baseline: str | None
    elapsed_s: float
    interrupted: bool
    budget_s: float
    metric: str
    cv: dict
    trials: list[dict] = field(default_factory=list)
    families: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    fingerprint: str | None = None
    input_example: pd.DataFrame | None = None
    plan: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)
    select_on: str = "loss"
    loss_metric: str = "log_loss"
    recipes: dict = field(default_factory=dict, repr=False)
    engine: dict = field(default_factory=dict)     # where the trials ran (mlcase.engine: kind, workers, study)
    _writer: Any = field(default=None, repr=False)

    def wait_tracking(self, timeout: float | None = None) -> bool:
        """Wait for the background MLflow writer (it may outlive the time box); True when all is written.

        Fills :attr:`run_id` and notes a tracking failure.
        """
        w = self._writer
        if w is None:
            return True
        done = w.wait(timeout)
        self.run_id = w.run_id
        for b in self.bundles.values():
            b.metrics["bakeoff_run_id"] = self.run_id
        if done:
            if w.error and not any(n.startswith("MLflow tracking failed") for n in self.notes):
                self.notes.append(f"MLflow tracking failed ({w.error}); check tracking_uri / MLFLOW_TRACKING_URI")
            self._writer = None
        return done

    @property
    def candidate_bundle(self) -> ModelBundle | None:
        return self.bundles.get(self.candidate) if self.candidate else None

    @property
    def baseline_bundle(self) -> ModelBundle | None:
        return self.bundles.get(self.best_baseline) if self.best_baseline else None

    def row(self, name: str) -> dict | None:
        return next((r for r in self.leaderboard if r["name"] == name), None)

    def leaderboard_frame(self) -> pd.DataFrame:
        extra = ["family", "n_trees", "selected"]
        cols = LEADERBOARD_COLUMNS + [c for c in extra if any(c in r for r in self.leaderboard)]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in self.leaderboard], columns=cols)

    def to_dict(self) -> dict:
        return {"leaderboard": self.leaderboard, "candidate": self.candidate, "best_baseline": self.best_baseline,
                "elapsed_s": round(self.elapsed_s, 3), "interrupted": self.interrupted,
                "budget_s": self.budget_s, "metric": self.metric, "metric_direction": "lower", "cv": self.cv,
                "trials": self.trials, "families": self.families, "notes": self.notes, "phases": self.phases,
                "plan": self.plan, "ensemble": self.ensemble, "select_on": self.select_on,
                "loss_metric": self.loss_metric, "recipes": stored_recipes(self.recipes),
                "run_id": self.run_id or (self._writer.run_id if self._writer is not None else None),
                "fingerprint": self.fingerprint, "engine": self.engine}

    def print(self, console) -> None:
        """Print the leaderboard as a Rich table."""
        console.print(leaderboard_table(self.to_dict()))


def stored_recipes(recipes: dict) -> dict:
    """The recipes that can be stored as JSON (fitted families and ensembles; a baseline's is a factory)."""
    keep = ("family", "params", "best_iters", "fit_rows", "grown", "fit_s", "fit_s_per_row", "rung", "size",
            "name", "weights")
    out = {}
    for name, r in (recipes or {}).items():
        if not r or r.get("make") is not None:
            continue
        entry = {k: r[k] for k in keep if k in r}
        if r.get("members"):
            entry["members"] = [{k: m[k] for k in keep if k in m} for m in r["members"]]
        out[name] = entry
    return out


def leaderboard_table(data: dict):
    """A Rich table of a stored bake-off result (``BakeoffResult.to_dict()``)."""
    from rich.table import Table

    from ..formats import markup_escape

    metric = data.get("metric", "score")
    cv = data.get("cv", {})
    how = f"{cv.get('folds', '?')}-fold CV" if cv.get("mode", "cv") == "cv" else "holdout"
    title = f"Leaderboard (ranked by {metric}, lower is better; {how}" + (
        ", interrupted" if data.get("interrupted") else "") + ")"
    table = Table(title=title, title_justify="left")
    loss = (data.get("loss_metric") or "loss").replace("_", " ")
    for col, justify in (("", "left"), ("name", "left"), ("kind", "left"), (f"cv {loss}", "right"),
                         ("cv cost", "right"), ("± std", "right"), ("trials", "right"), ("rows seen", "right"),
                         ("fit cpu s", "right"), ("size", "right"), ("1-row ms", "right"), ("$/decision", "right"),
                         ("note", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in data.get("leaderboard", []):
        mark = "★" if r.get("selected") else ("◆" if r["name"] == data.get("best_baseline") else "")
        table.add_row(mark, markup_escape(str(r["name"])), markup_escape(str(r["kind"])), _num(r.get("cv_loss", r.get("cv_mean"))), _num(r.get("cv_cost")),
                      _num(r.get("cv_std")), str(r.get("n_trials") or ""), _num(r.get("rows_seen"), 9),
                      _num(r.get("fit_cpu_s"), 3), _size(r.get("size_bytes")), _num(r.get("predict_1_ms"), 3),
                      _num(r.get("operating_cost_per_decision"), 3), markup_escape(r.get("note") or ""))
    return table


def _num(v, digits: int = 5) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}"


def _size(v) -> str:
    if v is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)  # pragma: no cover


