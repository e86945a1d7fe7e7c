"""Issue #21: every finding of the robustness review, through the CLI a user types.

Bad input (encodings, empty files, NaN costs, NaN and booleans on stdin) gets one line and exit 2
with nothing written; data that reading has to change (inf, ``n/a`` in a numeric column,
duplicate column names) runs to the end with each change reported; `--debug` works after the
subcommand; one run at a time per case, a killed run's lock and MLflow runs are taken over; labels
that are no class of the target are refused; listings in a pipe print whole names and money.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcase.cli import main

from .test_bad_input import _edit_spec, _snapshot, no_server, one_line_and_nothing_lost  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
MLCASE = Path(sys.executable).with_name("mlcase")
# MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI; a child process must find its case's own store
ENV = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}


def _latin1(case: Path) -> None:
    frame = pd.read_csv(case / "default.csv").head(200)
    frame["student"] = frame["student"].map({"Yes": "Oui-é", "No": "Non"})
    frame.to_csv(case / "latin1.csv", index=False, encoding="latin-1")


def _utf16(case: Path) -> None:
    pd.read_csv(case / "in.csv").to_csv(case / "utf16.csv", index=False, encoding="utf-16")


def _file(name: str, data: bytes = b""):
    def setup(case: Path) -> None:
        (case / name).write_bytes(data)
    return setup


def _bool_balance(case: Path) -> None:
    frame = pd.read_csv(case / "in.csv")
    frame["balance"] = frame["balance"] > 800
    frame.to_parquet(case / "bools.parquet", index=False)


def _source(setup, source: str):
    def both(case: Path) -> None:
        setup(case)
        _edit_spec(data__source=source)(case)
    return both


# (id, argv, setup, stdin, expected exit code, words the one error line must contain)
CASES = [
    ("init-data-missing-names-the-data", ["init", "does/not/exist.csv", "--target", "default"], None, None, 2,
     ["DATA does/not/exist.csv", "no such file"]),
    ("init-latin1", ["init", "latin1.csv", "--target", "default", "-o", "new.yaml"], _latin1, None, 2,
     ["DATA: latin1.csv is not UTF-8", "byte 0xE9", "Latin-1", "iconv -f latin1"]),
    ("check-latin1-source", ["check"], _source(_latin1, "latin1.csv"), None, 2,
     ["data.source: latin1.csv is not UTF-8", "Latin-1", "encoding = 'latin-1'"]),
    ("run-latin1-source", ["run", "--budget", "3s"], _source(_latin1, "latin1.csv"), None, 2,
     ["data.source: latin1.csv is not UTF-8"]),
    ("score-empty-file", ["score", "empty.csv", "-o", "out.csv"], _file("empty.csv"), None, 2,
     ["input empty.csv is empty"]),
    ("score-empty-file-dask", ["score", "empty.csv", "-o", "out.csv", "--engine", "dask"], _file("empty.csv"), None,
     2, ["input empty.csv is empty"]),
    ("score-latin1", ["score", "latin1.csv", "-o", "out.csv"], _latin1, None, 2,
     ["input latin1.csv is not UTF-8", "Latin-1"]),
    ("score-utf16", ["score", "utf16.csv", "-o", "out.csv"], _utf16, None, 2, ["input utf16.csv is not UTF-8", "UTF-16"]),
    ("score-booleans-are-not-numbers", ["score", "bools.parquet", "-o", "out.csv"], _bool_balance, None, 2,
     ["none of its 40 row(s) could be scored", "balance: expected a number, got False"]),
    ("check-cost-nan", ["check"], _edit_spec(costs__false_positive=float("nan")), None, 2,
     ["costs.false_positive", "finite amount of money", "nan"]),
    ("run-cost-nan-text", ["run", "--budget", "3s"], _edit_spec(costs__false_positive="nan"), None, 2,
     ["costs.false_positive", "finite amount of money"]),
    ("run-cost-inf", ["run", "--budget", "3s"], _edit_spec(costs__true_negative=float("inf")), None, 2,
     ["costs.true_negative", "finite amount of money"]),
    ("run-min-lift-nan", ["run", "--budget", "3s"], _edit_spec(constraints__min_lift=float("nan")), None, 2,
     ["constraints.min_lift", "finite number"]),
    ("run-budget-inf", ["run"], _edit_spec(budget=float("inf")), None, 2, ["budget", "positive duration"]),
    ("explain-nan-as-predict", ["explain"], None, '{"student": "No", "balance": NaN, "income": 1}', 2,
     ["stdin column 'balance'", "finite number, got nan"]),
    ("explain-boolean-is-not-a-number", ["explain"], None, '{"student": "No", "balance": true, "income": 1}', 2,
     ["stdin column 'balance'", "expected a number, got True"]),
    ("explain-boolean-is-not-a-category", ["explain"], None, '[{"student": "No", "balance": 1, "income": 1}, '
     '{"student": false, "balance": 1, "income": 1}]', 2, ["stdin record 1: column 'student'", "got False"]),
    ("score-header-only", ["score", "header.csv", "-o", "out.csv"], _file("header.csv", b"student,balance,income\n"),
     None, 2, ["input header.csv has no records", "out.csv was not written"]),
    ("leaderboard-unknown-format", ["leaderboard", "--format", "xlsx"], None, None, 2, ["--format 'xlsx'", "csv"]),
]


@pytest.mark.parametrize("name, argv, setup, stdin, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(trained, tmp_path, monkeypatch, capfd, no_server,  # noqa: F811
                                                 name, argv, setup, stdin, code, words):
    one_line_and_nothing_lost(trained, tmp_path, monkeypatch, capfd, argv, setup, stdin, code, words)


# --------------------------------------------------------------------------- data reading has to change
def test_inf_na_tokens_and_duplicate_names_run_to_the_end_and_are_reported(trained, tmp_path, capfd):
    """Once an internal error (`Input X contains infinity`); now each change is a warning and the run ends."""
    case = tmp_path / "case"
    shutil.copytree(trained, case)
    frame = pd.read_csv(case / "default.csv")
    frame["utilisation"] = (frame["balance"] / frame["income"].clip(lower=1)).astype(object)
    frame.loc[[3, 70], "utilisation"] = [np.inf, -np.inf]  # as a division by zero upstream writes them
    frame["income"] = frame["income"].round(2).astype(object)
    frame.loc[[5, 6, 9], "income"] = "n/a"
    frame.insert(3, "student_again", frame["student"])
    frame.to_csv(case / "default.csv", index=False)
    text = (case / "default.csv").read_text().splitlines()
    text[0] = text[0].replace("student_again", "student")  # two columns named 'student'
    (case / "default.csv").write_text("\n".join(text) + "\n")
    capfd.readouterr()
    assert main(["run", str(case), "--quiet"]) == 0, capfd.readouterr().err
    checks = json.loads((case / ".mlcase" / "checks.json").read_text())["data"]
    by_id = {(c["id"], c["column"]): c for c in checks["checks"]}
    assert by_id[("infinite_values", "utilisation")]["evidence"]["infinite"] == {"inf": 1, "-inf": 1}
    assert by_id[("missing_value_tokens", "income")]["evidence"]["tokens"] == {"n/a": 3}
    assert by_id[("duplicate_column_names", "student")]["evidence"]["read_as"] == ["student", "student_1"]
    data = json.loads((case / ".mlcase" / "data.json").read_text())["data"]
    kinds = {c["name"]: c["kind"] for c in data["schema"]["columns"]}
    assert kinds["income"] == kinds["utilisation"] == "numeric" and {"income", "utilisation"} <= set(data["features"])
    assert "infinite_values" in (case / "datasheet.md").read_text()


def test_init_writes_what_reading_changed_as_notes(tmp_path, capfd):
    frame = pd.read_csv(REPO / "examples" / "default" / "default.csv").head(300)
    frame["income"] = frame["income"].round(2).astype(object)
    frame.loc[[1, 2], "income"] = "N/A"
    frame.to_csv(tmp_path / "d.csv", index=False)
    capfd.readouterr()
    assert main(["init", str(tmp_path / "d.csv"), "--target", "default"]) == 0
    err = capfd.readouterr().err
    assert "note: column 'income' is numeric; its missing-value markers ('N/A' x2) were read as missing" in err
    spec = (tmp_path / "case.yaml").read_text()
    assert "# note: column 'income' is numeric" in spec and 'id: "income"' not in spec


def test_dask_scores_a_column_whose_type_changes_between_blocks(trained, tmp_path, capfd):
    """Dask inferred each column's dtype from the first block and failed on a later one (a fuzz finding)."""
    case = tmp_path / "case"
    shutil.copytree(trained, case)
    frame = pd.read_csv(case / "in.csv")
    frame["note"] = [str(i) if i < 30 else "text" for i in range(len(frame))]  # numbers, then text
    frame["code"] = ["007"] * len(frame)
    frame.to_csv(case / "mixed.csv", index=False)
    outs = {}
    for engine in ("local", "dask"):
        capfd.readouterr()
        code = main(["score", str(case), str(case / "mixed.csv"), "-o", str(case / f"{engine}.csv"),
                     "--engine", engine, "--chunk-rows", "10", "--quiet"])
        assert code == 0, capfd.readouterr().err
        outs[engine] = pd.read_csv(case / f"{engine}.csv", dtype=str)
    assert outs["local"].equals(outs["dask"]) and len(outs["local"]) == 40
    assert set(outs["local"]["code"]) == {"007"} and outs["local"]["note"].iloc[-1] == "text"  # echoed as written


# --------------------------------------------------------------------------- --debug and the bug hint
def test_debug_is_accepted_after_the_subcommand(trained, capfd, monkeypatch):
    capfd.readouterr()
    assert main(["models", str(trained), "--debug", "--format", "csv"]) == 0
    assert "candidate" in capfd.readouterr().out
    from mlcase import tracking

    def broken(case):  # a bug somewhere below the CLI: the hint must be true
        raise RuntimeError("boom")

    monkeypatch.setattr(tracking, "versions", broken)
    assert main(["models", str(trained)]) == 70
    err = capfd.readouterr().err
    assert "Traceback" not in err and "run with --debug (anywhere on the line)" in err
    assert main(["models", str(trained), "--debug"]) == 70
    err = capfd.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err and "traceback above" in err


# --------------------------------------------------------------------------- one run at a time
HOLDER = """
import os, signal, sys, time
from mlcase import tracking
from mlcase.case import load_case
from mlcase.lock import case_lock
case = load_case(sys.argv[1])
with case_lock(case, "run"):
    run_id = tracking.start_run_id(case, "bake-off", tags=tracking.base_tags(case))
    print(run_id, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""


def _hold(case: Path, how: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(case), how], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV)
    return proc, proc.stdout.readline().strip()


def test_a_second_run_is_refused_while_one_runs_and_a_killed_run_is_taken_over(trained, tmp_path, capfd):
    case = tmp_path / "case"
    shutil.copytree(trained, case)
    proc, run_id = _hold(case, "sleep")
    try:
        assert run_id, "the holder did not start"
        before = _snapshot(case)
        capfd.readouterr()
        for argv in (["run", str(case), "--budget", "3s"], ["bakeoff", str(case), "--budget", "3s"], ["check", str(case)]):
            assert main(argv) == 2
            err = capfd.readouterr().err.strip()
            assert err.count("\n") == 0 and f"another mlcase run is running on case 'card-default' (pid {proc.pid} on " \
                in err and "wait for it to finish" in err, err
        assert _snapshot(case) == before
    finally:
        proc.kill()
        proc.wait()
    # SIGKILL left the lock file with its holder written in it and the MLflow run RUNNING
    proc, killed_run = _hold(case, "kill")
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    held = json.loads((case / ".mlcase" / "run.lock").read_text())
    assert held["pid"] == proc.pid and held["command"] == "run" and held["host"]
    from mlcase import tracking
    from mlcase.case import load_case

    tracking.reset_cache()
    c = load_case(case)
    assert tracking.client(c).get_run(killed_run).info.status == "RUNNING"
    # a run that stops at the value ceiling (no model can pay a huge operating cost) takes the lock over
    _edit_spec(constraints__operating_cost=1e9)(case)
    capfd.readouterr()
    assert main(["run", str(case)]) == 0
    err = capfd.readouterr().err
    assert f"the previous run on this case (pid {proc.pid}) was killed; its 1 MLflow run(s) left RUNNING are now KILLED" in err
    assert "decision NO_GO" in err
    assert tracking.client(c).get_run(killed_run).info.status == "KILLED"
    assert not (case / ".mlcase" / "run.lock").exists()  # released


FRESH = """
import sys, time
from mlcase import tracking
from mlcase.case import load_case
case = load_case(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
try:
    tracking.client(case)
    tracking.experiment_id(case)
    print("ok")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_processes_starting_together_on_a_fresh_case_share_the_new_store(trained, tmp_path):
    """Without the store lock, MLflow's table creation raced ('table experiments already exists') and the
    losers were told to move a valid database away."""
    case = tmp_path / "case"
    shutil.copytree(trained, case, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    start = time.time() + 6  # the interpreters import mlflow first, then start together
    procs = [subprocess.Popen([sys.executable, "-c", FRESH, str(case), str(start)], cwd=REPO, text=True, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["ok"] * 2, outs
    import sqlite3

    con = sqlite3.connect(case / "mlflow.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM experiments WHERE name = 'card-default'").fetchone()[0] == 1


# --------------------------------------------------------------------------- labels are outcomes
def test_labels_must_be_classes_of_the_target(trained, tmp_path):
    from fastapi.testclient import TestClient

    from mlcase.serve.app import create_app

    case = tmp_path / "case"
    shutil.copytree(trained, case)
    record = pd.read_csv(case / "in.csv").head(1).to_dict("records")
    with TestClient(create_app({"case": str(case), "warmup": 0})) as client:
        rid = client.post("/predict", json=record).json()["predictions"][0]["request_id"]
        for label in ("Maybe", 2, 0.5):
            r = client.post("/labels", json={"request_id": rid, "label": label})
            assert r.status_code == 422, r.text
            assert "one of the classes of 'default' ('No', 'Yes')" in r.json()["message"]
        # 1 and true spell the positive class, as `mlcase label` and /feedback read them, and the class is stored
        for label in (1, True, "yes"):
            r = client.post("/labels", json={"request_id": rid, "label": label})
            assert r.status_code == 200 and r.json()["attached"] == 1, r.text
        con = sqlite3.connect(case / "predictions.db")
        try:
            assert [v for (v,) in con.execute("SELECT label FROM labels WHERE request_id = ?", (rid,))] == ["Yes"] * 3
        finally:
            con.close()
        r = client.post("/labels", content=f'{{"request_id": "{rid}", "label": NaN}}',
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "got nan" in r.json()["message"], r.text
        r = client.post("/labels", json=[{"request_id": rid, "label": "Yes"}, {"request_id": rid, "label": None}])
        assert r.status_code == 200 and r.json()["attached"] == 2, r.text
        r = client.post("/predict", json=[{**record[0], "balance": True}])
        assert r.status_code == 422 and "expected a number, got True" in r.text


# --------------------------------------------------------------------------- listings in a pipe
def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run([str(MLCASE), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_listings_in_a_pipe_print_whole_names_and_money(trained, tmp_path, capfd):
    """stderr and stdout are pipes (the installed entry point) or capture files (in-process), as in
    `mlcase leaderboard | cat` or a CI log."""
    shutil.copytree(trained, tmp_path / "case")
    case = tmp_path / "case"
    board = json.loads((case / ".mlcase" / "bakeoff.json").read_text())["data"]["leaderboard"]
    names = [r["name"] for r in board]
    out = _cli("leaderboard", str(case), cwd=case)
    assert out.returncode == 0, out.stderr
    rows = [ln for ln in out.stderr.splitlines() if ln.startswith("│")]
    assert len(rows) == len(names)
    for name, row in zip(names, rows, strict=True):
        assert f" {name} " in row, row  # whole, on its row
    assert "…" not in out.stderr and not re.search(r"\de-\d", out.stderr)
    assert all(re.fullmatch(r"\$\d+\.\d+|–", row.split("│")[10].strip()) for row in rows), rows  # – : not refitted
    assert max(map(len, out.stderr.splitlines())) > 80  # not wrapped at 80 columns

    def cli(*argv: str) -> tuple[int, str, str]:
        capfd.readouterr()
        code = main(list(argv))
        got = capfd.readouterr()
        return code, got.out, got.err

    code, stdout, _ = cli("leaderboard", str(case), "--format", "csv")
    table = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and [r["name"] for r in table] == names and "$/decision" in table[0]
    assert all("e-" not in r["$/decision"] for r in table)
    code, _, err = cli("models", str(case))
    assert code == 0 and "champion" in err and "…" not in err
    assert re.search(r"\b[0-9a-f]{32}\b", err), err  # the whole run id, not 8 characters
    md = cli("models", str(case), "--format", "md")[1].splitlines()
    assert md[2].startswith("| version | aliases |") and any("champion" in ln for ln in md[4:])
    code, stdout, _ = cli("check", str(case), "--format", "csv")
    findings = list(csv.DictReader(io.StringIO(stdout)))
    assert code in (0, 1) and {"severity", "check", "column", "finding", "fix"} <= set(findings[0])
    code, stdout, err = cli("monitor", str(case), "--format", "md")
    assert code in (0, 1) and "| window | n | labels |" in stdout, err
