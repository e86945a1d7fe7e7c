"""`mlcase analyze` on a regression case: the weak slices and hybrids cost the candidate as the evaluation did."""

from __future__ import annotations


def test_regression_slices_cost_the_candidate_by_its_own_map_not_one_fitted_on_the_test_labels(runs):
    """modeldata::Sacramento (group split by city, 195 test sales): the candidate's point had no slope (its score was
    the cheapest prediction), and the analysis's decide_point then fitted a map on the test rows' own prices: the weak
    slices and the hybrid costed the candidate at $46,542 a decision where the evaluation measured $57,386 on the same
    rows, and 'latitude < 38.48', where it loses to the baseline, went unnamed. Valid and test rows now take the
    model's own map, as evaluated and served."""
    import numpy as np
    import pytest

    from mlcase import results, tracking
    from mlcase import tasks as T
    from mlcase.analysis.core import _decide
    from mlcase.data import prepare
    from mlcase.evaluate.common import features_of

    case = runs.get("sacramento-group")["case"]
    ev, reg = results.load(case, "evaluation"), results.load(case, "registry")
    ds = prepare(case)
    rows, y = ds.rows("test"), ds.y_test
    costs = T.get_task("regression").costs(case, rows)
    name = ev["champion_candidate"]
    bundle = tracking.load_bundle(case, alias=None, version=int(reg["candidate_version"]))
    s = bundle.scores(features_of(rows, bundle, ds))
    got = np.asarray(costs.of(y, _decide("regression", s, bundle.point, ds, y, costs, case)), dtype=float).mean()
    assert got == pytest.approx(ev["cost_per_decision"][name], rel=1e-9)
    # a point with only a floor (no slope) keeps the scores: no map is fitted on the labels passed beside them
    floored = _decide("regression", s, {"floor": 0.0}, ds, y, costs, case)
    assert np.array_equal(floored, np.maximum(s, 0.0))
    hybrid = (results.load(case, "analysis")["slices"].get("hybrid") or {}).get("test")
    if hybrid:
        assert hybrid["cost_of"]["candidate"] == pytest.approx(ev["cost_per_decision"][name], rel=1e-9)
