"""The readiness score rises test by test as a bare case is completed (ML Test Score, Breck et al. 2017).

A bare case (ISLR ``Default``: name, decision, task and data) is taken step by step to a served,
monitored, canaried and promoted model with the real commands; after each step `mlcase readiness`
must score more points, and the tests that step closes must turn automated.
"""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
import yaml

from tests.e2e.test_server import running
from tests.serving_case import default_frame

pytestmark = pytest.mark.slow
KEY = "readiness-test-key"


def score(root, capsys) -> dict:
    from mlcase.cli import main

    code = main(["readiness", str(root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["passes"] else 1)
    return out


def statuses(r: dict) -> dict[str, str]:
    return {t["id"]: t["status"] for t in r["tests"]}


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@x"})


def test_the_score_rises_test_by_test_as_a_bare_case_is_completed(tmp_path, capsys, open_report, artifacts):
    from mlcase import tracking
    from mlcase.case import load_case
    from mlcase.cli import main
    from mlcase.serve.app import ServeSettings, create_app

    root = tmp_path / "card"
    root.mkdir()
    frame = default_frame(2000)
    frame.to_csv(root / "default.csv", index=False)
    spec = {"name": "card", "decision": "which accounts go to manual review", "task": "binary",
            "data": {"source": "default.csv", "target": "default", "positive": "Yes", "id": "loan_id"}}
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    steps = [("bare", score(root, capsys))]
    bare = steps[0][1]
    assert bare["score"] == 0 and bare["passes"]
    assert all(t["close"] for t in bare["tests"] if t["status"] != "automated")
    assert statuses(bare)["data.1"] == "missing" and "mlcase run" in bare["tests"][0]["close"]

    # 1. the spec states its requirements: costs, slices, sensitive columns, an assumption, a latency limit, a key
    (root / "key.txt").write_text(KEY + "\n")
    spec.update({"costs": {"true_positive": "50 + 0.1 * balance", "false_positive": 50,
                           "false_negative": "0.7 * balance"},
                 "constraints": {"review_capacity": 0.1, "latency_p95_ms": 200},
                 "assumptions": [{"text": "a few percent default",
                                  "check": "avg(CASE WHEN \"default\" = 'Yes' THEN 1 ELSE 0 END) < 0.1"}],
                 "sensitive": ["student"], "slices": ["student"], "candidates": ["logistic"], "budget": "5s",
                 "serving": {"api_key_file": "key.txt", "reload_every": 0},
                 "monitoring": {"max_realized_cost": 1000}})
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    steps.append(("spec", score(root, capsys)))
    # 2. the data is checked
    assert main(["check", str(root), "--json"]) in (0, 1)
    capsys.readouterr()
    steps.append(("checked", score(root, capsys)))
    # 3. the case goes under version control
    git(root, "init", "-q")
    git(root, "add", "case.yaml", "default.csv", "key.txt")
    git(root, "commit", "-q", "-m", "the case")
    steps.append(("committed", score(root, capsys)))
    # 4. the whole pipeline runs, from the git checkout: registered, decided, reproducible
    assert main(["run", str(root), "--quiet"]) == 0
    steps.append(("run", score(root, capsys)))

    # 5. served with a canary of the other version, labelled, monitored
    case = load_case(root)
    al = tracking.aliases(case)
    other = al["candidate"] if al["champion"] != al["candidate"] else al["baseline"]
    recs = frame.drop(columns=["default"]).iloc[:400].to_dict(orient="records")
    headers = {"X-API-Key": KEY}
    with running(create_app(ServeSettings(case=case, canary=f"{other}:30%", warmup=5))) as url, \
            httpx.Client(base_url=url, timeout=60, headers=headers) as c:
        out = c.post("/predict", json=recs).json()["predictions"]
        truth = frame["default"].iloc[:400].tolist()
        assert c.post("/labels", json=[{"request_id": a["request_id"], "label": y}
                                       for a, y in zip(out, truth, strict=True)]).json()["attached"] == 400
    assert main(["monitor", str(root), "--quiet"]) in (0, 1)
    steps.append(("served", score(root, capsys)))

    # 6. the canary is promoted, and the server may roll back by itself
    assert main(["promote", str(root), "--version", str(other), "--force", "--why", "the canary held"]) == 0
    spec["serving"]["auto_rollback"] = True
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(root, "commit", "-q", "-am", "auto-rollback on")
    steps.append(("released", score(root, capsys)))

    totals = [s["total"] for _, s in steps]
    assert all(b > a for a, b in zip(totals, totals[1:], strict=False)), [(n, s["total"]) for n, s in steps]
    flipped = {name: sorted(k for k, v in statuses(after).items() if v == "automated"
                            and statuses(before)[k] != "automated")
               for (_, before), (name, after) in zip(steps, steps[1:], strict=False)}
    assert {"data.4", "data.7"} <= set(flipped["checked"])
    assert "model.1" in flipped["committed"]
    assert {"data.1", "model.3", "model.5", "model.6", "model.7", "infrastructure.1", "infrastructure.3",
            "infrastructure.4"} <= set(flipped["run"])
    assert {"model.2", "infrastructure.5", "monitoring.2", "monitoring.3", "monitoring.5",
            "monitoring.7"} <= set(flipped["served"])
    assert {"infrastructure.6", "infrastructure.7", "monitoring.6"} <= set(flipped["released"])
    final = steps[-1][1]
    assert final["score"] > steps[3][1]["score"] and final["score"] >= 3, final["groups"]
    assert statuses(final)["data.5"] == "automated"  # an API key and declared sensitive columns

    # the report shows it, in a browser
    assert main(["report", str(root), "--quiet"]) == 0
    view = open_report(root / "report" / "index.html")
    view.assert_healthy()
    section = view.page.locator("#readiness")
    text = section.inner_text()
    section.screenshot(path=str(artifacts / "readiness.png"))
    assert f"ML Test Score {final['score']:g} of 7" in text and "infrastructure.6" in text
