"""Releases as a platform team runs them, on AER::HMDA (2,380 Boston mortgage applications, 12% denied).

One real ``mlcase run``; then a real ``mlcase serve --canary BASELINE:50%`` on 127.0.0.1 answers the test
rows from 8 threads and gets their true labels. Checked against numbers rebuilt by hand from the log:
the share routed to the canary at 20% and after ``PUT /routing`` widened it to 50% (binomial bands), which
version answered each row (the log and ``mlcase score --version``), the cost per arm and the always-valid
difference that ``mlcase rollout status`` reports; then the widening read as a sample ratio mismatch, the
bad ``--share`` values it took, and a version promoted again after its rollback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcase import tracking
from mlcase.case import load_case
from mlcase.data import prepare
from mlcase.errors import SpecError
from mlcase.releases import promote, rollback, rollout_status
from mlcase.releases.sequential import always_valid_diff
from tests.e2e.test_server import wait_ready
from tests.serving_case import free_port, records

from .tables import Table, said

pytestmark = pytest.mark.slow

COSTS = {"true_positive": 50, "false_positive": 50, "false_negative": 600, "true_negative": 0}
HMDA = Table("hmda-release", "AER", "HMDA", "binary", "deny", {"method": "stratified", "seed": 1},
             {"decision": "send a mortgage application to manual review", "data": {"positive": "yes"},
              "costs": COSTS, "constraints": {"review_capacity": 0.3},
              "baselines": ["majority", "linear"], "candidates": ["lightgbm"]},
             note="2,380 applications, 12% denied, numbers and yes/no categories")
SHARES = (0.2, 0.5)   # the canary starts at 20%; PUT /routing widens it to 50% after FIRST rows
FIRST = 200


@pytest.fixture(scope="module")
def hmda(tmp_path_factory, empty_store) -> Path:
    """The case as its run left it (each test copies it before moving an alias or logging)."""
    folder = HMDA.write(tmp_path_factory.mktemp("release") / "hmda")
    shutil.copy(empty_store, folder / "mlflow.db")
    code, text = said("run", str(folder), "--quiet", "--force")
    assert code == 0, text
    case = load_case(folder)
    if tracking.alias_version(case, "champion") is None:   # a 6 s bake-off on a busy machine may not reach GO
        promote(case, tracking.alias_version(case, "candidate"), why="the releases under test need a champion")
    return folder


def _copy(folder: Path, dest: Path):
    shutil.copytree(folder, dest)
    with contextlib.redirect_stderr(io.StringIO()):   # "this case was moved or copied": the store follows
        case = load_case(dest)
        tracking.client(case)
    return case


def _champion_and_other(case) -> tuple[int, int]:
    champ = tracking.alias_version(case, "champion")
    other = next(v["version"] for v in tracking.versions(case) if v["version"] != champ)
    return champ, other


@pytest.fixture(scope="module")
def canary(hmda, tmp_path_factory):
    """A real server with the other registered version as a canary on 20% of units, widened to 50% after 200 rows
    (PUT /routing), every test row answered (8 threads) and labelled."""
    folder = tmp_path_factory.mktemp("canary") / "hmda"
    case = _copy(hmda, folder)
    champ, other = _champion_and_other(case)
    ds = prepare(case)
    recs = records(ds, "test")
    truth = ds.rows("test")["deny"].astype(str).tolist()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port),
                             "--canary", f"{other}:{SHARES[0]:.0%}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda r: httpx.post(f"{url}/predict", json=r, timeout=60), recs[:FIRST]))
            r = httpx.put(f"{url}/routing", json={"canary": SHARES[1]})
            assert r.status_code == 200 and r.json()["canary"] == SHARES[1], r.text
            got += list(pool.map(lambda r: httpx.post(f"{url}/predict", json=r, timeout=60), recs[FIRST:]))
        assert [r.status_code for r in got] == [200] * len(recs)
        answers = [r.json()["predictions"][0] for r in got]
        r = httpx.post(f"{url}/labels", json=[{"request_id": a["request_id"], "label": y}
                                              for a, y in zip(answers, truth, strict=True)], timeout=60)
        assert r.status_code == 200 and r.json()["attached"] == len(recs), r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"folder": folder, "case": case, "champion": champ, "canary": other, "recs": recs, "truth": truth,
            "answers": answers}


def test_the_canary_gets_its_share_and_each_arm_answers_as_mlcase_score_with_its_version(canary, tmp_path):
    answers = canary["answers"]
    on_canary = [a["arm"] == "canary" for a in answers]
    assert {a["arm"] for a in answers} == {"model", "canary"}
    for part, share in zip((on_canary[:FIRST], on_canary[FIRST:]), SHARES, strict=True):
        k, n = sum(part), len(part)   # 200 rows at 20%: 40 expected (3.3 sd: 19); 276 at 50%: 138 (27)
        assert abs(k - n * share) <= 3.3 * np.sqrt(n * share * (1 - share)), (k, n, share)
    assert {a["model_version"] for a, c in zip(answers, on_canary, strict=True) if c} == {canary["canary"]}
    assert {a["model_version"] for a, c in zip(answers, on_canary, strict=True) if not c} == {canary["champion"]}
    log = pd.read_sql("SELECT request_id, arm, arm_version, model_version FROM predictions",
                      sqlite3.connect(canary["folder"] / "predictions.db")).set_index("request_id")
    logged = log.loc[[a["request_id"] for a in answers]]
    assert logged["arm"].tolist() == [a["arm"] for a in answers]
    assert logged["arm_version"].tolist() == [canary["canary"] if c else canary["champion"] for c in on_canary]
    rows = tmp_path / "rows.csv"
    pd.DataFrame(canary["recs"]).to_csv(rows, index=False)
    for version, mine in ((canary["champion"], False), (canary["canary"], True)):
        out = tmp_path / f"scored{version}.csv"
        code, text = said("score", str(canary["folder"]), str(rows), "-o", str(out), "--version", str(version),
                          "--quiet")
        assert code == 0, text
        scored = pd.read_csv(out)
        idx = [i for i, c in enumerate(on_canary) if c == mine]
        assert np.max(np.abs(scored["score"].to_numpy()[idx] - [answers[i]["score"] for i in idx])) <= 1e-12
        assert scored["decision"].iloc[idx].tolist() == [answers[i]["decision"] for i in idx]


def test_rollout_status_reports_the_costs_rebuilt_by_hand_from_the_log_and_labels(canary):
    status = rollout_status(canary["case"])
    con = sqlite3.connect(canary["folder"] / "predictions.db")
    log = pd.read_sql("SELECT p.ts, p.arm, p.decision, p.prediction, l.label FROM predictions p "
                      "JOIN labels l USING (request_id)", con)
    # the rollout began when the server started with its canary (its canary_start event), before the canary's own
    # first record: the champion's answers in between are the experiment's too; it ends at the canary's last record
    t0, t1 = log["ts"].min(), log.loc[log.arm == "canary", "ts"].max()
    log = log[(log.ts >= t0) & (log.ts <= t1)]
    y = (log["label"] == "yes").to_numpy()
    flag = np.where(log["decision"] == "flag", True, np.where(log["decision"] == "auto", False,
                                                             log["prediction"] == "yes"))
    cost = np.select([y & flag, ~y & flag, y & ~flag], [50, 50, 600], 0).astype(float)
    arm = log["arm"].to_numpy()
    for name, a in (("champion", "model"), ("canary", "canary")):
        realized = status.arms[name]["realized_cost"]
        assert realized["n"] == (arm == a).sum()
        assert realized["value"] == pytest.approx(cost[arm == a].mean(), rel=1e-12)
    want = always_valid_diff(cost[arm == "model"], cost[arm == "canary"], 0.05, 200)
    got = status.experiment["cost"]
    assert (got["diff"], got["low"], got["high"]) == pytest.approx((want["diff"], want["low"], want["high"]),
                                                                   rel=1e-9)
    # the split the sample ratio is checked against: each record at the share in force when it was routed
    first = {a["request_id"] for a in canary["answers"][:FIRST]}
    ids = pd.read_sql("SELECT request_id, ts, arm FROM predictions", con)
    ids = ids[(ids.ts >= t0) & (ids.ts <= t1) & ids.arm.isin(["model", "canary"])]
    planned = np.where(ids["request_id"].isin(first), SHARES[0], SHARES[1]).mean()
    assert status.experiment["planned_split"] == pytest.approx({"champion": 1 - planned, "canary": planned}, rel=1e-12)
    # at cost_margin 0 (a check for harm): a canary not shown to cost more is promoted with 200 labelled units per
    # arm (an upper bound below 0, a saving, was asked for before: no equal canary could show it)
    assert status.verdict == ("rollback" if want["low"] > 0 else "promote" if min(
        status.experiment["labelled_units"].values()) >= 200 else "hold")


@pytest.mark.parametrize("share", ["1.5", "-1", "0", "50", "nan"])
def test_a_share_that_is_no_canary_share_is_refused_in_one_line(canary, share):
    """``--share 1.5`` (or -1, 50 meaning 50%) was taken: the sample ratio check asked for a split of
    [-50, 150], failed inside the analysis and was dropped without a word but an error deep in --json (exit 1,
    'hold'); ``--share 0`` was read as no share and the arms were checked against 50/50."""
    code, text = said("rollout", "status", str(canary["folder"]), "--share", share)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "--share" in lines[0] and "not a canary share" in lines[0], text
    with pytest.raises(SpecError, match="share="):
        rollout_status(canary["case"], share=float(share))


def test_a_canary_widened_at_run_time_is_no_sample_ratio_mismatch(canary):
    """PUT /routing {"canary": 0.5} on a canary started at 20% was not in the release history: rollout status
    checked the arms against 20% and called the routing that did exactly what was asked a sample ratio mismatch
    (hold: 'find out why first'). The widening is recorded, and the history lists it."""
    status = rollout_status(canary["case"])
    srm = status.experiment["analysis"]["srm"]
    assert not srm["flagged"] and srm["p_value"] > 0.001 and status.experiment["srm_ok"] is True
    assert not any("sample ratio" in r for r in status.reasons)
    assert any("share changed during the period (20.0%, 50.0%)" in n for n in status.notes)
    events = tracking.release_history(canary["case"], evidence=True)
    widened = [e for e in events if e["action"] == "canary_share"]
    assert len(widened) == 1 and widened[0]["evidence"]["share"] == SHARES[1]
    assert widened[0]["to_version"] == canary["canary"] and "PUT /routing" in widened[0]["why"]


def test_the_planned_share_given_is_the_split_the_sample_ratio_is_checked_against(canary):
    status = rollout_status(canary["case"], share=0.25)
    srm = status.experiment["analysis"]["srm"]
    n = sum(srm["observed"].values())
    assert srm["expected"] == pytest.approx([0.75 * n, 0.25 * n]) and not srm["assumed_equal_split"]


def test_a_version_promoted_again_after_its_rollback_is_the_way_back_from_the_next(hmda, tmp_path, capsys):
    """HMDA: champion 1, promote 2, roll back (2 is tagged rolled back), promote 2 again, promote 1: the rollback
    went past 2 (still tagged rolled back while it was champion) and found no earlier champion at all. Promoting
    a rolled-back version says so and clears the tag; the rollback returns to it."""
    case = _copy(hmda, tmp_path / "hmda")
    champ, other = _champion_and_other(case)
    promote(case, other, why="try the baseline")
    assert rollback(case, why="worse on the review desk")["to_version"] == champ
    code, text = said("promote", str(case.root), "--version", str(other), "--why", "fixed upstream")
    assert code == 0 and f"version {other} had been rolled back (worse on the review desk)" in text, text
    tags = next(v["tags"] for v in tracking.versions(case) if v["version"] == other)
    assert "mlcase.rolled_back" not in tags
    assert tracking.release_history(case, limit=1, evidence=True)[0]["evidence"]["was_rolled_back"] == \
        "worse on the review desk"
    promote(case, champ, why="back to the model")
    back = rollback(case)
    assert (back["from_version"], back["to_version"]) == (champ, other)
    assert tracking.alias_version(case, "champion") == other
    events = json.loads(said("releases", str(case.root), "--json")[1])["events"]
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events[:5]] == [
        ("rollback", champ, other), ("promote", other, champ), ("promote", champ, other),
        ("rollback", other, champ), ("promote", champ, other)]


def test_a_rollback_to_a_version_rolled_back_before_makes_it_a_way_back_again(hmda, tmp_path):
    """``rollback --to N`` where N had been rolled back left N tagged while champion: after the next promote,
    the rollback skipped N and found no earlier champion (HMDA: 1 -> 2, back to 1, --to 2, promote 1, rollback)."""
    case = _copy(hmda, tmp_path / "hmda")
    champ, other = _champion_and_other(case)
    promote(case, other)
    rollback(case, why="first try failed")
    code, text = said("rollback", str(case.root), "--to", str(other), "--why", "the first try was fine after all")
    assert code == 0 and f"version {other} had been rolled back (first try failed)" in text, text
    assert "mlcase.rolled_back" not in next(v["tags"] for v in tracking.versions(case) if v["version"] == other)
    promote(case, champ)
    assert (rollback(case)["to_version"], tracking.alias_version(case, "champion")) == (other, other)


def test_promote_with_a_log_that_is_not_there_is_refused_and_nothing_moves(canary, tmp_path):
    """``promote --log typo.db`` read no canary from the missing file and promoted the canary version past its
    gate, whatever the log it was served with said; ``readiness --log typo.db`` scored without a log. A log named
    by hand must be there."""
    case = _copy(canary["folder"], tmp_path / "hmda")
    before = tracking.aliases(case)
    code, text = said("promote", str(case.root), "--version", str(canary["canary"]), "--log",
                      str(tmp_path / "typo.db"))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "no prediction log at" in lines[0] and "--log" in lines[0], text
    assert tracking.aliases(case) == before and not (tmp_path / "typo.db").exists()
    # readiness read the missing log as "no log yet" and scored the monitoring group lower, exit 0
    code, text = said("readiness", str(case.root), "--log", str(tmp_path / "typo.db"))
    assert code == 2 and "no prediction log at" in text and len(text.strip().splitlines()) == 1, text
    # the log it was served with is read as before: the promote goes through its gate
    out = promote(case, canary["canary"], log=str(case.root / "predictions.db"), force=True)
    assert out["rollout"]["canary_version"] == canary["canary"]


def test_a_canary_restarted_at_another_share_records_it_and_at_the_same_share_does_not(canary, tmp_path):
    """The canary alias was already set, so a restart at another share recorded nothing, and rollout status checked
    the records after it against the old share."""
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running

    case = _copy(canary["folder"], tmp_path / "hmda")
    shares = []
    for share in (SHARES[1], 0.3):   # the last recorded share (the widening), then another one
        settings = ServeSettings(case=case, canary=f"{canary['canary']}:{share}", warmup=5,
                                 log_url=str(tmp_path / f"log{share}.db"))
        with running(create_app(settings)) as url:
            assert httpx.get(f"{url}/routing", timeout=10).json()["canary"] == share
        shares.append([(e["evidence"] or {}).get("share") for e in tracking.release_history(case, evidence=True)
                       if e["action"] == "canary_share"])
    assert shares == [[SHARES[1]], [0.3, SHARES[1]]]
