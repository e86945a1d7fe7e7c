"""A group split's verdict counts its test groups, not its rows: modeldata::Sacramento split by city holds out 8
cities (195 sales). Resampling rows, the case read USE_BASELINE (the linear model over the training mean); the
lift's CI then came from 195 rows moving together by city. Resampling whole cities, a CI from 8 of them is no
evidence either way, and the verdict says so, with what would settle it."""

from __future__ import annotations

import numpy as np
import pytest

from mlcase import results
from mlcase.data import prepare
from mlcase.decision import MIN_TEST_UNITS

pytestmark = pytest.mark.slow


def test_a_verdict_on_fewer_than_ten_test_cities_is_inconclusive(runs):
    run = runs.get("sacramento-group")
    case, summary = run["case"], run["summary"]
    ev = results.load(case, "evaluation")
    cities = prepare(case).rows("test")["city"]
    n = cities.nunique()
    assert n < MIN_TEST_UNITS and len(cities) == ev["n_test"]
    assert ev["resampled"] == {"unit": "group", "column": "city", "n_test_groups": n}
    assert summary["decision"] == "INCONCLUSIVE"
    said = f"the test holds {n} city values ({len(cities):,} rows; the CIs resample whole groups)"
    assert said in summary["reasons"][0]
    assert f"hold out at least {MIN_TEST_UNITS} test city values (rows of more city values, or a larger " \
           "split.test_size)" in summary["reasons"]
    # every lift over the floor carries its design effect: the cluster-robust variance over the rows' one
    over = ev["lift_over_model_free"]
    assert all(d["design_effect"] > 0 for d in over.values() if d["ci_low"] != d["ci_high"])
    assert np.isfinite(ev["lift"]["design_effect"])
