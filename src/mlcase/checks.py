"""Data checks: catch leakage, imbalance and unusable features before any model is fitted.

:func:`run_checks` takes the case and its prepared :class:`~mlcase.data.Dataset`
and returns a :class:`CheckReport`: one :class:`Check` per finding, each with an
id, a severity (``error`` blocks ``mlcase run``, ``warning`` is reported,
``info`` is context), the evidence in numbers and a fix in plain words.

Checks that read the target use the training rows only. The statistical checks
(leakage, proxies, split shift) work on a seeded sample of at most
``sample_rows`` rows and are vectorised (rank AUC, out-of-fold target-rate
encoding by ``bincount``), so a table of a million rows checks in seconds with
memory bounded by a few columns of the sample.

Examples
--------
>>> from mlcase import load_case                          # doctest: +SKIP
>>> from mlcase.data import prepare                       # doctest: +SKIP
>>> case = load_case("examples/default")                  # doctest: +SKIP
>>> report = run_checks(case, prepare(case))              # doctest: +SKIP
>>> report.has_errors                                     # doctest: +SKIP
False
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .case import Case
from .data import Dataset, immature_mask
from .drift import psi_js
from .errors import ChecksFailed, RuleError

CHECKS_VERSION = 1
SEVERITIES = ("error", "warning", "info")

# --------------------------------------------------------------------------- thresholds
MIN_CLASS_ROWS = 20          # fewer training rows of a class than this: too few to learn from (error)
IMBALANCE_RATE = 0.05        # minority share below this: heavy imbalance (warning)
NEAR_CONSTANT_SHARE = 0.99   # one value in at least this share of the non-missing rows (warning)
HIGH_MISSING = 0.5           # missing share of a feature (warning)
HIGH_CARDINALITY = 100       # distinct values of a categorical feature (warning)
DUPLICATE_WARN_SHARE = 0.01  # duplicate rows above this share warn; fewer are info
LEAK_ERROR = 0.98            # one-feature AUC (or R^2) at or above this: target leakage (error)
LEAK_WARN = 0.95             # ... at or above this: suspiciously strong (warning)
LEAK_MIN_MINORITY = 30       # fewer rows of the rarer class than this: an AUC is too noisy to call a leak an error
PROXY_AUC = 0.8              # one-feature AUC predicting a sensitive column (warning)
PROXY_R2 = 0.5               # ... R^2 for a numeric sensitive column
SHIFT_PVALUE = 1e-3          # PSI must also be this significant to flag a split shift
MATURITY_DROP = 0.2          # relative drop of the recent positive rate flagged as immature labels
MATURITY_Z = 3.0             # ... and at least this many standard errors
LABEL_BEFORE_ERROR = 0.01    # share of rows whose label precedes the features' time (error above)
SAMPLE_ROWS = 100_000        # rows used by the statistical checks
N_BINS = 32                  # quantile bins of a numeric feature for target-rate encoding
N_FOLDS = 5                  # out-of-fold encoding folds


# --------------------------------------------------------------------------- results
@dataclass
class Check:
    """One finding of a data check.

    Attributes
    ----------
    id : str
        The check that fired (``target_leakage``, ``class_balance`` ...).
    severity : {"error", "warning", "info"}
        ``error`` stops ``mlcase run`` unless ``--force``.
    title : str
        What was found, with its numbers.
    column : str or None
        The column concerned, if one.
    evidence : dict
        The measured numbers behind the finding.
    fix : str or None
        What to do, in plain words.
    """

    id: str
    severity: str
    title: str
    column: str | None = None
    evidence: dict = field(default_factory=dict)
    fix: str | None = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:  # pragma: no cover - programming error
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "title": self.title, "column": self.column,
                "evidence": _jsonable(self.evidence), "fix": self.fix}

    @classmethod
    def from_dict(cls, d: dict) -> Check:
        return cls(id=d["id"], severity=d["severity"], title=d["title"], column=d.get("column"),
                   evidence=dict(d.get("evidence") or {}), fix=d.get("fix"))

    def line(self) -> str:
        col = f" [{self.column}]" if self.column else ""
        return f"{self.id}{col}: {self.title}"


@dataclass
class CheckReport:
    """The findings of :func:`run_checks`.

    ``checks`` holds what fired (errors first); ``ran`` every check that was run
    and ``skipped`` the ones that did not apply, with the reason; ``stats`` the
    numbers the datasheet shows (one-feature scores, proxy scores, shift).
    """

    checks: list[Check] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.severity == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.severity == "warning"]

    @property
    def infos(self) -> list[Check]:
        return [c for c in self.checks if c.severity == "info"]

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    @property
    def passed(self) -> list[str]:
        """Checks that ran and found nothing."""
        fired = {c.id for c in self.checks}
        return [i for i in self.ran if i not in fired]

    def counts(self) -> dict[str, int]:
        return {s: sum(c.severity == s for c in self.checks) for s in SEVERITIES}

    def by_id(self, check_id: str) -> list[Check]:
        return [c for c in self.checks if c.id == check_id]

    def to_dict(self) -> dict:
        return {"version": CHECKS_VERSION, "has_errors": self.has_errors, "counts": self.counts(),
                "checks": [c.to_dict() for c in self.checks], "ran": list(self.ran),
                "passed": self.passed, "skipped": dict(self.skipped), "rows": self.rows,
                "excluded": dict(self.excluded), "stats": _jsonable(self.stats),
                "elapsed_s": round(self.elapsed_s, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> CheckReport:
        return cls(checks=[Check.from_dict(c) for c in d.get("checks", [])], ran=list(d.get("ran", [])),
                   skipped=dict(d.get("skipped", {})), rows=int(d.get("rows", 0)),
                   excluded=dict(d.get("excluded", {})), stats=dict(d.get("stats", {})),
                   elapsed_s=float(d.get("elapsed_s", 0.0)))

    def summary_lines(self) -> list[str]:
        """Plain-text lines for the CLI: a count line, then each finding and its fix."""
        n = self.counts()
        lines = [f"{n['error']} error(s), {n['warning']} warning(s), {n['info']} note(s) "
                 f"from {len(self.ran)} checks on {self.rows:,} rows ({len(self.passed)} passed)"]
        for c in self.checks:
            lines.append(f"{c.severity.upper():<7} {c.line()}")
            if c.fix and c.severity != "info":
                lines.append(f"        fix: {c.fix}")
        return lines

    def raise_for_errors(self) -> None:
        """Raise :class:`~mlcase.errors.ChecksFailed` listing the error-level findings, if any."""
        if not self.has_errors:
            return
        lines = [c.line() for c in self.errors]
        more = f" (+{len(lines) - 5} more)" if len(lines) > 5 else ""
        raise ChecksFailed(f"data checks found {len(lines)} error(s): {'; '.join(lines[:5])}{more}",
                           "fix the data or the spec (see `mlcase check`), or run with --force to go on anyway",
                           checks=[c.id for c in self.errors])


class _Skip(Exception):
    """A check that does not apply to this case (the reason is reported)."""


# --------------------------------------------------------------------------- context
class _Context:
    """What the checks share: the case, the data, seeded samples and cached encodings."""

    def __init__(self, case: Case, ds: Dataset, sample_rows: int):
        self.case, self.spec, self.ds = case, case.spec, ds
        self.frame = ds.frame
        self.features = list(ds.features)
        self.rng = np.random.default_rng(case.spec.split.seed)
        self.sample_rows = sample_rows
        self.train = np.asarray(ds.split.train)
        self.test = np.asarray(ds.split.test)
        self.train_sample = self._sample(self.train)
        self.test_sample = self._sample(self.test)
        self.all_sample = self._sample(np.arange(len(self.frame)))
        self.fold = self.rng.integers(0, N_FOLDS, len(self.train_sample))
        self._codes: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}
        self.stats: dict[str, Any] = {}

    def _sample(self, idx: np.ndarray) -> np.ndarray:
        if len(idx) <= self.sample_rows:
            return idx
        return np.sort(self.rng.choice(idx, self.sample_rows, replace=False))

    def column(self, name: str, rows: np.ndarray) -> pd.Series:
        return self.frame[name].iloc[rows]

    def encoded(self, name: str) -> tuple[np.ndarray | None, np.ndarray]:
        """(numeric values or None, integer codes) of a column on the training sample."""
        if name not in self._codes:
            s = self.column(name, self.train_sample)
            values = _numeric(s)
            self._codes[name] = (values, _codes(s, values))
        return self._codes[name]


# --------------------------------------------------------------------------- helpers
def _jsonable(o: Any):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return None if not math.isfinite(o) else round(o, 6)
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    return o


def _numeric(s: pd.Series) -> np.ndarray | None:
    """A column as float64 (NaN for missing), or None when it is not numeric."""
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype="float64")
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(s):
        v = s.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
        v[s.isna().to_numpy()] = np.nan
        return v
    return None


def _codes(s: pd.Series, values: np.ndarray | None) -> np.ndarray:
    """Integer codes 0..k-1: quantile bins of a numeric column (missing its own code), or its categories."""
    if values is None:
        codes, _ = pd.factorize(s, use_na_sentinel=False)
        return codes.astype("int64")
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return np.zeros(len(values), dtype="int64")
    uniq = np.unique(finite)
    if len(uniq) <= 2 * N_BINS:
        edges = uniq[1:]
    else:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    codes = np.searchsorted(edges, values, side="right").astype("int64")
    codes[np.isnan(values)] = len(edges) + 1
    return codes


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank), as ``scipy.stats.rankdata`` but unstable-sorted."""
    order = np.argsort(values)
    sv = values[order]
    first = np.r_[True, sv[1:] != sv[:-1]]
    dense = np.cumsum(first)
    bounds = np.r_[np.flatnonzero(first), len(values)]
    ranks = np.empty(len(values), dtype="float64")
    ranks[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks


def _grouped_auc(score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC when rows come in groups sharing one score: ``pos``/``neg`` counts per group; ties count half."""
    uniq, inv = np.unique(score, return_inverse=True)
    p = np.bincount(inv, weights=pos, minlength=len(uniq))
    n = np.bincount(inv, weights=neg, minlength=len(uniq))
    n_pos, n_neg = p.sum(), n.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.cumsum(n) - n
    return float((p * below).sum() + 0.5 * (p * n).sum()) / float(n_pos * n_neg)


def _fill_low(values: np.ndarray) -> np.ndarray:
    """Missing values ranked below every present one (missingness can itself leak)."""
    if not np.isnan(values).any():
        return values
    low = np.nanmin(values) - 1 if (~np.isnan(values)).any() else 0.0
    return np.where(np.isnan(values), low, values)


@dataclass
class _Target:
    kind: str            # binary | multiclass | regression
    Y: np.ndarray        # (n, k): 0/1 columns per class (binary: one column), or the values
    labels: list


def _target(values: np.ndarray | pd.Series, kind: str | None = None, max_classes: int = 10) -> _Target:
    """The target of a one-feature model: 0/1 for two classes, one-hot for more, floats for numbers."""
    s = pd.Series(values)
    if kind is None:
        num = _numeric(s)
        kind = "regression" if num is not None and s.nunique() > 10 else None
        if kind is None:
            kind = "binary" if s.nunique() <= 2 else "multiclass"
    if kind == "regression":
        return _Target("regression", _numeric(s).reshape(-1, 1), [])
    counts = s.astype(str).value_counts()
    if kind == "binary":
        labels = sorted(counts.index[:2])
        return _Target("binary", (s.astype(str) == labels[-1]).to_numpy(dtype="float64").reshape(-1, 1), labels)
    labels = list(counts.index[:max_classes])
    as_str = s.astype(str).to_numpy()
    return _Target("multiclass", np.column_stack([(as_str == c) for c in labels]).astype("float64"), labels)


def _oof_tables(codes: np.ndarray, fold: np.ndarray, Y: np.ndarray,
                smoothing: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold target-rate encoding, as tables over (code, fold).

    Returns ``enc`` (k, folds, j): the smoothed mean of ``Y[:, j]`` over the rows of that
    code in the *other* folds (what a row of that code and fold is scored with), and the
    in-fold row counts ``cnt`` (k, folds) and sums ``s`` (k, folds, j). Every later
    statistic is computed from these tables, never per row.
    """
    k = int(codes.max()) + 1 if len(codes) else 1
    idx = codes * N_FOLDS + fold
    cnt = np.bincount(idx, minlength=k * N_FOLDS).reshape(k, N_FOLDS).astype("float64")
    s = np.stack([np.bincount(idx, weights=Y[:, j], minlength=k * N_FOLDS).reshape(k, N_FOLDS)
                  for j in range(Y.shape[1])], axis=-1)
    prior = Y.mean(axis=0)
    cnt_out = cnt.sum(axis=1, keepdims=True) - cnt
    s_out = s.sum(axis=1, keepdims=True) - s
    enc = (s_out + smoothing * prior) / (cnt_out + smoothing)[..., None]
    return enc, cnt, s


def _predictiveness(values: np.ndarray | None, codes: np.ndarray, fold: np.ndarray,
                    target: _Target) -> tuple[float, str]:
    """How well one column alone predicts ``target``: (score, metric).

    Binary: the larger of the rank AUC of the raw values (either direction) and the
    AUC of the out-of-fold target-rate encoding of its bins or categories (within each
    fold, averaged). Multiclass: the same one-vs-rest, averaged over classes.
    Regression: the larger of the squared correlation and the R^2 of the out-of-fold
    binned mean.
    """
    enc, cnt, s = _oof_tables(codes, fold, target.Y)
    if target.kind == "regression":
        y = target.Y[:, 0]
        sst = float(((y - y.mean()) ** 2).sum())
        if sst == 0:
            return float("nan"), "r2"
        e = enc[..., 0]
        # sum over rows of (y - e)^2 = sum y^2 - 2 sum(e * in-fold sum y) + sum(e^2 * in-fold count)
        sse = float((y ** 2).sum() - 2 * (e * s[..., 0]).sum() + (e ** 2 * cnt).sum())
        r2 = 1 - sse / sst
        if values is not None:
            ok = ~np.isnan(values)
            if ok.sum() > 2 and np.std(values[ok]) > 0:
                r = np.corrcoef(values[ok], y[ok])[0, 1]
                r2 = max(r2, float(r * r) * ok.mean())
        return r2, "r2"
    raw_ranks = _ranks(_fill_low(values)) if values is not None else None
    n = len(codes)
    fold_rows = cnt.sum(axis=0)
    scores = []
    for j in range(target.Y.shape[1]):
        pos = target.Y[:, j] > 0.5
        n1 = int(pos.sum())
        if n1 == 0 or n1 == n:
            continue
        total = weight = 0.0
        for f in range(N_FOLDS):
            a = _grouped_auc(enc[:, f, j], s[:, f, j], cnt[:, f] - s[:, f, j])
            if a == a:
                total += a * fold_rows[f]
                weight += fold_rows[f]
        best = total / weight if weight else float("nan")
        if raw_ranks is not None:
            a = float((raw_ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * (n - n1)))
            best = max(best, a, 1 - a) if best == best else max(a, 1 - a)
        scores.append(best)
    return (float(np.mean(scores)) if scores else float("nan")), "auc"


def _fmt_score(score: float, metric: str) -> str:
    return f"{'AUC' if metric == 'auc' else 'R^2'} {score:.3f}"


def _examples(values, k: int = 5) -> list[str]:
    return [repr(v) if isinstance(v, str) else str(v) for v in list(values)[:k]]


# --------------------------------------------------------------------------- the checks
def _check_target_missing(ctx: _Context) -> list[Check]:
    n = int(ctx.ds.excluded.get("missing_target", 0))
    if not n:
        return []
    target = ctx.spec.data.target
    total = len(ctx.frame) + n
    share = n / total
    return [Check("target_missing", "warning",
                  f"{n:,} of {total:,} rows ({share:.1%}) have no value in target '{target}'; they were dropped",
                  column=target, evidence={"rows": n, "rows_total": total, "share": share},
                  fix="fill the target where it is known; if those rows are too recent to have a label, "
                      "set data.label_delay so they are excluded on purpose")]


def _check_target_balance(ctx: _Context) -> list[Check]:
    ds = ctx.ds
    target = ctx.spec.data.target
    y = ds.y[ctx.train]
    if ds.task == "regression":
        std = float(np.std(y)) if len(y) else 0.0
        if std == 0:
            return [Check("target_constant", "error",
                          f"target '{target}' has one value ({y[0] if len(y) else 'none'}) in every training row",
                          column=target, evidence={"rows": int(len(y)), "std": std},
                          fix="check the target column and the data filter; there is nothing to predict")]
        return []
    if ds.task == "binary":
        labels = list(ds.classes)
        counts = {labels[0]: int((y == 0).sum()), labels[1]: int((y == 1).sum())}
    else:
        vc = pd.Series(y).value_counts()
        counts = {str(k): int(v) for k, v in vc.items()}
    n = int(len(y))
    rare, n_rare = min(counts.items(), key=lambda kv: kv[1])
    share = n_rare / n if n else 0.0
    evidence = {"rows": n, "counts": counts, "smallest_class": rare, "smallest_share": share}
    if ds.task == "binary":
        evidence.update(positive=ds.positive, positives=counts[labels[1]], positive_rate=counts[labels[1]] / n)
    if n_rare < MIN_CLASS_ROWS:
        return [Check("class_balance", "error",
                      f"only {n_rare} training row{'s' if n_rare != 1 else ''} of class '{rare}' ({share:.2%} of {n:,}); "
                      f"too few to learn from (at least {MIN_CLASS_ROWS} are needed)",
                      column=target, evidence=evidence,
                      fix=f"collect more labelled rows of '{rare}', widen the time window, "
                          "or merge it with a related class")]
    limit = IMBALANCE_RATE if ds.task == "binary" else IMBALANCE_RATE * 2 / len(counts)
    if share < limit:
        what = (f"positive class '{ds.positive}' is {counts[labels[1]] / n:.2%} of training rows "
                f"({counts[labels[1]]:,} of {n:,})") if ds.task == "binary" and rare == labels[1] else (
                f"class '{rare}' is {share:.2%} of training rows ({n_rare:,} of {n:,})")
        return [Check("class_balance", "warning", f"heavy class imbalance: {what}", column=target,
                      evidence=evidence,
                      fix="judge models by money and precision/recall at the review capacity, not by accuracy "
                          "(mlcase picks the threshold from the costs); more rows of the rare class help most")]
    return []


def _check_feature_list(ctx: _Context) -> list[Check]:
    d = ctx.spec.data
    out: list[Check] = []
    unavailable = set(d.unavailable_at_serving)
    for c in ctx.features:
        if c in unavailable:
            out.append(Check(
                "unavailable_at_serving", "error",
                f"'{c}' is listed in data.unavailable_at_serving but is still a feature (data.features.include names it)",
                column=c, evidence={"listed_in": "data.unavailable_at_serving", "used_by": "data.features.include"},
                fix=f"remove '{c}' from data.features.include (serving will not have it), or from "
                    "data.unavailable_at_serving if it is in fact known when the decision is made"))
    for c in ctx.features:
        if c in ctx.spec.sensitive:
            out.append(Check("sensitive_feature", "error", f"sensitive column '{c}' is used as a feature",
                             column=c, evidence={"sensitive": ctx.spec.sensitive},
                             fix=f"remove '{c}' from the features; sensitive columns are only for fairness slices"))
    reserved = {"data.target": d.target, "data.id": d.id, "data.time": d.time, "data.group": d.group,
                "data.label_time": d.label_time}
    for c in d.features.include or []:
        role = [k for k, v in reserved.items() if v == c] or (["sensitive"] if c in ctx.spec.sensitive else [])
        if role:
            out.append(Check("reserved_in_include", "warning",
                             f"data.features.include lists '{c}', which is {role[0]}; it is not used as a feature",
                             column=c, evidence={"role": role[0]},
                             fix=f"remove '{c}' from data.features.include"))
    return out


def _check_constant(ctx: _Context) -> list[Check]:
    out: list[Check] = []
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        if info.n_unique <= 1:
            value = None if info.n_unique == 0 else ctx.frame[c].dropna().iloc[0]
            what = "is empty" if info.n_unique == 0 else f"has one value ({value!r}) in every row"
            out.append(Check("constant_column", "warning", f"feature '{c}' {what}", column=c,
                             evidence={"distinct": info.n_unique, "missing_share": info.missing_rate},
                             fix=f"add '{c}' to data.features.exclude; a column that never changes cannot help"))
            continue
        s = ctx.column(c, ctx.all_sample).dropna()
        if len(s) == 0:
            continue
        top = s.value_counts()
        share = float(top.iloc[0]) / len(s)
        if share >= NEAR_CONSTANT_SHARE:
            out.append(Check("near_constant_column", "warning",
                             f"feature '{c}' is {top.index[0]!r} in {share:.2%} of rows", column=c,
                             evidence={"top_value": str(top.index[0]), "top_share": share, "distinct": info.n_unique,
                                       "rows": int(len(s))},
                             fix=f"exclude '{c}' (data.features.exclude) unless its rare values matter; "
                                 "it carries little information"))
    return out


def _check_missingness(ctx: _Context) -> list[Check]:
    out = []
    for c in ctx.features:
        rate = ctx.ds.schema.columns[c].missing_rate
        if HIGH_MISSING <= rate < 1:
            out.append(Check("high_missingness", "warning", f"feature '{c}' is missing in {rate:.1%} of rows",
                             column=c, evidence={"missing_share": rate, "rows": int(len(ctx.frame))},
                             fix=f"find out why '{c}' is missing (is it recorded later, or only for some rows?); "
                                 "exclude it or keep it knowing the models see missingness as a signal"))
    return out


def _check_cardinality(ctx: _Context) -> list[Check]:
    out = []
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        if info.kind in ("categorical", "text") and info.n_unique > HIGH_CARDINALITY:
            kind = "free text" if info.kind == "text" else "categorical"
            out.append(Check("high_cardinality", "warning",
                             f"{kind} feature '{c}' has {info.n_unique:,} distinct values", column=c,
                             evidence={"distinct": info.n_unique, "kind": info.kind,
                                       "distinct_share": info.n_unique / max(len(ctx.frame), 1)},
                             fix=f"group rare values of '{c}' (e.g. in the data.source SQL), extract what matters "
                                 "from it, or exclude it; most values are seen too rarely to learn from"))
    return out


def _check_id_like(ctx: _Context) -> list[Check]:
    out = []
    n = len(ctx.frame)
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        s = ctx.frame[c]
        # an integer with a distinct value per row that only grows down the table is a row number
        row_number = (info.kind == "numeric" and pd.api.types.is_integer_dtype(s) and n > 50
                      and info.n_unique >= 0.99 * n and s.is_monotonic_increasing)
        if info.kind == "id" or row_number:
            what = "a row number" if row_number else "an identifier"
            out.append(Check("id_like_feature", "warning",
                             f"feature '{c}' looks like {what} ({info.n_unique:,} distinct values in {n:,} rows)",
                             column=c, evidence={"distinct": info.n_unique, "rows": int(n),
                                                 "increasing_with_row_order": bool(row_number)},
                             fix=f"set data.id: {c} (or exclude it); a model can only memorise identifiers, "
                                 "and their order can leak when they were assigned"))
    return out


def _check_mixed_types(ctx: _Context) -> list[Check]:
    out = []
    for c in ctx.features:
        s = ctx.frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            continue
        counts = s.value_counts(dropna=True)
        total = int(counts.sum())
        if total == 0:
            continue
        if s.dtype == object:  # several Python types in one column (a frame passed in directly)
            kinds = pd.Series([_value_kind(v) for v in counts.index], index=counts.index)
            by_kind = counts.groupby(kinds.to_numpy()).sum().sort_values(ascending=False)
            if len(by_kind) > 1:
                main = by_kind.index[0]
                bad = counts[kinds.to_numpy() != main]
                out.append(_mixed(c, f"mostly {main} values, but {int(bad.sum()):,} rows hold other types",
                                  bad, total, {k: int(v) for k, v in by_kind.items()}))
                continue
        parsed = pd.to_numeric(pd.Series(counts.index.astype(str)), errors="coerce").to_numpy()
        numeric_rows = int(counts.to_numpy()[~np.isnan(parsed)].sum())
        if 0.5 <= numeric_rows / total < 1:
            bad = counts[np.isnan(parsed)]
            out.append(_mixed(c, f"{numeric_rows / total:.1%} of values are numbers, {int(bad.sum()):,} rows are not",
                              bad, total, {"number": numeric_rows, "text": int(bad.sum())}))
    return out


def _value_kind(v: Any) -> str:
    """``number`` for any int or float (1 and 2.5 are not mixed types), else the Python type's name."""
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, numbers.Number):
        return "number"
    return type(v).__name__


def _mixed(c: str, what: str, bad: pd.Series, total: int, kinds: dict) -> Check:
    examples = _examples(bad.index)
    return Check("mixed_types", "warning", f"column '{c}' mixes types: {what} (e.g. {', '.join(examples)})",
                 column=c, evidence={"kinds": kinds, "offending_rows": int(bad.sum()), "rows": total,
                                     "examples": [str(v) for v in list(bad.index)[:5]],
                                     "example_counts": [int(v) for v in bad.to_numpy()[:5]]},
                 fix=f"clean those values of '{c}' at the source, or cast in data.source, e.g. "
                     f"SELECT * REPLACE (TRY_CAST(\"{c}\" AS DOUBLE) AS \"{c}\") FROM 'file.csv'")


def _row_hash(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 hash per row over ``columns``, built column by column (no copy of the frame)."""
    h = np.zeros(len(frame), dtype="uint64")
    for c in columns:
        hc = pd.util.hash_pandas_object(frame[c], index=False).to_numpy()
        h = (h * np.uint64(1_000_003)) ^ hc
    return h


def _check_duplicates(ctx: _Context) -> list[Check]:
    out: list[Check] = []
    d = ctx.spec.data
    frame = ctx.frame
    columns = [c for c in frame.columns if c != d.id]
    h = _row_hash(frame, columns)
    dup = int(pd.Series(h).duplicated().sum())
    fh = _row_hash(frame, ctx.features)
    test_seen = int(pd.Index(fh[ctx.test]).isin(fh[ctx.train]).sum()) if len(ctx.test) else 0
    share = dup / max(len(frame), 1)
    if dup:
        sev = "warning" if share >= DUPLICATE_WARN_SHARE else "info"
        out.append(Check("duplicate_rows", sev,
                         f"{dup:,} rows ({share:.2%}) repeat another row in every column"
                         + (f" but '{d.id}'" if d.id else ""),
                         evidence={"duplicates": dup, "share": share, "rows": int(len(frame)),
                                   "test_rows_with_features_seen_in_train": test_seen,
                                   "test_rows": int(len(ctx.test))},
                         fix="remove double-logged rows at the source (or DISTINCT in data.source); "
                             "duplicates across train and test make the test score look better than it is"))
    if d.id:
        ids = frame[d.id]
        dup_ids = int(ids.duplicated().sum())
        if dup_ids:
            tr = pd.Index(ids.iloc[ctx.train].unique())
            across = int(tr.isin(ids.iloc[ctx.test].unique()).sum())
            split_note = ("" if ctx.spec.split.method == "group" and d.group == d.id
                          else f"; {across:,} ids are in both train and test")
            out.append(Check("duplicate_ids", "warning",
                             f"{dup_ids:,} rows repeat an id of '{d.id}' ({ids.nunique():,} distinct ids "
                             f"in {len(ids):,} rows){split_note}", column=d.id,
                             evidence={"duplicate_rows": dup_ids, "distinct_ids": int(ids.nunique()),
                                       "ids_in_train_and_test": across},
                             fix=f"keep one row per id, or set data.group: {d.id} and split.method: group "
                                 "so one entity never sits in both train and test"))
    return out


def _check_leakage(ctx: _Context) -> list[Check]:
    y = ctx.ds.y[ctx.train_sample]
    kind = ctx.ds.task
    target = _target(y, kind=kind)
    scores: dict[str, float] = {}
    metric = "r2" if kind == "regression" else "auc"
    for c in ctx.features:
        values, codes = ctx.encoded(c)
        score, metric = _predictiveness(values, codes, ctx.fold, target)
        scores[c] = score
    ctx.stats["one_feature"] = {"metric": metric, "rows": int(len(y)),
                                "scores": dict(sorted(((k, v) for k, v in scores.items() if v == v),
                                                      key=lambda kv: -kv[1]))}
    minority = None
    if kind != "regression":
        minority = int(pd.Series(y).value_counts().min()) if len(y) else 0
    out = []
    for c, score in scores.items():
        if not score == score or score < LEAK_WARN:
            continue
        sev = "error" if score >= LEAK_ERROR else "warning"
        if sev == "error" and minority is not None and minority < LEAK_MIN_MINORITY:
            sev = "warning"  # with a handful of positives a near-perfect AUC is weak evidence
        what = "almost perfectly" if score >= LEAK_ERROR else "very strongly"
        out.append(Check("target_leakage", sev,
                         f"'{c}' alone predicts the target {what} (one-feature {_fmt_score(score, metric)})",
                         column=c, evidence={"score": score, "metric": metric, "rows": int(len(y)),
                                             "rarer_class_rows": minority,
                                             "threshold": LEAK_ERROR if score >= LEAK_ERROR else LEAK_WARN},
                         fix=f"check whether '{c}' is only known after the outcome; if so add it to "
                             "data.unavailable_at_serving (or data.features.exclude). If it is truly known at "
                             "decision time, a simple rule on it may be all the case needs"))
    return out


def _check_label_time(ctx: _Context) -> list[Check]:
    d = ctx.spec.data
    if not d.label_time:
        raise _Skip("no data.label_time column")
    if ctx.ds.time is None:
        raise _Skip("data.label_time needs data.time (the time the features describe)")
    label_time = pd.to_datetime(ctx.frame[d.label_time], errors="coerce", format="mixed")
    feat_time = ctx.ds.time
    ok = label_time.notna() & feat_time.notna()
    before = (label_time < feat_time) & ok
    n_before = int(before.sum())
    lag_days = ((label_time - feat_time)[ok].dt.total_seconds() / 86400).to_numpy()
    evidence = {"rows": int(ok.sum()), "label_before_features": n_before,
                "share": n_before / max(int(ok.sum()), 1),
                "unparsed_label_times": int((label_time.isna() & ctx.frame[d.label_time].notna()).sum())}
    if len(lag_days):
        evidence.update(lag_days_median=float(np.median(lag_days)), lag_days_p95=float(np.quantile(lag_days, 0.95)))
    if not n_before:
        return []
    share = evidence["share"]
    sev = "error" if share >= LABEL_BEFORE_ERROR else "warning"
    examples = ctx.frame.loc[before.to_numpy(), [d.time, d.label_time]].head(3)
    ex = "; ".join(f"{r[d.time]} -> {r[d.label_time]}" for _, r in examples.iterrows())
    evidence["examples"] = ex
    return [Check("label_before_features", sev,
                  f"{n_before:,} rows ({share:.1%}) have a label time ('{d.label_time}') before their feature time "
                  f"('{d.time}'), e.g. {ex}", column=d.label_time, evidence=evidence,
                  fix="the features of those rows were recorded after the outcome was known; rebuild them "
                      "as of a time before the label (a point-in-time snapshot), or drop those rows")]


def _check_label_maturity(ctx: _Context) -> list[Check]:
    spec = ctx.spec
    delay = spec.data.label_delay
    if ctx.ds.time is None:
        if delay:
            return [Check("label_maturity", "warning",
                          "data.label_delay is set but data.time names no column, so immature rows cannot be found",
                          evidence={"label_delay_days": delay / 86400},
                          fix="set data.time to the column with each row's time")]
        raise _Skip("no data.time column")
    if ctx.ds.task == "multiclass":
        raise _Skip("a positive rate by age needs a binary or numeric target")
    test = np.zeros(len(ctx.frame), dtype=bool)
    test[ctx.test] = True
    keep = ~test
    t = ctx.ds.time[keep]
    y = ctx.ds.y[keep].astype("float64")
    age = ((t.max() - t).dt.total_seconds()).to_numpy()
    if delay:
        recent = age < delay
        edges = [0.0, delay / 2, delay]
        k = 2
        while edges[-1] < age.max() and len(edges) < 9:
            edges.append(delay * k)
            k *= 2
        edges.append(np.inf)
    else:
        qs = np.unique(np.quantile(age, np.linspace(0, 1, 11)))
        edges = [0.0, *qs[1:-1].tolist(), np.inf]
        recent = age < edges[1]
    table = []
    bucket = np.searchsorted(np.asarray(edges[1:-1]), age, side="right")
    for b in range(len(edges) - 1):
        m = bucket == b
        if m.any():
            table.append({"age_from_days": edges[b] / 86400,
                          "age_to_days": edges[b + 1] / 86400 if np.isfinite(edges[b + 1]) else None,
                          "rows": int(m.sum()), "rate": float(y[m].mean())})
    n_recent, n_old = int(recent.sum()), int((~recent).sum())
    what = "positive rate" if ctx.ds.task == "binary" else "mean target"
    excluded = int(ctx.ds.excluded.get("immature_label", 0))
    immature_n = int(immature_mask(ctx.ds.time, delay).sum()) if delay else 0
    evidence = {"label_delay_days": delay / 86400 if delay else None, "excluded": excluded,
                "immature_rows": immature_n, "include_immature": spec.data.include_immature,
                "rate_by_age": table, "measure": what}
    if n_recent == 0 or n_old == 0:
        if excluded:
            return [Check("label_maturity", "info",
                          f"{excluded:,} rows younger than the label delay were excluded from training, validation and test",
                          evidence=evidence)]
        return []
    r_new, r_old = float(y[recent].mean()), float(y[~recent].mean())
    if ctx.ds.task == "binary":
        p = (y.sum()) / len(y)
        se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n_recent + 1 / n_old))
    else:
        se = math.sqrt(np.var(y[recent]) / n_recent + np.var(y[~recent]) / n_old) or 1e-12
    z = (r_new - r_old) / se
    evidence.update(recent_rows=n_recent, recent_rate=r_new, mature_rate=r_old, z=z)
    dropped = r_old != 0 and (r_old - r_new) / abs(r_old) >= MATURITY_DROP and z <= -MATURITY_Z
    if dropped:
        if delay and not spec.data.include_immature:
            title = (f"the {what} of rows younger than the label delay ({delay / 86400:g} days) is {r_new:.3g} against "
                     f"{r_old:.3g} in older rows: their labels are not in yet; {excluded:,} such rows were excluded "
                     "from training, validation and test")
            fix = ("nothing to do if the delay is right; if the drop starts earlier than the delay, "
                   "lengthen data.label_delay")
        elif delay:
            title = (f"the {what} of rows younger than the label delay is {r_new:.3g} against {r_old:.3g}, and "
                     f"data.include_immature keeps {immature_n:,} of them in training")
            fix = "set data.include_immature: false so unlabelled recent rows do not teach the model 'negative'"
        else:
            days = edges[1] / 86400
            title = (f"the {what} of the most recent rows (last {days:.3g} days) is {r_new:.3g} against {r_old:.3g} "
                     "before: recent labels may not be in yet")
            fix = f"if labels arrive late, set data.label_delay (e.g. '{max(1, math.ceil(days))}d') to exclude rows too young to have one"
        return [Check("label_maturity", "warning", title, column=spec.data.time, evidence=evidence, fix=fix)]
    if excluded:
        return [Check("label_maturity", "info",
                      f"{excluded:,} rows younger than the label delay were excluded from training, validation and test "
                      f"(recent {what} {r_new:.3g}, older {r_old:.3g})", column=spec.data.time, evidence=evidence)]
    return []


def _psi_bins(train: pd.Series, test: pd.Series) -> tuple[np.ndarray, np.ndarray, float | None, float | None]:
    """Bin counts of train and test (train deciles, or its top 20 categories + other; missing its own bin)."""
    a_num, b_num = _numeric(train), _numeric(test)
    ks = ks_p = None
    if a_num is not None:
        fa, fb = a_num[~np.isnan(a_num)], b_num[~np.isnan(b_num)]
        edges = np.unique(np.quantile(fa, np.linspace(0, 1, 11)[1:-1])) if len(fa) else np.array([])
        ca = np.searchsorted(edges, a_num, side="right")
        cb = np.searchsorted(edges, b_num, side="right")
        ca[np.isnan(a_num)] = len(edges) + 1
        cb[np.isnan(b_num)] = len(edges) + 1
        k = len(edges) + 2
        if len(fa) and len(fb):
            from scipy.stats import ks_2samp

            res = ks_2samp(fa, fb, method="asymp")
            ks, ks_p = float(res.statistic), float(res.pvalue)
    else:
        cats = pd.Index(train.value_counts().index[:20])
        ca = cats.get_indexer(train) + 2
        cb = cats.get_indexer(test) + 2
        ca[train.isna().to_numpy()] = 0
        cb[test.isna().to_numpy()] = 0
        k = len(cats) + 2
    return np.bincount(ca, minlength=k), np.bincount(cb, minlength=k), ks, ks_p


def _check_split_shift(ctx: _Context) -> list[Check]:
    from scipy.stats import chi2

    if len(ctx.test) == 0:
        raise _Skip("no test rows")
    method = ctx.ds.split.method
    warn = ctx.spec.monitoring.psi_warn
    rows = {}
    out = []
    for c in ctx.features:
        a, b = ctx.column(c, ctx.train_sample), ctx.column(c, ctx.test_sample)
        na, nb, ks, ks_p = _psi_bins(a, b)
        keep = (na + nb) > 0
        psi = float(psi_js(nb[keep], na[keep] / na.sum())[0][0])
        dof = max(int(keep.sum()) - 1, 1)
        p = float(chi2.sf(psi / (1 / na.sum() + 1 / nb.sum()), dof))
        rows[c] = {"psi": psi, "p_value": p, "ks": ks, "ks_p_value": ks_p}
        if psi >= warn and p < SHIFT_PVALUE:
            ks_txt = f", KS {ks:.2f}" if ks is not None else ""
            fix = ("expected when the data drifts over time: the test rows are later, so the test score shows how the "
                   f"model does on newer data; watch '{c}' in monitoring" if method == "time" else
                   f"a {method} split should not shift; check that rows are independent and not ordered or "
                   "duplicated by entity (set data.group if several rows share one)")
            out.append(Check("split_shift", "warning",
                             f"'{c}' is distributed differently in train and test (PSI {psi:.2f}{ks_txt}, {method} split)",
                             column=c, evidence={"psi": psi, "p_value": p, "ks": ks, "ks_p_value": ks_p,
                                                 "train_rows": int(na.sum()), "test_rows": int(nb.sum()),
                                                 "split": method},
                             fix=fix))
    ctx.stats["split_shift"] = {"split": method, "features": rows}
    return out


def _check_proxies(ctx: _Context) -> list[Check]:
    if not ctx.spec.sensitive:
        raise _Skip("no sensitive columns in the spec")
    out = []
    found: dict[str, dict[str, float]] = {}
    for s in ctx.spec.sensitive:
        vals = ctx.column(s, ctx.train_sample)
        mask = vals.notna().to_numpy()
        if vals[mask].nunique() < 2:
            continue
        target = _target(vals[mask].to_numpy())
        found[s] = {}
        for c in ctx.features:
            values, codes = ctx.encoded(c)
            # binned and categorical encodings only: no per-feature sort of the raw values
            score, metric = _predictiveness(None, codes[mask], ctx.fold[mask], target)
            found[s][c] = score
            limit = PROXY_R2 if metric == "r2" else PROXY_AUC
            if score == score and score >= limit:
                out.append(Check("proxy", "warning",
                                 f"'{c}' predicts the sensitive column '{s}' on its own ({_fmt_score(score, metric)}): "
                                 "a possible proxy", column=c,
                                 evidence={"sensitive": s, "score": score, "metric": metric, "threshold": limit,
                                           "rows": int(mask.sum())},
                                 fix=f"compare outcomes across '{s}' (add it to slices) and consider dropping or "
                                     f"coarsening '{c}' if the decision must not depend on '{s}'"))
    ctx.stats["proxies"] = {s: dict(sorted(v.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else 0))[:10])
                            for s, v in found.items()}
    return out


def _check_assumptions(ctx: _Context) -> list[Check]:
    from .rules import Rule

    items = [(i, a) for i, a in enumerate(ctx.spec.assumptions) if a.check]
    if not items:
        raise _Skip("no assumptions with a check in the spec")
    columns = list(ctx.frame.columns)
    out = []
    results = []
    for i, a in items:
        where = f"assumptions[{i}].check"
        rule = Rule(a.check, columns, kind="aggregate", where=where)
        rows = ctx.frame.iloc[ctx.train][rule.used_columns] if rule.used_columns else ctx.frame.iloc[ctx.train, :0]
        value = rule.check(rows)
        measured = _measure_operands(a.check, columns, where, rows)
        results.append({"text": a.text, "check": a.check, "value": value, "measured": measured})
        shown = "; ".join(f"{k} = {_fmt_value(v)}" for k, v in measured.items())
        evidence = {"assumption": a.text, "check": a.check, "value": value, "measured": measured,
                    "rows": int(len(rows)), "where": where}
        if value is None:
            out.append(Check("assumption", "warning",
                             f"assumption '{a.text}' could not be evaluated: its check is NULL on the training rows"
                             + (f" (measured {shown})" if shown else ""), evidence=evidence,
                             fix=f"handle missing values in {where} (coalesce, or count them explicitly)"))
        elif not isinstance(value, bool):
            raise RuleError(f"{where}: the check returned {value!r}, not true or false",
                            "write a comparison, e.g. avg(CASE WHEN churn = 'Yes' THEN 1 ELSE 0 END) < 0.4")
        elif not value:
            out.append(Check("assumption", "error",
                             f"assumption '{a.text}' is false on the training data: measured {shown or 'false'} "
                             f"(check: {a.check})", evidence=evidence,
                             fix="the data contradicts what the case assumes: fix the data or its filter, or "
                                 f"revise the assumption and its check ({where}) with the owner"))
    ctx.stats["assumptions"] = results
    return out


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _measure_operands(expression: str, columns: list[str], where: str, rows: pd.DataFrame) -> dict[str, Any]:
    """Evaluate each aggregate operand of the top-level comparisons of an assumption check.

    ``avg(x) < 0.05 AND count(*) > 100`` gives ``{"avg(x)": 0.31, "count(*)": 5000}``;
    comparisons inside an aggregate (``CASE WHEN churn = 'Yes'``) are not operands.
    """
    import sqlglot
    from sqlglot import exp

    from .rules import _AGGREGATES, Rule

    tree = sqlglot.parse_one(f"SELECT {expression}", dialect="duckdb").expressions[0]
    comparisons = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ, exp.Between, exp.Is)
    operands: list[exp.Expression] = []

    def visit(node):
        if isinstance(node, (exp.And, exp.Or)):
            visit(node.this)
            visit(node.expression)
        elif isinstance(node, (exp.Not, exp.Paren)):
            visit(node.this)
        elif isinstance(node, comparisons):
            operands.extend(v for k, v in node.args.items() if k in ("this", "expression", "low", "high") and v)
        else:
            operands.append(node)

    visit(tree)
    measured: dict[str, Any] = {}
    for op in operands:
        is_agg = any(isinstance(n, exp.AggFunc) or (isinstance(n, exp.Anonymous) and n.name.lower() in _AGGREGATES)
                     for n in op.walk())
        if not is_agg or isinstance(op, exp.Literal):
            continue
        sql = op.sql(dialect="duckdb", normalize_functions="lower")
        if sql in measured:
            continue
        try:
            measured[sql] = Rule(sql, columns, kind="aggregate", where=where).check(rows)
        except RuleError:
            continue  # an operand that is not a value on its own (the whole check still ran)
    return measured


# (ids a check can report, function); the order is the order of the report
CHECKS = [
    (("assumption",), _check_assumptions),
    (("target_missing",), _check_target_missing),
    (("class_balance", "target_constant"), _check_target_balance),
    (("unavailable_at_serving", "sensitive_feature", "reserved_in_include"), _check_feature_list),
    (("target_leakage",), _check_leakage),
    (("label_before_features",), _check_label_time),
    (("label_maturity",), _check_label_maturity),
    (("constant_column", "near_constant_column"), _check_constant),
    (("high_missingness",), _check_missingness),
    (("high_cardinality",), _check_cardinality),
    (("id_like_feature",), _check_id_like),
    (("mixed_types",), _check_mixed_types),
    (("duplicate_rows", "duplicate_ids"), _check_duplicates),
    (("split_shift",), _check_split_shift),
    (("proxy",), _check_proxies),
]


def run_checks(case: Case, dataset: Dataset, *, sample_rows: int = SAMPLE_ROWS) -> CheckReport:
    """Run every data check on a prepared dataset.

    Parameters
    ----------
    case : Case
    dataset : Dataset
        From :func:`mlcase.data.prepare` (missing-target and immature rows already
        dropped or excluded; their counts are in ``dataset.excluded``).
    sample_rows : int
        Rows used by the statistical checks (leakage, proxies, split shift).

    Returns
    -------
    CheckReport
        Errors first, then warnings, then notes. An invalid assumption check raises
        :class:`~mlcase.errors.RuleError` (bad input) rather than becoming a finding.
    """
    t0 = time.perf_counter()
    ctx = _Context(case, dataset, sample_rows)
    found: list[Check] = []
    ran: list[str] = []
    skipped: dict[str, str] = {}
    for ids, fn in CHECKS:
        try:
            found.extend(fn(ctx))
            ran.extend(ids)
        except _Skip as why:
            skipped.update({i: str(why) for i in ids})
    order = {s: i for i, s in enumerate(SEVERITIES)}
    found.sort(key=lambda c: order[c.severity])
    return CheckReport(checks=found, ran=ran, skipped=skipped, rows=int(len(dataset.frame)),
                       excluded=dict(dataset.excluded), stats=ctx.stats, elapsed_s=time.perf_counter() - t0)
