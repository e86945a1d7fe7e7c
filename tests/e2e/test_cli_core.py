"""`mlcase init`, bad input through the CLI, and the installed entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlcase.case import load_case
from mlcase.cli import main

from ..conftest import EXAMPLES, write_case

GOOD = """\
name: t
decision: act on the row
task: binary
data:
  source: data.csv
  target: default
  positive: 'Yes'
budget: 5s
"""


def _run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize(
    "spec_patch, data_patch, words",
    [
        (("source: data.csv", "source: nothing.csv"), None, ["no file at", "nothing.csv"]),
        (("source: data.csv", "source: data.json"), None, ["unsupported file type '.json'"]),
        (("target: default", "target: defaulted"), None, ["'defaulted'", "absent from the data"]),
        (("positive: 'Yes'", "positive: 'Maybe'"), None, ["data.positive 'Maybe'"]),
        (("budget: 5s", "budget: -5s"), None, ["budget (line 8)", "positive duration"]),
        (("budget: 5s", "budget: 5s\ncolor: red"), None, ["unknown key 'color'"]),
        (None, "empty", ["empty"]),
        (None, "one_class", ["1 class"]),
        (None, "three_classes", ["3 classes"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, default_df, spec_patch, data_patch, words):
    text = GOOD if spec_patch is None else GOOD.replace(*spec_patch)
    df = default_df.head(300).copy()
    if data_patch == "empty":
        df = df.head(0)
    elif data_patch == "one_class":
        df["default"] = "No"
    elif data_patch == "three_classes":
        df["default"] = (["No", "Yes", "Maybe"] * 100)[: len(df)]
    path = write_case(tmp_path, text, df)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _run(["run", str(path), "--quiet"], capsys)
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("mlcase: error: ")
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_time_column_that_does_not_parse(tmp_path, capsys, default_df):
    df = default_df.head(100).assign(when=["2024-03-01", "yesterday-ish"] * 50)
    path = write_case(tmp_path, GOOD.replace("positive: 'Yes'", "positive: 'Yes'\n  time: when"), df)
    code, _, err = _run(["run", str(path)], capsys)
    assert code == 2 and "data.time 'when'" in err and "'yesterday-ish'" in err


def test_case_argument_accepts_folder_file_and_default(tmp_path, capsys, monkeypatch):
    code, _, err = _run(["run", str(tmp_path)], capsys)
    assert code == 2 and "no case.yaml in" in err
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["run"], capsys)
    assert code == 2 and "no case spec at case.yaml" in err


@pytest.mark.parametrize("example, target", [("telco-churn", "churn"), ("default", "default")])
def test_init_drafts_a_spec_that_loads(tmp_path, capsys, example, target):
    src = EXAMPLES / example / load_case(EXAMPLES / example).spec.data.source
    shutil.copy(src, tmp_path / src.name)
    code, _, err = _run(["init", str(tmp_path / src.name), "--target", target], capsys)
    assert code == 0, err
    from mlcase.data import prepare

    case = load_case(tmp_path)
    assert case.spec.task == "binary" and case.spec.data.positive == "Yes"
    assert case.spec.data.id in ("customer_id", "account_id")
    ds = prepare(case)
    assert ds.positive == "Yes"
    # never overwrites
    code, _, err = _run(["init", str(tmp_path / src.name), "--target", target], capsys)
    assert code == 2 and "already exists" in err


def test_init_rejects_an_unknown_target(tmp_path, capsys, default_df):
    default_df.head(50).to_csv(tmp_path / "d.csv", index=False)
    code, _, err = _run(["init", str(tmp_path / "d.csv"), "--target", "nope"], capsys)
    assert code == 2 and "--target 'nope' is not a column" in err
    assert not (tmp_path / "case.yaml").exists()


def test_installed_entry_point_runs():
    exe = Path(sys.executable).parent / "mlcase"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "init" in out.stdout and "run" in out.stdout
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == __import__("mlcase").__version__
