"""The evaluation of a ranking case: lists, not rows.

:func:`evaluate_ranking` judges the candidate ranker against the learned baselines and the
model-free policies (random order, popularity, recency) on the untouched test lists, and
returns an :class:`~mlcase.evaluate.Evaluation` whose dict carries every key
:func:`mlcase.decision.decide` reads, so the same GO / USE_BASELINE / NO_GO / INCONCLUSIVE
rules decide: a *decision* is one list, its *cost* is the value it leaves on the table
against the best order of the same items (:class:`mlcase.tasks.ranking.RankingCosts`), so a
lift in cost is a lift in value per list. Every CI is a paired bootstrap over the test lists
(groups), the same resampled lists for every model and policy.

The ``ranking`` block adds what only ranking has: NDCG@k, MAP@k, recall@k and MRR per model;
NDCG at several list lengths (``ndcg_at``); the relevance rate at each position and the lift
of the candidate over the floor there (``by_position``); value per list with its CI;
catalogue coverage (the share of the catalogue any top-k list shows) and popularity bias (the
mean training popularity percentile of the items in the top k, against that of the items the
lists hold); and slices: cold-start groups and items (never seen in training) and the
groups of each ``slices`` column (a group's value: its first row's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import tasks as T
from ..case import Case
from ..errors import ModelError
from ..latency import measure_latency
from ..tasks.ranking import CURVE_KS, Groups, k_of, list_metrics
from .common import features_of, operating_cost, valid_scores, volume
from .core import FLOOR, Evaluation, _money, _sd, _value
from .lift import PairedLifts, bootstrap_means, ci, expanded_level

SLICE_BOOT = 300


class _Part:
    """One part (valid or test) of a ranking case: rows, gains, groups, costs."""

    def __init__(self, case: Case, dataset, name: str):
        self.rows = dataset.rows(name)
        self.y = np.asarray(getattr(dataset, f"y_{name}"), dtype=float)
        self.groups = Groups(self.rows[case.spec.data.group].to_numpy())
        self.costs = T.get_task("ranking").costs(case, self.rows)
        self.k = k_of(case)

    def judge(self, scores: np.ndarray) -> dict[str, Any]:
        per = list_metrics(self.y, self.y > 0, scores, self.groups, self.k)
        got, best = self.costs.lists(self.y, scores)
        return {"per": per, "value": got, "ideal": best, "cost": best - got}


def _metrics(per: dict, k: int) -> dict[str, float]:
    has = per["has_relevant"]
    out = {}
    for m, name in (("ndcg", f"ndcg@{k}"), ("map", f"map@{k}"), ("recall", f"recall@{k}"), ("mrr", "mrr")):
        out[name] = float(np.nanmean(per[m][has])) if has.any() else float("nan")
    return out


def _resolve(bundles, candidate) -> tuple[dict, str]:
    if not isinstance(bundles, dict) and hasattr(bundles, "bundles"):
        candidate = candidate or bundles.candidate
        bundles = bundles.bundles
    if candidate not in bundles:
        raise ModelError(f"evaluate: the candidate '{candidate}' is not among the bundles ({', '.join(bundles)})",
                         "pass the key of the candidate bundle")
    return bundles, candidate


def evaluate_ranking(case: Case, dataset, bundles, candidate: str | None = None, *, seed: int | None = None) -> Evaluation:
    """Judge a ranking candidate on the test lists (see the module docstring).

    Choices (the best learned baseline, the best model-free policy) are made on the
    validation lists, from :func:`~mlcase.evaluate.valid_scores` (out-of-fold scores when the
    bake-off stored them); the test lists are used once.
    """
    bundles, candidate = _resolve(bundles, candidate)
    spec = case.spec
    seed = spec.split.seed if seed is None else seed
    task = T.get_task("ranking")
    k = k_of(case)
    cand = bundles[candidate]
    baselines = [n for n, b in bundles.items() if n != candidate and b.role != "candidate"]
    valid, test = _Part(case, dataset, "valid"), _Part(case, dataset, "test")
    floor = task.model_free(case, dataset.rows("train"), dataset.y_train)
    # ---- choices on the validation lists
    valid_cost = {n: float(valid.costs.of(valid.y, valid_scores(b, dataset)).mean()) for n, b in bundles.items()}
    floor_valid = {p.name: float(p.costs(valid.costs, valid.y).mean()) for p in floor}
    best_floor = min(floor, key=lambda p: (round(floor_valid[p.name], 12), p.name != "popularity")).name
    pool = baselines or [candidate]
    best = min(pool, key=lambda n: round(valid_cost[n], 12))
    # ---- the test lists, once
    scores = {n: b.scores(features_of(test.rows, b, dataset)) for n, b in bundles.items()}
    judged = {n: test.judge(s) for n, s in scores.items()}
    floor_scores = {p.name: _policy_scores(p, test) for p in floor}
    for name, s in floor_scores.items():
        judged[FLOOR + name] = test.judge(s)
    costs = {n: j["cost"] for n, j in judged.items()}
    losses = {n: np.nan_to_num(1.0 - judged[n]["per"]["ndcg"], nan=0.0) for n in bundles}
    lifts = PairedLifts(costs, losses, spec.evaluation.bootstrap, seed)
    metrics = {n: {**_metrics(judged[n]["per"], k), **_list_money(judged[n])} for n in bundles}
    data: dict[str, Any] = {
        "task": "ranking", "currency": spec.costs.currency, "champion_candidate": candidate, "best_baseline": best,
        "baselines": baselines, "nontrivial_baselines": baselines, "roles": {n: b.role for n, b in bundles.items()},
        "primary_metric": f"ndcg@{k}", "metrics": metrics, "thresholds": {n: None for n in bundles},
        "valid_cost_per_decision": valid_cost, "unit": "list",
        "cost_per_decision": {n: float(costs[n].mean()) for n in bundles},
        "cost_sd_per_decision": {n: _sd(costs[n]) for n in bundles},
        "money": {n: _money(case, costs[n]) for n in bundles}}
    data.update(_lifts(case, bundles, candidate, best, floor, floor_valid, best_floor, judged, lifts, seed, k))
    data["value_per_period"] = _value(case, cand, data["lift"])
    data.update(_extras(case, dataset, cand, test))
    data["calibration"] = {"applied": False, "note": "ranking scores order a list; they are not probabilities"}
    data["curves"] = {"lift_samples": data["lift"]["samples_quantiles"]}
    data["ranking"] = _ranking_block(case, dataset, bundles, candidate, best, best_floor, test, scores,
                                     floor_scores, judged, seed, k)
    data["slices"] = _slices(case, dataset, candidate, best_floor, test, judged, seed)
    data.update({"n_test": int(len(test.groups)), "n_test_ordered": _ordered_lists(test),
                 "n_valid": int(len(valid.groups)),
                 "n_test_rows": int(len(test.y)), "n_valid_rows": int(len(valid.y)),
                 "n_labelled": int(len(Groups(dataset.frame.iloc[np.concatenate(
                     [dataset.split.train, dataset.split.valid, dataset.split.test])][spec.data.group]))),
                 "test_size": float(spec.split.test_size)})
    return Evaluation(data)


def _ordered_lists(part: _Part) -> int:
    """How many of the part's lists some order is worth more than another: a list whose items are all worth the
    same (every one relevant alike, or none) costs every policy the same, so it cannot tell them apart
    (ISLR::Auto's origin ranked by cylinders held out one list of American cars, and read NO_GO)."""
    if not len(part.y):
        return 0
    worst, best = part.costs.lists(part.y, -part.y)   # the least relevant first, ties averaged over their orders
    return int((np.abs(best - worst) > 1e-12 * np.maximum(1.0, np.abs(best))).sum())


def _policy_scores(policy, part: _Part) -> np.ndarray:
    """A model-free policy's scores on a part's rows (random order: one constant, every item tied)."""
    return np.asarray(policy.score(part.rows), dtype=float)


def _list_money(j: dict) -> dict:
    return {"value_per_list": float(j["value"].mean()) if len(j["value"]) else 0.0,
            "ideal_value_per_list": float(j["ideal"].mean()) if len(j["ideal"]) else 0.0}


def _lifts(case: Case, bundles: dict, candidate: str, best: str, floor, floor_valid: dict, best_floor: str,
           judged: dict, lifts: PairedLifts, seed: int, k: int) -> dict:
    spec = case.spec
    money_ci = lifts.money(best, candidate)
    # the lists are the units resampled: few lists read Hesterberg's expanded level, as PairedLifts reads it for
    # every lift (AER::TravelMode's 42 test lists: NDCG@k over the floor was read at the plain 95% percentiles)
    n_lists = len(next(iter(judged.values()))["cost"]) if judged else 0
    lift = {"baseline": best, "candidate": candidate, "level": 0.95, "n_boot": spec.evaluation.bootstrap,
            "interval": f"paired percentile bootstrap over the {n_lists:,} test lists, at the expanded level for "
                        "their number", "percentile_level": float(lifts.level),
            "seed": seed, "money_per_decision": {key: money_ci[key] for key in ("estimate", "ci_low", "ci_high")},
            "metric": {"name": f"ndcg@{k}", "lower_is_better": False, **lifts.metric(best, candidate)},
            "diff_sd_per_decision": money_ci["diff_sd_per_decision"],
            "samples_quantiles": np.quantile(lifts.money_samples(best, candidate), np.linspace(0, 1, 101)).tolist()}
    ref = FLOOR + best_floor
    over_floor = {n: lifts.money(ref, n) for n in bundles}
    model_free = {}
    for p in floor:
        c = judged[FLOOR + p.name]["cost"]
        model_free[p.name] = {**{key: v for key, v in p.to_dict().items()}, "valid_cost_per_decision": floor_valid[p.name],
                              "cost_per_decision": float(c.mean()) if len(c) else 0.0, "cost_sd_per_decision": _sd(c),
                              "money": _money(case, c), "best": p.name == best_floor,
                              **_metrics(judged[FLOOR + p.name]["per"], k), **_list_money(judged[FLOOR + p.name])}
    # NDCG@k of every model over the floor, paired on the same resampled lists
    ndcg_over_floor = {}
    floor_loss = np.nan_to_num(1.0 - judged[ref]["per"]["ndcg"], nan=0.0)
    for n in bundles:
        loss = np.nan_to_num(1.0 - judged[n]["per"]["ndcg"], nan=0.0)
        boot = bootstrap_means([floor_loss, loss], spec.evaluation.bootstrap, seed)
        has = judged[n]["per"]["has_relevant"]
        scale = len(has) / max(int(has.sum()), 1)  # the means above count lists without a relevant item as 0
        ndcg_over_floor[n] = ci((boot[:, 0] - boot[:, 1]) * scale, float(floor_loss.mean() - loss.mean()) * scale,
                                expanded_level(0.95, len(loss)))
    return {"lift": lift, "model_free": model_free, "best_model_free": best_floor, "trivial_baseline": best_floor,
            "lift_over_model_free": over_floor, "lift_over_trivial": over_floor, "floor_vs_never": None,
            "ndcg_over_model_free": ndcg_over_floor}


def _extras(case: Case, dataset, cand, test: _Part) -> dict:
    spec = case.spec
    op, source = operating_cost(case, cand)
    return {"operating_cost": {"per_decision": op, "source": source}, "min_lift": float(spec.constraints.min_lift),
            "volume": volume(case), "capacity": None, "flag_rate": None, "capacity_check": None,
            "latency": measure_latency(cand, features_of(test.rows, cand, dataset), spec.constraints.latency_p95_ms,
                                       seed=spec.split.seed)}


# --------------------------------------------------------------------------- ranking-only numbers
def position_rates(relevant: np.ndarray, score: np.ndarray, groups: Groups, n_pos: int) -> np.ndarray:
    """Mean relevance at positions 1..n_pos over the lists that long (tied scores: their block's mean)."""
    total, count = np.zeros(n_pos), np.zeros(n_pos)
    for g in range(len(groups)):
        r = groups.rows(g)
        s, rel = score[r], relevant[r]
        order = np.argsort(-s, kind="stable")
        s, rel = s[order], rel[order]
        _, start, counts = np.unique(-s, return_index=True, return_counts=True)
        means = np.repeat(np.add.reduceat(rel, start) / counts, counts)
        m = min(n_pos, len(means))
        total[:m] += means[:m]
        count[:m] += 1
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ranking_block(case: Case, dataset, bundles: dict, candidate: str, best: str, best_floor: str, test: _Part,
                   scores: dict, floor_scores: dict, judged: dict, seed: int, k: int) -> dict:
    spec = case.spec
    d = spec.data
    shown = {candidate: scores[candidate], best: scores[best], f"{FLOOR}{best_floor}": floor_scores[best_floor]}
    max_len = int(test.groups.sizes.max()) if len(test.groups) else 0
    # a length past the longest list is that list's length: Ecdat::Yogurt's lists of 4 brands, cut at k = 10, had a
    # curve of NDCG@1 to @3 only, and neither the whole list nor the headline NDCG@10 (the same number) was on it
    ks = sorted({min(v, max(max_len, 1)) for v in (*CURVE_KS, k)})
    ndcg_at = {name: {str(kk): float(np.nanmean(_ndcg(test, s, kk))) for kk in ks} for name, s in shown.items()}
    rel = (test.y > 0).astype(float)
    pos = {name: position_rates(rel, s, test.groups, k).tolist() for name, s in shown.items()}
    base = np.asarray(pos[f"{FLOOR}{best_floor}"])
    cand_pos = np.asarray(pos[candidate])
    lift_pos = np.where(base > 0, cand_pos / np.where(base > 0, base, 1), np.nan).tolist()
    block: dict[str, Any] = {
        "k": k, "group": d.group, "item": d.item, "relevance": dataset.relevance.to_dict(),
        "n_lists": int(len(test.groups)), "n_lists_with_relevant": int(judged[candidate]["per"]["has_relevant"].sum()),
        "mean_list_length": float(test.groups.sizes.mean()) if len(test.groups) else 0.0,
        "discount": spec.costs.position_discount, "relevant_item_value": spec.costs.relevant_item,
        "ndcg_at": ndcg_at, "by_position": {"relevance_rate": pos, "lift_over_floor": lift_pos,
                                            "floor": f"{FLOOR}{best_floor}"},
        "value_per_list": {n: _value_ci(judged[n]["value"], spec.evaluation.bootstrap, seed)
                           for n in [*bundles, *(FLOOR + p for p in floor_scores)]},
        "ideal_value_per_list": float(judged[candidate]["ideal"].mean()) if len(test.groups) else 0.0}
    if d.item:
        block["coverage"], block["popularity_bias"] = _coverage(case, dataset, test, {**scores, **{
            FLOOR + n: s for n, s in floor_scores.items()}}, k)
    return block


def _ndcg(part: _Part, s: np.ndarray, kk: int) -> np.ndarray:
    per = list_metrics(part.y, part.y > 0, s, part.groups, kk)
    return per["ndcg"][per["has_relevant"]]


def _value_ci(values: np.ndarray, n_boot: int, seed: int) -> dict:
    boot = bootstrap_means([values], n_boot, seed)[:, 0]
    return ci(boot, float(values.mean()) if len(values) else 0.0, expanded_level(0.95, len(values)))


def _top_k_rows(scores: np.ndarray, groups: Groups, k: int, seed: int = 0) -> np.ndarray:
    """Row positions in each list's top k (ties broken by a seeded permutation)."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(len(groups)):
        r = groups.rows(g)
        perm = rng.permutation(len(r))
        out.append(r[perm[np.argsort(-scores[r][perm], kind="stable")][:k]])
    return np.concatenate(out) if out else np.array([], dtype=int)


def _coverage(case: Case, dataset, test: _Part, scores: dict, k: int) -> tuple[dict, dict]:
    """Catalogue coverage of the top-k lists, and their popularity bias (see the module docstring)."""
    from ..rankers import _keys

    item = case.spec.data.item
    train = dataset.rows("train")
    counts = pd.Series(_keys(train[item].to_numpy())).value_counts()
    catalogue = set(counts.index) | set(_keys(test.rows[item].to_numpy()))
    pct = counts.rank(pct=True)
    items = _keys(test.rows[item].to_numpy())
    item_pct = np.array([pct.get(i, 0.0) for i in items])
    coverage, bias = {}, {}
    held = float(item_pct.mean()) if len(item_pct) else float("nan")
    for name, s in scores.items():
        top = _top_k_rows(np.asarray(s, dtype=float), test.groups, k)
        coverage[name] = {"items_shown": int(len(set(items[top]))), "catalogue": int(len(catalogue)),
                          "share": float(len(set(items[top])) / max(len(catalogue), 1))}
        bias[name] = {"top_k_popularity_pct": float(item_pct[top].mean()) if len(top) else float("nan"),
                      "lists_popularity_pct": held,
                      "ratio": float(item_pct[top].mean() / held) if len(top) and held > 0 else float("nan")}
    return coverage, bias


# --------------------------------------------------------------------------- slices
def _slices(case: Case, dataset, candidate: str, best_floor: str, test: _Part, judged: dict, seed: int) -> dict:
    """NDCG@k of the candidate and the floor per slice of lists, with bootstrap CIs over the lists."""
    spec = case.spec
    d = spec.data
    min_size = spec.evaluation.min_slice_size
    cand = judged[candidate]["per"]
    floor = judged[FLOOR + best_floor]["per"]
    train = dataset.rows("train")
    first = test.rows.iloc[test.groups.order[test.groups.bounds[:-1]]] if len(test.groups) else test.rows.iloc[:0]
    labels: dict[str, np.ndarray] = {}
    seen_groups = set(train[d.group].astype(str))
    labels["cold_start_group"] = np.where(pd.Series(test.groups.labels).astype(str).isin(seen_groups),
                                          "seen in training", "new (cold start)")
    if d.item:
        from ..rankers import _keys

        known = set(_keys(train[d.item].to_numpy()))
        new_item = ~pd.Series(_keys(test.rows[d.item].to_numpy())).isin(known).to_numpy()
        share = np.array([new_item[test.groups.rows(g)].mean() for g in range(len(test.groups))])
        labels["cold_start_items"] = np.where(share == 0, "no new items", np.where(
            share < 0.5, "some new items", "mostly new items"))
    for col in spec.slices:
        if col in first.columns:
            from .slices import _slice_values

            labels[col] = _slice_values(first[col].reset_index(drop=True)).to_numpy()
    out: dict[str, Any] = {"columns": {}, "flags": [], "min_slice_size": min_size, "unit": "list",
                           "counted": "test lists with a relevant item",
                           "metric": f"ndcg@{k_of(case)}", "versus": best_floor}
    gap_alert = spec.evaluation.slice_gap_alert
    c_cost, f_cost = judged[candidate]["cost"], judged[FLOOR + best_floor]["cost"]
    for col, lab in labels.items():
        groups, small = [], []
        for value in pd.unique(lab):
            sel = (lab == value) & cand["has_relevant"]
            n = int(sel.sum())
            if n < min_size:
                small.append(str(value))
            if n == 0:
                continue
            c, f = cand["ndcg"][sel], floor["ndcg"][sel]
            boot = bootstrap_means([c, c - f, c_cost[sel], f_cost[sel] - c_cost[sel]], SLICE_BOOT, seed)
            a = (1 - expanded_level(0.95, n)) / 2   # a slice's few lists: the expanded level, as for the whole test
            q = np.quantile(boot, [a, 1 - a], axis=0)
            groups.append({"group": str(value), "n": n, "ndcg": float(c.mean()), "ndcg_ci": q[:, 0].tolist(),
                           "floor_ndcg": float(f.mean()), "ndcg_lift_over_floor": float((c - f).mean()),
                           "ndcg_lift_over_floor_ci": q[:, 1].tolist(), "cost_per_decision": float(c_cost[sel].mean()),
                           "cost_per_decision_ci": q[:, 2].tolist(),
                           "lift_per_decision": float((f_cost[sel] - c_cost[sel]).mean()),
                           "insufficient_evidence": n < min_size})
        judged_groups = [g for g in groups if not g["insufficient_evidence"]]
        if len(pd.unique(lab)) == 1:
            # one value for every test list is the whole test, not a slice of it: a group split holds out only
            # groups training never saw, and every ranking case's decision said "slice cold_start_group: 'new
            # (cold start)' has fewer than 30 test lists" (Stat2Data::Blood1, on 37 test lists)
            small = []
        info: dict[str, Any] = {"groups": groups, "insufficient": small, "sensitive": False}
        if len(judged_groups) >= 2:
            lo = min(judged_groups, key=lambda g: g["ndcg"])
            hi = max(judged_groups, key=lambda g: g["ndcg"])
            gap = hi["ndcg"] - lo["ndcg"]
            info["largest_gap"] = {"metric": f"ndcg@{k_of(case)}", "gap": gap, "low_group": lo["group"],
                                   "high_group": hi["group"], "flagged": gap > gap_alert}
            if gap > gap_alert:
                out["flags"].append(f"{col}: NDCG@{k_of(case)} differs by {gap:.3f} between '{lo['group']}' and "
                                    f"'{hi['group']}'")
        out["columns"][col] = info
    return out


__all__ = ["evaluate_ranking", "position_rates"]
