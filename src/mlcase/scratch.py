"""Scratch folders inside the case: where a command keeps what it copies of the case while it works.

Monitoring's DuckDB spills the typed prediction log (inputs and unit ids) past its memory limit; the
out-of-core profile spills the training rows; a model is downloaded from the registry to be loaded,
or staged before it is logged. These copies live in ``<case>/.mlcase/scratch/`` and not in the
system's temporary folder: a command killed mid-way (``SIGKILL``, the kernel's OOM killer, a closed
terminal) cannot delete its copy, and one left in ``/tmp`` is out of reach of ``mlcase forget`` and of
anyone looking after the case. (The interruption sweep of stop 62 left four model copies in ``/tmp``,
one of 32 MB; a spill of the log there would hold personal data.)

Each folder is held by its process: an ``flock`` on its ``.held`` file, which the operating system
releases however the process ends. :func:`sweep` deletes the folders whose holder has ended; every
new scratch folder and every erasure runs it, so a killed command's copy lasts until the next command
at most, and never past ``mlcase forget``. A case folder mlcase may not write (a server started on a
read-only mount) falls back to the system's temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from .lock import fcntl

SCRATCH_DIR = "scratch"
HELD = ".held"
#: a folder with no ``.held`` file (its process died between creating it and holding it) is removed after this
UNHELD_GRACE_S = 600.0


def scratch_root(case) -> Path:
    """``<case>/.mlcase/scratch``."""
    return case.work_dir / SCRATCH_DIR


@contextlib.contextmanager
def scratch(case, prefix: str):
    """A new folder in the case's scratch area, held by this process and deleted when the block ends.

    Folders that killed commands left are deleted first (:func:`sweep`).
    """
    root = scratch_root(case)
    made_work_dir = not case.work_dir.exists()
    folder = None
    for _ in range(3):  # another process may remove the empty scratch root between mkdir and mkdtemp
        try:
            root.mkdir(parents=True, exist_ok=True)
            sweep(case)
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
            break
        except FileNotFoundError:
            continue
        except OSError:  # a read-only case folder: the system's temporary folder, as before
            break
    if folder is None:
        with tempfile.TemporaryDirectory(prefix=f"mlcase-{prefix}") as tmp:
            yield Path(tmp)
        return
    fd = _hold(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        # leave the case folder as it was found: an empty scratch area (and a .mlcase/ made for it) goes
        for d in (root, case.work_dir) if made_work_dir else (root,):
            with contextlib.suppress(OSError):
                d.rmdir()


def _hold(folder: Path) -> int:
    """Lock ``folder/.held`` for this process. The lock is taken on a temporary name and renamed into place, so a
    sweep never finds a ``.held`` file that is not yet locked."""
    fd = os.open(folder / f"{HELD}.new", os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.replace(folder / f"{HELD}.new", folder / HELD)
    return fd


def sweep(case) -> dict:
    """Delete the scratch folders whose process has ended; return ``{"removed": n, "live": m}`` (``live``: folders
    of commands still running, which delete their own when they end)."""
    root = scratch_root(case)
    removed = live = 0
    try:
        entries = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return {"removed": 0, "live": 0}
    for folder in entries:
        if _ended(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
        else:
            live += 1
    return {"removed": removed, "live": live}


def _ended(folder: Path) -> bool:
    held = folder / HELD
    try:
        fd = os.open(held, os.O_RDONLY)
    except FileNotFoundError:  # created but never held (killed in between), or being created right now
        try:
            return time.time() - folder.stat().st_mtime > UNHELD_GRACE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        if fcntl is None:  # pragma: no cover - Windows: only an old folder is taken for a dead one
            return time.time() - held.stat().st_mtime > 86400
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True  # nobody holds it: its process has ended
    finally:
        os.close(fd)
