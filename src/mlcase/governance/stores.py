"""Every store that holds rows about a subject, behind one small interface.

A store is any object with

- ``name`` (what it is: "prediction log", "review file" ...) and ``location`` (where, credentials removed);
- ``find(subject) -> set[str]``: the request ids of the subject's rows in it;
- ``erase(subject, ids, dry_run=False) -> int``: remove the subject's rows (its unit, or one of ``ids``),
  atomically; with ``dry_run`` only count them;
- ``prune(before, dry_run=False) -> int``: remove rows older than ``before`` (ISO-8601 UTC), atomically.

Each call is all-or-nothing for its store (a database transaction; a file rewritten into a
temporary file and renamed over the old one), so a process killed at any moment leaves every
store readable and either before or after the change; running the same erasure again finishes
it (:mod:`mlcase.governance.forget`).

:func:`stores_for` lists a case's stores: the files mlcase wrote or read that hold log rows
(review exports and imports, label files; :func:`register_file` records them in
``<case>/.mlcase/governance/files.json``), the entries of :data:`STORE_FACTORIES` (the compacted
Parquet part of a SQLite log, :class:`mlcase.monitor.compact.CompactedLogStore`, is registered here;
``register_store(lambda case, target: [ParquetLogStore(folder)])`` adds any other folder), and the
prediction log itself, always last: it is where a subject's request ids are found, so it is
erased after every store that needs them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import redact_url
from .failpoints import failpoint
from .pseudonym import Pseudonymizer, canonical

FILES_MANIFEST = "files.json"
SQLITE_CHUNK = 500


def governance_dir(case) -> Path:
    """``<case>/.mlcase/governance``: the file manifest, erasure receipts, the monitoring heartbeat."""
    return case.work_dir / "governance"


# --------------------------------------------------------------------------- the arguments, checked first
def check_log(log) -> str | None:
    """``log`` as the stores read it (a path or a SQLAlchemy URL, as text), or None for the case's own log.

    Anything else (a DataFrame, a list) is a :class:`SpecError`; a path to no file is a :class:`DataError`:
    a typo would otherwise erase or prune nothing, and say it did.
    """
    from ..errors import DataError, SpecError

    if log is None:
        return None
    if not isinstance(log, (str, os.PathLike)):
        raise SpecError(f"log: expected the path or SQLAlchemy URL of the prediction log, got a {type(log).__name__}",
                        "pass the serving log's path (predictions.db) or its URL, or leave it out for the case's own")
    text = os.fspath(log)
    if not text.strip():
        raise SpecError("log is empty", "pass the serving log's path (predictions.db) or its URL, or leave it out")
    if "://" not in text and not Path(text).is_file():
        raise DataError(f"log: no prediction log at {text}",
                        "pass the serving log's path (predictions.db) or its URL, or leave it out for the case's own")
    return text


def check_files(files) -> list[Path]:
    """``files`` as a list of existing files: one path (str or Path) counts as a list of one."""
    from ..errors import DataError, SpecError

    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not isinstance(files, (list, tuple, set, frozenset)):
        raise SpecError(f"files: expected a list of CSV/Parquet paths, got a {type(files).__name__}",
                        "pass a list of paths (or one path) of records files")
    out = []
    for f in files:
        if not isinstance(f, (str, os.PathLike)):
            raise SpecError(f"files: expected paths of CSV/Parquet files, got a {type(f).__name__}",
                            "pass a list of paths (or one path) of records files")
        if not Path(f).is_file():
            raise DataError(f"--file {f}: no such file", "pass CSV or Parquet files of records that exist")
        out.append(Path(f))
    return out


def check_subject(value):
    """``value`` if it is one identifier (text or a number), else a :class:`SpecError`.

    A list was hashed as its text (``"['ana']"``): it matched nobody, and the receipt said 0 rows were erased.
    """
    import math
    import numbers

    from ..errors import SpecError

    if isinstance(value, bool) or not isinstance(value, (str, numbers.Number)) or \
            (isinstance(value, str) and ("\n" in value or "\r" in value)):
        shown = f"a {type(value).__name__}" if not isinstance(value, str) else "text of several lines"
        raise SpecError(f"subject: expected one data.id value (text or a number), got {shown}",
                        "pass one subject per call, e.g. forget(case, 'ana@example.com'); call forget once per subject")
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 2 ** 53:   # 9007199254740993.0 is 9007199254740992: another id
        raise SpecError(f"subject: {value!r} is a float past 2**53, which is not one whole number",
                        "pass the id as text or an int (forget(case, '9007199254740993'))")
    return value


# --------------------------------------------------------------------------- the subject
class Subject:
    """Whose rows to find: an identifier (a ``data.id`` value), kept in memory only.

    A unit is logged raw or as its keyed hash (``serving.log_inputs``), in one form
    (:func:`~mlcase.governance.pseudonym.unit_text`); the forms older versions logged (the text as the client
    sent it: NFD, an upper-case UUID or e-mail) are matched too, raw and hashed (:attr:`values`). A raw unit
    that differs from the subject only in letter case where the subject is an e-mail address or a UUID (upper
    and lower case spell the same one) is found in the prediction log and in files (:meth:`matches`,
    :attr:`fold`); hashed, only the spellings in :attr:`values` can be.
    """

    def __init__(self, case, value, column: str | None = None):
        from ..errors import SpecError
        from .pseudonym import _EMAIL, _UUID, unit_forms

        self.column = column or case.spec.data.id
        if not self.column:
            raise SpecError(f"case '{case.name}' names no data.id, so the log cannot tell whose rows are whose",
                            "set data.id to the column that identifies a person (the server logs it as unit_id)")
        forms = unit_forms(check_subject(value))
        if not forms or not forms[0]:
            raise SpecError("--subject is empty", "pass the data.id value of the person whose rows to erase")
        self.raw = forms[0]
        self.forms = forms
        pseudo = Pseudonymizer(case.name)
        self.hashes = list(dict.fromkeys(pseudo(self.column, f) for f in forms))
        self.hashed = self.hashes[0]
        #: the id of the log key the hashes were made with (rows logged under another key cannot be found)
        self.key_id = pseudo.key_id
        #: the lower-case text a raw unit is compared with, case-blind (an e-mail address or a UUID), else None
        self.fold = self.raw.lower() if (_EMAIL.match(self.raw) or _UUID.match(self.raw)) else None

    @property
    def values(self) -> list[str]:
        """Every text the subject's ``unit_id`` may be logged as: its raw forms, then their hashes."""
        return [*self.forms, *self.hashes]

    def matches(self, value) -> bool:
        from .pseudonym import is_hashed, unit_forms

        if value is None:
            return False
        text = canonical(value)
        if not text:
            return False
        if is_hashed(text):
            return text in self.hashes
        from .pseudonym import _WHOLE

        if text in self.forms:
            return True
        one = unit_forms(text)[0]
        whole = _WHOLE.match(text)   # a file's id column read back as float: 123.0 is the unit 123
        return one == self.raw or (self.fold is not None and one.lower() == self.fold) or \
            (whole is not None and str(int(whole.group(1))) == self.raw)

    def where(self, positional: bool = False) -> tuple[str, list | dict]:
        """The SQL condition on ``unit_id`` (``?`` or ``:name`` parameters) and its parameters."""
        vals = self.values
        if positional:
            sql = f"unit_id IN ({', '.join('?' for _ in vals)})"
            params: list | dict = list(vals)
            if self.fold is not None:
                sql, params = f"({sql} OR lower(unit_id) = ?)", [*params, self.fold]
            return sql, params
        sql = f"unit_id IN ({', '.join(f':u{k}' for k in range(len(vals)))})"
        params = {f"u{k}": v for k, v in enumerate(vals)}
        if self.fold is not None:
            sql, params = f"({sql} OR lower(unit_id) = :fold)", {**params, "fold": self.fold}
        return sql, params

    def journal_key(self, case, form: str | None = None) -> str:
        """A name for this erasure's journal: a keyed hash under another context (never a log value)."""
        import hashlib
        import hmac

        from .pseudonym import log_key

        msg = b"\0".join((b"mlcase-erasure-v1", case.name.encode(), (form or self.raw).encode()))
        return hmac.new(log_key(), msg, hashlib.sha256).hexdigest()[:24]

    def journal_keys(self, case) -> list[str]:
        """:meth:`journal_key` of each form, this version's first: an erasure an older version left unfinished
        was journaled under the text as given."""
        return list(dict.fromkeys(self.journal_key(case, f) for f in self.forms))


# --------------------------------------------------------------------------- the prediction log
@dataclass
class PredictionLogStore:
    """The serving log (SQLite through sqlite3, any other database through SQLAlchemy): predictions and labels."""

    target: str
    name: str = "prediction log"

    @property
    def location(self) -> str:
        return redact_url(self.target)

    def _backend(self):
        """The log's backend, or None when its SQLite file does not exist (nothing to erase or prune)."""
        from ..serve.predlog import open_backend

        t = self.target
        if ("://" not in t or (t.startswith("sqlite:///") and "?" not in t)) and \
                not Path(t.removeprefix("sqlite:///")).is_file():
            return None
        return open_backend(t)

    def find(self, subject: Subject) -> set[str]:
        b = self._backend()
        if b is None:
            return set()
        try:
            sql, params = subject.where()
            frame = b.read_frame(f"SELECT request_id FROM predictions WHERE {sql}", params)
        finally:
            b.close()
        return {str(v) for v in frame["request_id"]}

    def other_keys(self, key_id: str) -> dict[str, int]:
        """Rows per ``log_key_id`` other than ``key_id`` (this machine's log key): hashed under another key, so a
        subject's hash under this key cannot find them. An older log (no such column yet) gets it here, empty."""
        b = self._backend()
        if b is None:
            return {}
        try:
            frame = b.read_frame("SELECT log_key_id, count(*) AS n FROM predictions WHERE log_key_id IS NOT NULL "
                                 "AND log_key_id <> :kid AND unit_id LIKE 'hmac:%' GROUP BY log_key_id", {"kid": key_id})
        finally:
            b.close()
        return {str(k): int(n) for k, n in zip(frame["log_key_id"], frame["n"], strict=True)}

    def erase(self, subject: Subject, ids: set[str], dry_run: bool = False) -> int:
        """Delete the subject's predictions and every label of them, in one transaction (rows deleted)."""
        b = self._backend()
        if b is None:
            return 0
        try:
            if dry_run:
                return _count(b, *subject.where(), ids)
            if hasattr(b, "engine"):
                return _sa_delete(b, subject, ids)
            return _sqlite_delete(b, *subject.where(positional=True), ids, "forget")
        finally:
            b.close()

    def prune(self, before: str, archive: list[dict] | None = None, window_s: float | None = None,
              dry_run: bool = False) -> int:
        """Delete predictions (and their labels) older than ``before``; store ``archive`` (monitoring windows)
        in ``monitor_archive`` in the same transaction."""
        b = self._backend()
        if b is None:
            return 0
        try:
            if dry_run:
                return _count(b, "ts < :before", {"before": before}, set())
            if hasattr(b, "engine"):
                return _sa_prune(b, before, archive or [], window_s)
            return _sqlite_delete(b, "ts < ?", [before], set(), "retention", archive or [], window_s)
        finally:
            b.close()


def _count(backend, where: str, params: dict, ids: set[str]) -> int:
    """Predictions matching ``where`` (or with one of ``ids``) plus their labels."""
    found = set(backend.read_frame(f"SELECT request_id FROM predictions WHERE {where}", params)["request_id"])
    found |= {r[0] for r in backend.lookup("predictions", sorted(ids), ("ts",))} if ids else set()
    labels = len(backend.lookup("labels", sorted(found), ("ts",))) if found else 0
    return len(found) + labels


ARCHIVE_DDL = ("CREATE TABLE IF NOT EXISTS monitor_archive (window_start TEXT NOT NULL, window_seconds REAL NOT NULL, "
               "archived_at TEXT NOT NULL, n INTEGER, data TEXT NOT NULL, PRIMARY KEY (window_start, window_seconds))")


def _archive_rows(archive: list[dict], window_s: float | None) -> list[tuple]:
    from ..results import to_json
    from ..serve.predlog import now_iso

    at = now_iso()
    return [(w["start"], float(window_s), at, int(w["n"]), to_json(w, indent=None)) for w in archive]


def _sqlite_delete(backend, where: str, params: list, ids: set[str], what: str, archive: list[dict] | None = None,
                   window_s: float | None = None) -> int:
    """One transaction on the SQLite log: the rows matching ``where`` or ``ids`` go, with their labels; then the
    WAL is checkpointed and truncated so no old page keeps the deleted rows (``secure_delete`` zeroes them)."""
    con = backend.connect()
    try:
        con.execute("PRAGMA secure_delete=ON")
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS _gone (request_id TEXT PRIMARY KEY)")
            con.execute("DELETE FROM _gone")
            con.execute(f"INSERT OR IGNORE INTO _gone SELECT request_id FROM predictions WHERE {where}", params)
            ids = sorted(ids)
            for k in range(0, len(ids), SQLITE_CHUNK):
                con.executemany("INSERT OR IGNORE INTO _gone VALUES (?)", [(i,) for i in ids[k:k + SQLITE_CHUNK]])
            if archive:
                con.execute(ARCHIVE_DDL)
                con.executemany("INSERT OR REPLACE INTO monitor_archive VALUES (?, ?, ?, ?, ?)",
                                _archive_rows(archive, window_s))
            labels = con.execute("DELETE FROM labels WHERE request_id IN (SELECT request_id FROM _gone)").rowcount
            rows = con.execute("DELETE FROM predictions WHERE request_id IN (SELECT request_id FROM _gone)").rowcount
            failpoint(f"{what}:log-before-commit")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        _checkpoint(con)
        return int(rows) + int(labels)
    finally:
        con.close()


def _checkpoint(con, tries: int = 50) -> None:
    """Copy the WAL into the database and truncate it (retried while a reader holds an old snapshot)."""
    for _ in range(tries):
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.1)


def _sa_delete(backend, subject: Subject, ids: set[str]) -> int:
    sa = backend.sa
    p, lab = backend.predictions, backend.labels
    with backend.engine.begin() as con:
        cond = p.c.unit_id.in_(subject.values)
        if subject.fold is not None:
            cond = sa.or_(cond, sa.func.lower(p.c.unit_id) == subject.fold)
        found = {r[0] for r in con.execute(sa.select(p.c.request_id).where(cond))}
        gone = sorted(found | set(ids))
        n = 0
        for k in range(0, len(gone), SQLITE_CHUNK):
            chunk = gone[k:k + SQLITE_CHUNK]
            n += con.execute(lab.delete().where(lab.c.request_id.in_(chunk))).rowcount
            n += con.execute(p.delete().where(p.c.request_id.in_(chunk))).rowcount
        failpoint("forget:log-before-commit")
    return int(n)


def _sa_prune(backend, before: str, archive: list[dict], window_s: float | None) -> int:
    sa = backend.sa
    p, lab = backend.predictions, backend.labels
    with backend.engine.begin() as con:
        if archive:
            con.execute(sa.text(ARCHIVE_DDL))
            for row in _archive_rows(archive, window_s):
                con.execute(sa.text("DELETE FROM monitor_archive WHERE window_start = :s AND window_seconds = :w"),
                            {"s": row[0], "w": row[1]})
                con.execute(sa.text("INSERT INTO monitor_archive VALUES (:s, :w, :a, :n, :d)"),
                            dict(zip(("s", "w", "a", "n", "d"), row, strict=True)))
        old = sa.select(p.c.request_id).where(p.c.ts < before)
        n = con.execute(lab.delete().where(lab.c.request_id.in_(old))).rowcount
        n += con.execute(p.delete().where(p.c.ts < before)).rowcount
        failpoint("retention:log-before-commit")
    return int(n)


# --------------------------------------------------------------------------- files (CSV / Parquet)
@dataclass
class RowFileStore:
    """A CSV or Parquet file of log rows (a review queue, a filled-in review file, a labels file).

    A row belongs to the subject when its ``unit_id`` (or ``data.id`` column) matches, or its
    ``request_id`` is one of the subject's. The file is rewritten whole into a temporary file and
    renamed over the old one, so it is never half written.
    """

    path: Path
    kind: str = "review file"
    unit_columns: tuple = ("unit_id",)

    @property
    def name(self) -> str:
        return self.kind

    @property
    def location(self) -> str:
        return str(self.path)

    def _read(self):
        import pandas as pd

        if self.path.suffix.lower() == ".csv":
            return pd.read_csv(self.path, dtype=str, keep_default_na=False, encoding="utf-8")
        return pd.read_parquet(self.path)

    def _keep(self, df, subject: Subject | None, ids: set[str], before: str | None):
        import numpy as np

        gone = np.zeros(len(df), dtype=bool)
        if subject is not None:
            for c in self.unit_columns:
                if c in df.columns:
                    gone |= df[c].map(subject.matches).to_numpy(dtype=bool)
        if ids and "request_id" in df.columns:
            gone |= df["request_id"].astype(str).isin(ids).to_numpy()
        if before is not None and "ts" in df.columns:
            ts = df["ts"].astype(str)
            gone |= ((ts < before) & (ts.str.len() > 0)).to_numpy()
        return ~gone

    def find(self, subject: Subject) -> set[str]:
        if not self.path.is_file():
            return set()
        df = self._read()
        if "request_id" not in df.columns:
            return set()
        mask = ~self._keep(df, subject, set(), None)
        return {str(v) for v in df.loc[mask, "request_id"]}

    def erase(self, subject: Subject, ids: set[str], dry_run: bool = False) -> int:
        return self._rewrite(subject, ids, None, dry_run)

    def other_keys(self, key_id: str) -> dict[str, int]:
        """Rows per ``log_key_id`` other than ``key_id`` whose unit is hashed (a file of log rows that carries the
        column; see :meth:`PredictionLogStore.other_keys`)."""
        if not self.path.is_file():
            return {}
        df = self._read()
        if "log_key_id" not in df.columns or "unit_id" not in df.columns:
            return {}
        k = df["log_key_id"].where(df["log_key_id"].notna(), "").astype(str)
        other = (k != "") & (k != key_id) & df["unit_id"].astype(str).str.startswith("hmac:")
        return {str(a): int(b) for a, b in k[other].value_counts().items()}

    def prune(self, before: str, dry_run: bool = False, **_) -> int:
        return self._rewrite(None, set(), before, dry_run)

    def _rewrite(self, subject, ids, before, dry_run: bool = False) -> int:
        if not self.path.is_file():
            return 0
        df = self._read()
        keep = self._keep(df, subject, ids, before)
        n = int((~keep).sum())
        if n and not dry_run:
            write_atomic(df[keep], self.path)
        return n


def write_atomic(frame, path: Path) -> None:
    """Write a CSV/Parquet file through a temporary file renamed into place (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8")
        else:
            frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        failpoint("file:before-rename")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class ParquetLogStore:
    """A folder of Parquet files of log rows (``request_id``, ``unit_id``, ``ts`` ...), such as a compacted,
    date-partitioned prediction log: each file is rewritten (or removed) on its own, atomically."""

    folder: Path
    name: str = "compacted log"

    @property
    def location(self) -> str:
        return str(self.folder)

    def _files(self) -> list[RowFileStore]:
        if not self.folder.is_dir():
            return []
        return [RowFileStore(p, self.name) for p in sorted(self.folder.rglob("*.parquet")) if not p.name.startswith(".")]

    def find(self, subject: Subject) -> set[str]:
        return set().union(*(f.find(subject) for f in self._files()))

    def erase(self, subject: Subject, ids: set[str], dry_run: bool = False) -> int:
        return sum(f.erase(subject, ids, dry_run) for f in self._files())

    def other_keys(self, key_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self._files():
            for k, n in f.other_keys(key_id).items():
                out[k] = out.get(k, 0) + n
        return out

    def prune(self, before: str, dry_run: bool = False, **_) -> int:
        n = 0
        for f in self._files():
            df = f._read()
            keep = f._keep(df, None, set(), before)
            if dry_run:
                n += int((~keep).sum())
            elif not keep.any():
                n += len(df)
                f.path.unlink()
            elif not keep.all():
                n += int((~keep).sum())
                write_atomic(df[keep], f.path)
        return n


# --------------------------------------------------------------------------- the registry of a case's stores
#: ``factory(case, log_target) -> list of stores``; each is asked for its stores (the compacted log adds one)
STORE_FACTORIES: list[Callable] = []


def register_store(factory: Callable) -> Callable:
    """Add ``factory(case, log_target) -> list of stores`` to every erasure and retention run."""
    if factory not in STORE_FACTORIES:
        STORE_FACTORIES.append(factory)
    return factory


def register_file(case, path, kind: str) -> None:
    """Remember a file that holds log rows (a review queue, a review or labels file) for erasure and retention."""
    gdir = governance_dir(case)
    gdir.mkdir(parents=True, exist_ok=True)
    entries = registered_files(case)
    p = str(Path(path).resolve())
    if any(e["path"] == p for e in entries):
        return
    entries.append({"path": p, "kind": kind})
    tmp = gdir / f".{FILES_MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    os.replace(tmp, gdir / FILES_MANIFEST)


def registered_files(case) -> list[dict]:
    path = governance_dir(case) / FILES_MANIFEST
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict) and "path" in e] if isinstance(data, list) else []


def stores_for(case, log: str | None = None, files: list | None = None) -> list:
    """The case's stores, the prediction log last (see the module's docstring).

    ``files``: more CSV/Parquet files of rows to include (records files the user keeps).
    """
    from ..serve.predlog import resolve_target

    target = resolve_target(case, log)
    out: list = []
    seen: set[str] = set()
    for e in registered_files(case):
        if e["path"] not in seen:
            seen.add(e["path"])
            out.append(RowFileStore(Path(e["path"]), e.get("kind", "review file"), ("unit_id",)))
    for f in files or []:
        p = Path(f).resolve()
        if str(p) not in seen:
            seen.add(str(p))
            out.append(RowFileStore(p, "records file", ("unit_id", case.spec.data.id)))
    for factory in STORE_FACTORIES:
        out.extend(factory(case, target))
    out.append(PredictionLogStore(target))
    return out


def _compacted_log(case, target: str) -> list:
    """The compacted Parquet part of the SQLite log at ``target`` (``mlcase log compact``), when it has one."""
    from ..monitor.compact import compacted_stores

    return compacted_stores(case, target)


register_store(_compacted_log)
