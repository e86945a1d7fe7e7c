"""An acknowledged prediction is never lost: SIGKILL the server under load, every 200 is in the log."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_server import wait_ready
from tests.serving_case import LoadClients, free_port, make_case, records

pytestmark = pytest.mark.slow
HANG_GUARD_S = 600  # not a performance claim: a server that stops answering fails the test instead of hanging
REPO = Path(__file__).resolve().parents[2]
SERVER = """
import sys
import uvicorn
from mlcase.case import load_case
from mlcase.data import prepare
from mlcase.serve.app import ServeSettings, create_app
from tests.serving_case import bundle
case = load_case(sys.argv[1])
app = create_app(ServeSettings(case=case, bundles={"model": bundle(prepare(case))}, registry=False))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def test_sigkill_under_load_loses_no_acknowledged_prediction(tmp_path):
    case, ds = make_case(tmp_path / "churn", n=1500)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLCASE_API_KEY"}
    # a separate server process (so it can be killed) serving a freshly fitted LightGBM pipeline;
    # tests/e2e/test_server.py runs the same app through `mlcase serve` on a registered champion
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(case.root), str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    load = LoadClients(port, records(ds, n=50))
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        load.start()
        # load until 600 predictions are acknowledged, however long that takes on this machine
        # (the rate is measured by benchmarks/timing_guarantees.py); the deadline only guards a hang
        deadline = time.monotonic() + HANG_GUARD_S
        while load.n_acked() < 600 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-load, no shutdown hook runs
        proc.wait(timeout=10)
        time.sleep(0.3)
        load.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with load.lock:
        answered = list(load.acked)
    assert len(answered) >= 600
    assert load.failures, "the kill should have cut requests in flight"
    con = sqlite3.connect(case.root / "predictions.db")
    logged = {r[0] for r in con.execute("SELECT request_id FROM predictions")}
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
