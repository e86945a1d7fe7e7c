"""Noise gets no model: the credit table with its target shuffled ends NO_GO with the model-free reason.

The issue's case: review 100, a missed bad loan 1,500, capacity 30%. Flagging 30% of applications at
random already saves money over reviewing none, so a model that is only a random reviewer must not
take the credit for it (``NO_GO``: a process decision, no model needed). With a review at 500 and a
missed bad loan at 1,000, random review loses money, and the reason says that it does not pay either.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.data import prepare

from .tables import BY_ID

pytestmark = pytest.mark.slow

PAYS = {"true_positive": 100, "false_positive": 100, "false_negative": 1500, "true_negative": 0}
DOES_NOT_PAY = {"true_positive": 500, "false_positive": 500, "false_negative": 1000, "true_negative": 0}


def shuffled_run(folder, store, costs: dict) -> tuple[dict, dict]:
    table = BY_ID["credit-random"]
    frame = table.frame()
    frame["Status"] = np.random.default_rng(2024).permutation(frame["Status"].to_numpy())
    table.write(folder, frame=frame, costs=costs)
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet"])
    assert code == 0, out.getvalue()
    case = load_case(folder)
    return json.loads(out.getvalue()), results.load(case, "evaluation"), case


def test_shuffled_target_where_random_review_pays_is_a_process_decision(tmp_path, empty_store):
    summary, ev, case = shuffled_run(tmp_path / "pays", empty_store, PAYS)
    assert summary["decision"] == "NO_GO"
    reasons = summary["reasons"]
    assert reasons[0].startswith("no model beats flagging 30% of cases at random")
    assert ev["best_model_free"] == "random_review"
    # every learned model, baseline or candidate, is no better than the random reviewer
    assert all(d["ci_low"] <= 0 for d in ev["lift_over_model_free"].values())
    # the random reviewer's saving over reviewing nobody is real, and the reasons put it on the process
    fv = ev["floor_vs_never"]
    assert fv["policy"] == "random_review" and fv["ci_low"] > 0
    line = next(r for r in reasons if "over never acting" in r)
    assert line.startswith("flagging 30% of cases at random alone saves") and "no model needed" in line
    assert f"${fv['estimate']:.3f}" in line
    # by hand: the expected cost of flagging 30% at random is 0.3 x (review) + 0.7 x (missed bad loans)
    bad = (prepare(case).y_test == 1)
    never = 1500 * bad.mean()
    random = 0.3 * 100 + 0.7 * never
    assert ev["model_free"]["do_nothing"]["cost_per_decision"] == pytest.approx(never)
    assert ev["model_free"]["random_review"]["cost_per_decision"] == pytest.approx(random)
    assert fv["estimate"] == pytest.approx(never - random)


def test_shuffled_target_where_random_review_does_not_pay_keeps_the_process(tmp_path, empty_store):
    summary, ev, _ = shuffled_run(tmp_path / "loses", empty_store, DOES_NOT_PAY)
    assert summary["decision"] == "NO_GO"
    reasons = summary["reasons"]
    assert reasons[0].startswith("no model beats never acting, flagging nobody")
    assert ev["best_model_free"] == "do_nothing"
    assert all(d["ci_low"] <= 0 for d in ev["lift_over_model_free"].values())
    fv = ev["floor_vs_never"]
    assert fv["policy"] == "random_review" and fv["estimate"] < 0
    assert any(r.startswith("flagging 30% of cases at random does not pay either") for r in reasons)
    # no champion after NO_GO: `mlcase explain` explains what `mlcase serve` serves (the baseline) and says so;
    # asking for the champion names the aliases there are instead of "run `mlcase run` first"
    folder = tmp_path / "loses"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["explain", str(folder), "--row", "3", "--json"]) == 0
    doc = json.loads(out.getvalue())
    assert doc["model"] == "linear" and "explaining the 'baseline'" in doc["note"]
    assert len(doc["rows"]) == 1 and doc["rows"][0]["row"] == "3"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["explain", str(folder), "--row", "3", "--alias", "champion"]) != 0
    line = err.getvalue().strip()
    assert "no registered model alias 'champion'" in line and "the case's aliases are baseline (version 2), candidate (version 1)" in line
    assert "no champion is set until a decision is GO" in line and "\n" not in line
    # the baseline served for want of a champion, canaried on itself, started no canary and said so only in
    # /ready's notes; the start now says it. A version never registered names the aliases, and no flag serve lacks
    import subprocess
    import sys
    from pathlib import Path

    from tests.e2e.test_server import wait_ready
    from tests.serving_case import free_port

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port),
                             "--canary", "2:50%"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        said = proc.communicate(timeout=60)[1]
    assert ready["release"]["canary"] is None and ready["serving"] == "baseline", ready
    assert ("mlcase: note: the canary version 2 is the baseline served to every unit: no canary is served; canary "
            "another version") in said, said
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["serve", str(folder), "--port", str(free_port()), "--canary", "3:50%"]) == 2
    line = err.getvalue().strip()
    assert "no registered model version 3" in line and "--alias" not in line and "\n" not in line, line
    # promoting the candidate the NO_GO judged is a hand's override: it moves (the gates are readiness and a
    # canary's verdict), and it now says, and records, that it goes against the case's decision
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["promote", str(folder), "--version", "1"]) == 0
    said = " ".join((out.getvalue() + err.getvalue()).split())
    assert ("note: promoted against the decision: the case's last decision is NO_GO for version 1 (no model beats "
            "never acting, flagging nobody") in said, said
    from mlcase import tracking

    move = next(h for h in tracking.release_history(load_case(folder), evidence=True) if h["action"] == "promote")
    assert move["to_version"] == 1 and move["evidence"]["against_decision"].startswith(
        "the case's last decision is NO_GO for version 1")
