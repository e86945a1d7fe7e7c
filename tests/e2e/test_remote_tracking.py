"""A case run against a real `mlflow server` with credentials in its tracking URL.

The server is MLflow's own basic-auth app (`mlflow server --app-name basic-auth`, which needs
Flask-WTF from the dev extras) on 127.0.0.1, with a temp SQLite backend and a proxied artifact
store (`--artifacts-destination`, so every artifact goes over HTTP with the credentials). The
password holds `@`, `:` and `/`. Nothing mlcase prints or writes may carry it; `--json`
prints one object; registration and aliases work against the server (mlflow/mlflow#17812).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests.serving_case import default_frame, free_port

pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (mlcase's dev extras)")
pytestmark = pytest.mark.slow

USER = "ana"
PASSWORD = "s3cr@t:Pw/" + secrets.token_hex(4)  # '@' ':' '/' and a part no other text holds
MLCASE = str(Path(sys.executable).parent / "mlcase")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` on a free port of 127.0.0.1; killed at the end."""
    root = tmp_path_factory.mktemp("mlflow-server")
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = EDIT\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {USER}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # without it the server runs PBKDF2 on every request (about 0.25 s each here)
        "auth_cache_ttl_seconds = 600\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: mlcase needs tracking and registry
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                r = httpx.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                              auth=(USER, PASSWORD), timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("mlflow server never answered")
            time.sleep(0.3)
        # the server does check the password
        assert httpx.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1}).status_code == 401
        yield {"port": port, "root": root, "base": base}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _case(folder: Path, port: int, password: str = PASSWORD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    default_frame(1500).to_csv(folder / "data.csv", index=False)
    spec = {"name": "remote-default", "decision": "which loans get a manual review", "task": "binary",
            "data": {"source": "data.csv", "target": "default", "positive": "Yes", "id": "loan_id"},
            "costs": {"true_positive": "50 + 0.1 * balance", "false_positive": 50,
                      "false_negative": "0.7 * balance"},
            "baselines": ["majority"], "candidates": ["logistic"], "budget": "5s",
            "split": {"cv_folds": 2}, "evaluation": {"bootstrap": 100},
            "tracking_uri": f"http://{USER}:{quote(password, safe='')}@127.0.0.1:{port}"}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _mlcase(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([MLCASE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _secrets() -> list[str]:
    """Every form the password could leak in: as is, percent-encoded, and inside a Basic auth header."""
    return [PASSWORD, quote(PASSWORD, safe=""), PASSWORD.split("/")[-1],
            base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]


def _leaks(text: str) -> list[str]:
    return [s for s in _secrets() if s in text]


def test_a_case_runs_registers_and_leaks_no_secret_against_a_real_server(server, tmp_path):
    folder = _case(tmp_path / "case", server["port"])
    run = _mlcase("run", str(folder), "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    # --json: exactly one JSON object on stdout, no MLflow "View run ... at:" line
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout[:2000]
    summary = json.loads(lines[0])
    assert isinstance(summary, dict) and summary["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
    assert "View run" not in run.stdout + run.stderr
    # registration and aliases, on the server (the source is the logged model, with its model_id)
    models = _mlcase("models", str(folder), "--json")
    assert models.returncode == 0, models.stderr
    doc = json.loads(models.stdout)
    assert doc["tracking_uri"] == f"http://***@127.0.0.1:{server['port']}"
    versions = doc["versions"]
    aliases = {a for v in versions for a in v["aliases"]}
    assert {"candidate", "baseline"} <= aliases
    assert all(v["source"].startswith("models:/m-") for v in versions)
    assert all("mlcase.mlflow_model_error" not in v["tags"] for v in versions)
    # a registered bundle loads back through the server: hashes and signature verified
    from mlcase import tracking
    from mlcase.case import load_case

    case = load_case(folder)
    loaded = tracking.load_bundle(case, alias="candidate")
    assert loaded.name == summary["registry"]["candidate"] and loaded.version == summary["registry"]["candidate_version"]
    assert summary["registry"]["tracking_uri"] == doc["tracking_uri"]
    card_text = (folder / "model_card.md").read_text()
    assert f"http://***@127.0.0.1:{server['port']}" in card_text
    # no secret in any output ...
    for proc in (run, models):
        assert not _leaks(proc.stdout + proc.stderr), _leaks(proc.stdout + proc.stderr)
    # ... nor in any file mlcase wrote in the case folder, nor anything it logged to the server
    written = [p for p in folder.rglob("*") if p.is_file() and p.name != "case.yaml"]
    assert any(p.name == "index.html" for p in written) and len(written) > 5
    stores = [p for p in server["root"].rglob("*") if p.is_file() and p.suffix not in (".ini", ".log")
              and not p.name.startswith("auth.db")]
    for path in written + stores:
        data = path.read_bytes()
        found = [s for s in _secrets() if s.encode() in data]
        assert not found, f"{path}: {found}"


def test_a_wrong_password_is_one_redacted_line(server, tmp_path):
    from mlcase import tracking
    from mlcase.case import load_case
    from mlcase.errors import SpecError

    case = load_case(_case(tmp_path / "wrong", server["port"], password="not-the-password@1"))
    with pytest.raises(SpecError) as err:
        tracking.client(case)
    line = str(err.value)
    assert "\n" not in line and "not-the-password" not in line
    assert line.startswith(f"tracking_uri http://***@127.0.0.1:{server['port']}: the MLflow server refused the credentials")
