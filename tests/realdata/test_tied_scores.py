"""Scores in a few tied values, with the review capacity inside the top block.

A table of one or two coded features gives every model a handful of distinct scores. Where the
likeliest block holds more rows than the review capacity, a threshold between distinct scores
flags nobody: Stat2Data::Putts1 (587 golf putts, the putt's length in feet, 3 to 7) and
stevedata::fakeLogit (10,000 rows, one feature of five values) went NO_GO, "no model beats
flagging 10% of cases at random", with models that flagged 0% of the test rows against the 10%
planned. A review queue takes a share of many equal cases; the threshold now does too: it flags
the rows above the block and a drawn share of the block (``tie_share``), in the evaluation (the
exact share), in batch scoring and in the server (a draw per request), and replay says a drawn
decision is a draw, not a change.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcase import results, tracking
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.tasks import RowCosts, binary_flags, capacity_cut, choose_cut, choose_threshold
from tests.e2e.test_server import wait_ready
from tests.serving_case import free_port

from .tables import Table

KEY = "tied-key"
COSTS = {"true_positive": 1, "false_positive": 1, "false_negative": 5, "true_negative": 0}


def test_a_capacity_inside_a_tied_block_flags_its_share_of_the_block():
    # 30 rows tied at 0.9 (2 of 3 positive), 70 at 0.2; capacity 10%: the old cut flagged nobody
    p = np.r_[np.full(30, 0.9), np.full(70, 0.2)]
    y = np.r_[np.tile([1, 1, 0], 10), np.zeros(70, dtype=int)]
    n = len(y)
    costs = RowCosts(np.ones(n), np.ones(n), np.full(n, 5.0), np.zeros(n))
    t_old, cost_old = choose_threshold(y, p, costs, 0.1)
    assert binary_flags(p, t_old).sum() == 0 and cost_old == pytest.approx(100 / n)
    t, share, cost = choose_cut(y, p, costs, 0.1)
    assert t == 0.9 and share == pytest.approx(10 / 30)
    # the block's expected cost: 10 of its 30 rows flagged, 2/3 of them positive (each saves 5 - 1),
    # 1/3 negative (each costs 1 more)
    assert cost == pytest.approx((100 - 10 * (2 / 3 * 4 - 1 / 3 * 1)) / n)
    flags = binary_flags(p, t, share)
    assert flags.sum() == 10 and flags[30:].sum() == 0
    # draws flag about the share (a server's one request at a time); exact without them
    draws = np.random.default_rng(1).random(n)
    assert abs(int(binary_flags(p, t, share, draws)[:30].sum()) - 10) <= 8
    assert capacity_cut(p, 0.1) == (0.9, pytest.approx(1 / 3))
    # without ties the cut is the old one
    q = np.linspace(0.99, 0.01, n)
    assert choose_cut(y, q, costs, 0.1)[:2] == (choose_threshold(y, q, costs, 0.1)[0], None)


PUTTS = Table("putts-random", "Stat2Data", "Putts1", "binary", "Made", {"method": "stratified", "seed": 42},
              {"decision": "coach a putt", "baselines": ["majority", "linear"], "candidates": ["lightgbm"],
               "costs": COSTS, "constraints": {"review_capacity": 0.1}, "budget": "8s"},
              note="587 putts; Length 3 to 7 feet, the only feature")
FAKE = Table("fakelogit-random", "stevedata", "fakeLogit", "binary", "y", {"method": "stratified", "seed": 42},
             {"decision": "act on a row", "baselines": ["majority", "linear"], "candidates": ["logistic"],
              "costs": COSTS, "constraints": {"review_capacity": 0.1}, "budget": "8s"},
             note="10,000 rows; x in 0..4 (five values), y drawn from a logit of x")


def _run(table: Table, folder: Path, store: Path) -> tuple[dict, dict]:
    table.write(folder)
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    return json.loads(out.getvalue()), results.load(load_case(folder), "evaluation")


@pytest.mark.slow
def test_tied_scores_use_the_review_capacity_in_evaluation_serving_and_replay(tmp_path, empty_store):
    folder = tmp_path / "putts"
    summary, ev = _run(PUTTS, folder, empty_store)
    cand = ev["champion_candidate"]
    # the test rows are flagged at the capacity (was 0%), and every model beats random review on them
    check = ev["capacity_check"]
    assert 0.08 <= check["test_flag_rate"] <= 0.1 and not check["test_under_plan"]
    assert not any("flags 0% of test rows" in r for r in summary["reasons"])
    assert not any("saves -$" in r for r in summary["reasons"]), summary["reasons"]

    assert 0 < ev["tie_shares"][cand] < 1
    card = (folder / "model_card.md").read_text()
    assert f"{cand} " in card and "of the rows scored at it, drawn at random" in card
    case = load_case(folder)
    version = results.load(case, "registry")["candidate_version"]
    bundle = tracking.load_bundle(case, version=version)
    assert bundle.name == cand and bundle.tie_share is not None and 0 < bundle.tie_share < 1
    lengths = pd.DataFrame({"Length": [3, 4, 5, 6, 7]})
    at_cut = np.abs(bundle.scores(lengths) - bundle.threshold) <= 1e-9
    assert at_cut.sum() == 1
    top = int(lengths["Length"][at_cut].iloc[0])

    # the server draws per request: the share of the tied block's requests flagged is the bundle's
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port),
                             "--version", str(version)], env={**env, "MLCASE_API_KEY": KEY},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    n = 400
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, key=KEY)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=30) as client:
            r = client.post("/predict", json=[{"Length": top}] * n)
            assert r.status_code == 200, r.text
            answers = r.json()["predictions"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    flagged = sum(a["decision"] == "flag" for a in answers)
    sd = (n * bundle.tie_share * (1 - bundle.tie_share)) ** 0.5
    assert abs(flagged - n * bundle.tie_share) <= 4 * sd, (flagged, bundle.tie_share)
    assert all(a["score"] == pytest.approx(bundle.threshold, abs=1e-9) for a in answers)

    # replay: every drawn decision is the model's, whichever way the draw went this time
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["replay", str(folder), "--last", str(n), "--json", "--log", str(folder / "predictions.db")])
    replay = json.loads(out.getvalue())
    assert code == 0 and replay["replayed"] == n and replay["reproduced"] == n, replay


@pytest.mark.slow
def test_a_logit_of_a_five_valued_feature_beats_random_review(tmp_path, empty_store):
    summary, ev = _run(FAKE, tmp_path / "fake", empty_store)
    # before: NO_GO, both models flagged 0% of the test rows and lost $0.150 a decision to random review
    assert summary["decision"] in ("GO", "USE_BASELINE"), summary["reasons"]
    assert all(0.08 <= ev["flag_rate"][m] <= 0.1 for m in ("linear", ev["champion_candidate"]))
    over = next(r for r in summary["reasons"] if "over flagging 10% of cases at random" in r)
    assert "CI $" in over and "CI -$" not in over, over

    # the conformal sets of five tied scores hold all of a tie or none: above the band, the note says why
    conf = results.load(load_case(tmp_path / "fake"), "conformal")
    assert conf["coverage"] >= conf["coverage_band"][0]
    if conf["coverage"] > conf["coverage_band"][1]:
        assert "scores take 5 distinct values" in conf["coverage_note"], conf["coverage_note"]
    # the slice hybrids "random review in this slice, the candidate elsewhere" would spend the capacity twice
    analysis = results.load(load_case(tmp_path / "fake"), "analysis")
    over = [e for e in analysis["slices"]["money"] if e.get("loses_money")]
    assert over and all(e["hybrid_over_capacity"] and e["hybrid_flag_rate"] > 0.105 for e in over)
    assert analysis["slices"]["hybrid"] is None
    assert not any("consider the hybrid" in r for r in summary["reasons"])
    assert any("over the review capacity of 10%, so it is no option" in r for r in summary["reasons"])


def test_a_hybrid_is_held_to_the_review_capacity():
    from mlcase.analysis.slices import CANDIDATE, FLOOR, Part

    n = 100
    flags = {CANDIDATE: np.r_[np.ones(10), np.zeros(90)], FLOOR: np.full(n, 0.1)}
    part = Part(pd.DataFrame({"x": np.arange(n)}), {CANDIDATE: np.zeros(n), FLOOR: np.zeros(n)},
                flags=flags, capacity=0.1)
    slice_ = np.arange(n) >= 50                       # random review on half the rows: 10 + 5 flags
    assert part.hybrid_flag_rate(slice_, FLOOR) == pytest.approx(0.15) and part.over_capacity(slice_, FLOOR)
    first = np.arange(n) < 50                         # the candidate's own flags traded for 5: within capacity
    assert part.hybrid_flag_rate(first, FLOOR) == pytest.approx(0.05) and not part.over_capacity(first, FLOOR)
    assert not Part(part.frame, part.costs).over_capacity(slice_, FLOOR)   # no flags (regression): no limit


def test_a_hybrid_over_the_capacity_on_the_validation_rows_is_said_with_their_rate(tmp_path):
    """modeldata::two_class_dat: a slice hybrid over the capacity on the validation rows (where it is chosen) but not
    on the test rows read "would flag 5.82% of cases, over the review capacity of 10%": the test rows' rate, under it.
    The reason now names the part over the capacity with its own rate."""
    from mlcase.analysis.core import reasons
    from mlcase.analysis.slices import BASELINE, CANDIDATE, FLOOR, Part, find_weak_slices
    from mlcase.case import case_from_spec

    def part(n: int, cand_flags: int, seed: int) -> Part:
        rng = np.random.default_rng(seed)
        x = np.tile(["a", "b", "c", "d"], n // 4)
        in_slice = x == "a"
        costs = {CANDIDATE: np.where(in_slice, 1.0, 0.0) + rng.normal(0, 0.1, n),
                 FLOOR: np.where(in_slice, 0.0, 1.0) + rng.normal(0, 0.1, n), BASELINE: np.ones(n)}
        flags = np.zeros(n)
        flags[np.flatnonzero(~in_slice)[:cand_flags]] = 1.0      # the candidate flags outside the slice only
        return Part(pd.DataFrame({"x": x}), costs, flags={CANDIDATE: flags, FLOOR: np.full(n, 0.1),
                                                          BASELINE: np.zeros(n)}, capacity=0.1)

    found = find_weak_slices(part(400, 40, 0), part(400, 40, 1), part(400, 20, 2), [BASELINE, FLOOR], n_boot=200)
    e = next(e for e in found["money"] if e["label"] == "x = a")
    assert e["loses_money"] and e["hybrid_over_capacity_on"] == ["validation"] and e["hybrid_over_capacity"]
    assert e["hybrid_flag_rate_valid"] == pytest.approx(0.125) and e["hybrid_flag_rate"] == pytest.approx(0.075)
    case = case_from_spec({"name": "t", "decision": "review", "task": "binary", "data": {"source": "d.csv",
                                                                                       "target": "y"}}, tmp_path)
    said = reasons({"slices": {**found, "money": [dict(e, tried=1)]}, "describe": {FLOOR: "random review"}},
                   {"capacity": 0.1}, case)["any"]
    assert any("would flag 12.5% of the validation rows, over the review capacity of 10%, so it is no option" in r
               for r in said), said


CREDIT_RULE = Table("credit-rule", "modeldata", "credit_data", "binary", "Status", {"method": "stratified", "seed": 1},
                    {"decision": "send a loan application to manual review", "data": {"positive": "bad"},
                     "costs": {"true_positive": 100, "false_positive": 100, "false_negative": 1500,
                               "true_negative": 0},
                     "constraints": {"review_capacity": 0.05},
                     "baselines": ["majority", {"rule": "Records = 'yes'"}], "candidates": ["lightgbm"]},
                    note="the expert's rule fires on 17% of applicants (a record of arrears), at a capacity of 5%")


@pytest.mark.slow
def test_a_rule_tier_over_the_capacity_flags_the_share_its_evaluation_counted(tmp_path, empty_store):
    """modeldata::credit_data with the expert's rule ``Records = 'yes'`` (17% of applicants, 55% of them bad) at a
    review capacity of 5%. The evaluation cut the rule baseline inside its block of flagged rows (a share of them
    flagged, its cost counted so), but the rule tier of the fallback chain flagged every row the rule fires on:
    while the model was down, 17% of applicants went to a review queue sized for 5%."""
    from mlcase.serve.fallback import Predictor, load_chain

    folder = tmp_path / "credit"
    _run(CREDIT_RULE, folder, empty_store)
    case = load_case(folder)
    # the value ceiling holds the rule to the capacity too: costed at its raw 17% it beat a perfect classifier held
    # to 5% ($293.88 against $352.32 a decision) and the run stopped before training
    ceiling = results.load(case, "ceiling")
    held = next(v for v in ceiling["current"].values() if v["description"] == "Records = 'yes'")
    assert not ceiling["stop"] and held["within_capacity"] is False
    assert held["fires"] > 0.15 and held["flag_rate"] == pytest.approx(0.05, abs=1e-3)   # whole reviews: 0.0500 - 1/n
    assert held["cost_per_decision"] > ceiling["perfect"]["cost_per_decision"]
    # the candidate served (as `mlcase serve --version`), the registered rule baseline its fallback
    chain = load_chain(case, version=results.load(case, "registry")["candidate_version"])
    rule = next(t for t in chain.tiers if t.kind == "rule")
    b = rule.bundle
    assert b is not None and b.rule == "Records = 'yes'"
    assert b.threshold == pytest.approx(b.model.rate_flagged_) and 0 < b.tie_share < 0.5
    df = CREDIT_RULE.frame()
    fires = df[df["Records"] == "yes"].head(400)
    records = json.loads(fires.drop(columns=["Status"]).to_json(orient="records"))
    predictor = Predictor([rule], chain.decider, timeout_s=None, workers=1)
    try:
        answers = predictor.predict(records)
    finally:
        predictor.close()
    n = len(answers)
    flagged = sum(a.decision == "flag" for a in answers)
    sd = (n * b.tie_share * (1 - b.tie_share)) ** 0.5
    assert all(a.tier == "rule" and a.score == 1.0 for a in answers)
    assert abs(flagged - n * b.tie_share) <= 4 * sd, (flagged, n, b.tie_share)
    # batch scoring gives each row its draw from its row number: the same file flags the same rows on every run (a
    # fallback tier's rows drew afresh per answer, so two runs of `mlcase score` differed on them)
    from mlcase.score import row_draws

    draws = row_draws(np.arange(n))
    runs = []
    for _ in range(2):
        predictor = Predictor([rule], chain.decider, timeout_s=None, workers=1)
        try:
            runs.append([a.decision for a in predictor.predict(records, draws=draws)])
        finally:
            predictor.close()
    assert runs[0] == runs[1] and runs[0] == ["flag" if d < b.tie_share else "auto" for d in draws]
    # the holdout arm's rule (serving.holdout_policy: rule) decides through the same cut
    held = sum(chain.decider.flag_of(rule, 1.0) for _ in range(n))
    assert abs(held - n * b.tie_share) <= 4 * sd and not chain.decider.flag_of(rule, 0.0)
    # a row the rule does not fire on is not flagged
    calm = json.loads(df[df["Records"] == "no"].head(50).drop(columns=["Status"]).to_json(orient="records"))
    assert not any(a.decision == "flag" for a in Predictor([rule], chain.decider, timeout_s=None,
                                                           workers=1).predict(calm))
