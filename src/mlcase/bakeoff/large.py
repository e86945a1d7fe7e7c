"""Training on data larger than memory: LightGBM's and XGBoost's own Dask estimators on the cluster.

When ``data.source`` is Parquet (a file, a glob of partitions, or a query over them) taking more than
``engine.memory_share`` of this machine's memory (:func:`mlcase.checks.profile.is_large`), ``mlcase bakeoff``
does not load it into this process. The Dask engine's workers read the partitions
(``dask.dataframe.read_parquet``), a seeded random share (``split.valid_size``) is held out for validation,
and the candidates that have a Dask estimator are fitted there: ``lightgbm`` as
:class:`lightgbm.DaskLGBMClassifier` / ``DaskLGBMRegressor`` (LightGBM's distributed training, one worker per
partition set) and ``xgboost`` as :class:`xgboost.dask.DaskXGBClassifier` / ``DaskXGBRegressor`` (XGBoost's
collective). Text columns become categories (``categorize``: one pass over the data); both libraries split
on them natively. The validation rows are scored on the workers, partition by partition, with the fitted
model, and only sums come back: log loss and Brier score (binary) or squared error (regression), for each
candidate and for the training prior (``majority`` / ``mean``) as the floor to beat. The spec's other
``baselines`` are validated the same way (:mod:`mlcase.bakeoff.large_baselines`): ``linear`` by scikit-learn's
SGD with ``partial_fit`` over the training partitions, and each rule through the same DuckDB sandbox as in memory,
its training rates summed from counts on the workers.

Left out on purpose (see docs/contracts.md): the Optuna search (each family is fitted once with fixed,
conservative settings: a search multiplies full passes over data that does not fit), a ``linear`` baseline
through dask-ml (not installed: a heavy dependency for one baseline; ``partial_fit`` needs only scikit-learn),
multiclass targets, and the stages after the bake-off (evaluation in money, conformal sets, SHAP,
registration), which still take a frame in memory. ``mlcase check`` profiles the same source out of
core; a sample of it is what the rest of the pipeline can use.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError

FAMILIES = ("lightgbm", "xgboost")   # the candidates with a Dask estimator of their own
ESTIMATORS = {("lightgbm", "binary"): "lightgbm.DaskLGBMClassifier", ("lightgbm", "regression"): "lightgbm.DaskLGBMRegressor",
              ("xgboost", "binary"): "xgboost.dask.DaskXGBClassifier",
              ("xgboost", "regression"): "xgboost.dask.DaskXGBRegressor"}
PARAMS = {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 6}
EPS = 1e-12


@dataclass
class LargeBakeoff:
    """What :func:`run_large_bakeoff` did: one row per candidate and the floor, on the held-out rows."""

    task: str
    rows: int
    train_rows: int
    valid_rows: int
    partitions: int
    source_bytes: int
    metric: str
    leaderboard: list[dict] = field(default_factory=list)
    candidate: str | None = None
    models: dict[str, Any] = field(default_factory=dict, repr=False)   # family -> fitted plain estimator
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"kind": "out_of_core", "task": self.task, "rows": self.rows, "train_rows": self.train_rows,
                "valid_rows": self.valid_rows, "partitions": self.partitions, "source_bytes": self.source_bytes,
                "metric": self.metric, "leaderboard": self.leaderboard, "candidate": self.candidate,
                "seconds": round(self.seconds, 3)}


def run_large_bakeoff(case, engine, console=None, quiet: bool = False) -> LargeBakeoff:
    """Fit and validate the Dask estimators of the case's candidates on its Parquet partitions.

    Parameters
    ----------
    case : Case
        A binary or regression case whose ``data.source`` is Parquet.
    engine : DaskEngine
        Its client runs everything; a local engine is a :class:`SpecError` (the data does not fit here).

    Returns
    -------
    LargeBakeoff
    """
    from ..checks.profile import source_bytes
    from .large_baselines import baseline_models

    t0 = time.perf_counter()
    client, families = check_large(case, engine)
    task = case.spec.task
    nbytes = source_bytes(case)
    train, valid, features = read_split(case)
    if getattr(engine.info, "started_cluster", False):
        # LightGBM's network set-up logs to each worker's C stdout; a LocalCluster's workers share this
        # command's, which --json keeps for its one object
        client.run(os.dup2, 2, 1)
    train, valid = client.persist([train, valid])   # read once, kept on the workers (spilled past their memory)
    n_train, n_valid, prior = client.compute([train.shape[0], valid.shape[0], train["_y"].mean()], sync=True)
    out = LargeBakeoff(task=task, rows=int(n_train + n_valid), train_rows=int(n_train), valid_rows=int(n_valid),
                       partitions=train.npartitions, source_bytes=nbytes,
                       metric="log_loss" if task == "binary" else "rmse")
    floor = "majority" if task == "binary" else "mean"
    rows = [_validate(client, valid, features, task, _Constant(float(prior), task), floor, "baseline", "prior")]
    for b in baseline_models(case, client, train, features, task, float(prior)):   # linear and rules, if named
        row = _validate(client, valid, features, task, b["model"], b["name"], "baseline", b["estimator"])
        row.update({k: b[k] for k in ("expression", "fit_s") if k in b})
        rows.append(row)
        if console is not None and not quiet:
            from ..formats import markup_escape

            console.print(f"{markup_escape(str(b['name']))} ({markup_escape(str(b['estimator']))}): validation {out.metric} "
                          f"{row[out.metric]:.4f}")
    for fam in families:
        started = time.perf_counter()
        est = _estimator(fam, task, client, case.spec.split.seed)
        # lightgbm.dask waits on the current client, and prints its set-up: stdout is --json's
        with client.as_current(), contextlib.redirect_stdout(sys.stderr):
            est.fit(train[features], train["_y"])
        local = _local(fam, est)
        out.models[fam] = local
        row = _validate(client, valid, features, task, local, fam, "candidate", ESTIMATORS[(fam, task)])
        row["fit_s"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        if console is not None and not quiet:
            console.print(f"{fam} ({ESTIMATORS[(fam, task)]}): validation {out.metric} {row[out.metric]:.4f} "
                          f"on {n_valid:,} rows")
    rows.sort(key=lambda r: r[out.metric])
    out.leaderboard = rows
    out.candidate = next((r["name"] for r in rows if r["kind"] == "candidate"), None)
    out.seconds = time.perf_counter() - t0
    return out


def read_split(case) -> tuple[Any, Any, list[str]]:
    """``(train, valid, features)``: the source's partitions as Dask frames (lazy), split as the bake-off splits them.

    Text features become categories (``categorize``: one pass); ``_y`` is the target as numbers. The split is
    :meth:`dask.dataframe.DataFrame.random_split` seeded with ``split.seed``, so the same source always gives
    the same rows (tests compare against in-memory fits on them).
    """
    import dask.dataframe as dd

    from ..checks.profile import source_files
    from ..data import select_features

    task, target = case.spec.task, case.spec.data.target
    df = dd.read_parquet([str(f) for f in source_files(case)])
    if target not in df.columns:
        raise SpecError(f"data.target '{target}' is not a column of {case.spec.data.source}",
                        f"columns: {', '.join(map(str, df.columns[:20]))}")
    features = select_features(case, df)   # only its columns are read: the same choice as in memory
    text = [c for c in features if not numeric_dtype(df[c].dtype)]
    df = df[[*features, target]]
    if text:
        df = df.astype({c: "category" for c in text}).categorize(columns=text)
    df = df.assign(_y=_target_column(df[target], case, task)).drop(columns=[target])
    train, valid = df.random_split([1 - case.spec.split.valid_size, case.spec.split.valid_size],
                                   random_state=case.spec.split.seed)
    return train, valid, features


def check_large(case, engine) -> tuple[Any, list[str]]:
    """``(client, families)`` for :func:`run_large_bakeoff`, or the one-line :class:`SpecError` saying why not
    (called before anything is written)."""
    from ..checks.profile import source_bytes

    task = case.spec.task
    client = getattr(engine, "client", None)
    if client is None:
        raise SpecError(f"data.source ({source_bytes(case) / 2**20:,.1f} MiB of Parquet) is larger than "
                        f"engine.memory_share ({case.spec.engine.memory_share:g}) of this machine's memory",
                        "run with --engine dask (out-of-core LightGBM/XGBoost), or raise engine.memory_share")
    if task not in ("binary", "regression"):
        raise SpecError(f"task {task}: out-of-core training covers binary and regression cases only",
                        "train on a sample (a smaller data.source), or raise engine.memory_share")
    families = [f for f in case.spec.candidates if f in FAMILIES]
    if not families:
        raise SpecError(f"candidates {list(case.spec.candidates)}: none has a Dask estimator for data larger than "
                        "memory", "add lightgbm or xgboost to candidates")
    _check_expressions(case)
    return client, families


def _check_expressions(case, rows: int = 200) -> None:
    """The spec's SQL (rule baselines, costs, assumption checks) run by DuckDB on the first ``rows`` rows of the
    first partition, as :func:`mlcase.rules.validate_spec_expressions` runs them in memory: a bad rule is a
    one-line :class:`~mlcase.errors.RuleError` naming ``baselines[i].rule`` before anything is read or written."""
    import pyarrow.parquet as pq

    from ..checks.profile import source_files
    from ..data import select_features
    from ..rules import validate_spec_expressions

    files = source_files(case)
    if not files:
        return
    with pq.ParquetFile(files[0]) as f:
        batch = next(f.iter_batches(batch_size=rows), None)
        head = (batch if batch is not None else f.schema_arrow.empty_table()).to_pandas()
    validate_spec_expressions(case, head, select_features(case, head))


def numeric_dtype(dtype) -> bool:
    """Whether a column is a number (or a bool) to the models; any other column is a category."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _target_column(y, case, task: str):
    """The target as numbers: 1.0 for ``data.positive`` (binary), the value itself (regression)."""
    if task == "regression":
        return y.astype("float64")
    pos = case.spec.data.positive
    if pos is None:
        raise SpecError("data.positive is not set: an out-of-core binary case needs it (the data is not loaded "
                        "to look at its classes)", "set data.positive to the class that costs money")
    if numeric_dtype(y.dtype) and not isinstance(pos, bool):   # 1 is 1.0 in a float 0/1 column
        try:
            return (y.astype("float64") == float(pos)).astype("float64")
        except (TypeError, ValueError):
            pass
    return (y.astype(str) == str(pos)).astype("float64")


def _estimator(family: str, task: str, client, seed: int):
    if family == "lightgbm":
        import lightgbm as lgb

        cls = lgb.DaskLGBMClassifier if task == "binary" else lgb.DaskLGBMRegressor
        return cls(client=client, random_state=seed, num_leaves=31, verbose=-1, **PARAMS)
    from xgboost import dask as dxgb

    cls = dxgb.DaskXGBClassifier if task == "binary" else dxgb.DaskXGBRegressor
    est = cls(tree_method="hist", enable_categorical=True, random_state=seed, **PARAMS)
    est.client = client
    return est


def _local(family: str, est):
    """The fitted model as a plain (in-process) estimator, to score partitions and to serve."""
    if family == "lightgbm":
        return est.to_local()
    import xgboost as xgb

    cls = xgb.XGBClassifier if hasattr(est, "predict_proba") else xgb.XGBRegressor
    plain = cls(enable_categorical=True)
    plain.load_model(bytearray(est.get_booster().save_raw("json")))
    return plain


class _Constant:
    """The training prior as a model (the floor): P(positive) or the mean, whatever the inputs."""

    def __init__(self, value: float, task: str):
        self.value, self.task = value, task

    def predict_proba(self, X):
        import numpy as np

        return np.column_stack([np.full(len(X), 1 - self.value), np.full(len(X), self.value)])

    def predict(self, X):
        import numpy as np

        return np.full(len(X), self.value)


def partition_sums(part, model, features: list[str], task: str):
    """One partition's loss sums (run on a worker): rows, log loss and squared error (Brier for binary)."""
    import numpy as np
    import pandas as pd

    y = part["_y"].to_numpy("float64")
    if not len(y):
        return pd.DataFrame({"n": [0], "log_loss": [0.0], "se": [0.0]})
    if task == "binary":
        p = np.clip(model.predict_proba(part[features])[:, 1], EPS, 1 - EPS)
        ll = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())
    else:
        p, ll = model.predict(part[features]).astype("float64"), 0.0
    return pd.DataFrame({"n": [len(y)], "log_loss": [ll], "se": [float(((p - y) ** 2).sum())]})


def _validate(client, valid, features, task: str, model, name: str, kind: str, estimator: str) -> dict:
    import pandas as pd

    meta = pd.DataFrame({"n": pd.Series(dtype="int64"), "log_loss": pd.Series(dtype="float64"),
                         "se": pd.Series(dtype="float64")})
    sums = client.compute(valid.map_partitions(partition_sums, model, features, task, meta=meta), sync=True).sum()
    n = max(int(sums["n"]), 1)
    row = {"name": name, "kind": kind, "estimator": estimator, "valid_rows": int(sums["n"])}
    if task == "binary":
        row.update(log_loss=float(sums["log_loss"]) / n, brier=float(sums["se"]) / n)
    else:
        row.update(rmse=(float(sums["se"]) / n) ** 0.5)
    return row


__all__ = ["run_large_bakeoff", "check_large", "LargeBakeoff", "partition_sums", "FAMILIES", "ESTIMATORS"]
