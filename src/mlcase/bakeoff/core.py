""":func:`run_bakeoff`: baselines, the adaptive search, ensemble selection, refit, measurement."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import candidates as C
from ..bundle import ModelBundle
from ..case import Case
from . import ensemble as E
from . import refit as R
from .entries import _baseline_entries, _best_baseline, _choose, _Entry, _leaderboard, _ranked
from .result import BakeoffResult
from .runners import study_storage
from .scoring import Plan, Scorer, make_plan
from .search import Search, Trial
from .timebox import (
    MIN_RESERVE_S,
    CtrlC,
    PeakMemory,
    Progress,
    TimeBox,
    parse_budget,
    search_starved,
)
from .writer import TrackingWriter

BASELINE_RUNG = 2          # holdout mode: baselines fit on the third sample size at most (160,000 rows)
SELECT_ROWS = 20_000       # ensemble selection reads at most this many out-of-fold rows
RESERVE_MAX = 0.3          # the final steps never claim more than this share of the budget


# --------------------------------------------------------------------------- the run
@dataclass
class _Run:
    """One bake-off's state, shared by its steps."""

    case: Case
    dataset: Any
    box: TimeBox
    plan: Plan
    ctx: R.Context
    search: Search | None
    writer: TrackingWriter
    progress: Progress
    child_tags: dict
    entries: dict = field(default_factory=dict)
    bundles: dict = field(default_factory=dict)
    recipes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)
    interrupted: bool = False
    on_trial: Any = None
    ensemble_info: dict = field(default_factory=dict)
    study_path: str | None = None

    @property
    def y_scored(self) -> np.ndarray:
        return self.search.y_scored

    def fitted_on(self) -> str:
        return self.plan.parts

    def oof_valid(self, oof: np.ndarray | None) -> np.ndarray | None:
        """The out-of-fold scores of the validation rows (cv mode), in ``dataset.split.valid`` order."""
        if oof is None or self.plan.mode != "cv" or len(self.plan.valid_in_pool) == 0:
            return None
        return np.array(oof[self.search.where[self.plan.valid_in_pool]], copy=True)


def run_bakeoff(case: Case, dataset, budget: float | str | None = None, console=None, quiet: bool = False,
                max_trials: int | None = None, on_trial=None, engine=None) -> BakeoffResult:
    """Baselines, then a time-boxed search across the candidate families, an ensemble, the refit.

    Parameters
    ----------
    case : Case
    dataset : mlcase.data.Dataset
    budget : float or str, optional
        Seconds or a duration (``"90s"``, ``"2m"``); default ``case.overrides["budget"]``
        or the spec's ``budget``.
    console : rich.console.Console, optional
        Where the progress display goes (a stderr console when omitted).
    quiet : bool
        No progress display.
    max_trials : int, optional
        At most this many trials per family, allotted round-robin (the clock still applies).
        With a budget large enough to finish them, a re-run reproduces the leaderboard exactly.
    on_trial : callable, optional
        Called with each finished trial's record (a dict: family, number, state, value,
        params, elapsed_s ...), in the calling thread.
    engine : mlcase.engine.Engine, optional
        Where the trials' folds run (:mod:`mlcase.engine`): this process (default), or a Dask
        cluster, where the families' trials and their folds run side by side under the same
        allocation and time box (:mod:`mlcase.bakeoff.runners`).

    Returns
    -------
    BakeoffResult
    """
    from ..arguments import whole_number
    from ..data import require_dataset

    require_dataset(dataset, "run_bakeoff")
    if max_trials is not None:
        max_trials = whole_number(max_trials, "max_trials", "a number of trials",
                                  "give the most trials per family, such as 20, or None for the time box alone")
    if case.spec.task == "ranking":  # lists, not rows: group-aware folds, NDCG, rankers (see .ranking)
        from .ranking import run_ranking_bakeoff

        return run_ranking_bakeoff(case, dataset, budget, console, quiet, max_trials, on_trial)
    t0 = time.monotonic()
    spec = case.spec
    budget_s = parse_budget(budget if budget is not None else case.overrides.get("budget", spec.budget))
    run, baselines, families = _setup(case, dataset, TimeBox(t0, budget_s), console, quiet, on_trial)
    box, ctx, progress, writer = run.box, run.ctx, run.progress, run.writer
    try:
        with optuna_quiet(), C.single_thread(), CtrlC() as ctrl_c:
            storage, run.study_path = study_storage(case, engine)
            run.search = Search(X=ctx.X, y=ctx.y, plan=run.plan, scorer=ctx.scorer, groups=ctx.groups,
                                task=spec.task, seed=ctx.seed, families=families, box=box, max_trials=max_trials,
                                progress=progress, on_record=lambda t: _on_trial(run, t), engine=engine,
                                storage=storage)
            run.search.ctrl_c = ctrl_c
            try:
                _baselines(run, baselines)
                run.phases["baselines_s"] = round(box.elapsed(), 3)
                run.search.run()
            except KeyboardInterrupt:
                run.interrupted = True
                run.notes.append("interrupted (Ctrl-C): the search stopped early; results are the best so far")
            run.phases["search_end_s"] = round(box.elapsed(), 3)
            for fam, st in run.search.states.items():
                run.entries[fam] = _family_entry(run, st)
            candidate = _finish(run)
            run.phases["refit_end_s"] = round(box.elapsed(), 3)
            progress.stop()
        result = _result(run, candidate, ctx.scorer, families, ctx.groups)
    except BaseException:  # a bug or a second Ctrl-C: close the display and the tracking thread, re-raise
        progress.stop()
        writer.abort()
        raise
    result._writer = writer
    result.wait_tracking(timeout=0)
    result.elapsed_s = time.monotonic() - t0
    return result


def _setup(case: Case, dataset, box: TimeBox, console, quiet: bool, on_trial) -> tuple[_Run, list, list]:
    """The rows of the search, the scorer, the baselines and families, the tracking writer and the display."""
    from .. import tracking

    spec = case.spec
    task, seed = spec.task, spec.split.seed
    plan = make_plan(case, dataset)
    X = dataset.frame.iloc[plan.pool][list(dataset.features)].reset_index(drop=True)
    rows = dataset.frame.iloc[plan.pool].reset_index(drop=True)
    y = dataset.y[plan.pool]
    if task == "multiclass":
        y = np.searchsorted(np.asarray(dataset.classes, dtype=object).astype(str), np.asarray(y).astype(str))
    schema = dataset.schema.to_dict()
    groups = C.column_groups(X, schema)
    scorer = Scorer(case, rows, y, dataset.classes if task == "multiclass" else None)
    baselines = _baseline_entries(case, dataset)
    families = list(dict.fromkeys(C.resolve_family(f, task) for f in spec.candidates))
    C.import_families(families)
    ctx = R.Context(case, dataset, plan, X, y, groups, scorer, schema, seed)
    parent_of = tracking.active_run_id() if "mlflow" in sys.modules else None
    child_tags = tracking.base_tags(case, dataset.fingerprint, "bakeoff")
    writer = TrackingWriter(case, "bakeoff", child_tags,
                            {"budget_s": box.budget, "metric": scorer.metric, "select_on": scorer.select_on,
                             "validation": plan.mode, "cv_folds": len(plan.folds),
                             "split_method": dataset.split.method, "families": ",".join(families),
                             "baselines": ",".join(e.name for e in baselines), "n_search_rows": len(X),
                             "seed": seed, "features": ",".join(dataset.features)[:5000]}, parent_of)
    progress = Progress(None if quiet else (console or _stderr_console()), box.budget, box.t0)
    run = _Run(case, dataset, box, plan, ctx, None, writer, progress, child_tags, on_trial=on_trial,
               notes=list(plan.notes))
    if spec.problem.volume_rate is None:
        run.notes.append("operating cost per decision counts prediction only: set problem.volume to spread "
                         "the retraining cost over the decisions")
    if groups.dropped:
        run.notes.append(f"columns not used by the models: {', '.join(groups.dropped)} (identifiers or empty)")
    return run, baselines, families


# --------------------------------------------------------------------------- steps
def _baselines(run: _Run, baselines: list[_Entry]) -> None:
    """Score every baseline on the plan's folds, then fit it for serving on the search rows."""
    ctx, plan, search = run.ctx, run.plan, run.search
    for e in baselines:
        run.progress.update(f"baseline {e.name}")
        start = time.time()
        oof, fit_s, last = None, 0.0, None
        for k, (_, val) in enumerate(plan.folds):
            est = e.make()
            fit_rows = plan.fit_rows(k, plan.sizes[min(BASELINE_RUNG, len(plan.sizes) - 1)])
            t = time.monotonic()
            est.fit(ctx.X.iloc[fit_rows], ctx.y[fit_rows])
            fit_s += time.monotonic() - t
            s = ctx.scorer.scores(est, ctx.X.iloc[val])
            if oof is None:
                oof = np.full((len(search.scored),) + s.shape[1:], np.nan)
            oof[search.where[val]] = s
            f = ctx.scorer.fold(ctx.y[val], s, val)
            e.folds.append(f["score"])
            e.loss_folds.append(f["loss"])
            e.cost_folds.append(f["cost"])
            last = est
        e.oof, e.fold_fit_s = oof, fit_s / len(plan.folds)
        e.recipe = {"make": e.make, "params": e.params, "family": e.family}
        run.entries[e.name] = e
        run.writer.child(f"baseline:{e.name}", {**e.params, "family": e.family},
                         {"cv_mean": e.cv_mean, "cv_std": e.cv_std, **({"cv_loss": e.cv_loss} if e.cv_loss else {})},
                         {**run.child_tags, "mlcase.kind": "baseline", "mlcase.family": e.family},
                         start, time.time(), steps={"fold_score": e.folds})
        if plan.mode == "holdout":  # the holdout fit is the served one (the validation part stays untouched)
            model, info = last, {"fit_cpu_s": fit_s, "peak_mem_mb": 0.0, "params": e.params,
                                 "rows_seen": len(fit_rows)}
        else:
            model, info = R.fit(e.recipe, ctx.X, ctx.y, ctx.task, ctx.groups, ctx.seed, None)
        _store(run, e, model, info)


def _on_trial(run: _Run, t: Trial) -> None:
    """Log a finished trial, report it, and update the time the final steps need."""
    rec = t.record()
    metrics = {"cv_mean": rec["value"]} if rec["value"] is not None else {}
    if rec["cv_loss"] is not None:
        metrics["cv_loss"] = rec["cv_loss"]
    end = time.time()
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(t.state, "FAILED")
    run.writer.child(f"{t.family}:{t.number}", {**rec["params"], "family": t.family, "rows": rec["rows"]}, metrics,
                     {**run.child_tags, "mlcase.kind": "trial", "mlcase.family": t.family,
                      "mlcase.trial_state": t.state, **({"mlcase.note": t.note} if t.note else {})},
                     end - t.duration_s, end, status=status, steps={"fold_score": rec["folds"]})
    if run.on_trial is not None:
        run.on_trial(dict(rec))
    run.box.reserve = _reserve(run)


def _recipe(t: Trial) -> dict:
    grown = max(t.best_iters) if t.best_iters else None
    params = dict(t.params)
    key = C.TREES_PARAM.get(t.family)
    if key and t.family not in C.BOOSTED and t.truncated and t.best_iters:  # a forest cut by the clock
        params[key] = max(1, int(np.mean(t.best_iters)))
    return {"family": t.family, "params": params, "best_iters": list(t.best_iters),
            "fit_rows": list(t.fit_rows), "grown": grown, "fit_s": t.fit_s,
            "fit_s_per_row": t.fit_s / max(sum(t.fit_rows), 1), "rung": t.rung, "size": t.size}


def _final_rows(run: _Run, recipe: dict) -> np.ndarray:
    """Rows (positions in the pool) a configuration is fitted on for serving (cv mode: all of them)."""
    return np.arange(len(run.plan.pool))


def _refit_s(run: _Run, recipe: dict) -> float:
    """Seconds to fit a configuration for serving: none in holdout mode (the scored model is served)."""
    if run.plan.mode == "holdout" or not recipe:
        return 0.0
    return R.estimate_s(recipe, len(run.plan.pool))


def _reserve(run: _Run) -> float:
    """Seconds the final steps need: refitting the best trial of the top three families, selecting, measuring."""
    best = sorted((st.best for st in run.search.states.values() if st.best is not None), key=lambda t: t.value)[:3]
    need = MIN_RESERVE_S + 0.2 * len(best)
    for i, t in enumerate(best):  # the best one surely, the next two (ensemble members) half
        need += (1.0 if i == 0 else 0.5) * _refit_s(run, _recipe(t))
    n_kept = len(run.search.kept())
    need += 2e-7 * n_kept * E.ENSEMBLE_SIZE * 6 * min(len(run.search.scored), SELECT_ROWS)
    return min(need, RESERVE_MAX * run.box.budget)


def _family_entry(run: _Run, st) -> _Entry:
    """The leaderboard entry of a family: its best complete trial, or an unscored row saying why."""
    info = st.info()
    best = st.best
    if best is None:
        why = st.stopped or "; ".join(e for e in info["errors"] if e) or "no trial finished within the time box"
        return _Entry(st.name, "candidate", st.name, None, {}, n_trials=info["n_trials"], note=[why],
                      search_s=st.total_time)
    e = _Entry(st.name, "candidate", st.name, None, dict(best.params), folds=[f["score"] for f in best.folds],
               loss_folds=[f["loss"] for f in best.folds], cost_folds=[f["cost"] for f in best.folds],
               oof=best.oof, n_trials=info["n_trials"],
               n_trees=int(np.mean(best.best_iters)) if best.best_iters else None,
               fold_fit_s=best.fit_s / max(len(best.folds), 1), search_s=st.total_time, recipe=_recipe(best),
               model=best.model)
    if best.truncated:
        e.note.append("best trial cut by the time box")
    if st.stopped and st.stopped.startswith("dominated"):
        e.note.append(f"stopped early, {st.stopped}")
    if run.plan.mode == "holdout":
        e.note.append(f"scored on a sample of {best.size:,} rows")
    return e


def _finish(run: _Run) -> str | None:
    """Choose the candidate (single model or ensemble), fit it for serving, then the other families if time allows."""
    scorer = run.ctx.scorer
    row_loss = scorer.row_loss if scorer.by_loss else None
    y = run.y_scored
    candidate, tie_note = _choose(run.entries, run.plan.folds, row_loss, y)
    if candidate is not None and not run.interrupted and run.case.spec.bakeoff.ensemble:
        ens = _ensemble(run, candidate)
        run.phases["ensemble_end_s"] = round(run.box.elapsed(), 3)
        if ens is not None:
            candidate = ens
    if tie_note and candidate in run.entries:
        run.entries[candidate].note.insert(0, tie_note)
    order = ([candidate] if candidate else []) + [e.name for e in _ranked(run.entries) if e.kind == "candidate"
                                                  and e.name != candidate and e.family != "ensemble"]
    for name in order:
        e = run.entries[name]
        if e.cv_mean is None or name in run.bundles:
            continue
        is_main = name == candidate
        est = _refit_s(run, e.recipe)
        if not is_main and (run.interrupted or time.monotonic() + est > run.box.end):
            e.note.append("not refitted: no time left in the budget")
            continue
        try:
            run.progress.update(f"refit {name}")
            _fit_entry(run, e)
        except KeyboardInterrupt:
            run.interrupted = True
            e.note.append("refit interrupted")
            break
    if candidate and candidate not in run.bundles:
        run.notes.append(f"the chosen candidate {candidate} could not be refitted")
        candidate = next((e.name for e in _ranked(run.entries) if e.kind == "candidate" and e.name in run.bundles), None)
    return candidate


def _fit_entry(run: _Run, e: _Entry) -> None:
    ctx = run.ctx
    if run.plan.mode == "holdout" and e.model is not None:
        _store(run, e, e.model, _scored_fit(e.recipe, e.params))
        return
    rows = _final_rows(run, e.recipe)
    model, info = R.fit(e.recipe, ctx.X.iloc[rows], ctx.y[rows], ctx.task, ctx.groups, ctx.seed, run.box.hard_end)
    if info["truncated"]:
        e.note.append(f"refit cut by the time box at {info['n_trees']} trees")
    if info["n_trees"] is not None:
        e.n_trees = int(info["n_trees"])
    _store(run, e, model, info)


def _scored_fit(recipe: dict, params: dict) -> dict:
    """What a holdout-mode model's own fit did (it is served as it was scored)."""
    trees = recipe.get("best_iters") or []
    key = C.TREES_PARAM.get(recipe.get("family"))
    p = dict(params)
    if key and trees:
        p[key] = int(trees[0])
    return {"fit_cpu_s": recipe.get("fit_s", 0.0), "peak_mem_mb": 0.0, "truncated": False,
            "n_trees": trees[0] if trees else None, "params": p, "rows_seen": (recipe.get("fit_rows") or [0])[0]}


def _store(run: _Run, e: _Entry, model, info: dict, oof_valid=None) -> ModelBundle:
    """Measure a fitted entry and keep its bundle and its recipe."""
    ctx = run.ctx
    e.measures = R.measures(ctx, model, info)
    if info.get("truncated"):  # its serving fit was cut by the time box: weaker than the fits that scored it
        e.measures["refit_cut"] = True
    e.rows_seen = int(info["rows_seen"])
    metrics = {"cv_mean": e.cv_mean, "cv_std": e.cv_std, "cv_metric": ctx.scorer.metric, "cv_folds": e.folds,
               "cv_loss": e.cv_loss, "cv_loss_metric": ctx.scorer.loss_name, "cv_cost": e.cv_cost, **e.measures}
    b = R.bundle(ctx, e.name, e.kind, e.family, model, info.get("params") or e.params, metrics,
                 oof_valid if oof_valid is not None else run.oof_valid(e.oof), e.rows_seen, run.fitted_on(),
                 rule=e.rule)
    run.bundles[e.name] = b
    run.recipes[e.name] = e.recipe
    return b


def _ensemble(run: _Run, single: str) -> str | None:
    """Caruana selection over the best trials; returns ``"ensemble"`` when it is kept, else None (the note says why).

    Where Caruana's ensemble is not worth serving, the bag of near-ties of the best is judged
    instead (``bakeoff.bag``). Where the chosen members cannot all be refitted for serving within
    the time box, the same rule is run again among the members that can (the heaviest weights
    first), so the pool served is still one its cross-fitted verdict was reached on; with fewer
    than two left, the single model stands.
    """
    scorer = run.ctx.scorer
    members = _ensemble_members(run) if scorer.by_loss else []
    if len(members) < 2:
        return None
    y = run.y_scored
    idx, folds = _selection_rows(run, members)
    finish = np.sqrt if run.ctx.task == "regression" else None
    offered = [{"name": m["name"], "oof": m["oof"][idx]} for m in members]

    def judge(among: list[dict]) -> tuple[dict, str | None]:
        sel = E.select(among, y[idx], run.ctx.task, scorer.row_loss, folds, finish=finish)
        if sel["worth"] or not run.case.spec.bakeoff.bag:
            return sel, None
        note = f"Caruana selection not kept: {sel['reason']}"  # the near-ties of the best, pooled with equal weights
        return E.bag(among, y[idx], run.ctx.task, scorer.row_loss, folds, finish=finish) | {"caruana": note}, note

    sel, caruana_note = judge(offered)
    entry, used = _ensemble_entry(run, members, sel, idx, folds, caruana_note)
    if not sel["worth"]:
        entry.note.append(f"not kept: {sel['reason']}; the single model stands")
        return None
    need = sum(_refit_s(run, r) for r in entry.recipe["members"])
    if time.monotonic() + need > run.box.hard_end:
        past = f"refitting its {len(used)} members needs about {need:.3g} s, past the time box"
        fit_in = _members_within(run, entry, run.box.hard_end - time.monotonic())
        if len(fit_in) < 2:
            entry.note.append(f"not kept: {past}")
            run.ensemble_info["reason"] = entry.note[-1]
            return None
        sel, caruana_note = judge([o for o in offered if o["name"] in fit_in])
        notes = [n for n in (f"{past}; selected again among the {len(fit_in)} that fit", caruana_note) if n]
        entry, used = _ensemble_entry(run, members, sel, idx, folds, "; ".join(notes))
        if not sel["worth"]:
            entry.note.append(f"not kept: {sel['reason']}; the single model stands")
            run.ensemble_info["reason"] = "; ".join(entry.note)
            return None
    info = run.ensemble_info
    b = _fit_ensemble(run, entry, {m["name"]: m["trial"].model for m in used},
                      run.oof_valid(_ensemble_oof(run, used, sel, idx)))
    limit = run.case.spec.constraints.latency_p95_ms
    lat = None if limit is None else R.gate_latency_ms(b, run.ctx.X, limit)
    if lat is not None and not lat["ok"]:
        entry.note.append(f"not kept: its single-row latency ({lat['gate_ms']:.3g} ms, p95, {lat['gate']}) exceeds "
                          f"constraints.latency_p95_ms ({limit:g} ms); the single model stands")
        info["reason"] = entry.note[-1]
        run.bundles.pop("ensemble", None)
        return None
    entry.note.append(f"kept: {sel['reason']}")
    entry.oof = _scatter(sel["crossfit"], idx, len(y))  # its cross-fitted scores, kept for the analysis
    info["kept"] = True
    return "ensemble"


def _ensemble_entry(run: _Run, members: list[dict], sel: dict, idx: np.ndarray, folds: list[np.ndarray],
                    note: str | None) -> tuple[_Entry, list[dict]]:
    """The leaderboard's ``ensemble`` row for selection ``sel`` (and ``run.ensemble_info``), and its members."""
    scorer, y = run.ctx.scorer, run.y_scored
    used = [m for m in members if m["name"] in sel["weights"]]
    run.ensemble_info = {"kind": "caruana", **{k: v for k, v in sel.items() if k != "crossfit"}, "kept": False}
    entry = _Entry("ensemble", "candidate", "ensemble", None, {"members": list(sel["weights"])},
                   n_trials=len(members), cv_override=sel["cv_loss"],
                   recipe={"family": "ensemble", "members": [_recipe(m["trial"]) | {"name": m["name"]} for m in used],
                           "weights": [sel["weights"][m["name"]] for m in used]},
                   note=[note] if note else [])
    entry.loss_folds = [sel["cv_loss"]]
    yi = y[idx]  # its business cost beside the loss, at each fold's best threshold (as a trial's), cross-fitted
    entry.cost_folds = [scorer.cost(yi[f], sel["crossfit"][f], idx[f]) for f in folds if len(f)]
    run.entries["ensemble"] = entry
    return entry, used


def _members_within(run: _Run, entry: _Entry, left_s: float) -> list[str]:
    """Names of the ensemble's members that can be refitted in ``left_s`` seconds, the heaviest weights first."""
    ranked = sorted(zip(entry.recipe["weights"], entry.recipe["members"], strict=True), key=lambda wm: -wm[0])
    out, spent = [], 0.0
    for _, m in ranked:
        s = _refit_s(run, m)
        if spent + s <= left_s:
            out.append(m["name"])
            spent += s
    return out


def _ensemble_members(run: _Run) -> list[dict]:
    """The best trials with out-of-fold scores, best first: at most PER_FAMILY of a family, MAX_MEMBERS in all."""
    members, per_family = [], {}
    for t in sorted(run.search.kept(), key=lambda t: t.value):
        if per_family.get(t.family, 0) >= E.PER_FAMILY or len(members) >= E.MAX_MEMBERS:
            continue
        if run.plan.mode == "holdout" and t.model is None:
            continue
        per_family[t.family] = per_family.get(t.family, 0) + 1
        members.append({"name": f"{t.family}:{t.number}", "oof": t.oof, "trial": t})
    return members


def _selection_rows(run: _Run, members: list[dict]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scored rows every member has (at most SELECT_ROWS of them), and the folds the weights are cross-fitted on."""
    y, seed = run.y_scored, run.case.spec.split.seed
    ok = np.all([np.isfinite(m["oof"]).reshape(len(y), -1).all(axis=1) for m in members], axis=0)
    idx = np.flatnonzero(ok)
    if len(idx) > SELECT_ROWS:  # the selection reads a random subset of the rows (its cost grows with them)
        idx = np.sort(np.random.default_rng(seed).choice(idx, SELECT_ROWS, replace=False))
        ok = np.zeros(len(y), dtype=bool)
        ok[idx] = True
    if run.plan.mode == "holdout" or len(run.plan.folds) < 2:  # one holdout: five random folds of it
        return idx, list(np.array_split(np.random.default_rng(seed).permutation(len(idx)), 5))
    remap = np.full(len(y), -1)
    remap[idx] = np.arange(len(idx))
    folds = []
    for _, val in run.plan.folds:
        pos = run.search.where[val]
        folds.append(remap[pos[ok[pos]]])
    return idx, folds


def _fit_ensemble(run: _Run, entry: _Entry, trial_models: dict, oof_valid) -> ModelBundle:
    """Fit every member for serving (holdout mode: the scored models), build the ensemble, store its bundle."""
    ctx, fitted, info_all = run.ctx, [], {"fit_cpu_s": 0.0, "peak_mem_mb": 0.0, "truncated": False}
    for m in entry.recipe["members"]:
        run.progress.update(f"refit ensemble member {m['name']}")
        if run.plan.mode == "holdout":
            model, info = trial_models[m["name"]], _scored_fit(m, m["params"])
        else:
            rows = _final_rows(run, m)
            model, info = R.fit(m, ctx.X.iloc[rows], ctx.y[rows], ctx.task, ctx.groups, ctx.seed, run.box.hard_end)
        fitted.append((m["name"], model))
        info_all["fit_cpu_s"] += info["fit_cpu_s"]
        info_all["peak_mem_mb"] = max(info_all["peak_mem_mb"], info["peak_mem_mb"])
        info_all["rows_seen"] = info["rows_seen"]
        info_all["truncated"] |= bool(info["truncated"])
    model = E.make_ensemble(ctx.task, fitted, entry.recipe["weights"])
    info_all["params"] = {"members": [n for n, _ in fitted], "weights": list(entry.recipe["weights"])}
    return _store(run, entry, model, info_all, oof_valid=oof_valid)


def _ensemble_oof(run: _Run, used: list[dict], sel: dict, idx: np.ndarray) -> np.ndarray:
    """The ensemble's out-of-fold scores on every scored row: cross-fitted where the selection read the row,
    elsewhere its members' out-of-fold scores pooled with the chosen weights.

    The selection reads at most SELECT_ROWS rows. Scattering only its cross-fitted scores left the
    other rows without a score: on ggplot2::diamonds (43,152 rows) 23,152 validation-pool rows were
    NaN, the conformal quantile came out NaN and every served interval was (-inf, inf).
    """
    n = len(run.y_scored)
    cross = _scatter(sel["crossfit"], idx, n)
    pooled = E.pool_scores(run.ctx.task, [m["oof"] for m in used], [sel["weights"][m["name"]] for m in used])
    have = np.isfinite(cross).reshape(n, -1).all(axis=1)
    return np.where(have.reshape((n,) + (1,) * (cross.ndim - 1)), cross, pooled)


def _scatter(values: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    out = np.full((n,) + values.shape[1:], np.nan)
    out[idx] = values
    return out


# --------------------------------------------------------------------------- result
def _result(run: _Run, candidate: str | None, scorer: Scorer, families: list[str], groups) -> BakeoffResult:
    best_baseline = _best_baseline(run.entries)
    leaderboard = _leaderboard(run.entries, run.bundles, scorer.metric, candidate)
    elapsed = run.box.elapsed()
    states = run.search.states
    fam_info = {f: {**st.info(), "share_of_search": None} for f, st in states.items()}
    total = sum(st.total_time for st in states.values()) or 1.0
    for f, st in states.items():
        fam_info[f]["share_of_search"] = round(st.total_time / total, 4)
    if starved := search_starved(run.phases, run.box.budget, fam_info, run.interrupted):
        run.notes.append(starved)
    result = BakeoffResult(
        leaderboard=leaderboard, bundles=run.bundles, candidate=candidate,
        best_baseline=best_baseline if best_baseline in run.bundles else None, elapsed_s=elapsed,
        interrupted=run.interrupted, budget_s=run.box.budget, metric=scorer.metric,
        cv={"method": run.dataset.split.method, "mode": run.plan.mode, "folds": len(run.plan.folds),
            "n_train": int(len(run.plan.pool)), "parts": run.plan.parts, "columns": groups.to_dict()},
        phases=run.phases, trials=[t.record() for t in run.search.trials], families=fam_info, notes=run.notes,
        fingerprint=run.dataset.fingerprint, input_example=run.ctx.X.head(5), plan=run.plan.to_dict(),
        ensemble=run.ensemble_info, select_on=scorer.select_on,
        loss_metric=scorer.loss_name, recipes=run.recipes, engine=_engine_info(run))
    frame = result.leaderboard_frame()
    case = run.case
    case.root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(case.root / "leaderboard.csv", index=False)
    save_oof(run)
    top = result.row(candidate) if candidate else None
    run.phases["leaderboard_s"] = round(run.box.elapsed(), 3)
    run.writer.close({"metrics": {"elapsed_s": elapsed, **({"best_cv_mean": top["cv_mean"]} if top else {})},
                      "tags": {"mlcase.candidate": candidate or "", "mlcase.best_baseline": best_baseline or "",
                               "mlcase.interrupted": str(run.interrupted).lower()}},
                     {"leaderboard.csv": frame.to_csv(index=False), "leaderboard.json": _json(result.to_dict())},
                     status="KILLED" if run.interrupted else "FINISHED",
                     timeout=1.0 if run.interrupted else max(0.0, run.box.hard_end - time.monotonic()))
    return result


def _engine_info(run: _Run) -> dict:
    """Where the trials ran: the engine, its workers, the Optuna study's file, workers lost mid-trial."""
    runner = run.search.runner
    eng = getattr(runner, "engine", None)
    info = eng.info.to_dict() if eng is not None else {"kind": "local", "workers": 1}
    info["study"] = run.study_path
    info["workers_lost"] = getattr(runner, "workers_lost", 0)
    info["folds_rerun"] = getattr(runner, "folds_rerun", 0)
    return info


OOF_FILE = "oof.parquet"


def save_oof(run: _Run) -> None:
    """Keep every entry's out-of-fold scores as ``<case>/.mlcase/oof.parquet`` (for ``mlcase analyze``).

    One row per scored row: ``row`` (its position in ``dataset.frame``), then one column per
    entry (``name``; multiclass: ``name::k`` for class code ``k``). The analysis stage reads
    it instead of refitting anything.
    """
    import pandas as pd

    scored = run.search.scored
    cols = {"row": run.plan.pool[scored].astype("int64")}
    for name, e in run.entries.items():
        if e.oof is None or len(e.oof) != len(scored):
            continue
        a = np.asarray(e.oof, dtype="float64")
        if a.ndim == 1:
            cols[name] = a
        else:
            for k in range(a.shape[1]):
                cols[f"{name}::{k}"] = a[:, k]
    path = run.case.work_dir / OOF_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{OOF_FILE}.tmp")
    pd.DataFrame(cols).to_parquet(tmp, index=False)
    tmp.replace(path)


def _json(d: dict) -> str:
    from ..results import to_json

    return to_json(d)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def optuna_quiet():
    """Optuna logs nothing below ERROR (failed trials are reported in the leaderboard instead)."""
    import warnings

    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*X does not have valid feature names.*")
            yield
    finally:
        optuna.logging.set_verbosity(level)


__all__ = ["run_bakeoff", "PeakMemory"]
