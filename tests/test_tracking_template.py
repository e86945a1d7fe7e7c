"""A new embedded store is a copy of the first one this process migrated, and reads as a migrated one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from mlcase import tracking
from mlcase.case import load_case

SPEC = {"name": "t", "decision": "d", "task": "binary",
        "data": {"source": "data.csv", "target": "y", "positive": 1}}


def _case(folder: Path, name: str):
    folder.mkdir(parents=True)
    (folder / "case.yaml").write_text(yaml.safe_dump({**SPEC, "name": name}))
    (folder / "data.csv").write_text("x,y\n1,0\n2,1\n")
    return load_case(folder)


def _schema(db: Path) -> list:
    """Every table's and index's definition, its lines sorted: MLflow's own migrations write a table's
    constraints in an order that changes from process to process (a set's hash order)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    finally:
        con.close()
    return sorted((kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                  for kind, name, sql in rows)


def _rows(db: Path, sql: str) -> list:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_second_new_store_is_the_migrated_schema_with_its_own_default_experiment_and_nothing_of_the_first(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking._template.clear()
    first = _case(tmp_path / "a", "first")
    cl = tracking.client(first)
    assert tracking._template, "the first store migrated in this process is kept"
    # the first case logs a run and registers a model: none of it may reach the next store
    exp = cl.create_experiment("first-exp")
    run = cl.create_run(exp)
    cl.log_metric(run.info.run_id, "m", 1.0)
    cl.create_registered_model("first-model")

    second = _case(tmp_path / "b", "second")
    cl2 = tracking.client(second)
    db1, db2 = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    # a fresh process migrates a third store the slow way, as MLflow does: the copy has its very schema
    code = ("import sys; from mlcase.case import load_case; from mlcase import tracking; "
            "tracking.client(load_case(sys.argv[1]))")
    third = _case(tmp_path / "c", "third")
    subprocess.run([sys.executable, "-c", code, str(third.root)], check=True, cwd=tmp_path,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert _schema(db2) == _schema(tmp_path / "c" / "mlflow.db")
    assert _rows(db2, "SELECT version_num FROM alembic_version") == _rows(db1, "SELECT version_num FROM alembic_version")
    # MLflow wrote the Default experiment into the copy itself: here, now, not the first store's row
    (d1,), (d2,) = (_rows(db, "SELECT artifact_location, creation_time FROM experiments WHERE experiment_id = 0")
                    for db in (db1, db2))
    assert d2[0] == str(tmp_path / "mlruns" / "0") and d2[1] >= d1[1]
    assert [e.name for e in cl2.search_experiments()] == ["Default"]
    assert cl2.search_registered_models() == [] and _rows(db2, "SELECT COUNT(*) FROM runs") == [(0,)]
    assert _rows(db2, "SELECT COUNT(*) FROM metrics") == [(0,)]
    # and the copy works as a store: a run and a model of its own
    run2 = cl2.create_run(cl2.create_experiment("second-exp"))
    cl2.log_metric(run2.info.run_id, "m", 2.0)
    assert cl2.get_run(run2.info.run_id).data.metrics == {"m": 2.0}
    assert [m.name for m in cl.search_registered_models()] == ["first-model"]


def test_a_store_that_holds_more_than_a_migration_writes_is_never_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking._template.clear()
    case = _case(tmp_path / "a", "a")
    cl = tracking.client(case)
    cl.create_experiment("x")
    tracking._template.clear()
    tracking._keep_template(tmp_path / "a" / "mlflow.db")
    assert not tracking._template
