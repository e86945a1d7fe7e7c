"""Weak-slice discovery: where the champion loses money against a fallback, or errs much more than elsewhere.

Three parts of the labelled rows play three roles, so that no number is judged on the rows
that chose it:

1. **Discovery** (the out-of-fold rows of the train part: every row scored by a model that
   did not see it). Each column is cut into slices: numeric columns into quantile bins
   (``analysis.bins``, learned here) and a missing slice, categories with at least
   ``evaluation.min_slice_size`` rows each, the rarer ones grouped into one slice. Pairs of
   slices of the most telling columns are added (a column's best single slice ranks it). For
   every slice the per-row money difference ``candidate - reference`` (positive: the
   candidate loses) gets a t statistic, against each fallback (the best learned baseline,
   the best model-free policy), and the candidate's *relative loss* (its loss over a
   model-free prediction's) a delta-method z statistic against the rest's.
   The best ``analysis.max_slices`` of each kind are *tried*: ranked by their statistic,
   none overlapping a better one by half its rows or more. Under a group split both statistics
   are the test step's cluster-robust ones (:func:`_cluster_t`, :func:`_ratio_t`), and a slice
   whose discovery rows come from fewer than :data:`MIN_GROUPS` groups is not tried.
2. **Validation** (the validation part, scored out of fold): the hybrid "the fallback in
   this slice, the candidate elsewhere" of every tried slice is evaluated there like any
   candidate; the slices whose switch saves money there make up the combined hybrid.
3. **Test** (the untouched test part): each tried slice's money lost per decision with a
   bootstrap CI, a one-sided t-test p-value, and Holm's correction over the slices tried
   (statsmodels ``multipletests``). A slice *loses money* when it has at least
   ``min_slice_size`` test rows, its Holm-adjusted p is below 0.05 and its 95% CI is above
   zero; it *errs much more* when its relative loss is at least ``analysis.error_ratio``
   times the rest's, with a bootstrap CI above 1 and a Holm-adjusted p below 0.05. The
   hybrids are reported on the test rows.

Under a group split (``split.method: group``) the test asks how the model does on entities it has not
seen, and rows of one entity are not independent draws: every test interval resamples whole groups
(:func:`mlcase.evaluate.lift.bootstrap_means` with ``groups``, at the expanded level of
:func:`~mlcase.evaluate.lift.expanded_level`, and never narrower than the rows' interval, as the evaluation's
lifts), the p-values are cluster-robust (:func:`mlcase.numeric.mean_se`, Student's t over the groups), and a
slice is judged only where its test rows come from at least
:data:`~mlcase.decision.MIN_TEST_UNITS` groups. mlmRev::Exam split by school (12 test schools) named
'0.1893 <= schavg < 0.3264', the 88 pupils of one school, as losing money with a Holm-adjusted p below 0.0001
when rows were resampled.

The money criterion is what the decision acts on. The error criterion describes where the
model is least sure of itself; real data is uneven (some slices are simply harder), so it
names real slices on most tables, not only broken ones.

Because discovery and test rows are disjoint, Holm over the slices tried keeps the chance of
naming any slice that does not really lose at 5% or less, however many slices discovery
scanned (measured in ``tests/test_analysis_slices.py``).

Everything here works on per-row arrays (:class:`Part`), so the search runs on stored
per-row costs without any model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data import YEAR_SPAN
from ..decision import MIN_TEST_UNITS
from ..evaluate.lift import LEVEL, bootstrap_means, ci, expanded_level, group_codes
from ..formats import number
from ..numeric import holm, mean_se

ALPHA = 0.05
#: under a group split, a slice is tried and judged only where its discovery and test rows each come from at least
#: this many groups
MIN_GROUPS = MIN_TEST_UNITS
PAIR_COLUMNS = 6          # pairs are formed among this many most telling columns
MIN_DISCOVERY_T = 1.0     # a slice is tried only when discovery leans its way at least this much
OVERLAP = 0.5             # a slice sharing this share of the smaller one's rows with a better one is not tried
REDUNDANT = 0.9           # a pair keeping this share of one of its slices' discovery rows is that slice (not formed)
CANDIDATE = "candidate"
BASELINE = "baseline"     # the best baseline, as the references of a slice and of the learning curve name it
FLOOR = "model-free"      # the best model-free policy


@dataclass
class Part:
    """The rows of one role: the columns slices are cut on, per-row costs, and per-row losses.

    ``costs`` maps ``"candidate"`` and each fallback's name to its per-row cost (money per
    decision); ``loss`` is the candidate's per-row loss (log loss, squared error) and
    ``ref_loss`` the same loss of a model-free prediction (the training prior or mean), so
    the error criterion compares how much of the no-model loss the candidate removes in a
    slice with how much it removes elsewhere (a scale-free *relative loss*).
    """

    frame: pd.DataFrame
    costs: dict[str, np.ndarray]
    loss: np.ndarray | None = None
    ref_loss: np.ndarray | None = None
    flags: dict[str, np.ndarray] | None = None   # binary: each role's flags per row (a random policy's share)
    capacity: float | None = None                # binary: the review capacity the hybrids are held to
    groups: np.ndarray | None = None             # a group split's entity per row: resampled whole (see the module)

    def __post_init__(self):
        self.frame = self.frame.reset_index(drop=True)
        if self.groups is not None:
            self.groups = np.asarray(self.groups, dtype=object)
        self.costs = {k: np.asarray(v, dtype=float) for k, v in self.costs.items()}
        if self.loss is not None:
            self.loss = np.asarray(self.loss, dtype=float)
            self.ref_loss = (np.ones_like(self.loss) if self.ref_loss is None
                             else np.asarray(self.ref_loss, dtype=float))

    def __len__(self) -> int:
        return len(self.frame)

    def hybrid_flag_rate(self, mask: np.ndarray, reference: str) -> float | None:
        """The share of rows a hybrid (``reference`` on ``mask``, the candidate elsewhere) flags; None without flags."""
        if not self.flags or reference not in self.flags or len(self) == 0:
            return None
        return float(np.mean(np.where(mask, self.flags[reference], self.flags[CANDIDATE])))

    def over_capacity(self, mask: np.ndarray, reference: str) -> bool:
        """Whether that hybrid flags more than the review capacity allows (and more than the candidate does):
        a hybrid that adds the reference's flags in a slice to the candidate's elsewhere can spend the capacity
        twice (stevedata::fakeLogit: "flagging 10% of cases at random in this slice, the candidate elsewhere",
        about 12% at a capacity of 10%)."""
        rate = self.hybrid_flag_rate(mask, reference)
        if rate is None or self.capacity is None:
            return False
        return rate > self.capacity + 0.005 and rate > float(np.mean(self.flags[CANDIDATE])) + 1e-9

    def groups_in(self, mask: np.ndarray) -> np.ndarray | None:
        """The groups of ``mask``'s rows (None without a group split)."""
        return None if self.groups is None else self.groups[mask]

    def n_groups(self, mask: np.ndarray | None = None) -> int | None:
        """How many groups ``mask``'s rows (every row without one) come from; None without a group split."""
        if self.groups is None:
            return None
        return int(group_codes(self.groups if mask is None else self.groups[mask])[1])

    def diff(self, reference: str) -> np.ndarray:
        """Per-row money the candidate loses against ``reference`` (positive: the reference is cheaper)."""
        return self.costs[CANDIDATE] - self.costs[reference]


# --------------------------------------------------------------------------- slices
@dataclass
class Slice:
    """A slice: one condition per column (a set of values, an interval, or missing)."""

    conditions: list[dict]

    @property
    def columns(self) -> list[str]:
        return [c["column"] for c in self.conditions]

    @property
    def label(self) -> str:
        return " and ".join(_cond_label(c) for c in self.conditions)

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        m = np.ones(len(frame), dtype=bool)
        for c in self.conditions:
            m &= _cond_mask(frame[c["column"]], c)
        return m

    def to_dict(self) -> dict:
        return {"label": self.label, "columns": self.columns, "conditions": self.conditions}


def _cond_mask(s: pd.Series, c: dict) -> np.ndarray:
    if c["op"] == "missing":
        return s.isna().to_numpy()
    if c["op"] == "between":
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            return (v >= c["low"]) & (v < c["high"])
    return s.astype(str).isin([str(x) for x in c["values"]]).to_numpy() & s.notna().to_numpy()


def _num(v: float, year: bool = False, digits: int = 4) -> str:
    """An edge as written in a slice's label; a year without a thousands separator (vcd::Bundesliga: 'Year < 1,972')."""
    return number(v, digits).replace(",", "") if year else number(v, digits)


def _label_digits(edges, year: bool) -> int:
    """The fewest significant digits (4 or more) that write a column's bin edges apart: modeldata::Sacramento's
    longitudes read '-121.4 <= longitude < -121.4' at 4 (-121.44 to -121.42)."""
    inner = [float(e) for e in edges if np.isfinite(e)]
    for digits in range(4, 10):
        if len({_num(e, year, digits) for e in inner}) == len(set(inner)):
            return digits
    return 10


def _cond_label(c: dict) -> str:
    col = c["column"]
    if c["op"] == "missing":
        return f"{col} is missing"
    if c["op"] == "between":
        lo, hi, y, d = c["low"], c["high"], bool(c.get("years")), int(c.get("digits") or 4)
        if c.get("equals") is not None:    # one value holding most rows, and the rows past it (see base_slices)
            return f"{col} = {_num(c['equals'], y, d)}"
        if c.get("above") is not None:
            return f"{col} > {_num(c['above'], y, d)}"
        if lo == -np.inf:
            return f"{col} < {_num(hi, y, d)}"
        if hi == np.inf:
            return f"{col} >= {_num(lo, y, d)}"
        return f"{_num(lo, y, d)} <= {col} < {_num(hi, y, d)}"
    vals = c["values"]
    if c.get("other"):
        return f"{col} is one of {len(vals)} rare values"
    return f"{col} = {vals[0]}" if len(vals) == 1 else f"{col} in {{{', '.join(map(str, vals))}}}"


def base_slices(frame: pd.DataFrame, min_rows: int, bins: int) -> dict[str, list[Slice]]:
    """Single-column slices of every column, learned on ``frame`` (the discovery rows)."""
    out: dict[str, list[Slice]] = {}
    for col in frame.columns:
        s = frame[col]
        found: list[Slice] = []
        if s.isna().sum() >= min_rows:
            found.append(Slice([{"column": col, "op": "missing"}]))
        v = s.dropna()
        if len(v) == 0:
            continue
        numeric = pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v)
        if numeric and v.nunique() > max(bins, 10):
            edges = np.unique(np.quantile(v.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)))
            top = None
            if len(edges) < 3:  # one value holds most rows: it and the rest
                top = float(v.mode().iloc[0])
                edges = np.array([-np.inf, top, np.nextafter(top, np.inf), np.inf])
            edges[0], edges[-1] = -np.inf, np.inf
            x = v.to_numpy(dtype=float)
            years = bool((x == np.floor(x)).all() and x.min() >= YEAR_SPAN[0] and x.max() <= YEAR_SPAN[1])
            digits = _label_digits(edges, years)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                cond = {"column": col, "op": "between", "low": float(lo), "high": float(hi)}
                if years:   # whole numbers from 1500 to 2999, as the time columns read them: years
                    cond["years"] = True
                if digits > 4:
                    cond["digits"] = digits
                # that value's bin ends a float past it: said as '= 0' and '> 0', not as "s4_methods >=
                # 4.941e-324" (modeldata::check_times, where most packages have no S4 methods)
                if top is not None and lo == top:
                    cond["equals"] = top
                elif top is not None and hi == np.inf:
                    cond["above"] = top
                found.append(Slice([cond]))
        else:
            counts = v.astype(str).value_counts()
            common = [k for k, n in counts.items() if n >= min_rows]
            rare = [k for k, n in counts.items() if n < min_rows]
            if len(common) < 2 and not rare:
                continue  # a constant column cuts nothing
            found += [Slice([{"column": col, "op": "in", "values": [k]}]) for k in common]
            if rare and counts[rare].sum() >= min_rows:
                found.append(Slice([{"column": col, "op": "in", "values": rare, "other": True}]))
        if found:
            out[col] = found
    return out


# --------------------------------------------------------------------------- statistics
def _sums(M: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = M.sum(axis=0).astype(float)
    s1 = M.T @ a
    s2 = M.T @ (a * a)
    return n, s1, s2


def _t_mean(M: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``a`` in each slice (column of ``M``) and its one-sample t statistic."""
    n, s1, s2 = _sums(M, a)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean ** 2) / (n - 1)
        t = mean / np.sqrt(np.maximum(var, 0) / n)
    return mean, np.where(np.isfinite(t), t, 0.0)


def _log_ratio_var(n, sa, sb, saa, sbb, sab):
    """Delta-method variance of log(mean(a) / mean(b)) over ``n`` paired rows, from their sums."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = sa / n, sb / n
        va = (saa - n * ma ** 2) / (n - 1)
        vb = (sbb - n * mb ** 2) / (n - 1)
        cab = (sab - n * ma * mb) / (n - 1)
        return np.maximum(va / ma ** 2 + vb / mb ** 2 - 2 * cab / (ma * mb), 0) / n, ma / mb


def _relative_loss(M: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much worse the candidate's relative loss (its loss over the no-model loss) is in each slice than
    in the rest: the ratio of the two relative losses and a delta-method z statistic of its log."""
    sums = [M.T @ v for v in (a, b, a * a, b * b, a * b)]
    tot = [v.sum() for v in (a, b, a * a, b * b, a * b)]
    n = M.sum(axis=0).astype(float)
    v_in, r_in = _log_ratio_var(n, *sums)
    v_out, r_out = _log_ratio_var(len(a) - n, *[t - x for t, x in zip(tot, sums, strict=True)])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = r_in / r_out
        z = np.log(ratio) / np.sqrt(v_in + v_out)
    return np.where(np.isfinite(ratio), ratio, 0.0), np.where(np.isfinite(z), z, 0.0)


def _cluster_t(a: np.ndarray, groups) -> tuple[float, float]:
    """The mean of ``a`` and its t statistic with the cluster-robust standard error (:func:`mlcase.numeric.mean_se`)
    over ``groups`` (0 where it cannot be told: one group, no spread). The test step's p-value
    (:func:`_one_sided_p`) reads it on ``G - 1`` degrees of freedom, discovery ranks slices by it."""
    if len(a) == 0:
        return float("nan"), 0.0
    mean, se = mean_se(a, groups)
    if not np.isfinite(se) or se <= 0:
        return mean, 0.0
    return mean, mean / se


def _money_stats(masks: np.ndarray, d: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean money lost (``d``) in each slice (column of ``masks``) and its t statistic: the rows' one-sample t, or
    under a group split the cluster-robust one of the test step (mlmRev::Exam by school ranked 'schgend = boys',
    the pupils of 6 schools, fourth on its rows' t of 2.28)."""
    if groups is None:
        return _t_mean(masks.astype(float), d)
    got = np.array([_cluster_t(d[m], groups[m]) for m in masks.T.astype(bool)]).reshape(-1, 2)
    return got[:, 0], got[:, 1]


def _error_stats(masks: np.ndarray, a: np.ndarray, b: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Each slice's relative-loss ratio against the rest's and the statistic of its log: the delta-method z, or under
    a group split the cluster-robust t of the test step (:func:`_ratio_t`)."""
    if groups is None:
        return _relative_loss(masks.astype(float), a, b)
    ratio, z = np.zeros(masks.shape[1]), np.zeros(masks.shape[1])
    for k, m in enumerate(masks.T.astype(bool)):
        r, t = _ratio_t(m, a, b, groups)
        ratio[k], z[k] = (r, t) if np.isfinite(r) and np.isfinite(t) else (0.0, 0.0)
    return ratio, z


@dataclass
class _Scan:
    slices: list[Slice]
    masks: np.ndarray            # discovery rows x slices
    n: np.ndarray
    stats: dict = field(default_factory=dict)
    n_groups: np.ndarray | None = None   # under a group split: how many groups each slice's discovery rows come from


def scan(disc: Part, references: list[str], min_rows: int, bins: int) -> _Scan:
    """Every single-column slice and the pairs of the most telling columns, with their discovery statistics."""
    singles = base_slices(disc.frame, min_rows, bins)
    flat = [s for ss in singles.values() for s in ss]
    if not flat:
        return _Scan([], np.zeros((len(disc), 0), dtype=bool), np.zeros(0))
    M = np.column_stack([s.mask(disc.frame) for s in flat])
    # under a group split each slice is ranked by its groups, not its rows (one group's integer code per row)
    g = None if disc.groups is None else group_codes(disc.groups)[0]
    score = np.zeros(len(flat))
    for ref in references:
        score = np.maximum(score, np.abs(_money_stats(M, disc.diff(ref), g)[1]))
    if disc.loss is not None:
        score = np.maximum(score, np.abs(_error_stats(M, disc.loss, disc.ref_loss, g)[1]))
    if g is not None:   # a column whose slices hold too few groups each does not rank it for the pairs
        score = np.where(_groups_in(M, g) >= MIN_GROUPS, score, 0.0)
    best_col: dict[str, float] = {}
    for s, v in zip(flat, score, strict=True):
        best_col[s.columns[0]] = max(best_col.get(s.columns[0], 0.0), float(v))
    top = sorted(best_col, key=lambda c: -best_col[c])[:PAIR_COLUMNS]
    pairs, pair_masks = [], []
    col_index = {c: [i for i, s in enumerate(flat) if s.columns[0] == c] for c in top}
    n_single = M.sum(axis=0)
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            for i in col_index[top[a]]:
                for j in col_index[top[b]]:
                    m = M[:, i] & M[:, j]
                    k = m.sum()
                    # a condition that keeps nearly all of the other's rows cuts nothing: the pair is that single
                    # slice under a longer name, and its t, a hair higher by chance, took its place (modeldata::ames
                    # with the prices of one agent's sales shuffled: 'agent = D and Condition_2 = Norm', 99% of
                    # the sales being 'Norm', was tried and named instead of 'agent = D')
                    if k >= REDUNDANT * min(n_single[i], n_single[j]):
                        continue
                    if k >= min_rows:
                        pairs.append(Slice(flat[i].conditions + flat[j].conditions))
                        pair_masks.append(m)
    all_slices = flat + pairs
    masks = np.column_stack([M] + pair_masks) if pair_masks else M
    out = _Scan(all_slices, masks, masks.sum(axis=0))
    for ref in references:
        out.stats[("money", ref)] = _money_stats(masks, disc.diff(ref), g)
    if disc.loss is not None:
        out.stats[("error", None)] = _error_stats(masks, disc.loss, disc.ref_loss, g)
    if g is not None:
        out.n_groups = np.concatenate([_groups_in(M, g), _groups_in(np.column_stack(pair_masks), g) if pair_masks
                                       else np.zeros(0, dtype=int)])
    return out


def _groups_in(masks: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """How many groups (``codes``: each row's, from :func:`mlcase.evaluate.lift.group_codes`) each slice's rows
    come from."""
    return np.array([len(np.unique(codes[m])) for m in masks.T.astype(bool)], dtype=int)


def _choose(sc: _Scan, t: np.ndarray, max_slices: int, judgeable: np.ndarray | None = None) -> list[int]:
    """The slices tried: best statistic first, none overlapping an already tried one by half its rows, and (given
    ``judgeable``) only those with enough test rows for a verdict.

    A slice with fewer than ``min_size`` test rows can never be named, yet counted in Holm's correction: on
    modeldata::hpc_data 8 of the 10 slices tried had 9 to 29 test rows, so the two that could be judged paid for
    ten tests. Which slices have enough test rows is known from their columns alone, before any test label is read.
    """
    chosen: list[int] = []
    for i in np.argsort(-t, kind="stable"):
        if t[i] < MIN_DISCOVERY_T or len(chosen) >= max_slices:
            break
        if judgeable is not None and not judgeable[i]:
            continue
        if sc.n_groups is not None and sc.n_groups[i] < MIN_GROUPS:   # discovery saw too few of its groups to rank it
            continue
        mi = sc.masks[:, i]
        if any((mi & sc.masks[:, j]).sum() >= OVERLAP * min(sc.n[i], sc.n[j]) for j in chosen):
            continue
        chosen.append(int(i))
    return chosen


# --------------------------------------------------------------------------- the search
def find_weak_slices(disc: Part, valid: Part, test: Part, references: list[str], *, min_size: int = 30,
                     bins: int = 5, max_slices: int = 10, error_ratio: float = 1.25, n_boot: int = 1000,
                     seed: int = 0, describe: dict[str, str] | None = None) -> dict[str, Any]:
    """Search slices on ``disc``, evaluate their hybrids on ``valid``, judge them on ``test`` (see the module).

    Parameters
    ----------
    disc, valid, test : Part
        The discovery, validation and test rows (same columns; ``costs`` hold ``"candidate"``
        and every name in ``references``).
    references : list of str
        The fallbacks a slice may hand its rows to (the best baseline, the best model-free policy).
    min_size : int
        Rows a slice needs on the test part to be judged (and on discovery to be tried).
    describe : dict, optional
        Words for each reference ("the best baseline (linear)").

    Returns
    -------
    dict
        ``money`` and ``error`` (the slices tried, each with its discovery statistic, test
        numbers, Holm-adjusted p and verdict), ``losing`` and ``erring`` (the labels of the
        slices judged so), ``hybrid`` (the combined hybrid, chosen on validation, judged on
        test) and what was scanned.
    """
    describe = describe or {}
    disc_min = max(5, min(min_size, len(disc) // 20))
    sc = scan(disc, references, disc_min, bins)
    out: dict[str, Any] = {"n_discovery": len(disc), "n_valid": len(valid), "n_test": len(test),
                           "scanned": len(sc.slices), "min_size": min_size, "alpha": ALPHA,
                           "references": {r: describe.get(r, r) for r in references},
                           "money": [], "error": [], "losing": [], "erring": [], "hybrid": None}
    if test.groups is not None:
        out["resampled"] = {"unit": "group", "n_test_groups": test.n_groups(), "min_groups": MIN_GROUPS}
    if not sc.slices:
        return out
    # money: for each slice, the fallback discovery finds cheapest there
    means = np.column_stack([sc.stats[("money", r)][0] for r in references])
    ts = np.column_stack([sc.stats[("money", r)][1] for r in references])
    pick = np.argmax(means, axis=1)
    t_money = ts[np.arange(len(sc.slices)), pick]
    judgeable = np.array([_judgeable(s.mask(test.frame), test, min_size) for s in sc.slices])
    out["unjudgeable"] = int((~judgeable).sum())
    rng_seed = seed
    for i in _choose(sc, t_money, max_slices, judgeable):
        ref = references[pick[i]]
        out["money"].append(_money_entry(sc.slices[i], ref, sc, i, t_money[i], valid, test, n_boot, rng_seed))
        rng_seed += 1
    _holm(out["money"])
    for e in out["money"]:
        e["loses_money"] = bool(e["n_test"] >= min_size and _enough_groups(e) and e["p_holm"] < ALPHA
                                and e["test"]["ci_low"] > 0)
    out["losing"] = [e["label"] for e in out["money"] if e["loses_money"]]
    if ("error", None) in sc.stats and test.loss is not None:
        _, t_err = sc.stats[("error", None)]
        for i in _choose(sc, t_err, max_slices, judgeable):
            out["error"].append(_error_entry(sc.slices[i], t_err[i], test, n_boot, rng_seed,
                                             None if sc.n_groups is None else int(sc.n_groups[i])))
            rng_seed += 1
        _holm(out["error"])
        for e in out["error"]:
            e["errs_more"] = bool(e["n_test"] >= min_size and _enough_groups(e) and e["p_holm"] < ALPHA
                                  and e["ratio"] >= error_ratio and (e["ratio_ci"] or [0])[0] > 1.0)
        out["erring"] = [e["label"] for e in out["error"] if e["errs_more"]]
    out["hybrid"] = _combined_hybrid(out["money"], valid, test, n_boot, seed, describe)
    return out


def resampled_said(resampled: dict | None) -> str:
    """How the slices' CIs resampled a group split's test rows, in words (empty without one)."""
    if not resampled:
        return ""
    col = resampled.get("column") or "data.group"
    n, least = resampled["n_test_groups"], resampled["min_groups"]
    if n < least:
        # modeldata::Sacramento by city (8 test cities) read "no slice loses money beyond chance" with none tried
        return (f"no slice can be judged: the test holds {n} {col} value{'s' if n != 1 else ''}, fewer than the "
                f"{least} whose rows a slice's verdict needs (the CIs resample whole groups); hold out more {col} "
                "values (a larger split.test_size)")
    return (f"the CIs resample whole groups ({col}: {n} test groups), discovery ranks slices by their groups too, "
            f"and a slice is tried only where its discovery rows and its test rows each come from at least {least} "
            "groups")


def too_few_groups(resampled: dict | None) -> bool:
    """Whether a group split's test holds too few groups for any slice's verdict."""
    return bool(resampled) and resampled["n_test_groups"] < resampled["min_groups"]


def _judgeable(mask: np.ndarray, test: Part, min_size: int) -> bool:
    """Whether a slice's test rows can give a verdict: ``min_size`` rows, and under a group split rows of
    :data:`MIN_GROUPS` groups or more (and some of the test's other groups, for the error criterion's rest)."""
    if int(mask.sum()) < min_size:
        return False
    return test.groups is None or test.n_groups(mask) >= MIN_GROUPS


def _enough_groups(entry: dict) -> bool:
    return entry.get("n_test_groups") is None or entry["n_test_groups"] >= MIN_GROUPS


def _holm(entries: list[dict]) -> None:
    if not entries:
        return
    adj = holm([e["p"] for e in entries])
    for e, a in zip(entries, adj, strict=True):
        e["p_holm"] = float(a)
        e["tried"] = len(entries)


def _one_sided_p(a: np.ndarray, groups=None) -> float:
    """One-sided p-value that the mean of ``a`` is above zero (t-test; 1 when it cannot be told).

    With ``groups``, the t statistic takes the cluster-robust standard error (:func:`mlcase.numeric.mean_se`) on
    ``G - 1`` degrees of freedom: one group's rows tell one entity's story, however many they are.
    """
    from scipy import stats

    if len(a) < 2 or np.allclose(a, a[0]):
        # every row alike: the t-test has no spread to read, and its limit (p 0) made a slice of two carData::BEPS
        # voters, both lost by the candidate, "lose money" at a Holm-adjusted p of 0 (evaluation.min_slice_size: 2).
        # The sign test is exact there: under the null each independent unit (row, or group) is on the losing side
        # with chance 1/2, so n of n give 0.5^n.
        units = len(a) if groups is None else group_codes(groups)[1]
        return float(0.5 ** units) if len(a) >= 1 and a[0] > 0 else 1.0
    if groups is None:
        return float(stats.ttest_1samp(a, 0.0, alternative="greater").pvalue)
    g = group_codes(groups)[1]
    mean, se = mean_se(a, groups)
    if g < 2 or not np.isfinite(se):
        return 1.0
    if se <= 0:
        return 0.0 if mean > 0 else 1.0
    return float(stats.t.sf(mean / se, g - 1))


def mean_ci(a: np.ndarray, n_boot: int, seed: int, groups=None) -> dict:
    """The mean of ``a`` with its 95% bootstrap CI; with ``groups``, whole groups resampled as the evaluation's lifts
    are (:class:`mlcase.evaluate.lift.PairedLifts`): the groups' interval at the expanded level, never narrower
    than the rows'."""
    if len(a) == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None}
    est = float(a.mean())
    rows = ci(bootstrap_means([a], n_boot, seed)[:, 0], est)
    if groups is None:
        return rows
    level = expanded_level(LEVEL, group_codes(groups)[1])
    out = ci(bootstrap_means([a], n_boot, seed, groups)[:, 0], est, level)
    out.update(ci_low=min(out["ci_low"], rows["ci_low"]), ci_high=max(out["ci_high"], rows["ci_high"]))
    return out


def _saving(part: Part, mask: np.ndarray, ref: str, n_boot: int, seed: int) -> dict:
    """What switching ``mask``'s rows to ``ref`` saves per decision over the candidate alone, on all rows of a part."""
    if len(part) == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None, "n_in_slice": 0}
    gain = np.where(mask, part.diff(ref), 0.0)
    return {**mean_ci(gain, n_boot, seed, part.groups), "n_in_slice": int(mask.sum())}


def _money_entry(s: Slice, ref: str, sc: _Scan, i: int, t: float, valid: Part, test: Part, n_boot: int,
                 seed: int) -> dict:
    mt = s.mask(test.frame)
    d_test = test.diff(ref)[mt]
    mv = s.mask(valid.frame)
    entry = {"label": s.label, "slice": s.to_dict(), "reference": ref, "n_discovery": int(sc.n[i]),
             "n_discovery_groups": None if sc.n_groups is None else int(sc.n_groups[i]),
             "discovery_loss_per_decision": float(sc.stats[("money", ref)][0][i]), "discovery_t": float(t),
             "n_test": int(mt.sum()), "n_test_groups": test.n_groups(mt),
             "share_of_test": float(mt.mean()) if len(mt) else 0.0,
             "test": mean_ci(d_test, n_boot, seed, test.groups_in(mt)), "p": _one_sided_p(d_test, test.groups_in(mt)),
             "cost_in_slice": {"candidate": float(test.costs[CANDIDATE][mt].mean()) if mt.any() else None,
                               "reference": float(test.costs[ref][mt].mean()) if mt.any() else None},
             "hybrid_valid": _saving(valid, mv, ref, n_boot, seed),
             "hybrid_test": _saving(test, mt, ref, n_boot, seed),
             "hybrid_flag_rate": test.hybrid_flag_rate(mt, ref),
             "hybrid_flag_rate_valid": valid.hybrid_flag_rate(mv, ref),
             # which parts it spends the capacity twice on: the reason names them with their rates (modeldata::
             # two_class_dat's validation rows: "would flag 5.82% of cases, over the review capacity of 10%" gave
             # the test rows' rate, under it)
             "hybrid_over_capacity_on": [name for name, part, mask in (("validation", valid, mv), ("test", test, mt))
                                         if part.over_capacity(mask, ref)]}
    entry["hybrid_over_capacity"] = bool(entry["hybrid_over_capacity_on"])
    return entry


def _error_entry(s: Slice, t: float, test: Part, n_boot: int, seed: int, n_disc_groups: int | None = None) -> dict:
    """The slice's relative loss against the rest's on the test rows: ratio, bootstrap CI and one-sided p."""
    mt = s.mask(test.frame)
    n_in = int(mt.sum())
    out = {"label": s.label, "slice": s.to_dict(), "discovery_z": float(t), "n_discovery_groups": n_disc_groups,
           "n_test": n_in,
           "n_test_groups": test.n_groups(mt),
           "share_of_test": float(mt.mean()) if len(mt) else 0.0, "ratio": 0.0, "ratio_ci": None, "p": 1.0,
           "relative_loss_in_slice": None, "relative_loss_elsewhere": None}
    if n_in < 2 or len(mt) - n_in < 2:
        return out
    a, b = test.loss, test.ref_loss
    g_in, g_out = test.groups_in(mt), test.groups_in(~mt)
    boot_in = bootstrap_means([a[mt], b[mt]], n_boot, seed, g_in)
    boot_out = bootstrap_means([a[~mt], b[~mt]], n_boot, seed + 7, g_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_in, r_out = a[mt].mean() / b[mt].mean(), a[~mt].mean() / b[~mt].mean()
        samples = (boot_in[:, 0] / boot_in[:, 1]) / (boot_out[:, 0] / boot_out[:, 1])
    samples = samples[np.isfinite(samples)]
    ratio = float(r_in / r_out) if np.isfinite(r_in / r_out) else 0.0
    # under a group split, the slice's groups and the rest's are each resampled whole, at the expanded level of the
    # fewer of them (and never narrower than the rows' interval)
    alpha = (1 - LEVEL) / 2
    if test.groups is not None:
        alpha = (1 - expanded_level(LEVEL, min(test.n_groups(mt), test.n_groups(~mt)))) / 2
    ratio_ci = [float(v) for v in np.quantile(samples, [alpha, 1 - alpha])] if len(samples) else None
    if ratio_ci and test.groups is not None:
        rows_in, rows_out = bootstrap_means([a[mt], b[mt]], n_boot, seed), bootstrap_means([a[~mt], b[~mt]], n_boot,
                                                                                           seed + 7)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (rows_in[:, 0] / rows_in[:, 1]) / (rows_out[:, 0] / rows_out[:, 1])
        r = r[np.isfinite(r)]
        if len(r):
            lo, hi = np.quantile(r, [0.025, 0.975])
            ratio_ci = [min(ratio_ci[0], float(lo)), max(ratio_ci[1], float(hi))]
    out.update(ratio=ratio, relative_loss_in_slice=float(r_in), relative_loss_elsewhere=float(r_out),
               ratio_ci=ratio_ci,
               # one-sided p that the ratio is above 1: the delta-method z of its log (a bootstrap fraction
               # could not go below 1 / n_boot, too coarse for Holm over ten slices)
               p=_ratio_p(mt, a, b, test.groups))
    return out


def _ratio_t(mask: np.ndarray, a: np.ndarray, b: np.ndarray, groups) -> tuple[float, float]:
    """The slice's relative loss over the rest's and the cluster-robust t of its log (each part's influence
    ``a / mean(a) - b / mean(b)`` summed by group, :func:`mlcase.numeric.mean_se`); a t of nan where it cannot be
    told (a part of one group has an infinite error)."""
    var, logs = 0.0, []
    for part in (mask, ~mask):
        if part.sum() < 2:
            return float("nan"), float("nan")
        ap, bp = a[part], b[part]
        ma, mb = float(ap.mean()), float(bp.mean())
        if ma <= 0 or mb <= 0:
            return float("nan"), float("nan")
        var += mean_se(ap / ma - bp / mb, groups[part])[1] ** 2
        logs.append(np.log(ma / mb))
    ratio = float(np.exp(logs[0] - logs[1]))
    if not np.isfinite(var) or var <= 0:
        return ratio, float("nan")
    return ratio, float((logs[0] - logs[1]) / np.sqrt(var))


def _ratio_p(mask: np.ndarray, a: np.ndarray, b: np.ndarray, groups=None) -> float:
    """One-sided p that the slice's relative loss is above the rest's: the delta-method z of the log ratio; with
    ``groups``, its cluster-robust t (:func:`_ratio_t`) on Student's t over the fewer groups of the two parts."""
    from scipy import stats

    if groups is None:
        _, z = _relative_loss(mask[:, None].astype(float), a, b)
        return float(stats.norm.sf(z[0])) if np.isfinite(z[0]) and z[0] != 0 else 1.0
    _, t = _ratio_t(mask, a, b, groups)
    fewest = min(group_codes(groups[mask])[1], group_codes(groups[~mask])[1])
    return float(stats.t.sf(t, fewest - 1)) if np.isfinite(t) and fewest >= 2 else 1.0


def _combined_hybrid(money: list[dict], valid: Part, test: Part, n_boot: int, seed: int,
                     describe: dict) -> dict | None:
    """The fallback in every tried slice whose switch saves money on the validation rows, the candidate elsewhere."""
    chosen = [e for e in money if (e["hybrid_valid"]["estimate"] or 0) > 0 and not e.get("hybrid_over_capacity")]
    if not chosen:
        return None

    def costs(part: Part) -> np.ndarray:
        c = part.costs[CANDIDATE].copy()
        taken = np.zeros(len(part), dtype=bool)
        for e in chosen:
            m = Slice(e["slice"]["conditions"]).mask(part.frame) & ~taken
            c[m] = part.costs[e["reference"]][m]
            taken |= m
        return c, taken

    out = {"slices": [{"label": e["label"], "reference": e["reference"],
                       "reference_description": describe.get(e["reference"], e["reference"])} for e in chosen]}
    for name, part in (("valid", valid), ("test", test)):
        if len(part) == 0:
            out[name] = None
            continue
        h, taken = costs(part)
        lifts = {}
        for other in part.costs:
            diffs = part.costs[other] - h
            lifts[other] = mean_ci(diffs, n_boot, seed, part.groups)
        out[name] = {"cost_per_decision": float(h.mean()),
                     "cost_of": {k: float(v.mean()) for k, v in part.costs.items()},
                     "saving_over": lifts,
                     "share_in_slices": float(taken.mean()) if len(h) else 0.0}
    return out
