"""MLflow tracking and registry: the only module that imports mlflow.

The default store is embedded in the case folder (``sqlite:///<case>/mlflow.db``,
artifacts in ``<case>/mlartifacts``); ``tracking_uri`` in the spec or
``MLFLOW_TRACKING_URI`` points elsewhere. MLflow's usage telemetry is turned off
unless the user set ``MLFLOW_DISABLE_TELEMETRY=false`` themselves.

Models are registered under the case's name with aliases ``candidate``,
``baseline`` and ``champion``. Each is a :class:`~mlcase.bundle.ModelBundle`:
the model saved with skops and ``bundle.json``; the sha256 of both and their
HMAC signature are recorded as version tags and checked on load, before the
model is deserialised with an exact list of trusted types (:mod:`mlcase.bundle`).

MLflow prints a ``View run ... at: <tracking URI>`` line on stdout for every run it
ends against a server; mlcase turns those off (they carry the URI's credentials and
break ``--json``), and every URI it shows goes through
:func:`~mlcase.errors.redact_url`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC
from pathlib import Path
from typing import Any

from .arguments import RELEASE_LIMIT, registry_version, whole_number
from .bundle import BUNDLE_FILE, MODEL_FILE, ModelBundle, read_bundle, save_bundle, skops_types
from .case import Case
from .errors import MlcaseError, ModelError, NotFoundError, redact_text, redact_url
from .governance.failpoints import failpoint
from .scratch import scratch

__all__ = ["BUNDLE_FILE", "MODEL_FILE", "read_bundle", "save_bundle"]  # re-exported from mlcase.bundle


def _quiet_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow prints "View run <name> at: <tracking URI>/#/..." on stdout for every run it ends on a
    # server: the URI's credentials in clear, and a line that breaks `--json`. Always off in mlcase.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(name).addFilter(_REDACT)
    # urllib3 warns at import when a SOCKS proxy variable is set without PySocks; mlcase talks to no proxy
    warnings.filterwarnings("ignore", message="SOCKS support in urllib3 requires")


class _RedactFilter(logging.Filter):
    """Log records with every URL's credentials removed (:func:`~mlcase.errors.redact_text`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args or "://" in str(record.msg):
            record.msg = redact_text(record.getMessage())
            record.args = None
        return True


_REDACT = _RedactFilter()


def mlflow():
    """The mlflow module, configured quietly."""
    _quiet_env()
    import mlflow as _mlflow

    for handler in logging.getLogger("mlflow").handlers:  # records of mlflow.* loggers pass these
        if _REDACT not in handler.filters:
            handler.addFilter(_REDACT)
    return _mlflow


_experiments: dict[tuple[str, str], str] = {}
_clients: dict[str, Any] = {}
_lock = threading.RLock()


def client(case: Case):
    """An ``MlflowClient`` on the case's store (one per store, reused; touches no global MLflow state).

    Safe from any thread, unlike :func:`setup`.
    """
    mlflow()
    from mlflow import MlflowClient

    uri = case.tracking_uri
    with _lock:
        if uri not in _clients:
            check_store(case)
            db = _sqlite_path(uri)
            if db is not None:
                case.root.mkdir(parents=True, exist_ok=True)
            try:
                cl = _open_client(MlflowClient, uri, db, root=case.root if case.uses_embedded_store else None)
            except MlcaseError:
                raise
            except Exception as exc:  # noqa: BLE001 - the one place a store is opened: a bad store is bad input
                first = redact_text((str(exc).strip().splitlines() or [""])[0][:200])
                if db is not None and _is_sqlite(db):  # a database MLflow could not open: never "move it away"
                    raise ModelError(f"{_uri_origin(case)} {redact_url(uri)}: MLflow could not open this SQLite "
                                     f"store ({type(exc).__name__}: {first})",
                                     "if another mlcase process is using or upgrading it, wait for it and retry; "
                                     "keep the file: it holds every run and model of the case") from None
                raise ModelError(f"{_uri_origin(case)} {redact_url(uri)}: the MLflow store cannot be opened "
                                 f"({type(exc).__name__}: {first})",
                                 "point it at a valid MLflow store; an embedded mlflow.db that is not a database "
                                 "can be moved away to start a fresh one") from None
            if uri.split(":", 1)[0].lower() in ("http", "https"):
                _check_credentials(case, cl)
            _clients[uri] = cl
        return _clients[uri]


def _check_credentials(case: Case, cl) -> None:
    """One request to an MLflow server: a refused login is a one-line error, not a stack of retries later."""
    from mlflow.exceptions import MlflowException

    from .errors import SpecError

    try:
        cl.search_experiments(max_results=1)
    except MlflowException as exc:
        status = exc.get_http_status_code() if hasattr(exc, "get_http_status_code") else None
        text = str(exc)
        if status in (401, 403) or " 401 " in text or " 403 " in text or "UNAUTHENTICATED" in text:
            where = _uri_origin(case)
            raise SpecError(f"{where} {redact_url(case.tracking_uri)}: the MLflow server refused the credentials",
                            "check the user name and password in the URI, or set MLFLOW_TRACKING_USERNAME and "
                            "MLFLOW_TRACKING_PASSWORD instead of writing them into it") from None
        # anything else shows up, with its own message, on the first real request


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _open_client(MlflowClient, uri: str, db: Path | None, root: Path | None = None):
    """An ``MlflowClient`` whose stores are initialised. A SQLite store is created (tables, migrations)
    under a lock on ``<db>.lock``, so processes starting at once on a fresh store take turns instead
    of racing through MLflow's table creation (which fails, and can leave the database half-built).
    The embedded store of a case folder that was moved or copied (``root``) follows it: :func:`_follow_move`."""
    if db is None:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    from .lock import CaseBusy, file_lock

    db.parent.mkdir(parents=True, exist_ok=True)
    if _is_sqlite(db) and not os.access(db.parent, os.W_OK):
        return _open_read_only(MlflowClient, uri, db, root)

    def busy(holder):
        return CaseBusy(f"the MLflow store {db} is being created by another mlcase process ({holder.describe()})",
                        "wait for it to finish, then retry; keep the file", path=str(db))

    with file_lock(db.with_name(db.name + ".lock"), "store setup", timeout=120.0, busy=busy):
        fresh = not db.exists()
        if fresh:
            _copy_template(db)
        cl = MlflowClient(tracking_uri=uri, registry_uri=uri)
        cl.search_experiments(max_results=1)  # creates or upgrades the tracking tables, now
        cl.search_registered_models(max_results=1)  # ... and the registry's
        if fresh:
            _keep_template(db)
        if root is not None:
            root = Path(root).resolve()
            moved = _follow_move(db, root)
            if moved:
                sys.stderr.write(f"note: this case was moved or copied from {moved}: its MLflow store now reads and "
                                 f"writes artifacts under {root / 'mlartifacts'}\n")
    return cl


# A new embedded store starts as a copy of the first one this process migrated (tables only, no experiment).
# MLflow builds a SQLite store by running its ~60 Alembic migrations, each committed (and synced) on its own:
# 1.2-1.5 s of CPU and 2-8 s of wall time per new case folder on this 2-core machine, against 0.01 s for the
# copy. A notebook or a server process that opens several new cases paid that every time (the test suite
# opens a few hundred). MLflow itself then adds its Default experiment to the copy, with its own artifact
# location and time, exactly as on a store it migrated.
_template: dict[str, bytes] = {}


def _template_key() -> str:
    import mlflow as _mlflow

    return f"{_mlflow.__version__}|{os.environ.get('MLFLOW_ENABLE_WORKSPACES', '')}"


def _copy_template(db: Path) -> None:
    """Write this process's migrated empty store to the new ``db`` (nothing where there is none yet)."""
    blob = _template.get(_template_key())
    if blob is None:
        return
    tmp = db.with_name(f".{db.name}.{os.getpid()}.new")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, db)
    except OSError:
        tmp.unlink(missing_ok=True)   # MLflow migrates the store itself, as it would have


def _keep_template(db: Path) -> None:
    """Keep the store MLflow has just migrated, less its Default experiment, for the next new store.

    Kept only where the store holds nothing but what a migration writes (its revision, the default workspace and
    the Default experiment), so nothing of one case can reach another."""
    import sqlite3

    key = _template_key()
    if key in _template:
        return
    try:
        src = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        mem = sqlite3.connect(":memory:")
        try:
            src.backup(mem)
        finally:
            src.close()
        tables = [t for (t,) in mem.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: mem.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        written = {t for t, n in counts.items() if n}
        if written - {"alembic_version", "experiments", "workspaces"} or counts.get("experiments") != 1 \
                or counts.get("alembic_version") != 1 or counts.get("workspaces", 0) > 1:
            return
        mem.execute("DELETE FROM experiments WHERE experiment_id = 0 AND name = 'Default'")
        if mem.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]:
            return
        mem.commit()
        _template[key] = mem.serialize()
        mem.close()
    except sqlite3.Error:
        return


def _open_read_only(MlflowClient, uri: str, db: Path, root: Path | None):
    """The client of a store in a folder no one here may write to (a read-only mount, a copy without write rights).

    Nothing can be created or upgraded there, so no lock is taken (``mlcase score`` on such a case failed on
    creating ``mlflow.db.lock``); MLflow reads the store as it is, and every command that only reads works. A case
    moved there cannot follow its move (:func:`_follow_move` rewrites the store): that is said, with the fix.
    """
    import sqlite3

    from .errors import ModelError

    if root is not None:
        con = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)
        try:
            olds = _moved_from(con, Path(root).resolve())
        finally:
            con.close()
        if olds:
            raise ModelError(f"this case was moved from {', '.join(sorted(olds))} to {root}, a folder mlcase may not "
                             "write to, and its MLflow store still points at the old folder",
                             "run any mlcase command on it once where it is writable (mlcase models CASE), which "
                             "rewrites the store, then make it read-only", path=str(db))
    cl = MlflowClient(tracking_uri=uri, registry_uri=uri)
    cl.search_experiments(max_results=1)
    return cl


def _moved_from(con, root: Path) -> set[str]:
    """The case folders other than ``root`` the store's experiments point at (reads only)."""
    from urllib.parse import unquote, urlsplit

    olds: set[str] = set()
    # the experiments mlcase created hold <case>/mlartifacts; MLflow's Default experiment holds <cwd>/mlruns/0,
    # the folder the first command happened to run in, which says nothing of where the case was
    for (loc,) in con.execute("SELECT artifact_location FROM experiments"):
        path = Path(unquote(urlsplit(loc).path)) if str(loc).startswith("file://") else Path(str(loc))
        if path.name == "mlartifacts" and path.is_absolute() and path.parent != root:
            olds.add(str(path.parent))
    return olds


def _follow_move(db: Path, root: Path) -> str | None:
    """Point the embedded store ``db`` at the case folder ``root`` it now lies in; the folder it came from, or None.

    MLflow stores every artifact location as an absolute path (``file:///old/case/mlartifacts/...``). A case folder
    that was moved (a CI runner's checkout, a container) failed every load with "internal error (MlflowException:
    Failed to download artifacts ...)", and a copy read, and wrote, the original folder's artifacts. Every text
    value that starts with the old folder, as a ``file://`` URI or a path, is rewritten in one transaction.
    """
    import sqlite3

    con = sqlite3.connect(db, timeout=60, isolation_level=None)
    try:
        olds = _moved_from(con, root)
        if not olds:
            return None
        con.execute("BEGIN IMMEDIATE")
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                            "'sqlite_%' AND name != 'alembic_version'")]
        for old in sorted(olds):
            prefixes = [(Path(old).as_uri() + "/", root.as_uri() + "/"), (old + "/", str(root) + "/")]
            for table in tables:
                cols = [c[1] for c in con.execute(f'PRAGMA table_info("{table}")')
                        if any(k in str(c[2]).upper() for k in ("CHAR", "TEXT", "CLOB"))]
                for col in cols:
                    for before, after in prefixes:
                        con.execute(f'UPDATE "{table}" SET "{col}" = ? || substr("{col}", ?) '
                                    f'WHERE substr("{col}", 1, ?) = ?', (after, len(before) + 1, len(before), before))
        con.execute("COMMIT")
        return ", ".join(sorted(olds))
    finally:
        con.close()


# schemes MLflow's tracking and registry stores accept (a bare path is a local file store)
_STORE_SCHEMES = {"sqlite", "file", "http", "https", "postgresql", "postgres", "mysql", "mssql", "databricks",
                  "databricks-uc", "uc"}
_checked: set[str] = set()


def _uri_origin(case: Case) -> str:
    if case.spec.tracking_uri:
        return "tracking_uri"
    if not case.uses_embedded_store:
        return "MLFLOW_TRACKING_URI"
    return "the embedded store"



def check_store(case: Case) -> None:
    """Fail fast, with a :class:`~mlcase.errors.SpecError`, on a malformed or unreachable tracking URI.

    MLflow itself retries an unreachable server for minutes and then raises an
    ``MlflowException``; this checks the scheme and, for an HTTP server, opens one TCP
    connection (3 s timeout) before any stage writes anything.
    """
    import socket
    from urllib.parse import urlsplit

    from .errors import SpecError

    uri = case.tracking_uri
    if uri in _checked:
        return
    where = _uri_origin(case)
    fix = ("fix it" + (" in case.yaml" if where == "tracking_uri" else "") + ", or remove it to use the embedded "
           f"store {case.root / 'mlflow.db'}")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise SpecError(f"{where} {redact_url(uri)!r} is not a valid URI ({exc})", fix) from None
    scheme = parts.scheme.lower()
    if len(scheme) > 1 and "://" in uri:  # a bare path (or a Windows drive) is a local file store
        base = scheme.split("+", 1)[0]
        if base not in _STORE_SCHEMES or " " in uri:
            raise SpecError(f"{where} {redact_url(uri)!r} is not a tracking URI MLflow can use",
                            "use sqlite:///path/to/mlflow.db, http(s)://host:port of an MLflow server or a "
                            f"database URL (postgresql://...); or {fix}")
        if base in ("http", "https"):
            if not parts.hostname:
                raise SpecError(f"{where} {redact_url(uri)!r} names no host", fix)
            try:
                socket.create_connection((parts.hostname, port or (443 if base == "https" else 80)), timeout=3).close()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise SpecError(f"{where} {redact_url(uri)}: cannot reach the MLflow server ({reason})",
                                f"start the server (`mlflow server`), or {fix}") from None
        if base == "sqlite" and uri.startswith("sqlite:///") and where != "the embedded store":
            path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
            if str(path) not in ("", ":memory:") and not path.parent.is_dir():
                raise SpecError(f"{where} {redact_url(uri)}: the folder {path.parent} does not exist", f"create it, or {fix}")
    _checked.add(uri)


def experiment_id(case: Case) -> str:
    """The id of the case's experiment in its store, created on first use (thread-safe, no global state)."""
    from mlflow.exceptions import MlflowException

    cl = client(case)
    key = (case.tracking_uri, case.name)
    with _lock:
        exp_id = _experiments.get(key)
        if exp_id is not None:
            try:
                if cl.get_experiment(exp_id).lifecycle_stage == "active":
                    return exp_id
            except MlflowException:  # the store was replaced since: look it up again
                pass
        exp = cl.get_experiment_by_name(case.name)
        if exp is None:
            kwargs = {"artifact_location": case.artifact_location} if case.uses_embedded_store else {}
            exp_id = cl.create_experiment(case.name, **kwargs)
        else:
            exp_id = exp.experiment_id
        _experiments[key] = exp_id
        return exp_id


def setup(case: Case) -> str:
    """Point MLflow's fluent API (``mlflow.start_run`` ...) at the case's store; return the experiment id.

    This sets process-wide MLflow state: call it from the main thread only.
    """
    mf = mlflow()
    exp_id = experiment_id(case)
    # set_tracking_uri()/set_registry_uri() also write MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into
    # os.environ, which every later subprocess (a `mlcase serve` started from a notebook or a test)
    # would inherit and so serve this case's store instead of its own: restore the user's values.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        mf.set_tracking_uri(case.tracking_uri)
        mf.set_registry_uri(case.tracking_uri)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    mf.set_experiment(experiment_id=exp_id)
    return exp_id


def reset_cache() -> None:
    """Forget cached experiments and clients (after a store was deleted, e.g. in tests)."""
    with _lock:
        _experiments.clear()
        _clients.clear()
        _checked.clear()


# --------------------------------------------------------------------------- runs
def base_tags(case: Case, fingerprint: str | None = None, stage: str | None = None) -> dict[str, str]:
    tags = {"mlcase.case": case.name, "mlcase.version": _version("mlcase"),
            "mlcase.pid": str(os.getpid()), "mlcase.host": socket.gethostname()}  # closed as KILLED if it dies
    if stage:
        tags["mlcase.stage"] = stage
    if fingerprint:
        tags["mlcase.data_fingerprint"] = fingerprint
    from .packages import version

    for pkg in ("scikit-learn", "lightgbm", "xgboost", "catboost", "optuna", "pandas"):
        if (v := version(pkg)) is not None:  # xgboost: also from the xgboost-cpu wheel
            tags[f"mlcase.pkg.{pkg}"] = v
    commit = git_commit(case.root)
    if commit:
        tags["mlcase.git_commit"] = commit
    return tags


def _version(pkg: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@contextlib.contextmanager
def run(case: Case, name: str, tags: dict | None = None, nested: bool = False):
    """Start an MLflow run in the case's experiment; yields the active run.

    The outermost run gives the caller's MLflow fluent state back when it ends (:func:`caller_state`): a
    notebook's own ``mlflow.start_run()`` after ``mlcase.run(case)`` goes where it went before, not into the case.
    """
    mf = mlflow()
    outer = not nested and mf.active_run() is None
    with caller_state() if outer else contextlib.nullcontext():
        setup(case)
        with mf.start_run(run_name=name, tags=tags or {}, nested=nested) as active:
            yield active


_FLUENT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")


@contextlib.contextmanager
def caller_state():
    """MLflow's process-wide fluent state as the caller had it, back after the block: :func:`setup` points the
    tracking and registry URIs and the active experiment at the case's store (and MLflow writes them into
    ``os.environ`` for subprocesses), and they stayed there after ``mlcase.run``, so a notebook's next
    ``mlflow.start_run()`` logged into the last case's ``mlflow.db``.

    MLflow keeps that state in module globals (no public getter tells "unset" from the default URI); where a
    release renames them, nothing is restored rather than something wrong.
    """
    mf = mlflow()
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    missing = object()
    saved = {"tracking": getattr(tracking_utils, "_tracking_uri", missing),
             "registry": getattr(registry_utils, "_registry_uri", missing),
             "experiment": getattr(fluent, "_active_experiment_id", missing)}
    env = {k: os.environ.get(k) for k in _FLUENT_ENV}
    try:
        yield
    finally:
        if missing not in saved.values():
            mf.set_tracking_uri(saved["tracking"])
            mf.set_registry_uri(saved["registry"])
            fluent._active_experiment_id = saved["experiment"]
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def log_params(params: dict[str, Any]) -> None:
    mf = mlflow()
    clean = {str(k)[:250]: str(v)[:6000] for k, v in params.items()}
    if clean:
        mf.log_params(clean)


def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
    mf = mlflow()
    clean = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f == f and abs(f) != float("inf"):
            clean[_metric_key(k)] = f
    if clean:
        mf.log_metrics(clean, step=step)


def _metric_key(k: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(k))[:250]


def log_dict(data: dict, artifact_file: str) -> None:
    mlflow().log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow().log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow().log_artifact(str(path), artifact_path)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow().set_tags({k: str(v) for k, v in tags.items()})


def active_run_id() -> str | None:
    r = mlflow().active_run()
    return r.info.run_id if r else None


def _entities(params: dict | None, metrics: dict | None, tags: dict | None, steps: dict | None = None,
               timestamp: int | None = None):
    from mlflow.entities import Metric, Param, RunTag

    ts = timestamp or int(time.time() * 1000)
    ps = [Param(str(k)[:250], str(v)[:6000]) for k, v in (params or {}).items()]
    ms = [Metric(_metric_key(k), f, ts, 0) for k, f in _finite(metrics or {}).items()]
    for k, values in (steps or {}).items():
        ms.extend(Metric(_metric_key(k), f, ts, i) for i, f in enumerate(values) if _is_finite(f))
    ts_ = [RunTag(str(k)[:250], str(v)[:5000]) for k, v in (tags or {}).items()]
    return ps, ms, ts_


def _is_finite(v) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and abs(f) != float("inf")


def _finite(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if _is_finite(v)}


def start_run_id(case: Case, name: str, tags: dict | None = None, parent_run_id: str | None = None) -> str:
    """Create a run without making it the active run (safe from any thread); return its id."""
    cl = client(case)
    exp_id = experiment_id(case)
    all_tags = {"mlflow.runName": name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    return cl.create_run(exp_id, tags=all_tags, run_name=name).info.run_id


def log_run_data(case: Case, run_id: str, params: dict | None = None, metrics: dict | None = None,
                 tags: dict | None = None, steps: dict | None = None) -> None:
    """Params, metrics (``steps``: name -> values logged at steps 0, 1, ...) and tags of a run, in one batch."""
    ps, ms, ts = _entities(params, metrics, tags, steps)
    if ps or ms or ts:
        client(case).log_batch(run_id, metrics=ms, params=ps, tags=ts)


def log_run_text(case: Case, run_id: str, text: str, artifact_file: str) -> None:
    client(case).log_text(run_id, text, artifact_file)


def end_run_id(case: Case, run_id: str, status: str = "FINISHED") -> None:
    client(case).set_terminated(run_id, status=status)


def close_abandoned_runs(case: Case, since_ms: int, pid: int | None = None) -> list[str]:
    """Close as ``KILLED`` the runs of the case's experiment left ``RUNNING`` by a process that died.

    Only runs started since ``since_ms`` (when the dead process took the case's lock) are closed, and,
    when they carry an ``mlcase.pid`` tag, only those of ``pid``. Returns the ids closed.
    """
    cl = client(case)
    exp = cl.get_experiment_by_name(case.name)
    if exp is None:
        return []
    runs = cl.search_runs([exp.experiment_id], max_results=5000,
                          filter_string=f"attributes.status = 'RUNNING' AND attributes.start_time >= {int(since_ms) - 1000}")
    closed = []
    for r in runs:
        owner = r.data.tags.get("mlcase.pid")
        if pid is not None and owner is not None and owner != str(pid):
            continue
        cl.set_terminated(r.info.run_id, status="KILLED")
        closed.append(r.info.run_id)
    return closed


def log_child_run(case: Case, parent_run_id: str, name: str, params: dict | None = None,
                  metrics: dict | None = None, tags: dict | None = None, start_time: float | None = None,
                  end_time: float | None = None, status: str = "FINISHED", steps: dict | None = None) -> str:
    """A finished child run of ``parent_run_id`` in one go (times in seconds since the epoch)."""
    cl = client(case)
    exp_id = experiment_id(case)
    start_ms = int((start_time or time.time()) * 1000)
    run = cl.create_run(exp_id, start_time=start_ms, run_name=name,
                        tags={"mlflow.parentRunId": parent_run_id, "mlflow.runName": name})
    ps, ms, ts = _entities(params, metrics, tags, steps, timestamp=start_ms)
    cl.log_batch(run.info.run_id, metrics=ms, params=ps, tags=ts)
    cl.set_terminated(run.info.run_id, status=status, end_time=int((end_time or time.time()) * 1000))
    return run.info.run_id


# --------------------------------------------------------------------------- bundles
# what a logged MLflow model needs to load (given explicitly: MLflow's own inference spawns
# subprocesses and takes seconds per model)
MODEL_REQUIREMENTS = ("mlcase", "scikit-learn", "skops", "numpy", "pandas", "scipy", "lightgbm", "xgboost",
                      "catboost", "duckdb", "sqlglot")


def pip_requirements() -> list[str]:
    from .packages import requirement

    return [r for r in map(requirement, MODEL_REQUIREMENTS) if r]  # xgboost: whichever wheel is installed


def _artifact_name(bundle: ModelBundle) -> str:
    import re
    import uuid

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{bundle.role}-{bundle.name}").strip("-")
    return f"bundles/{slug}-{uuid.uuid4().hex[:8]}"


def log_bundle(case: Case, bundle: ModelBundle, aliases: list[str] = (), tags: dict | None = None,
               input_example=None) -> int:
    """Log the bundle to the active run, register it under the case's name, set ``aliases``.

    The bundle (``model.skops`` + ``bundle.json``) goes to its own artifact folder of the
    run, so several bundles can be logged in one run; an MLflow model with a signature
    and ``input_example`` is logged beside it for ``mlflow ui`` / ``mlflow models serve``.
    The registered version points at that MLflow model and carries the bundle's location
    and sha256 hashes as tags. Returns the new registry version.
    """
    mf = mlflow()
    cl = client(case)
    run_id = active_run_id()
    if run_id is None:
        raise ModelError("log_bundle needs an active MLflow run", "call it inside `with tracking.run(case, ...)`")
    artifact_path = _artifact_name(bundle)
    model_error = None
    with scratch(case, "log-bundle-") as tmp:
        folder = tmp / "bundle"
        hashes = save_bundle(bundle, folder)
        trusted = skops_types(folder)
        mf.log_artifacts(str(folder), artifact_path)
    model_info = None
    try:
        signature = None
        if input_example is not None:
            from mlflow.models import infer_signature

            input_example = _float_integers(input_example)
            signature = infer_signature(input_example, bundle.scores(input_example))
        model_info = mf.sklearn.log_model(
            bundle.model, name=f"model-{bundle.role}", serialization_format="skops", skops_trusted_types=trusted,
            signature=signature, input_example=input_example, pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba" if bundle.task not in ("regression", "forecast", "ranking") else "predict")
    except Exception as exc:  # the bundle above is what mlcase serves; the MLflow model is a convenience
        model_error = redact_text(f"{type(exc).__name__}: {str(exc)[:300]}")
        logging.getLogger(__name__).warning("the MLflow model flavour of %s was not logged (%s); "
                                            "the mlcase bundle was", bundle.name, model_error)
    bundle_uri = f"runs:/{run_id}/{artifact_path}"
    _ensure_registered_model(cl, case)
    version_tags = {"mlcase.role": bundle.role, "mlcase.family": bundle.name, "mlcase.bundle_uri": bundle_uri,
                    "mlcase.run_id": run_id, **hashes, **{k: str(v) for k, v in (tags or {}).items()}}
    if model_error:
        version_tags["mlcase.mlflow_model_error"] = model_error
    if model_info is not None:
        # a logged model's source is `models:/m-...`: a tracking server accepts it only with the
        # logged model's id (without it: "INVALID_PARAMETER_VALUE: Invalid model version source",
        # mlflow/mlflow#17812; the embedded SQLite store does not check)
        mv = cl.create_model_version(case.name, source=model_info.model_uri, run_id=run_id, tags=version_tags,
                                     model_id=model_info.model_id)
    else:
        mv = cl.create_model_version(case.name, source=bundle_uri, run_id=run_id, tags=version_tags)
    version = int(mv.version)
    for alias in aliases:
        cl.set_registered_model_alias(case.name, alias, version)
    return version


def _float_integers(example):
    """Integer columns as floats: a served request may carry a missing value, which an integer schema refuses."""
    import pandas as pd

    if not isinstance(example, pd.DataFrame):
        return example
    ints = [c for c in example.columns if pd.api.types.is_integer_dtype(example[c])]
    return example.astype({c: "float64" for c in ints}) if ints else example


def _ensure_registered_model(cl, case: Case) -> None:
    from mlflow.exceptions import MlflowException

    try:
        cl.get_registered_model(case.name)
    except MlflowException:
        cl.create_registered_model(case.name, tags={"mlcase.case": case.name})


def set_alias(case: Case, alias: str, version: int, reason: str | None = None, record: dict | None = None) -> None:
    """Point ``alias`` at ``version``.

    A move of ``champion`` is recorded in the release history (:func:`record_release`) as a
    ``decision`` (what ``mlcase run`` does) unless ``record`` gives the event (``action``,
    ``why``, ``evidence``...); a move of another alias is recorded when ``record`` is given.
    """
    version = registry_version(version)
    cl = client(case)
    before = alias_version(case, alias)
    cl.set_registered_model_alias(case.name, alias, version)
    if reason:
        cl.set_model_version_tag(case.name, str(version), f"mlcase.alias.{alias}", reason[:4000])
    if record is not None or (alias == "champion" and before != int(version)):
        event = {"action": "decision", "why": reason or "set by mlcase run", **(record or {})}
        record_release(case, {**event, "alias": alias, "from_version": before, "to_version": int(version)})


def delete_alias(case: Case, alias: str, record: dict | None = None) -> None:
    """Remove ``alias`` (no error when it is not set); ``record``: the release event to record."""
    cl = client(case)
    before = alias_version(case, alias) if record is not None else None
    with contextlib.suppress(Exception):
        cl.delete_registered_model_alias(case.name, alias)
    if record is not None and before is not None:
        record_release(case, {**record, "alias": alias, "from_version": before, "to_version": None})


def alias_version(case: Case, alias: str) -> int | None:
    """The version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    cl = client(case)
    try:
        return int(cl.get_model_version_by_alias(case.name, alias).version)
    except MlflowException:  # no such alias, or no registered model yet
        return None


def versions(case: Case) -> list[dict]:
    """All registered versions, oldest first: ``version``, ``run_id``, ``tags``, ``aliases``, ``created`` (UTC ISO)."""
    from datetime import datetime

    from mlflow.exceptions import MlflowException

    cl = client(case)
    try:
        mvs = cl.search_model_versions(f"name='{case.name}'")
    except MlflowException:  # no registered model of that name yet
        return []
    if not mvs:
        return []
    # search results carry no aliases in every store: take them from the registered model
    by_version: dict[int, list[str]] = {}
    for alias, v in (cl.get_registered_model(case.name).aliases or {}).items():
        by_version.setdefault(int(v), []).append(alias)
    out = []
    for m in mvs:
        created = (datetime.fromtimestamp(m.creation_timestamp / 1000, tz=UTC).isoformat(timespec="seconds")
                   if m.creation_timestamp else None)
        aliases = sorted(set(m.aliases or []) | set(by_version.get(int(m.version), [])))
        out.append({"version": int(m.version), "run_id": m.run_id, "tags": dict(m.tags), "aliases": aliases,
                    "created": created, "source": m.source})
    return sorted(out, key=lambda d: d["version"])


def set_version_tags(case: Case, version: int, tags: dict[str, Any]) -> None:
    version = registry_version(version)
    cl = client(case)
    for k, v in tags.items():
        cl.set_model_version_tag(case.name, str(version), k, str(v)[:4000])


# --------------------------------------------------------------------------- the registry's answers, remembered
REGISTRY_CACHE = "cache/registry.json"   # under .mlcase/, apart from the stage results
RACY_NS = 2_000_000_000      # a store written less than this before it was looked at is not remembered (see below)
_STAMP_FILES = ("", "-wal", "-journal")


def _store_stamp(case: Case) -> list | None:
    """The embedded SQLite store as the file system sees it now (size, mtime, inode of the database and of
    its write-ahead log and journal), or ``None`` when the case uses another store."""
    if not case.uses_embedded_store:
        return None
    db = case.root / "mlflow.db"
    stamp = []
    for suffix in _STAMP_FILES:
        try:
            st = os.stat(f"{db}{suffix}")
        except OSError:
            stamp.append(None)
            continue
        stamp.append([st.st_size, st.st_mtime_ns, st.st_ino])
    return stamp if stamp[0] is not None else None


def _cache_key(alias: str | None, version: int | None) -> str:
    return f"version:{registry_version(version)}" if version is not None else f"alias:{alias}"


def _remembered(case: Case, key: str, stamp: list | None) -> ModelBundle | None:
    """The bundle the registry gave for ``key`` when the store was exactly as ``stamp`` says (now), or ``None``.

    Resolving an alias through MLflow costs about a second per process (importing MLflow, then
    opening its tracking and registry stores: SQLAlchemy and the schema check), which was half of
    ``mlcase score``'s start-up. What the registry answered is kept in ``.mlcase/cache/registry.json``
    with the store's stamp; any write to the store (a run, an alias moved in the MLflow UI, a tag)
    changes the stamp, and the next load asks MLflow again. A store written within ``RACY_NS`` of
    when it was stamped is not remembered, so a file system with coarse timestamps cannot hide a
    write that left size and mtime as they were (git's "racy" index entries, the same rule). The
    bundle is verified as always: its files against the recorded hashes and the HMAC signature under
    this machine's key, so the cache can make a load faster but never make a bundle trusted.
    """
    import json

    if stamp is None:
        return None
    try:
        saved = json.loads((case.work_dir / REGISTRY_CACHE).read_text(encoding="utf-8"))
        entry = saved["entries"][key] if saved.get("stamp") == stamp else None
        if entry is None:
            return None
        folder = case.root / entry["folder"]
        bundle = read_bundle(folder, expected=dict(entry["tags"]), what=f"registered version {entry['version']}")
    except (OSError, ValueError, KeyError, TypeError, MlcaseError):
        return None  # not remembered, or no longer true: MLflow answers, and says what is wrong
    bundle.version, bundle.run_id = int(entry["version"]), str(entry["run_id"])
    return bundle


def _remember(case: Case, key: str, stamp: list | None, stamped_ns: int, mv, run_artifact_uri: str,
              path: str) -> None:
    """Keep what the registry answered for ``key`` (see :func:`_remembered`); best effort: the caller ignores
    its errors (a read-only case folder only loses the saving). ``stamp`` was taken at ``stamped_ns`` (``time.time_ns()``), before the registry was asked."""
    import json
    from urllib.parse import unquote, urlsplit

    if stamp is None or stamp != _store_stamp(case) or stamped_ns - max(
            s[1] for s in stamp if s is not None) < RACY_NS:
        return
    parts = urlsplit(run_artifact_uri)
    if parts.scheme not in ("file", ""):
        return
    try:
        folder = (Path(unquote(parts.path)) / path).resolve().relative_to(case.root.resolve())
    except (ValueError, OSError):
        return  # artifacts outside the case folder: always asked for
    from .results import write_atomic

    target = case.work_dir / REGISTRY_CACHE
    try:
        saved = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    entries = saved.get("entries", {}) if isinstance(saved, dict) and saved.get("stamp") == stamp else {}
    entries[key] = {"version": int(mv.version), "run_id": mv.run_id, "folder": folder.as_posix(),
                    "tags": {k: mv.tags.get(k) for k in ("model_sha256", "bundle_sha256", "hmac_sha256",
                                                          "signing_key_id") if mv.tags.get(k) is not None}}
    write_atomic(target, json.dumps({"stamp": stamp, "entries": entries}))


def _unreadable(cl, mv, run_id: str, path: str, tmp) -> ModelError:
    """Why a registered version's files could not be copied out, in one line. MLflow says only "Failed to download
    artifacts from path ..., please ensure that the path is correct" (the cause goes to its debug log), and a case
    folder committed or copied without its ``mlartifacts`` (the store kept, the files not) ended in "internal
    error". For files on this machine the two causes are told apart: the files are not there, or the copy could
    not be written (a full disk)."""
    from urllib.parse import unquote, urlsplit

    what = f"registered version {mv.version}"
    try:
        where = cl.get_run(run_id).info.artifact_uri
    except Exception:  # noqa: BLE001 - the store answered the version; its run is only for the message
        where = None
    if where and where.startswith("file://"):
        src = Path(unquote(urlsplit(where).path)) / path
        if not src.exists():
            return ModelError(f"{what}: its files are missing ({src} does not exist): the case folder's "
                              "mlartifacts is incomplete, deleted or not copied with mlflow.db",
                              "restore mlartifacts beside mlflow.db (copy the whole case folder), or run `mlcase run` "
                              "to train and register the models again")
        return ModelError(f"{what}: its files in {src} could not be copied to the scratch folder {tmp}",
                          "free space there (the case folder's disk, or TMPDIR's where the case folder is read-only)")
    return ModelError(f"{what}: its files could not be downloaded from {redact_url(str(where or 'its run'))}",
                      "check that the artifact store is reachable and holds the run's files")


def load_bundle(case: Case, alias: str | None = "champion", version: int | None = None) -> ModelBundle:
    """Load a registered bundle by alias (default ``champion``) or version number.

    The hashes recorded at registration are checked (see :func:`read_bundle`). Thread-safe.
    While the embedded store is unchanged, the registry's answer is remembered (see :func:`_remembered`).
    A ``version`` that is not a registry version number (``'abc'``, ``1.5``, ``True``, ``0``) is a
    :class:`~mlcase.errors.SpecError` naming it (it was a bare "invalid literal for int()" from
    ``score_file``, ``ServeSettings`` and every other caller).
    """
    if version is not None:
        version = registry_version(version)
    elif not isinstance(alias, str) or not alias:
        from .errors import SpecError

        raise SpecError(f"alias={alias!r} with no version names no registered model",
                        "give an alias such as 'champion', or a version number such as 3")
    key = _cache_key(alias, version)
    stamped_ns, stamp = time.time_ns(), _store_stamp(case)
    hit = _remembered(case, key, stamp)
    if hit is not None:
        return hit
    from mlflow.exceptions import MlflowException

    cl = client(case)
    try:
        if version is not None:
            mv = cl.get_model_version(case.name, str(version))
        else:
            mv = cl.get_model_version_by_alias(case.name, alias)
    except MlflowException:
        what = f"version {version}" if version is not None else f"alias '{alias}'"
        fix = "run `mlcase run` first (or pick an existing version with --version)"
        try:
            aliases = dict(sorted(cl.get_registered_model(case.name).aliases.items()))
        except MlflowException:
            aliases = {}
        if aliases:  # the case was run; this alias or version is not among what it registered
            # no flag named here: `serve` takes --version and --canary, `explain` --alias (serve's refusal of
            # --canary 3:50% said "pass --alias", which serve does not have)
            fix = (f"the case's aliases are {', '.join(f'{a} (version {v})' for a, v in aliases.items())}"
                   + ("; no champion is set until a decision is GO" if alias == "champion" else "")
                   + ": pick one of them or another registered version (`mlcase models` lists them)")
        raise NotFoundError(f"no registered model {what} for case '{case.name}' in {redact_url(case.tracking_uri)}",
                            fix) from None
    bundle_uri = mv.tags.get("mlcase.bundle_uri", f"runs:/{mv.run_id}/bundle")
    run_id, _, path = bundle_uri.removeprefix("runs:/").partition("/")
    with scratch(case, "load-bundle-") as tmp:
        try:
            local = cl.download_artifacts(run_id, path, dst_path=str(tmp))
        except MlflowException:
            raise _unreadable(cl, mv, run_id, path, tmp) from None
        failpoint("load-bundle:downloaded")
        bundle = read_bundle(Path(local), expected=dict(mv.tags), what=f"registered version {mv.version}")
    bundle.version = int(mv.version)
    bundle.run_id = mv.run_id
    if stamp is not None:
        with contextlib.suppress(Exception):  # noqa: BLE001 - remembering is an optimisation only
            _remember(case, key, stamp, stamped_ns, mv, cl.get_run(run_id).info.artifact_uri, path)
    return bundle


#: what the server and `mlcase explain` say when no decision set a champion
CEILING_FIX = ("keep the model-free process the decision names; a run that gets past the ceiling (new data, other "
               "costs) registers models")
NO_CHAMPION_NOTE = "no 'champion' alias is registered (the decision was not GO): serving the 'baseline'"


def load_served(case: Case) -> tuple[ModelBundle, str | None]:
    """The bundle `mlcase serve` serves by default: the ``champion``, else the ``baseline`` (with
    :data:`NO_CHAMPION_NOTE`); a one-line :class:`NotFoundError` when the case registered neither."""
    try:
        return load_bundle(case, alias="champion"), None
    except NotFoundError:
        pass
    try:
        return load_bundle(case, alias="baseline"), NO_CHAMPION_NOTE
    except NotFoundError:
        pass
    from .results import ceiling_stop

    why = ceiling_stop(case)
    if why:
        raise NotFoundError(f"case '{case.name}' registered no model: its last run stopped at the value ceiling "
                            f"({why})", CEILING_FIX)
    raise NotFoundError(f"case '{case.name}' has no registered 'champion' or 'baseline' model in "
                        f"{redact_url(case.tracking_uri)}", "run `mlcase run` first, or pass --version N")


def bundle_file_hashes(case: Case, version: int) -> dict:
    """sha256 of a registered version's files as they are in the store now, beside what was recorded at
    registration (``recorded``): what ``mlcase replay`` shows when a version no longer verifies."""
    from .bundle import sha256_file

    version = registry_version(version)
    cl = client(case)
    mv = cl.get_model_version(case.name, str(version))
    bundle_uri = mv.tags.get("mlcase.bundle_uri", f"runs:/{mv.run_id}/bundle")
    run_id, _, path = bundle_uri.removeprefix("runs:/").partition("/")
    with scratch(case, "verify-bundle-") as tmp:
        local = Path(cl.download_artifacts(run_id, path, dst_path=str(tmp)))
        now = {key: sha256_file(local / name) if (local / name).is_file() else None
               for key, name in (("model_sha256", MODEL_FILE), ("bundle_sha256", BUNDLE_FILE))}
    return {**now, "recorded": {k: mv.tags.get(k) for k in ("model_sha256", "bundle_sha256")}}


def run_data(case: Case, run_id: str) -> dict:
    cl = client(case)
    r = cl.get_run(run_id)
    return {"params": dict(r.data.params), "metrics": dict(r.data.metrics), "tags": dict(r.data.tags)}


def search_runs(case: Case, filter_string: str = "", max_results: int = 5000):
    """Runs of the case's experiment as a DataFrame (MLflow's ``search_runs``)."""
    mf = mlflow()
    with caller_state():
        exp_id = setup(case)
        return mf.search_runs(experiment_ids=[exp_id], filter_string=filter_string, max_results=max_results)


def download_run_artifact(case: Case, run_id: str, path: str, dst: Path) -> Path:
    """Download one artifact (file or folder) of a run into ``dst``; return its local path."""
    return Path(client(case).download_artifacts(run_id, path, dst_path=str(dst)))


# --------------------------------------------------------------------------- release history
RELEASE_TAG = "mlcase.release"
_RELEASE_FIELDS = ("action", "alias", "from_version", "to_version", "who", "when", "why", "forced", "readiness")


def aliases(case: Case) -> dict[str, int]:
    """Every alias of the case's registered model and the version it points at (one registry call)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = client(case).get_registered_model(case.name)
    except MlflowException:  # nothing registered yet
        return {}
    return {str(a): int(v) for a, v in (rm.aliases or {}).items()}


def releases_experiment(case: Case) -> str:
    """The id of ``<case>/releases``: the experiment whose runs are the release history (created on first use)."""
    cl = client(case)
    name = f"{case.name}/releases"
    with _lock:
        exp = cl.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        kwargs = {"artifact_location": case.artifact_location} if case.uses_embedded_store else {}
        from mlflow.exceptions import MlflowException

        try:
            return cl.create_experiment(name, **kwargs)
        except MlflowException:  # another process created it first
            return cl.get_experiment_by_name(name).experiment_id


def release_actor() -> str:
    """Who moves an alias: ``MLCASE_ACTOR``, else ``user@host``."""
    import getpass
    import socket

    actor = os.environ.get("MLCASE_ACTOR")
    if actor:
        return actor[:200]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def record_release(case: Case, event: dict) -> str:
    """Record one release event as a finished run of ``<case>/releases``; return its run id.

    The run's tags hold the event's fields (``mlcase.release.action``, ``from_version``,
    ``to_version``, ``who``, ``when``, ``why``...); its ``evidence`` (the rollout status, the
    readiness score, the guardrail numbers) goes into the artifact ``release.json``. The history
    lives in the store that holds the registry it describes, so every machine that can move an
    alias sees it (a file in the case folder would not be shared with a remote registry).
    """
    import json
    from datetime import datetime

    cl = client(case)
    exp_id = releases_experiment(case)
    entry = {"who": release_actor(), "when": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}
    tags = {f"{RELEASE_TAG}.{k}": ("" if entry.get(k) is None else str(entry[k]))[:4900]
            for k in _RELEASE_FIELDS if k in entry}
    tags.update({"mlcase.case": case.name, "mlcase.stage": "release",
                 "mlflow.runName": f"{entry.get('action')} {entry.get('alias', '')} "
                                   f"{entry.get('from_version')}->{entry.get('to_version')}"})
    run_id = cl.create_run(exp_id, tags=tags).info.run_id
    cl.log_text(run_id, json.dumps(entry, indent=1, default=str), "release.json")
    cl.set_terminated(run_id, status="FINISHED")
    return run_id


_RUNS_PAGE = 10_000   # release events read per request to the store


def release_history(case: Case, limit: int = 1000, evidence: bool = False) -> list[dict]:
    """Release events, newest first: the fields of :func:`record_release` (``evidence`` read only when asked).

    ``limit`` is how many of the newest events to read, at least 1: ``limit=-1`` and ``limit=0`` returned no
    event at all while the history held six, and ``limit='x'`` ended in MLflow's TypeError.
    """
    import json

    from mlflow.exceptions import MlflowException

    limit = whole_number(limit, "limit", *RELEASE_LIMIT, minimum=1)
    cl = client(case)
    exp = cl.get_experiment_by_name(f"{case.name}/releases")
    if exp is None:
        return []
    runs, token = [], None
    try:
        while len(runs) < limit:  # MLflow refuses max_results above its page size (50,000): read page by page
            page = cl.search_runs([exp.experiment_id], filter_string="tags.`mlcase.stage` = 'release'",
                                  order_by=["attributes.start_time DESC"],
                                  max_results=min(limit - len(runs), _RUNS_PAGE), page_token=token)
            runs.extend(page)
            token = page.token
            if not token or not page:
                break
    except MlflowException:
        if not runs:
            return []
    out = []
    prefix = f"{RELEASE_TAG}."
    for r in runs:
        d: dict[str, Any] = {k[len(prefix):]: v for k, v in r.data.tags.items() if k.startswith(prefix)}
        for k in ("from_version", "to_version"):
            d[k] = int(d[k]) if d.get(k, "").isdigit() else None
        d["forced"] = d.get("forced") == "True"
        d["readiness"] = float(d["readiness"]) if d.get("readiness") not in (None, "", "None") else None
        d["run_id"] = r.info.run_id
        if evidence:
            d["evidence"] = None  # until its artifact is readable (it is written just after the run's tags)
            with contextlib.suppress(Exception), scratch(case, "release-") as tmp:
                local = cl.download_artifacts(r.info.run_id, "release.json", dst_path=str(tmp))
                d["evidence"] = json.loads(Path(local).read_text(encoding="utf-8")).get("evidence")
        out.append(d)
    return out
