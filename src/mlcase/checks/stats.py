"""Vectorised statistics of the checks: one-feature predictiveness (rank AUC, out-of-fold
target-rate encoding by ``bincount``), quantile codes, row hashes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..times import TIME_DTYPE

N_BINS = 32                  # quantile bins of a numeric feature for target-rate encoding
N_FOLDS = 5                  # out-of-fold encoding folds
MONOTONE_RHO2 = 0.9          # squared rank correlation from which a regression target's monotone fit is scored
MONOTONE_MIN_VALUES = 20     # distinct values a feature needs before an exact monotone fit to it counts as a leak


def _numeric(s: pd.Series) -> np.ndarray | None:
    """A column as float64 (NaN for missing), or None when it is not numeric."""
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype="float64")
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(s):
        v = s.to_numpy(dtype=TIME_DTYPE).astype("int64").astype("float64")
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
    if values_are_codes(uniq):
        edges = uniq[1:]
    else:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    codes = np.searchsorted(edges, values, side="right").astype("int64")
    codes[np.isnan(values)] = len(edges) + 1
    return codes


def values_are_codes(distinct: np.ndarray) -> bool:
    """Whether a numeric column of these distinct finite values is coded by its values (few), not by bins."""
    return len(distinct) <= 2 * N_BINS


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
            # np.ptp, not np.std: the std of stevedata::ESS9GB's constant 'edition' (1.2) is 4e-16 in floating point,
            # and numpy's corrcoef then printed 'invalid value encountered in divide' into `mlcase run`
            if ok.sum() > 2 and np.ptp(values[ok]) > 0 and np.ptp(y[ok]) > 0:
                r = np.corrcoef(values[ok], y[ok])[0, 1]
                r2 = max(r2, float(r * r) * ok.mean())
                rho = np.corrcoef(_ranks(values[ok]), _ranks(y[ok]))[0, 1]
                if rho * rho >= MONOTONE_RHO2:
                    r2 = max(r2, _monotone_r2(values[ok], y[ok], fold[ok], rho > 0) * ok.mean())
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


def _monotone_r2(x: np.ndarray, y: np.ndarray, fold: np.ndarray, increasing: bool) -> float:
    """Out-of-fold R^2 of the best monotone function of ``x`` (isotonic regression, fitted on the other folds).

    A target that is a monotone transform of a feature (``wage`` and ``logwage`` in ISLR::Wage)
    is a leak that neither the squared correlation (0.90 there: the relation is not linear) nor
    the binned mean (0.976: the top bin spans the long tail) scores near 1; this scores 1.000.
    Where the target is exactly a monotone function of ``x`` on the sample, the score is 1: on a
    small table the out-of-fold fit clips at each fold's ends (wooldridge::hprice1, 88 houses:
    ``lprice`` scored 0.955 out of fold, though ``price`` is exactly ``exp(lprice)``).
    """
    if len(np.unique(x)) >= MONOTONE_MIN_VALUES and _exactly_monotone(x, y, increasing):
        return 1.0
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    if len(np.unique(fold)) < 2 or np.ptp(y) == 0:
        return float("nan")
    iso = IsotonicRegression(increasing=increasing, out_of_bounds="clip")
    return float(r2_score(y, cross_val_predict(iso, x, y, cv=PredefinedSplit(fold))))


def _exactly_monotone(x: np.ndarray, y: np.ndarray, increasing: bool) -> bool:
    """Whether ``y`` is a function of ``x`` (one target per value) that never turns back."""
    order = np.lexsort((y, x))
    dx, dy = np.diff(x[order]), np.diff(y[order])
    if (dy[dx == 0] != 0).any():
        return False
    step = dy[dx > 0]
    return bool((step >= 0).all() if increasing else (step <= 0).all())


def _fmt_score(score: float, metric: str) -> str:
    return f"{'AUC' if metric == 'auc' else 'R^2'} {score:.3f}"


def _examples(values, k: int = 5) -> list[str]:
    return [repr(v) if isinstance(v, str) else str(v) for v in list(values)[:k]]



def _row_hash(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 hash per row over ``columns``, built column by column (no copy of the frame)."""
    h = np.zeros(len(frame), dtype="uint64")
    for c in columns:
        hc = pd.util.hash_pandas_object(frame[c], index=False).to_numpy()
        h = (h * np.uint64(1_000_003)) ^ hc
    return h

