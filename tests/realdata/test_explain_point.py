"""A regression served through its cost map says so beside its explanation.

Where the costs of under- and over-prediction differ from the squared error the model was fitted on, the served
prediction is the score mapped to the cheapest quantile (``intercept + slope x score``). ``mlcase explain`` printed
Ecdat::MedExp's ridge as ``prediction 54.756`` above contributions summing to ``output +243.3322``, the score, with
nothing between the two numbers. The row's notes now give the map, so the contributions can be read on the
prediction's scale.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from mlcase import tracking
from mlcase.case import load_case
from mlcase.cli import main

from .tables import BY_ID, run_case


@pytest.fixture(scope="module")
def medexp(tmp_path_factory, empty_store):
    folder = tmp_path_factory.mktemp("point") / "medexp"
    BY_ID["medexp-random"].write(folder, candidates=["ridge"], bakeoff={"ensemble": False, "bag": False},
                                 analysis={"enabled": False}, evaluation={"bootstrap": 200})
    run_case(folder, empty_store)
    return folder


def test_a_mapped_prediction_gives_its_map_beside_the_score_explained(medexp):
    bundle = tracking.load_bundle(load_case(medexp), alias="candidate")
    a, b = bundle.point["intercept"], bundle.point["slope"]
    assert abs(b - 1) > 0.1            # MedExp's skew: the median is far below the mean the ridge estimates
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["explain", str(medexp), "--row", "0", "--alias", "candidate", "--top", "30", "--json"])
    assert code == 0, err.getvalue()
    row = json.loads(out.getvalue())["rows"][0]
    assert row["output_space"] == "prediction"
    assert row["prediction"] == pytest.approx(max(a + b * row["output"], 0.0), abs=1e-6)
    assert abs(row["prediction"] - row["output"]) > 1
    note = " ".join(row["notes"])
    assert f"served prediction {row['prediction']:.6g} is {a:.6g} + {b:.6g} x score" in note
    # the note's reading: intercept + slope x (base + contributions) is the prediction (above the floor)
    shares = a + b * (row["base_value"] + sum(c["contribution"] for c in row["contributions"]) + row["other"])
    if row["prediction"] > 0:
        assert shares == pytest.approx(row["prediction"], abs=1e-6)
