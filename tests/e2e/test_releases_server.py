"""Releases on a real server on 127.0.0.1: the canary arm, a promote under load, and auto-rollback.

A churn case (``modeldata::wa_churn``) with registered versions: v1 LightGBM (the champion),
v2 logistic (the canary, then promoted), v3 a logistic model without an imputer, which answers
most records but raises on a missing ``total_charges`` (a canary that fails on real traffic), and
v4 a model whose bundle lacks a feature its pipeline needs (it cannot answer anything). Nothing
asserts on wall-clock time: the tests wait for states (with generous time-outs) and count answers.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.test_server import running, wait_ready
from tests.serving_case import bundle, free_port, make_case, records, register
from tests.test_routing import band

pytestmark = pytest.mark.slow
SHARE = 0.3


def wait_for(fn, timeout: float = 120.0, every: float = 0.2):
    """Poll ``fn`` until it returns something truthy (the state, not the time, is what tests assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError("the state never came")


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    from mlcase.bundle import ModelBundle

    root = tmp_path_factory.mktemp("releases") / "churn"
    case, ds = make_case(root, n=1500, serving={"reload_every": 0.5},
                         extra={"releases": {"min_rows": 20, "guardrails": {"max_latency_p95_ms": 60000}}})
    v1 = register(case, bundle(ds, seed=1), aliases=["champion"])
    v2 = register(case, bundle(ds, family="logistic"))
    v3 = register(case, bundle(ds, family="logistic_no_imputer"))
    full = bundle(ds, family="logistic")
    broken = ModelBundle(model=full.model, name="broken", role="candidate", task="binary",
                         features=[f for f in ds.features if f != "tenure"], schema=ds.schema.to_dict(),
                         classes=ds.classes, positive=ds.positive, threshold=0.3)
    v4 = register(case, broken)
    ids = ds.frame.iloc[ds.split.test]["customer_id"].tolist()
    recs = [{**r, "customer_id": c} for r, c in zip(records(ds), ids, strict=True)]
    return {"case": case, "ds": ds, "versions": (v1, v2, v3, v4), "records": recs}


def serve_cli(root: Path, log: Path, *args):
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(root), "--port", str(port),
                             "--log", str(log), *args], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    return proc, url, wait_ready(url, proc)


class Load:
    """Single-record requests from a thread until stopped; every response kept."""

    def __init__(self, url: str, recs: list[dict]):
        self.url, self.recs, self.answers, self.failures = url, recs, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(base_url=self.url, timeout=60) as c:
            k = 0
            while not self._stop.is_set():
                r = c.post("/predict", json=self.recs[k % len(self.recs)])
                (self.answers.append(r.json()["predictions"][0]) if r.status_code == 200
                 else self.failures.append((r.status_code, r.text[:200])))
                k += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


def logged(log: Path) -> dict:
    with contextlib.closing(sqlite3.connect(log)) as con:
        return {r[0]: r[1:] for r in con.execute("SELECT request_id, arm, arm_version, model_version FROM predictions")}


def test_canary_share_is_binomial_stable_per_unit_and_a_promote_under_load_drops_nothing(churn, tmp_path):
    """`mlcase serve --canary v2:30%`: the share, the same units after a restart, then `mlcase promote` under load."""
    from mlcase import tracking
    from mlcase.cli import main
    from mlcase.serve.app import ServeSettings, create_app

    case, (v1, v2, _, _) = churn["case"], churn["versions"]
    recs, log = churn["records"], tmp_path / "first.db"
    proc, url, ready = serve_cli(case.root, log, "--canary", f"{v2}:{SHARE:.0%}")
    try:
        assert ready["routing"]["canary"] == SHARE and ready["release"]["canary"] == {"version": v2, "share": SHARE}
        with httpx.Client(base_url=url, timeout=60) as c:
            first = c.post("/predict", json=recs).json()["predictions"]
        n = len(recs)
        arms = np.array([a["arm"] for a in first])
        lo, hi = band(n, SHARE)
        assert lo <= (arms == "canary").sum() <= hi
        assert {(a["arm"], a["model_version"]) for a in first} == {("canary", v2), ("model", v1)}
        assert tracking.aliases(case)["canary"] == v2  # the server put the canary in the registry

        # another process on the same case: the same units get the same arms
        with running(create_app(ServeSettings(case=case, canary=f"{v2}:{SHARE}", warmup=5,
                                              log_url=str(tmp_path / "second.db")))) as url2, \
                httpx.Client(base_url=url2, timeout=60) as c2:
            again = c2.post("/predict", json=recs[::-1]).json()["predictions"][::-1]
        assert [a["arm"] for a in again] == arms.tolist()

        # the split changes without a restart; widening only moves units into the canary
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.put("/routing", json={"canary": 0.5}).json()["canary"] == 0.5
            wider = np.array([a["arm"] for a in c.post("/predict", json=recs).json()["predictions"]])
            assert c.put("/routing", json={"canary": SHARE}).status_code == 200
        assert (wider[arms == "canary"] == "canary").all()
        lo, hi = band(n, 0.5)
        assert lo <= (wider == "canary").sum() <= hi

        # a promote while requests keep coming: every request answered and logged, the switch seen
        with Load(url, recs) as load:
            wait_for(lambda: len(load.answers) >= 50)
            assert main(["promote", str(case.root), "--version", str(v2), "--why", "canary looked fine",
                         "--log", str(log), "--force"]) == 0
            wait_for(lambda: httpx.get(f"{url}/release", timeout=10).json()["champion_version"] == v2)
            seen = len(load.answers)
            wait_for(lambda: len(load.answers) >= seen + 50)
        assert load.failures == []
        versions = [a["model_version"] for a in load.answers]
        assert versions[0] == v1 or load.answers[0]["arm"] == "canary"
        assert versions[-1] == v2 and {a["arm"] for a in load.answers[-40:]} == {"model"}
        rows = logged(log)
        assert all(a["request_id"] in rows for a in first + load.answers)
        assert len(rows) == 2 * len(first) + len(load.answers)
        release = httpx.get(f"{url}/release", timeout=10).json()
        assert release["canary"] is None and release["previous_version"] == v1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    history = tracking.release_history(case)
    promote = next(h for h in history if h["action"] == "promote")
    assert (promote["from_version"], promote["to_version"], promote["why"]) == (v1, v2, "canary looked fine")
    assert "canary" not in tracking.aliases(case) and tracking.aliases(case)["champion"] == v2
    assert {h["action"] for h in history} >= {"canary_start", "promote", "canary_end"}


def test_a_failing_canary_and_a_failing_champion_are_rolled_back_by_the_server(churn, tmp_path):
    """auto_rollback: the canary that raises on real traffic ends; a promoted version that fails is rolled back;
    a version that cannot answer its warm-up is never switched in. No request fails meanwhile."""
    from mlcase import tracking
    from mlcase.case import load_case
    from mlcase.cli import main
    from mlcase.serve.app import ServeSettings, create_app

    case, (_, v2, v3, v4) = load_case(churn["case"].root), churn["versions"]
    case.spec.serving.auto_rollback = True
    assert tracking.aliases(case)["champion"] == v2  # after the promote of the test above
    missing = [{**r, "total_charges": None} for r in churn["records"]]  # v3 raises on these
    log = tmp_path / "auto.db"
    app = create_app(ServeSettings(case=case, canary=f"{v3}:50%", warmup=5, log_url=str(log)))
    with running(app) as url, Load(url, missing) as load:
        # 1. the failing canary: its records fall back to the champion until the guard ends it
        ended = wait_for(lambda: httpx.get(f"{url}/release", timeout=10).json()["canary"] is None)
        assert ended
        event = wait_for(lambda: next((h for h in tracking.release_history(case, evidence=True)
                                       if h["action"] == "auto_rollback" and h["evidence"]), None))
        assert (event["alias"], event["from_version"], event["to_version"]) == ("canary", v3, None)
        assert "error share" in event["why"] and event["who"].startswith("mlcase serve on ")
        assert event["evidence"]["guard"]["records"] >= 20
        assert "canary" not in tracking.aliases(case)
        r = httpx.put(f"{url}/routing", json={"canary": 0.2}, timeout=10)
        assert r.status_code == 409 and "no canary version is loaded" in r.json()["message"]
        canary_answers = [a for a in load.answers if a["arm"] == "canary"]
        # the failing canary (v3) never answered its arm: the champion did, or, when a loaded machine made the
        # champion too slow too (4 x latency_p95_ms), the chain's next tier; both are fallbacks
        assert canary_answers and all(a["fallback"] and a["model_version"] != v3 for a in canary_answers)
        assert any(a["tier"] == "champion" for a in canary_answers)

        # 2. a failing version promoted (past the rollout gate, which says rollback): the server switches,
        #    sees it fail, switches back and moves the alias back
        assert main(["promote", str(case.root), "--version", str(v3), "--log", str(log)]) == 2  # refused
        assert main(["promote", str(case.root), "--version", str(v3), "--log", str(log), "--force"]) == 0
        wait_for(lambda: any(h["action"] == "auto_rollback" and h["alias"] == "champion"
                             for h in tracking.release_history(case)))
        assert tracking.aliases(case)["champion"] == v2
        back = wait_for(lambda: (lambda r: r if r["champion_version"] == v2 else None)(
            httpx.get(f"{url}/release", timeout=10).json()))
        assert str(v3) in back["refused"]

        # 3. a version that cannot answer its warm-up is never switched in
        assert main(["promote", str(case.root), "--version", str(v4), "--force", "--log", str(log)]) == 0
        wait_for(lambda: str(v4) in httpx.get(f"{url}/release", timeout=10).json()["refused"])
        wait_for(lambda: tracking.aliases(case)["champion"] == v2)
        seen = len(load.answers)
        wait_for(lambda: len(load.answers) >= seen + 20)
    assert load.failures == []
    assert {a["model_version"] for a in load.answers[-10:]} == {v2}
    assert v4 not in {a["model_version"] for a in load.answers}
    rows = logged(log)
    assert len(rows) == len(load.answers) and all(a["request_id"] in rows for a in load.answers)
    ver = {v["version"]: v["tags"] for v in tracking.versions(case)}
    assert ver[v3]["mlcase.was_champion"] == "false" and "mlcase.rolled_back" in ver[v3]
    actions = [(h["action"], h["alias"], h["to_version"]) for h in tracking.release_history(case)]
    assert ("auto_rollback", "champion", v2) in actions and ("promote", "champion", v4) in actions
