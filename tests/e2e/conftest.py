"""Shared fixtures of the end-to-end tests.

Browser tests drive Debian's Chromium (``/usr/bin/chromium``) through Python
Playwright; ``playwright install`` is never needed. ``browser`` is one headless
Chromium for the whole session; ``open_report`` opens a report file and records
console errors, page errors and any request that leaves the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase import results
from mlcase.case import case_from_spec
from mlcase.cli import main
from mlcase.report.sections import Section, figure, table

from ..browser import CHROMIUM, CHROMIUM_ARGS, LOCAL_SCHEMES, MARKS, ReportView, chromium_missing  # noqa: F401
from ..conftest import EXAMPLES

CAPACITY = 0.1
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (gitignored): screenshots and other outputs worth a look."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------- a realistic report case
def _roc(y: np.ndarray, s: np.ndarray) -> tuple[list[float], list[float], float]:
    order = np.argsort(-s, kind="stable")
    y = y[order]
    tpr = np.concatenate([[0.0], np.cumsum(y) / y.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y) / (1 - y).sum()])
    return fpr.tolist(), tpr.tolist(), float(np.trapezoid(tpr, fpr))


@pytest.fixture
def report_case(tmp_path):
    """A churn case in ``tmp_path`` with saved results: decision GO, data, registry and model scores."""
    rng = np.random.default_rng(7)
    n = 400
    tenure = rng.integers(0, 72, n)
    charges = rng.normal(70, 20, n).round(2)
    contract = rng.choice(["month-to-month", "one year", "two year"], n, p=[0.55, 0.25, 0.2])
    logit = -1.0 - 0.04 * tenure + 0.02 * (charges - 70) + 1.2 * (contract == "month-to-month")
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({"tenure": tenure, "charges": charges, "contract": contract,
                          "churn": np.where(churn, "Yes", "No")})
    frame.to_csv(tmp_path / "customers.csv", index=False)
    spec = {
        "name": "telco-churn",
        "decision": "Which customers should the retention team call this month?",
        "owner": "Head of customer retention",
        "task": "binary",
        "data": {"source": "customers.csv", "target": "churn", "positive": "Yes"},
        "problem": {"current_process": "call every month-to-month customer with tenure under 6 months",
                    "volume": "12000/month"},
        "goals": ["Keep more customers for the same calling effort", "Stay within the call centre's capacity"],
        "non_goals": ["Changing prices or contracts"],
        "owners": {"model": "data science team", "decision": "retention team lead"},
        "assumptions": [{"text": "Between 10% and 40% of customers churn",
                         "check": "avg(CASE WHEN churn = 'Yes' THEN 1 ELSE 0 END) BETWEEN 0.1 AND 0.4"}],
        "costs": {"false_negative": 500, "false_positive": 40, "true_positive": "40 + 0.1 * charges"},
        "constraints": {"review_capacity": CAPACITY, "latency_p95_ms": 50, "min_lift": 0.5, "operating_cost": 0.05},
        "baselines": ["majority", {"rule": "contract = 'month-to-month' AND tenure < 6", "name": "current rule"}],
    }
    case = case_from_spec(spec, tmp_path)
    test = np.arange(n)[-100:]
    y = churn[test].astype(int)
    scores = {
        "lightgbm": 1 / (1 + np.exp(-(logit[test] + rng.normal(0, 0.6, 100)))),
        "logistic": 1 / (1 + np.exp(-(logit[test] + rng.normal(0, 1.2, 100)))),
        "current rule": ((contract[test] == "month-to-month") & (tenure[test] < 6)).astype(float),
    }
    results.save(case, "data", {"rows": n, "features": ["tenure", "charges", "contract"], "task": "binary",
                                "split": {"method": "stratified", "n_train": 240, "n_valid": 60, "n_test": 100}})
    results.save(case, "registry", {"candidate_version": 3, "baseline_version": 2, "champion_version": 3})
    results.save(case, "fixture_scores", {"y": y, "scores": {k: v.round(4) for k, v in scores.items()}})
    results.save(case, "decision", {
        "verdict": "GO",
        "reasons": ["lightgbm saves $3.12 per decision over the current rule (95% CI $1.80 to $4.40), "
                    "above the $0.50 minimum lift",
                    "the CI of the lift excludes zero and the value covers the $0.05 operating cost",
                    "p95 latency 4.1 ms is under the 50 ms limit"],
        "champion": "lightgbm",
        "evidence": {"candidate": "lightgbm", "best_baseline": "current rule", "trivial_baseline": "majority",
                     "cost_per_decision": {"lightgbm": 41.2, "current rule": 44.32, "majority": 55.0},
                     "lift_money_per_decision": {"estimate": 3.12, "ci_low": 1.8, "ci_high": 4.4},
                     "required_per_decision": 0.55, "latency_ok": True, "n_test": 100,
                     "value_per_period": {"period": "month", "decisions": 12000.0, "low": 21600.0,
                                          "expected": 37440.0, "high": 52800.0}},
    })
    return case


def score_plots(res: dict) -> list[Section]:
    """A report section built from ``.mlcase/fixture_scores.json``: a table and three Plotly figures."""
    import plotly.graph_objects as go

    y = np.asarray(res["fixture_scores"]["y"])
    scores = {k: np.asarray(v) for k, v in res["fixture_scores"]["scores"].items()}
    roc = go.Figure()
    rows = []
    for name, s in scores.items():
        fpr, tpr, auc = _roc(y, s)
        roc.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {auc:.3f})"))
        rows.append({"model": name, "roc_auc": auc, "flagged": int((s >= 0.5).sum()), "positives": int(y.sum())})
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                             showlegend=False))
    roc.update_layout(title="ROC on the test rows", xaxis_title="false positive rate",
                      yaxis_title="true positive rate")
    thresholds = np.linspace(0.01, 0.99, 99)
    s = scores["lightgbm"]
    cost = [float(np.mean(np.where(s >= t, np.where(y == 1, 40, 40), np.where(y == 1, 500, 0)))) for t in thresholds]
    flagged = [float(np.mean(s >= t)) for t in thresholds]
    feasible = [t for t, f in zip(thresholds, flagged, strict=True) if f <= CAPACITY]
    chosen = min(feasible, key=lambda t: cost[int(round(t * 100)) - 1])
    curve = go.Figure(go.Scatter(x=thresholds, y=cost, mode="lines", name="cost per decision"))
    curve.add_vline(x=chosen, line_dash="dash", annotation_text=f"chosen {chosen:.2f}", annotation_position="top right")
    curve.add_vrect(x0=0, x1=min(feasible), fillcolor="#b3261e", opacity=0.08, line_width=0,
                    annotation_text="flags more than capacity", annotation_position="top left")
    curve.update_layout(title="Cost vs threshold (lightgbm)", xaxis_title="threshold",
                        yaxis_title="cost per decision ($)")
    flag = s >= chosen
    cm = [[int(((y == 0) & ~flag).sum()), int(((y == 0) & flag).sum())],
          [int(((y == 1) & ~flag).sum()), int(((y == 1) & flag).sum())]]
    heat = go.Figure(go.Heatmap(z=cm, x=["not flagged", "flagged"], y=["stayed", "churned"],
                                text=cm, texttemplate="%{text}", colorscale="Blues"))
    heat.update_layout(title="Confusion at the chosen threshold", height=320)
    html = (table(rows, caption="Test rows per model") + figure(roc, caption="Higher and to the left is better.")
            + figure(curve) + figure(heat))
    return [Section(id="scores", title="Models on the test rows", html=html, order=30, status="ok")]


score_plots.STAGES = ("fixture_scores",)


# --------------------------------------------------------------------------- a trained case (one per session)
@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A case folder after `mlcase run`, with a served prediction log and the inputs the tests break.

    Shared by the bad-input, robustness and fuzz tests; each works on a copy (never on this folder). Made once per
    test run, not once per xdist worker: with ``--dist loadfile`` the three files land on both workers, and each
    made its own (25 to 60 s of CI each time)."""
    import fcntl
    import os

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _train(tmp_path_factory.mktemp("bad-input") / "case")
    shared = tmp_path_factory.getbasetemp().parent / "e2e-shared"
    shared.mkdir(exist_ok=True)
    root = shared / "trained" / "case"
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "trained.done").exists():
            if root.parent.exists():   # a worker that failed half-way: start again
                import shutil

                shutil.rmtree(root.parent)
            _train(root)
            (shared / "trained.done").write_text("")
    return root


def _train(root: Path) -> Path:
    root.mkdir(parents=True)
    frame = pd.read_csv(EXAMPLES / "default" / "default.csv").head(1500)
    frame.to_csv(root / "default.csv", index=False)
    spec = yaml.safe_load((EXAMPLES / "default" / "case.yaml").read_text())
    # the baselines alone took 5.4 s of a 6 s budget at load 8 on 2 cores: leave the candidate room for a trial
    spec.update(candidates=["logistic"], budget="15s")
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(root), "--quiet"]) == 0

    from fastapi.testclient import TestClient

    from mlcase.serve.app import create_app

    records = frame.drop(columns=["default"]).head(60).to_dict("records")
    with TestClient(create_app({"case": str(root), "warmup": 0})) as client:
        answer = client.post("/predict", json=records)
        assert answer.status_code == 200, answer.text
    body = answer.json()
    ids = [a["request_id"] for a in (body["predictions"] if isinstance(body, dict) else body)]
    pd.DataFrame({"request_id": ids, "label": frame["default"].head(60)}).to_csv(root / "labels.csv", index=False)

    scoring = frame.drop(columns=["default"]).head(40)
    scoring.to_csv(root / "in.csv", index=False)
    scoring.drop(columns=["income"]).to_csv(root / "in_missing.csv", index=False)
    scoring.assign(balance="lots").to_csv(root / "in_types.csv", index=False)
    (root / "in.json").write_text('{"a": 1}')
    scoring.head(5).to_csv(root / "out.csv", index=False)  # an earlier output that must survive
    pd.DataFrame({"foo": [1], "bar": [2]}).to_csv(root / "nocols.csv", index=False)
    pd.DataFrame({"request_id": ["x1", "x2"], "label": ["Yes", "No"]}).to_csv(root / "unknown_ids.csv", index=False)
    (root / "garbage.parquet").write_bytes(b"not a parquet file\x00\x01")

    rng = np.random.default_rng(0)
    n = 600
    pd.DataFrame({"user": range(n), "arm": rng.choice(["control", "treatment"], n),
                  "conv": rng.integers(0, 2, n), "rev": rng.exponential(10, n).round(2),
                  "txt": rng.choice(["x", "y"], n)}).to_csv(root / "exp.csv", index=False)
    pd.DataFrame({"user": range(n)}).to_csv(root / "ids.csv", index=False)
    for name in ("mlflow.db", "predictions.db", "report/index.html", "model_card.md", ".mlcase/decision.json"):
        assert (root / name).is_file(), name
    return root
