"""The ranking bake-off: LambdaRank and ``rank:ndcg`` tuned in the same time box, on group-aware folds.

:func:`mlcase.bakeoff.run_bakeoff` hands a ``task: ranking`` case here. What it shares with the
other tasks: the :class:`~mlcase.bakeoff.timebox.TimeBox` (budget, reserve for the refit,
hard end at 110%), the families' defaults and zero-shot portfolios
(:func:`mlcase.candidates.portfolio`), a seeded Optuna TPE study per family after them
(:func:`mlcase.candidates.suggest_params`), the background MLflow writer (one child run per
baseline and trial), the leaderboard entries and the tie rule (NDCG has no per-row loss, so a
simpler family within CV noise wins, :func:`mlcase.bakeoff.entries._choose`), the refit with rounds scaled by the rows, running
costs and :class:`~mlcase.bakeoff.result.BakeoffResult`. What differs:

- **Folds keep lists whole.** ``split.method: group``: group k-fold over the train and
  validation rows (no group on both sides), so every validation row gets an out-of-fold score.
  ``group_time`` / ``time``: one fold, fitted on the train part and scored on the validation
  part (each group's later interactions), never on a group's future.
- **The score is 1 - NDCG@k** (mean over the lists with a relevant item; lower is better), and
  LightGBM's LambdaRank gets the case's gains as ``label_gain``, so both optimise the NDCG the
  evaluation reports. Early stopping watches NDCG@k on 10% of the fit groups.
- **Baselines** are rankers (:mod:`mlcase.rankers`): the pointwise linear model (ridge on the
  gain), the collaborative filter (``als``), each rule (an ``ORDER BY`` clause), and
  popularity and recency shown for reference (the evaluation's model-free floor).
- Allocation is round-robin between the two families (the first trials of each are its
  defaults and portfolio); no ensemble.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from .. import candidates as C
from ..bundle import ModelBundle
from ..case import Case
from .entries import _best_baseline, _choose, _Entry, _leaderboard, _ranked
from .refit import TREES_SCALE_CAP, latency_ms, model_size, operating_cost
from .result import BakeoffResult
from .timebox import CtrlC, PeakMemory, Progress, TimeBox, parse_budget, search_starved
from .writer import TrackingWriter

TRIAL_FACTOR = 3.0       # a trial may take this many times its family's best trial, or a fifth of the time left


class _Ctx:
    """The rows of the search (the train and validation parts), their folds and how they are scored."""

    def __init__(self, case: Case, dataset):
        from ..rankers import label_levels
        from ..tasks.ranking import Groups, k_of

        spec = case.spec
        split = dataset.split
        self.case, self.dataset = case, dataset
        self.pool = np.concatenate([split.train, split.valid])
        self.n_train = len(split.train)
        self.rows = dataset.frame.iloc[self.pool].reset_index(drop=True)
        self.y = np.asarray(dataset.y[self.pool], dtype=float)
        self.group = spec.data.group
        self.g = self.rows[self.group].to_numpy()
        self.k = k_of(case)
        self.levels = label_levels(dataset.y)
        self.features = list(dataset.features)
        self.colgroups = C.column_groups(self.rows[self.features], dataset.schema.to_dict())
        self.seed = spec.split.seed
        self.folds, self.mode = self._folds(case, dataset)
        self.valid_pos = np.arange(self.n_train, len(self.pool))
        self.Groups = Groups

    def _folds(self, case: Case, dataset):
        """Group k-fold over the lists (or the holdout of each list's later rows), every fold scoreable.

        A fold is scored on its lists with a relevant item. lattice::barley ranked by site (5 sites in
        training, ``relevant_from`` 39.45 bushels, which 3 sites never reach) drew folds of those sites
        alone, and NDCG over no list was NaN (an internal error). Where group k-fold draws such a fold,
        the folds are stratified by whether a list has a relevant item (scikit-learn's
        StratifiedGroupKFold); folds still without one are dropped, and fewer than 2 left is a
        :class:`DataError` naming ``relevant_from``.
        """
        import warnings

        from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

        from ..errors import DataError

        n = len(self.pool)
        has = pd.Series(self.y > 0).groupby(self.g).transform("any").to_numpy()   # the row's list has a relevant item
        thr = (case.spec.ranking.relevant_from if case.spec.ranking is not None else None)
        where = f"ranking.relevant_from {thr:g}" if thr is not None else "the default relevant_from (the 75th percentile)"
        if dataset.split.method == "group":
            n_groups = len(pd.unique(self.g))
            k = min(case.spec.split.cv_folds, n_groups)
            seed = case.spec.split.seed
            folds = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), groups=self.g))
            if not all(has[b].any() for _, b in folds):
                with warnings.catch_warnings():   # fewer lists with a relevant item than folds: said below
                    warnings.simplefilter("ignore", UserWarning)
                    folds = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
                        np.zeros(n), has, groups=self.g))
                folds = [(a, b) for a, b in folds if has[b].any() and (self.y[a] > 0).any()]
                if len(folds) < 2:
                    lists = len(pd.unique(self.g[has]))
                    raise DataError(f"{where}: lists with a relevant item, {lists} of {n_groups} in training, are too "
                                    "few to score 2 cross-validation folds on",
                                    "lower ranking.relevant_from so that more lists hold a relevant item, or add "
                                    "lists")
            return folds, "group k-fold"
        valid = np.arange(self.n_train, n)
        if not (self.y[valid] > 0).any():
            raise DataError(f"{where}: no list's later rows (the validation part) hold a relevant item, so the "
                            "search has nothing to score", "lower ranking.relevant_from, or add rows")
        return [(np.arange(self.n_train), valid)], "holdout (each group's later rows)"

    def loss(self, pos: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean 1 - NDCG@k over the lists with a relevant item, and per list (0 where none is relevant)."""
        from ..tasks.ranking import list_metrics

        per = list_metrics(self.y[pos], self.y[pos] > 0, s, self.g[pos], self.k)
        has = per["has_relevant"]
        mean = float(1.0 - np.nanmean(per["ndcg"][has])) if has.any() else float("nan")
        return mean, np.nan_to_num(1.0 - per["ndcg"], nan=0.0)


# --------------------------------------------------------------------------- baselines
def _baseline_makers(case: Case, ctx: _Ctx) -> list[tuple[str, str, Any, list[str], str | None]]:
    """``(name, family, make, columns, rule)`` per baseline; ``family`` 'constant' marks the model-free ones."""
    from ..rankers import ALSRanker, PopularityRanker, RecencyRanker, RuleRanker
    from ..spec import RuleBaseline

    d = case.spec.data
    seed = ctx.seed
    out: list = []
    if d.item:
        out.append(("popularity", "constant", lambda: PopularityRanker(item=d.item), [d.item], None))
    rule_names = iter(case.spec.rule_names())
    for b in case.spec.baselines:
        if isinstance(b, RuleBaseline):
            name = next(rule_names)
            out.append((name, "rule", lambda r=b.rule: RuleRanker(r, ctx.features), list(ctx.features), b.rule))
        elif b == "linear":
            out.append(("linear", "ridge", lambda: C.build_pipeline("ridge", "regression", ctx.colgroups, None, seed),
                        list(ctx.features), None))
        elif b == "als":
            out.append(("als", "als", lambda: ALSRanker(group=d.group, item=d.item, seed=seed), [d.group, d.item],
                        None))
        elif b == "recency" and d.item and d.time:
            out.append(("recency", "constant", lambda: RecencyRanker(item=d.item, time=d.time), [d.item, d.time],
                        None))
    return out


def _run_baselines(run: dict) -> None:
    ctx: _Ctx = run["ctx"]
    for name, family, make, cols, rule in _baseline_makers(ctx.case, ctx):
        run["progress"].update(f"baseline {name}")
        start = time.time()
        e = _Entry(name, "baseline", family, make, {}, rule=rule)
        oof = np.full(len(ctx.pool), np.nan)
        fit_s = 0.0
        for fit, val in ctx.folds:
            t = time.monotonic()
            est = make().fit(ctx.rows.iloc[fit][cols], ctx.y[fit])
            fit_s += time.monotonic() - t
            s = np.asarray(est.predict(ctx.rows.iloc[val][cols]), dtype=float)
            oof[val] = s
            loss, _ = ctx.loss(val, s)
            e.folds.append(loss)
            e.loss_folds.append(loss)
        e.oof, e.fold_fit_s = oof, fit_s / len(ctx.folds)
        run["entries"][name] = e
        run["writer"].child(f"baseline:{name}", {"family": family}, {"cv_mean": e.cv_mean},
                            {**run["tags"], "mlcase.kind": "baseline", "mlcase.family": family}, start, time.time(),
                            steps={"fold_score": e.folds})
        if family == "constant":  # model-free: the evaluation judges it as the floor; no bundle
            continue
        cpu0 = time.process_time()
        with PeakMemory() as mem:
            model = make().fit(ctx.rows[cols], ctx.y)
        _store(run, e, model, cols, {"fit_cpu_s": time.process_time() - cpu0, "peak_mem_mb": mem.mb}, oof)


# --------------------------------------------------------------------------- the search
class _Family:
    def __init__(self, name: str, seed: int):
        import optuna

        self.name = name
        self.queue = [(p, "default" if i == 0 else "portfolio") for i, p in enumerate(C.portfolio(name))]
        self.study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(
            seed=seed + sum(map(ord, name)), n_startup_trials=5), study_name=f"ranking:{name}")
        self.trials: list[dict] = []
        self.best: dict | None = None
        self.stopped: str | None = None

    def next_params(self):
        if self.queue:
            params, source = self.queue.pop(0)
            return params, source, None
        ot = self.study.ask()
        return C.suggest_params(self.name, ot), "tpe", ot


def _trial(run: dict, fam: _Family, until: float) -> dict:
    from ..rankers import fit_ranker, make_ranker

    ctx: _Ctx = run["ctx"]
    params, source, ot = fam.next_params()
    rec: dict[str, Any] = {"family": fam.name, "number": len(fam.trials), "params": params, "source": source,
                           "folds": [], "best_iters": [], "fit_rows": [], "fit_s": 0.0, "truncated": False,
                           "state": "COMPLETE", "note": None, "value": None}
    start = time.monotonic()
    oof = np.full(len(ctx.pool), np.nan)
    try:
        for j, (fit, val) in enumerate(ctx.folds):
            now = time.monotonic()
            if now >= until and run["any_complete"]:
                rec["state"], rec["note"] = "PRUNED", "time box reached before all folds were scored"
                break
            deadline = now + max(until - now, 0.0) / (len(ctx.folds) - j)
            pipe = make_ranker(fam.name, ctx.colgroups, params, ctx.seed, ctx.k, ctx.levels)
            out = fit_ranker(pipe, ctx.rows.iloc[fit][ctx.features], ctx.y[fit], ctx.g[fit], ctx.levels,
                             deadline, early_stopping=True, seed=ctx.seed + j, k=ctx.k)
            rec["fit_s"] += out["fit_s"]
            rec["truncated"] |= out["truncated"]
            rec["best_iters"].append(int(out["best_iter"]))
            rec["fit_rows"].append(int(out["fit_rows"]))
            s = np.asarray(pipe.predict(ctx.rows.iloc[val][ctx.features]), dtype=float)
            oof[val] = s
            rec["folds"].append(ctx.loss(val, s)[0])
    except Exception as exc:  # recorded on the trial and in the leaderboard note; the search goes on
        rec["state"], rec["note"] = "FAILED", f"{type(exc).__name__}: {str(exc)[:300]}"
    rec["duration_s"] = time.monotonic() - start
    if rec["state"] == "COMPLETE" and rec["folds"]:
        rec["value"] = float(np.mean(rec["folds"]))
        rec["oof"] = oof
        if rec["truncated"]:
            rec["note"] = "cut by the time box"
    _tell(fam, rec, ot)
    return rec


def _tell(fam: _Family, rec: dict, ot) -> None:
    import optuna

    done = rec["value"] is not None
    if ot is not None:
        fam.study.tell(ot, rec["value"] if done else None,
                       state=optuna.trial.TrialState.COMPLETE if done else optuna.trial.TrialState.FAIL)
    elif done:
        space = C.search_space(fam.name)
        params = C.in_space(fam.name, rec["params"])
        if params:
            fam.study.add_trial(optuna.trial.create_trial(params=params, distributions={k: space[k] for k in params},
                                                          value=rec["value"]))
    fam.trials.append(rec)
    if done and (fam.best is None or rec["value"] < fam.best["value"]):
        if fam.best is not None:
            fam.best.pop("oof", None)
        fam.best = rec
    elif done:
        rec.pop("oof", None)


def _search(run: dict, families: list[_Family], max_trials: int | None) -> None:
    box: TimeBox = run["box"]
    ctx: _Ctx = run["ctx"]
    while True:
        run["ctrl_c"].check()      # a Ctrl-C that a finalizer swallowed still stops the search here
        open_ = [f for f in families if f.stopped is None and (max_trials is None or len(f.trials) < max_trials)]
        if not open_:
            return
        if box.left() <= 0 and run["any_complete"]:
            for f in open_:
                f.stopped = f.stopped or "no time left in the budget"
            return
        fam = min(open_, key=lambda f: (len(f.trials), families.index(f)))
        if fam.best is None and sum(t["state"] == "FAILED" for t in fam.trials) >= 2:
            why = next((t["note"] for t in reversed(fam.trials) if t.get("note")), None)
            fam.stopped = "its defaults failed twice" + (f" ({why})" if why else "")
            continue
        left = max(box.left(), 0.0)
        best_s = fam.best["duration_s"] if fam.best else None
        if best_s is None:  # the defaults: an equal share of what is left
            until = time.monotonic() + left / max(1, sum(1 for f in open_ if f.best is None))
        else:
            until = time.monotonic() + max(TRIAL_FACTOR * best_s, 0.2 * left)
        until = min(until, box.search_end) if run["any_complete"] else max(until, time.monotonic() + 1.0)
        run["progress"].update(f"{fam.name} trial {len(fam.trials) + 1}")
        rec = _trial(run, fam, until)
        if rec["state"] == "COMPLETE":
            run["any_complete"] = True
        end = time.time()
        run["writer"].child(f"{fam.name}:{rec['number']}", {**rec["params"], "family": fam.name},
                            {"cv_mean": rec["value"]} if rec["value"] is not None else {},
                            {**run["tags"], "mlcase.kind": "trial", "mlcase.family": fam.name,
                             "mlcase.trial_state": rec["state"], **({"mlcase.note": rec["note"]} if rec["note"] else {})},
                            end - rec["duration_s"], end,
                            status={"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(rec["state"], "FAILED"),
                            steps={"fold_score": rec["folds"]})
        run["trials"].append({"family": fam.name, "number": rec["number"], "state": rec["state"],
                              "value": rec["value"], "params": dict(rec["params"]), "folds": list(rec["folds"]),
                              "cv_loss": rec["value"], "cv_cost": None, "rung": 0, "rows": int(len(ctx.pool)),
                              "n_trees": int(np.mean(rec["best_iters"])) if rec["best_iters"] else None,
                              "truncated": rec["truncated"], "fit_s": round(rec["fit_s"], 4),
                              "duration_s": round(rec["duration_s"], 4), "elapsed_s": round(box.elapsed(), 3),
                              "source": rec["source"], "note": rec["note"]})
        # the refit of the best configuration on every pool row must fit in what is left
        box.reserve = min(0.3 * box.budget, 0.5 + _refit_estimate(ctx, families))


def _refit_estimate(ctx: _Ctx, families: list[_Family]) -> float:
    best = [f.best for f in families if f.best is not None]
    if not best:
        return 0.0
    b = min(best, key=lambda r: r["value"])
    per_row = b["fit_s"] / max(sum(b["fit_rows"]), 1)
    return 1.3 * per_row * len(ctx.pool)


# --------------------------------------------------------------------------- refit and bundles
def _refit_trees(rec: dict, n_rows: int) -> int:
    base = float(np.mean(rec["best_iters"])) if rec["best_iters"] else 100.0
    seen = float(np.mean(rec["fit_rows"])) if rec["fit_rows"] else n_rows
    return max(1, int(round(base * min(TREES_SCALE_CAP, max(1.0, n_rows / max(seen, 1.0))))))


def _fit_family(run: dict, fam: _Family, e: _Entry) -> None:
    from ..rankers import fit_ranker, make_ranker

    ctx: _Ctx = run["ctx"]
    rec = fam.best
    trees = _refit_trees(rec, len(ctx.pool))
    pipe = make_ranker(fam.name, ctx.colgroups, rec["params"], ctx.seed, ctx.k, ctx.levels)
    cpu0 = time.process_time()
    with PeakMemory() as mem:
        out = fit_ranker(pipe, ctx.rows[ctx.features], ctx.y, ctx.g, ctx.levels, run["box"].hard_end,
                         early_stopping=False, seed=ctx.seed, n_trees=trees, k=ctx.k)
    if out["truncated"]:
        e.note.append(f"refit cut by the time box at {out['n_trees']} trees")
    e.n_trees = int(out["n_trees"])
    _store(run, e, pipe, ctx.features, {"fit_cpu_s": time.process_time() - cpu0, "peak_mem_mb": mem.mb},
           rec.get("oof"), params={**rec["params"], "n_estimators": int(out["n_trees"])})


def _store(run: dict, e: _Entry, model, cols: list[str], info: dict, oof: np.ndarray | None,
           params: dict | None = None) -> ModelBundle:
    ctx: _Ctx = run["ctx"]
    case = ctx.case
    X = ctx.rows[cols]
    one, p95, many = latency_ms(model, X, lambda m, x: m.predict(x))
    opcost, _ = operating_cost(case, info["fit_cpu_s"], one)
    e.measures = {"fit_cpu_s": round(info["fit_cpu_s"], 4), "size_bytes": model_size(model),
                  "peak_mem_mb": round(info["peak_mem_mb"], 2), "predict_1_ms": round(one, 4),
                  "predict_1_p95_ms": round(p95, 4), "predict_1000_ms": round(many, 3),
                  "operating_cost_per_decision": opcost}
    e.rows_seen = len(ctx.pool)
    fitted_on = "train+valid"
    oof_valid = None if oof is None else np.array(oof[ctx.valid_pos], copy=True)
    if oof_valid is not None and not np.isfinite(oof_valid).all():
        oof_valid = None
    ds = ctx.dataset
    b = ModelBundle(model=model, name=e.name, role="candidate" if e.kind == "candidate" else "baseline",
                    task="ranking", features=list(cols), schema=ds.schema.to_dict(), classes=None, positive=None,
                    metrics={"cv_mean": e.cv_mean, "cv_std": e.cv_std, "cv_metric": run["metric"],
                             "cv_folds": e.folds, "cv_loss": e.cv_loss, "cv_loss_metric": run["metric"],
                             "cv_cost": None, **e.measures, "rows_seen": int(len(ctx.pool)), "fitted_on": fitted_on,
                             "valid_scores": "out-of-fold" if oof_valid is not None else "model"},
                    params={**(params or e.params), "family": e.family}, rule=e.rule, case_name=case.name,
                    data_fingerprint=ds.fingerprint)
    b.oof_valid = oof_valid
    b.ranking = ranking_info(case, ds, ctx.rows, ctx.y)
    run["bundles"][e.name] = b
    return b


def ranking_info(case: Case, dataset, rows: pd.DataFrame, y: np.ndarray, top: int = 10_000) -> dict:
    """What serving needs beside the model: the columns, k, relevance and the popularity fallback.

    ``popularity`` holds the ``top`` most popular items of the rows the model was fitted on
    (:class:`mlcase.rankers.PopularityRanker`'s scores); ``/rank`` orders by it when the model fails.
    """
    from ..rankers import PopularityRanker
    from ..tasks.ranking import k_of

    d = case.spec.data
    info: dict[str, Any] = {"group": d.group, "item": d.item, "time": d.time, "k": k_of(case),
                            "relevance": dataset.relevance.to_dict() if dataset.relevance is not None else None,
                            "popularity": None}
    if d.item:
        pop = PopularityRanker(item=d.item).fit(rows, y).scores_
        keep = sorted(pop.items(), key=lambda kv: -kv[1])[:top]
        info["popularity"] = {k: round(float(v), 9) for k, v in keep}
    return info


# --------------------------------------------------------------------------- the run
def run_ranking_bakeoff(case: Case, dataset, budget: float | str | None = None, console=None, quiet: bool = False,
                        max_trials: int | None = None, on_trial=None) -> BakeoffResult:
    """The bake-off of a ranking case (see the module docstring); arguments as :func:`mlcase.bakeoff.run_bakeoff`."""
    from .. import tracking
    from .core import _stderr_console, optuna_quiet

    t0 = time.monotonic()
    spec = case.spec
    budget_s = parse_budget(budget if budget is not None else case.overrides.get("budget", spec.budget))
    box = TimeBox(t0, budget_s)
    ctx = _Ctx(case, dataset)
    metric = f"1-ndcg@{ctx.k}"
    families = [f for f in dict.fromkeys(spec.candidates)]
    C.import_families(families)
    tags = tracking.base_tags(case, dataset.fingerprint, "bakeoff")
    writer = TrackingWriter(case, "bakeoff", tags, {"budget_s": budget_s, "metric": metric, "select_on": "loss",
                                                    "validation": ctx.mode, "cv_folds": len(ctx.folds),
                                                    "split_method": dataset.split.method,
                                                    "families": ",".join(families), "n_search_rows": len(ctx.pool),
                                                    "seed": ctx.seed, "k": ctx.k}, None)
    progress = Progress(None if quiet else (console or _stderr_console()), box.budget, box.t0)
    run: dict[str, Any] = {"ctx": ctx, "box": box, "writer": writer, "progress": progress, "tags": tags,
                           "entries": {}, "bundles": {}, "trials": [], "any_complete": False, "metric": metric,
                           "notes": [], "phases": {}}
    interrupted = False
    try:
        with optuna_quiet(), C.single_thread(), CtrlC() as ctrl_c:
            run["ctrl_c"] = ctrl_c
            fams = [_Family(f, ctx.seed) for f in families]
            try:
                _run_baselines(run)
                run["phases"]["baselines_s"] = round(box.elapsed(), 3)
                _search(run, fams, max_trials)
            except KeyboardInterrupt:
                interrupted = True
                run["notes"].append("interrupted (Ctrl-C): the search stopped early; results are the best so far")
            run["phases"]["search_end_s"] = round(box.elapsed(), 3)
            candidate = _finish(run, fams, interrupted)
            run["phases"]["refit_end_s"] = round(box.elapsed(), 3)
        progress.stop()
    except BaseException:
        progress.stop()
        writer.abort()
        raise
    result = _result(run, fams, candidate, interrupted, budget_s)
    result._writer = writer
    result.wait_tracking(timeout=0)
    result.elapsed_s = time.monotonic() - t0
    if on_trial is not None:
        for t in result.trials:
            on_trial(dict(t))
    return result


def _finish(run: dict, fams: list[_Family], interrupted: bool) -> str | None:
    for fam in fams:
        info_errors = [t["note"] for t in fam.trials if t["state"] == "FAILED" and t["note"]]
        if fam.best is None:
            why = fam.stopped or "; ".join(info_errors[:2]) or "no trial finished within the time box"
            run["entries"][fam.name] = _Entry(fam.name, "candidate", fam.name, None, {}, n_trials=len(fam.trials),
                                              note=[why])
            continue
        b = fam.best
        run["entries"][fam.name] = _Entry(fam.name, "candidate", fam.name, None, dict(b["params"]),
                                          folds=list(b["folds"]), loss_folds=list(b["folds"]), oof=b.get("oof"),
                                          n_trials=len(fam.trials), n_trees=int(np.mean(b["best_iters"])),
                                          fold_fit_s=b["fit_s"] / max(len(b["folds"]), 1),
                                          search_s=sum(t["duration_s"] for t in fam.trials))
    candidate, note = _choose(run["entries"], run["ctx"].folds)
    if note and candidate in run["entries"]:
        run["entries"][candidate].note.insert(0, note)
    order = ([candidate] if candidate else []) + [e.name for e in _ranked(run["entries"])
                                                  if e.kind == "candidate" and e.name != candidate]
    by_name = {f.name: f for f in fams}
    for name in order:
        e = run["entries"][name]
        if e.cv_mean is None:
            continue
        if name != candidate and (interrupted or time.monotonic() + _refit_estimate(run["ctx"], [by_name[name]])
                                  > run["box"].end):
            e.note.append("not refitted: no time left in the budget")
            continue
        run["progress"].update(f"refit {name}")
        _fit_family(run, by_name[name], e)
    return candidate if candidate in run["bundles"] else None


def _result(run: dict, fams: list[_Family], candidate: str | None, interrupted: bool, budget_s: float) -> BakeoffResult:
    ctx: _Ctx = run["ctx"]
    case = ctx.case
    entries = run["entries"]
    learned = {k: e for k, e in entries.items() if e.family != "constant"}
    best_baseline = _best_baseline(learned) if learned else None
    board = _leaderboard(entries, run["bundles"], run["metric"], candidate)
    box: TimeBox = run["box"]
    total = sum(t["duration_s"] for f in fams for t in f.trials) or 1.0
    fam_info = {}
    for f in fams:
        states = [t["state"] for t in f.trials]
        spent = sum(t["duration_s"] for t in f.trials)
        fam_info[f.name] = {"n_trials": len(f.trials), "complete": states.count("COMPLETE"),
                            "pruned": states.count("PRUNED"), "failed": states.count("FAILED"),
                            "best_value": f.best["value"] if f.best else None, "stopped": f.stopped,
                            "errors": [t["note"] for t in f.trials if t["state"] == "FAILED"],
                            "search_s": round(spent, 3), "share_of_search": round(spent / total, 4)}
    if starved := search_starved(run["phases"], budget_s, fam_info, interrupted):
        run["notes"].append(starved)
    cols = list(dict.fromkeys([*ctx.features, ctx.group, *(c for c in (case.spec.data.item,) if c)]))
    result = BakeoffResult(
        leaderboard=board, bundles=run["bundles"], candidate=candidate,
        best_baseline=best_baseline if best_baseline in run["bundles"] else None, elapsed_s=box.elapsed(),
        interrupted=interrupted, budget_s=budget_s, metric=run["metric"],
        cv={"method": ctx.dataset.split.method, "mode": ctx.mode, "folds": len(ctx.folds),
            "n_train": int(len(ctx.pool)), "parts": "train+valid", "columns": ctx.colgroups.to_dict(), "k": ctx.k},
        phases=run["phases"], trials=run["trials"], families=fam_info, notes=run["notes"],
        fingerprint=ctx.dataset.fingerprint, input_example=ctx.rows[cols].head(5),
        plan={"mode": "cv" if len(ctx.folds) > 1 else "holdout", "parts": "train+valid", "n_pool": int(len(ctx.pool)),
              "folds": len(ctx.folds), "sizes": [int(len(ctx.pool))], "n_holdout": None,
              "n_valid_out_of_fold": int(len(ctx.valid_pos))},
        ensemble={"kept": False, "reason": "ranking: no ensemble"}, select_on="loss", loss_metric=run["metric"],
        recipes={})
    frame = result.leaderboard_frame()
    case.root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(case.root / "leaderboard.csv", index=False)
    top = result.row(candidate) if candidate else None
    from .core import _json

    run["writer"].close({"metrics": {"elapsed_s": box.elapsed(), **({"best_cv_mean": top["cv_mean"]} if top else {})},
                         "tags": {"mlcase.candidate": candidate or "", "mlcase.best_baseline": best_baseline or "",
                                  "mlcase.interrupted": str(interrupted).lower()}},
                        {"leaderboard.csv": frame.to_csv(index=False), "leaderboard.json": _json(result.to_dict())},
                        status="KILLED" if interrupted else "FINISHED",
                        timeout=1.0 if interrupted else max(0.0, box.hard_end - time.monotonic()))
    return result
