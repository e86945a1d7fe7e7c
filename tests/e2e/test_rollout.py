"""Rollout verdicts on simulated labels, promote/rollback with their record, and replay, on a real server.

A simulated deployment with a known truth (tests/label_sim.py): ``P(bad) = sigmoid(-1.5 + 1.5 x0 - x1)``;
a flag costs 10, a missed bad outcome 100. Both versions are the same calibrated logistic model; the
*good* one flags at 0.1 (the cost-optimal threshold: flag when 100 p > 10), the *poor* one at 0.9, so
the good one saves about 18 per decision. 2,000 units go through an in-thread uvicorn server with the
canary on half of them, and their true outcomes come back through POST /labels.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import httpx
import numpy as np
import pytest

from tests.e2e.test_server import running
from tests.label_sim import population, simulated_case
from tests.serving_case import register

pytestmark = pytest.mark.slow
N, MIN_UNITS = 2000, 300


@pytest.fixture(scope="module")
def prevented(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout") / "prevented"
    case, _, version = simulated_case(root, serving={"reload_every": 0}, releases={"min_units": MIN_UNITS})
    poor = register(case, version(0.9), aliases=["champion"])
    good = register(case, version(0.1))
    return {"case": case, "root": root, "poor": poor, "good": good, "live": population(N, 7)}


def deploy(env, champion: int, canary: int, log, labelled: int = N) -> list[dict]:
    """Serve ``canary`` on half of the units beside ``champion``; the first ``labelled`` outcomes come back."""
    from mlcase import tracking
    from mlcase.serve.app import ServeSettings, create_app

    case, live = env["case"], env["live"]
    if tracking.alias_version(case, "champion") != champion:
        tracking.set_alias(case, "champion", champion)
    app = create_app(ServeSettings(case=case, canary=f"{canary}:50%", warmup=5, log_url=str(log)))
    recs = live[["unit", "x0", "x1"]].to_dict(orient="records")
    out = []
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        for k in range(0, N, 500):
            r = c.post("/predict", json=recs[k:k + 500])
            assert r.status_code == 200, r.text
            out += r.json()["predictions"]
        y = dict(zip(live["unit"], live["y"], strict=True))
        labels = [{"request_id": a["request_id"], "label": "yes" if y[rec["unit"]] else "no"}
                  for a, rec in zip(out[:labelled], recs[:labelled], strict=True)]
        assert c.post("/labels", json=labels).json()["attached"] == labelled
    return out


def attach_rest(log, answers: list[dict], live, start: int) -> None:
    from mlcase.serve.predlog import attach_labels, open_backend

    y = dict(zip(live["unit"], live["y"], strict=True))
    units = live["unit"].tolist()
    backend = open_backend(str(log))
    try:
        attach_labels(backend, [{"request_id": a["request_id"], "label": "yes" if y[units[k]] else "no"}
                                for k, a in enumerate(answers) if k >= start], "api")
    finally:
        backend.close()


def status(root, log, capsys) -> tuple[int, dict]:
    from mlcase.cli import main

    code = main(["rollout", "status", str(root), "--log", str(log), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_better_canary_is_held_while_peeking_then_promoted(prevented, capsys):
    log = prevented["root"].parent / "better.db"  # the replay test reads it: not this test's own tmp_path
    answers = deploy(prevented, prevented["poor"], prevented["good"], log, labelled=300)
    arms = np.array([a["arm"] for a in answers])
    assert 800 < (arms == "canary").sum() < 1200
    # an early look: about 150 labelled units per arm, fewer than releases.min_units
    code, early = status(prevented["root"], log, capsys)
    assert (code, early["verdict"], early["peeking"]) == (1, "hold", True)
    assert any("fewer than the planned releases.min_units" in r for r in early["reasons"])
    assert any(n.startswith("peeking:") for n in early["notes"])
    attach_rest(log, answers, prevented["live"], 300)
    code, final = status(prevented["root"], log, capsys)
    assert (code, final["verdict"], final["peeking"]) == (0, "promote", False)
    cost = final["experiment"]["cost"]
    assert cost["high"] < 0 and cost["low"] < cost["diff"] < cost["high"]
    true_gap = _true_gap(prevented["live"], answers)
    assert cost["low"] <= true_gap <= cost["high"]  # the always-valid interval holds this deployment's truth
    assert final["experiment"]["srm_ok"] is True
    observed = final["experiment"]["analysis"]["srm"]["observed"]
    assert observed == {"champion": final["arms"]["champion"]["units"], "canary": final["arms"]["canary"]["units"]}
    # the period runs from the canary's first logged record to its last: every canary unit is in it
    assert observed["canary"] == (arms == "canary").sum() and 0 <= (arms == "model").sum() - observed["champion"] < 5
    g = {x["name"]: x for x in final["guardrails"]}
    assert g["error share"]["status"] == g["fallback share"]["status"] == "ok"
    assert g["input drift (max PSI)"]["status"] == "ok" and g["score drift (PSI)"]["status"] == "ok"
    est = final["arms"]["canary"]["estimated_cost"]
    real = final["arms"]["canary"]["realized_cost"]["value"]
    assert est["low"] - 2 <= real <= est["high"] + 2  # CBPE on calibrated scores agrees with what was realized
    prevented["better_log"] = log
    prevented["better_answers"] = answers


def _true_gap(live, answers) -> float:
    """The canary-minus-champion difference in expected cost per unit over this deployment's own units."""
    p = live["p"].to_numpy()
    expected = {0.1: np.where(p >= 0.1, 10, 100 * p), 0.9: np.where(p >= 0.9, 10, 100 * p)}
    canary = np.array([a["arm"] == "canary" for a in answers])
    return float(expected[0.1][canary].mean() - expected[0.9][~canary].mean())


def test_a_worse_canary_is_rolled_back_and_the_moves_are_recorded(prevented, tmp_path, capsys):
    from mlcase import tracking
    from mlcase.cli import main
    from mlcase.releases import ReleaseRefused, promote

    case, root, good, poor = prevented["case"], prevented["root"], prevented["good"], prevented["poor"]
    log = tmp_path / "worse.db"
    deploy(prevented, good, poor, log)
    code, out = status(root, log, capsys)
    assert (code, out["verdict"], out["canary_version"]) == (3, "rollback", poor)
    assert any("more than releases.cost_margin" in r for r in out["reasons"])
    assert out["experiment"]["cost"]["low"] > 0
    # the gate: promoting the worse canary is refused (its rollout says rollback), and so is a
    # promote below the readiness minimum; --force goes through and the record says so
    assert main(["promote", str(root), "--version", str(poor), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert "\n" not in err.strip() and "rollout status says rollback" in err and "--force" in err
    case.spec.releases.min_readiness = 7
    with pytest.raises(ReleaseRefused, match=r"readiness [\d.]+ is below releases.min_readiness 7"):
        promote(case, poor, log=str(log))
    moved = promote(case, poor, log=str(log), force=True, why="testing the way back")
    case.spec.releases.min_readiness = 0
    assert moved["forced"] and len(moved["overridden"]) == 2
    assert tracking.aliases(case)["champion"] == poor
    # and back: `mlcase rollback` returns to the version before
    assert main(["rollback", str(root), "--why", "the canary lost money", "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert (back["from_version"], back["to_version"]) == (poor, good)
    assert tracking.aliases(case)["champion"] == good
    assert main(["releases", str(root), "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [(e["action"], e["alias"], e["from_version"], e["to_version"]) for e in events[:3]] == [
        ("rollback", "champion", poor, good), ("canary_end", "canary", poor, None), ("promote", "champion", good, poor)]
    assert events[0]["why"] == "the canary lost money" and events[2]["forced"] is True
    assert all(e["who"] and e["when"] for e in events)


def test_replay_reproduces_1000_logged_decisions_and_names_a_tampered_model_file(prevented, capsys):
    from mlcase import tracking
    from mlcase.cli import main
    from mlcase.releases import replay_many

    case, root, log = prevented["case"], prevented["root"], prevented["better_log"]
    answers = prevented["better_answers"]
    replays = replay_many(case, [a["request_id"] for a in answers[:1000]], log=str(log))
    assert len(replays) == 1000 and all(r.reproduced for r in replays), [r.differences for r in replays][:3]
    by_id = {a["request_id"]: a for a in answers}
    for r in replays:
        a = by_id[r.request_id]
        assert (r.replayed["decision"], r.replayed["model_version"]) == (a["decision"], a["model_version"])
        assert abs(r.replayed["score"] - a["score"]) <= 1e-9
    assert {r.replayed["model_version"] for r in replays} == {prevented["poor"], prevented["good"]}

    canary = next(a for a in answers if a["arm"] == "canary")
    assert main(["replay", str(root), canary["request_id"], "--log", str(log), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)["results"][0]
    assert one["reproduced"] and one["replayed"]["threshold"] == 0.1
    assert {c["feature"] for c in one["explanation"]["contributions"]} == {"x0", "x1"}

    # tamper with the canary version's model file in the store: replay names the model file hash
    tags = next(v["tags"] for v in tracking.versions(case) if v["version"] == prevented["good"])
    folder = tags["mlcase.bundle_uri"].split("/", 3)[3]
    model = next(root.glob(f"mlartifacts/**/{folder}/model.skops"))
    saved = model.read_bytes()
    shutil.copy(model, model.with_suffix(".bak"))
    try:
        model.write_bytes(saved + b"\0")
        assert main(["replay", str(root), canary["request_id"], "--log", str(log)]) == 1
        err = capsys.readouterr().err
        assert "not reproduced: model file hash differs" in err
        con = sqlite3.connect(log)
        logged_hash = con.execute("SELECT model_sha256 FROM predictions WHERE request_id = ?",
                                  (canary["request_id"],)).fetchone()[0]
        assert f"logged {logged_hash[:12]}" in err
    finally:
        model.write_bytes(saved)
    assert main(["replay", str(root), canary["request_id"], "--log", str(log), "--no-explain"]) == 0
