"""The bake-off on a real Dask LocalCluster of 2 workers: the same champion as the local engine, the budget kept,
a worker killed mid-trial survived."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from mlcase.bakeoff import run_bakeoff
from mlcase.data import prepare
from mlcase.engine import Engine

from .test_bakeoff import make_case

FAMILIES = ["logistic", "hist_gbm", "lightgbm"]


@pytest.fixture
def own_dask_engine():
    """A cluster of its own for a test that kills a worker: the nanny restarts it, but on a loaded 2-core CI machine
    the new process once took more than 120 s to register (fresh-clone CI of stop 54), so a test that waited for it
    failed on Dask's time, not on the engine. Nothing after such a test then needs the killed worker back."""
    from mlcase.engine import DaskEngine

    eng = DaskEngine(workers=2)
    try:
        yield eng
    finally:
        eng.close()


def _case(tmp_path, default_df, name, n=1500, **spec):
    df = default_df.sample(n, random_state=3).reset_index(drop=True)
    case = make_case(tmp_path / name, df, "default", name=name, data={"id": "account_id"},
                     costs={"false_positive": 50, "false_negative": 400}, constraints={"review_capacity": 0.1},
                     baselines=["majority", "linear"], **{"candidates": FAMILIES, **spec})
    return case, prepare(case)


def _content(res) -> list[tuple]:
    return sorted((t["family"], t["number"], t["state"], t["source"], repr(t["params"]),
                   None if t["value"] is None else round(t["value"], 12)) for t in res.trials)


def test_champion_and_trials_match_the_local_engine(tmp_path, default_df, dask_engine):
    """Same seed and max_trials: the same trials (in another order), leaderboard and champion."""
    runs = {}
    for name, eng in (("local", Engine()), ("dask", dask_engine)):
        case, ds = _case(tmp_path, default_df, name)
        runs[name] = run_bakeoff(case, ds, budget=600, quiet=True, max_trials=2, engine=eng)
    local, dask = runs["local"], runs["dask"]
    assert dask.engine["kind"] == "dask" and dask.engine["workers"] == 2
    assert dask.engine["study"] and os.path.getsize(dask.engine["study"]) > 0   # the Optuna journal file
    assert _content(dask) == _content(local)
    assert len(local.trials) == 2 * len(FAMILIES)
    assert dask.candidate == local.candidate
    board = {r["name"]: r["cv_mean"] for r in local.leaderboard}
    assert {r["name"]: r["cv_mean"] for r in dask.leaderboard} == pytest.approx(board, rel=1e-12)
    X = local.input_example
    np.testing.assert_allclose(dask.candidate_bundle.scores(X), local.candidate_bundle.scores(X), rtol=1e-10)
    # side by side on the two workers: with no clock to close the box, every family's trials are submitted
    assert _overlapping(dask), "no two families' trials ran at the same time"


def _overlapping(res) -> list[tuple]:
    """Pairs of trials of different families whose (start, end) spans overlap, in order of start."""
    spans = sorted((t["elapsed_s"] - t["duration_s"], t["elapsed_s"], t["family"]) for t in res.trials)
    return [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1] and a[2] != b[2]]


@pytest.mark.slow
def test_the_budget_holds_with_families_running_side_by_side(tmp_path, default_df, dask_engine):
    """A 10 s box on the two workers scores the simplest family and a boosted one. How many families it scores,
    and whether their trials overlap, depend on the machine: a loaded CI core left xgboost unscored, and in
    stop 45's fresh-clone run (36 min, against 24 to 26 for the same suite before) the few trials that fitted
    ran one after another. The test above asserts the overlap with no clock; how long the box took against the
    budget is measured by benchmarks/timing_guarantees.py (the suite asserts on no clock)."""
    budget = 10.0
    case, ds = _case(tmp_path, default_df, "budget", candidates=[*FAMILIES, "xgboost"])
    res = run_bakeoff(case, ds, budget=budget, quiet=True, engine=dask_engine)
    scored = {r["name"] for r in res.leaderboard if r["kind"] == "candidate" and r["cv_mean"] is not None}
    assert "logistic" in scored and len(scored & {"hist_gbm", "lightgbm", "xgboost"}) >= 1, scored
    assert res.engine["kind"] == "dask" and not res.interrupted


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_only_that_trial(tmp_path, default_df, own_dask_engine):
    case, ds = _case(tmp_path, default_df, "kill", n=3000, candidates=["logistic", "lightgbm", "random_forest"])
    client = own_dask_engine.client
    killed: list[str] = []

    def killer():
        # the worker to kill fits a random forest fold and, for the first 20 s, also holds the only copy of the
        # shipped rows (Dask's memory manager keeps one): the other worker's folds then lose their input and run again
        start = time.monotonic()
        while time.monotonic() < start + 60 and not killed:
            holders = {w for k, ws in client.who_has().items() if str(k).startswith("FoldData") for w in ws}
            for worker, keys in client.processing().items():
                if worker not in holders and time.monotonic() < start + 20:
                    continue
                if any(str(k).startswith("fold-random_forest") for k in keys):
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = run_bakeoff(case, ds, budget=600, quiet=True, max_trials=3, engine=own_dask_engine)
    thread.join(timeout=5)
    assert killed, "no random forest fold was seen running"
    lost = [t for t in res.trials if t["state"] == "FAILED"]
    assert len(lost) == 1 and "died" in lost[0]["note"]
    assert res.engine["workers_lost"] == 1
    assert sum(t["state"] == "COMPLETE" for t in res.trials) == len(res.trials) - 1
    scored = {r["name"] for r in res.leaderboard if r["kind"] == "candidate" and r["cv_mean"] is not None}
    assert {"logistic", "lightgbm", "random_forest"} <= scored
    assert res.candidate is not None


def _rows(data):
    return len(data)


@pytest.mark.slow
def test_a_task_whose_scattered_input_died_with_a_worker_is_seen_as_lost_input_not_as_a_failure(own_dask_engine):
    """Dask's memory manager keeps one replica of scattered rows, so a worker that dies can take the rows that a
    fold on the other worker waits for: the scheduler cancels it ("lost dependencies"). The engine hands it back as
    done, not as an exception out of the wait, and says it lost its input (the bake-off then ships the rows again
    and reruns that fold; ``test_a_worker_killed_mid_trial_loses_only_that_trial`` runs the whole path)."""
    from mlcase.engine import is_killed_worker, is_lost_input

    client = own_dask_engine.client
    client.wait_for_workers(2, timeout=120)
    holder, other = sorted(client.scheduler_info()["workers"])[:2]
    rows = client.scatter(np.arange(1000), workers=[holder], hash=False)
    busy = client.submit(time.sleep, 3, workers=[other], pure=False)   # the other worker's only thread is busy
    waiting = client.submit(_rows, rows, workers=[other], pure=False)   # so this waits for it, needing the rows
    os.kill(client.run(os.getpid, workers=[holder])[holder], signal.SIGKILL)
    deadline = time.monotonic() + 60
    done: list = []
    while not done and time.monotonic() < deadline:
        done = own_dask_engine.wait_any([waiting], timeout=1)
    busy.result(timeout=60)
    assert done == [waiting]
    assert rows.cancelled()      # the client knows the rows are gone, so the bake-off sends them again
    late = client.submit(_rows, rows, pure=False)
    assert own_dask_engine.wait_any([late], timeout=30) == [late]
    for fut in (waiting, late):
        with pytest.raises(BaseException) as info:
            fut.result()
        assert is_lost_input(info.value) and is_killed_worker(info.value), info.value
    assert not is_lost_input(ValueError("lost dependencies"))
