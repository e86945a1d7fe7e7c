"""`mlcase monitor` end to end on real data (ISLR Default): a registered champion, a SQLite
prediction log in the serving layout, delayed labels from a file; exit 0 / 1 / 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.serve.predlog import COLUMNS, SQLITE_DDL

SPEC = """name: default-mon
decision: which card holders to call before they default
task: binary
data: {source: data.csv, target: default, positive: "Yes", id: account_id, label_delay: 2d}
costs: {false_positive: 5, false_negative: 100}
monitoring: {window: 1d, max_fallback_share: 0.05}
assumptions:
  - text: "Under 40% of the card holders are students"
    check: "avg(CASE WHEN student = 'Yes' THEN 1.0 ELSE 0 END) < 0.4"
"""
START = pd.Timestamp("2024-05-01", tz="UTC")


@pytest.fixture(scope="module")
def champion_case(tmp_path_factory, default_df):
    """A case folder with a logistic champion registered in its own MLflow store."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlcase import tracking
    from mlcase.bundle import ModelBundle
    from mlcase.data import prepare
    from mlcase.monitor import build_reference

    root = tmp_path_factory.mktemp("monitor-case")
    default_df.to_csv(root / "data.csv", index=False)
    (root / "case.yaml").write_text(SPEC)
    case = load_case(root)
    ds = prepare(case)
    pre = ColumnTransformer([("num", StandardScaler(), ["balance", "income"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["student"])])
    model = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(ds.X_train, ds.y_train)
    bundle = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=ds.features,
                         schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.05)
    bundle.reference = build_reference(ds, bundle)
    with tracking.run(case, "register"):
        version = tracking.log_bundle(case, bundle, aliases=["champion"])
    return {"root": root, "bundle": bundle, "version": version, "test": ds.rows("test"), "features": ds.features}


def write_log(path: Path, rows: pd.DataFrame, bundle, days: np.ndarray) -> pd.DataFrame:
    """The serving log's tables (docs/contracts.md) holding ``rows`` as served predictions."""
    p = bundle.scores(rows[bundle.features])
    flag = p >= bundle.threshold
    days = pd.Series(days)
    within = days.groupby(days).cumcount() / days.map(days.value_counts())  # spread over each day
    log = pd.DataFrame({"request_id": [f"q{i}" for i in range(len(rows))],
                        "ts": [(START + pd.Timedelta(days=int(d), seconds=int(86399 * w))).isoformat()
                               .replace("+00:00", "Z") for d, w in zip(days, within, strict=True)],
                        "label": rows["default"].to_numpy()})
    con = sqlite3.connect(path)
    for ddl in SQLITE_DDL:  # the serving log's own tables (docs/contracts.md)
        con.execute(ddl)
    recs = rows[bundle.features].to_dict(orient="records")
    con.executemany(f"INSERT INTO predictions ({','.join(COLUMNS[:15])}) VALUES ({','.join('?' * 15)})", [
        (log["request_id"][i], log["ts"][i], 1, "logistic", "model", 0, None, json.dumps(recs[i]), float(p[i]), None,
         "Yes" if flag[i] else "No", "flag" if flag[i] else "auto", None, 1.5, None) for i in range(len(rows))])
    con.commit()
    con.close()
    return log


def run(capsys, *args) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else None), out.err


def test_no_drift_exits_0_and_saves_results(champion_case, tmp_path, capsys):
    test = champion_case["test"].iloc[:1800]
    db = tmp_path / "calm.db"
    write_log(db, test, champion_case["bundle"], np.repeat([0, 1, 2], 600))
    code, data, err = run(capsys, "monitor", champion_case["root"], "--log", db, "--json")
    assert code == 0, err
    assert data["status"] == "ok" and data["alerts"] == [] and data["n_rows"] == 1800
    assert data["model"] == {"name": "logistic", "role": "candidate", "version": champion_case["version"],
                             "alias": "champion", "threshold": 0.05}
    assert [w["n"] for w in data["windows"]] == [600, 600, 600]
    assert all(s["status"] in ("ok", "warn") for w in data["windows"] for s in w["drift"].values())
    # two-day label delay: no window has ended two days before the last prediction
    assert [w["mature"] for w in data["windows"]] == [False, False, False]
    assert all(w["realized"] is None and w["estimated"]["cost"]["value"] > 0 for w in data["windows"])
    saved = results.load(load_case(champion_case["root"]), "monitoring")
    assert saved["n_rows"] == 1800 and saved["status"] == "ok"
    code, _, err = run(capsys, "monitor", champion_case["root"], "--log", db)
    assert code == 0 and "no alerts" in err and "logistic" in err


def test_drift_and_broken_assumption_exit_1_with_reasons(champion_case, tmp_path, capsys):
    test = champion_case["test"].iloc[:1800].copy()
    test.loc[test.index[600:], "balance"] = test["balance"].iloc[600:] + 700.0   # days 1 and 2
    test.loc[test.index[1200:], "student"] = "Yes"                              # day 2: only students
    db = tmp_path / "drift.db"
    write_log(db, test, champion_case["bundle"], np.repeat([0, 1, 2], 600))
    code, data, err = run(capsys, "monitor", champion_case["root"], "--log", db, "--json")
    assert code == 1, err
    windows = [w["window"] for w in data["windows"]]
    drift = {(a["feature"], a["window"]) for a in data["alerts"] if a["kind"] == "drift"}
    assert drift == {("balance", windows[1]), ("balance", windows[2]), ("student", windows[2])}
    broken = [a for a in data["alerts"] if a["kind"] == "assumption"]
    assert [a["window"] for a in broken] == [windows[2]]
    assert broken[0]["assumption"] == "Under 40% of the card holders are students"
    assert "Under 40% of the card holders are students" in broken[0]["message"]
    # a shorter window cuts the same log finer
    code, data, _ = run(capsys, "monitor", champion_case["root"], "--log", db, "--window", "12h", "--json")
    assert code == 1 and len(data["windows"]) == 6 and data["window_seconds"] == 43200


def test_labels_file_gives_realized_cost_of_mature_windows(champion_case, tmp_path, capsys):
    test = champion_case["test"].iloc[:1500]
    db = tmp_path / "labelled.db"
    log = write_log(db, test, champion_case["bundle"], np.repeat([0, 1, 2, 3, 4], 300))
    labels = log[["request_id", "label"]].iloc[:900]            # the first three days have their outcomes
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code, data, err = run(capsys, "monitor", champion_case["root"], "--log", db, "--labels", tmp_path / "labels.csv",
                          "--json")
    assert code == 0, err
    w = data["windows"]
    # windows end at midnight; two days later they are mature (the log runs to the end of day 4)
    assert [x["mature"] for x in w] == [True, True, False, False, False]
    p = champion_case["bundle"].scores(test[champion_case["features"]])[:300]
    y = (test["default"].to_numpy()[:300] == "Yes")
    f = p >= 0.05
    cost = np.where(f, np.where(y, 0.0, 5.0), np.where(y, 100.0, 0.0))
    assert w[0]["realized"]["cost"] == pytest.approx(cost.mean())
    assert w[0]["labels"]["unlabelled_share"] == 0.0 and w[3]["labels"]["unlabelled_share"] == 1.0
    assert w[2]["realized"] is None and w[2]["realized_so_far"]["n"] == 300   # labelled, not final yet
    assert w[3]["realized"] is None
    # unlabelled: the cost expected from the calibrated scores, P(default) * cost if it defaults + the rest
    p3 = champion_case["bundle"].scores(test[champion_case["features"]])[900:1200]
    f3 = p3 >= 0.05
    expected = p3 * np.where(f3, 0.0, 100.0) + (1 - p3) * np.where(f3, 5.0, 0.0)
    assert w[3]["estimated"]["cost"]["value"] == pytest.approx(expected.mean(), rel=1e-9)


def test_bad_input_exits_2_naming_the_fix(champion_case, tmp_path, capsys):
    code, _, err = run(capsys, "monitor", champion_case["root"], "--log", tmp_path / "none.db")
    assert code == 2 and "mlcase: error: --log: no file at" in err and "CSV/Parquet" in err
    db = tmp_path / "x.db"
    write_log(db, champion_case["test"].iloc[:20], champion_case["bundle"], np.zeros(20, int))
    code, _, err = run(capsys, "monitor", champion_case["root"], "--log", db, "--window", "often")
    assert code == 2 and "--window" in err and "1d" in err
    code, _, err = run(capsys, "monitor", champion_case["root"], "--log", db, "--labels", tmp_path / "nope.csv")
    assert code == 2 and "--labels: no file at" in err


@pytest.mark.slow
def test_installed_entry_point_and_report(champion_case, tmp_path):
    test = champion_case["test"].iloc[:600].copy()
    test["balance"] = test["balance"] + 900.0
    db = tmp_path / "drift.db"
    write_log(db, test, champion_case["bundle"], np.zeros(600, int))
    exe = Path(sys.executable).with_name("mlcase")
    proc = subprocess.run([str(exe), "monitor", str(champion_case["root"]), "--log", str(db), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert {a["feature"] for a in data["alerts"] if a["kind"] == "drift"} == {"balance"}
    from mlcase.report.render import write_report

    report = write_report(champion_case["root"])
    outline = {s["id"]: s["status"] for s in report.sections}
    assert outline["monitoring"] == "error"  # alerts show as an error badge
    html = report.path.read_text()
    assert "monitoring-drift" in html and "balance" in html
