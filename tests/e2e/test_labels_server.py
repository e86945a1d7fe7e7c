"""Labels in production, end to end: `mlcase serve` on 127.0.0.1 with a live holdout and an audit sample.

A simulated deployment (tests/label_sim.py) with a known truth: units have a known P(bad), a
logistic model flags at 0.5, 20% of units are held out (never act), 10% of the model's automatic
decisions are audited, and on the model's arm a flag *prevents* the bad outcome, so the delayed
outcome of every flagged unit reads "good". The queue goes out with `mlcase review export`, comes
back filled in with `mlcase review import`, the outcomes arrive through POST /labels, and
`monitor` must see through it: the naive precision is wrong, the holdout's interval holds the truth,
and the audit-weighted recall matches it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from tests.e2e.test_server import wait_ready
from tests.label_sim import population, simulated_case
from tests.serving_case import free_port, register

pytestmark = pytest.mark.slow
N = 3000
HOLDOUT, AUDIT = 0.2, 0.1


def band(n: int, p: float) -> tuple[int, int]:
    return int(binom.ppf(0.0005, n, p)), int(binom.ppf(0.9995, n, p))


def serve(root: Path, log: Path):
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(root), "--port", str(port),
                             "--log", str(log)], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    ready = wait_ready(url, proc)
    return proc, httpx.Client(base_url=url, timeout=60), ready


def stop(proc, client) -> None:
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def send(client, live: pd.DataFrame) -> list[dict]:
    out = []
    recs = live[["unit", "x0", "x1"]].to_dict(orient="records")
    for k in range(0, len(recs), 500):
        r = client.post("/predict", json=recs[k:k + 500])
        assert r.status_code == 200, r.text
        out += r.json()["predictions"]
    return out


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A registered logistic model, served twice (a restart) on the same 3,000 units."""
    root = tmp_path_factory.mktemp("labels") / "prevented"
    case, _, version = simulated_case(root, constraints={"review_capacity": 0.5}, serving={
        "holdout": HOLDOUT, "audit_share": AUDIT, "holdout_policy": "never"})
    b = version(0.5)
    register(case, b, aliases=["champion"])
    live = population(N, 7)

    first, second = root / "first.db", root / "second.db"
    proc, client, ready = serve(root, first)
    try:
        before = send(client, live)
        bad_put = client.put("/routing", json={"holdout": 0.9})
        put = client.put("/routing", json={"holdout": 0.3})
        raised = send(client, live)
    finally:
        stop(proc, client)
    proc, client, _ = serve(root, second)  # a restart, on a fresh log
    try:
        after = send(client, live)
        yield {"root": root, "case": case, "bundle": b, "live": live, "before": before, "raised": raised,
               "after": after, "put": put, "bad_put": bad_put, "ready": ready, "client": client, "log": second}
    finally:
        stop(proc, client)


def test_holdout_share_is_binomial_and_stable_per_unit_across_a_restart(deployment):
    before, after, raised = deployment["before"], deployment["after"], deployment["raised"]
    assert deployment["ready"]["routing"] == {"holdout": HOLDOUT, "audit_share": AUDIT, "canary": 0.0,
                                              "arms": ["holdout", "canary", "model"], "holdout_policy": "never",
                                              "salt": "the case name"}
    arms = np.array([a["arm"] for a in before])
    lo, hi = band(N, HOLDOUT)
    assert lo <= (arms == "holdout").sum() <= hi
    assert [a["arm"] for a in after] == arms.tolist()  # the same units, another process: the same arms
    # the holdout gets today's process (never act) and nothing of the model
    for a in before:
        if a["arm"] == "holdout":
            assert (a["decision"], a["prediction"], a["score"], a["conformal"], a["audit"]) == (
                "auto", "no", None, None, False)
        else:
            assert a["decision"] == ("flag" if a["score"] >= 0.5 else "auto")
            assert not a["audit"] or a["decision"] == "auto"
    auto = [a for a in before if a["arm"] == "model" and a["decision"] == "auto"]
    lo, hi = band(len(auto), AUDIT)
    assert lo <= sum(a["audit"] for a in auto) <= hi
    # shares change at run time; raising the holdout only moves units into it
    assert deployment["put"].status_code == 200 and deployment["put"].json()["holdout"] == 0.3
    assert deployment["bad_put"].status_code == 422 and "between 0 and 0.5" in deployment["bad_put"].json()["message"]
    more = np.array([a["arm"] for a in raised]) == "holdout"
    assert more[arms == "holdout"].all()
    lo, hi = band(N, 0.3)
    assert lo <= more.sum() <= hi


def test_simulated_deployment_review_round_trip_and_what_monitoring_sees(deployment, tmp_path, capsys):
    from sklearn.metrics import cohen_kappa_score

    from mlcase.cli import main
    from mlcase.monitor import monitor

    root, log, client, live = deployment["root"], deployment["log"], deployment["client"], deployment["live"]
    con = sqlite3.connect(log)
    rows = pd.read_sql_query("SELECT request_id, unit_id, arm, decision, model_decision, audit, "
                             "sampling_probability FROM predictions", con)
    y = dict(zip(live["unit"], live["y"], strict=True))
    rows["y"] = rows["unit_id"].map(y)
    assert len(rows) == N and rows["y"].notna().all()

    # -- the review queue out, filled in by two reviewers, back in
    assert main(["review", "export", str(root), "--log", str(log), "-o", str(tmp_path / "queue.csv"),
                 "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    queue = pd.read_csv(tmp_path / "queue.csv", dtype=str, keep_default_na=False)
    queued = rows[(rows["decision"] == "flag") | (rows["audit"] == 1)]
    assert exported["rows"] == len(queue) == len(queued)
    assert set(queue["request_id"]) == set(queued["request_id"])
    assert queue["reasons"].str.contains(r"x[01]=.*\([+-]", regex=True).all()  # top SHAP reasons
    assert (queue["rule_decision"] == "").all()  # this case has no rule
    truth = queue["request_id"].map(dict(zip(rows["request_id"], rows["y"], strict=True)))
    queue["outcome"] = np.where(truth == 1, "yes", "no")
    queue["reviewer"] = "ana"
    queue["reviewed_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    queue.loc[:4, "note"] = ['said "no", twice', "ünïcode ✓", "comma, inside", "line one\nline two", ""]
    rng = np.random.default_rng(0)
    second = queue.iloc[:150].copy()  # a second reviewer on 150 cases, who disagrees now and then
    flip = rng.random(len(second)) < 0.15
    second["outcome"] = np.where(flip, np.where(second["outcome"] == "yes", "no", "yes"), second["outcome"])
    second["reviewer"] = "ben"
    # the second reviewer's verdicts come first: the last verdict per case wins, and the audit recall below is
    # checked against the truth, which the first reviewer (who reads it off the simulation) gives
    filled = pd.concat([second, queue], ignore_index=True)
    filled.to_csv(tmp_path / "filled.csv", index=False)

    bad = filled.copy()
    bad.loc[4, "outcome"] = "perhaps"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["review", "import", str(tmp_path / "bad.csv"), str(root), "--log", str(log)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.csv row 5 (request_id " in err and "'perhaps'" in err
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0  # nothing half-written

    assert main(["review", "import", str(tmp_path / "filled.csv"), str(root), "--log", str(log), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["stored"] == len(filled)
    back = pd.read_sql_query("SELECT request_id, label AS outcome, reviewer, note FROM labels ORDER BY id", con)
    assert back["request_id"].tolist() == filled["request_id"].tolist()
    assert back["outcome"].tolist() == filled["outcome"].tolist()
    assert back["reviewer"].tolist() == filled["reviewer"].tolist()
    assert back["note"].fillna("").tolist() == filled["note"].tolist()  # quotes, commas, newlines, unicode

    # -- one verdict through POST /feedback, and its errors
    hold = rows[(rows["arm"] == "holdout")].iloc[0]
    r = client.post("/feedback", json={"request_id": hold["request_id"], "outcome": "yes" if hold["y"] else "no",
                                       "reviewer": "cleo", "note": "seen in the branch"})
    assert r.status_code == 200 and r.json()["source"] == "holdout" and r.json()["stored"] == 1
    r = client.post("/feedback", json={"request_id": hold["request_id"], "outcome": "maybe", "reviewer": "cleo"})
    assert r.status_code == 422 and "outcome 'maybe'" in r.json()["message"]
    r = client.post("/feedback", json={"request_id": "not-a-request", "outcome": "no", "reviewer": "cleo"})
    assert r.status_code == 404

    # -- the delayed outcomes arrive last: on the model's arm a flag prevented the bad outcome
    observed = np.where(rows["decision"] == "flag", "no", np.where(rows["y"] == 1, "yes", "no"))
    labels = [{"request_id": rid, "label": lab} for rid, lab in zip(rows["request_id"], observed, strict=True)]
    for k in range(0, len(labels), 1000):
        assert client.post("/labels", json=labels[k:k + 1000]).json()["attached"] == len(labels[k:k + 1000])

    res = monitor(deployment["case"], log=str(log)).to_dict()
    src = res["overall"]["by_source"]
    flags = rows["model_decision"] == "flag"
    true_precision = rows.loc[flags, "y"].mean()
    model_arm = rows["arm"] == "model"
    true_recall = (rows["y"][model_arm] * flags[model_arm]).sum() / rows["y"][model_arm].sum()
    # the naive precision is biased: every prevented outcome looks like a wrong flag
    assert src["acted"]["precision"]["value"] == 0.0 and src["bias"]["precision"]["outside"]
    h = src["holdout"]["precision"]
    assert h["low"] <= true_precision <= h["high"] and h["n"] > 50
    assert src["holdout"]["labels"]["sources"] == {"holdout": int((rows["arm"] == "holdout").sum())}
    a = src["audit"]
    # the audit draw hashes random request ids, so this deployment's sample is one of many: its 95% interval's
    # coverage is tested over 200 seeds in tests/test_label_sources.py; here the truth is within 3.29 sd (99.9%)
    assert abs(a["recall"]["value"] - true_recall) <= 3.29 * a["recall"]["sd"]
    assert a["recall"]["sd"] < 0.1  # the audit is big enough to say something
    assert a["reviewed_share"] == {"census": 1.0, "audit": 1.0}
    assert src["holdout"]["value_given_up"]["per_decision"]["value"] > 0  # the model saves money here
    assert any(w["kind"] == "label_bias" for w in res["warnings"])
    # reviewers against each other and against the model
    pair = queue.iloc[:150].assign(ben=second["outcome"].to_numpy())
    between = res["reviews"]["between_reviewers"]
    assert between["n"] == 150
    assert between["value"] == pytest.approx(cohen_kappa_score(pair["outcome"], pair["ben"]), abs=1e-9)
    assert between["low"] < between["value"] < between["high"]
    assert res["reviews"]["model_agreement"]["by_reviewer"]["ana"]["n"] == len(queue)
    assert res["reviews"]["backlog"]["backlog"] == 0 and not any(x["kind"] == "review_backlog"
                                                                 for x in res["alerts"])


def test_the_report_shows_labels_and_review(deployment, open_report, artifacts, capsys):
    """`mlcase monitor` then `mlcase report`: the label-source section draws in Chromium with its numbers."""
    from mlcase.cli import main

    root, log = deployment["root"], deployment["log"]
    assert main(["monitor", str(root), "--log", str(log)]) in (0, 1)
    err = capsys.readouterr().err
    assert "holdout: " in err and "the model's own labels say precision 0" in err and "audit-weighted (" in err
    assert main(["report", str(root), "--quiet"]) == 0
    view = open_report(root / "report" / "index.html")
    view.assert_healthy()
    section = view.page.locator("#monitoring-labels")
    assert section.count() == 1
    text = section.inner_text()
    section.screenshot(path=str(artifacts / "monitoring-labels.png"))
    for fragment in ("holdout arm", "model arm (acted on)", "reviews + audit", "Value given up", "Cohen's kappa",
                     "Review backlog"):
        assert fragment in text, fragment


def test_a_rule_holdout_gets_todays_rule_and_the_model_is_only_logged(tmp_path):
    """holdout_policy rule (the default when the case has a rule): the rule decides for held-out units."""
    from mlcase.baselines import RuleBaseline
    from mlcase.bundle import ModelBundle
    from mlcase.rules import Rule
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running
    from tests.serving_case import bundle, make_case, records

    rule = "contract = 'Month-to-month' AND tenure < 12"
    case, ds = make_case(tmp_path / "churn", n=1500, serving={"holdout": 0.5, "audit_share": 0.3,
                                                               "fallback": ["baseline", "constant"]})
    base = ModelBundle(model=RuleBaseline(rule).fit(ds.X_train, ds.y_train), name="rule", role="baseline",
                       task="binary", features=list(ds.features), schema=ds.schema.to_dict(), classes=ds.classes,
                       positive=ds.positive, threshold=0.5, rule=rule)
    app = create_app(ServeSettings(case=case, bundles={"model": bundle(ds, threshold=0.3), "baseline": base},
                                   registry=False, warmup=5))
    recs = records(ds, n=240)
    ids = ds.frame.iloc[ds.split.test]["customer_id"].iloc[:240].tolist()
    sent = [{**r, "customer_id": c} for r, c in zip(recs, ids, strict=True)]
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/routing").json()["holdout_policy"] == "rule"
        out = client.post("/predict", json=sent).json()["predictions"]
        again = client.post("/predict", json=sent[::-1]).json()["predictions"][::-1]
    assert [a["arm"] for a in again] == [a["arm"] for a in out]  # by customer_id, whatever the order
    held = [k for k, a in enumerate(out) if a["arm"] == "holdout"]
    lo, hi = band(240, 0.5)
    assert lo <= len(held) <= hi
    flags = Rule(rule, columns=list(ds.features)).predict(pd.DataFrame(recs))
    assert {out[k]["decision"] for k in held} == {"flag", "auto"}
    for k in held:
        assert out[k]["decision"] == ("flag" if flags[k] else "auto") and out[k]["score"] is None
    con = sqlite3.connect(case.root / "predictions.db")
    logged = {r[0]: r[1:] for r in con.execute(
        "SELECT request_id, arm, unit_id, decision, model_decision, rule_decision, score, sampling_probability, "
        "audit FROM predictions")}
    for k, a in enumerate(out):
        arm, unit, decision, model_decision, rule_decision, score, pi, audit = logged[a["request_id"]]
        assert (arm, unit, decision) == (a["arm"], str(ids[k]), a["decision"]) and score is not None
        if arm == "holdout":
            assert rule_decision == decision and model_decision in ("flag", "auto", "review") and pi in (0.0, 1.0)
        else:
            assert rule_decision is None and model_decision == decision
            assert pi == (1.0 if decision in ("flag", "review") else 0.3) and audit == int(a["audit"])
