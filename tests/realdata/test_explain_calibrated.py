"""A calibrated model's explanation says that its output is the model's before calibration, with both numbers.

A binary model calibrated after the bake-off is explained through the pipeline inside the calibration wrapper
(calibration is a monotone map, so the contributions keep their sign and order). ``mlcase explain`` printed
modeldata::credit_data's CatBoost as ``P(bad) = 0.178`` above ``output -1.0360`` (log-odds: 0.262) with nothing
between them, and the server's and replay's explanations carried no word of it: the note that said so was
kept for the report's global importance only. Each row's explanation now carries its notes, and a calibrated
model's note gives the probability before calibration beside the served one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcase import tracking
from mlcase.case import load_case

from .tables import BY_ID, run_case
from .tables import cli as _cli


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, empty_store):
    table = BY_ID["credit-random"]
    folder = tmp_path_factory.mktemp("calibrated") / "credit"
    table.write(folder, candidates=["logistic"], evaluation={"calibrate": "sigmoid", "bootstrap": 200},
                bakeoff={"ensemble": False, "bag": False}, analysis={"enabled": False})
    run_case(folder, empty_store)
    return folder


def test_a_calibrated_model_says_its_output_is_before_calibration(calibrated):
    case = load_case(calibrated)
    bundle = tracking.load_bundle(case, alias="candidate")
    assert type(bundle.model).__name__ == "CalibratedClassifierCV"
    code, out, err = _cli("explain", str(calibrated), "--row", "3", "--alias", "candidate", "--json")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert row["output_space"] == "log_odds"
    before = 1 / (1 + np.exp(-row["output"]))
    served = row["prediction"]
    # the calibration moves it by as little as 1e-4 where the search found a well calibrated logistic regression;
    # the note gives both numbers whatever the gap
    note = " ".join(row["notes"])
    assert f"P {before:.3f}" in note and f"probability {served:.3f}" in note and "before its calibration" in note
    code, out, err = _cli("explain", str(calibrated), "--row", "3", "--alias", "candidate")
    assert code == 0
    assert f"before its calibration (P {before:.3f})" in " ".join(err.split())
