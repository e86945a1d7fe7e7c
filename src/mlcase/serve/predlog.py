"""The durable prediction log (serving writes, monitoring reads).

Layout (docs/contracts.md): ``predictions`` (one row per answered record, with
its arm, audit flag and review sampling probability) and ``labels`` (delayed
outcomes and reviewers' verdicts by request id, each with its ``source``;
duplicates kept, the last wins). A log written by an older mlcase gets the new
columns with ``ALTER TABLE ... ADD COLUMN`` when it is opened; its old rows keep
NULL there and read as before.

The default store is SQLite in WAL mode (``<case>/predictions.db``); a
SQLAlchemy URL (``serving.log``) points at a shared database instead.
:class:`PredictionLog` writes from one background thread: requests put their
rows on a bounded queue and get a future that resolves once the transaction
holding them has committed (many requests share one transaction, so the cost
of a commit is spread). The server answers only after that, so an
acknowledged prediction survives a crash of the server process. Nothing is
dropped silently: rows the queue cannot take are refused at once (the caller
answers 503), and rows a transaction fails to write are counted in
:attr:`PredictionLog.failed` and their futures carry the error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import redact_url

# columns added after the first layout: (name, SQL type); a log that lacks them gets them on open
PREDICTION_COLUMNS_ADDED = (
    ("arm", "TEXT"),                   # holdout | canary | model (serve/routing.py; model = the champion's arm)
    ("unit_id", "TEXT"),               # the data.id the arm was drawn from (NULL: the request id was)
    ("audit", "INTEGER"),              # 1: an automatic decision also sent to review (the audit sample)
    ("sampling_probability", "REAL"),  # P(this row is sent to review): 1 flag/review, audit_share auto, 0 holdout auto
    ("model_decision", "TEXT"),        # what the model decided (differs from decision on the holdout arm)
    ("rule_decision", "TEXT"),         # what today's rule decided, where it was evaluated (the holdout arm)
    # provenance, for `mlcase replay` and `mlcase rollout status` (mlcase.releases)
    ("arm_version", "INTEGER"),        # the version the unit's arm routes to (the champion's, or the canary's)
    ("model_sha256", "TEXT"),          # sha256 of the answering tier's model file (rule: of its SQL; constant: of its answer)
    ("bundle_sha256", "TEXT"),         # sha256 of the answering tier's bundle.json (schema, threshold, calibration)
    ("schema_sha256", "TEXT"),         # sha256 of the record schema the request was validated against
    ("threshold", "REAL"),             # the answering tier's decision threshold (binary)
    ("code_version", "TEXT"),          # the mlcase version that answered
    ("freshness", "TEXT"),             # JSON {"age_s": {feature: seconds or null}, "stale": [...]} (data.freshness)
    ("log_key_id", "TEXT"),            # id of the MLCASE_LOG_KEY the row's hashed values were hashed with (else NULL)
)
LABEL_COLUMNS_ADDED = (
    ("channel", "TEXT"),      # how it arrived: api, file:<name>, review:<name>, feedback
    ("reviewer", "TEXT"),     # who reviewed the case (review labels only)
    ("reviewed_at", "TEXT"),  # when, ISO-8601 UTC
    ("note", "TEXT"),
)
COLUMNS = ("request_id", "ts", "model_version", "model_name", "tier", "fallback", "reason", "inputs", "score",
           "scores", "prediction", "decision", "conformal", "latency_ms", "challenger",
           *(c for c, _ in PREDICTION_COLUMNS_ADDED))
LABEL_COLUMNS = ("request_id", "label", "ts", "source", *(c for c, _ in LABEL_COLUMNS_ADDED))


def prediction_row(**values) -> tuple:
    """One prediction-log row in :data:`COLUMNS` order from named values (a column not named is NULL).

    Prefer it to a positional tuple: a column added to the log later cannot shift the others."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not prediction-log columns: {sorted(unknown)}")
    return tuple(values.get(c) for c in COLUMNS)
# what a label rests on (monitoring reads it): the holdout arm, the audit sample, a review of a flagged or
# deferred case, or a delayed outcome of the model's arm (biased where the model's action changes the outcome)
LABEL_SOURCES = ("holdout", "audit", "review", "outcome")

SQLITE_DDL = (
    f"""CREATE TABLE IF NOT EXISTS predictions (
        request_id TEXT PRIMARY KEY, ts TEXT NOT NULL, model_version INTEGER, model_name TEXT, tier TEXT,
        fallback INTEGER, reason TEXT, inputs TEXT, score REAL, scores TEXT, prediction TEXT, decision TEXT,
        conformal TEXT, latency_ms REAL, challenger TEXT,
        {", ".join(f"{c} {t}" for c, t in PREDICTION_COLUMNS_ADDED)})""",
    "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions(ts)",
    f"""CREATE TABLE IF NOT EXISTS labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, label TEXT, ts TEXT NOT NULL, source TEXT,
        {", ".join(f"{c} {t}" for c, t in LABEL_COLUMNS_ADDED)})""",
    "CREATE INDEX IF NOT EXISTS labels_request ON labels(request_id)",
)


# a label is stored only while its prediction is in the log, checked in the INSERT itself: the lookup before it
# (its arm and audit flag) is another statement, and a `forget` or `retention` committed in between left a label
# of an erased prediction behind (the request id and outcome of a forgotten subject)
ADD_LABEL_SQL = (f"INSERT INTO labels ({', '.join(LABEL_COLUMNS)}) SELECT :values "
                 "WHERE EXISTS (SELECT 1 FROM predictions WHERE request_id = :request_id)")


#: how many of the latest rows :func:`key_change_note` reads for the key id the log was last hashed with
KEY_LOOKBACK = 1000


def key_change_note(backend, key_id: str | None) -> str | None:
    """What ``/ready`` and ``mlcase serve`` say when the latest hashed rows of the log (among its last
    :data:`KEY_LOOKBACK`) carry a ``log_key_id`` other than ``key_id``, the key this server hashes with; else None.

    A restart without ``MLCASE_LOG_KEY`` hashes with the machine's key file: every unit gets a hash unrelated to its
    earlier one, and monitoring counts each person twice (mlmRev::Contraception's 397 test women read as 794)."""
    if key_id is None:
        return None
    try:
        frame = backend.read_frame(f"SELECT log_key_id FROM (SELECT log_key_id, ts FROM predictions ORDER BY ts DESC "
                                   f"LIMIT {KEY_LOOKBACK}) AS latest WHERE log_key_id IS NOT NULL ORDER BY ts DESC "
                                   "LIMIT 1")
    except Exception:  # noqa: BLE001 - a note, never a reason not to start
        return None
    if frame.empty or frame["log_key_id"].iloc[0] == key_id:
        return None
    from ..governance.pseudonym import LOG_KEY_ENV, LOG_KEY_FILE
    from ..keys import config_dir

    source = (LOG_KEY_ENV if os.environ.get(LOG_KEY_ENV) is not None else
              f"the key file {config_dir() / LOG_KEY_FILE} ({LOG_KEY_ENV} is not set)")
    return (f"the prediction log's latest hashed rows were hashed with log key {frame['log_key_id'].iloc[0]}; this "
            f"server hashes with key {key_id}, from {source}: each unit now gets a hash unrelated to its earlier "
            "rows, and monitoring counts it as another unit; restart with MLCASE_LOG_KEY set to the key those rows "
            "were written with, unless the key was changed on purpose")


class LogFull(Exception):
    """The writer's queue is full: the caller should answer 503 and the client retry."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_json(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, default=_default, allow_nan=False, separators=(",", ":"))


def _default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def resolve_target(case=None, url: str | None = None) -> str:
    """The log's location: ``url`` (a SQLAlchemy URL or a file path), ``serving.log``, or ``<case>/predictions.db``."""
    if url:
        return url
    if case is not None and case.spec.serving.log:
        return case.spec.serving.log
    if case is None:
        raise ValueError("a prediction log needs a case or a URL")
    return str((case.root / "predictions.db").resolve())


# --------------------------------------------------------------------------- backends
#: the request id of the row :meth:`PredictionLog.probe` writes and deletes in one transaction (never committed)
PROBE_ID = "mlcase-log-probe"


def _rollback(con: sqlite3.Connection) -> None:
    """ROLLBACK after a failed statement, keeping the statement's error: SQLite rolls a transaction back by itself
    on some errors (a full disk: SQLITE_FULL), and the ROLLBACK's own "cannot rollback - no transaction is active"
    replaced "database or disk is full" in every 503 and in /ready's last_error."""
    try:
        con.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class _Backend:
    """What both backends share; ``db_errors`` are the database's own exceptions."""

    db_errors: tuple[type[Exception], ...] = ()

    def write(self, rows: list[tuple]) -> None:  # pragma: no cover - each backend defines it
        raise NotImplementedError


class _SqliteBackend(_Backend):
    """sqlite3 directly: WAL, synchronous=NORMAL (a commit survives a killed process), busy timeout."""

    db_errors = (sqlite3.Error,)

    def __init__(self, path: str, synchronous: str = "NORMAL"):
        self.synchronous = check_synchronous(synchronous)   # before anything is created: it goes into a PRAGMA
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = self.connect()
        for ddl in SQLITE_DDL:
            self.con.execute(ddl)
        self._add_missing_columns()
        self.con.commit()

    def _add_missing_columns(self) -> None:
        """``ALTER TABLE ... ADD COLUMN`` for every column a log written by an older mlcase lacks."""
        for table, added in (("predictions", PREDICTION_COLUMNS_ADDED), ("labels", LABEL_COLUMNS_ADDED)):
            have = {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}
            for name, typ in added:
                if name in have:
                    continue
                try:
                    self.con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {typ}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={self.synchronous}")
        con.execute("PRAGMA busy_timeout=30000")
        return con

    def write(self, rows: list[tuple]) -> None:
        placeholders = ",".join("?" * len(COLUMNS))
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(f"INSERT INTO predictions ({','.join(COLUMNS)}) VALUES ({placeholders})", rows)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    def probe(self) -> None:
        """Write a row and delete it in one transaction: raises what a write of predictions would raise now."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("INSERT INTO predictions (request_id, ts) VALUES (?, ?)", (PROBE_ID, now_iso()))
            con.execute("DELETE FROM predictions WHERE request_id = ?", (PROBE_ID,))
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    def add_labels(self, rows: list[tuple]) -> list[tuple]:
        """Insert label rows (tuples in :data:`LABEL_COLUMNS` order) in one transaction; see :data:`ADD_LABEL_SQL`."""
        con = self.connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                sql = ADD_LABEL_SQL.replace(":request_id", "?").replace(":values", ",".join("?" * len(LABEL_COLUMNS)))
                stored = [r for r in rows if con.execute(sql, (*r, r[0])).rowcount == 1]
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
        finally:
            con.close()
        return stored

    def lookup(self, table: str, ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """``(request_id, *columns)`` of the rows of ``table`` with these request ids."""
        con = self.connect()
        try:
            out: list[tuple] = []
            for k in range(0, len(ids), 500):
                chunk = ids[k:k + 500]
                q = (f"SELECT request_id, {', '.join(columns)} FROM {table} "
                     f"WHERE request_id IN ({','.join('?' * len(chunk))})")
                out.extend(tuple(r) for r in con.execute(q, chunk))
            return out
        finally:
            con.close()

    def read_frame(self, sql: str, params: dict | None = None):
        """The result of a SELECT (named ``:param`` placeholders) as a DataFrame."""
        import pandas as pd

        con = self.connect()
        try:
            return pd.read_sql_query(sql, con, params=params or {})
        finally:
            con.close()

    def count(self) -> int:
        con = self.connect()
        try:
            return int(con.execute("SELECT count(*) FROM predictions").fetchone()[0])
        finally:
            con.close()

    def close(self) -> None:
        self.con.close()


_SA_TYPES = {"TEXT": lambda sa: sa.Text, "INTEGER": lambda sa: sa.Integer, "REAL": lambda sa: sa.Float}


class _SqlAlchemyBackend(_Backend):
    """Any database SQLAlchemy reaches (PostgreSQL, MySQL, ...), same tables."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        self.db_errors = (sa.exc.SQLAlchemyError,)
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        md = sa.MetaData()
        self.predictions = sa.Table(
            "predictions", md,
            sa.Column("request_id", sa.Text, primary_key=True), sa.Column("ts", sa.Text, nullable=False, index=True),
            sa.Column("model_version", sa.Integer), sa.Column("model_name", sa.Text), sa.Column("tier", sa.Text),
            sa.Column("fallback", sa.Integer), sa.Column("reason", sa.Text), sa.Column("inputs", sa.Text),
            sa.Column("score", sa.Float), sa.Column("scores", sa.Text), sa.Column("prediction", sa.Text),
            sa.Column("decision", sa.Text), sa.Column("conformal", sa.Text), sa.Column("latency_ms", sa.Float),
            sa.Column("challenger", sa.Text), *(sa.Column(c, _SA_TYPES[t](sa)) for c, t in PREDICTION_COLUMNS_ADDED))
        self.labels = sa.Table(
            "labels", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("request_id", sa.Text, nullable=False, index=True), sa.Column("label", sa.Text),
            sa.Column("ts", sa.Text, nullable=False), sa.Column("source", sa.Text),
            *(sa.Column(c, _SA_TYPES[t](sa)) for c, t in LABEL_COLUMNS_ADDED))
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _wal(dbapi_con, _):
                dbapi_con.execute("PRAGMA journal_mode=WAL")
                dbapi_con.execute("PRAGMA synchronous=NORMAL")
                dbapi_con.execute("PRAGMA busy_timeout=30000")
        md.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """``ALTER TABLE ... ADD COLUMN`` for every column a log written by an older mlcase lacks."""
        sa = self.sa
        insp = sa.inspect(self.engine)
        for table, added in (("predictions", PREDICTION_COLUMNS_ADDED), ("labels", LABEL_COLUMNS_ADDED)):
            have = {c["name"] for c in insp.get_columns(table)}
            for name, typ in added:
                if name in have:
                    continue
                sql_type = _SA_TYPES[typ](sa)().compile(dialect=self.engine.dialect)
                try:
                    with self.engine.begin() as con:
                        con.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
                except sa.exc.SQLAlchemyError:  # another process added it first: fine if it is there now
                    if name not in {c["name"] for c in sa.inspect(self.engine).get_columns(table)}:
                        raise

    def write(self, rows: list[tuple]) -> None:
        with self.engine.begin() as con:
            con.execute(self.predictions.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows])

    def probe(self) -> None:
        """Write a row and delete it in one transaction: raises what a write of predictions would raise now."""
        with self.engine.begin() as con:
            con.execute(self.predictions.insert(), [{"request_id": PROBE_ID, "ts": now_iso()}])
            con.execute(self.predictions.delete().where(self.predictions.c.request_id == PROBE_ID))

    def add_labels(self, rows: list[tuple]) -> list[tuple]:
        """Insert label rows (tuples in :data:`LABEL_COLUMNS` order) in one transaction; see :data:`ADD_LABEL_SQL`."""
        sql = self.sa.text(ADD_LABEL_SQL.replace(":values", ", ".join(f":{c}" for c in LABEL_COLUMNS)))
        with self.engine.begin() as con:
            return [r for r in rows if con.execute(sql, dict(zip(LABEL_COLUMNS, r, strict=True))).rowcount == 1]

    def lookup(self, table: str, ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """``(request_id, *columns)`` of the rows of ``table`` with these request ids."""
        tbl = self.predictions if table == "predictions" else self.labels
        out: list[tuple] = []
        with self.engine.connect() as con:
            for k in range(0, len(ids), 500):
                q = self.sa.select(tbl.c.request_id, *(tbl.c[c] for c in columns)).where(
                    tbl.c.request_id.in_(ids[k:k + 500]))
                out.extend(tuple(r) for r in con.execute(q))
        return out

    def read_frame(self, sql: str, params: dict | None = None):
        """The result of a SELECT (named ``:param`` placeholders) as a DataFrame."""
        import pandas as pd

        with self.engine.connect() as con:
            return pd.read_sql_query(self.sa.text(sql), con, params=params or {})

    def count(self) -> int:
        with self.engine.connect() as con:
            return int(con.execute(self.sa.select(self.sa.func.count()).select_from(self.predictions)).scalar())

    def close(self) -> None:
        self.engine.dispose()


SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def check_synchronous(value) -> str:
    """SQLite's ``PRAGMA synchronous`` level for the log, upper-cased; anything else is a :class:`SpecError`."""
    from ..errors import SpecError

    if not isinstance(value, str) or value.strip().upper() not in SYNCHRONOUS:
        raise SpecError(f"log_synchronous {value!r}: not a SQLite synchronous level",
                        f"pass one of {', '.join(SYNCHRONOUS)} (NORMAL keeps every acknowledged prediction)")
    return value.strip().upper()


def _unwritable_sqlite(target: str) -> Path | None:
    """The file or folder that keeps a SQLite log ``target`` from being written by this user, or None."""
    if "://" in target and not (target.startswith("sqlite:///") and "?" not in target):
        return None
    path = Path(target.removeprefix("sqlite:///")).absolute()
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return path
    folder = next((p for p in path.parents if p.exists()), None)   # SQLite writes its WAL and -shm files beside it
    return folder if folder is not None and not os.access(folder, os.W_OK | os.X_OK) else None


def open_backend(target: str, synchronous: str = "NORMAL"):
    """A backend for a file path / ``sqlite:///`` path (sqlite3, WAL) or any other SQLAlchemy URL.

    A log that cannot be opened (not a database, a folder that cannot be created, an unknown
    URL scheme or a missing driver) is a :class:`~mlcase.errors.DataError` naming it.
    """
    from ..errors import DataError, MlcaseError

    try:
        if "://" not in target:
            return _SqliteBackend(target, synchronous)
        if target.startswith("sqlite:///") and "?" not in target:
            return _SqliteBackend(target.removeprefix("sqlite:///"), synchronous)
        return _SqlAlchemyBackend(target)
    except MlcaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlite3, OS and SQLAlchemy errors alike: the log is bad input
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        unwritable = _unwritable_sqlite(target)
        if unwritable is not None:
            # a read-only folder said "unable to open database file" and sent the user to a database driver
            raise DataError(f"prediction log {redact_url(target)}: cannot write it ({unwritable} is not writable by "
                            "this user)", f"make {unwritable} writable by the user mlcase runs as, or pass --log (or "
                            "set serving.log) to a path it may write") from None
        raise DataError(f"prediction log {redact_url(target)}: cannot open it ({type(exc).__name__}: {first})",
                        "pass --log (or set serving.log) to a SQLite file path or a SQLAlchemy URL whose "
                        "database driver is installed") from None


# --------------------------------------------------------------------------- the writer
class PredictionLog:
    """A bounded queue drained by one writer thread in batched transactions.

    Parameters
    ----------
    target : str
        File path or SQLAlchemy URL (see :func:`open_backend`).
    max_queue : int
        Rows waiting at most; :meth:`submit` raises :class:`LogFull` beyond it.
    max_batch : int
        Rows per transaction at most.
    synchronous : {"NORMAL", "FULL"}
        SQLite only: NORMAL survives a killed process, FULL also a power loss (slower).

    Attributes
    ----------
    written, failed, refused : int
        Rows committed, rows a transaction could not write, rows refused because the queue was full.
    failing : str or None
        Why the log cannot record predictions now (the error of the last transaction, when none of its rows
        could be written), None once a transaction or a :meth:`check` writes again: what /ready reports.
    """

    def __init__(self, target: str, max_queue: int = 10_000, max_batch: int = 512, synchronous: str = "NORMAL"):
        self.target = target
        self.backend = open_backend(target, synchronous)
        self.max_batch = max_batch
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self.written = 0
        self.failed = 0
        self.refused = 0
        self.transactions = 0
        self.last_error: str | None = None
        self.failing: str | None = None
        self._probing = threading.Lock()
        self._probe_pending: Future | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcase-predlog", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._q.qsize()

    def submit(self, rows: list[tuple]) -> Future:
        """Queue rows (tuples in :data:`COLUMNS` order); the future resolves when they are committed."""
        fut: Future = Future()
        try:
            self._q.put_nowait((rows, fut))
        except queue.Full:
            self.refused += len(rows)
            raise LogFull(f"the prediction log has {self._q.qsize()} writes waiting") from None
        return fut

    def write(self, rows: list[tuple], timeout: float | None = 30.0) -> None:
        """Submit and wait for the commit (raises what the transaction raised)."""
        self.submit(rows).result(timeout=timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._q.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            items = [first]
            n = len(first[0] or ())
            while n < self.max_batch:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                n += len(item[0] or ())
            probes = [fut for rows, fut in items if rows is None]
            self._commit([it for it in items if it[0] is not None])
            if probes:
                self._probe(probes)

    def _commit(self, items: list) -> None:
        rows = [r for rs, _ in items for r in rs]
        try:
            if rows:
                self.backend.write(rows)
        except Exception as exc:  # noqa: BLE001 - retried row by row below, failures counted
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._commit_one_by_one(items)
            return
        self.transactions += 1
        self.written += len(rows)
        if rows:
            self.failing = None
        for _, fut in items:
            fut.set_result(len(_))

    def _probe(self, futures: list) -> None:
        try:
            self.backend.probe()
            self.failing = None
        except Exception as exc:  # noqa: BLE001 - what /ready says
            self.failing = self.last_error = f"{type(exc).__name__}: {_first_line(exc)}"
        for fut in futures:
            fut.set_result(0)

    def check(self, timeout: float = 5.0) -> str | None:
        """Why the log cannot record predictions now, or None. While it is failing, a row is written and deleted
        again on the writer's thread (one such check at a time): a server that answers 503 to every /predict gets
        no traffic from a load balancer that reads /ready, so only this can see the log recover."""
        if self.failing is None:
            return None
        with self._probing:
            if self._probe_pending is None or self._probe_pending.done():
                self._probe_pending = Future()
                try:
                    self._q.put_nowait((None, self._probe_pending))
                except queue.Full:
                    self._probe_pending.set_result(0)
            fut = self._probe_pending
        with contextlib.suppress(TimeoutError):
            fut.result(timeout=timeout)
        return self.failing

    def _commit_one_by_one(self, items: list) -> None:
        """After a batch failed: each request's rows in a transaction of their own, so one bad row (a duplicate
        request id) does not take the other requests down with it, and a request answered 503 left none of its rows
        behind (row by row, a full disk took the rows that still fitted: 4 of a 503'd batch of 10 were logged)."""
        wrote = False
        for rows, fut in items:
            try:
                self.backend.write(rows)
            except Exception as exc:  # noqa: BLE001 - counted; the request answers 503
                self.failed += len(rows)
                self.last_error = f"{type(exc).__name__}: {exc}"
                if "IntegrityError" not in type(exc).__name__:  # the rows' fault (a duplicate id), not the log's
                    self.failing = f"{type(exc).__name__}: {_first_line(exc)}"
                fut.set_exception(RuntimeError(f"{len(rows)} of {len(rows)} prediction log rows not written: "
                                               f"{self.last_error}"))
                continue
            self.transactions += 1
            self.written += len(rows)
            wrote = wrote or bool(rows)
            fut.set_result(len(rows))
        if wrote:
            self.failing = None

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is committed."""
        deadline = time.monotonic() + timeout
        while self._q.qsize() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.write([], timeout=max(0.1, deadline - time.monotonic()))

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread and close the database."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)
        self.backend.close()

    def stats(self) -> dict:
        return {"written": self.written, "failed": self.failed, "refused": self.refused, "queued": self.queued,
                "transactions": self.transactions, "last_error": self.last_error, "failing": self.failing,
                "target": redact_url(self.target)}

    # labels -----------------------------------------------------------------------
    def add_labels(self, labels: list[dict], channel: str = "api") -> dict:
        """Attach delayed outcomes: ``[{"request_id", "label"}]``. Returns counts and the unknown ids."""
        return attach_labels(self.backend, labels, channel)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def label_source(arm: str | None, audit, reviewed: bool) -> str:
    """What a label rests on (:data:`LABEL_SOURCES`), from its prediction's arm and audit flag.

    A label of a holdout unit is unbiased whoever gives it; a reviewer's verdict on an audited
    automatic decision is the audit sample; any other reviewer's verdict is a review (of a
    flagged or deferred case); everything else is a delayed outcome of the model's arm.
    """
    if arm == "holdout":
        return "holdout"
    if reviewed:
        return "audit" if audit else "review"
    return "outcome"


def attach_labels(backend, labels: list[dict], channel: str) -> dict:
    """Attach delayed outcomes (``request_id``, ``label``) in one transaction.

    Each stored row gets its :func:`label_source` and ``channel``; unknown request ids are
    counted and left out.
    """
    ids = [str(x["request_id"]) for x in labels]
    info = {r[0]: r[1:] for r in backend.lookup("predictions", sorted(set(ids)), ("arm", "audit"))}
    unknown = [k for k, i in enumerate(ids) if i not in info]
    rows = label_rows([{**x, "request_id": rid} for rid, x in zip(ids, labels, strict=True) if rid in info],
                      info, channel)
    stored = backend.add_labels(rows) if rows else []
    if len(stored) < len(rows):  # their predictions were erased meanwhile (forget, retention): unknown now
        gone = {r[0] for r in rows} - {r[0] for r in stored}
        unknown = [k for k, i in enumerate(ids) if i not in info or i in gone]
    rows = stored
    missing = sorted({ids[k] for k in unknown})
    return {"attached": len(rows), "blank": sum(r[1] is None for r in rows), "unknown": len(unknown),
            "unknown_request_ids": missing[:100],
            "sources": {s: n for s in LABEL_SOURCES if (n := sum(r[3] == s for r in rows))}}


def label_rows(labels: list[dict], info: dict, channel: str) -> list[tuple]:
    """Rows of the labels table (:data:`LABEL_COLUMNS` order) for labels of known request ids.

    ``info`` maps each request id to its prediction's ``(arm, audit)``; a label with a
    ``reviewer`` is a review.
    """
    ts = now_iso()
    rows = []
    for x in labels:
        rid = str(x["request_id"])
        arm, audit = info[rid]
        rows.append((rid, None if x.get("label") is None else str(x["label"]), ts,
                     label_source(arm, audit, x.get("reviewer") is not None), channel, x.get("reviewer"),
                     x.get("reviewed_at"), x.get("note")))
    return rows


def connect_read_only(path: str | Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection to a SQLite log, also in a folder this process may not write to.

    The log is in WAL mode, and SQLite creates its shared-memory file even to read one: on a case folder
    mounted read-only, ``mlcase monitor`` failed with "attempt to write a readonly database". Where the folder
    is not writable and no ``-wal`` file lies beside the log, no server has it open, and it is opened as the
    immutable file it is here.
    """
    path = Path(path).resolve()
    uri = f"{path.as_uri()}?mode=ro"

    def opened(u: str) -> sqlite3.Connection:   # read once: a file that is not a database raises DatabaseError
        con = sqlite3.connect(u, uri=True, check_same_thread=check_same_thread)
        try:
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            con.close()
            raise
        return con

    try:
        return opened(uri)
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK) or path.with_name(path.name + "-wal").exists():
            raise
        return opened(uri + "&immutable=1")


def open_existing(case, url: str | None = None):
    """A backend on the case's log (or ``url``), refusing to create an empty SQLite log where none is."""
    from ..errors import DataError

    target = resolve_target(case, url)
    if "://" not in target or (target.startswith("sqlite:///") and "?" not in target):
        log_file = Path(target.removeprefix("sqlite:///"))
        if not log_file.is_file():  # never create an empty log just to find none of the ids in it
            raise DataError(f"no prediction log at {log_file}",
                            "serve the model first (`mlcase serve`), or pass --log with the log that holds "
                            "these request ids")
        tables = sqlite_tables(log_file)
        if tables and "predictions" not in tables:
            # opening it as the log created the log's tables in it: `rollout status --log mlflow.db` wrote a
            # predictions and a labels table into the case's MLflow store
            raise DataError(f"{log_file} is not a prediction log ({not_a_log_said(tables)})",
                            "pass --log with the log `mlcase serve` wrote (serving.log, else <case>/predictions.db)")
    return open_backend(target), target


def sqlite_tables(path: str | Path) -> set[str] | None:
    """The tables and views of a SQLite file, read-only (None: not a SQLite database)."""
    try:
        con = connect_read_only(path)
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None


def not_a_log_said(tables: set[str]) -> str:
    """What a SQLite file that holds ``tables`` and no predictions table is, in words."""
    return "a SQLite database without a predictions table" + (": an MLflow store" if "experiments" in tables else "")


def label_records(df) -> list[dict]:
    """The ``request_id`` and ``label`` of each row of a labels table (as :func:`mlcase.data.read_table` reads
    one), a blank label None: what :func:`_checked_labels` checks, for ``mlcase label`` and ``monitor --labels``."""
    return [{"request_id": r, "label": (None if v is None or (isinstance(v, float) and v != v) else v)}
            for r, v in zip(df["request_id"].astype(str), df["label"].tolist(), strict=True)]


def _checked_labels(case, records: list[dict], name: str, outcome: str = "nothing was attached") -> list[dict]:
    """``records`` with each label as the target's value it spells (review.Target.canonical: a class, or a
    number as text), or a DataError naming the first row whose label is none, or a request id given two.

    A labels file was stored as written: 'zz' as the outcome of a regression, or two different labels for
    one request in one file (which one monitoring read was the order of the rows). A blank label stays
    blank (no outcome yet). ``outcome`` ends the refusal: what the command did not do (``monitor --labels``
    refuses the same file as ``mlcase label``). Each distinct value is spelled once (2M labels, few values).
    """
    from ..errors import DataError

    if not any(r["label"] is not None for r in records):
        return records
    from .. import results
    from ..review import Target, _served_bundle

    seen = results.load(case, "data") or {}   # the last run's classes: loading the served model took 6 s more
    if seen.get("task") and (seen.get("schema") or {}).get("target") == case.spec.data.target:
        classes = seen.get("classes")
        target = Target(seen["task"], None if classes is None else [str(c) for c in classes],
                        None if seen.get("positive") is None else str(seen["positive"]))
    else:
        from ..errors import NotFoundError

        try:
            target = Target.of(_served_bundle(case))
        except NotFoundError:   # no run here and no model registered: nothing says what the target's values are
            return records
    if target.task not in ("binary", "multiclass", "regression", "ranking"):
        return records
    out, first, spelled = [], {}, {}
    for k, r in enumerate(records):
        v = r["label"]
        if v is None:
            label = None
        else:   # by type too: 1, 1.0 and True are one key to a dict and spell 1, 1.0 and True
            label = spelled.get((type(v), v), spelled)
            if label is spelled:
                label = spelled[(type(v), v)] = target.canonical(v)
        if r["label"] is not None and label is None:
            raise DataError(f"{name} row {k + 1} (request_id {r['request_id']}): label {str(r['label'])[:60]!r} is "
                            f"not {target.describe()}; {outcome}",
                            f"write {target.describe()}, or leave the label empty where the outcome is not known")
        if label is not None:
            row, was = first.setdefault(r["request_id"], (k, label))
            if was != label:
                raise DataError(f"{name}: request_id {r['request_id']} has two labels, {was!r} (row {row + 1}) "
                                f"and {label!r} (row {k + 1}); {outcome}",
                                "keep one label per request in a file (a later file may correct it)")
        out.append({**r, "label": label})
    return out


def label_file(case, path: str | Path, url: str | None = None, channel: str | None = None) -> dict:
    """Attach the labels in a CSV/Parquet file (columns ``request_id``, ``label``) to a case's prediction log."""
    from ..case import load_case, path_arg
    from ..data import read_table
    from ..errors import DataError

    case = load_case(case)
    p = path_arg(path, "labels file", "pass the path of a CSV or Parquet file with request_id and label columns")
    if not p.is_file():
        raise DataError(f"labels file {p}: {'is a folder' if p.is_dir() else 'no such file'}",
                        "pass a CSV or Parquet file with request_id and label columns")
    df = read_table(p.name if p.is_absolute() else str(p), p.parent if p.is_absolute() else Path.cwd(),
                    what=f"labels file {p.name}")
    missing = [c for c in ("request_id", "label") if c not in df.columns]
    if missing:
        raise DataError(f"{p.name}: the labels file lacks the column(s) {', '.join(missing)}",
                        "give it a request_id column (from /predict) and a label column")
    records = _checked_labels(case, label_records(df), p.name)
    # a row written twice with the same label is one outcome (it was stored, and counted, twice); a blank label is
    # no outcome yet (monitoring skips it): "attached 5 label(s)" for a file of 5 blanks said otherwise
    kept, seen = [], set()
    for r in records:
        key = (r["request_id"], r["label"])
        if r["label"] is not None and key in seen:
            continue
        seen.add(key)
        kept.append(r)
    repeated, records = len(records) - len(kept), kept
    backend, target = open_existing(case, url)
    try:
        out = attach_labels(backend, records, channel or f"file:{p.name}")
    finally:
        backend.close()
    out["log"] = redact_url(target)
    out["repeated"] = repeated
    if records and not out["attached"]:
        shown = ", ".join(out["unknown_request_ids"][:3])
        raise DataError(f"{p.name}: none of its {len(records)} request id(s) are in the prediction log {out['log']} "
                        f"(e.g. {shown})",
                        "use the request_id values the server answered with, or pass --log with the log that "
                        "holds them")
    from ..governance.stores import register_file

    register_file(case, p, "labels file")  # `mlcase forget` and retention reach it
    return out
