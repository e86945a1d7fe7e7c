"""Where the log comes from and how it lands in the run's DuckDB database.

The serving log (SQLite through ``sqlite3``, any other database through
SQLAlchemy) is read in chunks by a background thread; the inputs are parsed
from JSON by DuckDB. A CSV/Parquet file (or a DataFrame) of records is read by
DuckDB directly, and scored with the model when it carries no scores. Labels
come from the log's ``labels`` table and an optional labels file, read as ``mlcase label`` reads one
(:func:`mlcase.data.read_table`, in memory: 2M labels took 13 s and 600 MB more than DuckDB alone).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import SUPPORTED_SUFFIXES, reader_sql
from ..errors import DataError, redact_url
from ._util import _lit, _q

CHUNK_ROWS = 100_000
FILE_READERS = SUPPORTED_SUFFIXES  # records and labels files are read as data.read_table reads data.source
SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


@dataclass
class _Source:
    kind: str            # "sqlite" | "sqlalchemy" | "file" | "frame"
    target: Any
    label: str


def _check_frame(frame: pd.DataFrame, arg: str, needs: str) -> None:
    """A DataFrame given for ``arg`` must have rows and named columns (DuckDB's own refusal is no message)."""
    if frame.shape[1] == 0 or len(frame) == 0:
        what = "no columns" if frame.shape[1] == 0 else "no rows"
        raise DataError(f"{arg}: the DataFrame has {what}", f"pass a DataFrame with {needs}, one row per record")
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise DataError(f"{arg}: the DataFrame's column names must be text, got {bad[0]!r}",
                        f"name its columns ({needs}), e.g. frame.columns = frame.columns.astype(str)")


def resolve_source(case, log) -> _Source:
    if isinstance(log, pd.DataFrame):
        _check_frame(log, "log", "the model's feature columns (and ts, request_id, score ... where known)")
        return _Source("frame", log, "DataFrame")
    if log is not None and not isinstance(log, (str, Path)) and not hasattr(log, "__fspath__"):
        raise DataError(f"log: expected a path, a SQLAlchemy URL or a DataFrame, got a {type(log).__name__}",
                        "pass the serving log (predictions.db), a SQLAlchemy URL, or a CSV/Parquet of records")
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


# ------------------------------------------------------------------ loading
RAW_COLUMNS = ("_rid VARCHAR, _t DOUBLE, _version INTEGER, _tier VARCHAR, _fallback INTEGER, _reason VARCHAR, "
               "_score DOUBLE, _decision VARCHAR, _prediction VARCHAR, _label0 VARCHAR, _arm VARCHAR, "
               "_audit INTEGER, _pi DOUBLE, _mdec VARCHAR, _fresh VARCHAR, _bad_json BOOLEAN, _unit VARCHAR, _keyid VARCHAR")
# _unit: the unit (data.id, logged as unit_id) a request was for; NULL where the request id was the unit. Monitoring
# counts units and clusters its intervals by them: a unit sent twice is one unit, not two independent rows
# _keyid: the id of the log key a hashed unit was hashed with (log_key_id; NULL: nothing hashed, or an older log).
# Hashes under two keys cannot be matched: warn_log_keys says so
# what the log's columns beyond the first layout become (NULL where an older log lacks them)
ARM_SQL = ("CAST(arm AS VARCHAR), TRY_CAST(audit AS INTEGER), nullif(TRY_CAST(sampling_probability AS DOUBLE), "
           "'NaN'::DOUBLE), CAST(model_decision AS VARCHAR), CAST(freshness AS VARCHAR)")
LABEL_COLUMNS = ["request_id", "label", "ts", "id", "source", "reviewer", "reviewed_at"]


def _create_raw(run) -> None:
    cols = ", ".join(f"{run.col[c]} {run.sql_type(c)}" for c in [*run.features, *run.extras])
    run.con.execute(f"CREATE TABLE raw ({RAW_COLUMNS}{', ' + cols if cols else ''})")
    run.con.execute("CREATE TABLE lab (_rid VARCHAR, _label VARCHAR, _lts DOUBLE, _seq BIGINT, _src VARCHAR, "
                    "_reviewer VARCHAR, _rts DOUBLE)")


def load(run, source: _Source, labels_file) -> None:
    """Read the log (and the labels file) into the run's ``raw`` and ``lab`` tables."""
    _create_raw(run)
    if source.kind in ("sqlite", "sqlalchemy"):
        _load_database(run, source)
    else:
        _load_records(run, source)
    if labels_file is not None:
        _load_labels_file(run, labels_file)
    run.source = source
    warn_log_keys(run)


def warn_log_keys(run) -> None:
    """Warn where the hashed units read come from more than one log key (``log_key_id``).

    A unit is logged as the HMAC of its id under ``MLCASE_LOG_KEY`` (or, without it, the key file of the machine
    that served). Servers with different keys log the same person under unrelated hashes: monitoring then counts
    her once per key, and intervals clustered by unit treat her rows as independent (mlmRev::Contraception's 397
    test women served by two servers with different keys read as 794 units). Nothing can match them afterwards;
    the rows per key say how much of the log each key covers. A log without ``log_key_id`` (older mlcase) warns
    nothing."""
    rows = run.con.execute("SELECT _keyid, count(*), count(DISTINCT _unit) FROM raw WHERE _keyid IS NOT NULL "
                           "AND _unit LIKE 'hmac:%' GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    from ..governance.logkeys import log_keys_warning

    warning = log_keys_warning(rows)
    if warning:
        run.warnings.append(warning)


def ts_sql(expr: str, type_name: str | None = None) -> str:
    t = (type_name or "VARCHAR").upper()
    if any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL")):
        return f"CAST({expr} AS DOUBLE)"
    return f"epoch(TRY_CAST(CAST({expr} AS VARCHAR) AS TIMESTAMPTZ))"


def _insert_log_chunk(run, tbl) -> None:
    """Type one chunk of the predictions table into ``raw``, parsing the JSON inputs once."""
    import duckdb

    struct = _lit(run.json_struct())
    feats = ", ".join(run.value_sql(c, f"_j.{_q(c)}") for c in [*run.features, *run.extras])
    head = f"""INSERT INTO raw SELECT CAST(request_id AS VARCHAR), {ts_sql('ts')},
                TRY_CAST(model_version AS INTEGER), CAST(tier AS VARCHAR), TRY_CAST(fallback AS INTEGER),
                CAST(reason AS VARCHAR), nullif(TRY_CAST(score AS DOUBLE), 'NaN'::DOUBLE),
                CAST(decision AS VARCHAR), CAST(prediction AS VARCHAR), NULL, {ARM_SQL}"""
    run.con.register("_chunk", tbl)
    try:
        try:  # the common case: every row's inputs are JSON
            run.con.execute(f"""{head}, inputs IS NULL, CAST(unit_id AS VARCHAR), CAST(log_key_id AS VARCHAR) {', ' + feats if feats else ''}
                FROM (SELECT *, json_transform(inputs, {struct}) AS _j FROM _chunk)""")
        except duckdb.InvalidInputException:  # some are not: mark them, keep the rest
            run.con.execute(f"""{head}, NOT coalesce(json_valid(inputs), false), CAST(unit_id AS VARCHAR),
                CAST(log_key_id AS VARCHAR)
                {', ' + feats if feats else ''}
                FROM (SELECT *, CASE WHEN json_valid(inputs) THEN json_transform(inputs, {struct}) END AS _j
                      FROM _chunk)""")
    finally:
        run.con.unregister("_chunk")


def _load_database(run, source: _Source) -> None:
    import pyarrow as pa

    pred_cols = ["request_id", "ts", "model_version", "tier", "fallback", "reason", "score", "decision",
                 "prediction", "inputs", "arm", "audit", "sampling_probability", "model_decision", "freshness",
                 "unit_id", "log_key_id"]
    reader = _SqliteReader(source.target) if source.kind == "sqlite" else _SqlAlchemyReader(source.target)
    files, tail = [], None
    if source.kind == "sqlite":  # the compacted part (Parquet) and the live tail: every row once
        from .compact import CompactedLog

        store = CompactedLog(source.target)
        batches = store.batches(reader.con)
        files, tail = store.files(batches), (store.tail_where(batches) if batches else None)
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
        for rows in _prefetch(reader.chunks("predictions", pred_cols, have, where=tail)):
            _insert_log_chunk(run, pa.table(rows))
        if files:
            if getattr(run, "engine", None) is not None and run.engine.parallel:
                _type_on_workers(run, files)
            else:
                _attach_compacted(run, files)
        if "labels" in tables:
            lab_have = reader.columns("labels")
            if {"request_id", "label"} <= set(lab_have):
                order = "id" if "id" in lab_have else None
                for k, rows in enumerate(reader.chunks("labels", LABEL_COLUMNS, lab_have, order=order)):
                    run.con.register("_labels_chunk", pa.table(rows))
                    try:
                        _insert_labels(run, "_labels_chunk", seq="id" if order else None,
                                            offset=0 if order else k * CHUNK_ROWS)
                    finally:
                        run.con.unregister("_labels_chunk")
    finally:
        reader.close()
    run.has_time = bool(run.con.execute("SELECT count(_t) > 0 FROM raw").fetchall()[0][0])


def _type_on_workers(run, files: list) -> None:
    """The Dask engine: each worker types some date partitions (windows) of the compacted part; ``raw`` gets them.

    A worker reads its partitions with its own DuckDB (memory capped like this one's) and sends
    back the typed, projected rows; the windows' statistics are then computed here, over the
    same rows the local engine reads, so the result is the same.
    """
    import pyarrow as pa

    by_day: dict[str, list] = {}
    for f in files:
        by_day.setdefault(Path(f).parent.name, []).append(str(f))
    sqls = [compacted_select(run, g, like="raw") for g in by_day.values()]
    eng = run.engine
    ahead = 2 * eng.slots   # partitions typed ahead of this process: the workers hold no more than these
    futures = [eng.submit(type_partitions, sql, run.memory_limit, key="monitor-partitions") for sql in sqls[:ahead]]
    try:
        for k in range(len(sqls)):
            tbl: pa.Table = _worker_result(futures[k], by_day)
            futures[k] = None
            if k + ahead < len(sqls):
                futures.append(eng.submit(type_partitions, sqls[k + ahead], run.memory_limit,
                                          key="monitor-partitions"))
            run.con.register("_part", tbl)
            try:
                run.con.execute("INSERT INTO raw SELECT * FROM _part")
            finally:
                run.con.unregister("_part")
    finally:
        eng.cancel([f for f in futures if f is not None])


def _worker_result(future, by_day: dict):
    """A worker's typed partitions; a partition the worker cannot open, where this machine can, is a one-line
    :class:`DataError` saying so (a worker without the case folder's mount stopped monitoring with "internal error
    (IOException: IO Error: No files found that match the pattern ...)", exit 70)."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - narrowed below
        text = str(exc)
        files = [f for group in by_day.values() for f in group]
        unreadable = type(exc).__name__ in ("IOException", "FileNotFoundError", "PermissionError") or \
            "No files found" in text or "No such file" in text
        if unreadable and all(Path(f).exists() for f in files):
            first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
            folder = Path(files[0]).parent.parent if files else None
            raise DataError(f"the Dask workers cannot read the compacted log at {folder} ({first}); it is readable "
                            "here", "put the case folder on storage every worker mounts at the same path (see README, "
                            "\"Beyond one machine\"), or monitor with --engine local") from None
        raise


def type_partitions(sql: str, memory_limit: str):
    """Run a :func:`compacted_select` on a worker: the typed rows as an Arrow table."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
        # con.sql, not execute: DuckDB 2 warns on a worker's stderr that a DB-API result's Arrow output copies the rows
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _attach_compacted(run, files: list) -> None:
    """Make ``raw`` the live tail read so far plus the compacted part of the log (:mod:`.compact`).

    The compacted part is not copied: ``raw`` becomes a view over the tail's table and the
    Parquet files (whose inputs and times are typed already), so the windowed ``log`` table is
    the only copy of the rows DuckDB makes.
    """
    run.con.execute("ALTER TABLE raw RENAME TO raw_tail")
    run.con.execute(f"CREATE VIEW raw AS SELECT * FROM raw_tail UNION ALL {compacted_select(run, files)}")


def compacted_select(run, files: list, like: str = "raw_tail") -> str:
    """A SELECT of the compacted files shaped like the table ``like`` (``raw``'s columns)."""
    src = f"read_parquet([{', '.join(_lit(str(f)) for f in files)}], union_by_name = true, hive_partitioning = false)"
    have = {r[0] for r in run.con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}

    def col(name: str, expr: str) -> str:
        return expr if name in have else "NULL"

    feats = []
    needs_json = False
    for c in [*run.features, *run.extras]:
        typed = f"inputs.{c}"
        if typed in have:
            feats.append(run.value_sql(c, _q(typed)))
        elif "_inputs_valid" in have:  # typed at compaction, and no record had this key
            feats.append(run.value_sql(c, "NULL"))
        else:
            feats.append(run.value_sql(c, f"json_extract_string(inputs, {_lit('$.' + json_path_key(c))})"))
            needs_json = True
    # typed at compaction: _inputs_valid is NULL for NULL inputs, so the JSON text is never read here
    bad = "NOT coalesce(_inputs_valid, false)" if "_inputs_valid" in have and not needs_json else (
        "inputs IS NULL OR NOT coalesce(json_valid(inputs), false)")
    exprs = ["CAST(request_id AS VARCHAR)", "_t" if "_t" in have else ts_sql("ts"), col("model_version", "TRY_CAST(model_version AS INTEGER)"),
             col("tier", "CAST(tier AS VARCHAR)"), col("fallback", "TRY_CAST(fallback AS INTEGER)"),
             col("reason", "CAST(reason AS VARCHAR)"), col("score", "nullif(TRY_CAST(score AS DOUBLE), 'NaN'::DOUBLE)"),
             col("decision", "CAST(decision AS VARCHAR)"), col("prediction", "CAST(prediction AS VARCHAR)"), "NULL",
             col("arm", "CAST(arm AS VARCHAR)"), col("audit", "TRY_CAST(audit AS INTEGER)"),
             col("sampling_probability", "nullif(TRY_CAST(sampling_probability AS DOUBLE), 'NaN'::DOUBLE)"),
             col("model_decision", "CAST(model_decision AS VARCHAR)"), col("freshness", "CAST(freshness AS VARCHAR)"),
             bad, col("unit_id", "CAST(unit_id AS VARCHAR)"),
             col("log_key_id", "CAST(log_key_id AS VARCHAR)"), *feats]
    names = [r[0] for r in run.con.execute(f"DESCRIBE {like}").fetchall()]
    return f"SELECT {', '.join(f'{e} AS {_q(n)}' for e, n in zip(exprs, names, strict=True))} FROM {src}"


def json_path_key(name: str) -> str:
    """A JSON path step for a key (quoted, so any key works)."""
    return '"' + str(name).replace('"', '\\"') + '"'


def _insert_labels(run, table: str, seq: str | None, offset: int = 0) -> None:
    """Append labels from a registered table or view (``request_id``, ``label``, and optionally ``ts``,
    ``source``, ``reviewer``, ``reviewed_at``) to ``lab``."""
    types = {r[0]: r[1] for r in run.con.execute(f"DESCRIBE {table}").fetchall()}
    seq_sql = f"CAST({seq} AS BIGINT) + {offset}" if seq else f"row_number() OVER () + {offset}"
    ts_expr = ts_sql("ts", types["ts"]) if "ts" in types else "NULL"
    rts_expr = ts_sql("reviewed_at", types["reviewed_at"]) if "reviewed_at" in types else "NULL"
    src = "CAST(source AS VARCHAR)" if "source" in types else "NULL"
    reviewer = "nullif(trim(CAST(reviewer AS VARCHAR)), '')" if "reviewer" in types else "NULL"
    run.con.execute(f"""INSERT INTO lab SELECT CAST(request_id AS VARCHAR), CAST(label AS VARCHAR),
                         {ts_expr}, {seq_sql}, {src}, {reviewer}, {rts_expr} FROM {table}""")


def check_labels(case, labels):
    """``labels`` (a DataFrame with rows and ``request_id``, ``label``, or the path of an existing CSV/Parquet
    file) read and checked (:func:`_read_labels`) as :func:`load` takes them, before monitoring changes anything
    (a compaction)."""
    if labels is None:
        return None
    if isinstance(labels, pd.DataFrame):
        _check_frame(labels, "labels", "request_id and label columns")
        missing = [c for c in ("request_id", "label") if c not in labels.columns]
        if missing:
            raise DataError(f"labels: the DataFrame lacks the column(s) {', '.join(missing)}",
                            "give it a request_id column (from the prediction log) and a label column, "
                            "optionally ts (when the label arrived)")
        return _read_labels(case, labels)
    if not isinstance(labels, (str, Path)) and not hasattr(labels, "__fspath__"):
        raise DataError(f"labels: expected the path of a CSV/Parquet file or a DataFrame, got a "
                        f"{type(labels).__name__}", "pass a CSV/Parquet (or a DataFrame) with request_id and label "
                        "columns")
    path = Path(labels)
    if not path.is_absolute() and not path.exists():
        path = case.resolve(path)
    if not path.exists():
        raise DataError(f"--labels: no file at {path}", "pass a CSV/Parquet with request_id and label columns")
    if path.suffix.lower() not in FILE_READERS:
        raise DataError(f"--labels: unsupported file type '{path.suffix or path.name}'",
                        "use a .csv or .parquet file with request_id and label columns")
    return _read_labels(case, path)


@dataclass
class _Labels:
    """A labels file (or DataFrame) as read and checked by :func:`check_labels`."""
    frame: pd.DataFrame
    name: str


def _read_labels(case, labels) -> _Labels:
    """The labels of a CSV/Parquet file or a DataFrame, read as ``mlcase label`` reads a labels file
    (:func:`mlcase.data.read_table`; a DataFrame as :func:`mlcase.data.prepare` reads one) and refused where it
    refuses them (:func:`mlcase.serve.predlog._checked_labels`: a label that is no value of the target, two
    different labels for one request id in the file), so ``monitor --labels`` realizes what ``mlcase label`` then
    ``monitor`` does, or neither does anything.

    DuckDB read the file itself before: a ';' export's decimal commas ('24,5') stayed text (a regression's labels
    'unreadable', a multiclass's class '1,0' counted wrong: accuracy 0.0 where the CSV gave 0.98). And a label
    `mlcase label` refuses ('zz' for a regression's outcome, inf, class 9 of classes 1-8, two labels for one
    request) was counted unreadable or taken by row order, and the realized metrics came from the rest."""
    from ..data import _normalise_frame, read_table
    from ..serve.predlog import _checked_labels, label_records

    if isinstance(labels, pd.DataFrame):
        name, what = "the DataFrame", "labels"
        try:
            frame = _normalise_frame(labels.reset_index(drop=True))
        except DataError as exc:
            raise DataError(f"labels: {exc.message}", exc.fix) from None
    else:
        name, what = labels.name, "--labels"
        try:
            frame = read_table(labels.name, labels.parent, what="--labels")
        except DataError:
            frame = _no_labels(labels)   # a header and no rows: no labels yet, as before; else its refusal
            if frame is None:
                raise
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise DataError(f"--labels: {name} lacks the column(s) {', '.join(missing)}",
                        "give it a request_id column (from the prediction log) and a label column, "
                        "optionally ts (when the label arrived)")
    if len(frame):
        records = label_records(frame)
        try:
            checked = _checked_labels(case, records, name, outcome="nothing was monitored")
        except DataError as exc:
            raise DataError(f"{what}: {exc.message}", exc.fix) from None
        if checked is not records:   # each label as `mlcase label` stores it
            frame = frame.assign(label=pd.Series([r["label"] for r in checked], index=frame.index, dtype=object))
    return _Labels(frame, name)


def _load_labels_file(run, labels) -> None:
    """Append the labels (:func:`check_labels`'s, or a file or DataFrame checked here) to ``lab``."""
    import duckdb

    if not isinstance(labels, _Labels):
        labels = check_labels(run.case, labels)
    name, labels = labels.name, labels.frame
    run.con.register("_label_frame", labels)
    try:
        run.con.execute("CREATE TABLE _label_file AS SELECT * FROM _label_frame")
    except duckdb.Error as exc:
        raise DataError(f"labels: cannot read {name}: {str(exc).splitlines()[0]}",
                        "pass plain columns (text, numbers, times) request_id, label and optionally ts") from None
    finally:
        run.con.unregister("_label_frame")
    offset = int(run.con.execute("SELECT coalesce(max(_seq), 0) FROM lab").fetchall()[0][0])
    _insert_labels(run, "_label_file", seq=None, offset=offset)
    _check_label_times(run, name, offset)
    run.con.execute("DROP TABLE _label_file")


def _check_label_times(run, name: str, offset: int) -> None:
    """Refuse a labels file whose ``ts`` (when the label arrived) is no time, or before its prediction.

    A ``ts`` of 2001-01-01 on labels of ISLR::Caravan's predictions served in 2026 was read as it came: the label
    delay's median was -818,353,305 s (26 years before the prediction), and 'yesterday' dropped the delay without a
    word. A reviewer's verdict dated before its prediction is refused too (:func:`mlcase.review.store_reviews`).
    """
    types = {r[0]: r[1] for r in run.con.execute("DESCRIBE _label_file").fetchall()}
    if "ts" not in types:
        return
    fix = ("write when each label arrived as an ISO-8601 time such as 2026-03-05T14:30:00Z (UTC where it has no "
           "zone) or epoch seconds, or leave ts out")
    bad = run.con.execute(f"""SELECT k, request_id, CAST(ts AS VARCHAR) FROM (SELECT row_number() OVER () AS k, *
                                FROM _label_file) WHERE ts IS NOT NULL AND trim(CAST(ts AS VARCHAR)) <> ''
                                AND {ts_sql('ts', types['ts'])} IS NULL LIMIT 1""").fetchall()
    if bad:
        k, rid, ts = bad[0]
        raise DataError(f"--labels {name} row {k} (request_id {rid}): ts {str(ts)[:40]!r} is not a date and time; "
                        "nothing was monitored", fix)
    early = run.con.execute(f"""SELECT l._rid, l._lts, r._t FROM lab l JOIN raw r ON r._rid = l._rid
                                 WHERE l._seq > {int(offset)} AND l._lts < r._t ORDER BY l._seq LIMIT 1""").fetchall()
    if early:
        import pandas as pd

        rid, lts, t = early[0]
        when = [pd.Timestamp(x, unit="s", tz="UTC").isoformat().replace("+00:00", "Z") for x in (lts, t)]
        raise DataError(f"--labels {name}: the label of request_id {rid} arrived at {when[0]} (its ts), before its "
                        f"prediction at {when[1]}; nothing was monitored", fix)


def _no_labels(path: Path) -> pd.DataFrame | None:
    """The columns of a labels file with a header and no rows (nothing has arrived yet: monitoring goes on without
    labels), or None for any other file."""
    from ..sql import connect

    con = connect(files=[path])
    try:
        empty = con.execute(f"SELECT * FROM {reader_sql(path)} LIMIT 0").df()
        rows = con.execute(f"SELECT count(*) FROM {reader_sql(path)}").fetchall()[0][0]
    except Exception:  # noqa: BLE001 - read_table's refusal stands
        return None
    finally:
        con.close()
    return empty if rows == 0 else None


def _comma_text(run) -> bool:
    """Whether a text column of the CSV read by ``src_view`` has a comma in a value: a number such as '0,00632' in a
    ';' export with decimal commas (or '25,879' with a thousands comma), which DuckDB's reader leaves text."""
    text = [r[0] for r in run.con.execute("DESCRIBE src_view").fetchall() if r[1] == "VARCHAR"]
    if not text:   # the common case: numbers read as numbers, no scan
        return False
    where = " OR ".join(f"contains({_q(c)}, ',')" for c in text)
    return bool(run.con.execute(f"SELECT count(*) FROM (SELECT 1 FROM src_view WHERE {where} LIMIT 1)").fetchall()[0][0])


def _load_records(run, source: _Source) -> None:
    """A plain file (or DataFrame) of records: feature columns plus optional log columns.

    DuckDB reads a Parquet file, and a CSV whose values need no more, where it lies (out of core: the 1M-row records
    of benchmarks/monitor_scale.py). A CSV with a comma in a text value is read as :func:`mlcase.data.read_table`
    reads the case's data (in memory), so a ';' export's decimal commas ('0,00632') are the numbers its plain CSV
    holds: DuckDB kept them text, and the model could not score them (drift and realized metrics, where the file
    had scores, came from text)."""
    import duckdb

    frame = source.target if source.kind == "frame" else None
    try:
        if frame is None:  # DuckDB reads the file's header here: a broken file fails here
            run.con.execute(f"CREATE VIEW src_view AS SELECT * FROM {reader_sql(source.target)}")
            if reader_sql(source.target).startswith("read_csv") and _comma_text(run):
                from ..data import read_table

                run.con.execute("DROP VIEW src_view")
                path = Path(source.target)
                frame = read_table(path.name, path.parent, what="--log")
        if frame is not None:
            run.con.register("_src_frame", frame)
            run.con.execute("CREATE VIEW src_view AS SELECT * FROM _src_frame")
        types = {r[0]: r[1] for r in run.con.execute("DESCRIBE src_view").fetchall()}
    except duckdb.Error as exc:
        raise DataError(f"--log: cannot read {Path(source.label).name}: {str(exc).splitlines()[0]}",
                        "check that the file is a valid CSV or Parquet file") from None
    missing = [f for f in run.bundle.features if f not in types]
    if missing:
        raise DataError(f"--log: {source.label} lacks the model's feature column(s) {', '.join(missing[:10])}",
                        "give the records file every feature column the model was trained on")

    def pick(*names):
        return next((c for c in names if c and c in types and c not in run.features), None)

    ts = pick("ts", run.spec.data.time)
    arm, audit, pi, mdec = pick("arm"), pick("audit"), pick("sampling_probability"), pick("model_decision")
    fresh = pick("freshness")
    rid = pick("request_id", run.spec.data.id)
    # the unit: a unit_id column, else data.id where request ids are given beside it
    unit = pick("unit_id") or (pick(run.spec.data.id) if rid == "request_id" else None)
    keyid = pick("log_key_id") if unit else None
    label = pick("label", run.target)
    score, decision, prediction = pick("score"), pick("decision"), pick("prediction")
    tier, fallback, reason = pick("tier"), pick("fallback"), pick("reason")
    run.has_time = ts is not None
    run.has_inline_label = label is not None
    scored = score is None
    if scored:  # number the rows once, score them in chunks, join the scores back by row number
        run.con.execute("CREATE TABLE src AS SELECT row_number() OVER () - 1 AS _row, * FROM src_view")
        _score_records(run, int(run.con.execute("SELECT count(*) FROM src").fetchall()[0][0]))
    exprs = [f"CAST({_q(rid)} AS VARCHAR)" if rid else (
                 "CAST(_row AS VARCHAR)" if scored else "CAST(row_number() OVER () - 1 AS VARCHAR)"),
             ts_sql(_q(ts), types[ts]) if ts else "NULL",
             "NULL", f"CAST({_q(tier)} AS VARCHAR)" if tier else "'model'",
             f"TRY_CAST({_q(fallback)} AS INTEGER)" if fallback else "0",
             f"CAST({_q(reason)} AS VARCHAR)" if reason else "NULL",
             f"nullif(TRY_CAST({_q(score)} AS DOUBLE), 'NaN'::DOUBLE)" if score else "_s._score",
             (f"CAST({_q(decision)} AS VARCHAR)" if decision else ("_s._decision" if scored else "NULL")),
             (f"CAST({_q(prediction)} AS VARCHAR)" if prediction else ("_s._prediction" if scored else "NULL")),
             f"CAST({_q(label)} AS VARCHAR)" if label else "NULL",
             f"CAST({_q(arm)} AS VARCHAR)" if arm else "NULL", f"TRY_CAST({_q(audit)} AS INTEGER)" if audit else "NULL",
             f"TRY_CAST({_q(pi)} AS DOUBLE)" if pi else "NULL", f"CAST({_q(mdec)} AS VARCHAR)" if mdec else "NULL",
             f"CAST({_q(fresh)} AS VARCHAR)" if fresh else "NULL", "false",
             f"CAST({_q(unit)} AS VARCHAR)" if unit else "NULL",
             f"CAST({_q(keyid)} AS VARCHAR)" if keyid else "NULL"]
    for c in [*run.features, *run.extras]:
        exprs.append(run.value_sql(c, _q(c)) if c in types else "NULL")
    frm = "src LEFT JOIN _scored _s USING (_row)" if scored else "src_view"
    run.con.execute(f"INSERT INTO raw SELECT {', '.join(exprs)} FROM {frm}")
    for stmt in ("DROP TABLE IF EXISTS src", "DROP TABLE IF EXISTS _scored", "DROP VIEW src_view"):
        run.con.execute(stmt)
    if frame is not None:
        run.con.unregister("_src_frame")
    if not run.con.execute("SELECT count(*) FROM raw").fetchall()[0][0]:
        raise DataError(f"--log: {source.label} has no rows", "pass a file with recent records")


def _score_records(run, n: int) -> None:
    """Scores, decisions and predictions of a records file that carries none, in chunks."""
    import pyarrow as pa

    from ..data import _normalise_frame

    cols = ", ".join(_q(f) for f in run.bundle.features)
    parts = []
    for start in range(0, n, CHUNK_ROWS):
        df = run.con.execute(f"SELECT {cols} FROM src WHERE _row >= ? AND _row < ? ORDER BY _row",
                              [start, start + CHUNK_ROWS]).df()
        df = _normalise_frame(df)
        try:
            scores = run.bundle.scores(df[run.bundle.features])
        except Exception as exc:
            raise DataError(f"--log: the model cannot score the records ({type(exc).__name__}: "
                            f"{str(exc)[:160]})", "check the records' column types against the training data") from None
        decided = run.bundle.decide(scores)
        if run.task == "binary":
            flag = np.asarray(decided).astype(int)
            dec = np.where(flag == 1, "flag", "auto")
            pred = (np.where(flag == 1, run.classes[1], run.classes[0]) if run.classes
                    else flag.astype(str))
            score_v = np.asarray(scores, dtype=float)
        elif run.task == "multiclass":
            dec = np.full(len(df), "auto")
            pred = np.asarray(decided).astype(str)
            score_v = np.max(scores, axis=1)
        else:
            dec = np.full(len(df), "auto")
            score_v = np.asarray(scores, dtype=float)
            pred = np.asarray(decided, dtype=float).astype(str)
        parts.append(pa.table({"_row": pa.array(np.arange(start, start + len(df)), pa.int64()),
                               "_score": pa.array(score_v, pa.float64()),
                               "_decision": pa.array(dec.astype(str), pa.string()),
                               "_prediction": pa.array(np.asarray(pred).astype(str), pa.string())}))
    run.con.register("_scored_arrow", pa.concat_tables(parts))
    run.con.execute("CREATE TABLE _scored AS SELECT * FROM _scored_arrow")
    run.con.unregister("_scored_arrow")


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

    TEXT = {"request_id", "ts", "tier", "reason", "decision", "prediction", "inputs", "label", "arm",
            "model_decision", "source", "reviewer", "reviewed_at", "freshness", "unit_id", "log_key_id"}
    FLOAT = {"score", "sampling_probability"}

    def __init__(self, path: Path):
        from ..serve.predlog import connect_read_only

        try:
            self.con = connect_read_only(path, check_same_thread=False)   # it reads sqlite_master once
        except sqlite3.DatabaseError as exc:
            raise DataError(f"--log: {path} is not a readable SQLite database ({exc})",
                            "pass the serving log (predictions.db) or a CSV/Parquet of records") from None

    def tables(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.con.execute(f"PRAGMA table_info({_q(table)})")]

    def chunks(self, table: str, wanted: list[str], have: list[str], order: str | None = None,
               where: str | None = None):
        import pyarrow as pa

        sel = []
        for c in wanted:
            if c not in have:
                sel.append(f"NULL AS {c}")
            elif c in self.TEXT:
                sel.append(f"CAST({_q(c)} AS TEXT) AS {c}")
            else:  # numbers only; anything else becomes NULL rather than a wrong number
                sel.append(f"CASE WHEN typeof({_q(c)}) IN ('integer', 'real') THEN {_q(c)} END AS {c}")
        types = {c: (pa.string() if c in self.TEXT else (pa.float64() if c in self.FLOAT else pa.int64()))
                 for c in wanted}
        cur = self.con.execute(f"SELECT {', '.join(sel)} FROM {_q(table)}" + (f" WHERE {where}" if where else "")
                               + (f" ORDER BY {_q(order)}" if order else ""))
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

    def chunks(self, table: str, wanted: list[str], have: list[str], order: str | None = None,
               where: str | None = None):
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
