"""`mlcase check`: exit 0 when clean, 1 on an error-level check, 2 on bad input; files written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlcase.cli import main

from ..conftest import EXAMPLES, write_case

SPEC = """\
name: t
decision: approve the refund
task: binary
data:
  source: data.csv
  target: default
  positive: 'Yes'
{extra}"""


def _run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_clean_real_case_exits_0_and_writes_datasheet_and_results(tmp_path, capsys):
    folder = tmp_path / "default"
    shutil.copytree(EXAMPLES / "default", folder)
    code, out, err = _run(["check", str(folder)], capsys)
    assert code == 0, err
    assert "0 error(s), 1 warning(s)" in err and "class_balance [default]" in err and out == ""
    assert (folder / "datasheet.md").is_file()
    saved = json.loads((folder / ".mlcase" / "checks.json").read_text())["data"]
    assert saved["has_errors"] is False and saved["counts"]["warning"] == 1
    sheet = json.loads((folder / ".mlcase" / "datasheet.json").read_text())["data"]
    assert sheet["composition"]["target"]["positives"] == 333 and sheet["path"] == str(folder / "datasheet.md")


def test_planted_leak_exits_1_with_the_problem_and_json(tmp_path, capsys, default_df):
    df = default_df.head(3000).copy()
    df["collections_fee"] = (df["default"] == "Yes") * 35.0 + np.random.default_rng(0).normal(0, 2, len(df))
    write_case(tmp_path, SPEC.format(extra=""), df)
    code, out, err = _run(["check", str(tmp_path)], capsys)
    assert code == 1
    assert "ERROR" in err and "target_leakage [collections_fee]" in err and "unavailable_at_serving" in err
    code, out, _ = _run(["check", str(tmp_path), "--json"], capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["has_errors"] is True and doc["case"] == "t"
    leak = [c for c in doc["checks"] if c["id"] == "target_leakage"][0]
    assert leak["column"] == "collections_fee" and leak["severity"] == "error" and leak["evidence"]["score"] >= 0.98


def test_bad_input_exits_2_listing_every_missing_column(tmp_path, capsys, default_df):
    extra = "  id: acct\n  features: {include: [balance, incme]}\nsensitive: [gender]\n"
    write_case(tmp_path, SPEC.format(extra=extra), default_df.head(200))
    code, out, err = _run(["check", str(tmp_path)], capsys)
    assert code == 2
    assert err.startswith("mlcase: error:") and err.count("\n") == 1
    for col in ("data.id: 'acct'", "data.features.include: 'incme'", "sensitive: 'gender'"):
        assert col in err
    assert not (tmp_path / "datasheet.md").exists()


def test_invalid_assumption_check_exits_2_naming_it(tmp_path, capsys, default_df):
    extra = "assumptions:\n  - text: balances are low\n    check: \"avg(balanse) < 1000\"\n"
    write_case(tmp_path, SPEC.format(extra="") + extra, default_df.head(200))
    code, _, err = _run(["check", str(tmp_path)], capsys)
    assert code == 2
    assert "assumptions[0].check" in err and "did you mean 'balance'" in err


def test_installed_entry_point_runs_check(tmp_path):
    folder = tmp_path / "churn"
    shutil.copytree(EXAMPLES / "telco-churn", folder)
    exe = Path(sys.executable).parent / "mlcase"
    proc = subprocess.run([str(exe), "check", str(folder), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["has_errors"] is False and doc["rows"] == 7043
    assert doc["datasheet"] == str(folder / "datasheet.md")
