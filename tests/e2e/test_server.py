"""The real server on 127.0.0.1: `mlcase serve` in a subprocess on a registered champion, and
in-thread uvicorn servers for models that fail or are slow on purpose."""

from __future__ import annotations

import contextlib
import json
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

from mlcase.baselines import RuleBaseline
from mlcase.bundle import ModelBundle
from tests.serving_case import bundle, free_port, make_case, records, register

KEY = "s3cret-test-key"
RULE = "contract = 'Month-to-month' AND tenure < 12"
pytestmark = pytest.mark.slow


def wait_ready(url: str, proc=None, timeout: float = 120.0, key: str | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"{url}/ready", timeout=2, headers={"X-API-Key": key} if key else None)
            if r.status_code == 200:
                return r.json()
        time.sleep(0.2)
    raise TimeoutError(f"{url} never became ready")


@contextlib.contextmanager
def mlcase_serve(root: Path, key: str | None = None):
    """``mlcase serve ROOT`` (the installed entry point, so a packaging mistake cannot hide) on a free port of
    127.0.0.1, with ``key`` as its API key: yields ``(url, process, /ready's answer)``, then stops it."""
    port = free_port()
    env = {**os.environ, "MLCASE_API_KEY": key} if key else dict(os.environ)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(root), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, proc, wait_ready(url, proc, key=key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A churn case with three registered versions and `mlcase serve` running on it."""
    from mlcase.conformal import calibrate

    root = tmp_path_factory.mktemp("server") / "churn"
    case, ds = make_case(root, n=2500, serving={"max_body_bytes": 200_000})
    previous = bundle(ds, seed=1)
    v1 = register(case, previous, tags={"mlcase.was_champion": "true"})
    rule_model = RuleBaseline(RULE).fit(ds.X_train, ds.y_train)
    base = ModelBundle(model=rule_model, name="rule", role="baseline", task="binary", features=list(ds.features),
                       schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive,
                       threshold=rule_model.rate_flagged_, rule=RULE)  # the cut the evaluation gives it: where it fires
    v2 = register(case, base, aliases=["baseline"])
    champion = bundle(ds, threshold=0.3)
    calibrate(champion, ds.X_valid, ds.y_valid, alpha=0.1)
    v3 = register(case, champion, aliases=["champion"], tags={"mlcase.was_champion": "true"})
    with mlcase_serve(root, key=KEY) as (url, proc, ready):
        client = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30)
        yield {"case": case, "ds": ds, "url": url, "client": client, "ready": ready, "champion": champion,
               "versions": (v1, v2, v3), "proc": proc}
        client.close()


def test_ready_names_the_champion_and_the_chain(served):
    v1, v2, v3 = served["versions"]
    ready = served["ready"]
    assert ready["ready"] and ready["serving"] == "champion"
    assert ready["model"]["version"] == v3 and ready["model"]["fast_path"] == "lightgbm.Booster.predict"
    assert [(f["tier"], f.get("version")) for f in ready["fallbacks"]] == [
        ("previous_champion", v1), ("rule", v2), ("constant", None)]
    assert ready["warmup"]["fast_path"]["model"]["max_abs_diff"] <= 1e-9
    assert httpx.get(served["url"] + "/health").json() == {"status": "alive"}


def test_predictions_equal_the_pipeline_with_conformal_sets(served):
    from mlcase.conformal import predict_sets

    ds, champ = served["ds"], served["champion"]
    recs = records(ds, n=60)
    r = served["client"].post("/predict", json=recs[:40])
    assert r.status_code == 200
    answers = r.json()["predictions"]
    singles = [served["client"].post("/predict", json=rec).json()["predictions"][0] for rec in recs[40:]]
    answers += singles
    frame = ds.X_test.iloc[:60]
    expect = champ.scores(frame)
    sets = predict_sets(champ, frame)
    got = np.array([a["score"] for a in answers])
    assert np.max(np.abs(got - expect)) <= 1e-9
    assert [a["conformal"] for a in answers] == sets
    for a, s, cs in zip(answers, expect, sets, strict=True):
        want = "review" if len(cs) != 1 else ("flag" if s >= 0.3 else "auto")
        assert a["decision"] == want
        assert a["prediction"] == ("Yes" if s >= 0.3 else "No")
        assert (a["tier"], a["fallback"], a["model_version"]) == ("model", False, served["versions"][2])
    assert len({a["request_id"] for a in answers}) == 60
    assert {"review", "auto"} <= {a["decision"] for a in answers}


def test_invalid_records_get_one_message_per_field_and_index(served):
    """One message per field. A null in a field that training never lacked said only "expected a number, got
    None" (openintro::ucla_textbooks_f18: a course without a textbook sends no ISBN, and every priced course in
    training had one); it now says why a null is refused, as a missing key does."""
    good = records(served["ds"], n=1)[0]
    bad = {**good, "tenure": "twelve", "monthly_charges": None, "colour": "red"}
    bad.pop("contract")
    r = served["client"].post("/predict", json=[good, good, bad])
    assert r.status_code == 422
    detail = {(d["record"], d["field"]): d["message"] for d in r.json()["detail"]}
    assert detail == {
        (2, "tenure"): "expected a number, got 'twelve'",
        (2, "monthly_charges"): "is null, and it was never missing in training; send a numeric value",
        (2, "contract"): "is required (it was never missing in training); send a categorical value",
        (2, "colour"): detail[(2, "colour")]}
    assert detail[(2, "colour")].startswith("is not a column of this model")
    assert "record 2 field 'tenure'" in r.json()["message"]
    r = served["client"].post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["message"]
    r = served["client"].post("/predict", json=[])
    assert r.status_code == 422 and "non-empty array" in r.json()["message"]


def test_api_key_and_body_limit(served):
    url, rec = served["url"], records(served["ds"], n=1)[0]
    r = httpx.post(f"{url}/predict", json=rec)
    assert r.status_code == 401 and "X-API-Key" in r.json()["message"]
    r = httpx.post(f"{url}/predict", json=rec, headers={"X-API-Key": "wrong"})
    assert r.status_code == 401 and "wrong API key" in r.json()["message"]
    assert httpx.post(f"{url}/labels", json={"request_id": "x", "label": "Yes"}).status_code == 401
    r = httpx.post(f"{url}/predict", json=rec, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    big = [rec] * 600  # about 330 kB, above serving.max_body_bytes = 200000
    r = served["client"].post("/predict", json=big)
    assert r.status_code == 413 and "200000" in r.json()["message"]


def test_ready_tells_a_caller_without_the_key_only_ready(served):
    url = served["url"]
    for headers in (None, {"X-API-Key": "wrong"}):
        r = httpx.get(f"{url}/ready", headers=headers)
        assert r.status_code == 200 and r.json() == {"ready": True}
    full = served["client"].get("/ready").json()
    assert full["model"]["version"] == served["versions"][2] and "predictions.db" in full["log"]["target"]


@pytest.mark.parametrize("endpoint", ["/predict", "/labels"])
def test_json_nested_100000_deep_is_a_422_not_a_500(served, endpoint):
    c = served["client"]
    deep_array = "[" * 90_000 + "]" * 90_000  # 180 kB, under serving.max_body_bytes = 200000
    deep_object = '{"a":' * 30_000 + "1" + "}" * 30_000
    for body in (deep_array, deep_object):
        r = c.post(endpoint, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:300]
        assert "nested more than 32 levels deep" in r.json()["message"]
    r = c.post(endpoint, content="[" * 150_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 422  # deep and not even closed
    r = c.post(endpoint, content="[" * 300_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413  # over the size limit: refused before anything is parsed
    assert c.post(endpoint, content="{nope", headers={"Content-Type": "application/json"}).status_code == 422
    assert httpx.get(served["url"] + "/health").json() == {"status": "alive"}  # and the server is fine


def test_flags_and_out_of_domain_fallback(served):
    from mlcase.rules import Rule

    ds = served["ds"]
    rec = records(ds, n=1)[0]
    unseen = {**rec, "payment_method": "Crypto wallet", "total_charges": None}
    far = {**rec, "monthly_charges": 5000.0, "contract": "Month-to-month", "tenure": 3}
    many = {**rec, "payment_method": "a", "contract": "b", "internet_service": "c"}
    out = served["client"].post("/predict", json=[unseen, far, many]).json()["predictions"]
    assert out[0]["tier"] == "model" and not out[0]["fallback"]
    assert out[0]["flags"] == {"missing": ["total_charges"], "unknown_categories": ["payment_method"],
                               "out_of_range": []}
    # beyond the training range of both learned models: the rule answers, and says why
    assert out[1]["tier"] == "rule" and out[1]["fallback"] and out[1]["model_version"] == served["versions"][1]
    assert "model: out_of_domain: monthly_charges beyond the training range" in out[1]["reason"]
    assert "previous_champion: out_of_domain" in out[1]["reason"]
    rule_flag = Rule(RULE, columns=list(ds.features)).predict(_frame(far))[0]
    assert out[1]["decision"] == ("flag" if rule_flag else "auto") == "flag"
    assert out[2]["tier"] == "rule" and "3 unseen categories" in out[2]["reason"]


def _frame(rec):
    import pandas as pd

    return pd.DataFrame([rec])


def test_labels_attach_by_request_id(served):
    c = served["client"]
    ids = [a["request_id"] for a in c.post("/predict", json=records(served["ds"], n=3)).json()["predictions"]]
    r = c.post("/labels", json=[{"request_id": ids[0], "label": "Yes"}, {"request_id": ids[1], "label": "No"},
                                {"request_id": "not-a-real-id", "label": "No"}])
    assert r.status_code == 200
    assert r.json() == {"attached": 2, "blank": 0, "unknown": 1, "unknown_request_ids": ["not-a-real-id"],
                        "sources": {"outcome": 2}}
    r = c.post("/labels", json={"request_id": ids[2]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "label"
    con = sqlite3.connect(served["case"].root / "predictions.db")
    rows = con.execute("SELECT l.request_id, l.label, p.decision FROM labels l JOIN predictions p "
                       "USING (request_id) ORDER BY l.id").fetchall()
    assert [(r[0], r[1]) for r in rows[-2:]] == [(ids[0], "Yes"), (ids[1], "No")]


def test_metrics_count_requests_fallbacks_and_decisions(served):
    c = served["client"]
    rec = records(served["ds"], n=1)[0]
    before = _metrics(c)
    for _ in range(3):
        c.post("/predict", json={**rec, "monthly_charges": 9000.0})
    c.post("/predict", json=rec)
    after = _metrics(c)
    key = 'mlcase_fallbacks_total{reason="out_of_domain",tier="rule"}'
    assert after[key] - before.get(key, 0) == 3
    ok = 'mlcase_requests_total{endpoint="/predict",status="200"}'
    assert after[ok] - before.get(ok, 0) == 4  # (no /predict before it when run alone)
    assert after['mlcase_request_latency_seconds_count{endpoint="/predict"}'] >= after[ok]
    decided = sum(v for k, v in after.items() if k.startswith("mlcase_predictions_total{"))
    assert decided == after["mlcase_predlog_written_rows_total"]  # every answer was logged
    assert after["mlcase_predlog_failed_rows_total"] == 0 and after["mlcase_ready"] == 1


def _metrics(client) -> dict:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def test_explain_adds_top_contributions(served):
    rec = records(served["ds"], n=1)[0]
    r = served["client"].post("/predict?explain=true", json=rec)
    assert r.status_code == 200
    answer = r.json()["predictions"][0]
    e = answer["explanation"]
    assert len(e["contributions"]) == 5
    assert {c["feature"] for c in e["contributions"]} <= set(served["ds"].features)
    sizes = [abs(c["contribution"]) for c in e["contributions"]]
    assert sizes == sorted(sizes, reverse=True)  # the largest five; each column left out weighs no more
    assert abs(e["other"]) <= sizes[-1] * (len(served["ds"].features) - 5) + 1e-12
    # SHAP adds up: base + the top 5 + the rest is the model's output for this record, i.e. the served score
    total = e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
    assert total == pytest.approx(e["output"], abs=1e-5)
    assert e["output_space"] == "log_odds"
    assert 1 / (1 + np.exp(-e["output"])) == pytest.approx(answer["score"], abs=1e-5)
    r = served["client"].post("/predict?explain=maybe", json=rec)
    assert r.status_code == 422 and "explain" in r.json()["message"]


def test_prediction_log_rows(served):
    c = served["client"]
    rid = c.post("/predict", json=records(served["ds"], n=1)[0]).json()["predictions"][0]["request_id"]
    con = sqlite3.connect(served["case"].root / "predictions.db")
    row = dict(zip([d[0] for d in con.execute("SELECT * FROM predictions LIMIT 0").description],
                   con.execute("SELECT * FROM predictions WHERE request_id = ?", (rid,)).fetchone(), strict=True))
    assert row["tier"] == "model" and row["fallback"] == 0 and row["model_version"] == served["versions"][2]
    assert json.loads(row["inputs"])["contract"] == records(served["ds"], n=1)[0]["contract"]
    # the logged answer is the champion's on that record (threshold 0.3), conformal set included
    from mlcase.conformal import predict_sets

    frame = served["ds"].X_test.iloc[:1]
    expect = float(served["champion"].scores(frame)[0])
    assert row["score"] == pytest.approx(expect, abs=1e-9)
    assert row["prediction"] == ("Yes" if expect >= 0.3 else "No")
    assert json.loads(row["conformal"]) == predict_sets(served["champion"], frame)[0]
    assert row["ts"].endswith("Z") and row["latency_ms"] > 0


# --------------------------------------------------------------------------- in-thread servers
class SlowModel:
    """Wraps a fitted pipeline; sleeps ``delay`` seconds per call (set after warm-up)."""

    def __init__(self, inner, delay: float = 0.0):
        self.inner = inner
        self.delay = delay

    def predict_proba(self, X):
        time.sleep(self.delay)
        return self.inner.predict_proba(X)


@contextlib.contextmanager
def running(app):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=60)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    case, ds = make_case(tmp_path_factory.mktemp("inthread") / "churn", n=1500)
    return case, ds, bundle(ds, seed=3)


def test_a_failing_model_hands_over_to_the_baseline(small):
    from mlcase.serve.app import ServeSettings, create_app

    case, ds, backup = small
    failing = bundle(ds, family="logistic_no_imputer")  # raises on a missing total_charges
    app = create_app(ServeSettings(case=case, bundles={"model": failing, "baseline": backup}, registry=False,
                                   warmup=20))
    rec = next(r for r in records(ds) if r["total_charges"] is not None)
    with running(app) as url:
        out = httpx.post(f"{url}/predict", json=[rec, {**rec, "total_charges": None}]).json()["predictions"]
        metrics = httpx.get(f"{url}/metrics").text
    assert (out[0]["tier"], out[0]["fallback"]) == ("model", False)
    assert (out[1]["tier"], out[1]["fallback"]) == ("baseline", True)
    assert out[1]["reason"].startswith("model: error:")
    expect = backup.scores(_spec_frame(ds, [{**rec, "total_charges": None}]))[0]
    assert abs(out[1]["score"] - expect) <= 1e-9
    assert 'mlcase_fallbacks_total{reason="error",tier="baseline"} 1.0' in metrics


def test_an_answer_of_the_constant_tier_is_replayed(tmp_path, capsys):
    """A record the registered champion fails on is answered by the constant tier, and `mlcase replay` reproduces
    that answer. It replayed it through the tier's model, which the constant has none of: "not reproduced:
    constant tier differs (logged answered, now error: AttributeError: 'NoneType' object has no attribute
    'scores')" (texmex::summer, whose linear candidate overflowed on a field of 1e308)."""
    from mlcase.cli import main

    case, ds = make_case(tmp_path / "churn", n=1500, serving={"fallback": ["constant"]})
    failing = bundle(ds, family="logistic_no_imputer")  # raises on a missing total_charges
    v = register(case, failing, aliases=["champion"])
    rec = next(r for r in records(ds) if r["total_charges"] is not None)
    with mlcase_serve(case.root) as (url, _proc, ready):
        assert [f["tier"] for f in ready["fallbacks"]] == ["constant"]
        out = httpx.post(f"{url}/predict", json=[rec, {**rec, "total_charges": None}], timeout=30).json()["predictions"]
    assert (out[0]["tier"], out[1]["tier"]) == ("model", "constant")
    assert out[1]["fallback"] and out[1]["reason"].startswith("model: error:") and out[1]["model_version"] is None
    capsys.readouterr()
    code = main(["replay", str(case.root), out[1]["request_id"], out[0]["request_id"], "--json", "--no-explain"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["replayed"] == 2 and doc["reproduced"] == 2, doc
    const = next(r for r in doc["results"] if r["request_id"] == out[1]["request_id"])
    assert const["replayed"]["tier"] == "constant" and const["replayed"]["decision"] == out[1]["decision"] == "auto"
    assert any("model: error:" in n for n in const["notes"]), const["notes"]
    assert v == out[0]["model_version"]


def test_a_slow_model_times_out_to_the_next_tier(small):
    from mlcase.serve.app import ServeSettings, create_app

    case, ds, backup = small
    slow = bundle(ds)
    slow.model = SlowModel(slow.model)
    app = create_app(ServeSettings(case=case, bundles={"model": slow, "baseline": backup}, registry=False,
                                   warmup=5, workers=2))
    rec = records(ds, n=1)[0]
    with running(app) as url:
        assert httpx.get(f"{url}/ready").json()["timeout_ms"] == 200  # 4 x constraints.latency_p95_ms
        slow.model.delay = 1.5
        results = []

        def call():
            r = httpx.post(f"{url}/predict", json=rec, timeout=10)
            results.append(r.json()["predictions"][0])

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = httpx.get(f"{url}/metrics").text
    assert len(results) == 4
    for answer in results:  # the time to answer is measured by benchmarks/timing_guarantees.py
        assert answer["tier"] == "baseline" and answer["fallback"]
        assert answer["reason"].startswith(("model: timeout: no answer within 200 ms", "model: busy"))
    assert 'mlcase_fallbacks_total{reason="timeout",tier="baseline"}' in metrics


def test_shadow_challenger_is_logged_not_returned(small):
    from mlcase.serve.app import ServeSettings, create_app

    case, ds, _ = small
    served_b, challenger = bundle(ds, seed=4), bundle(ds, family="logistic")
    challenger.version = 7
    app = create_app(ServeSettings(case=case, bundles={"model": served_b, "challenger": challenger},
                                   registry=False, warmup=10, log_url=str(case.root / "shadow.db")))
    recs = records(ds, n=4)
    with running(app) as url:
        assert httpx.get(f"{url}/ready").json()["challenger"]["version"] == 7
        out = httpx.post(f"{url}/predict", json=recs).json()["predictions"]
    assert all("challenger" not in a for a in out)
    con = sqlite3.connect(case.root / "shadow.db")
    logged = dict(con.execute("SELECT request_id, challenger FROM predictions").fetchall())
    shadow = [json.loads(logged[a["request_id"]]) for a in out]
    expect = challenger.scores(_spec_frame(ds, recs))
    assert [s["version"] for s in shadow] == [7] * 4
    assert np.max(np.abs(np.array([s["score"] for s in shadow]) - expect)) <= 1e-9
    assert [a["score"] for a in out] != [s["score"] for s in shadow]


def _spec_frame(ds, recs):
    from mlcase.serve.schema import RecordSpec

    return RecordSpec(ds.schema.to_dict(), ds.features).frame(recs)


def test_without_a_champion_the_baseline_is_served_and_ready_says_so(tmp_path):
    from mlcase.serve.app import ServeSettings, create_app

    case, ds = make_case(tmp_path / "nogo", n=800)
    base = bundle(ds, family="logistic", role="baseline")
    version = register(case, base, aliases=["baseline"])
    app = create_app(ServeSettings(case=case, warmup=5))
    with running(app) as url:
        ready = httpx.get(f"{url}/ready").json()
        out = httpx.post(f"{url}/predict", json=records(ds, n=1)[0]).json()["predictions"][0]
    assert ready["serving"] == "baseline" and ready["model"]["version"] == version
    assert any("no 'champion' alias" in n and "serving the 'baseline'" in n for n in ready["notes"])
    assert ready["model"]["fast_path"] == "logistic coefficients"
    assert (out["tier"], out["model_version"]) == ("model", version)


def test_the_api_key_comes_from_serving_api_key_file(small, tmp_path, monkeypatch):
    from dataclasses import replace

    from mlcase.serve.app import ServeSettings, create_app

    case, ds, model = small
    monkeypatch.delenv("MLCASE_API_KEY", raising=False)
    (tmp_path / "api.key").write_text("key-from-a-file\n")
    spec = case.spec.model_copy(deep=True)
    spec.serving.api_key_file = str(tmp_path / "api.key")
    keyed = replace(case, spec=spec)
    app = create_app(ServeSettings(case=keyed, bundles={"model": model}, registry=False, warmup=5,
                                   log_url=str(tmp_path / "p.db")))
    rec = records(ds, n=1)[0]
    with running(app) as url:
        assert httpx.post(f"{url}/predict", json=rec).status_code == 401
        assert httpx.post(f"{url}/predict", json=rec, headers={"X-API-Key": "key-from-a-file"}).status_code == 200
        assert httpx.get(f"{url}/ready").json() == {"ready": True}
    # without a key the server is open, and /ready shows its state but not where the log lives
    open_app = create_app(ServeSettings(case=case, bundles={"model": model}, registry=False, warmup=5,
                                        log_url=str(tmp_path / "q.db")))
    with running(open_app) as url:
        ready = httpx.get(f"{url}/ready").json()
    assert ready["model"]["tier"] == "model" and "target" not in ready["log"] and str(tmp_path) not in str(ready)
