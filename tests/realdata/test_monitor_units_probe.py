"""Monitoring counts units, not requests: mlmRev::Contraception's test women (data.id ``woman``, logged as
``unit_id``) each sent twice to the server with a live holdout that never acts, their true outcomes fed back.

A woman sent twice is one woman: the holdout's counts are units (with the requests beside them), and every interval
is the one her repeated requests are worth. With identical inputs sent twice, the clustered Wilson interval of a
share is exactly Wilson's on the units sent once, and a mean's is statsmodels' OLS with errors clustered by unit;
drift is tested on one request per unit and window, so the doubled log's p-values are the single log's. Before,
carData::Mroz's 30 held-out women sent twice read "holdout: 60 units", the value given up [0.70, 5.97] (excluding
zero) where the women give [-0.51, 7.17], and age's KS p-value 0.017 where the women sent once give 0.103.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from fastapi.testclient import TestClient
from statsmodels.stats.proportion import proportion_confint

from mlcase.case import load_case
from mlcase.cli import main
from mlcase.commands.monitoring import label_lines
from mlcase.data import prepare
from mlcase.monitor import monitor
from mlcase.serve.app import create_app
from tests.serving_case import send_in_app

pytestmark = pytest.mark.slow

COSTS = {"true_positive": 5, "false_positive": 5, "false_negative": 20, "true_negative": 0}  # the table's


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    """The contraception case's test rows served twice (same women, new requests), every outcome labelled."""
    run = runs.copy("contraception-group", tmp_path_factory.mktemp("units") / "case")
    folder = run["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {**(spec.get("serving") or {}), "holdout": 0.25, "holdout_policy": "never", "salt": "units"}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    ds = prepare(case)
    rows = ds.rows("test").drop(columns=["use"])
    recs = json.loads(rows.to_json(orient="records"))
    truth = [ds.classes[int(v)] for v in ds.y[ds.split.test]]
    with TestClient(create_app({"case": case, "warmup": 0})) as client:
        sent = send_in_app(client, recs, truth, 2, "woman")
    with sqlite3.connect(folder / "predictions.db") as con:
        log = pd.read_sql("SELECT request_id, unit_id, model_decision, score FROM predictions", con)
    return folder, sent.merge(log, on="request_id")


def _flag(folder: Path, d: pd.DataFrame) -> np.ndarray:
    """The model's would-be flag on the holdout as monitoring reads it: a deferral to review is its score at the
    served model's threshold."""
    from mlcase.monitor.run import default_bundle

    with contextlib.redirect_stderr(io.StringIO()):
        threshold = default_bundle(load_case(folder))[0].threshold   # what the server serves: the baseline here
    md, score = d["model_decision"].to_numpy(), d["score"].to_numpy(dtype=float)
    return np.where(md == "flag", 1, np.where(md == "auto", 0, (score >= threshold).astype(int)))


def _cost(y, f):
    return np.where(f == 1, np.where(y == 1, COSTS["true_positive"], COSTS["false_positive"]),
                    np.where(y == 1, COSTS["false_negative"], COSTS["true_negative"]))


def _clustered_t(x: np.ndarray, units: pd.Series) -> tuple[float, float]:
    fit = sm.OLS(x.astype(float), np.ones(len(x))).fit(cov_type="cluster",
                                                       cov_kwds={"groups": pd.factorize(units)[0]}, use_t=True)
    lo, hi = fit.conf_int(alpha=0.05)[0]
    return float(lo), float(hi)


def test_the_holdout_counts_units_and_its_intervals_are_the_units_worth(served):
    folder, sent = served
    assert (sent["unit_id"] == sent["woman"]).all()   # the server logs data.id as the unit
    assert sent.groupby("woman")["arm"].nunique().max() == 1
    res = monitor(folder)
    h = res.overall["by_source"]["holdout"]
    hold = sent[sent["arm"] == "holdout"]
    women = hold["woman"].nunique()
    assert women >= 40 and len(hold) == 2 * women
    # was: n 2 x women and no unit anywhere ("holdout: N units" printed the requests)
    assert (h["n"], h["units"], h["labelled"], h["labelled_units"]) == (len(hold), women, len(hold), women)
    assert h["labels"]["units"] == women

    y = (hold["y"] == "Y").to_numpy().astype(int)
    f = _flag(folder, hold)
    once = hold["rep"] == 0
    yo, fo = y[once.to_numpy()], f[once.to_numpy()]
    # identical inputs twice: each share's interval is Wilson's on the women sent once (was: on twice as many rows)
    for name, k, n in (("precision", (yo & fo).sum(), fo.sum()), ("recall", (yo & fo).sum(), yo.sum()),
                       ("positive_rate", yo.sum(), len(yo)), ("accuracy", (yo == fo).sum(), len(yo))):
        lo, hi = proportion_confint(int(k), int(n), alpha=0.05, method="wilson")
        assert h[name]["value"] == pytest.approx(k / n), name
        assert (h[name]["low"], h[name]["high"]) == (pytest.approx(lo), pytest.approx(hi)), (name, h[name])
        assert h[name]["units"] == n and h[name]["n"] == 2 * n
    # a mean's interval is the statsmodels OLS one clustered by woman
    cost = _cost(y, f)
    assert h["cost_model"]["value"] == pytest.approx(cost.mean())
    lo, hi = _clustered_t(cost, hold["woman"])
    assert (h["cost_model"]["low"], h["cost_model"]["high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert h["cost_model"]["units"] == women
    # the sizing counts units: with every woman sent twice, the units needed are the independent rows needed
    assert h["sizing"]["holdout_units_needed"] == h["sizing"]["holdout_rows_needed"]


def test_realized_performance_and_drift_count_each_woman_once(served, tmp_path):
    """Realized metrics keep every request (each is a decision) with intervals clustered by woman; drift tests one
    request per woman and window, so the doubled log's p-values are those of the log of each woman once, and the
    estimate before labels has the band of the women once."""
    folder, sent = served
    res = monitor(folder)
    w = res.windows[0]
    real = w.get("realized") or w.get("realized_so_far")
    assert real["n"] == len(sent) and real["units"] == sent["woman"].nunique()
    acc = real["ci"]["accuracy"]
    once = sent[sent["rep"] == 0]
    hit_once = int(round(acc["value"] * len(once)))
    lo, hi = proportion_confint(hit_once, len(once), alpha=0.05, method="wilson")
    assert (acc["low"], acc["high"]) == (pytest.approx(lo), pytest.approx(hi))

    single = Path(shutil.copytree(folder, tmp_path / "once"))
    with sqlite3.connect(single / "predictions.db") as con:
        drop = sent.loc[sent["rep"] == 1, "request_id"].tolist()
        con.executemany("DELETE FROM predictions WHERE request_id = ?", [(r,) for r in drop])
    ref = monitor(single).windows[0]
    assert set(w["drift"]) == set(ref["drift"])
    for col, st in w["drift"].items():
        assert st["p_value"] == pytest.approx(ref["drift"][col]["p_value"], abs=1e-9), col   # was: smaller
        assert st["psi"] == pytest.approx(ref["drift"][col]["psi"], abs=1e-9), col
    assert w["score_drift"]["p_value"] == pytest.approx(ref["score_drift"]["p_value"], abs=1e-9)
    # the estimate before labels: a woman's requests share one outcome, so its band is the women's (was: narrower)
    for name in ("accuracy", "precision", "recall", "positive_rate", "cost"):
        est, one = w["estimated"][name], ref["estimated"][name]
        assert est["value"] == pytest.approx(one["value"]), name
        assert (est["low"], est["high"]) == (pytest.approx(one["low"]), pytest.approx(one["high"])), name


def test_units_survive_compaction_and_the_cli_says_units(served, tmp_path):
    """The compacted Parquet part carries unit_id: the holdout's counts and intervals are the same read from it, and
    `mlcase monitor` prints units beside requests (was "holdout: 2 x N units ... on 2 x N labels")."""
    folder, sent = served
    before = monitor(folder).overall["by_source"]["holdout"]
    moved = Path(shutil.copytree(folder, tmp_path / "compacted"))
    with sqlite3.connect(moved / "predictions.db") as con:   # the rows two days older: their window is closed
        ts = pd.to_datetime(pd.read_sql("SELECT min(ts) AS t FROM predictions", con)["t"].iloc[0])
        shift = int((ts - pd.Timedelta(days=2)).normalize().timestamp())
        con.execute("UPDATE predictions SET ts = strftime('%Y-%m-%dT%H:%M:%fZ', ts, ?)",
                    (f"-{int(ts.timestamp()) - shift} seconds",))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["log", "compact", str(moved)]) == 0
    assert list((moved / "predictions.compacted").rglob("*.parquet"))
    res = monitor(moved)
    after = res.overall["by_source"]["holdout"]
    for key in ("n", "units", "labelled", "labelled_units"):
        assert after[key] == before[key], key
    for name in ("precision", "recall", "cost_model"):
        assert (after[name]["low"], after[name]["high"]) == (pytest.approx(before[name]["low"]),
                                                             pytest.approx(before[name]["high"])), name
    line = next(x for x in label_lines(res.to_dict()) if x.startswith("holdout:"))
    assert line.startswith(f"holdout: {before['units']} units ({before['n']} requests)"), line


def test_a_records_file_counts_its_units_by_data_id(served, tmp_path):
    """A CSV of records (request ids beside the data.id column ``woman``) with every woman twice reads as the women
    once: realized accuracy, cost and the drift tests are those of the file with each woman once."""
    folder, _ = served
    case = load_case(folder)
    rows = prepare(case).rows("test")
    once = rows.assign(request_id=[f"a{i}" for i in range(len(rows))])
    twice = pd.concat([once, once.assign(request_id=[f"b{i}" for i in range(len(rows))])])
    once.to_csv(tmp_path / "once.csv", index=False)
    twice.to_csv(tmp_path / "twice.csv", index=False)
    a = monitor(folder, log=tmp_path / "once.csv").windows[0]
    b = monitor(folder, log=tmp_path / "twice.csv").windows[0]
    ra, rb = a.get("realized") or a["realized_so_far"], b.get("realized") or b["realized_so_far"]
    assert (rb["n"], rb["units"]) == (2 * len(rows), len(rows))   # was: no units, intervals of 2 x the women
    for name in ("accuracy", "cost"):
        assert rb[name] == pytest.approx(ra[name])
        assert (rb["ci"][name]["low"], rb["ci"][name]["high"]) == (pytest.approx(ra["ci"][name]["low"]),
                                                                   pytest.approx(ra["ci"][name]["high"])), name
    for col, st in b["drift"].items():
        assert st["p_value"] == pytest.approx(a["drift"][col]["p_value"], abs=1e-9), col


def test_a_log_that_drops_the_unit_says_it_counts_requests(runs, tmp_path):
    """With data.id dropped from the log (serving.log_inputs: {woman: drop}), monitoring cannot count units: it says
    so, naming the setting that would (was: silent, each request read as an independent unit)."""
    run = runs.copy("contraception-group", tmp_path / "case")
    folder = run["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {**(spec.get("serving") or {}), "log_inputs": {"woman": "drop"}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    rows = json.loads(prepare(case).rows("test").drop(columns=["use"]).head(60).to_json(orient="records"))
    with TestClient(create_app({"case": case, "warmup": 0})) as client:
        for _ in range(2):
            assert client.post("/predict", json=rows).status_code == 200
    with sqlite3.connect(folder / "predictions.db") as con:
        assert con.execute("SELECT count(*), count(unit_id) FROM predictions").fetchone() == (120, 0)
    res = monitor(folder)
    said = [w["message"] for w in res.warnings if w["kind"] == "units"]
    assert len(said) == 1 and "drops data.id 'woman'" in said[0] and "{woman: hashed}" in said[0], res.warnings


def test_replay_against_another_version_clusters_its_intervals_by_unit(served):
    """`mlcase replay --version N` read each record as an independent draw: the test women each sent twice gave a
    cost-difference interval as if from twice the women. Its intervals are now clustered by unit as monitoring's are:
    statsmodels' clustered OLS of the per-record difference on a constant, with units - 1 degrees of freedom."""
    from scipy.stats import t

    from mlcase import results
    from mlcase.releases.against import replay_against

    folder, sent = served
    # the log is the baseline's (no champion: NO_GO); replayed against the candidate
    other = int(results.load(load_case(folder), "registry")["candidate_version"])
    r = replay_against(folder, other)
    rows = r.per_row.dropna(subset=["cost_logged", "cost_version"])
    d = (rows["cost_version"] - rows["cost_logged"]).to_numpy(float)
    women = rows["unit_id"].astype(str).to_numpy()
    assert r.cost["n"] == len(rows) == len(sent) and r.cost["units"] == len(set(women)) == len(sent) // 2
    fit = sm.OLS(d, np.ones(len(d))).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(women)[0]})
    half = float(t.ppf(0.975, len(set(women)) - 1)) * max(float(fit.bse[0]), d.std(ddof=1) / np.sqrt(len(d)))
    assert r.cost["diff"] == pytest.approx(d.mean())
    assert (r.cost["low"], r.cost["high"]) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-3, abs=1e-9)
    rows_half = float(t.ppf(0.975, len(d) - 1)) * d.std(ddof=1) / np.sqrt(len(d))
    assert half > 1.3 * rows_half   # each woman twice: about sqrt(2) wider than the records read as independent
    assert f"of {len(set(women))} units" in r.summary()
