"""Ranking: order each group's items (a user's movies, a query's documents) so relevant ones come first.

A row is one (group, item) pair with a target that says how relevant the item was to the
group: a click or a purchase (0/1), a grade, a rating. ``ranking.relevant_from`` says which
targets count as relevant (default 1 for a 0/1 target, else the 75th percentile); NDCG's
gain is ``target - relevant_from + 1`` for relevant items (``ranking.gain: graded``) or 1
(``binary``), and 0 for the others.

The *decision* is one list per group: its top ``ranking.k`` items. Money follows
``costs.relevant_item`` (the value of a relevant item at position 1, a number or a SQL
expression over the row; default 1) times ``costs.position_discount`` at its position (DCG's
``1 / log2(p + 1)`` by default; 0 past ``k``). A list's *cost* is the value it leaves on the
table against the best order of the same items (its regret), so lower is better as for every
other task, and a difference of costs is a difference of value.

Ties: NDCG, recall@k and money are the exact expectation over a random order of tied items
(scikit-learn's ``ndcg_score(ignore_ties=False)`` averages ties the same way), so a constant
score is exactly the random-order policy; MAP@k and MRR break ties by a seeded permutation.

Model-free policies (the floor every model must beat): random order, popularity (items most
often relevant in the training rows, with ``data.item``) and recency (the item's latest
relevant interaction, with ``data.item`` and ``data.time``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..case import Case
from ..errors import DataError
from .base import ModelFreePolicy, Task

RANKING_FAMILIES = ("lightgbm", "xgboost")
DEFAULT_K = 10
CURVE_KS = (1, 2, 3, 5, 10, 20, 50)
MIN_GROUPS = 4    # lists: the fewest that leave some to train on, some to validate on and some to test on


# --------------------------------------------------------------------------- spec
def check_spec(spec) -> None:
    """Ranking's part of the spec's consistency check; fills ranking defaults left unset.

    Raises ``ValueError`` (the spec loader turns it into a one-line :class:`SpecError`).
    """
    from ..spec import RankingSpec

    if spec.task != "ranking":
        if spec.ranking is not None:
            raise ValueError(f"ranking: applies to task: ranking only (this case is {spec.task}); remove the section")
        if spec.split.method == "group_time":
            raise ValueError("split.method 'group_time' applies to task: ranking only; use 'time' or 'group'")
        return
    d = spec.data
    if not d.group:
        raise ValueError("task: ranking needs data.group (the query, user or session each list is for); "
                         "set data.group to that column")
    if d.item and d.item in (d.group, d.target):
        raise ValueError(f"data.item '{d.item}' is also data.group or data.target; name the item column")
    if spec.costs.binary_given() or spec.costs.regression_given() or spec.costs.matrix:
        raise ValueError("costs: a ranking case prices a relevant item at a position: use costs.relevant_item "
                         "(and costs.position_discount), not true_positive/under/matrix")
    if spec.ranking is None:
        spec.__dict__["ranking"] = RankingSpec()
    fields = spec.model_fields_set
    if "candidates" not in fields:
        spec.__dict__["candidates"] = list(RANKING_FAMILIES)
    bad = [c for c in spec.candidates if c not in RANKING_FAMILIES]
    if bad:
        raise ValueError(f"candidates: {', '.join(bad)} cannot rank; a ranking case tunes "
                         f"{' and '.join(RANKING_FAMILIES)} (LambdaRank, rank:ndcg)")
    if "baselines" not in fields:
        # popularity, ALS and recency need the item column; without it, random order is the floor
        # (mlmRev::Exam, students ranked within their school, had no default that loaded)
        base: list = ["popularity", "linear"] if d.item else ["linear"]
        if d.item:
            base.append("als")
            if d.time:
                base.append("recency")
        spec.__dict__["baselines"] = base
    for b in spec.baselines:
        if isinstance(b, str) and b in ("majority", "prior", "mean", "median"):
            raise ValueError(f"baselines: '{b}' is not a ranking baseline; use popularity, recency, linear, als "
                             "or a rule (an ORDER BY expression such as 'rating_count DESC')")
        if isinstance(b, str) and b in ("als", "popularity", "recency") and not d.item:
            raise ValueError(f"baselines: '{b}' needs data.item (the item column each group's rows name)")
        if b == "recency" and not d.time:
            raise ValueError("baselines: 'recency' needs data.time")
    method = spec.split.method
    if "split" not in fields or (method == "stratified" and "method" not in spec.split.model_fields_set):
        spec.split.__dict__["method"] = "group_time" if d.time else "group"
    elif method in ("stratified", "random"):
        raise ValueError(f"split.method '{method}' would put one group's items on both sides; a ranking case "
                         "splits by 'group' (whole groups), 'group_time' (each group's last interactions) or 'time'")
    if spec.split.method == "group_time" and not d.time:
        raise ValueError("split.method is 'group_time' but data.time names no column; set data.time or use 'group'")
    if spec.refit == "all":
        raise ValueError("refit: 'all' is not available for task: ranking yet; use refit: none")
    disc = spec.costs.position_discount
    if isinstance(disc, list) and (not disc or any((not math.isfinite(v)) or v < 0 for v in disc)):
        raise ValueError("costs.position_discount: a list needs one share >= 0 per position, e.g. [1, 0.6, 0.4]")


def k_of(case: Case) -> int:
    r = case.spec.ranking
    return int(r.k) if r is not None else DEFAULT_K


# --------------------------------------------------------------------------- relevance
@dataclass
class Relevance:
    """How a raw target becomes relevance: the threshold and the gain."""

    threshold: float
    gain: str = "graded"

    def relevant(self, target) -> np.ndarray:
        return (np.asarray(target, dtype=float) >= self.threshold - 1e-12).astype(float)

    def gains(self, target) -> np.ndarray:
        t = np.asarray(target, dtype=float)
        rel = self.relevant(t)
        if self.gain == "binary":
            return rel
        return np.where(rel > 0, t - self.threshold + 1.0, 0.0)

    def to_dict(self) -> dict:
        return {"relevant_from": self.threshold, "gain": self.gain}


def numeric_target(case: Case, target: pd.Series) -> pd.Series:
    """The target as numbers: booleans and a two-valued text column (clicked yes/no) become 1/0
    (1 = ``data.positive``, else the value that looks positive); numbers stay numbers."""
    name = case.spec.data.target
    y = target
    if pd.api.types.is_bool_dtype(y):
        return y.astype(float)
    if pd.api.types.is_numeric_dtype(y):
        return pd.to_numeric(y, errors="coerce").astype(float)
    num = pd.to_numeric(y, errors="coerce")
    if num[y.notna()].notna().all():
        return num.astype(float)
    values = sorted(map(str, y.dropna().unique()))
    if len(values) == 2:
        from ..data import _guess_positive, label_in

        positive = case.spec.data.positive
        positive = str(label_in(positive, values)) if positive is not None else _guess_positive(values)
        if positive not in values:
            raise DataError(f"data.positive '{positive}' is not a value of target '{name}' (values: "
                            f"{', '.join(values)})", f"set data.positive to one of {', '.join(values)}")
        return pd.Series(np.where(y.isna(), np.nan, (y.astype(str) == positive).astype(float)), index=y.index)
    bad = y.dropna()[num[y.notna()].isna()].astype(str).unique()[:3]
    raise DataError(f"data.target '{name}' is not numeric (e.g. {', '.join(bad)}); a ranking target is a "
                    "relevance, a 0/1 interaction or a rating", "encode it as numbers (clicked: 1, not: 0)")


def relevance_of(case: Case, target: pd.Series) -> Relevance:
    """The case's :class:`Relevance` for this target column (see :func:`numeric_target`)."""
    name = case.spec.data.target
    vals = numeric_target(case, target).dropna().to_numpy(dtype=float)
    spec = case.spec.ranking
    thr = spec.relevant_from if spec is not None else None
    if thr is None:
        thr = default_threshold(vals)
    if not (vals >= thr - 1e-12).any():
        raise DataError(f"ranking.relevant_from {thr:g}: no row of '{name}' reaches it, so nothing is relevant",
                        f"set ranking.relevant_from to at most {vals.max():g}")
    return Relevance(float(thr), spec.gain if spec is not None else "graded")


def default_threshold(values) -> float:
    """``ranking.relevant_from`` when none is given: 1 for a 0/1 target, else the 75th percentile; where that
    is the least value (three in four targets at it), the next value above it, so not every item is relevant
    (Stat2Data::FinalFourShort17: 416 of 512 seeds sent no team to the Final Four, ``In`` = 0; at
    ``relevant_from: 0`` a random order was already perfect, and the run stopped at the value ceiling). The
    percentile is a value the target takes (Stat2Data::FinalFourShort's years drafted ``relevant_from: 2002.25``,
    and graded gains of 0.75, 1.75 ... for whole years)."""
    vals = np.asarray(values, dtype=float)
    vals = vals[np.isfinite(vals)]
    if not len(vals) or set(np.unique(vals).tolist()) <= {0.0, 1.0}:
        return 1.0
    q = float(np.quantile(vals, 0.75, method="higher"))
    above = vals[vals > vals.min()]
    return float(above.min()) if q <= vals.min() and len(above) else q


# --------------------------------------------------------------------------- per-group arithmetic
def discounts(case_or_spec, n: int, k: int) -> np.ndarray:
    """Share of an item's value kept at positions 1..n (0 past ``k``)."""
    spec = getattr(case_or_spec, "spec", case_or_spec)
    if spec.refit == "all":
        raise ValueError("refit: 'all' is not available for task: ranking yet; use refit: none")
    disc = spec.costs.position_discount if spec is not None else "log2"
    return position_discount(disc, n, k)


def position_discount(disc, n: int, k: int) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=float)
    if isinstance(disc, list):
        out = np.zeros(n)
        m = min(n, len(disc))
        out[:m] = np.asarray(disc[:m], dtype=float)
    elif disc == "linear":
        out = 1.0 / p
    elif disc == "none":
        out = np.ones(n)
    else:
        out = 1.0 / np.log2(p + 1.0)
    out[k:] = 0.0
    return out


class Groups:
    """Rows grouped by list: ``order`` sorts rows by group, ``bounds`` are each group's start/stop in it."""

    def __init__(self, groups):
        codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
        self.codes = np.asarray(codes)
        self.labels = np.asarray(uniques, dtype=object)
        self.order = np.argsort(self.codes, kind="stable")
        counts = np.bincount(self.codes, minlength=len(self.labels))
        self.sizes = counts
        self.bounds = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, g: int) -> np.ndarray:
        return self.order[self.bounds[g]:self.bounds[g + 1]]


def _tie_dcg(gain: np.ndarray, score: np.ndarray, disc_cum: np.ndarray) -> float:
    """Expected DCG over random orders of tied scores (scikit-learn's ``_tie_averaged_dcg``)."""
    _, inv, counts = np.unique(-score, return_inverse=True, return_counts=True)
    ranked = np.zeros(len(counts))
    np.add.at(ranked, inv, gain)
    ranked /= counts
    ends = np.cumsum(counts) - 1
    sums = np.empty(len(counts))
    sums[0] = disc_cum[ends[0]]
    sums[1:] = np.diff(disc_cum[ends])
    return float((ranked * sums).sum())


def _ideal(gain: np.ndarray, disc: np.ndarray) -> float:
    return float((np.sort(gain)[::-1] * disc[:len(gain)]).sum())


def list_metrics(gain, relevant, score, groups, k: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-group NDCG@k, MAP@k, recall@k, MRR and a flag for groups with a relevant item.

    NDCG uses linear gains and DCG's ``1/log2(p + 1)`` discount, averaging tied scores as
    ``sklearn.metrics.ndcg_score`` does; a group without a relevant item scores NaN (no
    order is better than another for it).
    """
    gain = np.asarray(gain, dtype=float)
    relevant = np.asarray(relevant, dtype=float)
    score = np.asarray(score, dtype=float)
    score = np.where(np.isfinite(score), score, -np.inf)
    G = groups if isinstance(groups, Groups) else Groups(groups)
    rng = np.random.default_rng(seed)
    n_max = int(G.sizes.max()) if len(G) else 0
    disc = 1.0 / np.log2(np.arange(2, n_max + 2, dtype=float))
    disc_k = disc.copy()
    disc_k[k:] = 0.0
    cum = np.cumsum(disc_k)
    out = {m: np.full(len(G), np.nan) for m in ("ndcg", "map", "recall", "mrr")}
    has = np.zeros(len(G), dtype=bool)
    for g in range(len(G)):
        r = G.rows(g)
        gg, rel, s = gain[r], relevant[r], score[r]
        n_rel = rel.sum()
        has[g] = n_rel > 0
        if n_rel <= 0:
            continue
        ideal = _ideal(gg, disc_k)
        out["ndcg"][g] = _tie_dcg(gg, s, cum) / ideal if ideal > 0 else np.nan
        # recall@k: expected relevant items in the top k under random tie-breaking, over all relevant
        out["recall"][g] = _tie_dcg(rel, s, np.cumsum((np.arange(len(s)) < k).astype(float))) / n_rel
        perm = rng.permutation(len(s))
        order = perm[np.argsort(-s[perm], kind="stable")]
        hit = rel[order] > 0
        first = int(np.argmax(hit))
        out["mrr"][g] = 1.0 / (first + 1)
        top = hit[:k]
        prec = np.cumsum(top) / np.arange(1, len(top) + 1)
        out["map"][g] = float((prec * top).sum() / min(k, n_rel))
    out["has_relevant"] = has
    return out


def list_values(value, score, groups, disc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the value of its list (expected over tied scores) and of the best order of its items."""
    value = np.asarray(value, dtype=float)
    score = np.asarray(score, dtype=float)
    score = np.where(np.isfinite(score), score, -np.inf)
    G = groups if isinstance(groups, Groups) else Groups(groups)
    n_max = int(G.sizes.max()) if len(G) else 0
    d = np.zeros(max(n_max, len(disc)))
    d[:len(disc)] = disc
    d = d[:n_max]
    cum = np.cumsum(d)
    got, best = np.zeros(len(G)), np.zeros(len(G))
    for g in range(len(G)):
        r = G.rows(g)
        got[g] = _tie_dcg(value[r], score[r], cum)
        best[g] = _ideal(value[r], d)
    return got, best


class RankingCosts:
    """``.of(y, scores)``: each *list's* regret (value of the best order minus the value of this one).

    Unlike the other tasks' cost objects, the result has one entry per group (the decision is
    the list), in the order of :attr:`groups`.
    """

    def __init__(self, case: Case, rows: pd.DataFrame):
        from ..rules import cost_values

        spec = case.spec
        self.rows = rows
        self.groups = Groups(rows[spec.data.group].to_numpy())
        self.k = k_of(case)
        item = spec.costs.relevant_item
        self.item_value = cost_values(item if item is not None else 1.0, rows, "costs.relevant_item")
        n_max = int(self.groups.sizes.max()) if len(self.groups) else 0
        self.disc = discounts(case, max(n_max, 1), self.k)

    def value(self, y) -> np.ndarray:
        """Per row: the money a relevant row brings at position 1 (0 for an irrelevant row)."""
        return (np.asarray(y, dtype=float) > 0) * self.item_value

    def lists(self, y, scores) -> tuple[np.ndarray, np.ndarray]:
        return list_values(self.value(y), scores, self.groups, self.disc)

    def of(self, y, scores) -> np.ndarray:
        got, best = self.lists(y, scores)
        return best - got


# --------------------------------------------------------------------------- the task
class RankingTask(Task):
    """The ranking task object (see the module docstring). ``y`` is the gain per row."""

    name = "ranking"
    primary_metric = "ndcg"
    greater_is_better = True
    floor_description = "popularity (or a random order without data.item)"

    def metrics(self, y, scores, groups=None, k: int = DEFAULT_K, **_) -> dict[str, float]:
        """Means over the groups that hold a relevant item: ``ndcg``, ``map``, ``recall``, ``mrr`` (at ``k``)."""
        if groups is None:
            raise ValueError("ranking metrics need the group of each row")
        per = list_metrics(y, np.asarray(y) > 0, scores, groups, k)
        has = per["has_relevant"]
        out = {f"{m}@{k}" if m != "mrr" else "mrr": float(np.nanmean(per[m][has])) if has.any() else float("nan")
               for m in ("ndcg", "map", "recall", "mrr")}
        out["n_lists"] = int(len(has))
        out["n_lists_with_relevant"] = int(has.sum())
        return out

    def row_losses(self, y, scores, classes=None, groups=None, k: int = DEFAULT_K):
        """Per *group*: ``1 - NDCG@k`` (0 for a group without a relevant item)."""
        per = list_metrics(y, np.asarray(y) > 0, scores, groups, k)
        return np.nan_to_num(1.0 - per["ndcg"], nan=0.0), None, f"1-ndcg@{k}"

    def costs(self, case: Case, rows: pd.DataFrame, classes=None) -> RankingCosts:
        return RankingCosts(case, rows)

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """Random order; popularity and recency learned from ``(rows, y)`` (the training rows) when they apply."""
        from ..rankers import PopularityRanker, RecencyRanker

        d = case.spec.data
        out = [ModelFreePolicy("random", "a random order of each list's items", "random", {},
                               lambda costs, yy: costs.of(yy, np.zeros(len(yy))))]
        out[0].score = lambda rows: np.zeros(len(rows))
        if d.item:
            pop = PopularityRanker(item=d.item).fit(rows, y)
            # no parentheses: the decision's lines put the policy's description in their own ("over popularity
            # (items most often ...) (the best model-free policy, ...)" on openintro::sowc_child_mortality)
            out.append(_policy("popularity", f"popularity, the items most often relevant in the {len(rows):,} "
                                             "training rows first", pop))
            if d.time and any(b == "recency" for b in case.spec.baselines):
                rec = RecencyRanker(item=d.item, time=d.time).fit(rows, y)
                out.append(_policy("recency", "recency, the items most recently relevant in training first", rec))
        return out

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None):
        return np.zeros(len(pd.unique(rows[case.spec.data.group]))), {}

    def scores(self, model, X, classes=None) -> np.ndarray:
        return np.asarray(model.predict(X), dtype="float64")


def _policy(name: str, description: str, est) -> ModelFreePolicy:
    """A model-free policy scoring rows with ``est``; ``policy.score(rows)`` gives its scores."""
    policy = ModelFreePolicy(name, description, name, {"estimator": type(est).__name__},
                             lambda costs, yy: costs.of(yy, est.predict(costs.rows)))
    policy.score = est.predict
    return policy


# --------------------------------------------------------------------------- splits
def group_time_split(groups: np.ndarray, time: np.ndarray, rows: np.ndarray, test_size: float,
                     valid_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each group's last interactions: the latest ``test_size`` share to test, the latest ``valid_size`` of
    the rest to validation, the earlier ones to training.

    A group's rows sharing a time stay on one side, and no training row of a group is later than
    one of its validation or test rows. Groups with fewer than 3 rows stay in training.
    """
    rows = np.asarray(rows)
    G = Groups(groups[rows])
    t = np.asarray(pd.to_datetime(pd.Series(time[rows])).astype("int64"))
    parts: dict[str, list] = {"train": [], "valid": [], "test": []}
    for g in range(len(G)):
        r = G.rows(g)
        r = r[np.argsort(t[r], kind="stable")]
        if len(r) < 3:
            parts["train"].append(rows[r])
            continue
        rest, test = _last(r, t, test_size)
        train, valid = _last(rest, t, valid_size) if len(rest) >= 2 else (rest, rest[:0])
        parts["train"].append(rows[train])
        parts["valid"].append(rows[valid])
        parts["test"].append(rows[test])
    out = [np.sort(np.concatenate(parts[p])) if parts[p] else np.array([], dtype=int)
           for p in ("train", "valid", "test")]
    if not len(out[2]) or not len(out[1]):
        raise DataError("split.method 'group_time': no group has enough rows over time to hold out its last ones",
                        "use split.method: group, or add groups with 3 or more rows")
    return out[0], out[1], out[2]


def _last(r: np.ndarray, t: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Split time-sorted ``r`` into (earlier, last ``share``); ties at the cut go to the later side."""
    n_hold = max(1, int(round(share * len(r))))
    cut = t[r[len(r) - n_hold]]
    keep, hold = r[t[r] < cut], r[t[r] >= cut]
    if len(keep) == 0:  # every row at one time: nothing can be held out of this group
        return r, r[:0]
    return keep, hold


def check_dataset(case: Case, df: pd.DataFrame) -> None:
    """Ranking's checks of the prepared frame: numeric target; a group column with repeated values."""
    check_groups(df, case.spec.data.group, "data.group")


def check_groups(df: pd.DataFrame, g: str, name: str) -> None:
    """A one-line :class:`DataError` where column ``g`` (``name``: the field or flag that set it) makes too few
    lists, or lists of one item. ``init`` asks it too, so it never drafts a case the run refuses here
    (nlme::Wheat2 by its 4 blocks). Rows without a group are :func:`mlcase.data.check_keyed`'s to refuse (and the
    draft's source query leaves them out)."""
    sizes = df.groupby(g, observed=True).size()   # one pass: the lists and how many items each holds
    n_groups = len(sizes)
    if n_groups < MIN_GROUPS:
        raise DataError(f"{name} '{g}' has {n_groups} distinct value(s); ranking needs many lists to learn "
                        f"and test on (at least {MIN_GROUPS})", f"point {name} at the query, user or session column")
    if n_groups == len(df):
        raise DataError(f"{name} '{g}' is different on every row, so every list has one item and there is "
                        f"nothing to order", f"point {name} at the column that groups items into lists")
    ordered = int((sizes >= 2).sum())
    if ordered < MIN_GROUPS:
        # AER::MASchools by expbil: 173 schools spend nothing on bilingual teaching, the other 46 amounts are one
        # or two schools each; the run held out the big list and read "target 'score4' has one value (0.0)"
        raise DataError(f"{name} '{g}' puts two or more items in only {ordered} of its {n_groups:,} lists; ranking "
                        f"needs at least {MIN_GROUPS} lists with items to order",
                        f"point {name} at the column that groups items into lists")

