"""A ``--log`` that is the case's MLflow store is refused, read-only, by every command that reads the log.

``mlcase rollout status CASE --log mlflow.db`` (ISLR::Smarket's run) opened the store as a prediction log: it created
a ``predictions`` and a ``labels`` table in it, then said the log "holds no canary". The shared opener
(``serve.predlog.open_existing``) now refuses a SQLite file with tables and no ``predictions`` table in one line.
"""

from __future__ import annotations

import sqlite3

import pytest

from .tables import said

pytestmark = pytest.mark.slow


def _tables(path) -> set[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


@pytest.mark.parametrize("command", [("rollout", "status"), ("replay",), ("readiness",)])
def test_the_mlflow_store_given_as_the_log_is_refused_and_gets_no_log_tables(runs, tmp_path, command):
    run = runs.copy("smarket-time", tmp_path / "smarket")
    store = run["folder"] / "mlflow.db"
    before = _tables(store)
    assert "experiments" in before and "predictions" not in before
    args = [*command, str(run["folder"]), "--log", str(store)]
    if command == ("replay",):
        args += ["--last", "5"]
    code, text = said(*args)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert code == 2 and len(lines) == 1, text
    assert "is not a prediction log" in lines[0] and "MLflow store" in lines[0], text
    assert _tables(store) == before
