"""The serving log at columnar speed: closed windows of the SQLite log compacted into date-partitioned Parquet.

``mlcase log compact`` (and ``mlcase monitor``, once enough closed rows wait) copies the
predictions whose window has closed from ``<log>.db`` into
``<log>.compacted/date=YYYY-MM-DD/part-<batch>-<n>.parquet`` beside it: every column as
logged (``inputs`` too, as its JSON text) plus the inputs typed once, as ``inputs.<key>``
columns, so monitoring reads them without parsing JSON. Monitoring then reads
the compacted part plus the *live tail*: the rows no batch covers.

Nothing is lost or duplicated, whatever moment the compaction is killed at: the SQLite log
keeps every row (deleting old rows is retention's job: :class:`CompactedLogStore`, registered
with :mod:`mlcase.governance.stores`, and the SQLite store), and a batch exists only once its manifest row is committed in the log's
own database (table :data:`MANIFEST`), in one SQLite transaction, after its Parquet files are
written and renamed into place. A batch covers exactly the rows with ``ts_from <= ts < ts_to``
(text comparison, as stored) and ``rowid <= max_rowid`` (read in the same snapshot as the
rows); readers take the tail as the complement of that predicate, so a row is in the compacted
part or in the tail, never both, never neither. Files of a batch killed before its commit are
ignored by readers and deleted by the next compaction.

Labels stay in the SQLite log (few rows, appended as outcomes arrive).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import DataError, SpecError
from ..times import read_now
from ._util import _lit, _q

MANIFEST = "compacted_batches"
CHUNK_ROWS = 100_000
AUTO_MIN_ROWS = 100_000          # monitor compacts by itself once this many closed rows wait
DUCKDB_MEMORY_LIMIT = "512MB"
INPUT_PREFIX = "inputs."
SCRATCH_PREFIX = ".scratch-"       # a compaction's working database, inside the compacted folder
MANIFEST_DDL = (f"CREATE TABLE IF NOT EXISTS {MANIFEST} (batch TEXT PRIMARY KEY, created TEXT NOT NULL, "
                "ts_from TEXT NOT NULL, ts_to TEXT NOT NULL, max_rowid INTEGER NOT NULL, n_rows INTEGER NOT NULL, "
                "files TEXT NOT NULL)")


def compacted_folder(db: Path) -> Path:
    """Where the Parquet part of the log at ``db`` lives: ``<db stem>.compacted/`` beside it."""
    db = Path(db)
    return db.with_name(db.stem + ".compacted")


def cut_for(now: float, window_s: float) -> str:
    """The start of the window holding ``now`` (epoch seconds), as the text the log's ``ts`` is compared with."""
    start = (now // window_s) * window_s
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Batch:
    """One committed compaction: the rows ``ts_from <= ts < ts_to`` with ``rowid <= max_rowid``, in ``files``."""

    batch: str
    ts_from: str
    ts_to: str
    max_rowid: int
    n_rows: int
    files: list[str]


@dataclass
class CompactResult:
    """What :func:`compact` did."""

    log: str
    folder: str
    cut: str
    batches: list[str] = field(default_factory=list)
    rows: int = 0
    files: int = 0
    removed_orphans: int = 0
    seconds: float = 0.0
    tail_rows: int | None = None
    lowered_from: str | None = None   # the cut asked for (``before``), when it lay past the current window's start

    def to_dict(self) -> dict:
        return {"log": self.log, "folder": self.folder, "cut": self.cut, "batches": self.batches, "rows": self.rows,
                "files": self.files, "removed_orphans": self.removed_orphans, "seconds": round(self.seconds, 3),
                "tail_rows": self.tail_rows, "lowered_from": self.lowered_from}


# =========================================================================== reading
class CompactedLog:
    """The compacted part of one SQLite log: its committed batches, their files, the tail predicate
    (:class:`CompactedLogStore` erases and prunes it)."""

    def __init__(self, db: str | Path):
        self.db = Path(db)
        self.folder = compacted_folder(self.db)

    # ------------------------------------------------------------------ manifest
    def batches(self, con: sqlite3.Connection | None = None) -> list[Batch]:
        """The committed batches (none when the log was never compacted)."""
        own = con is None
        if own:
            con = _connect_ro(self.db)
        try:
            if not _has_table(con, MANIFEST):
                return []
            rows = con.execute(f"SELECT batch, ts_from, ts_to, max_rowid, n_rows, files FROM {MANIFEST} "
                               "ORDER BY ts_from").fetchall()
            return [Batch(r[0], r[1], r[2], int(r[3]), int(r[4]), json.loads(r[5])) for r in rows]
        finally:
            if own:
                con.close()

    def files(self, batches: list[Batch] | None = None) -> list[Path]:
        """The Parquet files of the committed batches that are still there (retention may have pruned some)."""
        out = []
        for b in self.batches() if batches is None else batches:
            out += [self.folder / f for f in b.files if (self.folder / f).exists()]
        return out

    @staticmethod
    def tail_where(batches: list[Batch], alias: str = "") -> str:
        """SQL (SQLite) selecting the rows of ``predictions`` (``alias``) no batch covers: the live tail."""
        if not batches:
            return "1=1"
        a = f"{alias}." if alias else ""
        covered = " OR ".join(f"({a}ts >= {_lit(b.ts_from)} AND {a}ts < {_lit(b.ts_to)} AND {a}rowid <= {b.max_rowid})"
                              for b in batches)
        # the candidates, found through the ts index and the rowid: SQLite scans the whole table for
        # `ts >= hi OR ts < lo OR rowid > n` (two ranges of one column in an OR), but searches each
        # term of a union (0.22 s -> 0.03 s for a 33k-row tail of a 1M-row log, benchmarks/monitor_scale.py)
        lo, hi, rowid = min(b.ts_from for b in batches), max(b.ts_to for b in batches), min(b.max_rowid for b in batches)
        candidates = (f"SELECT rowid FROM predictions WHERE ts >= {_lit(hi)} UNION ALL "
                      f"SELECT rowid FROM predictions WHERE ts < {_lit(lo)} UNION ALL "
                      f"SELECT rowid FROM predictions WHERE rowid > {rowid}")
        return f"{a}rowid IN ({candidates}) AND NOT ({covered})"


class CompactedLogStore:
    """The compacted part of a SQLite log as a store of :mod:`mlcase.governance.stores` (erasure, retention).

    ``find`` / ``erase`` / ``prune`` act on every Parquet file under the folder, each rewritten by
    DuckDB without the rows that go (column types kept, unlike a pandas round trip that turns an
    integer column with nulls into floats) into a temporary file renamed over it, or deleted when
    no row is left: a kill leaves each file before or after. They hold the compaction lock, and
    (unless ``dry_run``) first delete the files of a killed compaction (orphans, temporary files), so no copy
    of an erased row survives anywhere in the folder, and a compaction running at the same time
    cannot bring rows back from its own read of the SQLite log. The manifest keeps its batches
    (their ``n_rows`` count what was compacted): rows erased or pruned here stay out of the live
    tail, where the SQLite store removes them anyway.
    """

    name = "compacted log"

    def __init__(self, db: str | Path):
        self.log = CompactedLog(db)

    @property
    def location(self) -> str:
        return str(self.log.folder)

    def find(self, subject) -> set[str]:
        """Request ids of the rows whose ``unit_id`` is the subject (as logged, raw or hashed)."""
        with self._locked(clean=False) as con:
            return {r[0] for f, have in self._files() if "unit_id" in have
                    for r in con.execute(f"SELECT CAST(request_id AS VARCHAR) FROM {_read(f)} "
                                         f"WHERE {self._unit_sql(subject)}").fetchall()}

    def erase(self, subject, ids: set[str], dry_run: bool = False) -> int:
        """Remove the subject's rows (its ``unit_id``, or one of ``ids``); the rows removed (or counted)."""
        def cond(have):
            terms = [self._unit_sql(subject)] if "unit_id" in have else []
            if ids and "request_id" in have:
                terms.append("CAST(request_id AS VARCHAR) IN (SELECT id FROM _ids)")
            return " OR ".join(terms)
        return self._rewrite(cond, dry_run, ids=ids)

    def other_keys(self, key_id: str) -> dict[str, int]:
        """Rows per ``log_key_id`` other than ``key_id`` (see :meth:`PredictionLogStore.other_keys
        <mlcase.governance.stores.PredictionLogStore.other_keys>`); files compacted before the column read as none."""
        out: dict[str, int] = {}
        with self._locked(clean=False) as con:
            for f, have in self._files():
                if "log_key_id" not in have or "unit_id" not in have:
                    continue
                for k, n in con.execute(f"SELECT CAST(log_key_id AS VARCHAR) AS k, count(*) FROM {_read(f)} "
                                        f"WHERE k IS NOT NULL AND k <> {_lit(key_id)} AND CAST(unit_id AS VARCHAR) LIKE 'hmac:%' "
                                        "GROUP BY k").fetchall():
                    out[k] = out.get(k, 0) + int(n)
        return out

    def prune(self, before: str, dry_run: bool = False, **_) -> int:
        """Remove the rows logged before ``before`` (ISO-8601 UTC, compared as the log's ``ts`` text)."""
        return self._rewrite(lambda have: f"CAST(ts AS VARCHAR) < {_lit(before)}" if "ts" in have else "", dry_run)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _unit_sql(subject) -> str:
        return f"CAST(unit_id AS VARCHAR) IN ({', '.join(_lit(v) for v in subject.values)})"

    @contextlib.contextmanager
    def _locked(self, clean: bool = True):
        import duckdb

        from ..lock import file_lock

        with file_lock(self.log.folder / ".compact.lock", "log compact", timeout=600):
            sq = sqlite3.connect(str(self.log.db), timeout=30, isolation_level=None)
            try:
                sq.execute("PRAGMA busy_timeout=30000")
                if clean and _has_table(sq, MANIFEST):
                    _remove_orphans(self.log, sq)
            finally:
                sq.close()
            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            try:
                yield con
            finally:
                con.close()

    def _files(self) -> list[tuple[Path, set]]:
        import duckdb

        out = []
        for f in sorted(self.log.folder.glob("date=*/*.parquet")):
            if not f.name.startswith("."):
                out.append((f, {r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM {_read(f)}").fetchall()}))
        return out

    def _rewrite(self, cond_of, dry_run: bool, ids: set[str] | None = None) -> int:
        import pyarrow as pa

        removed = 0
        with self._locked(clean=not dry_run) as con:
            if ids:
                con.register("_ids", pa.table({"id": sorted(ids)}))
            for f, have in self._files():
                cond = cond_of(have)
                if not cond:
                    continue
                n, total = (int(v) for v in con.execute(
                    f"SELECT count(*) FILTER (WHERE coalesce({cond}, false)), count(*) FROM {_read(f)}").fetchone())
                removed += n
                if dry_run or not n:
                    continue
                if n == total:
                    f.unlink()
                    if not any(f.parent.iterdir()):
                        f.parent.rmdir()
                    continue
                tmp = f.with_name(f".{f.name}.tmp")
                con.execute(f"COPY (SELECT * FROM {_read(f)} WHERE NOT coalesce({cond}, false)) TO {_lit(str(tmp))} "
                            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
                tmp.replace(f)
        return removed


def compacted_stores(case, target: str) -> list:
    """The store of the compacted part of the case's log at ``target``, when it has one
    (``register_store`` factory of :mod:`mlcase.governance.stores`)."""
    try:
        db = sqlite_log(case, target)
    except DataError:  # not a SQLite file, or none yet: nothing compacted
        return []
    return [CompactedLogStore(db)] if compacted_folder(db).is_dir() else []


def _read(f: Path) -> str:
    return f"read_parquet({_lit(str(f))}, hive_partitioning = false)"


def _connect_ro(db: Path) -> sqlite3.Connection:
    from ..serve.predlog import connect_read_only

    return connect_read_only(db, check_same_thread=False)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


# =========================================================================== compacting
def sqlite_log(case=None, log: str | Path | None = None) -> Path:
    """The SQLite file of the case's serving log (or of ``log``); anything else is a :class:`DataError`."""
    from ..serve.predlog import resolve_target

    target = str(log) if log is not None else resolve_target(case)
    if "://" in target:
        if not target.startswith("sqlite:///"):
            raise DataError(f"log compact: {target.split('://', 1)[0]}:// logs are not compacted (only SQLite files)",
                            "a database server already reads by columns and ranges; compact a SQLite log")
        target = target.removeprefix("sqlite:///").split("?", 1)[0]
    path = Path(target)
    if case is not None and not path.is_absolute() and not path.exists():
        path = case.resolve(path)
    if not path.exists():
        raise DataError(f"log compact: no prediction log at {path}", "serve the model first, or pass --log")
    return path


def compact(case=None, log: str | Path | None = None, before: str | None = None, window: float | None = None,
            now: float | None = None, stop_after: str | None = None) -> CompactResult:
    """Compact the closed windows of a SQLite serving log into date-partitioned Parquet.

    Parameters
    ----------
    case : Case, str or Path, optional
        Its ``serving.log`` (or ``<case>/predictions.db``) and ``monitoring.window``; a path is loaded.
    log : path, optional
        The SQLite log (instead of the case's).
    before : str, optional
        Compact rows with ``ts`` before this (ISO date or time), but never past the start of the
        current window (``window``, default ``monitoring.window`` or one day), which is also the
        default, so only closed windows are compacted: the server still logs rows into the
        current window, and those a cut past it covered by time but not by row would stay in the
        live tail for good (the next batch starts at the cut). A lowered cut is reported in
        :attr:`CompactResult.lowered_from`.
    window : float or str, optional
        The monitoring window, in seconds or as a duration (``1d``); positive.
    now : float, datetime or str, optional
        The time "now" is: epoch seconds, a datetime or ISO-8601 text (tests and replays).
    stop_after : str, optional
        For tests of crash safety only: return right after this step (``"files"``).

    Returns
    -------
    CompactResult
    """
    from ..case import as_case
    from ..lock import file_lock

    t0 = time.perf_counter()
    case = as_case(case) if case is not None else None
    if window is None:
        window = case.spec.monitoring.window if case is not None else 86400.0
    window = check_window(window)
    t = read_now(now)   # checked even when `before` sets the cut: a bad argument is refused, whatever else is given
    if log is not None and not isinstance(log, (str, os.PathLike)):
        raise SpecError(f"log: expected the path of a SQLite serving log, got a {type(log).__name__}",
                        "pass the serving log's path (predictions.db), or leave it out for the case's own")
    if before is not None and not isinstance(before, str):
        before = _before_text(before)
    db = sqlite_log(case, log)
    cut = cut_for(t, window)   # the start of the current window: rows are still being logged after it
    asked = _cut_text(before) if before else cut
    store = CompactedLog(db)
    store.folder.mkdir(parents=True, exist_ok=True)
    result = CompactResult(log=str(db), folder=str(store.folder), cut=min(asked, cut),
                           lowered_from=asked if asked > cut else None)
    cut = result.cut
    # one compaction at a time per log (two would both cover the same rows)
    with file_lock(store.folder / ".compact.lock", "log compact", timeout=600):
        con = sqlite3.connect(str(db), timeout=30, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA busy_timeout=30000")
            if not _has_table(con, "predictions"):
                raise DataError(f"log compact: {db} has no 'predictions' table", "pass the serving log (predictions.db)")
            con.execute(MANIFEST_DDL)
            result.removed_orphans = _remove_orphans(store, con)
            batches = store.batches(con)
            ts_from = batches[-1].ts_to if batches else ""
            if cut > ts_from:
                _compact_batch(con, store, ts_from, cut, result, stop_after)
            result.tail_rows = int(con.execute(
                f"SELECT count(*) FROM predictions WHERE {store.tail_where(store.batches(con))}").fetchone()[0])
        finally:
            con.close()
    result.seconds = time.perf_counter() - t0
    return result


def check_window(window) -> float:
    """``window`` (seconds, a ``timedelta``, or a duration such as ``1d``) as positive seconds, else a
    :class:`SpecError`: ``window=-5`` compacted every row, closed windows or not; ``window=0`` divided by zero."""
    from ..spec import parse_duration

    fix = "give a positive duration: seconds (86400) or text such as 1d, 6h or 30m"
    try:
        seconds = parse_duration(window)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"window: {str(exc).split(';')[0]}", fix) from None
    if seconds <= 0:
        raise SpecError(f"window: expected a positive duration, got {window!r}", fix)
    return float(seconds)


def _before_text(before) -> str:
    """``before`` given as a datetime or epoch seconds, as the text :func:`_cut_text` reads."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(read_now(before, "before"), UTC).isoformat()


def _cut_text(before: str) -> str:
    import pandas as pd

    try:
        ts = pd.Timestamp(before)
    except (ValueError, TypeError):
        raise DataError(f"--before {before!r}: not a date or time", "give an ISO date such as 2024-06-01") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def _remove_orphans(store: CompactedLog, con: sqlite3.Connection) -> int:
    """Delete Parquet files no committed batch lists and the scratch database of a compaction killed before its
    commit (the caller holds the compaction lock, so no compaction is running); the files deleted."""
    import shutil

    listed = {f for b in store.batches(con) for f in b.files}
    n = 0
    for scratch in store.folder.glob(f"{SCRATCH_PREFIX}*"):
        n += sum(1 for f in scratch.rglob("*") if f.is_file())
        shutil.rmtree(scratch, ignore_errors=True)
    for f in store.folder.glob("date=*/*"):
        rel = f.relative_to(store.folder).as_posix()
        if rel not in listed:
            f.unlink()
            n += 1
    for part in store.folder.glob("date=*"):
        if part.is_dir() and not any(part.iterdir()):
            part.rmdir()
    return n


def _compact_batch(con: sqlite3.Connection, store: CompactedLog, ts_from: str, cut: str, result: CompactResult,
                   stop_after: str | None) -> None:
    import tempfile

    import duckdb
    import pyarrow as pa

    batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    info = con.execute("PRAGMA table_info(predictions)").fetchall()
    cols = [r[1] for r in info]
    declared = {r[1]: str(r[2] or "").upper() for r in info}
    where = "ts >= ? AND ts < ?"
    # the scratch database holds a copy of the batch's rows (inputs and unit ids): it lives in the compacted
    # folder, not the system's temporary folder, so that a compaction killed mid-way leaves it where the next
    # compaction and `mlcase forget` delete it, rather than a copy that erasure cannot reach
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=store.folder) as tmp:
        dk = duckdb.connect(str(Path(tmp) / "c.duckdb"))
        try:
            dk.execute(f"SET memory_limit = {_lit(DUCKDB_MEMORY_LIMIT)}")
            dk.execute(f"SET temp_directory = {_lit(str(Path(tmp) / 'spill'))}")
            dk.execute("SET TimeZone = 'UTC'")
            # the rows and max(rowid) from one read snapshot
            con.execute("BEGIN")
            try:
                max_rowid = con.execute("SELECT coalesce(max(rowid), 0) FROM predictions").fetchone()[0]
                cur = con.execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM predictions "
                                  f"WHERE {where} AND rowid <= ?", (ts_from, cut, max_rowid))
                first = True
                while True:
                    rows = cur.fetchmany(CHUNK_ROWS)
                    if not rows:
                        break
                    values = list(zip(*rows, strict=True))
                    tbl = pa.table({c: _arrow(values[i], declared[c]) for i, c in enumerate(cols)})
                    dk.register("_chunk", tbl)
                    dk.execute(("CREATE TABLE rows AS SELECT * FROM _chunk") if first else
                               "INSERT INTO rows BY NAME SELECT * FROM _chunk")
                    dk.unregister("_chunk")
                    first = False
            finally:
                con.execute("COMMIT")
            if first:  # nothing closed to compact
                return
            n = int(dk.execute("SELECT count(*) FROM rows").fetchall()[0][0])
            files = _write_parts(dk, store, batch)
        finally:
            dk.close()
    if stop_after == "files":
        return
    # the commit point: the manifest row, in the log's own database
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute(f"INSERT INTO {MANIFEST} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (batch, datetime.now(UTC).isoformat(), ts_from, cut, int(max_rowid), n, json.dumps(files)))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.batches.append(batch)
    result.rows += n
    result.files += len(files)


#: the Arrow type of a column whose values in a chunk are all NULL, by its declared SQLite type
_NULL_TYPES = {"TEXT": "string", "INTEGER": "int64", "REAL": "float64"}


def _arrow(values, declared: str = ""):
    """One column of a chunk as Arrow. A column with no value in the chunk takes its declared type: as Arrow's null
    type it made the batch's table column DuckDB's "NULL", and the next chunk's values could not be cast to it
    (a log upgraded mid-window: its older rows' NULL log_key_id, then the new rows' key ids, stopped compaction with
    "Conversion Error: Unimplemented type for cast (VARCHAR -> "NULL")")."""
    import pyarrow as pa

    if all(v is None for v in values):
        return pa.nulls(len(values), getattr(pa, _NULL_TYPES.get(declared, "string"))())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types in one column: keep them as text
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _write_parts(dk, store: CompactedLog, batch: str) -> list[str]:
    """Write the batch's rows by date (typed inputs beside the JSON), each file renamed into place; their names."""
    have = [r[0] for r in dk.execute("DESCRIBE rows").fetchall()]
    typed = ""
    if "inputs" in have:
        struct = _input_structure(dk)
        if struct:
            dk.execute(f"""CREATE TABLE typed AS SELECT *, CASE WHEN json_valid(inputs) THEN
                           json_transform(inputs, {_lit(json.dumps(struct))}) END AS _j FROM rows""")
            typed = ", json_valid(inputs) AS _inputs_valid, " + ", ".join(
                f"_j.{_q(k)} AS {_q(INPUT_PREFIX + k)}" for k in struct)
    table = "typed" if typed else "rows"
    from .sources import ts_sql

    typed += f", {ts_sql('ts')} AS _t"   # the time as monitoring reads it (epoch seconds), parsed once
    date = "strftime(TRY_CAST(ts AS TIMESTAMPTZ), '%Y-%m-%d')"
    days = [r[0] for r in dk.execute(f"SELECT DISTINCT coalesce({date}, 'unknown') FROM {table} ORDER BY 1").fetchall()]
    written = []
    for i, day in enumerate(days):
        part = store.folder / f"date={day}"
        part.mkdir(parents=True, exist_ok=True)
        name = f"part-{batch}-{i}.parquet"
        tmp = part / f".{name}.tmp"
        sel = ", ".join(_q(c) for c in have)
        dk.execute(f"COPY (SELECT {sel}{typed} FROM {table} WHERE coalesce({date}, 'unknown') = {_lit(day)} "
                   f"ORDER BY ts) TO {_lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
        tmp.replace(part / name)
        written.append(f"date={day}/{name}")
    return written


def _input_structure(dk) -> dict:
    """The inputs' keys with one type each: integers, numbers, booleans, the rest (and mixed keys) as text.

    Read as the distinct per-record structures (a handful), merged here: DuckDB's
    ``json_group_structure`` over a million records needs more than the memory limit.
    """
    try:
        rows = dk.execute("SELECT DISTINCT json_structure(CAST(inputs AS JSON)) FROM rows "
                          "WHERE json_valid(inputs)").fetchall()
    except Exception:  # noqa: BLE001 - no usable JSON: the inputs stay as text only (monitoring parses them)
        return {}
    seen: dict[str, set] = {}
    for (raw,) in rows:
        struct = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(struct, dict):
            return {}
        for k, t in struct.items():
            seen.setdefault(k, set()).add("JSON" if isinstance(t, (dict, list)) else str(t).upper())
    out = {}
    for k, types in seen.items():
        types = types - {"NULL"}
        if types and types <= {"BIGINT", "UBIGINT", "INTEGER"}:  # integers stay integers: a code 1 reads as '1'
            out[k] = "BIGINT"
        elif types and types <= {"BIGINT", "UBIGINT", "INTEGER", "DOUBLE", "HUGEINT", "FLOAT"}:
            out[k] = "DOUBLE"
        elif types == {"BOOLEAN"}:
            out[k] = "BOOLEAN"
        elif types == {"JSON"}:
            out[k] = "JSON"
        else:
            out[k] = "VARCHAR"
    return out


def closed_rows_waiting(db: Path, window: float, now: float | None = None) -> int:
    """Rows of closed windows not compacted yet (what :func:`auto_compact` counts)."""
    con = _connect_ro(db)
    try:
        if not _has_table(con, "predictions"):
            return 0
        batches = CompactedLog(db).batches(con)
        ts_from = batches[-1].ts_to if batches else ""
        cut = cut_for(read_now(now), window)
        return int(con.execute("SELECT count(*) FROM predictions WHERE ts >= ? AND ts < ?", (ts_from, cut)).fetchone()[0])
    finally:
        con.close()


def auto_compact(case, db: Path, window: float, min_rows: int = AUTO_MIN_ROWS) -> CompactResult | None:
    """Compact the closed windows when at least ``min_rows`` wait (``mlcase monitor`` calls it); None otherwise."""
    if closed_rows_waiting(db, window) < min_rows:
        return None
    return compact(case, db, window=window)


__all__ = ["compact", "auto_compact", "CompactedLog", "CompactedLogStore", "compacted_stores", "CompactResult", "Batch", "compacted_folder", "cut_for",
           "sqlite_log", "MANIFEST", "INPUT_PREFIX"]
