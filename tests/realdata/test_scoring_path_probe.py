"""The scoring paths do no needless work, and answer what the model answers.

On real runs (modeldata::credit_data, binary, with missing values and text categories; modeldata::hpc_data,
multiclass), with records that have a missing value, an unseen category or a number far outside training:

- a served single record on the fast path builds no pandas frame (its conformal set is made from the score the
  fast path gave; every request built a frame of its records for a stand-in model that ignored it), and a
  served list builds one frame (for the pipeline), not two;
- what the server answers (score, decision, set, tier) equals the bundle's own scores and the sets the old
  stand-in path gave, and ``mlcase score`` writes the same answers for the same rows.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlcase import results, tracking
from mlcase.conformal import predict_sets
from mlcase.data import prepare
from mlcase.score import score_file
from mlcase.serve.app import create_app
from mlcase.serve.fallback import _FixedScores, normalise_sets
from mlcase.serve.schema import RecordSpec
from tests.serving_case import records

KEY = "scoring-path-key"


def _planted(ds, spec: RecordSpec, recs: list[dict]) -> list[dict]:
    """Copies of real test records with a missing value (in a column training saw missing; else an unseen
    category), an unseen category and a number far out of range (two of each)."""
    num = ds.schema.numeric(ds.features)
    cat = [c for c in ds.features if c not in num]
    optional = [c for c in ds.features if not spec.rules[c].required]
    out = []
    for k, rec in enumerate(recs[:6]):
        r = dict(rec)
        if k % 3 == 0 and optional:
            r[optional[k % len(optional)]] = None
        elif k % 3 in (0, 1):
            r[cat[k % len(cat)]] = "never_seen_level"
        else:
            r[num[k % len(num)]] = float(ds.X_train[num[k % len(num)]].max()) * 10 + 1e6
        out.append(r)
    return out


@pytest.fixture(scope="module", params=["credit-random", "hpc-random"])
def served(request, runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring-path") / request.param
    run = runs.copy(request.param, folder)   # it logs what it answers
    assert run["code"] == 0
    case = run["case"]
    version = results.load(case, "registry")["candidate_version"]
    bundle = tracking.load_bundle(case, version=version)
    ds = prepare(case)
    recs = records(ds, n=24)
    recs = recs + _planted(ds, RecordSpec(bundle.schema, bundle.features), recs)
    app = create_app({"case": case, "version": version, "api_key": KEY, "warmup": 5})
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        for _ in range(600):   # the warm-up (fast path compiled and checked) runs beside the first requests
            ready = client.get("/ready").json()
            if ready["ready"]:
                break
            time.sleep(0.1)
        assert ready["ready"], ready
        yield {"case": case, "folder": folder, "bundle": bundle, "ds": ds, "records": recs, "client": client,
               "ready": ready, "version": version}


def _counting_frames(monkeypatch) -> list:
    calls = []
    frame = RecordSpec.frame

    def counted(self, recs):
        calls.append(len(recs))
        return frame(self, recs)

    monkeypatch.setattr(RecordSpec, "frame", counted)
    return calls


def test_a_fast_path_record_builds_no_frame_and_a_list_builds_one(served, monkeypatch):
    # the champion is LightGBM or, on a run whose trials left a bag, an ensemble of LightGBM boosters
    assert "lightgbm.Booster.predict" in served["ready"]["model"]["fast_path"]
    spec = RecordSpec(served["bundle"].schema, served["bundle"].features)
    inside = [r for r in served["records"] if spec.out_of_domain(spec.flags(r)) is None]
    assert len(inside) >= 26   # the test rows, the missing number and the unseen category
    calls = _counting_frames(monkeypatch)
    for rec in inside:
        r = served["client"].post("/predict", json=rec)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["tier"] == "model"
    # before: one frame per request (len(records) == 1 each), built for the conformal set's stand-in model
    assert calls == []
    r = served["client"].post("/predict", json=inside)
    assert r.status_code == 200, r.text
    assert calls == [len(inside)]   # the pipeline's frame; before, a second one for the sets


def test_served_answers_are_the_models_own(served):
    bundle, client, spec = served["bundle"], served["client"], None
    spec = RecordSpec(bundle.schema, bundle.features)
    answers = [client.post("/predict", json=rec).json()["predictions"][0] for rec in served["records"]]
    listed = client.post("/predict", json=served["records"]).json()["predictions"]
    tiers = [a["tier"] for a in answers]
    assert tiers == [a["tier"] for a in listed]
    assert tiers.count("model") == len(tiers) - 2   # the two records out of range go to a fallback tier
    for rec, a, b in zip(served["records"], answers, listed, strict=True):
        if a["tier"] != "model":
            assert a["fallback"] and "out_of_domain" in a["reason"] and "beyond the training range" in a["reason"]
            continue
        frame = spec.frame([rec])
        own = np.asarray(bundle.scores(frame), dtype="float64")
        if bundle.task == "binary":
            assert a["score"] == pytest.approx(float(own[0]), abs=1e-9)
            if abs(a["score"] - bundle.threshold) > 1e-9:   # at the split threshold, the row's draw decides
                flag = bool(bundle.decide(own)[0])
                assert a["prediction"] == str(bundle.classes[1] if flag else bundle.classes[0])
                assert (a["decision"] == "flag") == flag or a["decision"] == "review"
            # the stand-in path the server used before, on the score it answered
            old = normalise_sets(predict_sets(dataclasses.replace(
                bundle, model=_FixedScores(np.asarray([a["score"]]), "binary")), frame), bundle, 1)[0]
        else:
            assert a["scores"] == pytest.approx(dict(zip(bundle.classes, own[0], strict=True)), abs=1e-9)
            assert a["prediction"] == bundle.decide(own)[0]
            s = np.asarray([[a["scores"][c] for c in bundle.classes]])
            old = normalise_sets(predict_sets(dataclasses.replace(
                bundle, model=_FixedScores(s, "multiclass")), frame), bundle, 1)[0]
        assert a["conformal"] == old
        assert a["conformal"] == predict_sets(bundle, frame)[0]
        assert (b["prediction"], b["decision"], b["conformal"]) == (a["prediction"], a["decision"], a["conformal"])
        assert b["score"] == pytest.approx(a["score"], abs=1e-9)


def test_batch_scoring_writes_what_the_server_answers(served, tmp_path):
    bundle, client, recs = served["bundle"], served["client"], served["records"]
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame(recs).to_csv(inp, index=False)
    res = score_file(served["case"], inp, out, version=served["version"], progress=False)
    assert (res.rows, res.scored, res.invalid_rows) == (len(recs), len(recs), 0)
    scored = pd.read_csv(out, keep_default_na=False, na_values=[""])
    answers = [client.post("/predict", json=rec).json()["predictions"][0] for rec in recs]
    assert list(scored["tier"]) == [a["tier"] for a in answers]
    assert res.fallbacks == {answers[-1]["tier"]: 2}
    for row, a in zip(scored.itertuples(), answers, strict=True):
        assert row.score == pytest.approx(a["score"], abs=1e-9)
        assert str(row.prediction) == str(a["prediction"])
        if bundle.task == "multiclass" or abs(a["score"] - (bundle.threshold or 0)) > 1e-9:
            assert row.decision == a["decision"]
        if a["conformal"] is not None:
            assert json.loads(row.conformal) == a["conformal"]

