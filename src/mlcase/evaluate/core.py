"""The evaluation stage: judge the candidate against the baselines and the model-free policies
on the untouched test rows (see :func:`evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tasks as T
from ..case import Case
from ..errors import ModelError
from ..latency import measure_latency
from .calibration import calibrate_bundle, calibration_report
from .common import (
    features_of,
    is_rule,
    is_trivial,
    operating_cost,
    per_period,
    valid_scores,
    volume,
)
from .lift import PairedLifts
from .policies import FloorPolicies, choose_thresholds, model_free_policies
from .slices import slices as slice_report

MAX_CURVE_POINTS = 200
#: prefix of a model-free policy's key among the per-row cost arrays (bundles keep their names)
FLOOR = "model-free:"


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


def _resolve(bundles, candidate) -> tuple[dict, str]:
    if not isinstance(bundles, dict) and hasattr(bundles, "bundles"):
        candidate = candidate or getattr(bundles, "candidate", None)
        bundles = bundles.bundles
    if hasattr(candidate, "model"):
        candidate = next((k for k, b in bundles.items() if b is candidate), candidate.name)
    if candidate not in bundles:
        raise ModelError(f"evaluate: the candidate '{candidate}' is not among the bundles ({', '.join(bundles)})",
                         "pass the key of the candidate bundle")
    return bundles, candidate


def evaluate(case: Case, dataset, bundles, candidate: str | None = None, *, seed: int | None = None) -> Evaluation:
    """Judge the candidate against every baseline and every model-free policy on the untouched test rows.

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
        ``cost_sd_per_decision``, ``lift`` (candidate over the best learned
        baseline; its ``interval`` says which bootstrap the CIs come from: test rows, whole test groups under a
        group split, or runs of consecutive rows under a time split whose costs are autocorrelated, with
        ``resampled`` then naming the block length), ``model_free`` (every policy that needs no model, with its
        test money), ``best_model_free`` (chosen on validation; also
        ``trivial_baseline``), ``lift_over_model_free`` (every bundle over it;
        also ``lift_over_trivial``), ``floor_vs_never`` (binary: what acting at
        random saves over never acting), ``value_per_period``, ``calibration``,
        ``slices``, ``latency``, ``curves``, ``n_test`` and more.

    Notes
    -----
    Every choice is made on the validation part, from
    :func:`~mlcase.evaluate.valid_scores`: a poorly calibrated candidate gets a
    calibrated model, every binary bundle gets its cost-minimising ``threshold``
    within ``review_capacity``, the best baseline and the best model-free
    policy are the cheapest there. The test part is used once.
    """
    from ..data import require_dataset

    require_dataset(dataset, "evaluate")
    if bundles is None:
        from ..errors import SpecError

        raise SpecError("evaluate: bundles is None", "pass the bake-off's result (run_bakeoff) or a dict of bundles")
    if case.spec.task == "ranking":  # lists, not rows (see .ranking)
        from .ranking import evaluate_ranking

        return evaluate_ranking(case, dataset, bundles, candidate, seed=seed)
    bundles, candidate = _resolve(bundles, candidate)
    spec = case.spec
    seed = spec.split.seed if seed is None else seed
    cand = bundles[candidate]
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
    thresholds, valid_cost, _ = choose_thresholds(case, dataset, bundles)
    floor = model_free_policies(case, dataset)
    # the cheapest on validation; on a tie the simpler one (a rule before a fitted model)
    best = min(pool, key=lambda k: (round(valid_cost[k], 9), 0 if is_rule(bundles[k]) else 1))

    # ---- the test part, once ------------------------------------------------------------
    test = _test_part(case, dataset, bundles, floor)
    lifts = PairedLifts(test["row_cost"], test["losses"], spec.evaluation.bootstrap, seed, test["finalize"],
                        test["groups"], test["times"])
    data = {"task": spec.task, "currency": spec.costs.currency, "champion_candidate": candidate,
            "best_baseline": best, "baselines": baselines, "nontrivial_baselines": nontrivial,
            "roles": {k: b.role for k, b in bundles.items()}, "primary_metric": test["metric_name"],
            "metrics": test["metrics"], "thresholds": thresholds, "valid_cost_per_decision": valid_cost}
    if test["groups"] is not None:
        data["resampled"] = {"unit": "group", "column": spec.data.group,
                             "n_test_groups": int(len(set(test["groups"].tolist())))}
    elif lifts.block > 1:
        data["resampled"] = {"unit": "time block", "column": spec.data.time, "block_length": int(lifts.block),
                             "n_blocks": int(-(-len(dataset.y_test) // lifts.block))}
    data.update(_money_block(case, bundles, test))
    data.update(_lift_block(case, bundles, candidate, best, floor, test, lifts, seed))
    data["value_per_period"] = _value(case, cand, data["lift"])
    data["calibration"] = calibration_report(case, calibration, uncalibrated, cand,
                                             features_of(dataset.rows("test"), cand, dataset), dataset.y_test,
                                             test["scores"][candidate], test["losses"][candidate])
    data.update(_extras(case, dataset, bundles, candidate, best, test, seed))
    if data.get("capacity_check"):
        data["capacity_check"]["at_planned_rate"] = _at_planned_rate(
            case, dataset, candidate, test, FLOOR + floor.best, data["capacity_check"]["valid_flag_rate"], seed)
        held = _held_to_capacity(case, dataset, test, FLOOR + floor.best, data["capacity"], data["flag_rate"], seed)
        data["capacity_check"]["held_to_capacity"] = held
        for name, h in held.items():   # what it saves as reviewers can serve it: its top capacity share
            data["lift_over_model_free"][name] = {**h["over_floor"], "held_to_capacity": True}
    data["curves"]["lift_samples"] = data["lift"]["samples_quantiles"]
    data.update({"n_test": int(len(dataset.y_test)), "n_valid": int(len(dataset.y_valid)),
                 "n_labelled": int(len(dataset.split.train) + len(dataset.y_valid) + len(dataset.y_test)),
                 "test_size": float(spec.split.test_size)})
    return Evaluation(data)


def _test_part(case: Case, dataset, bundles: dict, floor: FloorPolicies) -> dict:
    """Scores, metrics, per-row costs and losses of every bundle, and every model-free policy's costs."""
    task = T.get_task(case.spec.task)
    rows_t, y_t = dataset.rows("test"), dataset.y_test
    costs_t = task.costs(case, rows_t, dataset.classes)
    out: dict[str, Any] = {"scores": {}, "metrics": {}, "row_cost": {}, "losses": {}, "costs": costs_t,
                           "finalize": None, "metric_name": task.primary_metric, "groups": test_groups(case, rows_t),
                           "times": test_times(case, rows_t), "bundles": bundles}
    for name, b in bundles.items():
        s = b.scores(features_of(rows_t, b, dataset))
        out["scores"][name] = s
        out["metrics"][name] = task.metrics(y_t, s, threshold=b.threshold, classes=b.classes,
                                               tie_share=b.tie_share)
        out["row_cost"][name] = np.asarray(costs_t.of(y_t, b.decide(s)), dtype=float)
        out["losses"][name], out["finalize"], out["metric_name"] = task.row_losses(y_t, s, b.classes)
    for name, c in floor.test_costs(costs_t, y_t).items():
        out["row_cost"][FLOOR + name] = c
    return out


def test_times(case: Case, rows_t) -> np.ndarray | None:
    """The test rows' times under a time split (``data.time``), by which the bootstrap orders them to resample runs
    of consecutive rows (:func:`mlcase.evaluate.lift.time_block`); else None. Rows of one time keep the file's order.
    """
    time = case.spec.data.time
    if case.spec.split.method != "time" or not time or time not in rows_t.columns:
        return None
    from ..data import to_times

    t = to_times(rows_t[time])
    if t.isna().any():   # not read as times here: the values' own order
        return np.argsort(np.argsort(rows_t[time].to_numpy(), kind="stable"), kind="stable")
    return t.to_numpy()


def test_groups(case: Case, rows_t) -> np.ndarray | None:
    """The test rows' entities under a group split (``data.group``), which the bootstrap resamples whole; else None.

    A group split asks how a model does on entities it has not seen, and an entity's rows are not independent
    draws: resampling rows made the lift's 95% CI cover what a fixed model saves on unseen districts or cities
    about half the time (:func:`mlcase.evaluate.lift.cluster_means`). The conformal coverage counts the same
    groups (by their design effect).
    """
    group = case.spec.data.group
    if case.spec.split.method != "group" or not group or group not in rows_t.columns:
        return None
    return rows_t[group].to_numpy(dtype=object)


def effective_rows(flags: np.ndarray, groups: np.ndarray | None) -> float:
    """How many independent rows the test's flag rate is worth: the rows over the design effect of its mean (Kish),
    under a group split; the rows otherwise.

    A district's women are flagged or not together: on mlmRev::Contraception (13 test districts, 397 rows) the
    candidate's flags had a design effect of 2.3, and a binomial test over 397 rows read 33.5% flagged against
    39.8% planned as p 0.0055; over the 171 rows they are worth it is p 0.048, ten times likelier.
    """
    n = len(flags)
    if groups is None or n < 2:
        return float(n)
    from .lift import design_effect

    return float(n / max(1.0, design_effect(np.asarray(flags, dtype=float), groups)))


def _binom_cdf(k_rate: float, n_eff: float, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p) at a rate observed on ``n_eff`` (rounded) independent rows."""
    from scipy.stats import binom

    n = max(1, int(round(n_eff)))
    return float(binom.cdf(round(k_rate * n), n, p))


def _binom_sf(k_rate: float, n_eff: float, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p) at a rate observed on ``n_eff`` (rounded) independent rows."""
    from scipy.stats import binom

    n = max(1, int(round(n_eff)))
    return float(binom.sf(round(k_rate * n) - 1, n, p))


def _at_planned_rate(case: Case, dataset, candidate: str, test: dict, floor: str, planned: float, seed: int
                     ) -> dict | None:
    """The candidate's test cost where it flags the planned share of the test rows by its score, and what that
    saves over the floor (a paired bootstrap of its own, so the evaluation's other draws are unchanged).

    The served threshold is cut on the validation rows; where scores crowd near 1 and the validation part is
    small, it can flag far fewer test rows than planned (palmerpenguins::penguins_raw: 1.4% of the test rows
    against 8.6%, a test AUC of 0.979). The ranking at the planned rate tells whether the model would pay if the
    threshold carried; the decision reads it only where the test flags fell short (no labels choose the cut).
    """
    if not planned:
        return None
    s = test["scores"][candidate]
    t, share = T.capacity_cut(s, planned)
    flags = T.binary_flags(s, t, share)
    costs = np.asarray(test["costs"].of(dataset.y_test, flags), dtype=float)
    lifts = PairedLifts({floor: test["row_cost"][floor], "at_rate": costs}, {}, case.spec.evaluation.bootstrap,
                        seed, groups=test["groups"], times=test["times"])
    return {"flag_rate": float(np.mean(flags)), "cost_per_decision": float(costs.mean()),
            "over_floor": lifts.money(floor, "at_rate")}


def _held_to_capacity(case: Case, dataset, test: dict, floor: str, capacity: float, flag_rate: dict, seed: int
                      ) -> dict:
    """The policies that flagged clearly more test rows than the review capacity (one-sided binomial p < 0.05
    against it), each held to it: its top ``capacity`` share by score flagged, the rest not (reviewers cannot take
    more), with what that saves over the floor (:func:`_at_planned_rate`).

    mlmRev::Contraception with its target shuffled read USE_BASELINE: the linear baseline's threshold, cut at 37%
    of the validation rows, flagged 49.4% of the test rows against a 40% capacity, and flagging more than random-at-
    the-capacity may flag is what it "saved" over it ($0.69, 95% CI $0.16 to $1.23) on noise.
    """
    n = len(dataset.y_test)
    out = {}
    for name, rate in flag_rate.items():
        if not n or rate <= capacity:
            continue
        b = test["bundles"][name]
        flags = T.binary_flags(test["scores"][name], b.threshold, b.tie_share)
        p = _binom_sf(rate, effective_rows(flags, test["groups"]), capacity)
        if p >= 0.05:
            continue
        at = _at_planned_rate(case, dataset, name, test, floor, capacity, seed)
        if at is not None:
            out[name] = {**at, "test_flag_rate": float(rate), "over_capacity_p": p}
    return out


def _money(case: Case, c: np.ndarray) -> dict:
    per = float(c.mean()) if len(c) else 0.0
    return {"per_decision": per, "per_1000": per * 1000, "total_test": float(c.sum()),
            "per_period": per_period(case, per)}


def _sd(c: np.ndarray) -> float:
    return float(np.std(c, ddof=1)) if len(c) > 1 else 0.0


def _money_block(case: Case, bundles: dict, test: dict) -> dict:
    money_all = {k: _money(case, test["row_cost"][k]) for k in bundles}
    return {"cost_per_decision": {k: v["per_decision"] for k, v in money_all.items()},
            "cost_sd_per_decision": {k: _sd(test["row_cost"][k]) for k in bundles}, "money": money_all}


def _lift_block(case: Case, bundles: dict, candidate: str, best: str, floor: FloorPolicies, test: dict,
                lifts: PairedLifts, seed: int) -> dict:
    task = T.get_task(case.spec.task)
    spec = case.spec
    money_ci = lifts.money(best, candidate)
    lift = {"baseline": best, "candidate": candidate, "level": 0.95, "n_boot": spec.evaluation.bootstrap,
            "interval": lifts.design, "percentile_level": float(lifts.level),
            "seed": seed, "money_per_decision": {k: money_ci[k] for k in ("estimate", "ci_low", "ci_high")},
            "metric": {"name": test["metric_name"], "lower_is_better": not task.greater_is_better,
                       **lifts.metric(best, candidate)},
            "diff_sd_per_decision": money_ci["diff_sd_per_decision"],
            **({"design_effect": money_ci["design_effect"]} if "design_effect" in money_ci else {}),
            "samples_quantiles": np.quantile(lifts.money_samples(best, candidate),
                                             np.linspace(0, 1, 101)).tolist()}
    ref = FLOOR + floor.best
    over_floor = {name: lifts.money(ref, name) for name in bundles}
    model_free = {}
    for p in floor.policies:
        c = test["row_cost"][FLOOR + p.name]
        model_free[p.name] = {**p.to_dict(), "valid_cost_per_decision": floor.valid_cost[p.name],
                              "cost_per_decision": float(c.mean()) if len(c) else 0.0,
                              "cost_sd_per_decision": _sd(c), "money": _money(case, c),
                              "best": p.name == floor.best}
    return {"lift": lift, "model_free": model_free, "best_model_free": floor.best, "trivial_baseline": floor.best,
            "lift_over_model_free": over_floor, "lift_over_trivial": over_floor,
            "floor_vs_never": _floor_vs_never(floor, lifts)}


def _floor_vs_never(floor: FloorPolicies, lifts: PairedLifts) -> dict | None:
    """Binary: what the acting model-free policy (at random at the capacity, or always) saves over never acting."""
    names = [p.name for p in floor.policies]
    if "do_nothing" not in names:
        return None
    acting = floor.best if floor.best != "do_nothing" else next((n for n in names if n != "do_nothing"), None)
    if acting is None:
        return None
    policy = floor.by_name(acting)
    return {"policy": acting, "description": policy.description, "rate": policy.params.get("rate"),
            "versus": "do_nothing", **lifts.money(FLOOR + "do_nothing", FLOOR + acting)}


def _value(case: Case, cand, lift: dict) -> dict | None:
    vol = volume(case)
    if not vol:
        return None
    op, _ = operating_cost(case, cand)
    cnt, m = vol["count"], lift["money_per_decision"]
    return {"period": vol["period"], "decisions": cnt,
            "low": m["ci_low"] * cnt, "expected": m["estimate"] * cnt, "high": m["ci_high"] * cnt,
            "net_low": (m["ci_low"] - op) * cnt, "net_expected": (m["estimate"] - op) * cnt,
            "net_high": (m["ci_high"] - op) * cnt, "operating_cost_per_period": op * cnt, "versus": lift["baseline"]}


def _extras(case: Case, dataset, bundles: dict, candidate: str, best: str, test: dict, seed: int) -> dict:
    """Operating cost, capacity check, curves, slices and latency."""
    spec = case.spec
    task_name = spec.task
    cand = bundles[candidate]
    y_t = dataset.y_test
    capacity = T.capacity_share(case) if task_name == "binary" else None
    op, op_source = operating_cost(case, cand)
    out: dict[str, Any] = {"operating_cost": {"per_decision": op, "source": op_source},
                           "min_lift": float(spec.constraints.min_lift), "volume": volume(case),
                           "capacity": capacity, "flag_rate": None, "capacity_check": None}
    curves: dict[str, Any] = {}
    if task_name == "binary":
        curves.update(_binary_curves(y_t, test["scores"]))
        p_v = valid_scores(cand, dataset)
        t_v = cand.valid_threshold
        costs_v = T.binary_costs(case, dataset.rows("valid"))
        curves["cost_vs_threshold"] = {
            "part": "valid", "bundle": candidate, **_cost_curve(dataset.y_valid, p_v, costs_v, t_v),
            "chosen_threshold": t_v, "capacity": capacity,
            "capacity_threshold": T.capacity_threshold(p_v, capacity)}
        out["flag_rate"] = {k: float(test["metrics"][k]["flag_rate"]) for k in bundles}
        out["threshold_notes"] = {k: b.metrics["threshold_note"] for k, b in bundles.items()
                                  if b.metrics.get("threshold_note")}
        # the share of the rows scored at the threshold that are flagged, where the capacity splits a tied block
        out["tie_shares"] = {k: float(b.tie_share) for k, b in bundles.items() if b.tie_share is not None}
        if capacity is not None:
            planned = float(np.mean(T.binary_flags(p_v, t_v, cand.valid_tie_share)))
            served = out["flag_rate"][candidate]
            # far fewer flags on the test rows than planned leaves review capacity unused (Stat2Data::InsuranceVote:
            # 8.9% of validation rows, 1 of 69 test rows, where the top scores crowd within 0.004 of the cut): the one-
            # sided binomial chance of so few flags at the planned rate, over the rows they are worth (a group split's
            # rows are flagged together by group: :func:`effective_rows`)
            n_eff = effective_rows(T.binary_flags(test["scores"][candidate], cand.threshold, cand.tie_share),
                                   test["groups"])
            p_under = _binom_cdf(served, n_eff, planned) if len(y_t) and planned else 1.0
            out["capacity_check"] = {"capacity": capacity, "valid_flag_rate": planned, "test_flag_rate": served,
                                     "effective_test_rows": n_eff,
                                     "test_over_capacity": bool(served > capacity),
                                     "test_under_plan_p": p_under, "test_under_plan": bool(p_under < 0.05)}
    elif task_name == "multiclass" and cand.cost_matrix is not None:
        likeliest = np.asarray(cand.classes, dtype=object)[np.argmax(test["scores"][candidate], axis=1)]
        moved = float(np.mean(cand.decide(test["scores"][candidate]) != likeliest))
        out["decision_note"] = (f"each row gets the class of least expected cost under costs.matrix, not the most "
                                f"probable class: a different class on {moved:.1%} of the test rows")
    elif task_name == "regression":
        out["point_notes"] = {k: b.metrics["point_note"] for k, b in bundles.items() if b.point and "slope" in b.point}
        idx = np.random.default_rng(seed).permutation(len(y_t))[:300]
        curves["predicted_vs_actual"] = {"actual": np.asarray(y_t, dtype=float)[idx].tolist(),
                                         "predicted": np.asarray(cand.decide(test["scores"][candidate]))[idx].tolist()}
    out["curves"] = curves
    rows_t = dataset.rows("test")
    if spec.slices or spec.sensitive:
        s = test["scores"][candidate]
        pred = cand.decide(s)
        out["slices"] = slice_report(case, task_name, rows_t, y_t, pred, test["row_cost"][candidate],
                                     test["row_cost"][best], seed)
        out["slices"]["model"] = candidate
        if best != candidate and best in bundles:
            # a USE_BASELINE makes the best baseline the champion: its card and the decision's slice alerts are of
            # its own decisions (AER::HMDA: linear's demographic parity difference by afam is 0.196, lightgbm's 0.252)
            out["slices_baseline"] = slice_report(case, task_name, rows_t, y_t, bundles[best].decide(test["scores"][best]),
                                                  test["row_cost"][best], None, seed)
            out["slices_baseline"]["model"] = best
    else:
        out["slices"] = {"columns": {}, "flags": [], "note": "no slices or sensitive columns in the spec"}
    out["latency"] = measure_latency(cand, features_of(rows_t, cand, dataset), spec.constraints.latency_p95_ms,
                                     seed=seed)
    return out


# --------------------------------------------------------------------------- curves
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
