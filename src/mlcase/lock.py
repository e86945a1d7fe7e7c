"""One run at a time per case: a lock file that names its holder and is taken over when the holder died.

:func:`case_lock` holds ``<case>/.mlcase/run.lock`` for the length of ``mlcase run`` (and of
``bakeoff`` and ``check``, which write the same results). The lock is an advisory ``flock``
on that file, so the operating system releases it when its process ends, however it ends
(a ``SIGKILL`` included); the file also holds the holder's PID, host, command and start
time, so a second run is told who holds the case. A released lock removes the file; a lock
file found with a holder written in it was never released: that run was killed, and its
MLflow runs, still ``RUNNING``, are closed as ``KILLED`` (:func:`take_over`).

:func:`file_lock` is the same lock for any file; :mod:`mlcase.tracking` holds one while it
creates a SQLite MLflow store, so two processes starting on a fresh case do not race
through MLflow's table creation.

Where ``fcntl`` is missing (Windows), a lock file whose holder is a dead process on this
host is taken over; a live one is respected.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import MlcaseError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = "run.lock"
_held: dict[str, int] = {}  # lock files this process holds -> depth (a lock is re-entrant in its process)
_guard = threading.RLock()


@dataclass
class Holder:
    """Who holds (or held) a lock."""

    pid: int
    host: str
    command: str
    started_at: str   # ISO 8601, UTC
    started_ms: int   # the same, in milliseconds since the epoch (MLflow's time unit)

    @classmethod
    def me(cls, command: str) -> Holder:
        now = time.time()
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command,
                   started_at=_dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   started_ms=int(now * 1000))

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}"


@dataclass
class Lock:
    """A held lock: its file, this process as holder, and the holder before, if it died holding it."""

    path: Path
    holder: Holder
    stale: Holder | None = None


class CaseBusy(MlcaseError):
    """Another process holds the case's lock."""


def _read(fd: int) -> Holder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    if not raw.strip():
        return None
    try:
        d = json.loads(raw.decode("utf-8"))
        return Holder(pid=int(d["pid"]), host=str(d["host"]), command=str(d.get("command", "run")),
                      started_at=str(d.get("started_at", "?")), started_ms=int(d.get("started_ms", 0)))
    except (ValueError, KeyError, TypeError):
        return Holder(pid=-1, host="?", command="?", started_at="?", started_ms=0)  # unreadable: a stale lock


def _write(fd: int, holder: Holder) -> None:
    data = json.dumps(asdict(holder)).encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _alive(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True  # cannot tell: assume it runs
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_flock(fd: int, blocking: bool) -> bool:
    if fcntl is None:  # pragma: no cover - Windows: the file's content decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def file_lock(path: str | Path, command: str, *, timeout: float = 0.0, busy=None):
    """Hold an exclusive lock on ``path`` (created if missing); yield a :class:`Lock`.

    Parameters
    ----------
    path : path
        The lock file. Its parent folder must exist.
    command : str
        What the holder does (shown to whoever finds the lock taken).
    timeout : float
        Seconds to wait for a held lock before giving up (0: do not wait).
    busy : callable, optional
        ``busy(holder) -> Exception`` raised when the lock stays taken (default :class:`CaseBusy`).
    """
    path = Path(path)
    key = str(path.resolve())
    with _guard:
        nested = key in _held  # this process holds it already (a command calling the pipeline)
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield Lock(path=path, holder=Holder.me(command))
        finally:
            with _guard:
                _held[key] -= 1
        return
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if _try_flock(fd, blocking=False):
            if _same_file(fd, path):
                break
            os.close(fd)  # its holder released it and removed the file meanwhile: lock the new one
            continue
        holder = _read(fd) or Holder(pid=-1, host="?", command="?", started_at="?", started_ms=0)
        os.close(fd)
        if time.monotonic() >= deadline:
            raise (busy(holder) if busy else CaseBusy(
                f"{path} is held by another mlcase {holder.command} ({holder.describe()})",
                "wait for it to finish", pid=holder.pid, host=holder.host))
        time.sleep(0.1)
    try:
        previous = _read(fd)
        if fcntl is None and previous is not None and _alive(previous) and previous.pid != os.getpid():
            raise (busy(previous) if busy else CaseBusy(  # pragma: no cover - Windows
                f"{path} is held by another mlcase {previous.command} ({previous.describe()})", "wait for it to finish"))
        me = Holder.me(command)
        _write(fd, me)
        with _guard:
            _held[key] = 1
        try:
            yield Lock(path=path, holder=me, stale=previous)
        finally:
            with _guard:
                _held.pop(key, None)
            # released: the file goes (a killed holder leaves it, with its name in it, for the next one);
            # whoever opened it meanwhile finds it unlinked after taking the flock and opens a new one
            os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def case_lock(case, command: str = "run"):
    """Hold the case's run lock (``<case>/.mlcase/run.lock``) for ``command``; see :func:`file_lock`.

    Raises :class:`CaseBusy` at once when another process holds it, naming that process. A run that
    stops on bad input leaves the case folder as it found it (no ``.mlcase/`` it did not need).
    """
    created = not case.work_dir.exists()
    case.work_dir.mkdir(parents=True, exist_ok=True)

    def busy(holder: Holder) -> CaseBusy:
        return CaseBusy(f"another mlcase {holder.command} is running on case '{case.name}' ({holder.describe()})",
                        "wait for it to finish, or stop that process; one run at a time writes a case "
                        "(a killed run's lock is taken over by the next run)",
                        pid=holder.pid, host=holder.host, path=str(case.work_dir / LOCK_FILE))

    try:
        with file_lock(case.work_dir / LOCK_FILE, command, busy=busy) as held:
            yield held
    finally:
        if created:
            with contextlib.suppress(OSError):
                case.work_dir.rmdir()  # only when empty


def take_over(case, lock: Lock) -> list[str]:
    """After taking the lock of a run that died holding it: close its MLflow runs left ``RUNNING`` as ``KILLED``.

    Returns the ids of the runs closed (empty when the previous holder released the lock).
    """
    if lock.stale is None:
        return []
    from . import tracking

    return tracking.close_abandoned_runs(case, since_ms=lock.stale.started_ms, pid=lock.stale.pid)
