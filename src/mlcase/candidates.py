"""Model families for the bake-off: defaults, zero-shot portfolios, Optuna search spaces, fitting on a clock.

Each family builds a scikit-learn :class:`~sklearn.pipeline.Pipeline`: a
``ColumnTransformer`` that is fitted inside each cross-validation fold (so no
statistic of a validation row leaks into training), then the model.

=============  ===========================================  ===========================
family         preprocessing                                categorical columns
=============  ===========================================  ===========================
logistic       median impute + indicator, scale; one-hot    one-hot (rare levels pooled)
ridge          same as logistic (regression)                one-hot
hist_gbm       ordinal codes                                native (``categorical_features``)
lightgbm       ordinal codes                                native (``cat_feature``)
xgboost        ordinal codes                                native (``feature_types="c"``)
catboost       numbers as they are; categories as text      native (``cat_features``: ordered target statistics)
random_forest  ordinal codes                                ordinal codes
=============  ===========================================  ===========================

Each family's first configurations are its library's defaults and a small zero-shot
portfolio (:data:`PORTFOLIO`, :func:`portfolio`) taken from AutoGluon's published portfolio;
then Optuna searches :func:`search_space`. Boosted families grow up to :data:`TREES_CAP`
rounds and stop early on an inner 10% split (:func:`fit_with_deadline` with
``early_stopping=True``), so the tree count is not searched.

Every model runs single-threaded (``n_jobs=1``). :func:`fit_with_deadline` fits a
pipeline so that it stops at a wall-clock deadline: LightGBM and XGBoost through
a training callback that checks the clock, HistGradientBoosting and random
forests by growing with ``warm_start`` in chunks and checking the clock between
them. A model cut short keeps the trees it has, and its size parameter is set to
that count, so a refit with :func:`effective_params` rebuilds the same model.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .times import as_datetimes

# simpler first: the tie rule prefers a lower rank when scores are within CV noise
COMPLEXITY = {"logistic": 0, "ridge": 0, "hist_gbm": 1, "lightgbm": 2, "xgboost": 2, "catboost": 2,
              "random_forest": 3}
CLASSIFICATION = ("logistic", "hist_gbm", "lightgbm", "xgboost", "catboost", "random_forest")
REGRESSION = ("ridge", "hist_gbm", "lightgbm", "xgboost", "catboost", "random_forest")
# the parameter that counts trees / boosting rounds, per family
TREES_CAP = 10_000      # boosting rounds at most; early stopping picks the count (AutoGluon's cap too)
ES_FRACTION = 0.1       # rows held out of a boosted fit for its early stopping
BOOSTED = ("hist_gbm", "lightgbm", "xgboost", "catboost")
TREES_PARAM = {"hist_gbm": "max_iter", "lightgbm": "n_estimators", "xgboost": "n_estimators",
               "catboost": "iterations", "random_forest": "n_estimators"}
# A forest stops growing at this size in memory. Fully grown trees have about one leaf per few
# rows, so their size grows with the rows: on 80,000 noisy rows (20 features) a tree of the
# defaults took 1.35 MB, and the 300 of the defaults would take 400 MB per fitted fold; refitted on
# the 1M-row test table's rows, gigabytes, and a bag of forests several times that. AutoGluon caps
# its forests' tree count by their measured memory too (RFModel, from the size of the first trees).
FOREST_BYTES = 256 * 2**20
# The linear families try splines (five knots: seven basis columns per number) only while that
# basis for every training row fits in this much memory. Measured on the 1M-row test table (18
# numbers): a spline logistic fit peaked at 2.5 GB of RSS against 1.0 GB plain, in 17 s against 6 s.
SPLINE_KNOTS, SPLINE_DEGREE = 5, 3
SPLINE_BYTES = 512 * 2**20


def curves_fit(rows: int, numeric: int) -> bool:
    """Whether the spline basis of ``numeric`` columns over ``rows`` rows fits :data:`SPLINE_BYTES`."""
    per_number = SPLINE_KNOTS + SPLINE_DEGREE - 1        # SplineTransformer's columns per input column
    return rows * numeric * per_number * 8 <= SPLINE_BYTES


# --------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class ColumnGroups:
    """Feature columns by how they are preprocessed."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    datetime: tuple[str, ...]
    dropped: tuple[str, ...] = ()

    @property
    def n_numeric(self) -> int:
        return len(self.numeric) + len(self.datetime)

    def to_dict(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "datetime": list(self.datetime), "dropped": list(self.dropped)}


def column_groups(X: pd.DataFrame, schema: dict | None = None) -> ColumnGroups:
    """Split feature columns into numeric, categorical and datetime ones.

    Numbers and booleans are numeric; dates become numbers (days since 1970);
    everything else is categorical. Columns the stored schema marks as ``id``, and
    columns with no value at all, are dropped.
    """
    kinds = {c["name"]: c["kind"] for c in (schema or {}).get("columns", [])}
    num, cat, dt, drop = [], [], [], []
    for col in X.columns:
        s = X[col]
        if kinds.get(col) == "id" or s.isna().all():
            drop.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            dt.append(col)
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            num.append(col)
        else:
            cat.append(col)
    return ColumnGroups(tuple(num), tuple(cat), tuple(dt), tuple(drop))


def datetime_to_days(X) -> np.ndarray:
    """Dates as float days since 1970-01-01 (NaT stays missing)."""
    frame = pd.DataFrame(X)
    out = np.empty(frame.shape, dtype="float64")
    for i, col in enumerate(frame.columns):
        s = as_datetimes(frame[col])
        out[:, i] = (s - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return out


def _to_text(X) -> np.ndarray:
    """Categorical values as strings (missing stays missing) so mixed types encode alike."""
    frame = pd.DataFrame(X)
    out = frame.astype(str).to_numpy(dtype=object, copy=True)
    out[frame.isna().to_numpy()] = np.nan
    return out


def make_preprocessor(groups: ColumnGroups, encoding: str, splines: int = 0):
    """The ``ColumnTransformer``: ``encoding="onehot"`` (linear models), ``"ordinal"`` (trees) or ``"text"``
    (CatBoost: categories as text, so an object array).

    With ``splines`` (one-hot only), each scaled numeric column is expanded into a cubic B-spline
    basis with that many knots at its quantiles, held constant beyond the training range: the
    linear model becomes an additive model (a GAM) with a smooth curve per number.

    Output columns: numeric, then datetime, then categorical.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        SplineTransformer,
        StandardScaler,
    )

    def missing_level():  # a missing category is a level of its own
        return SimpleImputer(strategy="constant", fill_value="(missing)", keep_empty_features=True)

    def impute_scale():
        return [("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler())]

    days = FunctionTransformer(datetime_to_days, feature_names_out="one-to-one")
    parts = []
    if encoding == "onehot":
        if groups.numeric:
            curve = [("spline", SplineTransformer(n_knots=int(splines), degree=SPLINE_DEGREE,
                                                  knots="quantile", extrapolation="constant"))] if splines else []
            parts.append(("num", Pipeline(impute_scale() + curve), list(groups.numeric)))
        if groups.datetime:
            parts.append(("date", Pipeline([("days", days), *impute_scale()]), list(groups.datetime)))
        if groups.categorical:
            parts.append(("cat", Pipeline([
                ("text", FunctionTransformer(_to_text, feature_names_out="one-to-one")),
                ("impute", missing_level()),
                ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5,
                                         max_categories=50, sparse_output=False)),
            ]), list(groups.categorical)))
    elif encoding in ("ordinal", "text"):  # trees: numbers as they are, dates as days
        if groups.numeric:
            parts.append(("num", "passthrough", list(groups.numeric)))
        if groups.datetime:
            parts.append(("date", days, list(groups.datetime)))
        if groups.categorical:
            codes = (("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                                encoded_missing_value=np.nan, min_frequency=5, max_categories=200,
                                                dtype=np.float64)) if encoding == "ordinal"
                     # CatBoost keeps its own statistics of each category: categories stay text
                     else ("impute", missing_level()))
            parts.append(("cat", Pipeline([
                ("text", FunctionTransformer(_to_text, feature_names_out="one-to-one")), codes,
            ]), list(groups.categorical)))
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown encoding {encoding!r}")
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)


# --------------------------------------------------------------------------- families
def family_names(task: str) -> tuple[str, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def resolve_family(name: str, task: str) -> str:
    """``logistic`` and ``ridge`` are the linear family of each task; map one to the other."""
    if task == "regression" and name == "logistic":
        return "ridge"
    if task != "regression" and name == "ridge":
        return "logistic"
    return name


def default_params(family: str) -> dict[str, Any]:
    """Each library's own defaults: the first trial of each family, and the linear baseline.

    The tree count is what a plain ``fit`` grows; in the bake-off boosting grows up to
    :data:`TREES_CAP` rounds and early stopping on an inner split picks the count.
    """
    return {
        "logistic": {"C": 1.0, "splines": 0},
        "ridge": {"alpha": 1.0, "splines": 0},
        # scikit-learn's defaults
        "hist_gbm": {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                     "l2_regularization": 0.0},
        # AutoGluon's LightGBM default ("GBM"): learning rate 0.05, LightGBM's own defaults otherwise
        "lightgbm": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                     "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 0.0, "extra_trees": False},
        # AutoGluon's XGBoost default ("XGB"): learning rate 0.1, XGBoost's own defaults otherwise
        "xgboost": {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 6, "min_child_weight": 1.0,
                    "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0},
        # AutoGluon's CatBoost default ("CAT"): learning rate 0.05, CatBoost's own defaults otherwise
        "catboost": {"iterations": 1000, "learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0},
        # AutoGluon's random forest default: 300 fully grown trees (no depth or leaf limit: 0), sqrt features
        "random_forest": {"n_estimators": 300, "max_depth": 0, "min_samples_leaf": 1, "max_features": "sqrt",
                          "max_leaf_nodes": 0},
    }[family]


# Zero-shot portfolios: known-good configurations tried right after each family's defaults,
# before any search. Boosting portfolios come from AutoGluon's zero-shot portfolio learned on the
# TabRepo benchmark (autogluon/tabular/configs/zeroshot/zeroshot_portfolio_2023.py: the GBM
# "Large", "_r131" and "_r96" entries, XGB "_r33" and "_r89", CAT "_r177" and "_r137", RF "_r195"
# and "_r127"); the histogram-boosting entries carry the same tree shapes over to scikit-learn's
# parameters (the same leaf-wise histogram algorithm). The linear ones bracket the default penalty
# by 10x and try the additive-model form first: five-knot quantile splines per number (pyGAM's and
# InterpretML's move, kept linear in its inputs so the linear explainer stays exact). Measured on
# the benchmark's heldout tables, ten 80/20 splits, LogisticRegressionCV: spline vs plain test log
# loss hmda 0.268 vs 0.276, credit_data 0.415 vs 0.429, attrition 0.303 vs 0.331, mlc_churn 0.288
# vs 0.324 (3 or 8 knots were worse; linear vs constant extrapolation tied).
PORTFOLIO: dict[str, list[dict[str, Any]]] = {
    "logistic": [{"splines": SPLINE_KNOTS}, {"C": 0.1}, {"C": 10.0}, {"C": 0.1, "splines": SPLINE_KNOTS}],
    "ridge": [{"splines": SPLINE_KNOTS}, {"alpha": 10.0}, {"alpha": 0.1}, {"alpha": 10.0, "splines": SPLINE_KNOTS}],
    "hist_gbm": [
        {"learning_rate": 0.03, "max_leaf_nodes": 128, "min_samples_leaf": 3, "l2_regularization": 0.0},
        {"learning_rate": 0.012, "max_leaf_nodes": 53, "min_samples_leaf": 14, "l2_regularization": 0.0},
    ],
    "lightgbm": [
        {"learning_rate": 0.03, "num_leaves": 128, "colsample_bytree": 0.9, "min_child_samples": 3},
        {"learning_rate": 0.0121, "num_leaves": 53, "colsample_bytree": 0.702, "min_child_samples": 14},
        {"learning_rate": 0.0152, "num_leaves": 16, "colsample_bytree": 0.564, "min_child_samples": 48,
         "extra_trees": True},
    ],
    "xgboost": [
        {"learning_rate": 0.0181, "max_depth": 10, "min_child_weight": 0.603, "colsample_bytree": 0.692},
        {"learning_rate": 0.0878, "max_depth": 5, "min_child_weight": 0.629, "colsample_bytree": 0.663},
    ],
    "catboost": [
        {"learning_rate": 0.0686, "depth": 6, "l2_leaf_reg": 2.154, "max_ctr_complexity": 4, "one_hot_max_size": 10},
        {"learning_rate": 0.0494, "depth": 4, "l2_leaf_reg": 4.559, "max_ctr_complexity": 3, "one_hot_max_size": 3},
    ],
    "random_forest": [
        {"max_features": 0.75, "min_samples_leaf": 1},
        {"max_features": 1.0, "min_samples_leaf": 5},
    ],
}
# Entries that differ by task, tried after the shared ones: FLAML's zero-shot forests, held to a
# leaf count (flaml/default/rf/binary.json, its first two entries, for classification, where each
# tree sees a small share of the columns; regression.json, its first and third, where most)
TASK_PORTFOLIO: dict[str, dict[str, list[dict[str, Any]]]] = {
    "random_forest": {
        "classification": [{"max_features": 0.245, "max_leaf_nodes": 1156},
                           {"max_features": 0.1, "max_leaf_nodes": 102}],
        "regression": [{"max_features": 0.695, "max_leaf_nodes": 8937},
                       {"max_features": 0.668, "max_leaf_nodes": 591}],
    },
}


def portfolio(family: str, task: str | None = None, curves: bool = True) -> list[dict[str, Any]]:
    """The family's defaults, then its zero-shot portfolio for ``task`` (each a full parameter dict).

    ``curves=False`` (the spline basis would not fit :data:`SPLINE_BYTES`) leaves out the spline entries.
    """
    base = default_params(family)
    kind = "regression" if task == "regression" else "classification"
    entries = PORTFOLIO.get(family, []) + TASK_PORTFOLIO.get(family, {}).get(kind, [])
    return [dict(base)] + [{**base, **p} for p in entries if curves or not p.get("splines")]


def search_space(family: str, curves: bool = True) -> dict:
    """The family's Optuna search space: parameter name -> :mod:`optuna.distributions` object.

    Boosting has no tree count here: early stopping chooses it. ``curves=False`` leaves the linear
    families without splines.
    """
    space = _search_space(family)
    if not curves:
        space.pop("splines", None)
    return space


def _search_space(family: str) -> dict:
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    return {
        "logistic": {"C": Float(1e-3, 100.0, log=True), "splines": Cat([0, SPLINE_KNOTS])},
        "ridge": {"alpha": Float(1e-3, 1e3, log=True), "splines": Cat([0, SPLINE_KNOTS])},
        "hist_gbm": {"learning_rate": Float(0.01, 0.3, log=True), "max_leaf_nodes": Int(8, 128, log=True),
                     "min_samples_leaf": Int(2, 150, log=True), "l2_regularization": Float(1e-6, 10.0, log=True)},
        "lightgbm": {"learning_rate": Float(0.01, 0.3, log=True), "num_leaves": Int(4, 128, log=True),
                     "min_child_samples": Int(2, 150, log=True), "subsample": Float(0.5, 1.0),
                     "colsample_bytree": Float(0.4, 1.0), "reg_lambda": Float(1e-6, 10.0, log=True),
                     "extra_trees": Cat([False, True])},
        "xgboost": {"learning_rate": Float(0.01, 0.3, log=True), "max_depth": Int(2, 10),
                    "min_child_weight": Float(0.5, 20.0, log=True), "subsample": Float(0.5, 1.0),
                    "colsample_bytree": Float(0.4, 1.0), "reg_lambda": Float(1e-3, 10.0, log=True)},
        # AutoGluon's CatBoost search space, the depth widened by one each way
        "catboost": {"learning_rate": Float(0.01, 0.2, log=True), "depth": Int(4, 8),
                     "l2_leaf_reg": Float(1.0, 10.0, log=True)},
        # the leaf count and the column share searched as FLAML does (4 to 32,768 leaves, log scale)
        "random_forest": {"max_depth": Cat([0, 6, 10, 16]), "min_samples_leaf": Int(1, 50, log=True),
                          "max_features": Cat(["sqrt", 0.1, 0.25, 0.5, 0.75, 1.0]),
                          "max_leaf_nodes": Int(4, 32768, log=True)},
    }[family]


def suggest_params(family: str, trial, curves: bool = True) -> dict[str, Any]:
    """A full parameter dict: the defaults with the search space's values drawn by ``trial`` (Optuna)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    out = dict(default_params(family))
    for name, d in search_space(family, curves).items():
        if isinstance(d, CategoricalDistribution):
            out[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            out[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def in_space(family: str, params: dict, curves: bool = True) -> dict:
    """The entries of ``params`` that lie inside the family's search space (to tell the sampler about them)."""
    from optuna.distributions import CategoricalDistribution

    out = {}
    for name, d in search_space(family, curves).items():
        if name not in params:
            continue
        v = params[name]
        if isinstance(d, CategoricalDistribution):
            if v in d.choices:
                out[name] = v
        elif d.low <= v <= d.high:
            out[name] = v
    return out


def make_model(family: str, task: str, groups: ColumnGroups, params: dict | None = None, seed: int = 0):
    """The final estimator of a family with ``params`` (defaults where missing)."""
    p = {**default_params(family), **(params or {})}
    classify = task != "regression"
    n_num, n_cat = groups.n_numeric, len(groups.categorical)
    if family == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=p["C"], max_iter=1000, random_state=seed)
    if family == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=p["alpha"], random_state=seed)
    if family == "hist_gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        empty_columns_bin()
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        mask = [False] * n_num + [True] * n_cat
        return cls(learning_rate=p["learning_rate"], max_iter=int(p["max_iter"]),
                   max_leaf_nodes=int(p["max_leaf_nodes"]), min_samples_leaf=int(p["min_samples_leaf"]),
                   l2_regularization=p["l2_regularization"], categorical_features=mask if n_cat else None,
                   early_stopping=False, random_state=seed)
    if family == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if classify else lgb.LGBMRegressor
        extra = {"cat_feature": list(range(n_num, n_num + n_cat))} if n_cat else {}
        return cls(n_estimators=int(p["n_estimators"]), learning_rate=p["learning_rate"],
                   num_leaves=int(p["num_leaves"]), min_child_samples=int(p["min_child_samples"]),
                   subsample=p["subsample"], subsample_freq=1 if p["subsample"] < 1 else 0,
                   colsample_bytree=p["colsample_bytree"], reg_lambda=p["reg_lambda"],
                   extra_trees=bool(p.get("extra_trees", False)), n_jobs=1, random_state=seed, verbose=-1, **extra)
    if family == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if classify else xgb.XGBRegressor
        return cls(n_estimators=int(p["n_estimators"]), learning_rate=p["learning_rate"],
                   max_depth=int(p["max_depth"]), min_child_weight=p["min_child_weight"],
                   subsample=p["subsample"], colsample_bytree=p["colsample_bytree"],
                   reg_lambda=p["reg_lambda"], tree_method="hist", n_jobs=1, random_state=seed,
                   enable_categorical=bool(n_cat), feature_types=["q"] * n_num + ["c"] * n_cat,
                   max_cat_to_onehot=4, verbosity=0)
    if family == "catboost":
        import catboost

        cls = catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor
        extra = {k: p[k] for k in ("max_ctr_complexity", "one_hot_max_size") if p.get(k) is not None}
        return cls(iterations=int(p["iterations"]), learning_rate=p["learning_rate"], depth=int(p["depth"]),
                   l2_leaf_reg=p["l2_leaf_reg"], cat_features=list(range(n_num, n_num + n_cat)) or None,
                   thread_count=1, random_seed=seed, verbose=0, allow_writing_files=False, **extra)
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(n_estimators=int(p["n_estimators"]), max_depth=int(p["max_depth"]) or None,
                   min_samples_leaf=int(p["min_samples_leaf"]), max_features=p["max_features"],
                   max_leaf_nodes=int(p.get("max_leaf_nodes") or 0) or None, n_jobs=1, random_state=seed)
    raise ValueError(f"unknown model family {family!r}")  # pragma: no cover


def empty_columns_bin() -> None:
    """Let scikit-learn's HistGradientBoosting* fit a column that has no value in the rows it is given.

    scikit-learn 1.9 takes a column's bin thresholds as the midpoints of its distinct values with
    ``sliding_window_view(values, 2)``, which raises "window shape cannot be larger than input
    array shape" when the column holds no value at all (one value gives no threshold, and works).
    A column empty in the fit rows is common in time-ordered folds: stevedata::gss_abortion split
    by year never asked ``hispanic`` before 2000, so the early folds hold no value of it and both
    of hist_gbm's trials failed. The column gets no threshold, as a one-valued column does (every
    row in one bin, never split on). Patched once, in place; a no-op where the binning works.
    """
    import inspect

    from sklearn.ensemble._hist_gradient_boosting import binning

    found = getattr(binning, "_find_binning_thresholds", None)
    if found is None or getattr(found, "empty_safe", False):
        return
    if list(inspect.signature(found).parameters) != ["col_data", "max_bins", "sample_weight"]:
        return  # another scikit-learn: its binning is left as it is

    def thresholds(col_data, max_bins, sample_weight=None):
        has = ~np.isnan(col_data)
        if sample_weight is not None:
            has &= np.asarray(sample_weight) != 0
        if not has.any():
            return np.asarray([], dtype=binning.X_DTYPE)
        return found(col_data, max_bins, sample_weight)

    thresholds.empty_safe = True
    binning._find_binning_thresholds = thresholds


def build_pipeline(family: str, task: str, groups: ColumnGroups, params: dict | None = None, seed: int = 0):
    """Preprocessing + model as one unfitted :class:`~sklearn.pipeline.Pipeline`.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "x", "y"]})
    >>> pipe = build_pipeline("logistic", "binary", column_groups(X))
    >>> pipe.fit(X, [0, 1, 0, 1]).predict_proba(X).shape
    (4, 2)
    """
    from sklearn.pipeline import Pipeline

    encoding = "onehot" if family in ("logistic", "ridge") else "text" if family == "catboost" else "ordinal"
    splines = int((params or {}).get("splines") or 0) if encoding == "onehot" else 0
    return Pipeline([("prep", make_preprocessor(groups, encoding, splines)),
                     ("model", make_model(family, task, groups, params, seed))])


# --------------------------------------------------------------------------- fitting on a clock
class _Deadline:
    """A training callback's clock: ``due()`` once ``time.monotonic()`` passes ``deadline`` (then ``stopped``)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stopped = False

    def due(self) -> bool:
        self.stopped = self.stopped or time.monotonic() >= self.deadline
        return self.stopped


class _LightGBMDeadline(_Deadline):
    """LightGBM callback: stop boosting once the clock passes the deadline."""

    order = 5

    def __call__(self, env) -> None:
        import lightgbm as lgb

        if self.due():
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])


class _CatBoostDeadline(_Deadline):
    """CatBoost callback (``after_iteration`` returns False to stop): stop once the clock passes the deadline."""

    def after_iteration(self, info) -> bool:
        return not self.due()


def _xgboost_deadline(deadline: float):
    import xgboost as xgb

    class XGBoostDeadline(_Deadline, xgb.callback.TrainingCallback):
        """Stop boosting once the clock passes the deadline."""

        def __init__(self):
            _Deadline.__init__(self, deadline)

        def after_iteration(self, model, epoch, evals_log) -> bool:
            return self.due()

    return XGBoostDeadline()


def xgb_best_rounds(model, early_stopping: bool, grown: int) -> int:
    """Rounds an XGBoost fit kept: early stopping's best round + 1, else every round grown.

    XGBoost defines ``best_iteration`` only once early stopping has scored a round: a deadline
    that stops the fit after its first round (a refit given no time left) leaves it undefined.
    """
    if not early_stopping:
        return grown
    try:
        return int(model.best_iteration) + 1
    except AttributeError:
        return grown


def n_trees(pipe) -> int | None:
    """Trees / boosting rounds in a fitted pipeline's model (None for linear models)."""
    model = pipe[-1] if hasattr(pipe, "steps") else pipe
    name = type(model).__name__
    if name.startswith("HistGradientBoosting"):
        return int(model.n_iter_)
    if name.startswith("LGBM"):
        return int(model.booster_.current_iteration())
    if name.startswith("XGB"):
        return int(model.get_booster().num_boosted_rounds())
    if name.startswith("CatBoost"):
        return int(model.tree_count_)
    if name.startswith("RandomForest"):
        return len(model.estimators_)
    return None


def forest_bytes(model) -> int:
    """Memory of a fitted forest's trees: their node arrays and value arrays."""
    from sklearn.tree._tree import NODE_DTYPE

    return int(sum(e.tree_.node_count * NODE_DTYPE.itemsize + e.tree_.value.nbytes for e in model.estimators_))


def _grow(model, param: str, target: int, X, y, deadline: float | None, first_chunk: int, fit_kw: dict | None = None,
          max_bytes: float | None = None) -> bool:
    """Fit ``model`` with ``warm_start`` up to ``target`` of ``param``, checking the clock between chunks.

    With ``max_bytes`` (forests), the growth also stops where the trees would pass that size,
    judged from the mean size of the trees grown so far; the size parameter is then set to the
    trees grown, as for a cut (this is not reported as a cut: the clock did not stop it).
    Returns True when the deadline cut the growth short.
    """
    done, chunk, truncated = 0, max(1, min(first_chunk, target)), False
    model.set_params(warm_start=True)
    try:
        while done < target:
            upto = min(target, done + chunk)
            t = time.monotonic()
            model.set_params(**{param: upto})
            model.fit(X, y, **(fit_kw or {}))
            took = time.monotonic() - t
            fitted = int(model.n_iter_) if param == "max_iter" else len(model.estimators_)
            if fitted < upto:  # early stopping ended the growth
                break
            per_unit = took / max(upto - done, 1)
            done = upto
            if max_bytes is not None:
                target = max(done, min(target, int(max_bytes // max(forest_bytes(model) / done, 1))))
            if deadline is None:
                chunk = target - done
                continue
            left = deadline - time.monotonic()
            if done < target and left <= per_unit:
                truncated = True
                break
            chunk = max(1, int(0.5 * left / max(per_unit, 1e-6)))
    finally:
        model.set_params(warm_start=False)
    if not truncated:
        model.set_params(**{param: target})
    else:
        model.set_params(**{param: done})
    return truncated


def fit_with_deadline(pipe, X: pd.DataFrame, y: np.ndarray, deadline: float | None = None,
                      early_stopping: bool = False, seed: int = 0) -> dict:
    """Fit ``pipe`` (from :func:`build_pipeline`) so that training stops at ``deadline``.

    With ``early_stopping``, a boosted model grows up to :data:`TREES_CAP` rounds on 90%
    of the rows and stops when its loss on the other 10% (:data:`ES_FRACTION`, stratified
    for classification) has not improved for :func:`patience` rounds; the library's own
    early stopping does it (LightGBM's ``early_stopping`` callback, XGBoost's
    ``early_stopping_rounds``, scikit-learn's ``n_iter_no_change`` with ``X_val``).

    Returns ``{"truncated", "n_trees", "best_iter", "fit_rows", "fit_s"}``: ``n_trees`` as
    grown, ``best_iter`` the rounds early stopping kept (a refit grows that many), ``fit_rows``
    the rows the trees were fitted on. A truncated model keeps what it learned so far and its
    tree count parameter is set to the trees it has.
    """
    with single_thread():
        return _fit_with_deadline(pipe, X, y, deadline, early_stopping, seed)


def patience(learning_rate: float) -> int:
    """Rounds without improvement before early stopping: 2.5 / learning rate, within [20, 300].

    A smaller step needs more rounds to show an improvement (0.1 -> 25, 0.05 -> 50, 0.01 -> 250).
    """
    return int(np.clip(round(2.5 / max(float(learning_rate), 1e-6)), 20, 300))


def _es_split(y: np.ndarray, seed: int, classify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fit rows and of the early-stopping rows (``ES_FRACTION``, per class when classifying)."""
    rng = np.random.default_rng(seed + 7919)
    n = len(y)
    if not classify:
        perm = rng.permutation(n)
        k = max(1, int(round(ES_FRACTION * n)))
        return np.sort(perm[k:]), np.sort(perm[:k])
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(ES_FRACTION * len(idx)))
        if k >= 1 and len(idx) - k >= 2:
            held.append(rng.choice(idx, k, replace=False))
    es = np.sort(np.concatenate(held)) if held else np.array([], dtype=int)
    mask = np.ones(n, dtype=bool)
    mask[es] = False
    return np.flatnonzero(mask), es


_limited = threading.local()


@contextlib.contextmanager
def single_thread():
    """Limit OpenMP/BLAS pools to one thread (a no-op inside another ``single_thread`` block).

    Only libraries already loaded are limited: call :func:`import_families` first.
    """
    if getattr(_limited, "on", False):
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        _limited.on = True
        try:
            yield
        finally:
            _limited.on = False


#: inputs this small are scored on one OpenMP thread (see :func:`few_rows`)
FEW_ROWS = 32
_openmp: dict = {}


def few_rows(n: int):
    """A context that scores ``n`` rows on one OpenMP thread when they are few (at most :data:`FEW_ROWS`).

    Spreading a handful of rows over threads costs more than it saves, and where the cores are
    busy the threads wait for each other spinning on the CPU. On vcd::Baseball with one other
    process running (2 cores), HistGradientBoosting's single-row predict took 7.8 ms at the median
    and 82 ms at p95 on its default threads, against 6.9 and 7.3 ms on one; the ensemble holding it
    measured a p95 of 1,645 ms and failed its 100 ms latency limit, while the bake-off, which times
    predictions on one thread (:func:`single_thread`), had measured 36 ms. The server and the
    evaluation's latency check score few rows through here, so what is served is what was timed.
    LightGBM and XGBoost were unaffected (they choose their threads by the size of the input).
    Idle, one thread is as fast up to 32 rows (HistGradientBoosting 6.6 ms against 6.9 at p50) and
    slower from 256 (10.6 against 9.3; 1,000 rows 18 against 15), so bigger inputs (batch scoring,
    a long list in one request) keep every thread.
    """
    if n > FEW_ROWS or getattr(_limited, "on", False):
        return contextlib.nullcontext()
    return _openmp_pools().limit(limits=1)


def _openmp_pools():
    """threadpoolctl's OpenMP pools, found again whenever a module was imported since the last
    search (searching costs about 1.3 ms, limiting what was found 14 us: once per request)."""
    n = len(sys.modules)
    if _openmp.get("modules") != n:
        from threadpoolctl import ThreadpoolController

        _openmp.update(modules=n, pools=ThreadpoolController().select(user_api="openmp"))
    return _openmp["pools"]


def import_families(families) -> None:
    """Import the libraries the families use (so their thread pools exist before they are limited)."""
    import sklearn.ensemble  # noqa: F401  (HistGradientBoosting's OpenMP runtime)
    import sklearn.linear_model  # noqa: F401

    if "lightgbm" in families:
        import lightgbm  # noqa: F401
    if "xgboost" in families:
        import xgboost  # noqa: F401
    if "catboost" in families:
        import catboost  # noqa: F401


def _fit_with_deadline(pipe, X, y, deadline, early_stopping=False, seed=0):
    t0 = time.monotonic()
    prep, model = pipe[:-1], pipe[-1]
    Xt = prep.fit_transform(X, y)
    name = type(model).__name__
    y = np.asarray(y)
    boosted = name.startswith(("LGBM", "XGB", "CatBoost", "HistGradientBoosting"))
    es = bool(early_stopping and boosted and len(y) >= 50)
    fit, held = np.arange(len(y)), None
    if es:
        fit, held = _es_split(y, seed, classify=name.endswith("Classifier"))
        es = len(held) > 0
    if es:
        rounds = patience(model.get_params()["learning_rate"])
        key = ("max_iter" if name.startswith("HistGradientBoosting") else
               "iterations" if name.startswith("CatBoost") else "n_estimators")
        model.set_params(**{key: TREES_CAP})
        Xf, yf, Xe, ye = Xt[fit], y[fit], Xt[held], y[held]
    else:
        Xf, yf = Xt, y
    truncated = False
    best = None
    if name.startswith("LGBM"):
        import lightgbm as lgb

        callbacks = [lgb.early_stopping(rounds, verbose=False)] if es else []
        cb = _LightGBMDeadline(deadline) if deadline is not None else None
        eval_kw = {"eval_X": (Xe,), "eval_y": (ye,)} if es else {}
        model.fit(Xf, yf, callbacks=callbacks + ([cb] if cb else []), **eval_kw)
        truncated = bool(cb and cb.stopped)
        grown = n_trees(model)
        best = int(model.best_iteration_) if es and getattr(model, "best_iteration_", 0) > 0 else grown
        if truncated:
            model.set_params(n_estimators=max(1, grown))
    elif name.startswith("XGB"):
        cb = _xgboost_deadline(deadline) if deadline is not None else None
        model.set_params(callbacks=[cb] if cb else None, early_stopping_rounds=rounds if es else None)
        try:
            model.fit(Xf, yf, eval_set=[(Xe, ye)] if es else None, verbose=False)
        finally:
            model.set_params(callbacks=None, early_stopping_rounds=None)
        truncated = bool(cb and cb.stopped)
        grown = n_trees(model)
        best = xgb_best_rounds(model, es, grown)
        if truncated:
            model.set_params(n_estimators=max(1, grown))
    elif name.startswith("CatBoost"):
        cb = _CatBoostDeadline(deadline) if deadline is not None else None
        kw = {"eval_set": (Xe, ye), "early_stopping_rounds": rounds, "use_best_model": True} if es else {}
        model.fit(Xf, yf, callbacks=[cb] if cb else None, **kw)
        truncated = bool(cb and cb.stopped)
        # with early stopping the model keeps the best round's trees (``use_best_model``); a fitted
        # CatBoost model refuses set_params, so its ``iterations`` stays the cap (as LightGBM's does)
        grown = best = n_trees(model)
    elif name.startswith("HistGradientBoosting"):
        kw = {}
        if es:
            model.set_params(early_stopping=True, n_iter_no_change=rounds)
            kw = {"X_val": Xe, "y_val": ye}
        target = int(model.max_iter)
        if deadline is None:
            model.fit(Xf, yf, **kw)
        else:
            # a multiclass iteration grows one tree per class: 20 iterations over modeldata::leaf_id_flavia's 32
            # species took 1.6 s before the clock was first read, and the 20 s bake-off ended at 28 s
            per_iteration = len(np.unique(yf)) if name.endswith("Classifier") else 1
            first = max(1, 20 // per_iteration) if per_iteration > 2 else 20
            truncated = _grow(model, "max_iter", target, Xf, yf, deadline, first_chunk=first, fit_kw=kw)
        grown = int(model.n_iter_)
        stopped = es and not truncated and grown < target
        best = max(1, grown - rounds) if stopped else grown
        if es:
            model.set_params(early_stopping=False, max_iter=grown)
    elif name.startswith("RandomForest"):
        truncated = _grow(model, "n_estimators", int(model.n_estimators), Xf, yf, deadline, first_chunk=10,
                          max_bytes=FOREST_BYTES)
    else:
        model.fit(Xf, yf)
    trees = n_trees(model)
    return {"truncated": bool(truncated), "n_trees": trees, "best_iter": best if best is not None else trees,
            "fit_rows": int(len(yf)), "fit_s": time.monotonic() - t0}


def effective_params(family: str, params: dict, trees: int | None) -> dict:
    """``params`` with the tree count capped at ``trees`` (what a clock-cut model actually had)."""
    out = dict(params)
    key = TREES_PARAM.get(family)
    if key and trees is not None and trees < int(out.get(key, default_params(family)[key])):
        out[key] = int(trees)
    return out
