"""Ranking models: the model-free and learned baselines, and the learning-to-rank candidates.

Every ranker is a scikit-learn estimator whose ``predict(X)`` is a score per row (higher
first); ``X`` is a DataFrame holding the columns the ranker reads (the item column for
popularity, the group and item columns for ALS, the features for the others).

- :class:`PopularityRanker`: how often an item was relevant in the training rows (model-free).
- :class:`RecencyRanker`: when an item was last relevant in the training rows (model-free).
- :class:`RuleRanker`: an ``ORDER BY`` clause over the row's columns (``rating_count DESC``),
  evaluated through :mod:`mlcase.rules` (the SQL sandbox of :mod:`mlcase.sql`).
- :class:`ALSRanker`: implicit-feedback matrix factorisation (``implicit``'s
  ``AlternatingLeastSquares``, Hu, Koren & Volinsky 2008); it keeps only the factor matrices
  and the id maps, so the stored model holds plain arrays. A group or item the training rows
  never had gets its item's popularity, scaled below every known score (cold start).

The candidates are LightGBM's ``LGBMRanker`` (LambdaRank, with ``label_gain`` set to the
case's gains so it optimises the same NDCG the evaluation reports) and XGBoost's
``XGBRanker`` (``rank:ndcg`` with linear gains), fitted by :func:`fit_ranker` on rows sorted
by group, with early stopping on NDCG@k of an inner 10% of the groups.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .errors import RuleError, SpecError
from .times import as_datetimes

__all__ = ["ALSRanker", "PopularityRanker", "RecencyRanker", "RuleRanker", "fit_ranker", "make_ranker"]


def _frame(X) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


def _keys(values) -> np.ndarray:
    """Ids as strings, so 42, 42.0 and '42' (a JSON request, a CSV, a Parquet file) name one item."""
    s = pd.Series(np.asarray(values, dtype=object))
    num = pd.to_numeric(s, errors="coerce")
    # a finite whole number an int64 holds exactly; a title "Infinity" (ggplot2movies::movies) is text
    whole = num.notna() & np.isfinite(num) & (num.abs() < 2**53) & (num == np.round(num))
    out = s.astype(str).to_numpy(dtype=object)
    out[whole.to_numpy()] = num[whole].astype("int64").astype(str).to_numpy(dtype=object)
    return out


class _ItemScore(RegressorMixin, BaseEstimator):
    """A score learned per item from the training rows; unknown items score ``fill_``."""

    _never_stored = True  # an abstract base: only its subclasses are fitted and saved

    def _lookup(self, X) -> np.ndarray:
        check_is_fitted(self, "scores_")
        keys = _keys(_frame(X)[self.item].to_numpy())
        return np.array([self.scores_.get(k, self.fill_) for k in keys], dtype="float64")

    def predict(self, X) -> np.ndarray:
        return self._lookup(X)


class PopularityRanker(_ItemScore):
    """Items most often relevant in the training rows first (ties: most often seen).

    Parameters
    ----------
    item : str
        The item column.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"movie": ["a", "a", "b", "c"]})
    >>> PopularityRanker(item="movie").fit(X, [1, 1, 0, 1]).predict(pd.DataFrame({"movie": ["a", "b", "z"]})).tolist()
    [2.000001, 5e-07, 0.0]
    """

    def __init__(self, item: str = "item"):
        self.item = item

    def fit(self, X, y):
        keys = _keys(_frame(X)[self.item].to_numpy())
        rel = (np.asarray(y, dtype=float) > 0).astype(float)
        frame = pd.DataFrame({"k": keys, "r": rel})
        agg = frame.groupby("k", sort=False)["r"].agg(["sum", "count"])
        # relevant count first; how often it was seen breaks ties (a millionth per row)
        score = agg["sum"].to_numpy() + 1e-6 * agg["count"].to_numpy() / max(float(agg["count"].max()), 1.0)
        self.scores_ = dict(zip(agg.index.astype(str), score.astype(float).tolist(), strict=True))
        self.fill_ = 0.0
        return self


class RecencyRanker(_ItemScore):
    """Items most recently relevant in the training rows first (seconds since 1970; unknown items last)."""

    def __init__(self, item: str = "item", time: str = "time"):
        self.item = item
        self.time = time

    def fit(self, X, y):
        X = _frame(X)
        keys = _keys(X[self.item].to_numpy())
        t = ((as_datetimes(X[self.time]) - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy()
        rel = np.asarray(y, dtype=float) > 0
        frame = pd.DataFrame({"k": keys[rel], "t": t[rel]})
        last = frame.groupby("k", sort=False)["t"].max()
        self.scores_ = dict(zip(last.index.astype(str), last.to_numpy(dtype=float).tolist(), strict=True))
        self.fill_ = float(min(self.scores_.values(), default=0.0)) - 1.0
        return self


_ORDER_KEY = re.compile(r"^(.*?)(?:\s+(ASC|DESC))?(?:\s+NULLS\s+(FIRST|LAST))?\s*$", re.I | re.S)


def parse_order_by(text: str) -> list[tuple[str, bool]]:
    """``"rating_count DESC, year"`` -> ``[("rating_count", True), ("year", False)]`` (expression, descending).

    An ``ORDER BY`` with no direction is ascending, as in SQL. Commas inside parentheses
    (``coalesce(a, b) DESC``) stay in their expression.
    """
    parts, depth, cur = [], 0, []
    for ch in str(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    out = []
    for p in parts:
        m = _ORDER_KEY.match(p.strip())
        expr = (m.group(1) if m else p).strip()
        if not expr:
            raise RuleError(f"rule {text!r}: an empty ORDER BY key", "write keys like 'rating_count DESC, year DESC'")
        out.append((expr, bool(m and m.group(2) and m.group(2).upper() == "DESC")))
    return out


class RuleRanker(RegressorMixin, BaseEstimator):
    """An expert's order: an ``ORDER BY`` clause over the row's columns, evaluated by DuckDB in the sandbox.

    One key scores a row by its value (negated for ``ASC``); several keys combine
    lexicographically through their ranks within the rows scored together (a list). Missing
    values sort last.

    Parameters
    ----------
    order_by : str
        E.g. ``"rating_count DESC"`` or ``"stars DESC, price ASC"``.
    columns : list of str
        The columns the clause may read.
    """

    def __init__(self, order_by: str = "", columns: list | None = None):
        self.order_by = order_by
        self.columns = columns

    def fit(self, X, y=None):
        from .rules import Rule

        cols = list(self.columns) if self.columns is not None else list(_frame(X).columns)
        self.keys_ = [(Rule(expr, cols, kind="numeric", where=f"rule '{self.order_by}'"), desc)
                      for expr, desc in parse_order_by(self.order_by)]
        self.used_columns_ = sorted({c for r, _ in self.keys_ for c in r.used_columns})
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "keys_")
        X = _frame(X)
        vals = []
        for rule, desc in self.keys_:
            v = rule.evaluate(X)
            v = v if desc else -v
            vals.append(np.where(np.isnan(v), -np.inf, v))
        if len(vals) == 1:
            v = vals[0]
            finite = v[np.isfinite(v)]
            return np.where(np.isfinite(v), v, (finite.min() - 1.0) if len(finite) else 0.0)
        score = np.zeros(len(X))
        for v in vals:  # lexicographic: each key's dense rank, scaled below the previous key's step
            rank = pd.Series(v).rank(method="dense").to_numpy()
            score = score * (len(X) + 1) + rank
        return score


class ALSRanker(RegressorMixin, BaseEstimator):
    """Collaborative filtering from implicit feedback: ``implicit``'s ALS on the (group, item) matrix.

    Confidence of a training row is ``1 + alpha * gain`` where it is relevant (its gain from
    the case), nothing otherwise. The score is the dot product of the group's and the item's
    factors; a group or item never seen in training, or never relevant there, scores by its item's
    popularity, below every known score.

    Parameters
    ----------
    group, item : str
        The group (user) and item columns.
    factors, iterations, regularization, alpha : ALS parameters (``implicit``'s defaults but
        fewer factors: the lists here are short).
    seed : int
    """

    def __init__(self, group: str = "group", item: str = "item", factors: int = 32, iterations: int = 15,
                 regularization: float = 0.05, alpha: float = 10.0, seed: int = 0):
        self.group = group
        self.item = item
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.seed = seed

    def fit(self, X, y):
        import scipy.sparse as sp
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        X = _frame(X)
        g, i = _keys(X[self.group].to_numpy()), _keys(X[self.item].to_numpy())
        gain = np.asarray(y, dtype=float)
        rel = gain > 0
        gu, gi = pd.unique(g), pd.unique(i)
        self.groups_ = {k: n for n, k in enumerate(gu)}
        self.items_ = {k: n for n, k in enumerate(gi)}
        rows = np.array([self.groups_[k] for k in g[rel]], dtype=np.int32)
        cols = np.array([self.items_[k] for k in i[rel]], dtype=np.int32)
        conf = (1.0 + self.alpha * gain[rel]).astype(np.float32)
        matrix = sp.csr_matrix((conf, (rows, cols)), shape=(len(gu), len(gi)), dtype=np.float32)
        model = AlternatingLeastSquares(factors=int(self.factors), iterations=int(self.iterations),
                                        regularization=float(self.regularization), random_state=int(self.seed),
                                        calculate_training_loss=False)
        with threadpool_limits(limits=1):
            model.fit(matrix, show_progress=False)
        self.group_factors_ = np.asarray(model.user_factors, dtype="float64")
        self.item_factors_ = np.asarray(model.item_factors, dtype="float64")
        counts = np.asarray(matrix.getnnz(axis=0), dtype=float)
        self.popularity_ = counts / max(float(counts.max()), 1.0)
        # a group (item) with no relevant training row has no interaction to learn from: ALS leaves its factors at
        # zero, and every item scored 0 for it, in the order sent (gapminder's 1952, a year with no life expectancy
        # past the relevance bar, was served Afghanistan, Albania, Algeria ...). It is cold, as one never seen.
        self.group_seen_ = np.asarray(matrix.getnnz(axis=1) > 0)
        self.item_seen_ = counts > 0
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "item_factors_")
        X = _frame(X)
        g = np.array([self.groups_.get(k, -1) for k in _keys(X[self.group].to_numpy())])
        i = np.array([self.items_.get(k, -1) for k in _keys(X[self.item].to_numpy())])
        known = (g >= 0) & (i >= 0)
        if hasattr(self, "group_seen_"):     # (models fitted before it knew) treat every group and item as seen
            known &= self.group_seen_[np.maximum(g, 0)] & self.item_seen_[np.maximum(i, 0)]
        out = np.empty(len(X))
        out[known] = np.einsum("ij,ij->i", self.group_factors_[g[known]], self.item_factors_[i[known]])
        floor = (out[known].min() if known.any() else 0.0) - 2.0
        pop = np.where(i >= 0, self.popularity_[np.maximum(i, 0)], 0.0)
        out[~known] = floor + pop[~known]  # cold start: popularity order, below every known score
        return out


# --------------------------------------------------------------------------- learning to rank
def label_levels(y: np.ndarray) -> np.ndarray:
    """The distinct gains, ascending: LightGBM's integer labels index them (its ``label_gain``)."""
    return np.unique(np.asarray(y, dtype=float))


def make_ranker(family: str, groups, params: dict | None, seed: int, k: int, levels: np.ndarray):
    """Preprocessing + LambdaRank (``lightgbm``) or ``rank:ndcg`` (``xgboost``), as one unfitted Pipeline."""
    from sklearn.pipeline import Pipeline

    from . import candidates as C

    p = {**C.default_params(family), **(params or {})}
    n_num, n_cat = groups.n_numeric, len(groups.categorical)
    if family == "lightgbm":
        import lightgbm as lgb

        extra = {"cat_feature": list(range(n_num, n_num + n_cat))} if n_cat else {}
        model = lgb.LGBMRanker(objective="lambdarank", n_estimators=int(p["n_estimators"]),
                               learning_rate=p["learning_rate"], num_leaves=int(p["num_leaves"]),
                               min_child_samples=int(p["min_child_samples"]), subsample=p["subsample"],
                               subsample_freq=1 if p["subsample"] < 1 else 0, colsample_bytree=p["colsample_bytree"],
                               reg_lambda=p["reg_lambda"], extra_trees=bool(p.get("extra_trees", False)),
                               label_gain=[float(v) for v in levels], n_jobs=1, random_state=seed,
                               verbose=-1, **extra)
    elif family == "xgboost":
        import xgboost as xgb

        model = xgb.XGBRanker(objective="rank:ndcg", ndcg_exp_gain=False, n_estimators=int(p["n_estimators"]),
                              learning_rate=p["learning_rate"], max_depth=int(p["max_depth"]),
                              min_child_weight=p["min_child_weight"], subsample=p["subsample"],
                              colsample_bytree=p["colsample_bytree"], reg_lambda=p["reg_lambda"],
                              tree_method="hist", eval_metric=f"ndcg@{k}", n_jobs=1, random_state=seed,
                              enable_categorical=bool(n_cat), feature_types=["q"] * n_num + ["c"] * n_cat,
                              max_cat_to_onehot=4, verbosity=0)
    else:
        raise SpecError(f"candidates: '{family}' cannot rank", "use lightgbm or xgboost")
    return Pipeline([("prep", C.make_preprocessor(groups, "ordinal")), ("model", model)])


def _labels(model, y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    if type(model).__name__ == "LGBMRanker":
        return np.clip(np.searchsorted(levels, np.asarray(y, dtype=float) - 1e-9), 0, len(levels) - 1)
    return np.asarray(y, dtype=float)


def _sizes(codes: np.ndarray) -> np.ndarray:
    """Group sizes of rows already sorted by group code."""
    if len(codes) == 0:
        return np.array([], dtype=int)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return np.diff(np.r_[starts, len(codes)])


def fit_ranker(pipe, X: pd.DataFrame, y: np.ndarray, groups, levels: np.ndarray, deadline: float | None = None,
               early_stopping: bool = False, seed: int = 0, n_trees: int | None = None, k: int = 10) -> dict:
    """Fit a pipeline from :func:`make_ranker` on rows of many lists, stopping at ``deadline``.

    Rows are sorted by group (both libraries read a list as consecutive rows). With
    ``early_stopping`` the model grows up to ``TREES_CAP`` rounds on 90% of the groups and
    stops when NDCG@k of the other 10% has not improved for ``patience`` rounds (the
    libraries' own early stopping); ``n_trees`` fixes the rounds instead (a refit).

    Returns ``{"truncated", "n_trees", "best_iter", "fit_rows", "fit_s"}`` like
    :func:`mlcase.candidates.fit_with_deadline`.
    """
    from . import candidates as C

    with C.single_thread():
        return _fit_ranker(pipe, X, y, groups, levels, deadline, early_stopping, seed, n_trees, k)


def _fit_ranker(pipe, X, y, groups, levels, deadline, early_stopping, seed, n_trees, k):
    from . import candidates as C
    from .tasks.ranking import Groups

    t0 = time.monotonic()
    G = Groups(groups)
    order = G.order
    X, y, codes = X.iloc[order], np.asarray(y, dtype=float)[order], G.codes[order]
    prep, model = pipe[:-1], pipe[-1]
    Xt = prep.fit_transform(X, y)
    lab = _labels(model, y, levels)
    es = bool(early_stopping and len(G) >= 10)
    fit = np.ones(len(y), dtype=bool)
    if es:
        held_groups = np.random.default_rng(seed + 7919).permutation(len(G))[:max(1, int(round(0.1 * len(G))))]
        fit = ~np.isin(codes, held_groups)
        es = bool(fit.sum()) and not fit.all()
    key = "n_estimators"
    if es:
        model.set_params(**{key: C.TREES_CAP})
        rounds = C.patience(model.get_params()["learning_rate"])
    elif n_trees is not None:
        model.set_params(**{key: int(n_trees)})
    Xf, yf, cf = Xt[fit], lab[fit], codes[fit]
    truncated, best = False, None
    if type(model).__name__ == "LGBMRanker":
        import lightgbm as lgb

        cb = C._LightGBMDeadline(deadline) if deadline is not None else None
        kw = {}
        callbacks = [cb] if cb else []
        if es:
            kw = {"eval_X": (Xt[~fit],), "eval_y": (lab[~fit],), "eval_group": [_sizes(codes[~fit])],
                  "eval_at": [k]}
            callbacks.insert(0, lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
        model.fit(Xf, yf, group=_sizes(cf), callbacks=callbacks, **kw)
        truncated = bool(cb and cb.stopped)
        grown = int(model.booster_.current_iteration())
        best = int(model.best_iteration_) if es and getattr(model, "best_iteration_", 0) > 0 else grown
    else:
        cb = C._xgboost_deadline(deadline) if deadline is not None else None
        model.set_params(callbacks=[cb] if cb else None, early_stopping_rounds=rounds if es else None)
        try:
            model.fit(Xf, yf, qid=cf, eval_set=[(Xt[~fit], lab[~fit])] if es else None,
                      eval_qid=[codes[~fit]] if es else None, verbose=False)
        finally:
            model.set_params(callbacks=None, early_stopping_rounds=None)
        truncated = bool(cb and cb.stopped)
        grown = int(model.get_booster().num_boosted_rounds())
        best = C.xgb_best_rounds(model, es, grown)
    if truncated or es:
        model.set_params(**{key: max(1, grown)})
    return {"truncated": truncated, "n_trees": grown, "best_iter": best, "fit_rows": int(len(yf)),
            "fit_s": time.monotonic() - t0}
