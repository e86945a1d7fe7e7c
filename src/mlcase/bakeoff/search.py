"""The search: which family gets the next trial, with which configuration, on how many rows.

Every family first scores its defaults on the first sample (cheapest families first), so each
family has a score within any budget. Then, while the time box allows, the family with the
lowest *estimated cost for improvement* gets the next trial: FLAML's rule
(``flaml/automl/automl.py``, ``AutoML._select_estimator``, and ``SearchState``): the time a
family took to find its last improvement, or the time since; when it trails the best family
by ``gap``, at least ``2 * gap / speed`` at its rate of improvement so far; when it can still
grow its sample, at most the time its best trial would take on the next sample. Families not
tried yet go first; the others are drawn with probability inversely proportional to that cost.
A family is stopped as dominated when its cost exceeds twice the time left after its portfolio,
or when, after two trials, its best trails the best family's by more than :data:`DOMINATED_Z`
standard errors of the paired per-row loss difference and would need over half the time left.

A family's next configuration is the next of its zero-shot portfolio
(:func:`mlcase.candidates.portfolio`), then a seeded Optuna TPE suggestion; every evaluated
configuration is told to the family's sampler. In holdout mode a family moves to the next
sample size after three trials on the current one when its growth is cheaper than its
improvement (FLAML's sample-size growth) or two trials went by without improvement; its best
two configurations are then scored first on the bigger sample.

With ``max_trials`` the order is round-robin and depends on no clock, so a run whose budget is
large enough to finish every trial reproduces exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import candidates as C
from .ensemble import PER_FAMILY
from .scoring import SAMPLE_FACTOR, Plan, Scorer
from .timebox import TimeBox

GROW_AFTER = 3          # trials on one sample before a family may grow it
TRIAL_FACTOR = 3.0      # a trial may take this many times the family's best trial (scaled to its rows)
DOMINATED_Z = 3.0       # a family trailing the best by this many standard errors may be stopped
STALE_AFTER = 2         # trials without improvement that make a family grow its sample


@dataclass
class Trial:
    """One configuration scored on the plan's folds."""

    family: str
    number: int
    params: dict
    rung: int
    size: int
    state: str = "RUNNING"
    folds: list[dict] = field(default_factory=list)
    oof: np.ndarray | None = None       # scores on plan.scored rows (complete trials of interest only)
    model: Any = None                   # holdout mode: the fitted pipeline the holdout scored (kept trials only)
    best_iters: list[int] = field(default_factory=list)
    fit_rows: list[int] = field(default_factory=list)
    fit_s: float = 0.0
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    truncated: bool = False
    note: str | None = None
    source: str = "tpe"

    @property
    def value(self) -> float | None:
        return float(np.mean([f["score"] for f in self.folds])) if self.state == "COMPLETE" else None

    @property
    def loss(self) -> float | None:
        return float(np.mean([f["loss"] for f in self.folds])) if self.folds else None

    @property
    def cost(self) -> float | None:
        costs = [f["cost"] for f in self.folds if f.get("cost") is not None]
        return float(np.mean(costs)) if costs and len(costs) == len(self.folds) else None

    def record(self) -> dict:
        return {"family": self.family, "number": self.number, "state": self.state, "value": self.value,
                "params": _plain(self.params), "folds": [f["score"] for f in self.folds],
                "cv_loss": self.loss, "cv_cost": self.cost, "rung": self.rung, "rows": int(self.size),
                "n_trees": int(np.mean(self.best_iters)) if self.best_iters else None,
                "truncated": self.truncated, "fit_s": round(self.fit_s, 4), "duration_s": round(self.duration_s, 4),
                "elapsed_s": round(self.elapsed_s, 3), "source": self.source, "note": self.note}


@dataclass
class FamilyState:
    """A family's search: its sample, sampler, queue of configurations and FLAML's timing statistics."""

    name: str
    index: int
    rung: int = 0
    queue: list[tuple[dict, str]] = field(default_factory=list)
    study: Any = None
    trials: list[Trial] = field(default_factory=list)
    n_rung: int = 0
    stale: int = 0
    best_loss: float = math.inf
    best_loss_old: float = math.inf
    total_time: float = 0.0
    time_best_found: float = 0.0
    time_best_found_old: float = 0.0
    time2eval_best: float = 0.0
    stopped: str | None = None

    @property
    def complete(self) -> list[Trial]:
        return [t for t in self.trials if t.state == "COMPLETE"]

    @property
    def best(self) -> Trial | None:
        """The family's best complete trial (every sample size is scored on the same holdout rows)."""
        done = self.complete
        return min(done, key=lambda t: t.value) if done else None

    def info(self) -> dict:
        states = [t.state for t in self.trials]
        return {"n_trials": len(self.trials), "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                "failed": states.count("FAILED"), "search_s": round(self.total_time, 3), "rung": self.rung,
                "stopped": self.stopped, "errors": [t.note for t in self.trials if t.state == "FAILED"][:3]}


class Search:
    """Runs the trials of every family within the time box (see the module docstring)."""

    def __init__(self, *, X: pd.DataFrame, y: np.ndarray, plan: Plan, scorer: Scorer, groups, task: str,
                 seed: int, families: list[str], box: TimeBox, max_trials: int | None, on_record=None,
                 progress=None, engine=None, storage=None):
        import optuna

        from .runners import make_runner

        self.X, self.y, self.plan, self.scorer, self.groups = X, y, plan, scorer, groups
        self.task, self.seed, self.box, self.max_trials = task, seed, box, max_trials
        self.on_record, self.progress = on_record, progress
        self.storage = storage              # where the families' Optuna studies live (None: in memory)
        self.busy: set[str] = set()         # families with a trial running (one at a time per family)
        self.rng = np.random.default_rng(seed)
        self.scored = np.concatenate([val for _, val in plan.folds])
        self.where = np.full(len(plan.pool), -1)
        self.where[self.scored] = np.arange(len(self.scored))
        self.y_scored = y[self.scored]
        self.states: dict[str, FamilyState] = {}
        self.curves = C.curves_fit(len(X), len(groups.numeric))   # the linear families may try splines
        for i, fam in enumerate(families):
            st = FamilyState(fam, i, queue=[(p, "default" if j == 0 else "portfolio")
                                            for j, p in enumerate(C.portfolio(fam, task, self.curves))])
            st.study = self._study(fam, 0)
            self.states[fam] = st
        self.trials: list[Trial] = []
        self.ctrl_c = None                  # a timebox.CtrlC: the search stops at its next trial once pressed
        self._optuna = optuna
        self.runner = make_runner(self, engine)   # where the trials' folds run: this process, or a Dask cluster

    # ------------------------------------------------------------------ public
    def run(self) -> None:
        """Defaults of every family first, then the allocation loop, until the time box or ``max_trials``."""
        order = sorted(self.states.values(), key=lambda s: (C.COMPLEXITY.get(s.name, 9), s.index))
        try:
            for i, st in enumerate(order):
                left = self.box.left()
                if left <= 0 and self.any_complete:
                    st.stopped = st.stopped or "no time left in the budget"
                    continue
                # a family's defaults may use its share of what is left, keeping as much for the adaptive phase
                self.step(st, until=time.monotonic() + left / (len(order) - i + 1))
            self.drain()
            if self.plan.mode == "holdout" and not self.max_trials:
                self._halving()
                self.drain()
            while True:
                st = self._round_robin() if self.max_trials else self._select()
                if st is None:
                    if self.runner.running():  # every open family has a trial running: wait for one
                        if self.ctrl_c is not None:
                            self.ctrl_c.check()
                        self.collect(block=True)
                        continue
                    break
                self.step(st)
            self.drain()
        finally:
            self.runner.cancel()  # an interrupted search leaves nothing running

    @property
    def any_complete(self) -> bool:
        return any(t.state == "COMPLETE" for t in self.trials)

    @property
    def best_value(self) -> float:
        vals = [st.best_loss for st in self.states.values()]
        return min(vals) if vals else math.inf

    def kept(self) -> list[Trial]:
        """Complete trials that still hold their out-of-fold scores (the ensemble's candidates)."""
        return [t for t in self.trials if t.state == "COMPLETE" and t.oof is not None]

    # ------------------------------------------------------------------ allocation
    def _round_robin(self) -> FamilyState | None:
        open_ = [st for st in self.states.values() if st.stopped is None and len(st.trials) < self.max_trials
                 and st.name not in self.busy]
        if not open_ or (self.box.left() <= 0 and self.any_complete):
            for st in open_:
                st.stopped = "no time left in the budget"
            return None
        return min(open_, key=lambda st: (len(st.trials), st.index))

    def eci(self, st: FamilyState) -> float:
        """FLAML's estimated cost for improvement of a family (seconds)."""
        cost = max(st.time_best_found - st.time_best_found_old, st.total_time - st.time_best_found)
        if st.rung < len(self.plan.sizes) - 1:
            grow = self.plan.sizes[st.rung + 1] / self.plan.sizes[st.rung]
            cost = min(cost, st.time2eval_best * min(SAMPLE_FACTOR, grow))
        gap = st.best_loss - self.best_value
        if gap > 0 and math.isfinite(gap):
            old = st.best_loss_old if math.isfinite(st.best_loss_old) else 2 * st.best_loss
            delta_loss = (old - st.best_loss) or abs(st.best_loss) or 1e-9
            delta_time = (st.total_time - st.time_best_found_old) or 1e-10
            speed = delta_loss / delta_time
            if speed > 0:
                cost = max(2 * gap / speed, cost)
        return cost or 1e-9

    def _select(self) -> FamilyState | None:
        left = self.box.left()
        if left <= 0:
            return None
        live = [st for st in self.states.values() if st.stopped is None and st.name not in self.busy]
        untried = [st for st in live if not st.complete]
        if untried:
            st = min(untried, key=lambda s: (len(s.trials), s.index))
            if len(st.trials) >= 2:  # two failures or prunings on the defaults: give up on it
                why = next((t.note for t in reversed(st.trials) if t.note), None)
                st.stopped = "its defaults failed twice" + (f" ({why})" if why else "")
                return self._select()
            return st
        choices, inv = [], []
        leader = min((st.best for st in live if st.best is not None), key=lambda t: t.value, default=None)
        for st in live:
            if st.time2eval_best > left:
                continue
            cost = self.eci(st)
            if not st.queue and st.n_rung >= GROW_AFTER and cost > 2 * left and st.best_loss > self.best_value:
                st.stopped = (f"dominated: at its rate of improvement it would need about {cost:.3g} s to reach "
                              f"the best family, with {left:.3g} s left")
                continue
            z = self._behind(st.best, leader) if len(st.complete) >= 2 else 0.0
            if z > DOMINATED_Z and cost > 0.5 * left:
                st.stopped = (f"dominated: its best trial trails the best family by {z:.1f} standard errors and "
                              f"would need about {cost:.3g} s to catch up, with {left:.3g} s left")
                continue
            choices.append(st)
            inv.append(1.0 / cost)
        if not choices:
            return None
        p = np.asarray(inv) / np.sum(inv)
        return choices[int(self.rng.choice(len(choices), p=p))]

    def _behind(self, t: Trial | None, leader: Trial | None) -> float:
        """How many standard errors of the paired per-row loss difference ``t`` trails ``leader`` by (0 if unknown)."""
        if t is None or leader is None or t is leader or t.oof is None or leader.oof is None or not self.scorer.by_loss:
            return 0.0
        d = self.scorer.row_loss(self.y_scored, t.oof) - self.scorer.row_loss(self.y_scored, leader.oof)
        d = d[np.isfinite(d)]
        if len(d) < 2:
            return 0.0
        se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
        return float(np.mean(d) / se) if se > 0 else 0.0

    # ------------------------------------------------------------------ one trial
    def step(self, st: FamilyState, until: float | None = None) -> None:
        """Start the next trial of ``st`` on the runner; return once a slot is free for another.

        In this process (the local engine) the trial is finished on return; on a Dask cluster
        it runs while the search goes on choosing trials for the other families.
        """
        if self.ctrl_c is not None:
            self.ctrl_c.check()
        self._maybe_grow(st)
        if st.queue:
            params, source = st.queue.pop(0)
            otrial = None
        else:
            otrial = st.study.ask()
            params, source = C.suggest_params(st.name, otrial, self.curves), "tpe"
        size = self.plan.sizes[st.rung]
        trial = Trial(st.name, len(st.trials), params, st.rung, size, source=source)
        if until is None and st.complete:
            # a trial may take a few times what the family's best took (on as many rows), or a fifth of the time
            # left: a costly configuration cannot eat the box (a cut boosting trial keeps its trees so far)
            best = st.best
            expected = st.time2eval_best * size / max(best.size, 1) if best is not None else 0.0
            until = time.monotonic() + max(TRIAL_FACTOR * expected, 0.2 * self.box.left())
        if self.progress is not None and not self.runner.parallel:
            self.progress.update(f"{st.name} trial {trial.number + 1}" + (
                f" · best {self.best_value:.5g}" if math.isfinite(self.best_value) else ""))
        self.busy.add(st.name)
        self.runner.start(Pending(st, trial, otrial, until, time.monotonic()))
        while self.runner.full():
            self.collect(block=True)
        self.collect(block=False)

    def collect(self, block: bool = False) -> None:
        """Finish the trials the runner has done (``block``: first wait for the runner to make progress)."""
        for p in self.runner.finished(block):
            p.trial.duration_s = time.monotonic() - p.started
            p.trial.elapsed_s = self.box.elapsed()
            self.busy.discard(p.state.name)
            self._finish(p.state, p.trial, p.otrial, self._optuna)

    def drain(self) -> None:
        """Wait for every running trial and finish it."""
        while self.runner.running():
            self.collect(block=True)
        self.collect(block=False)

    def fold_end(self, until: float | None) -> float:
        """When a trial's last fold must be done (monotonic seconds)."""
        return self.box.search_end if until is None else min(until, self.box.search_end)

    def _evaluate(self, trial: Trial, otrial, until: float | None = None) -> None:
        """Score ``trial`` fold after fold in this process (pruned after any fold, stopped at the time box)."""
        n = len(self.plan.folds)
        for k in range(n):
            now = time.monotonic()
            end = self.fold_end(until)
            if now >= end and self.any_complete:
                self.absorb(trial, otrial, k, TIME_BOX_REACHED)
                return
            deadline = now + max(end - now, 0.0) / (n - k)
            out = fit_fold(self.fold_data(), trial.family, trial.params, trial.size, k, deadline)
            if self.absorb(trial, otrial, k, out):
                return

    def fold_data(self) -> FoldData:
        """What every fold of every trial reads: the rows, the plan, the scorer (shipped once to a cluster)."""
        if getattr(self, "_fold_data", None) is None:
            self._fold_data = FoldData(self.X, self.y, self.plan, self.scorer, self.groups, self.task, self.seed,
                                       self.scored, self.where)
        return self._fold_data

    def absorb(self, trial: Trial, otrial, k: int, out: dict) -> bool:
        """Add fold ``k``'s result to ``trial`` (folds in order); True when the trial is over (pruned or done).

        ``out`` is :func:`fit_fold`'s result, or :data:`TIME_BOX_REACHED` when the fold did not start.
        """
        if out.get("skipped"):
            trial.state, trial.note, trial.oof = "PRUNED", "time box reached before all folds were scored", None
            return True
        n = len(self.plan.folds)
        trial.fit_s += out["fit_s"]
        trial.truncated |= out["truncated"]
        if out["best_iter"] is not None:
            trial.best_iters.append(int(out["best_iter"]))
        trial.fit_rows.append(int(out["fit_rows"]))
        s = out["scores"]
        if trial.oof is None:
            trial.oof = np.full((len(self.scored),) + s.shape[1:], np.nan)
        trial.oof[self.where[self.plan.folds[k][1]]] = s
        trial.folds.append(out["fold"])
        if self.plan.mode == "holdout":
            trial.model = out["model"]
        if otrial is not None and n > 1:
            otrial.report(float(np.mean([f["score"] for f in trial.folds])), k)
            if k < n - 1 and otrial.should_prune():
                trial.state, trial.note, trial.oof = "PRUNED", f"pruned after fold {k + 1}: worse than the median trial", None
                return True
        if k < n - 1:
            return False
        trial.state = "COMPLETE"
        if trial.truncated:
            trial.note = "cut by the time box"
        return True

    def _finish(self, st: FamilyState, trial: Trial, otrial, optuna) -> None:
        st.trials.append(trial)
        self.trials.append(trial)
        st.n_rung += 1
        st.total_time += trial.duration_s
        if otrial is not None:
            state = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "PRUNED": optuna.trial.TrialState.PRUNED}.get(
                trial.state, optuna.trial.TrialState.FAIL)
            st.study.tell(otrial, trial.value if trial.state == "COMPLETE" else None, state=state)
        elif trial.state == "COMPLETE":
            self._tell(st, trial)
        if trial.state == "COMPLETE" and trial.value < st.best_loss:
            st.best_loss_old, st.best_loss = st.best_loss, trial.value
            st.time_best_found_old, st.time_best_found = st.time_best_found, st.total_time
            st.time2eval_best = trial.duration_s
            st.stale = 0
        else:
            st.stale += 1
        self._keep_oof(st)
        if self.on_record is not None:
            self.on_record(trial)

    def _tell(self, st: FamilyState, trial: Trial) -> None:
        """Tell the family's sampler about a configuration it did not suggest (portfolio, promotion)."""
        space = C.search_space(st.name, self.curves)
        params = C.in_space(st.name, trial.params, self.curves)
        if not params:
            return
        ot = self._optuna.trial.create_trial(params=params, distributions={k: space[k] for k in params},
                                             value=trial.value)
        st.study.add_trial(ot)

    def _keep_oof(self, st: FamilyState) -> None:
        """Only the best :data:`PER_FAMILY` complete trials of a family keep their out-of-fold scores."""
        done = sorted((t for t in st.complete if t.oof is not None), key=lambda t: t.value)
        for t in done[PER_FAMILY:]:
            t.oof = t.model = None
        for t in st.trials:
            if t.state != "COMPLETE":
                t.model = None

    def _halving(self) -> None:
        """Successive halving on sample size: the better half of the families moves to the next sample, while it fits.

        Each promoted family scores its best configuration on the bigger sample; a promotion
        whose expected time (its best trial's, scaled by the rows) does not fit in the time
        left ends the halving, and the adaptive loop goes on from there.
        """
        sizes = self.plan.sizes
        for r in range(1, len(sizes)):
            ranked = sorted((st for st in self.states.values() if st.stopped is None and st.rung == r - 1
                             and st.best is not None), key=lambda st: st.best.value)
            survivors = ranked[:max(1, len(ranked) // 2)]
            if not survivors:
                return
            for st in survivors:
                expected = st.time2eval_best * sizes[r] / max(st.best.size, 1)
                if expected > 0.8 * self.box.left():
                    return
                self._promote(st)
                self.step(st, until=time.monotonic() + max(TRIAL_FACTOR * expected, 0.2 * self.box.left()))
            self.drain()  # the next rung ranks the families on this one's results

    def _promote(self, st: FamilyState, n: int = 1) -> None:
        """Move a family to its next sample size; its best ``n`` configurations go first there."""
        on_rung = [t for t in st.complete if t.rung == st.rung]
        top = sorted(on_rung, key=lambda t: t.value)[:n]
        st.rung += 1
        st.n_rung = st.stale = 0
        st.queue = [(dict(t.params), "promoted") for t in top] + [(p, s) for p, s in st.queue if s == "portfolio"]
        st.study = self._study(st.name, st.rung)
        st.best_loss_old = st.best_loss = math.inf
        st.time_best_found_old = st.time_best_found = st.total_time

    def _maybe_grow(self, st: FamilyState) -> None:
        """Holdout mode: move to the next sample size (FLAML's sample-size growth), best two configurations first.

        A family grows after :data:`GROW_AFTER` trials on its sample, or at once when it
        leads (the best family need not finish its portfolio on a small sample), when its
        growth is cheaper than its improvement or it has gone :data:`STALE_AFTER` trials
        without improving; with ``max_trials``, after :data:`GROW_AFTER` trials (no clock).
        """
        last = len(self.plan.sizes) - 1
        if st.rung >= last or not st.complete:
            return
        on_rung = [t for t in st.complete if t.rung == st.rung]
        if not on_rung:
            return
        leads = st.best_loss <= self.best_value
        if self.max_trials:
            if st.n_rung < GROW_AFTER:
                return
        elif not ((st.n_rung >= GROW_AFTER or leads)
                  and (leads or st.stale >= STALE_AFTER or st.time2eval_best * SAMPLE_FACTOR <= self.eci(st))):
            return
        self._promote(st, n=2)

    def _study(self, fam: str, rung: int):
        import optuna

        sampler = optuna.samplers.TPESampler(seed=self.seed + 101 * C.COMPLEXITY.get(fam, 0) + 7 * rung
                                             + sum(map(ord, fam)), n_startup_trials=5)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        return optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner, storage=self.storage,
                                   study_name=f"{fam}:{rung}")


@dataclass
class Pending:
    """A trial handed to the runner: its family, the Optuna trial that proposed it, its deadline, its start."""

    state: FamilyState
    trial: Trial
    otrial: Any
    until: float | None
    started: float


@dataclass
class FoldData:
    """What a fold reads besides its configuration (picklable: a cluster gets one copy per worker)."""

    X: pd.DataFrame
    y: np.ndarray
    plan: Plan
    scorer: Scorer
    groups: Any
    task: str
    seed: int
    scored: np.ndarray
    where: np.ndarray


TIME_BOX_REACHED = {"skipped": True}


def fit_fold(data: FoldData, family: str, params: dict, size: int, k: int, deadline: float) -> dict:
    """Fit one configuration on fold ``k``'s rows (sample ``size``) until ``deadline``; score its validation rows.

    The one place a trial's model is fitted and scored, in this process or on a Dask worker.
    """
    plan, X, y = data.plan, data.X, data.y
    rows = plan.fit_rows(k, size)
    val = plan.folds[k][1]
    pipe = C.build_pipeline(family, data.task, data.groups, params, data.seed)
    out = C.fit_with_deadline(pipe, X.iloc[rows], y[rows], deadline, early_stopping=True, seed=data.seed + k)
    s = data.scorer.scores(pipe, X.iloc[val])
    return {"fit_s": out["fit_s"], "truncated": bool(out["truncated"]), "best_iter": out["best_iter"],
            "fit_rows": int(out["fit_rows"]), "scores": s, "fold": data.scorer.fold(y[val], s, val),
            "model": pipe if plan.mode == "holdout" else None}


def _plain(params: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
