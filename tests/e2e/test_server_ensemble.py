"""A bake-off ensemble as the registered champion, served by the real server on 127.0.0.1: loaded through
the trusted-type registry, answered by its fast path, with conformal sets and SHAP that add up."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mlcase.bundle import ModelBundle
from tests.e2e.test_server import running
from tests.serving_case import make_case, records, register

pytestmark = pytest.mark.slow


def test_an_ensemble_champion_is_served_like_any_model(tmp_path):
    from mlcase.bakeoff.ensemble import make_ensemble
    from mlcase.candidates import build_pipeline, column_groups, fit_with_deadline
    from mlcase.conformal import calibrate, predict_sets
    from mlcase.serve.app import ServeSettings, create_app

    case, ds = make_case(tmp_path / "churn", n=1500)
    schema = ds.schema.to_dict()
    groups = column_groups(ds.X_train, schema)
    members = []
    for fam in ("logistic", "lightgbm", "xgboost"):
        pipe = build_pipeline(fam, "binary", groups, {"n_estimators": 50}, seed=0)
        fit_with_deadline(pipe, ds.X_train, ds.y_train)
        members.append((fam, pipe))
    champion = ModelBundle(model=make_ensemble("binary", members, [0.5, 0.3, 0.2]), name="ensemble",
                           role="candidate", task="binary", features=list(ds.features), schema=schema,
                           classes=ds.classes, positive=ds.positive, threshold=0.3)
    calibrate(champion, ds.X_valid, ds.y_valid, alpha=0.1)
    version = register(case, champion, aliases=["champion"])
    app = create_app(ServeSettings(case=case, warmup=20))
    recs = records(ds, n=30)
    with running(app) as url:
        ready = httpx.get(f"{url}/ready").json()
        batch = httpx.post(f"{url}/predict", json=recs[:20]).json()["predictions"]
        singles = [httpx.post(f"{url}/predict", json=r).json()["predictions"][0] for r in recs[20:]]
        explained = httpx.post(f"{url}/predict?explain=true", json=recs[0]).json()["predictions"][0]
    assert ready["model"]["version"] == version and ready["model"]["fast_path"].startswith("ensemble of")
    assert ready["warmup"]["fast_path"]["model"]["max_abs_diff"] <= 1e-9
    answers = batch + singles
    frame = ds.X_test.iloc[:30]
    expect = champion.scores(frame)
    assert np.max(np.abs(np.array([a["score"] for a in answers]) - expect)) <= 1e-9
    assert [a["conformal"] for a in answers] == predict_sets(champion, frame)
    assert {(a["tier"], a["model_version"]) for a in answers} == {("model", version)}
    e = explained["explanation"]
    total = e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
    assert total == pytest.approx(e["output"], abs=1e-5) and e["output_space"] == "log_odds"
    assert 1 / (1 + np.exp(-e["output"])) == pytest.approx(explained["score"], abs=1e-5)
