"""Fixtures of the real-data matrix: one `mlcase run` per table per session, shared by every test.

Every case gets its own embedded MLflow store (``<case>/mlflow.db``). Creating one runs MLflow's
schema migrations (several seconds); the session migrates one empty store and copies the file into
each case folder before its run, so every run still writes to a real, separate store.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from mlcase.case import load_case
from mlcase.cli import main

from .tables import BY_ID

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite store (no experiments but MLflow's default)."""
    from mlcase import tracking

    folder = tmp_path_factory.mktemp("store-template")
    BY_ID["boston-random"].write(folder)
    tracking.client(load_case(folder))
    return folder / "mlflow.db"


class Runs:
    """``runs.get(table_id)``: the case folder, exit code and JSON summary of one run, made once.

    Once per test run, not once per xdist worker: the first worker to ask runs the table into ``shared`` (under a
    file lock, while another worker asking waits) and every worker copies the folder as the run left it into its
    own ``root``. With ``--dist loadfile`` the tables that several files use (credit, fgl, hpc, boston) were run
    by both workers, a minute or more of CI each time.
    """

    def __init__(self, root: Path, store: Path, shared: Path | None = None):
        self.root, self.store, self._done = root, store, {}
        self.shared = shared or root
        self.shared.mkdir(parents=True, exist_ok=True)

    def _run_once(self, table_id: str) -> dict:
        """The shared run's ``{code, summary}``, running the table first where no worker has."""
        import fcntl

        meta = self.shared / f"{table_id}.json"
        with open(self.shared / f"{table_id}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not meta.exists():
                folder = BY_ID[table_id].write(self.shared / f"{table_id}.run")
                shutil.copy(self.store, folder / "mlflow.db")
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    code = main(["run", str(folder), "--json", "--quiet", "--force"])
                summary = json.loads(out.getvalue()) if code == 0 else {"error": out.getvalue()}
                shutil.copytree(folder, self.shared / f"{table_id}.as-run")
                tmp = meta.with_suffix(".tmp")
                tmp.write_text(json.dumps({"code": code, "summary": summary}))
                tmp.replace(meta)
        return json.loads(meta.read_text())

    def get(self, table_id: str) -> dict:
        if table_id not in self._done:
            done = self._run_once(table_id)
            folder = Path(shutil.copytree(self.shared / f"{table_id}.as-run", self.root / table_id))
            with contextlib.redirect_stderr(io.StringIO()):   # the store follows the copy now, not in a test's stderr
                from mlcase import tracking

                tracking.client(load_case(folder))
            self._done[table_id] = {"table": BY_ID[table_id], "folder": folder, "case": load_case(folder),
                                    "code": done["code"], "summary": done["summary"]}
        return self._done[table_id]

    def copy(self, table_id: str, dest: Path) -> dict:
        """:meth:`get`'s run, its case folder as the run left it copied to ``dest``: for a test that serves, labels
        or logs into it.

        The run's folder :meth:`get` gives is shared by every test of this session's worker that asks for the
        table, so rows one test logs there reach the next one's monitoring (fresh-clone CI: a test's 99 labels read
        as 132).
        """
        done = self.get(table_id)
        folder = Path(shutil.copytree(self.shared / f"{table_id}.as-run", dest))
        return {**done, "folder": folder, "case": load_case(folder)}


@pytest.fixture(scope="session")
def runs(tmp_path_factory, empty_store) -> Runs:
    import os

    root = tmp_path_factory.mktemp("realdata")
    # xdist workers' temporary folders share a parent (pytest-N/popen-gwK): the runs are made once for all of them
    shared = (tmp_path_factory.getbasetemp().parent / "realdata-shared"
              if os.environ.get("PYTEST_XDIST_WORKER") else None)
    return Runs(root, empty_store, shared)
