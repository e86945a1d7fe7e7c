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
    """``runs.get(table_id)``: the case folder, exit code and JSON summary of one run, made once."""

    def __init__(self, root: Path, store: Path):
        self.root, self.store, self._done = root, store, {}

    def get(self, table_id: str) -> dict:
        if table_id not in self._done:
            table = BY_ID[table_id]
            folder = table.write(self.root / table_id)
            shutil.copy(self.store, folder / "mlflow.db")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(["run", str(folder), "--json", "--quiet", "--force"])
            summary = json.loads(out.getvalue()) if code == 0 else {"error": out.getvalue()}
            shutil.copytree(folder, self.root / f"{table_id}.as-run")   # what copy() hands out, as the run left it
            self._done[table_id] = {"table": table, "folder": folder, "case": load_case(folder), "code": code,
                                    "summary": summary}
        return self._done[table_id]

    def copy(self, table_id: str, dest: Path) -> dict:
        """:meth:`get`'s run, its case folder as the run left it copied to ``dest``: for a test that serves, labels
        or logs into it.

        The run's own folder is shared by every test of this session's worker that asks for the table, so rows
        one test logs there reach the next one's monitoring (fresh-clone CI: a test's 99 labels read as 132).
        """
        done = self.get(table_id)
        folder = Path(shutil.copytree(self.root / f"{table_id}.as-run", dest))
        return {**done, "folder": folder, "case": load_case(folder)}


@pytest.fixture(scope="session")
def runs(tmp_path_factory, empty_store) -> Runs:
    return Runs(tmp_path_factory.mktemp("realdata"), empty_store)
