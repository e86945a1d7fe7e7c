"""What a command copies of the case while it works stays in the case (`mlcase.scratch`), even when it is killed.

A model downloaded from the registry to be loaded, and monitoring's working copy of the prediction log (DuckDB
spills it past its memory limit), went to the system's temporary folder. A command killed mid-way (SIGKILL, the
OOM killer) left them there: the interruption sweep of stop 62 found four model copies in /tmp (one of 32 MB),
out of reach of `mlcase forget`. They now live in ``<case>/.mlcase/scratch``, held by their process; the next
command and every erasure delete a dead process's folder, and never a live one's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.scratch import HELD, scratch, scratch_root, sweep

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a hang guard for the failpoint wait
MLCASE = str(Path(sys.executable).parent / "mlcase")


@pytest.fixture()
def case_copy(runs, tmp_path, monkeypatch):
    """A copy of the mtcars case a real `mlcase run` registered (the session's folder stays as it is)."""
    run = runs.copy("mtcars-tiny", tmp_path / "case")
    assert run["code"] == 0
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):   # set by mlflow for a run in this process
        monkeypatch.delenv(k, raising=False)
    folder = run["folder"]
    shutil.rmtree(folder / ".mlcase" / "cache", ignore_errors=True)   # load from the registry, not the memo
    case = load_case(folder)
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    return case, folder, results.load(case, "registry")["candidate_version"], systmp


def _killed_at(point: str, args: list[str], folder: Path, systmp: Path) -> None:
    """Run `mlcase ARGS` in the case with TMPDIR=systmp until it reaches the failpoint, then SIGKILL it (the
    fixture took out the tracking URI MLflow set for an earlier run in this process)."""
    from tests.test_governance import run_until_failpoint

    run_until_failpoint(args, point, folder.parent, cwd=folder, env={"TMPDIR": str(systmp)})


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_score_killed_while_loading_leaves_the_model_copy_in_the_case_and_the_next_command_deletes_it(
        case_copy):
    case, folder, version, systmp = case_copy
    _killed_at("load-bundle:downloaded", ["score", "data.csv", "-o", "out.csv", "--version", str(version)],
               folder, systmp)
    assert _files(systmp) == []                      # nothing in the system's temporary folder (the model was)
    left = [p.name for p in _files(scratch_root(case))]
    assert "model.skops" in left and "bundle.json" in left, left
    proc = subprocess.run([MLCASE, "score", "data.csv", "-o", "out.csv", "--version", str(version)], cwd=folder,
                          env={**os.environ, "TMPDIR": str(systmp)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not scratch_root(case).exists()      # the dead copy went, and the empty area with it
    assert _files(systmp) == []


def test_a_killed_monitor_leaves_its_copy_of_the_log_only_in_the_case_and_the_next_command_deletes_it(case_copy):
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running

    case, folder, version, systmp = case_copy

    data = pd.read_csv(folder / "data.csv")
    features = [c for c in data.columns if c != "mpg"]
    with running(create_app(ServeSettings(case=case, version=version, warmup=0))) as url:
        for i in range(3):
            recs = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                    for r in data[features].iloc[i * 10:(i + 1) * 10].to_dict(orient="records")]
            r = httpx.post(f"{url}/predict", json=recs, timeout=30)
            assert r.status_code == 200, r.text
    _killed_at("monitor:loaded", ["monitor", "."], folder, systmp)
    assert _files(systmp) == []
    dead = [p for p in scratch_root(case).iterdir() if p.name.startswith("monitor-")]
    assert len(dead) == 1 and (dead[0] / HELD).is_file()

    # the next command deletes the dead copy, and never a live process's: this test holds one meanwhile
    with scratch(case, "live-") as mine:
        (mine / "copy").write_text("rows")
        proc = subprocess.run([MLCASE, "monitor", "."], cwd=folder, env={**os.environ, "TMPDIR": str(systmp)},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, 1), proc.stderr             # 1: alerts
        assert not dead[0].exists() and (mine / "copy").read_text() == "rows"
        assert sweep(case) == {"removed": 0, "live": 1}
    assert not scratch_root(case).exists()
    assert _files(systmp) == []
