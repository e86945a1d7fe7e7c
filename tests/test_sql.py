"""The SQL sandbox (mlcase.sql): every probe of issue 20 against data.source, rules, costs and assumptions.

Each probe runs through the real entry points (``data.read_table`` / ``data.load_frame`` and
:class:`mlcase.rules.Rule`) and checks what matters: the file it would write is never written,
the file it would read is never read, and the refusal is one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mlcase import sql
from mlcase.case import case_from_spec
from mlcase.data import load_frame, read_table
from mlcase.errors import DataError, MlcaseError, RuleError, SpecError
from mlcase.rules import Rule


@pytest.fixture
def folder(tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).to_csv(case / "data.csv", index=False)
    (tmp_path / "outside").mkdir()
    pd.DataFrame({"secret_col": ["s3cret"]}).to_csv(tmp_path / "outside" / "other.csv", index=False)
    return case


def _one_line(exc: MlcaseError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_a_select_over_files_in_the_case_folder_runs(folder):
    assert read_table("SELECT * FROM 'data.csv' WHERE x > 1", folder)["x"].tolist() == [2.0, 3.0]
    assert len(read_table("FROM read_csv('data.csv') UNION ALL SELECT * FROM \"data.csv\"", folder)) == 6
    assert len(read_table("WITH t AS (SELECT * FROM 'data.csv') SELECT * FROM t", folder)) == 3
    assert len(read_table("SELECT * FROM read_csv(['data.csv', 'data.csv'])", folder)) == 6


def test_copy_after_a_select_writes_no_file(folder, tmp_path):
    target = tmp_path / "file.csv"
    probe = f"SELECT 1; COPY (SELECT 'x') TO '{target}'; SELECT * FROM 'data.csv'"
    with pytest.raises(SpecError) as err:
        read_table(probe, folder)
    assert "holds 3 statements (SELECT, COPY, SELECT); only one SELECT is allowed" in _one_line(err.value)
    assert not target.exists()
    inside = folder / "copied.csv"  # not even inside the case folder
    with pytest.raises(SpecError, match="only a SELECT query is allowed, got a COPY statement"):
        read_table(f"COPY (SELECT 1) TO '{inside}'", folder)
    assert not inside.exists()


@pytest.mark.parametrize("probe, words", [
    ("INSTALL shellfs", "got a LOAD statement"),
    ("LOAD httpfs", "got a LOAD statement"),
    ("ATTACH 'evil.db' AS e", "got a ATTACH statement"),
    ("PRAGMA enable_profiling", "got a PRAGMA statement"),
    ("SET enable_external_access = true", "got a SET statement"),
    ("CALL pragma_version()", "got a CALL statement"),
    ("EXPORT DATABASE 'dump'", "got a EXPORT statement"),
    ("CREATE TABLE t AS SELECT 1", "got a CREATE statement"),
    ("SELECT * FROM query('SELECT 42')", "the function query() is not allowed"),
    ("SELECT getenv('HOME') AS h", "the function getenv() is not allowed"),
    ("SELECT * FROM read_csv('https://example.com/a.csv')", "reads a URL (https://...)"),
])
def test_statements_other_than_one_select_are_refused_before_running(folder, probe, words):
    before = set(os.listdir(folder))
    with pytest.raises(SpecError) as err:
        read_table(probe, folder)
    assert words in _one_line(err.value) and _one_line(err.value).startswith("data.source: ")
    assert set(os.listdir(folder)) == before  # evil.db, dump/ ... never created


def test_install_never_reaches_the_extension_folder(folder, tmp_path, monkeypatch):
    # even past the parser, the engine has autoinstall off and external access off
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    con = sql.connect([folder])
    with pytest.raises(Exception, match="disabled|Permission"):
        con.execute("INSTALL shellfs")
    assert not (tmp_path / "home" / ".duckdb").exists()


def test_read_csv_of_etc_passwd_is_refused_and_nothing_of_it_is_shown(folder):
    with pytest.raises(DataError) as err:
        read_table("SELECT * FROM read_csv('/etc/passwd', header=false, delim=':')", folder)
    msg = _one_line(err.value)
    assert "may read files only in the case folder" in msg and "it tried /etc/passwd" in msg
    assert "root" not in msg.replace(str(folder), "")  # none of the file's content (root:x:0:0 ...)


def test_a_spec_whose_query_reads_outside_is_refused_with_its_columns_never_read(folder):
    case = case_from_spec({"name": "probe", "decision": "d", "task": "binary",
                           "data": {"source": "SELECT * FROM '../outside/other.csv'", "target": "y"}}, folder)
    with pytest.raises(DataError) as err:
        load_frame(case)
    assert "secret_col" not in str(err.value) and "s3cret" not in str(err.value)
    # declared in data.allowed_paths, the same query runs
    case.spec.data.allowed_paths = ["../outside"]
    assert load_frame(case)["secret_col"].tolist() == ["s3cret"]


def test_paths_escaping_the_folder_are_refused(folder, tmp_path):
    (folder / "link.csv").symlink_to(tmp_path / "outside" / "other.csv")
    for probe in ("SELECT * FROM 'link.csv'", "SELECT * FROM read_csv('../outside/other.csv')",
                  f"SELECT * FROM '{tmp_path}/outside/other.csv'", "SELECT * FROM read_csv('*.csv')",
                  "SELECT * FROM read_text('/etc/hostname')"):
        with pytest.raises(DataError, match="may read files only in the case folder"):
            read_table(probe, folder)
    # a file path (not SQL) in data.source is confined the same way, links included
    case = case_from_spec({"name": "probe", "decision": "d", "task": "binary",
                           "data": {"source": "link.csv", "target": "y"}}, folder)
    with pytest.raises(DataError, match="link.csv is outside the case folder"):
        load_frame(case)


def test_the_engine_configuration_cannot_be_switched_back(folder):
    con = sql.connect([folder])
    for statement in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                      "RESET lock_configuration"):
        with pytest.raises(Exception, match="locked|Cannot change"):
            con.execute(statement)
    assert con.execute(f"SELECT count(*) FROM '{folder}/data.csv'").fetchone()[0] == 3


def test_rules_costs_and_assumptions_run_on_the_locked_connection():
    df = pd.DataFrame({"balance": [100.0, 2500.0]})
    assert Rule("balance > 1800", ["balance"]).predict(df).tolist() == [0, 1]
    for expression, words in [("read_csv('/etc/passwd') IS NOT NULL", "read_csv() is not allowed"),
                              ("balance > 1; COPY (SELECT 1) TO '/tmp/x'", "';' is not allowed"),
                              ("(SELECT 1) = 1", "subqueries are not allowed"),
                              ("getenv('HOME') = 'x'", "getenv() is not allowed")]:
        with pytest.raises(RuleError, match=words.replace("(", r"\(").replace(")", r"\)")):
            Rule(expression, ["balance"])
    from mlcase.rules import _connection

    with pytest.raises(Exception, match="locked"):
        _connection().execute("SET enable_external_access = true")
    with pytest.raises(Exception, match="disabled|Permission"):
        _connection().execute("SELECT * FROM read_csv('/etc/passwd')")


def test_relative_paths_are_made_absolute_only_where_they_are_files(tmp_path):
    text = "WITH \"t.x\" AS (SELECT 1) SELECT * FROM \"t.x\", 'a.csv', read_parquet(['p/1.parquet', '/abs/2.parquet'])"
    out = sql.check_query(text, root=tmp_path)
    assert f"'{tmp_path}/a.csv'" in out and f"'{tmp_path}/p/1.parquet'" in out and "'/abs/2.parquet'" in out
    assert 'FROM "t.x"' in out  # a CTE name is not a file
    assert Path(tmp_path).is_absolute()
