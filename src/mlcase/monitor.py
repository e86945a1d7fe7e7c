"""Monitoring: drift, delayed labels, performance estimated before labels arrive, alerts.

:func:`build_reference` summarises the training data once (stored in
``bundle.reference`` when the bundle is registered); :func:`monitor` reads the
prediction log (or a plain CSV/Parquet of recent records), cuts it into time
windows and compares each window with that reference:

- data drift per feature: PSI (with a missing-value bin), the two-sample KS
  test (numeric) or chi-square test (categorical), the Jensen-Shannon distance,
  the missing-rate change and categories never seen in training;
- prediction drift: the score distribution, the share of each decision and
  predicted class;
- delayed labels, joined by request id (duplicates reported, the last one
  wins): realized metrics and business cost per window, the observed label
  delay, the share still unlabelled, and whether the window is old enough
  (``data.label_delay``) for its labels to count;
- for binary tasks, performance and cost *estimated* from the calibrated
  probabilities before labels arrive (confidence-based performance estimation,
  the idea behind NannyML's CBPE), with a 95% band for sampling error;
- the spec's ``assumptions[].check`` re-run per window (those reading the
  target once labels have matured);
- the share of answers given by a fallback tier, by tier and reason.

Alerts follow ``monitoring`` in the spec. A feature drifts when its PSI is at
least ``psi_alert`` *and* its test rejects "same distribution" at level
``alpha`` (PSI alone is noisy on small windows; a test alone flags trivial
shifts on large ones). Windows with fewer than ``min_window_rows`` rows are
shown but raise no statistical alert.

Everything is computed from per-window counts: the log is read in chunks
(SQLite through ``sqlite3``, inputs parsed from JSON by DuckDB; CSV/Parquet by
DuckDB directly) into a temporary DuckDB database capped at
:data:`DUCKDB_MEMORY_LIMIT` (it spills to disk past that); one grouped scan
counts every numeric column at the reference's bin edges and quantile grid
(``histogram``), categorical columns are grouped by value, and per-window
metrics read one window at a time. Memory grows with the window, not the log.

Examples
--------
>>> from mlcase import monitor                                   # doctest: +SKIP
>>> result = monitor.monitor(case, log="predictions.db")         # doctest: +SKIP
>>> [a["feature"] for a in result.alerts if a["kind"] == "drift"]  # doctest: +SKIP
['balance']
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import SUPPORTED_SUFFIXES, reader_sql
from .drift import psi_js
from .errors import DataError, ModelError, NotFoundError, RuleError, SpecError, redact_url

REFERENCE_VERSION = 1
N_BINS = 10            # quantile bins per numeric feature (PSI, JS)
N_GRID = 101           # quantile points per numeric feature (KS)
MAX_CATEGORIES = 200   # categories kept per categorical feature; the rest pool into "other"
DRIFT_ALPHA = 0.05     # level of the KS / chi-square tests
BAND_Z = 1.959963984540054  # 95% band of the estimated performance
CHUNK_ROWS = 100_000
DUCKDB_MEMORY_LIMIT = "512MB"  # DuckDB spills to the run's temporary folder past this
FILE_READERS = SUPPORTED_SUFFIXES  # records and labels files are read as data.read_table reads data.source
SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


# =========================================================================== reference
def build_reference(dataset, bundle) -> dict:
    """The training reference monitoring compares the served data with (JSON-able).

    Parameters
    ----------
    dataset : mlcase.data.Dataset
        The prepared data; features are summarised on the training part, the
        model's scores and decisions on the validation part.
    bundle : mlcase.bundle.ModelBundle
        The fitted model (``scores``, ``decide``, ``threshold``, ``task``, ``classes``).

    Returns
    -------
    dict
        ``features`` (per feature: ``kind``; numeric: quantile bin ``edges``, bin
        ``shares``, a quantile ``grid`` and its ``cdf`` for KS; categorical:
        category ``shares`` and ``other_share``; both: ``missing_rate`` and the
        count ``n``), ``score`` (the valid scores, summarised like a numeric
        feature), ``decisions`` and ``predictions`` (shares on valid),
        ``calibration`` (binary: how far the probabilities are from the valid
        outcomes, which bounds how far the estimated performance can be
        trusted), ``n`` and ``n_valid``.
    """
    features = list(bundle.features or dataset.features)
    schema = bundle.schema or dataset.schema.to_dict()
    train = dataset.frame.iloc[dataset.split.train]
    kinds = feature_kinds(schema, features, train)
    feats = {}
    for f in features:
        kind = kinds[f]
        if kind == "numeric":
            feats[f] = _numeric_reference(pd.to_numeric(train[f], errors="coerce").to_numpy("float64"))
        elif kind in ("categorical", "boolean"):
            feats[f] = _categorical_reference(_canon(train[f], kind == "boolean"), kind)
        else:
            feats[f] = {"kind": "skipped", "reason": f"{kind} column: not compared"}
    ref: dict[str, Any] = {"version": REFERENCE_VERSION, "task": bundle.task, "n": int(len(train)),
                           "features": feats, "threshold": bundle.threshold,
                           "classes": [str(c) for c in bundle.classes] if bundle.classes is not None else None,
                           "positive": None if bundle.positive is None else str(bundle.positive),
                           "score": None, "decisions": {}, "predictions": {}, "calibration": None,
                           "n_valid": int(len(dataset.split.valid))}
    if len(dataset.split.valid) == 0:
        return ref
    from .evaluate import valid_scores

    scores = valid_scores(bundle, dataset)  # out-of-fold when the model was refitted on these rows
    decided = bundle.decide(scores)
    if bundle.task == "binary":
        ref["score"] = _numeric_reference(scores)
        flags = np.asarray(decided).astype(int)
        ref["decisions"] = _shares(np.where(flags == 1, "flag", "auto"))
        if bundle.classes is not None:
            ref["predictions"] = _shares(np.where(flags == 1, str(bundle.classes[1]), str(bundle.classes[0])))
        ref["calibration"] = _calibration(np.asarray(dataset.y_valid, dtype=float), scores, flags)
    elif bundle.task == "multiclass":
        ref["score"] = _numeric_reference(np.max(scores, axis=1))
        ref["decisions"] = {"auto": 1.0}
        ref["predictions"] = _shares(np.asarray(decided).astype(str))
    else:
        ref["score"] = _numeric_reference(np.asarray(scores, dtype=float))
        ref["decisions"] = {"auto": 1.0}
    return ref


def feature_kinds(schema: dict | None, features: list[str], frame: pd.DataFrame | None = None) -> dict[str, str]:
    """``numeric``, ``categorical``, ``boolean`` or the schema kind of a column not compared (id, text, datetime)."""
    cols = {c["name"]: c for c in (schema or {}).get("columns", [])}
    out = {}
    for f in features:
        kind = cols.get(f, {}).get("kind")
        if kind is None and frame is not None and f in frame:
            s = frame[f]
            kind = "boolean" if pd.api.types.is_bool_dtype(s) else (
                "numeric" if pd.api.types.is_numeric_dtype(s) else "categorical")
        out[f] = kind or "categorical"
    return out


def _canon(s: pd.Series, boolean: bool) -> pd.Series:
    """Category values as the strings the log compares (booleans lower-case: JSON writes ``true``)."""
    out = s.astype("str").where(s.notna(), None)
    return out.str.lower() if boolean else out


def _numeric_reference(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype="float64")
    miss = np.isnan(values)
    v = np.sort(values[~miss])
    ref = {"kind": "numeric", "n": int(len(v)), "missing_rate": float(miss.mean()) if len(values) else 0.0}
    if len(v) == 0:
        return {**ref, "edges": [], "shares": [1.0], "grid": [], "cdf": []}
    edges = np.unique(np.quantile(v, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
    grid = np.unique(np.quantile(v, np.linspace(0, 1, N_GRID)))
    cdf = np.searchsorted(v, grid, side="right") / len(v)
    return {**ref, "edges": edges.tolist(), "shares": (counts / len(v)).tolist(), "grid": grid.tolist(),
            "cdf": cdf.tolist(), "mean": float(v.mean()), "std": float(v.std())}


def _categorical_reference(values: pd.Series, kind: str) -> dict:
    nonnull = values.dropna()
    counts = nonnull.value_counts()
    n = int(len(nonnull))
    kept = counts.iloc[:MAX_CATEGORIES]
    return {"kind": kind, "n": n, "missing_rate": float(values.isna().mean()) if len(values) else 0.0,
            "shares": {str(k): float(c / n) for k, c in kept.items()} if n else {},
            "other_share": float(counts.iloc[MAX_CATEGORIES:].sum() / n) if n else 0.0}


def _shares(values: np.ndarray) -> dict[str, float]:
    s = pd.Series(values).value_counts(normalize=True)
    return {str(k): float(v) for k, v in s.items()}


def _calibration(y: np.ndarray, p: np.ndarray, flags: np.ndarray) -> dict:
    """Expected calibration error and the estimated vs realized accuracy on the validation part."""
    from .evaluate import expected_calibration_error

    ece = expected_calibration_error(y, p)  # the ECE evaluation reports (10 quantile bins)
    est = _cbpe(p, flags)
    realized_acc = float(np.mean(flags == y))
    return {"n": int(len(p)), "mean_score": float(p.mean()), "positive_rate": float(y.mean()), "ece": float(ece),
            "estimated_accuracy": est["accuracy"]["value"], "realized_accuracy": realized_acc}


# =========================================================================== result
@dataclass
class MonitorResult:
    """What :func:`monitor` found.

    Attributes
    ----------
    alerts : list of dict
        ``kind`` (drift, score_drift, fallback, estimated_cost, realized_cost,
        assumption), ``feature`` or ``assumption``, ``window``, ``value``,
        ``threshold``, ``message``. Any alert makes ``mlcase monitor`` exit 1.
    windows : list of dict
        One per time window, oldest first (see :func:`monitor`).
    overall : dict
        Drift over all rows together.
    labels : dict
        The label join: labels read, duplicated and conflicting request ids,
        labels for unknown request ids, unreadable labels.
    warnings : list of dict
        ``kind`` and ``message``: what deserves a look but raises no alert.
    """

    case: str
    source: str
    model: dict
    task: str
    window_seconds: float
    as_of: str | None
    thresholds: dict
    features: list[str]
    windows: list[dict]
    overall: dict
    labels: dict
    alerts: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when an alert fired (for cron and CI), else 0."""
        return 1 if self.alerts else 0

    @property
    def n_rows(self) -> int:
        return int(sum(w["n"] for w in self.windows))

    def to_dict(self) -> dict:
        return {"case": self.case, "source": self.source, "model": self.model, "task": self.task,
                "window_seconds": self.window_seconds, "as_of": self.as_of, "thresholds": self.thresholds,
                "features": self.features, "n_rows": self.n_rows, "n_windows": len(self.windows),
                "status": "alert" if self.alerts else "ok", "n_alerts": len(self.alerts), "alerts": self.alerts,
                "warnings": self.warnings, "labels": self.labels, "overall": self.overall, "windows": self.windows}


# =========================================================================== entry point
def monitor(case, log=None, labels=None, window=None, bundle=None, *, now=None, alpha: float = DRIFT_ALPHA,
            alias: str = "champion") -> MonitorResult:
    """Compare the served data and outcomes with the training reference, window by window.

    Parameters
    ----------
    case : mlcase.case.Case
    log : str, Path or DataFrame, optional
        The prediction log: a SQLite file or SQLAlchemy URL holding the
        ``predictions`` (and ``labels``) tables, or a CSV/Parquet file (or a
        DataFrame) of recent records: the feature columns plus optional ``ts``
        (or the spec's time column), ``request_id``, ``score``, ``decision``,
        ``prediction``, ``tier``, ``fallback``, ``reason`` and ``label`` (or the
        target column). Default: ``serving.log`` or ``<case>/predictions.db``.
    labels : str or Path, optional
        CSV/Parquet of delayed labels: ``request_id``, ``label`` and optionally
        ``ts`` (when the label arrived). Read after the log's own labels; the
        last label of a request id wins.
    window : str or float, optional
        Window length (``1d``, ``6h``, seconds); default ``monitoring.window``.
    bundle : ModelBundle, optional
        Default: the registered ``alias`` (``champion``), else ``baseline``.
    now : datetime or str, optional
        The time label maturity is judged at; default the latest time in the
        log or its labels, so a replayed log gives the same answer.
    alpha : float
        Level of the drift tests.

    Returns
    -------
    MonitorResult
    """
    from .spec import parse_duration

    spec = case.spec
    try:
        window_s = spec.monitoring.window if window is None else parse_duration(window)
    except ValueError as exc:
        raise SpecError(f"--window: {exc}", "give a duration such as 1d, 6h or 30m") from None
    if window_s <= 0:
        raise SpecError(f"--window: expected a positive duration, got {window!r}", "give a duration such as 1d or 6h")
    source = _resolve_source(case, log)  # before the registry: a wrong path fails fast
    warnings: list[dict] = []
    alias_used = None
    if bundle is None:
        bundle, alias_used = _default_bundle(case, alias)
    reference = bundle.reference
    if not reference:
        reference = _reference_from_case(case, bundle)
        warnings.append({"kind": "reference", "message": "the model has no stored monitoring reference; it was "
                         "rebuilt from the case's data (re-run `mlcase run` to store one with the model)"})
    if reference.get("version") != REFERENCE_VERSION:
        raise ModelError(f"the model's monitoring reference has version {reference.get('version')}, this mlcase "
                         f"reads {REFERENCE_VERSION}", "re-run `mlcase run` to register the model with a new reference")
    with tempfile.TemporaryDirectory(prefix="mlcase-monitor-") as tmp:
        run = _Run(case, bundle, reference, window_s, alpha, warnings, Path(tmp))
        try:
            run.load(source, labels)
            result = run.compute(now)
        finally:
            run.close()
    result.model = {"name": bundle.name, "role": bundle.role, "version": bundle.version, "alias": alias_used,
                    "threshold": bundle.threshold}
    return result


def _default_bundle(case, alias: str):
    from . import tracking

    tried = []
    for name in dict.fromkeys([alias, "champion", "baseline"]):
        try:
            return tracking.load_bundle(case, name), name
        except NotFoundError:
            tried.append(name)
    raise NotFoundError(f"no registered model under the alias(es) {', '.join(tried)} for case '{case.name}'",
                        "run `mlcase run` first, or pass a bundle")


def _reference_from_case(case, bundle) -> dict:
    from .data import prepare

    try:
        dataset = prepare(case)
    except DataError as exc:
        raise ModelError(f"the model has no monitoring reference and the case's data cannot rebuild it ({exc})",
                         "re-run `mlcase run` so the reference is stored with the model") from None
    return build_reference(dataset, bundle)


@dataclass
class _Source:
    kind: str            # "sqlite" | "sqlalchemy" | "file" | "frame"
    target: Any
    label: str


def _resolve_source(case, log) -> _Source:
    if isinstance(log, pd.DataFrame):
        return _Source("frame", log, "DataFrame")
    if log is None:
        if case.spec.serving.log:
            log = case.spec.serving.log
        else:
            path = case.root / "predictions.db"
            if not path.exists():
                raise DataError(f"no prediction log at {path}",
                                "serve the model (`mlcase serve`) to start one, or pass --log with a log or a "
                                "CSV/Parquet of recent records")
            return _Source("sqlite", path, str(path))
    text = str(log)
    if "://" in text:
        if text.startswith("sqlite:///"):
            path = Path(text.removeprefix("sqlite:///").split("?", 1)[0])
            if not path.exists():
                raise DataError(f"--log: no SQLite file at {path}", "check the URL (sqlite:///path/to/predictions.db)")
            return _Source("sqlite", path, str(path))
        return _Source("sqlalchemy", text, redact_url(text))
    path = Path(text)
    if not path.is_absolute() and not path.exists():
        path = case.resolve(path)
    if not path.exists():
        raise DataError(f"--log: no file at {path}",
                        "pass the serving log (predictions.db), a SQLAlchemy URL, or a CSV/Parquet of records")
    suffix = path.suffix.lower()
    if suffix in FILE_READERS:
        return _Source("file", path, str(path))
    with open(path, "rb") as fh:
        head = fh.read(16)
    if suffix in SQLITE_SUFFIXES or head.startswith(b"SQLite format 3"):
        return _Source("sqlite", path, str(path))
    raise DataError(f"--log: cannot read {path.name} (not SQLite, CSV or Parquet)",
                    "pass the serving log (predictions.db) or a .csv/.parquet file of records")



def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


# =========================================================================== the run
class _Run:
    """One monitoring run: a temporary DuckDB database holding the typed, windowed log."""

    def __init__(self, case, bundle, reference: dict, window_s: float, alpha: float, warnings: list, tmp: Path):
        import duckdb

        self.case, self.bundle, self.ref = case, bundle, reference
        self.spec = case.spec
        self.mon = case.spec.monitoring
        self.task = bundle.task
        self.window_s = float(window_s)
        self.alpha = alpha
        self.warnings = warnings
        self.con = duckdb.connect(str(tmp / "monitor.duckdb"))
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET temp_directory = {_lit(str(tmp / 'spill'))}")
        self.con.execute(f"SET memory_limit = {_lit(DUCKDB_MEMORY_LIMIT)}")
        self.features = [f for f in bundle.features if f in reference["features"]]
        self.kinds = {f: reference["features"][f]["kind"] for f in self.features}
        self.compared = [f for f in self.features if self.kinds[f] != "skipped"]
        classes = reference.get("classes") or ([str(c) for c in bundle.classes] if bundle.classes else None)
        self.classes = classes
        self.positive = reference.get("positive") or (classes[1] if classes and len(classes) == 2 else None)
        self.threshold = bundle.threshold if bundle.threshold is not None else reference.get("threshold")
        self.target = self.spec.data.target
        # columns besides the features that costs and assumption checks read (extracted from the inputs)
        self.extras = self._extra_columns(bundle.schema or {})
        self.col = {f: f"c{i}" for i, f in enumerate(self.features)}
        self.col.update({e: f"e{i}" for i, e in enumerate(self.extras)})
        self.has_time = False
        self.has_inline_label = False

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------ columns
    def _extra_columns(self, schema: dict) -> list[str]:
        known = [c["name"] for c in schema.get("columns", [])] or list(self.features)
        known = [c for c in known if c != self.target]
        exprs = [v for v in (self.spec.costs.true_positive, self.spec.costs.false_positive,
                             self.spec.costs.false_negative, self.spec.costs.true_negative,
                             self.spec.costs.under, self.spec.costs.over) if isinstance(v, str)]
        exprs += [a.check for a in self.spec.assumptions if a.check]
        from .rules import validate_expression

        used: list[str] = []
        for e in exprs:
            try:
                cols = validate_expression(e, known + [self.target], aggregate=True)
            except RuleError:
                continue  # reported when the expression is evaluated
            used += [c for c in cols if c not in self.features and c != self.target and c not in used]
        self.extra_kinds = feature_kinds(schema, used)
        return used

    def _sql_type(self, name: str) -> str:
        return "DOUBLE" if (self.kinds.get(name) or self.extra_kinds.get(name)) == "numeric" else "VARCHAR"

    def _value_sql(self, name: str, expr: str) -> str:
        """``expr`` (a JSON or file value) typed like the training column ``name``."""
        kind = self.kinds.get(name) or self.extra_kinds.get(name)
        if kind == "numeric":  # NaN counts as missing, like NULL
            return f"nullif(TRY_CAST({expr} AS DOUBLE), 'NaN'::DOUBLE)"
        if kind == "boolean":
            return f"lower(CAST({expr} AS VARCHAR))"
        return f"CAST({expr} AS VARCHAR)"

    def _json_struct(self) -> str:
        return json.dumps({c: self._sql_type(c) for c in [*self.features, *self.extras]})

    # ------------------------------------------------------------------ loading
    RAW_COLUMNS = ("_rid VARCHAR, _t DOUBLE, _version INTEGER, _tier VARCHAR, _fallback INTEGER, _reason VARCHAR, "
                   "_score DOUBLE, _decision VARCHAR, _prediction VARCHAR, _label0 VARCHAR, _bad_json BOOLEAN")

    def _create_raw(self) -> None:
        cols = ", ".join(f"{self.col[c]} {self._sql_type(c)}" for c in [*self.features, *self.extras])
        self.con.execute(f"CREATE TABLE raw ({self.RAW_COLUMNS}{', ' + cols if cols else ''})")
        self.con.execute("CREATE TABLE lab (_rid VARCHAR, _label VARCHAR, _lts DOUBLE, _seq BIGINT)")

    def load(self, source: _Source, labels_file) -> None:
        self._create_raw()
        if source.kind in ("sqlite", "sqlalchemy"):
            self._load_database(source)
        else:
            self._load_records(source)
        if labels_file is not None:
            self._load_labels_file(labels_file)
        self.source = source

    def _ts_sql(self, expr: str, type_name: str | None = None) -> str:
        t = (type_name or "VARCHAR").upper()
        if any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL")):
            return f"CAST({expr} AS DOUBLE)"
        return f"epoch(TRY_CAST(CAST({expr} AS VARCHAR) AS TIMESTAMPTZ))"

    def _insert_log_chunk(self, tbl) -> None:
        """Type one chunk of the predictions table into ``raw``, parsing the JSON inputs once."""
        import duckdb

        struct = _lit(self._json_struct())
        feats = ", ".join(self._value_sql(c, f"_j.{_q(c)}") for c in [*self.features, *self.extras])
        head = f"""INSERT INTO raw SELECT CAST(request_id AS VARCHAR), {self._ts_sql('ts')},
                    TRY_CAST(model_version AS INTEGER), CAST(tier AS VARCHAR), TRY_CAST(fallback AS INTEGER),
                    CAST(reason AS VARCHAR), nullif(TRY_CAST(score AS DOUBLE), 'NaN'::DOUBLE),
                    CAST(decision AS VARCHAR), CAST(prediction AS VARCHAR), NULL"""
        self.con.register("_chunk", tbl)
        try:
            try:  # the common case: every row's inputs are JSON
                self.con.execute(f"""{head}, inputs IS NULL {', ' + feats if feats else ''}
                    FROM (SELECT *, json_transform(inputs, {struct}) AS _j FROM _chunk)""")
            except duckdb.InvalidInputException:  # some are not: mark them, keep the rest
                self.con.execute(f"""{head}, NOT coalesce(json_valid(inputs), false) {', ' + feats if feats else ''}
                    FROM (SELECT *, CASE WHEN json_valid(inputs) THEN json_transform(inputs, {struct}) END AS _j
                          FROM _chunk)""")
        finally:
            self.con.unregister("_chunk")

    def _load_database(self, source: _Source) -> None:
        import pyarrow as pa

        pred_cols = ["request_id", "ts", "model_version", "tier", "fallback", "reason", "score", "decision",
                     "prediction", "inputs"]
        reader = _SqliteReader(source.target) if source.kind == "sqlite" else _SqlAlchemyReader(source.target)
        try:
            tables = reader.tables()
            if "predictions" not in tables:
                raise DataError(f"--log: {source.label} has no 'predictions' table",
                                "point --log at the serving log, or at a CSV/Parquet of records")
            have = reader.columns("predictions")
            for need in ("request_id", "inputs"):
                if need not in have:
                    raise DataError(f"--log: the predictions table in {source.label} has no '{need}' column",
                                    "use the layout in docs/contracts.md (the serving log writes it)")
            # read the next chunk while DuckDB types the current one
            for rows in _prefetch(reader.chunks("predictions", pred_cols, have)):
                self._insert_log_chunk(pa.table(rows))
            if "labels" in tables:
                lab_have = reader.columns("labels")
                if {"request_id", "label"} <= set(lab_have):
                    order = "id" if "id" in lab_have else None
                    for k, rows in enumerate(reader.chunks("labels", ["request_id", "label", "ts", "id"], lab_have,
                                                           order=order)):
                        self.con.register("_labels_chunk", pa.table(rows))
                        try:
                            self._insert_labels("_labels_chunk", seq="id" if order else None,
                                                offset=0 if order else k * CHUNK_ROWS)
                        finally:
                            self.con.unregister("_labels_chunk")
        finally:
            reader.close()
        self.has_time = bool(self.con.execute("SELECT count(_t) > 0 FROM raw").fetchall()[0][0])

    def _insert_labels(self, table: str, seq: str | None, offset: int = 0) -> None:
        """Append labels from a registered table or view (``request_id``, ``label``, ``ts``) to ``lab``."""
        types = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE {table}").fetchall()}
        seq_sql = f"CAST({seq} AS BIGINT) + {offset}" if seq else f"row_number() OVER () + {offset}"
        ts_sql = self._ts_sql("ts", types["ts"]) if "ts" in types else "NULL"
        self.con.execute(f"""INSERT INTO lab SELECT CAST(request_id AS VARCHAR), CAST(label AS VARCHAR),
                             {ts_sql}, {seq_sql} FROM {table}""")

    def _load_labels_file(self, path) -> None:
        import duckdb

        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = self.case.resolve(path)
        if not path.exists():
            raise DataError(f"--labels: no file at {path}", "pass a CSV/Parquet with request_id and label columns")
        if path.suffix.lower() not in FILE_READERS:
            raise DataError(f"--labels: unsupported file type '{path.suffix or path.name}'",
                            "use a .csv or .parquet file with request_id and label columns")
        try:
            self.con.execute(f"CREATE TABLE _label_file AS SELECT * FROM {reader_sql(path)}")
        except duckdb.Error as exc:
            raise DataError(f"--labels: cannot read {path.name}: {str(exc).splitlines()[0]}",
                            "check that the file is a valid " + path.suffix.lstrip(".").upper()) from None
        have = {r[0] for r in self.con.execute("DESCRIBE _label_file").fetchall()}
        missing = [c for c in ("request_id", "label") if c not in have]
        if missing:
            raise DataError(f"--labels: {path.name} lacks the column(s) {', '.join(missing)}",
                            "give it a request_id column (from the prediction log) and a label column, "
                            "optionally ts (when the label arrived)")
        offset = int(self.con.execute("SELECT coalesce(max(_seq), 0) FROM lab").fetchall()[0][0])
        self._insert_labels("_label_file", seq=None, offset=offset)
        self.con.execute("DROP TABLE _label_file")

    def _load_records(self, source: _Source) -> None:
        """A plain file (or DataFrame) of records: feature columns plus optional log columns."""
        import duckdb

        if source.kind == "frame":
            self.con.register("_src_frame", source.target)
            self.con.execute("CREATE VIEW src_view AS SELECT * FROM _src_frame")
        try:
            if source.kind != "frame":  # DuckDB reads the file's header here: a broken file fails here
                self.con.execute(f"CREATE VIEW src_view AS SELECT * FROM {reader_sql(source.target)}")
            types = {r[0]: r[1] for r in self.con.execute("DESCRIBE src_view").fetchall()}
        except duckdb.Error as exc:
            raise DataError(f"--log: cannot read {Path(source.label).name}: {str(exc).splitlines()[0]}",
                            "check that the file is a valid CSV or Parquet file") from None
        missing = [f for f in self.bundle.features if f not in types]
        if missing:
            raise DataError(f"--log: {source.label} lacks the model's feature column(s) {', '.join(missing[:10])}",
                            "give the records file every feature column the model was trained on")

        def pick(*names):
            return next((c for c in names if c and c in types and c not in self.features), None)

        ts = pick("ts", self.spec.data.time)
        rid = pick("request_id", self.spec.data.id)
        label = pick("label", self.target)
        score, decision, prediction = pick("score"), pick("decision"), pick("prediction")
        tier, fallback, reason = pick("tier"), pick("fallback"), pick("reason")
        self.has_time = ts is not None
        self.has_inline_label = label is not None
        scored = score is None
        if scored:  # number the rows once, score them in chunks, join the scores back by row number
            self.con.execute("CREATE TABLE src AS SELECT row_number() OVER () - 1 AS _row, * FROM src_view")
            self._score_records(int(self.con.execute("SELECT count(*) FROM src").fetchall()[0][0]))
        exprs = [f"CAST({_q(rid)} AS VARCHAR)" if rid else (
                     "CAST(_row AS VARCHAR)" if scored else "CAST(row_number() OVER () - 1 AS VARCHAR)"),
                 self._ts_sql(_q(ts), types[ts]) if ts else "NULL",
                 "NULL", f"CAST({_q(tier)} AS VARCHAR)" if tier else "'model'",
                 f"TRY_CAST({_q(fallback)} AS INTEGER)" if fallback else "0",
                 f"CAST({_q(reason)} AS VARCHAR)" if reason else "NULL",
                 f"nullif(TRY_CAST({_q(score)} AS DOUBLE), 'NaN'::DOUBLE)" if score else "_s._score",
                 (f"CAST({_q(decision)} AS VARCHAR)" if decision else ("_s._decision" if scored else "NULL")),
                 (f"CAST({_q(prediction)} AS VARCHAR)" if prediction else ("_s._prediction" if scored else "NULL")),
                 f"CAST({_q(label)} AS VARCHAR)" if label else "NULL", "false"]
        for c in [*self.features, *self.extras]:
            exprs.append(self._value_sql(c, _q(c)) if c in types else "NULL")
        frm = "src LEFT JOIN _scored _s USING (_row)" if scored else "src_view"
        self.con.execute(f"INSERT INTO raw SELECT {', '.join(exprs)} FROM {frm}")
        for stmt in ("DROP TABLE IF EXISTS src", "DROP TABLE IF EXISTS _scored", "DROP VIEW src_view"):
            self.con.execute(stmt)
        if source.kind == "frame":
            self.con.unregister("_src_frame")
        if not self.con.execute("SELECT count(*) FROM raw").fetchall()[0][0]:
            raise DataError(f"--log: {source.label} has no rows", "pass a file with recent records")

    def _score_records(self, n: int) -> None:
        """Scores, decisions and predictions of a records file that carries none, in chunks."""
        import pyarrow as pa

        from .data import _normalise_frame

        cols = ", ".join(_q(f) for f in self.bundle.features)
        parts = []
        for start in range(0, n, CHUNK_ROWS):
            df = self.con.execute(f"SELECT {cols} FROM src WHERE _row >= ? AND _row < ? ORDER BY _row",
                                  [start, start + CHUNK_ROWS]).df()
            df = _normalise_frame(df)
            try:
                scores = self.bundle.scores(df[self.bundle.features])
            except Exception as exc:
                raise DataError(f"--log: the model cannot score the records ({type(exc).__name__}: "
                                f"{str(exc)[:160]})", "check the records' column types against the training data") from None
            decided = self.bundle.decide(scores)
            if self.task == "binary":
                flag = np.asarray(decided).astype(int)
                dec = np.where(flag == 1, "flag", "auto")
                pred = (np.where(flag == 1, self.classes[1], self.classes[0]) if self.classes
                        else flag.astype(str))
                score_v = np.asarray(scores, dtype=float)
            elif self.task == "multiclass":
                dec = np.full(len(df), "auto")
                pred = np.asarray(decided).astype(str)
                score_v = np.max(scores, axis=1)
            else:
                dec = np.full(len(df), "auto")
                score_v = np.asarray(scores, dtype=float)
                pred = score_v.astype(str)
            parts.append(pa.table({"_row": pa.array(np.arange(start, start + len(df)), pa.int64()),
                                   "_score": pa.array(score_v, pa.float64()),
                                   "_decision": pa.array(dec.astype(str), pa.string()),
                                   "_prediction": pa.array(np.asarray(pred).astype(str), pa.string())}))
        self.con.register("_scored_arrow", pa.concat_tables(parts))
        self.con.execute("CREATE TABLE _scored AS SELECT * FROM _scored_arrow")
        self.con.unregister("_scored_arrow")

    # ------------------------------------------------------------------ the windowed log
    def _build_log(self) -> None:
        """``log``: the raw rows with their window, last label, fallback flag and binary decision flag."""
        W = self.window_s
        pos = _lit(self.positive) if self.positive is not None else "NULL"
        neg = _lit(self.classes[0]) if self.classes else "NULL"
        thr = float(self.threshold) if self.threshold is not None else 0.5
        if self.task == "binary":
            # the model's flag: serving writes decision flag/auto/review and the predicted class; a records
            # file may carry 0/1 or the class names instead; without either, the score at the threshold
            flag = f"""CASE WHEN r._decision = 'flag' THEN 1 WHEN r._decision = 'auto' THEN 0
                WHEN r._prediction = {pos} THEN 1 WHEN r._prediction = {neg} THEN 0
                WHEN r._decision = {pos} OR lower(r._decision) IN ('1', '1.0', 'true', 'yes') THEN 1
                WHEN r._decision = {neg} OR lower(r._decision) IN ('0', '0.0', 'false', 'no') THEN 0
                WHEN r._score IS NOT NULL THEN CAST(r._score >= {thr} AS INTEGER) END"""
            decision = f"""CASE WHEN g._decision IN ('flag', 'auto', 'review') THEN g._decision
                WHEN g._flag IS NULL THEN g._decision
                WHEN g._decision IS NULL OR g._decision = {pos} OR g._decision = {neg}
                     OR lower(g._decision) IN ('1', '1.0', 'true', 'yes', '0', '0.0', 'false', 'no')
                     THEN CASE WHEN g._flag = 1 THEN 'flag' ELSE 'auto' END
                ELSE g._decision END"""
        else:
            flag = "NULL"
            decision = "coalesce(g._decision, 'auto')"
        window = f"CAST(floor(r._t / {W}) AS BIGINT)" if self.has_time else "CAST(0 AS BIGINT)"
        label = "coalesce(l._label, r._label0)" if self.has_inline_label else "l._label"
        self.con.execute("""CREATE TABLE lastlab AS SELECT _rid, _label, _lts FROM lab
                            QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY _seq DESC) = 1""")
        self.con.execute(f"""CREATE TABLE wmap AS SELECT _w, CAST(row_number() OVER (ORDER BY _w) - 1 AS INTEGER)
                             AS _wi FROM (SELECT DISTINCT {window} AS _w FROM raw r WHERE _w IS NOT NULL)""")
        self.windows = [int(r[0]) for r in self.con.execute("SELECT _w FROM wmap ORDER BY _wi").fetchall()]
        self.n_no_time = int(self.con.execute("SELECT count(*) FROM raw WHERE _t IS NULL").fetchall()[0][0]
                             ) if self.has_time else 0
        if self.n_no_time:
            self.warnings.append({"kind": "timestamps", "message": f"{self.n_no_time} logged rows have no readable "
                                  "timestamp and were left out"})
        if not self.windows:
            raise DataError(f"--log: {self.source.label} holds no predictions" + (
                " with a readable timestamp" if self.n_no_time else ""),
                "serve some traffic first, or pass a file of recent records")
        self.con.execute(f"""
            CREATE TABLE log AS SELECT g.*, {decision} AS _dec FROM (
                SELECT r.*, m._wi, {label} AS _label, l._lts AS _lts, {flag} AS _flag,
                       (coalesce(r._fallback, 0) = 1 OR coalesce(r._tier, 'model') <> 'model') AS _fb
                FROM raw r JOIN wmap m ON m._w = {window} LEFT JOIN lastlab l ON l._rid = r._rid) g""")
        self.con.execute("DROP TABLE raw")

    # ------------------------------------------------------------------ compute
    def compute(self, now) -> MonitorResult:
        self._build_log()
        W = len(self.windows)
        base = self._window_basics()
        as_of = self._as_of(now)
        delay = self.spec.data.label_delay
        windows: list[dict] = []
        for i, w in enumerate(self.windows):
            b = base[i]
            start = w * self.window_s if self.has_time else None
            end = (w + 1) * self.window_s if self.has_time else None
            mature = True
            if delay and self.has_time and as_of is not None:
                mature = end + delay <= as_of
            windows.append({
                "window": _iso(start) if start is not None else "all", "start": _iso(start), "end": _iso(end),
                "n": b["n"], "too_small": b["n"] < self.mon.min_window_rows, "mature": mature,
                "drift": {}, "score_drift": None, "decisions": {}, "predictions": {},
                "fallback": {"count": b["n_fallback"], "share": b["n_fallback"] / b["n"] if b["n"] else 0.0,
                             "by_tier": {}, "by_reason": {}},
                "labels": {"labelled": b["n_labelled"],
                           "unlabelled_share": 1 - b["n_labelled"] / b["n"] if b["n"] else None,
                           "delay_median_s": b["delay_median"], "delay_p90_s": b["delay_p90"]},
                "realized": None, "realized_so_far": None, "estimated": None, "assumptions": [],
                "invalid_inputs": b["n_bad_json"]})
        overall: dict[str, Any] = {"n": int(sum(b["n"] for b in base)), "drift": {}, "score_drift": None}
        self._drift(windows, overall, W)
        self._decisions(windows)
        self._fallback(windows)
        label_summary = self._label_summary()
        self._performance(windows)
        self._assumptions(windows)
        alerts = self._alerts(windows)
        self._summary_warnings(windows, overall, label_summary)
        thresholds = {"psi_alert": self.mon.psi_alert, "psi_warn": self.mon.psi_warn, "alpha": self.alpha,
                      "max_fallback_share": self.mon.max_fallback_share,
                      "max_estimated_cost": self.mon.max_estimated_cost,
                      "max_realized_cost": self.mon.max_realized_cost, "min_window_rows": self.mon.min_window_rows,
                      "label_delay_seconds": delay}
        return MonitorResult(case=self.case.name, source=self.source.label, model={}, task=self.task,
                             window_seconds=self.window_s, as_of=_iso(as_of), thresholds=thresholds,
                             features=list(self.features), windows=windows, overall=overall,
                             labels=label_summary, alerts=alerts, warnings=self.warnings)

    def _window_basics(self) -> list[dict]:
        rows = self.con.execute("""
            SELECT _wi, count(*), sum(CAST(_fb AS INTEGER)), count(_label),
                   median(_lts - _t) FILTER (WHERE _label IS NOT NULL AND _lts IS NOT NULL),
                   quantile_cont(_lts - _t, 0.9) FILTER (WHERE _label IS NOT NULL AND _lts IS NOT NULL),
                   sum(CAST(_bad_json AS INTEGER))
            FROM log GROUP BY _wi ORDER BY _wi""").fetchall()
        return [{"n": int(r[1]), "n_fallback": int(r[2] or 0), "n_labelled": int(r[3]),
                 "delay_median": _num(r[4]), "delay_p90": _num(r[5]), "n_bad_json": int(r[6] or 0)} for r in rows]

    def _as_of(self, now) -> float | None:
        if now is not None:
            ts = pd.Timestamp(now)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            return ts.timestamp()
        if not self.has_time:
            return None
        r = self.con.execute("SELECT max(_t), max(_lts) FROM log").fetchall()[0]
        vals = [v for v in r if v is not None]
        return float(max(vals)) if vals else None

    # ------------------------------------------------------------------ drift
    def _drift(self, windows: list[dict], overall: dict, W: int) -> None:
        n_rows = np.array([w["n"] for w in windows] + [overall["n"]], dtype=float)
        numeric = {f: (self.col[f], self.ref["features"][f]) for f in self.compared
                   if self.ref["features"][f]["kind"] == "numeric"}
        score_ref = self.ref.get("score")
        if score_ref and score_ref["n"]:
            numeric["_score"] = ("_score", score_ref)
        counts = self._numeric_counts(numeric, W)
        for f in self.compared:
            ref = self.ref["features"][f]
            if ref["kind"] == "numeric":
                stats = self._numeric_drift(counts[f], ref, W, with_missing=True)
            else:
                stats = self._categorical_drift(self.col[f], ref, W)
            for i, st in enumerate(stats):
                st["status"] = self._status(st, n_rows[i])
                (windows[i]["drift"] if i < W else overall["drift"])[f] = st
        if "_score" in counts:
            stats = self._numeric_drift(counts["_score"], score_ref, W, with_missing=False)
            for i, st in enumerate(stats):
                st["status"] = self._status(st, st["n"])
                if i < W:
                    windows[i]["score_drift"] = st
                else:
                    overall["score_drift"] = st

    def _status(self, st: dict, n: float) -> str:
        if n < self.mon.min_window_rows:
            return "too_small"
        p = st.get("p_value")
        significant = p is not None and p < self.alpha
        if significant and st["psi"] >= self.mon.psi_alert:
            return "drift"
        if significant and st["psi"] >= self.mon.psi_warn:
            return "warn"
        return "ok"

    def _numeric_counts(self, columns: dict[str, tuple[str, dict]], W: int) -> dict[str, dict]:
        """Per window and numeric column: counts at the reference's bin edges and KS grid, in one scan.

        DuckDB's ``histogram(x, boundaries)`` counts ``prev < x <= boundary`` (and past
        the last boundary), so counts at or below every edge and grid point follow by
        a cumulative sum; the log is read once for all columns, in parallel.
        """
        out: dict[str, dict] = {}
        aggs, plan = [], []
        for key, (col, ref) in columns.items():
            bounds = np.union1d(np.asarray(ref["grid"], dtype=float), np.asarray(ref["edges"], dtype=float))
            plan.append((key, bounds))
            hist = f"histogram({col}, {_double_list(bounds)})" if len(bounds) else "NULL"
            aggs.append(f"{hist}, count({col}), sum({col})")
        rows = self.con.execute(f"SELECT _wi, count(*){', ' + ', '.join(aggs) if aggs else ''} FROM log "
                                "GROUP BY _wi").fetchall()
        for k, (key, bounds) in enumerate(plan):
            below = np.zeros((W + 1, len(bounds)))  # count of x <= bound
            nn, n, sums = np.zeros(W + 1), np.zeros(W + 1), np.zeros(W + 1)
            for r in rows:
                wi = int(r[0])
                hist, nn[wi], sums[wi], n[wi] = r[2 + 3 * k], r[3 + 3 * k], r[4 + 3 * k] or 0.0, r[1]
                if hist:
                    below[wi] = np.cumsum([hist.get(float(b), 0) for b in bounds])
            below[W], nn[W], n[W], sums[W] = below[:W].sum(0), nn[:W].sum(), n[:W].sum(), sums[:W].sum()
            out[key] = {"bounds": bounds, "below": below, "nonmissing": nn, "n": n, "sum": sums}
        return out

    def _numeric_drift(self, c: dict, ref: dict, W: int, with_missing: bool) -> list[dict]:
        from scipy import special

        edges = np.asarray(ref["edges"], dtype=float)
        grid = np.asarray(ref["grid"], dtype=float)
        bounds, below, nn = c["bounds"], c["below"], c["nonmissing"]
        nmiss = c["n"] - nn
        # PSI bins (-inf, e1], (e1, e2], ..., (e_last, inf) from the counts at or below each edge
        at_edges = below[:, np.searchsorted(bounds, edges)] if len(edges) else np.zeros((W + 1, 0))
        nonmissing = np.diff(np.hstack([np.zeros((W + 1, 1)), at_edges, nn[:, None]]), axis=1)
        bins = np.hstack([nonmissing, nmiss[:, None]])
        K = nonmissing.shape[1]
        mr_ref = float(ref["missing_rate"]) if with_missing else 0.0
        ref_p = np.asarray(ref["shares"], dtype=float)
        if with_missing:
            ref_full = np.concatenate([ref_p * (1 - mr_ref), [mr_ref]])
            cur = bins
        else:
            ref_full, cur = ref_p, bins[:, :K]
        psi, js = psi_js(cur, ref_full)
        # KS from the ECDF at the reference quantile grid (exact where the data have few distinct values)
        with np.errstate(invalid="ignore", divide="ignore"):
            F = below[:, np.searchsorted(bounds, grid)] / nn[:, None]
        D = (np.nanmax(np.abs(F - np.asarray(ref["cdf"], dtype=float)), axis=1) if len(grid)
             else np.full(len(nn), np.nan))
        n_ref = float(ref["n"])
        with np.errstate(invalid="ignore", divide="ignore"):
            en = np.sqrt(n_ref * nn / (n_ref + nn))
            ks_p = special.kolmogorov((en + 0.12 + 0.11 / en) * D)
        out = []
        for i in range(len(nn)):
            n_tot = nn[i] + nmiss[i]
            p_dist = float(ks_p[i]) if nn[i] > 0 and n_ref > 0 and np.isfinite(ks_p[i]) else None
            st = {"kind": "numeric", "n": int(n_tot if with_missing else nn[i]), "psi": float(psi[i]), "js": float(js[i]),
                  "ks": float(D[i]) if nn[i] > 0 else None, "ks_p": p_dist,
                  "mean": float(c["sum"][i] / nn[i]) if nn[i] else None, "mean_ref": ref.get("mean")}
            if with_missing:
                mr = nmiss[i] / n_tot if n_tot else 0.0
                p_miss = _two_proportion_p(mr_ref, n_ref / (1 - mr_ref) if mr_ref < 1 else n_ref, mr, n_tot)
                st.update({"missing_rate": float(mr), "missing_rate_ref": mr_ref, "missing_change": float(mr - mr_ref)})
                st["p_value"] = _combine(p_dist, p_miss if (mr_ref > 0 or mr > 0) else None)
            else:
                st["p_value"] = p_dist
            out.append(st)
        return out

    def _categorical_drift(self, column: str, ref: dict, W: int) -> list[dict]:
        from scipy import stats as sps

        cats = list(ref["shares"])
        index = {c: i for i, c in enumerate(cats)}
        K = len(cats)
        other_share = float(ref.get("other_share") or 0.0)
        # columns: categories, other, unseen, missing
        counts = np.zeros((W + 1, K + 3))
        unseen: list[Counter] = [Counter() for _ in range(W + 1)]
        for wi, value, c in self.con.execute(f"SELECT _wi, {column}, count(*) FROM log GROUP BY ALL").fetchall():
            wi = int(wi)
            if value is None:
                j = K + 2
            elif value in index:
                j = index[value]
            elif other_share > 0:
                j = K
            else:
                j = K + 1
                unseen[wi][value] += c
                unseen[W][value] += c
            counts[wi, j] += c
        counts[W] = counts[:W].sum(0)
        mr_ref = float(ref["missing_rate"])
        n_ref = float(ref["n"])
        ref_nonmissing = np.array([ref["shares"][c] for c in cats] + [other_share, 0.0])
        ref_full = np.concatenate([ref_nonmissing * (1 - mr_ref), [mr_ref]])
        psi, js = psi_js(counts, ref_full)
        out = []
        for i in range(W + 1):
            nn = counts[i, :K + 2].sum()
            nmiss = counts[i, K + 2]
            n_tot = nn + nmiss
            stat, p_dist = None, None
            if nn > 0 and n_ref > 0:
                obs = np.vstack([ref_nonmissing * n_ref, counts[i, :K + 2]])
                keep = obs.sum(0) > 0
                obs = obs[:, keep]
                if obs.shape[1] >= 2:
                    expected = obs.sum(1, keepdims=True) * obs.sum(0, keepdims=True) / obs.sum()
                    stat = float(((obs - expected) ** 2 / expected).sum())
                    p_dist = float(sps.chi2.sf(stat, obs.shape[1] - 1))
                else:
                    stat, p_dist = 0.0, 1.0
            mr = nmiss / n_tot if n_tot else 0.0
            p_miss = _two_proportion_p(mr_ref, n_ref / (1 - mr_ref) if mr_ref < 1 else n_ref, mr, n_tot)
            n_unseen = int(counts[i, K + 1])
            out.append({"kind": ref["kind"], "n": int(n_tot), "psi": float(psi[i]), "js": float(js[i]),
                        "chi2": stat, "chi2_p": p_dist,
                        "p_value": _combine(p_dist, p_miss if (mr_ref > 0 or mr > 0) else None),
                        "missing_rate": float(mr), "missing_rate_ref": mr_ref, "missing_change": float(mr - mr_ref),
                        "unseen": {"count": n_unseen, "share": n_unseen / nn if nn else 0.0,
                                   "examples": [str(v) for v, _ in unseen[i].most_common(5)]}})
        return out

    # ------------------------------------------------------------------ decisions and fallbacks
    def _decisions(self, windows: list[dict]) -> None:
        ref_dec = self.ref.get("decisions") or {}
        for wi, dec, c in self.con.execute("SELECT _wi, coalesce(_dec, '(none)'), count(*) FROM log GROUP BY ALL "
                                           "ORDER BY 1, 2").fetchall():
            windows[int(wi)]["decisions"][str(dec)] = c / windows[int(wi)]["n"]
        if self.task != "regression":
            for wi, pred, c in self.con.execute("SELECT _wi, coalesce(_prediction, '(none)'), count(*) FROM log "
                                                "GROUP BY ALL ORDER BY 1, 2").fetchall():
                windows[int(wi)]["predictions"][str(pred)] = c / windows[int(wi)]["n"]
        for wi, version, c in self.con.execute("SELECT _wi, _version, count(*) FROM log WHERE _version IS NOT NULL "
                                               "GROUP BY ALL ORDER BY 1, 2").fetchall():
            windows[int(wi)].setdefault("model_versions", {})[str(version)] = c / windows[int(wi)]["n"]
        for w in windows:
            keys = sorted(set(ref_dec) | set(w["decisions"]))
            w["decisions_ref"] = ref_dec
            if ref_dec:
                cur = np.array([[w["decisions"].get(k, 0.0) for k in keys]])
                w["decisions_psi"] = float(psi_js(cur, np.array([ref_dec.get(k, 0.0) for k in keys]))[0][0])
            if self.task == "binary":
                w["flag_rate"] = w["decisions"].get("flag", 0.0)
                w["flag_rate_ref"] = ref_dec.get("flag")

    def _fallback(self, windows: list[dict]) -> None:
        for wi, tier, c in self.con.execute("SELECT _wi, coalesce(_tier, 'model'), count(*) FROM log "
                                            "GROUP BY ALL ORDER BY 1, 2").fetchall():
            windows[int(wi)]["fallback"]["by_tier"][str(tier)] = c / windows[int(wi)]["n"]
        for wi, reason, c in self.con.execute("""SELECT _wi, coalesce(_reason, '(none)'), count(*) FROM log
                                                 WHERE _fb GROUP BY ALL ORDER BY 1, 3 DESC""").fetchall():
            by = windows[int(wi)]["fallback"]["by_reason"]
            if len(by) < 20:
                by[str(reason)] = c / windows[int(wi)]["n"]

    # ------------------------------------------------------------------ labels
    def _label_summary(self) -> dict:
        r = self.con.execute("""
            WITH per AS (SELECT _rid, count(*) AS n, count(DISTINCT _label) AS nv FROM lab GROUP BY _rid)
            SELECT (SELECT count(*) FROM lab), count(*), count(*) FILTER (WHERE n > 1),
                   coalesce(sum(n - 1) FILTER (WHERE n > 1), 0), count(*) FILTER (WHERE nv > 1) FROM per""").fetchall()[0]
        unmatched = self.con.execute("""SELECT count(*) FROM lastlab l WHERE NOT EXISTS
                                        (SELECT 1 FROM log g WHERE g._rid = l._rid)""").fetchall()[0][0]
        examples = [x[0] for x in self.con.execute("""SELECT _rid FROM (SELECT _rid, count(*) n FROM lab GROUP BY _rid)
                                                      WHERE n > 1 ORDER BY _rid LIMIT 5""").fetchall()]
        matched = self.con.execute("SELECT count(_label) FROM log").fetchall()[0][0]
        return {"rows": int(r[0]), "request_ids": int(r[1]), "duplicated_request_ids": int(r[2]),
                "duplicate_rows": int(r[3]), "conflicting_request_ids": int(r[4]),
                "duplicate_examples": examples, "unmatched_request_ids": int(unmatched),
                "matched": int(matched), "unreadable": 0, "policy": "last label per request id wins"}

    def _encode_labels(self, labels: pd.Series) -> np.ndarray:
        """Labels as the task's targets: binary 0/1 (NaN if unknown), regression floats, multiclass strings."""
        s = labels.astype("str")
        if self.task == "regression":
            return pd.to_numeric(s, errors="coerce").to_numpy("float64")
        if self.task == "multiclass":
            return s.to_numpy()
        y = np.full(len(s), np.nan)
        neg = self.classes[0] if self.classes else None
        y[(s == str(self.positive)).to_numpy()] = 1
        y[(s == str(neg)).to_numpy()] = 0
        low = s.str.lower()
        unknown = np.isnan(y)
        y[unknown & low.isin(["1", "1.0", "true", "yes"]).to_numpy()] = 1
        y[unknown & low.isin(["0", "0.0", "false", "no"]).to_numpy()] = 0
        return y

    # ------------------------------------------------------------------ performance
    def _window_frame(self, wi: int, columns: list[str], labelled_only: bool = False) -> pd.DataFrame:
        inner = [c for c in columns if c in self.col]
        sel = ["_score", "_flag", "_dec", "_prediction", "_label"] + [f"{self.col[c]} AS {_q(c)}" for c in inner]
        where = "_wi = ?" + (" AND _label IS NOT NULL" if labelled_only else "")
        return self.con.execute(f"SELECT {', '.join(sel)} FROM log WHERE {where}", [wi]).df()

    def _cost_columns(self) -> list[str]:
        c = self.spec.costs
        exprs = [v for v in (c.true_positive, c.false_positive, c.false_negative, c.true_negative, c.under, c.over)
                 if isinstance(v, str)]
        from .rules import validate_expression

        cols: list[str] = []
        for e in exprs:
            try:
                cols += validate_expression(e, list(self.col), aggregate=True)
            except RuleError:
                cols += [n for n in self.col if n in e]
        return list(dict.fromkeys(cols))

    def _performance(self, windows: list[dict]) -> None:
        cost_cols = self._cost_columns()
        cost_problem: str | None = None
        unreadable = 0
        for wi, w in enumerate(windows):
            need_est = self.task == "binary"
            if not need_est and w["labels"]["labelled"] == 0:
                continue
            df = self._window_frame(wi, cost_cols, labelled_only=not need_est)
            costs, problem = self._row_costs(df)
            cost_problem = cost_problem or problem
            if need_est:
                p_all, f_all = _floats(df["_score"]), _floats(df["_flag"])
                scored = ~np.isnan(p_all) & ~np.isnan(f_all)
                if scored.any():
                    p, f = p_all[scored], f_all[scored]
                    w["estimated"] = _cbpe(p, f, costs.take(scored) if costs is not None else None)
                    w["estimated"]["n"] = int(scored.sum())
            lab = df[df["_label"].notna()]
            if len(lab) == 0:
                continue
            y = self._encode_labels(lab["_label"])
            known = ~pd.isna(y) if self.task == "multiclass" else ~np.isnan(y)
            unreadable += int((~known).sum())
            idx = np.flatnonzero(df["_label"].notna().to_numpy())[known]
            realized = self._realized(df.iloc[idx], y[known], costs.take(idx) if costs is not None else None)
            if realized is None:
                continue
            if w["mature"]:
                w["realized"] = realized
            else:
                w["realized_so_far"] = realized
        if cost_problem:
            self.warnings.append({"kind": "costs", "message": f"business cost not computed: {cost_problem}"})
        self._unreadable_labels = unreadable

    def _row_costs(self, df: pd.DataFrame):
        """Per-row costs for the window (binary: RowCosts; None where the task or the log cannot give them)."""
        if self.task != "binary":
            return None, None
        from .tasks import binary_costs

        rows = df.drop(columns=[c for c in df.columns if c.startswith("_")])
        try:
            return binary_costs(self.case, rows), None
        except RuleError as exc:
            return None, str(exc)

    def _realized(self, df: pd.DataFrame, y: np.ndarray, costs) -> dict | None:
        n = len(y)
        if n == 0:
            return None
        out: dict[str, Any] = {"n": int(n)}
        if self.task == "binary":
            f = _floats(df["_flag"])
            ok = ~np.isnan(f)
            yk, fk = y[ok].astype(int), f[ok].astype(int)
            if len(yk):
                tp = int(((fk == 1) & (yk == 1)).sum())
                out.update({"accuracy": float((fk == yk).mean()),
                            "precision": tp / int(fk.sum()) if fk.sum() else None,
                            "recall": tp / int(yk.sum()) if yk.sum() else None,
                            "flag_rate": float(fk.mean()), "positive_rate": float(yk.mean())})
                if costs is not None:
                    per = costs.take(np.flatnonzero(ok)).of(yk, fk)
                    out["cost"] = float(per.mean())
                    out["cost_total"] = float(per.sum())
            p = _floats(df["_score"])
            has = ~np.isnan(p)
            if has.sum() and len(np.unique(y[has])) == 2:
                out.update(_probability_metrics(y[has], p[has]))
        elif self.task == "regression":
            from .tasks import get_task, regression_cost

            pred = _floats(df["_score"])
            ok = ~np.isnan(pred)
            if ok.sum() == 0:
                return None
            out.update(get_task("regression").metrics(y[ok], pred[ok]))
            rows = df.iloc[np.flatnonzero(ok)].drop(columns=[c for c in df.columns if c.startswith("_")])
            try:
                per = regression_cost(self.case, rows, y[ok], pred[ok])
                out["cost"], out["cost_total"] = float(per.mean()), float(per.sum())
            except RuleError as exc:
                self.warnings.append({"kind": "costs", "message": f"business cost not computed: {exc}"})
        else:
            pred = df["_prediction"].astype("str").to_numpy()
            from sklearn import metrics as m

            out.update({"accuracy": float(np.mean(pred == y)),
                        "macro_f1": float(m.f1_score(y, pred, average="macro", zero_division=0))})
            if self.spec.costs.matrix:
                from .tasks import multiclass_cost

                per = multiclass_cost(self.case, y, pred)
                out["cost"], out["cost_total"] = float(per.mean()), float(per.sum())
        return out

    # ------------------------------------------------------------------ assumptions
    def _assumptions(self, windows: list[dict]) -> None:
        """Each ``assumptions[].check``, validated by :class:`mlcase.rules.Rule`, evaluated per window.

        One grouped DuckDB query per assumption over a view of the log with the
        case's column names (the target holds the joined labels), with external
        access off as in :meth:`Rule.check`.
        """
        from .rules import Rule

        checks = [(k, a) for k, a in enumerate(self.spec.assumptions) if a.check]
        if not checks:
            return
        available = [*self.col, self.target]
        target_sql = ("TRY_CAST(_label AS DOUBLE)" if self._target_is_numeric() else "_label")
        cols = ", ".join(f"{self.col[c]} AS {_q(c)}" for c in self.col)
        self.con.execute(f"""CREATE VIEW named AS SELECT _wi, _label IS NOT NULL AS _labelled,
                             {cols + ', ' if cols else ''}{target_sql} AS {_q(self.target)} FROM log""")
        self.con.execute("SET enable_external_access = false")
        import duckdb

        for k, a in checks:
            where = f"assumptions[{k}].check"
            try:
                rule = Rule(expression=a.check, columns=available, kind="aggregate", where=where)
            except RuleError as exc:
                self.warnings.append({"kind": "assumption", "assumption": a.text,
                                      "message": f"not checked on the log: {exc}"})
                continue
            uses_target = a.needs_labels if a.needs_labels is not None else self.target in rule.used_columns
            try:
                rows = self.con.execute(f"""SELECT _wi, ({rule.expression}) AS v, count(*) FROM named
                                            {'WHERE _labelled' if uses_target else ''} GROUP BY _wi""").fetchall()
            except duckdb.Error as exc:
                self.warnings.append({"kind": "assumption", "assumption": a.text,
                                      "message": f"{where}: DuckDB cannot evaluate it on the log: "
                                                 f"{str(exc).splitlines()[0]}"})
                continue
            values = {int(r[0]): (r[1], int(r[2])) for r in rows}
            for wi, w in enumerate(windows):
                entry = {"text": a.text, "check": a.check, "needs_labels": bool(uses_target)}
                if uses_target and (not w["mature"] or w["labels"]["labelled"] == 0):
                    entry.update({"status": "waiting_for_labels", "value": None, "n": w["labels"]["labelled"]})
                    w["assumptions"].append(entry)
                    continue
                value, n = values.get(wi, (None, 0))
                value = value.item() if hasattr(value, "item") else value
                entry.update({"value": value, "n": n})
                if value is None:
                    entry["status"] = "unknown"
                elif bool(value):
                    entry["status"] = "ok"
                else:
                    entry["status"] = "broken" if n >= self.mon.min_window_rows else "too_small"
                w["assumptions"].append(entry)

    def _target_is_numeric(self) -> bool:
        cols = {c["name"]: c for c in (self.bundle.schema or {}).get("columns", [])}
        return self.task == "regression" or cols.get(self.target, {}).get("kind") == "numeric"

    # ------------------------------------------------------------------ alerts
    def _alerts(self, windows: list[dict]) -> list[dict]:
        mon = self.mon
        alerts: list[dict] = []
        for w in windows:
            name = w["window"]
            for f, st in w["drift"].items():
                if st["status"] == "drift":
                    test = "KS" if st["kind"] == "numeric" else "chi-square"
                    alerts.append({"kind": "drift", "feature": f, "window": name, "value": st["psi"],
                                   "threshold": mon.psi_alert,
                                   "message": f"{f}: PSI {st['psi']:.3f} >= {mon.psi_alert:g} in window {name} "
                                              f"({test} p={st['p_value']:.2g}, missing {st['missing_rate']:.1%} vs "
                                              f"{st['missing_rate_ref']:.1%} in training)"})
            sd = w["score_drift"]
            if sd and sd["status"] == "drift":
                alerts.append({"kind": "score_drift", "feature": "score", "window": name, "value": sd["psi"],
                               "threshold": mon.psi_alert,
                               "message": f"score distribution: PSI {sd['psi']:.3f} >= {mon.psi_alert:g} in window "
                                          f"{name} (KS p={sd['p_value']:.2g})"})
            fb = w["fallback"]
            if fb["share"] > mon.max_fallback_share and (not w["too_small"] or fb["share"] >= 1.0):
                tiers = ", ".join(f"{t} {s:.1%}" for t, s in fb["by_tier"].items() if t != "model")
                top = next(iter(fb["by_reason"]), None)
                alerts.append({"kind": "fallback", "feature": None, "window": name, "value": fb["share"],
                               "threshold": mon.max_fallback_share,
                               "message": f"{fb['share']:.1%} of answers in window {name} came from a fallback tier "
                                          f"({tiers or 'no tier named'}) > {mon.max_fallback_share:.1%}"
                                          + (f"; most common reason: {top}" if top else "")})
            est = w["estimated"]
            if (mon.max_estimated_cost is not None and est and est.get("cost") and not w["too_small"]
                    and est["cost"]["value"] > mon.max_estimated_cost):
                c = est["cost"]
                alerts.append({"kind": "estimated_cost", "feature": None, "window": name, "value": c["value"],
                               "threshold": mon.max_estimated_cost,
                               "message": f"estimated cost per decision {c['value']:.4g} (95% band {c['low']:.4g} to "
                                          f"{c['high']:.4g}) > {mon.max_estimated_cost:g} in window {name}, "
                                          "before labels"})
            real = w["realized"]
            if (mon.max_realized_cost is not None and real and real.get("cost") is not None
                    and real["n"] >= mon.min_window_rows and real["cost"] > mon.max_realized_cost):
                alerts.append({"kind": "realized_cost", "feature": None, "window": name, "value": real["cost"],
                               "threshold": mon.max_realized_cost,
                               "message": f"realized cost per decision {real['cost']:.4g} > "
                                          f"{mon.max_realized_cost:g} in window {name} ({real['n']} labelled rows)"})
            for a in w["assumptions"]:
                if a["status"] == "broken":
                    alerts.append({"kind": "assumption", "assumption": a["text"], "feature": None, "window": name,
                                   "value": a["value"], "threshold": None,
                                   "message": f"assumption broken in window {name}: \"{a['text']}\" "
                                              f"(check {a['check']} is false)"})
        return alerts

    def _summary_warnings(self, windows: list[dict], overall: dict, labels: dict) -> None:
        labels["unreadable"] = getattr(self, "_unreadable_labels", 0)
        warn = self.warnings
        if labels["duplicated_request_ids"]:
            warn.append({"kind": "labels", "message": f"{labels['duplicated_request_ids']} request ids have more than "
                         f"one label ({labels['conflicting_request_ids']} with different values); the last one wins"})
        if labels["unmatched_request_ids"]:
            warn.append({"kind": "labels", "message": f"{labels['unmatched_request_ids']} labelled request ids are not "
                         "in the prediction log"})
        if labels["unreadable"]:
            warn.append({"kind": "labels", "message": f"{labels['unreadable']} labels are not a class of the target "
                         f"({', '.join(self.classes or [])}) and were left out"})
        immature = [w["window"] for w in windows if not w["mature"]]
        if immature:
            warn.append({"kind": "immature", "message": f"{len(immature)} window(s) are younger than the label delay; "
                         "their realized performance is not final (from " + immature[0] + ")"})
        small = [w["window"] for w in windows if w["too_small"]]
        if small:
            warn.append({"kind": "too_small", "message": f"{len(small)} window(s) have fewer than "
                         f"{self.mon.min_window_rows} rows and raise no drift or cost alerts"})
        moved = [w for w in windows if not w["too_small"] and (w.get("decisions_psi") or 0) >= self.mon.psi_alert]
        if moved:
            w = max(moved, key=lambda x: x["decisions_psi"])
            rate = (f" (flag rate {w['flag_rate']:.1%} vs {w['flag_rate_ref']:.1%} on the validation rows)"
                    if w.get("flag_rate_ref") is not None else "")
            warn.append({"kind": "decisions", "message": f"the share of decisions moved past PSI {self.mon.psi_alert:g} "
                         f"in {len(moved)} window(s), most in {w['window']}{rate}; check the review capacity"})
        bad_json = sum(w["invalid_inputs"] for w in windows)
        if bad_json:
            warn.append({"kind": "inputs", "message": f"{bad_json} logged rows have inputs that are not a JSON object"})
        for f, st in overall["drift"].items():
            if st.get("unseen", {}).get("count"):
                warn.append({"kind": "unseen_categories", "feature": f,
                             "message": f"{f}: {st['unseen']['count']} values never seen in training (e.g. "
                                        f"{', '.join(st['unseen']['examples'][:3])})"})
            if st["status"] == "warn":
                warn.append({"kind": "drift_warning", "feature": f,
                             "message": f"{f}: PSI {st['psi']:.3f} over all windows is past the warning level "
                                        f"{self.mon.psi_warn:g}"})
            if st.get("missing_rate") == 1.0:
                warn.append({"kind": "inputs", "feature": f,
                             "message": f"{f} is missing in every logged row; check the field name the client sends"})


# =========================================================================== readers
def _prefetch(chunks, depth: int = 2):
    """Iterate ``chunks`` produced by a background thread, at most ``depth`` ahead (bounded memory)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))

    thread = threading.Thread(target=produce, name="mlcase-monitor-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


class _SqliteReader:
    """Reads the serving log's tables with the sqlite3 module, in typed chunks."""

    TEXT = {"request_id", "ts", "tier", "reason", "decision", "prediction", "inputs", "label"}

    def __init__(self, path: Path):
        try:
            self.con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self.con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"--log: {path} is not a readable SQLite database ({exc})",
                            "pass the serving log (predictions.db) or a CSV/Parquet of records") from None

    def tables(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.con.execute(f"PRAGMA table_info({_q(table)})")]

    def chunks(self, table: str, wanted: list[str], have: list[str], order: str | None = None):
        import pyarrow as pa

        sel = []
        for c in wanted:
            if c not in have:
                sel.append(f"NULL AS {c}")
            elif c in self.TEXT:
                sel.append(f"CAST({_q(c)} AS TEXT) AS {c}")
            else:  # numbers only; anything else becomes NULL rather than a wrong number
                sel.append(f"CASE WHEN typeof({_q(c)}) IN ('integer', 'real') THEN {_q(c)} END AS {c}")
        types = {c: (pa.string() if c in self.TEXT else (pa.float64() if c == "score" else pa.int64())) for c in wanted}
        cur = self.con.execute(f"SELECT {', '.join(sel)} FROM {_q(table)}" + (f" ORDER BY {_q(order)}" if order else ""))
        while True:
            rows = cur.fetchmany(CHUNK_ROWS)
            if not rows:
                return
            cols = list(zip(*rows, strict=True))
            yield {c: pa.array(cols[i], types[c]) for i, c in enumerate(wanted)}

    def close(self) -> None:
        self.con.close()


class _SqlAlchemyReader:
    """Any database SQLAlchemy reaches; values arrive as text and are typed by DuckDB."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        try:
            self.engine = sa.create_engine(url)
            self.insp = sa.inspect(self.engine)
        except Exception as exc:  # driver missing, bad URL, server down: all user-fixable
            raise DataError(f"--log: cannot open {redact_url(url)} ({type(exc).__name__}: {str(exc)[:160]})",
                            "check the URL and that its database driver is installed") from None

    def tables(self) -> set[str]:
        return set(self.insp.get_table_names())

    def columns(self, table: str) -> list[str]:
        return [c["name"] for c in self.insp.get_columns(table)]

    def chunks(self, table: str, wanted: list[str], have: list[str], order: str | None = None):
        import pyarrow as pa

        sel = ", ".join(_q(c) if c in have else f"NULL AS {c}" for c in wanted)
        sql = f"SELECT {sel} FROM {_q(table)}" + (f" ORDER BY {_q(order)}" if order else "")
        with self.engine.connect() as con:
            result = con.execution_options(stream_results=True).execute(self.sa.text(sql))
            while True:
                rows = result.fetchmany(CHUNK_ROWS)
                if not rows:
                    return
                cols = list(zip(*rows, strict=True))
                yield {c: pa.array([None if v is None else str(v) for v in cols[i]], pa.string())
                       for i, c in enumerate(wanted)}

    def close(self) -> None:
        self.engine.dispose()


# =========================================================================== statistics
def _double_list(values: np.ndarray) -> str:
    """A DuckDB DOUBLE[] literal that round-trips every value exactly."""
    return "[" + ", ".join(repr(float(v)) for v in values) + "]::DOUBLE[]"


def _two_proportion_p(r1: float, n1: float, r2: float, n2: float) -> float | None:
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (r1 * n1 + r2 * n2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 1.0
    z = (r2 - r1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def _combine(*ps) -> float | None:
    """Bonferroni over the tests that ran: the smallest p times their number."""
    ps = [p for p in ps if p is not None]
    return min(1.0, len(ps) * min(ps)) if ps else None


def _cbpe(p: np.ndarray, f: np.ndarray, costs=None) -> dict:
    """Performance expected from calibrated probabilities ``p`` and decisions ``f`` (1 = flag), with a 95% band.

    Given the probabilities, each row's outcome is an independent Bernoulli(p), so
    the expected confusion counts are sums of ``p`` and ``1 - p`` and the band is
    the sampling spread of the realized value around them (delta method for the
    ratios).
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    f = np.asarray(f, dtype=float)
    n = len(p)
    v = p * (1 - p)
    etp = float((f * p).sum())
    n_flag = float(f.sum())
    n_pos = float(p.sum())

    def band(value, sd, lo=0.0, hi=1.0):
        if value is None:
            return {"value": None, "low": None, "high": None}
        return {"value": float(value), "low": float(max(lo, value - BAND_Z * sd)),
                "high": float(min(hi, value + BAND_Z * sd)), "sd": float(sd)}

    q = f * p + (1 - f) * (1 - p)  # P(the decision is right)
    out = {"accuracy": band(q.mean(), math.sqrt((q * (1 - q)).sum()) / n),
           "positive_rate": band(n_pos / n, math.sqrt(v.sum()) / n),
           "flag_rate": float(n_flag / n)}
    a = float((f * v).sum())
    out["precision"] = band(etp / n_flag, math.sqrt(a) / n_flag) if n_flag > 0 else band(None, 0)
    if n_pos > 0:
        r = etp / n_pos
        var = (a - 2 * r * a + r * r * float(v.sum())) / n_pos ** 2
        out["recall"] = band(r, math.sqrt(max(var, 0.0)))
    else:
        out["recall"] = band(None, 0)
    if costs is not None:
        c1 = costs.of(np.ones(n), f)  # cost of the row if it is positive
        c0 = costs.of(np.zeros(n), f)
        mean = float((p * c1 + (1 - p) * c0).mean())
        sd = math.sqrt(float((v * (c1 - c0) ** 2).sum())) / n
        out["cost"] = band(mean, sd, lo=-math.inf, hi=math.inf)
        out["cost_total"] = float(mean * n)
    return out


def _probability_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC AUC (Mann-Whitney, ties averaged), log loss and Brier score of probabilities ``p`` for 0/1 ``y``."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=float)
    pc = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    n1 = y.sum()
    n0 = len(y) - n1
    ranks = rankdata(pc)
    auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return {"roc_auc": float(auc), "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
            "brier": float(np.mean((pc - y) ** 2))}


def _floats(s: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for NULL (DuckDB hands back nullable integers)."""
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
