"""Model families for the bake-off and their Optuna search spaces.

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
random_forest  ordinal codes                                ordinal codes
=============  ===========================================  ===========================

Every model runs single-threaded (``n_jobs=1``). :func:`fit_with_deadline` fits a
pipeline so that it stops at a wall-clock deadline: LightGBM and XGBoost through
a training callback that checks the clock, HistGradientBoosting and random
forests by growing with ``warm_start`` in chunks and checking the clock between
them. A model cut short keeps the trees it has, and its size parameter is set to
that count, so a refit with :func:`effective_params` rebuilds the same model.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# simpler first: the tie rule prefers a lower rank when scores are within CV noise
COMPLEXITY = {"logistic": 0, "ridge": 0, "hist_gbm": 1, "lightgbm": 2, "xgboost": 2, "random_forest": 3}
CLASSIFICATION = ("logistic", "hist_gbm", "lightgbm", "xgboost", "random_forest")
REGRESSION = ("ridge", "hist_gbm", "lightgbm", "xgboost", "random_forest")
# the parameter that counts trees / boosting rounds, per family
TREES_PARAM = {"hist_gbm": "max_iter", "lightgbm": "n_estimators", "xgboost": "n_estimators",
               "random_forest": "n_estimators"}


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
        s = pd.to_datetime(frame[col], errors="coerce")
        out[:, i] = (s - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return out


def _to_text(X) -> np.ndarray:
    """Categorical values as strings (missing stays missing) so mixed types encode alike."""
    frame = pd.DataFrame(X)
    out = frame.astype(str).to_numpy(dtype=object, copy=True)
    out[frame.isna().to_numpy()] = np.nan
    return out


def make_preprocessor(groups: ColumnGroups, encoding: str):
    """The ``ColumnTransformer``: ``encoding="onehot"`` (linear models) or ``"ordinal"`` (trees).

    Output columns: numeric, then datetime, then categorical.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    def impute_scale():
        return [("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler())]

    days = FunctionTransformer(datetime_to_days, feature_names_out="one-to-one")
    parts = []
    if encoding == "onehot":
        if groups.numeric:
            parts.append(("num", Pipeline(impute_scale()), list(groups.numeric)))
        if groups.datetime:
            parts.append(("date", Pipeline([("days", days), *impute_scale()]), list(groups.datetime)))
        if groups.categorical:
            parts.append(("cat", Pipeline([
                ("text", FunctionTransformer(_to_text, feature_names_out="one-to-one")),
                ("impute", SimpleImputer(strategy="constant", fill_value="(missing)", keep_empty_features=True)),
                ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5,
                                         max_categories=50, sparse_output=False)),
            ]), list(groups.categorical)))
    elif encoding == "ordinal":
        if groups.numeric:
            parts.append(("num", "passthrough", list(groups.numeric)))
        if groups.datetime:
            parts.append(("date", days, list(groups.datetime)))
        if groups.categorical:
            parts.append(("cat", Pipeline([
                ("text", FunctionTransformer(_to_text, feature_names_out="one-to-one")),
                ("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                           encoded_missing_value=np.nan, min_frequency=5, max_categories=200,
                                           dtype=np.float64)),
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
    """Sensible defaults: the first trial of each family, and the linear baseline."""
    return {
        "logistic": {"C": 1.0},
        "ridge": {"alpha": 1.0},
        "hist_gbm": {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                     "l2_regularization": 1e-6},
        "lightgbm": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                     "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1e-6},
        "xgboost": {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 4, "min_child_weight": 1.0,
                    "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0},
        "random_forest": {"n_estimators": 100, "max_depth": 0, "min_samples_leaf": 5, "max_features": "sqrt"},
    }[family]


def suggest_params(family: str, trial) -> dict[str, Any]:
    """The family's Optuna search space (``trial`` is an :class:`optuna.trial.Trial`)."""
    s_f, s_i, s_c = trial.suggest_float, trial.suggest_int, trial.suggest_categorical
    if family == "logistic":
        return {"C": s_f("C", 1e-3, 100.0, log=True)}
    if family == "ridge":
        return {"alpha": s_f("alpha", 1e-3, 1e3, log=True)}
    if family == "hist_gbm":
        return {"learning_rate": s_f("learning_rate", 0.01, 0.3, log=True),
                "max_iter": s_i("max_iter", 50, 600, log=True),
                "max_leaf_nodes": s_i("max_leaf_nodes", 8, 96, log=True),
                "min_samples_leaf": s_i("min_samples_leaf", 5, 150, log=True),
                "l2_regularization": s_f("l2_regularization", 1e-6, 10.0, log=True)}
    if family == "lightgbm":
        return {"n_estimators": s_i("n_estimators", 50, 800, log=True),
                "learning_rate": s_f("learning_rate", 0.01, 0.3, log=True),
                "num_leaves": s_i("num_leaves", 8, 128, log=True),
                "min_child_samples": s_i("min_child_samples", 5, 150, log=True),
                "subsample": s_f("subsample", 0.5, 1.0),
                "colsample_bytree": s_f("colsample_bytree", 0.5, 1.0),
                "reg_lambda": s_f("reg_lambda", 1e-6, 10.0, log=True)}
    if family == "xgboost":
        return {"n_estimators": s_i("n_estimators", 50, 800, log=True),
                "learning_rate": s_f("learning_rate", 0.01, 0.3, log=True),
                "max_depth": s_i("max_depth", 2, 10),
                "min_child_weight": s_f("min_child_weight", 0.5, 20.0, log=True),
                "subsample": s_f("subsample", 0.5, 1.0),
                "colsample_bytree": s_f("colsample_bytree", 0.5, 1.0),
                "reg_lambda": s_f("reg_lambda", 1e-3, 10.0, log=True)}
    if family == "random_forest":
        return {"n_estimators": s_i("n_estimators", 50, 400, log=True),
                "max_depth": s_c("max_depth", [0, 6, 10, 16]),
                "min_samples_leaf": s_i("min_samples_leaf", 1, 50, log=True),
                "max_features": s_c("max_features", ["sqrt", 0.5, 1.0])}
    raise ValueError(f"unknown model family {family!r}")  # pragma: no cover


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

        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        mask = [False] * n_num + [True] * n_cat
        return cls(learning_rate=p["learning_rate"], max_iter=int(p["max_iter"]),
                   max_leaf_nodes=int(p["max_leaf_nodes"]), min_samples_leaf=int(p["min_samples_leaf"]),
                   l2_regularization=p["l2_regularization"], categorical_features=mask if n_cat else None,
                   early_stopping=True, validation_fraction=0.1, n_iter_no_change=15, random_state=seed)
    if family == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if classify else lgb.LGBMRegressor
        extra = {"cat_feature": list(range(n_num, n_num + n_cat))} if n_cat else {}
        return cls(n_estimators=int(p["n_estimators"]), learning_rate=p["learning_rate"],
                   num_leaves=int(p["num_leaves"]), min_child_samples=int(p["min_child_samples"]),
                   subsample=p["subsample"], subsample_freq=1 if p["subsample"] < 1 else 0,
                   colsample_bytree=p["colsample_bytree"], reg_lambda=p["reg_lambda"],
                   n_jobs=1, random_state=seed, verbose=-1, **extra)
    if family == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if classify else xgb.XGBRegressor
        return cls(n_estimators=int(p["n_estimators"]), learning_rate=p["learning_rate"],
                   max_depth=int(p["max_depth"]), min_child_weight=p["min_child_weight"],
                   subsample=p["subsample"], colsample_bytree=p["colsample_bytree"],
                   reg_lambda=p["reg_lambda"], tree_method="hist", n_jobs=1, random_state=seed,
                   enable_categorical=bool(n_cat), feature_types=["q"] * n_num + ["c"] * n_cat,
                   max_cat_to_onehot=4, verbosity=0)
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(n_estimators=int(p["n_estimators"]), max_depth=int(p["max_depth"]) or None,
                   min_samples_leaf=int(p["min_samples_leaf"]), max_features=p["max_features"],
                   n_jobs=1, random_state=seed)
    raise ValueError(f"unknown model family {family!r}")  # pragma: no cover


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

    encoding = "onehot" if family in ("logistic", "ridge") else "ordinal"
    return Pipeline([("prep", make_preprocessor(groups, encoding)),
                     ("model", make_model(family, task, groups, params, seed))])


# --------------------------------------------------------------------------- fitting on a clock
class _LightGBMDeadline:
    """LightGBM callback: stop boosting once the clock passes ``deadline`` (``time.monotonic``)."""

    order = 5

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stopped = False

    def __call__(self, env) -> None:
        import lightgbm as lgb

        if time.monotonic() >= self.deadline:
            self.stopped = True
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])


def _xgboost_deadline(deadline: float):
    import xgboost as xgb

    class XGBoostDeadline(xgb.callback.TrainingCallback):
        """Stop boosting once the clock passes the deadline."""

        stopped = False

        def after_iteration(self, model, epoch, evals_log) -> bool:
            if time.monotonic() >= deadline:
                self.stopped = True
                return True
            return False

    return XGBoostDeadline()


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
    if name.startswith("RandomForest"):
        return len(model.estimators_)
    return None


def _grow(model, param: str, target: int, X, y, deadline: float, first_chunk: int) -> bool:
    """Fit ``model`` with ``warm_start`` up to ``target`` of ``param``, checking the clock between chunks.

    Returns True when the deadline cut the growth short.
    """
    done, chunk, truncated = 0, max(1, min(first_chunk, target)), False
    model.set_params(warm_start=True)
    try:
        while done < target:
            upto = min(target, done + chunk)
            t = time.monotonic()
            model.set_params(**{param: upto})
            model.fit(X, y)
            took = time.monotonic() - t
            fitted = int(model.n_iter_) if param == "max_iter" else len(model.estimators_)
            if fitted < upto:  # early stopping ended the growth
                break
            per_unit = took / max(upto - done, 1)
            done = upto
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


def fit_with_deadline(pipe, X: pd.DataFrame, y: np.ndarray, deadline: float | None = None) -> dict:
    """Fit ``pipe`` (from :func:`build_pipeline`) so that training stops at ``deadline``.

    Returns ``{"truncated": bool, "n_trees": int | None, "fit_s": float}``. A
    truncated model keeps what it learned so far and its tree count parameter is
    set to the trees it has.
    """
    with single_thread():
        return _fit_with_deadline(pipe, X, y, deadline)


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


def import_families(families) -> None:
    """Import the libraries the families use (so their thread pools exist before they are limited)."""
    import sklearn.ensemble  # noqa: F401  (HistGradientBoosting's OpenMP runtime)
    import sklearn.linear_model  # noqa: F401

    if "lightgbm" in families:
        import lightgbm  # noqa: F401
    if "xgboost" in families:
        import xgboost  # noqa: F401


def _fit_with_deadline(pipe, X, y, deadline):
    t0 = time.monotonic()
    prep, model = pipe[:-1], pipe[-1]
    Xt = prep.fit_transform(X, y)
    name = type(model).__name__
    truncated = False
    if deadline is None:
        model.fit(Xt, y)
    elif name.startswith("LGBM"):
        cb = _LightGBMDeadline(deadline)
        model.fit(Xt, y, callbacks=[cb])
        truncated = cb.stopped
        if truncated:
            model.set_params(n_estimators=max(1, n_trees(model)))
    elif name.startswith("XGB"):
        cb = _xgboost_deadline(deadline)
        model.set_params(callbacks=[cb])
        try:
            model.fit(Xt, y)
        finally:
            model.set_params(callbacks=None)
        truncated = cb.stopped
        if truncated:
            model.set_params(n_estimators=max(1, n_trees(model)))
    elif name.startswith("HistGradientBoosting"):
        truncated = _grow(model, "max_iter", int(model.max_iter), Xt, y, deadline, first_chunk=20)
    elif name.startswith("RandomForest"):
        truncated = _grow(model, "n_estimators", int(model.n_estimators), Xt, y, deadline, first_chunk=10)
    else:
        model.fit(Xt, y)
    return {"truncated": bool(truncated), "n_trees": n_trees(model), "fit_s": time.monotonic() - t0}


def effective_params(family: str, params: dict, trees: int | None) -> dict:
    """``params`` with the tree count capped at ``trees`` (what a clock-cut model actually had)."""
    out = dict(params)
    key = TREES_PARAM.get(family)
    if key and trees is not None and trees < int(out.get(key, default_params(family)[key])):
        out[key] = int(trees)
    return out
