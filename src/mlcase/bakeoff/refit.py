"""Refit with lineage: the chosen configurations on more rows, their running costs, and their bundles.

After selection a configuration is fitted once more for serving (cv mode: on every row of the
train and validation parts; holdout mode: on the sample it was scored on). Boosting grows the
number of rounds its inner early stopping kept, averaged over the folds (AutoGluon's
``refit_full`` averages its fold models' rounds the same way), scaled by the rows:
``rounds * min(TREES_SCALE_CAP, rows now / rows early stopping saw)``, since more rows carry
more rounds before the validation loss turns. Measured on the seven development tables of
``benchmarks/bakeoff_quality.py`` (20 s budget, the best boosted family refitted on all rows):
scaled rounds gave 0.3% lower test loss on average than the same rounds, and a bag of five
early-stopped fold models 0.2% lower (within noise either way); the single refit is kept, with
one model's latency and size instead of five. Nothing else is re-tuned.

The validation rows are then no longer held out from that model, so each cv-mode bundle carries
``oof_valid``: the scores its configuration gave the validation rows from models that did not
see them (out-of-fold). :func:`mlcase.evaluate.valid_scores` returns those, so thresholds,
calibration and conformal quantiles stay honest.

:func:`refit_all` fits the same configuration once more on every labelled row (train,
validation and test) for ``refit: all``; it is registered beside the evaluated version, with
the evaluated version's test numbers (see :func:`mlcase.bakeoff.register_refit`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import candidates as C
from ..bundle import ModelBundle
from ..case import Case
from .timebox import PeakMemory

TREES_SCALE_CAP = 1.5


@dataclass
class Context:
    """What every fit of one bake-off shares: the rows of the search and how they are scored."""

    case: Case
    dataset: object
    plan: object
    X: pd.DataFrame          # the plan's pool rows (features), positions 0..n-1
    y: np.ndarray
    groups: C.ColumnGroups
    scorer: object
    schema: dict
    seed: int

    @property
    def task(self) -> str:
        return self.case.spec.task


def refit_trees(recipe: dict, n_rows: int) -> int | None:
    """Rounds for a boosted refit on ``n_rows``: the folds' early-stopped rounds, scaled by the rows."""
    iters = recipe.get("best_iters") or []
    if recipe.get("family") not in C.BOOSTED or not iters:
        return None
    base = float(np.mean(iters))
    seen = float(np.mean(recipe.get("fit_rows") or [n_rows]))
    scale = min(TREES_SCALE_CAP, max(1.0, n_rows / seen))
    return max(1, int(round(base * scale)))


def build(recipe: dict, task: str, groups, seed: int, n_rows: int):
    """An unfitted pipeline for ``recipe`` with the boosted round count for ``n_rows`` rows."""
    params = dict(recipe["params"])
    trees = refit_trees(recipe, n_rows)
    if trees is not None:
        params[C.TREES_PARAM[recipe["family"]]] = trees
    return C.build_pipeline(recipe["family"], task, groups, params, seed), params


def fit(recipe: dict, X: pd.DataFrame, y: np.ndarray, task: str, groups, seed: int,
        deadline: float | None) -> tuple[object, dict]:
    """Fit ``recipe`` on ``X, y`` before ``deadline``; returns the model and what the fit did."""
    cpu0 = time.process_time()
    if recipe.get("make") is not None:                       # a baseline: its own estimator
        est = recipe["make"]()
        params = dict(recipe.get("params") or {})
        with PeakMemory() as mem, C.single_thread():
            est.fit(X, y)
        out = {"truncated": False, "n_trees": None}
    else:
        est, params = build(recipe, task, groups, seed, len(y))
        with PeakMemory() as mem:
            out = C.fit_with_deadline(est, X, y, deadline)
        if out["n_trees"] is not None and C.TREES_PARAM.get(recipe["family"]):
            params[C.TREES_PARAM[recipe["family"]]] = int(out["n_trees"])
    return est, {"fit_cpu_s": time.process_time() - cpu0, "peak_mem_mb": mem.mb, "truncated": out["truncated"],
                 "n_trees": out["n_trees"], "params": params, "rows_seen": int(len(y))}


def estimate_s(recipe: dict, n_rows: int) -> float:
    """Seconds a fit of ``recipe`` on ``n_rows`` should take, from its timed folds."""
    per_row = recipe.get("fit_s_per_row") or 0.0
    grown = recipe.get("grown") or 0
    trees = refit_trees(recipe, n_rows)
    ratio = (trees / grown) if trees and grown else 1.0
    return 1.2 * per_row * n_rows * ratio + 0.05


# --------------------------------------------------------------------------- running costs
def model_size(model) -> int | None:
    """Bytes of the pickled model (skops stores the same objects; its first import alone takes a second)."""
    import pickle

    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def latency_ms(model, X: pd.DataFrame, scores_fn, n_single: int = 8) -> tuple[float, float, float]:
    """Median and 95th percentile wall time of a 1-row prediction, and median of a 1,000-row one, in ms.

    A quick look for the leaderboard (about 0.05 s a model); what gates an ensemble is :func:`gate_latency_ms`.
    """
    rows = [X.iloc[[i % len(X)]] for i in range(n_single + 1)]
    big = X.sample(1000, replace=len(X) < 1000, random_state=0)
    with C.single_thread():
        scores_fn(model, rows[0])  # warm-up
        one = []
        for r in rows[1:]:
            t = time.perf_counter()
            scores_fn(model, r)
            one.append(time.perf_counter() - t)
        many = []
        for _ in range(2):
            t = time.perf_counter()
            scores_fn(model, big)
            many.append(time.perf_counter() - t)
    return 1000 * float(np.median(one)), 1000 * float(np.quantile(one, 0.95)), 1000 * float(np.median(many))


def gate_latency_ms(bundle: ModelBundle, X: pd.DataFrame, limit_ms: float) -> dict:
    """The single-row latency an ensemble is kept or dropped on: :func:`mlcase.latency.measure_latency` of the bundle,
    as the evaluation measures the candidate (warm-up, windows, the best window's p95 without the time spent waiting
    for a CPU), in fewer calls (about 0.3 s). The wall-clock p95 of 8 calls (:func:`latency_ms`) moved with the
    machine's load: on AER::Affairs a busy run dropped the bag of 5 that a quiet run of the same trials kept."""
    from ..latency import measure_latency

    with C.single_thread():
        return measure_latency(bundle, X, limit_ms, n_single=40, n_batch=1, windows=4)


def operating_cost(case: Case, fit_cpu_s: float | None, predict_1_ms: float | None) -> tuple[float | None, str | None]:
    """Money per decision to run a model: online prediction CPU plus retraining CPU spread over the decisions.

    Training is amortised over ``problem.volume`` decisions per ``compute.retrain_every``;
    without a volume only the prediction cost is counted (the note says so).
    """
    from ..spec import PERIOD_SECONDS

    if predict_1_ms is None:
        return None, None
    rate = case.spec.compute.cost_per_cpu_hour / 3600.0
    per_decision = predict_1_ms / 1000.0 * rate
    vol = case.spec.problem.volume_rate
    if vol is None or fit_cpu_s is None:
        return per_decision, "training cost not spread (set problem.volume)"
    count, period = vol
    per_second = count / PERIOD_SECONDS[period or "month"]
    decisions = max(per_second * case.spec.compute.retrain_every, 1.0)
    return per_decision + fit_cpu_s * rate / decisions, None


def measures(ctx: Context, model, fit_info: dict) -> dict:
    """Running costs of a fitted model: fit CPU, size, peak memory, latency, operating cost per decision."""
    one_ms, p95_ms, many_ms = latency_ms(model, ctx.X, ctx.scorer.scores)
    opcost, _ = operating_cost(ctx.case, fit_info["fit_cpu_s"], one_ms)
    return {"fit_cpu_s": round(fit_info["fit_cpu_s"], 4), "size_bytes": model_size(model),
            "peak_mem_mb": round(fit_info["peak_mem_mb"], 2), "predict_1_ms": round(one_ms, 4),
            "predict_1_p95_ms": round(p95_ms, 4), "predict_1000_ms": round(many_ms, 3),
            "operating_cost_per_decision": opcost}


def bundle(ctx: Context, name: str, kind: str, family: str, model, params: dict, metrics: dict,
           oof_valid: np.ndarray | None, rows_seen: int, fitted_on: str, rule: str | None = None) -> ModelBundle:
    """A :class:`ModelBundle` with lineage: which rows it saw and, in cv mode, ``oof_valid``."""
    ds = ctx.dataset
    b = ModelBundle(model=model, name=name, role="candidate" if kind == "candidate" else "baseline", task=ctx.task,
                    features=list(ds.features), schema=ctx.schema, classes=ds.classes, positive=ds.positive,
                    metrics={**metrics, "rows_seen": int(rows_seen), "fitted_on": fitted_on,
                             "valid_scores": "out-of-fold" if oof_valid is not None else "model"},
                    params={**params, "family": family}, rule=rule, case_name=ctx.case.name,
                    data_fingerprint=ds.fingerprint)
    b.oof_valid = oof_valid
    return b


# --------------------------------------------------------------------------- refit on every labelled row
def labelled_rows(dataset) -> np.ndarray:
    s = dataset.split
    return np.concatenate([s.train, s.valid, s.test])


def refit_all(case: Case, dataset, result, name: str | None = None) -> ModelBundle:
    """The bundle ``name`` (default: the candidate) refitted on every labelled row: train, validation and test.

    Its threshold, conformal calibration and probability calibration are the evaluated
    bundle's (chosen before this model existed); its metrics and lineage say which rows it saw.
    """
    from ..errors import ModelError

    name = name or result.candidate
    recipe = result.recipes.get(name)
    evaluated = result.bundles.get(name)
    if recipe is None or evaluated is None:
        raise ModelError(f"refit all: '{name}' has no recipe in this bake-off (a rule cannot be refitted)",
                         "refit the candidate or a fitted baseline")
    rows = labelled_rows(dataset)
    X = dataset.frame.iloc[rows][list(dataset.features)].reset_index(drop=True)
    y = dataset.y[rows]
    task = case.spec.task
    if task == "multiclass":
        y = np.searchsorted(np.asarray(dataset.classes, dtype=object).astype(str), np.asarray(y).astype(str))
    groups = C.column_groups(X, dataset.schema.to_dict())
    seed = case.spec.split.seed
    t0 = time.monotonic()
    if recipe.get("members"):
        from .ensemble import make_ensemble

        fitted = [(m["name"], fit(m, X, y, task, groups, seed, None)[0]) for m in recipe["members"]]
        model = make_ensemble(task, fitted, recipe["weights"])
    else:
        model = fit(recipe, X, y, task, groups, seed, None)[0]
    model = _recalibrated(evaluated.model, model)
    out = copy.copy(evaluated)
    out.model = model
    out.metrics = {**evaluated.metrics, "rows_seen": int(len(rows)), "fitted_on": "train+valid+test",
                   "refit_s": round(time.monotonic() - t0, 3), "evaluated_rows_seen": evaluated.metrics.get("rows_seen")}
    out.params = {**evaluated.params, "refit": "all"}
    out.version = out.run_id = None
    out.oof_valid = None
    _carry_threshold(out, evaluated, dataset)
    return out


def _carry_threshold(out: ModelBundle, evaluated: ModelBundle, dataset) -> None:
    """Carry the evaluated version's threshold to the version refitted on every row by its rate.

    The decision is a cut in the ranking. Where the refitted model's scores on the validation rows
    would put a different share above the evaluated threshold than the evaluated model's do (both
    models saw these rows), the refit serves at the cut of its own scores that flags the evaluated
    share, as :func:`mlcase.evaluate.policies.rate_matched` does for the evaluated model.
    """
    from .. import tasks as T

    if evaluated.threshold is None or evaluated.task != "binary" or not len(dataset.split.valid):
        return
    X = dataset.X_valid
    carried = T.carried_by_rate(out.scores(X), evaluated.scores(X), evaluated.threshold, evaluated.tie_share)
    if carried is None:
        return
    out.threshold, out.tie_share, planned, served = carried
    out.metrics = {**out.metrics, "threshold_evaluated": float(evaluated.threshold),
                   "threshold_refit_note": (
                       f"the evaluated threshold {evaluated.threshold:.6g} would make the version refitted on every "
                       f"row flag {served:.1%} of the validation rows instead of the evaluated {planned:.1%}; it "
                       f"serves at {out.threshold:.6g}, the cut where its own scores flag that share")}


def _recalibrated(evaluated_model, refitted):
    """Wrap ``refitted`` in the evaluated model's fitted calibrator, when the evaluation calibrated it."""
    if type(evaluated_model).__name__ != "CalibratedClassifierCV":
        return refitted
    from sklearn.frozen import FrozenEstimator

    cal = copy.deepcopy(evaluated_model)
    frozen = FrozenEstimator(refitted)
    cal.estimator = frozen
    for cc in cal.calibrated_classifiers_:
        cc.estimator = frozen
    return cal
