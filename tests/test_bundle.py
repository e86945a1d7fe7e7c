"""Model bundles: the exact trusted-type list, hashes and HMAC signatures, and real attacks on them.

Every malicious file here is a real skops file (skops' own dump, or its schema edited by hand)
whose payload writes a marker file. Each attack test first shows the payload is live (loading
it the way a prefix allowlist such as ``builtins.`` would, the marker appears), then that
mlcase refuses the file with one line and the marker is never created.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import json
import pkgutil
import typing
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator

import mlcase
from mlcase import bundle as B
from mlcase.bundle import ModelBundle, read_bundle, save_bundle
from mlcase.errors import ModelError

from .test_bakeoff import planted_binary


# =========================================================================== the list itself
def test_the_allowlist_is_exact_names_of_explicit_objects():
    names = B.trusted_type_names()
    for group in B.TRUSTED_TYPES.values():
        for obj in group():
            name = B.type_name(obj)
            # found under the group of its own top-level module (only that group is imported for it)
            assert obj in B.TRUSTED_TYPES[name.split(".", 1)[0]]()
            module, _, qual = name.rpartition(".")
            assert getattr(importlib.import_module(module), qual) is obj  # a real, importable object
            assert name in names
    assert all(not n.endswith(".") and "*" not in n for n in names)  # no prefix, no pattern
    # nothing that runs code it is given: no builtins / operator callables; of functools only the partial type
    assert not [n for n in names if n.startswith(("builtins.", "operator.", "_operator.", "posix.", "os.",
                                                  "subprocess.", "importlib.", "pickle.", "codecs.", "_codecs."))]
    assert [n for n in names if n.startswith("functools.")] == ["functools.partial"]


def _estimator_classes() -> set[str]:
    """Every scikit-learn estimator class defined anywhere in the mlcase package."""
    found = set()
    for info in pkgutil.walk_packages(mlcase.__path__, "mlcase."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, BaseEstimator) and cls.__module__.startswith("mlcase.")
                    and not cls.__dict__.get("_never_stored", False)):  # set on the class itself, not inherited
                found.add(B.type_name(cls))
    return found


def test_every_estimator_class_mlcase_defines_is_trusted():
    # a new ensemble, model-free policy or calibrator wrapper fails here until it gets its line
    classes = _estimator_classes()
    assert {"mlcase.baselines.MajorityBaseline", "mlcase.baselines.RuleBaseline"} <= classes
    assert classes <= B.trusted_type_names(), "add these classes to mlcase.bundle.TRUSTED_TYPES"


# =========================================================================== every family round-trips
def _frame(n=300):
    df = planted_binary(n)
    df["since"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="D")
    df["colour"] = np.where(np.arange(n) % 3 == 0, "red", "blue")  # a categorical feature too
    return df.drop(columns="label"), (df["label"] == "yes").astype(int).to_numpy()


def _targets(X, y):
    return {"binary": y, "multiclass": np.arange(len(y)) % 3, "regression": X["x1"].to_numpy() * 2.0}


def _calibration_methods() -> list[str]:
    from mlcase.spec import EvaluationSpec

    choices = typing.get_args(EvaluationSpec.model_fields["calibrate"].annotation)
    return [m for m in choices if m not in ("auto", "none")]


def _task_names() -> list[str]:
    from mlcase.spec import TaskName

    # a forecast bundle holds forecasters, not these families: they round-trip in tests/test_forecast.py
    return [t for t in typing.get_args(TaskName) if t != "forecast"]


def _round_trip(tmp_path, model, task, X, name):
    b = ModelBundle(model=model, name=name, role="candidate", task=task, features=list(X.columns), schema={},
                    classes=None if task == "regression" else sorted(set(map(str, np.unique(getattr(model, "classes_", [0, 1]))))))
    folder = tmp_path / name.replace(":", "-")
    expected = save_bundle(b, folder)
    loaded = read_bundle(folder, expected)
    np.testing.assert_allclose(loaded.scores(X), b.scores(X))
    return sio.get_untrusted_types(file=str(folder / B.MODEL_FILE))


@pytest.mark.slow
def test_every_family_baseline_and_calibrator_round_trips_through_the_allowlist(tmp_path):
    """Families come from candidates.family_names per task, calibrators from evaluation.calibrate's choices,
    baselines from mlcase.baselines.__all__: a new one is covered without editing this test."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from mlcase import baselines, candidates

    def _calibrator(model, method, X, y):  # what evaluate.calibration stores in a bundle
        return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(X, y)

    X, y = _frame()
    Xs = X[["x1", "x2"]]
    needed: set[str] = set()
    checked = []
    for task in _task_names():
        if task == "ranking":  # LambdaRank / rank:ndcg pipelines and mlcase.rankers, fitted on lists
            found, names = _ranking_round_trips(tmp_path, X, y)
            needed |= found
            checked += names
            continue
        yy = _targets(X, y)[task]
        for family in candidates.family_names(task):
            # the defaults and every zero-shot portfolio entry: an entry may change the pipeline's
            # parts (the linear families' splines hold SciPy's BSpline objects)
            for j, params in enumerate(candidates.portfolio(family, task)):
                pipe = candidates.build_pipeline(family, task, candidates.column_groups(X),
                                                 {**params, "n_estimators": 5, "max_iter": 5})
                candidates.fit_with_deadline(pipe, X, yy)
                needed |= set(_round_trip(tmp_path, pipe, task, X, f"{task}:{family}:{j}"))
                checked.append(f"{task}:{family}:{j}")
            pipe = candidates.build_pipeline(family, task, candidates.column_groups(X),
                                             {"n_estimators": 5, "max_iter": 5})
            candidates.fit_with_deadline(pipe, X, yy)
            if task == "binary" or (task == "multiclass" and family == "logistic"):
                for method in _calibration_methods():
                    cal = _calibrator(pipe, method, X, yy)
                    needed |= set(_round_trip(tmp_path, cal, task, X, f"{task}:{family}:{method}"))
                    checked.append(f"{task}:{family}:{method}")
    for name in baselines.__all__:
        cls = getattr(baselines, name)
        for task in ("binary", "regression"):
            kwargs = {"expression": "x1 > 0.3" if task == "binary" else "2 * x1", "task": task} \
                if name == "RuleBaseline" else {}
            est = cls(**kwargs)
            if (task == "binary") != (est.__sklearn_tags__().estimator_type == "classifier"):
                continue
            est.fit(Xs, _targets(X, y)[task])
            needed |= set(_round_trip(tmp_path, est, task, Xs, f"{task}:{name}"))
            checked.append(f"{task}:{name}")
    assert len(checked) >= 30
    # what the files needed is exactly covered by the list, and the list holds nothing unused but the
    # mlcase functions and classes a case may not exercise here
    assert needed <= B.trusted_type_names()
    assert {"functools.partial", "sklearn.utils.validation.check_array", "lightgbm.basic.Booster",
            "xgboost.core.Booster", "mlcase.rules.Rule", "scipy.interpolate._bsplines.BSpline"} <= needed


def _ranking_round_trips(tmp_path, X, y) -> tuple[set, list]:
    """Every ranking family and ranker of mlcase.rankers.__all__, saved and loaded through the allowlist."""
    from mlcase import candidates, rankers

    lists = X.assign(user=np.arange(len(X)) // 6, item=np.arange(len(X)) % 11, when=pd.Timestamp("2024-01-01")
                     + pd.to_timedelta(np.arange(len(X)), unit="h"))
    gain = y.astype(float)
    levels = rankers.label_levels(gain)
    needed, names = set(), []
    for family in ("lightgbm", "xgboost"):
        pipe = rankers.make_ranker(family, candidates.column_groups(X), {"n_estimators": 5}, 0, 5, levels)
        rankers.fit_ranker(pipe, X, gain, lists["user"].to_numpy(), levels, n_trees=5)
        needed |= set(_round_trip(tmp_path, pipe, "ranking", X, f"ranking:{family}"))
        names.append(f"ranking:{family}")
    made = {"PopularityRanker": lambda: rankers.PopularityRanker(item="item"),
            "RecencyRanker": lambda: rankers.RecencyRanker(item="item", time="when"),
            "RuleRanker": lambda: rankers.RuleRanker("x1 DESC, x2", ["x1", "x2"]),
            "ALSRanker": lambda: rankers.ALSRanker(group="user", item="item", factors=4, iterations=3)}
    for name in rankers.__all__:
        if name in made:
            est = made[name]().fit(lists, gain)
            needed |= set(_round_trip(tmp_path, est, "ranking", lists, f"ranking:{name}"))
            names.append(f"ranking:{name}")
    assert len(names) == 6
    return needed, names


def test_a_model_holding_an_untrusted_class_cannot_be_saved(tmp_path):
    class Smuggled(BaseEstimator):
        def predict(self, X):
            return np.zeros(len(X))

    b = ModelBundle(model=Smuggled(), name="odd", role="candidate", task="regression", features=["a"], schema={})
    with pytest.raises(ModelError, match=r"holds types mlcase does not trust: tests\.test_bundle\..*Smuggled; "
                                         r"a class mlcase builds must be listed in mlcase\.bundle\.TRUSTED_TYPES"):
        save_bundle(b, tmp_path / "b")


# =========================================================================== signatures
def _saved(tmp_path, name="b"):
    X, y = _frame(120)
    from mlcase.baselines import MajorityBaseline

    b = ModelBundle(model=MajorityBaseline().fit(X[["x1"]], y), name="prior", role="baseline", task="binary",
                    features=["x1"], schema={}, classes=["0", "1"])
    folder = tmp_path / name
    return b, folder, save_bundle(b, folder)


def test_the_signing_key_file_is_created_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv(B.SIGNING_KEY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = B.signing_key()
    path = tmp_path / "config" / "mlcase" / "signing.key"
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600 and len(key) == 64
    assert B.signing_key() == key  # read back, not replaced
    monkeypatch.setenv(B.SIGNING_KEY_ENV, "x" * 40)
    assert B.signing_key() == b"x" * 40  # the environment wins
    monkeypatch.setenv(B.SIGNING_KEY_ENV, "short")
    with pytest.raises(ModelError, match="MLCASE_SIGNING_KEY is shorter than 16 characters"):
        B.signing_key()


def test_a_bundle_signed_with_another_key_is_refused(tmp_path, monkeypatch):
    _, folder, expected = _saved(tmp_path)
    assert read_bundle(folder, expected).name == "prior"
    monkeypatch.setenv(B.SIGNING_KEY_ENV, "another-machine-key-0123456789")
    with pytest.raises(ModelError) as err:
        read_bundle(folder, expected, what="registered version 3")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("registered version 3: the signature does not match (signed with key")
    assert "set MLCASE_SIGNING_KEY to the key of the machine that registered it" in msg


@pytest.mark.parametrize("missing", ["model_sha256", "bundle_sha256", "hmac_sha256"])
def test_a_bundle_without_its_recorded_hash_or_signature_is_refused(tmp_path, missing):
    _, folder, expected = _saved(tmp_path)
    with pytest.raises(ModelError, match=f"has no recorded {missing}, so it cannot be verified and is refused"):
        read_bundle(folder, {k: v for k, v in expected.items() if k != missing})
    with pytest.raises(ModelError, match="has no recorded model_sha256 or bundle_sha256 or hmac_sha256"):
        read_bundle(folder, None)


def test_changed_metadata_with_rewritten_hashes_fails_the_signature(tmp_path):
    _, folder, expected = _saved(tmp_path)
    meta = json.loads((folder / B.BUNDLE_FILE).read_text())
    meta["threshold"] = 0.01  # someone lowers the threshold, and rewrites the recorded hash to match
    (folder / B.BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="bundle.json does not match the hash recorded"):
        read_bundle(folder, expected)
    forged = {**expected, "bundle_sha256": B.sha256_file(folder / B.BUNDLE_FILE)}
    with pytest.raises(ModelError, match="the signature does not match; the model or its registry tags were replaced"):
        read_bundle(folder, forged)


# =========================================================================== crafted model files
def _payload(marker) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"


def _schema_of(obj) -> dict:
    with zipfile.ZipFile(io.BytesIO(sio.dumps(obj))) as z:
        return json.loads(z.read("schema.json"))


def _edit_schema(path, edit) -> None:
    """Rewrite ``schema.json`` inside a skops zip with ``edit(schema)``, keeping every other member."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)


def _reduce_call(func: str, arg: str) -> dict:
    """A skops node that, when loaded, calls ``builtins.<func>(arg)`` (ConstructorFromReduceNode)."""
    args = _schema_of((arg,))  # a real TupleNode holding the string, as skops writes it
    return {"__class__": func, "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
            "content": args, "__id__": 7}


def _sign_as_mlcase(folder) -> dict:
    """The recorded hashes and a valid signature, as if the file had been registered (the worst case:
    the type allowlist is then the only defence left)."""
    m, b = B.sha256_file(folder / B.MODEL_FILE), B.sha256_file(folder / B.BUNDLE_FILE)
    return {"model_sha256": m, "bundle_sha256": b, "hmac_sha256": B.signature(m, b)}


def _loads_under_prefix_trust(path):
    """What the old ``TRUSTED_MODULES`` prefixes did: trust whatever the file asks for under builtins./functools."""
    needed = sio.get_untrusted_types(file=str(path))
    assert all(n.startswith(("builtins.", "functools.", "mlcase.", "sklearn.", "numpy.")) for n in needed)
    return sio.load(path, trusted=needed)


@pytest.mark.parametrize("func", ["exec", "eval"])
def test_code_through_a_reduce_node_never_runs(tmp_path, func):
    _, folder, _ = _saved(tmp_path)
    marker = tmp_path / f"{func}-ran"
    code = _payload(marker) if func == "eval" else _payload(marker) + "\n"
    _edit_schema(folder / B.MODEL_FILE,
                 lambda s: s["content"]["content"].__setitem__("strategy", _reduce_call(func, code)))
    # the file is a live exploit: loaded with builtins.* trusted, the payload runs
    live = tmp_path / "live.skops"
    live.write_bytes((folder / B.MODEL_FILE).read_bytes())
    _loads_under_prefix_trust(live)
    assert marker.read_text() == "pwned"
    marker.unlink()
    # mlcase refuses it, even signed as if it had been registered, before constructing anything
    with pytest.raises(ModelError) as err:
        read_bundle(folder, _sign_as_mlcase(folder))
    assert str(err.value).startswith(f"the model file model.skops holds types mlcase does not trust: builtins.{func}")
    assert "\n" not in str(err.value) and not marker.exists()


def test_eval_in_a_partial_attribute_never_runs(tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from mlcase.baselines import MajorityBaseline

    X, y = _frame(60)
    marker = tmp_path / "partial-ran"
    # eval(code, {}, X): the DataFrame is the mapping of local names, so the first transform runs the
    # code and hands the model its column back
    code = f"[{_payload(marker)}, x1.to_frame()][1]"
    evil = FunctionTransformer(functools.partial(eval, code, {}))
    pipe = Pipeline([("prep", evil), ("model", MajorityBaseline())])
    pipe.steps[1][1].fit(X[["x1"]], y)
    pipe.steps[0][1].fit(X[["x1"]])
    assert not marker.exists()
    b = ModelBundle(model=pipe, name="prior", role="baseline", task="binary", features=["x1"], schema={})
    folder = tmp_path / "b"
    folder.mkdir()
    sio.dump(pipe, folder / B.MODEL_FILE)  # skops' own dump: no hand editing needed
    (folder / B.BUNDLE_FILE).write_text(json.dumps(b.metadata()))
    live = _loads_under_prefix_trust(folder / B.MODEL_FILE)
    live.predict_proba(X[["x1"]])  # the model still predicts normally ...
    assert marker.read_text() == "pwned"  # ... after running the payload
    marker.unlink()
    with pytest.raises(ModelError) as err:
        read_bundle(folder, _sign_as_mlcase(folder))
    assert "holds types mlcase does not trust: builtins.eval" in str(err.value)
    assert "\n" not in str(err.value) and not marker.exists()
    with pytest.raises(ModelError, match="holds types mlcase does not trust: builtins.eval"):
        save_bundle(b, tmp_path / "c")  # and it can never be registered either


def test_an_unparseable_model_file_is_one_line(tmp_path):
    _, folder, _ = _saved(tmp_path)
    (folder / B.MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"model.skops is not a readable skops file \(BadZipFile"):
        read_bundle(folder, _sign_as_mlcase(folder))


# =========================================================================== through the registry
@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A case with one bundle registered in its embedded MLflow store; returns (case, version, model file)."""
    from mlcase import tracking
    from mlcase.baselines import MajorityBaseline

    from .test_bakeoff import make_case

    root = tmp_path_factory.mktemp("registry")
    case = make_case(root, planted_binary(100), "label", name="attacked")
    X, y = _frame(100)
    b = ModelBundle(model=MajorityBaseline().fit(X[["x1"]], y), name="prior", role="baseline", task="binary",
                    features=["x1"], schema={}, classes=["0", "1"])
    with tracking.run(case, "register"):
        version = tracking.log_bundle(case, b, aliases=["champion"])
    files = list((root / "mlartifacts").rglob(B.MODEL_FILE))
    bundle_file = next(f for f in files if "bundles" in f.parts)
    return case, version, bundle_file


def _replace_with_payload(model_file, marker) -> dict:
    """The attacker's move: a crafted model.skops in the store, and the registry's hash tag rewritten to match."""
    original = model_file.read_bytes()
    _edit_schema(model_file, lambda s: s["content"]["content"].__setitem__("strategy",
                                                                          _reduce_call("exec", _payload(marker))))
    return {"original": original, "model_sha256": B.sha256_file(model_file)}


def test_a_replaced_artifact_with_a_replaced_hash_tag_is_refused(registered, tmp_path):
    from mlcase import tracking

    case, version, model_file = registered
    marker = tmp_path / "registry-exec-ran"
    original_tag = tracking.client(case).get_model_version(case.name, str(version)).tags["model_sha256"]
    forged = _replace_with_payload(model_file, marker)
    try:
        tracking.set_version_tags(case, version, {"model_sha256": forged["model_sha256"]})
        with pytest.raises(ModelError) as err:
            tracking.load_bundle(case, alias="champion")
        assert str(err.value).startswith(f"registered version {version}: the signature does not match")
        assert "\n" not in str(err.value) and not marker.exists()
    finally:
        model_file.write_bytes(forged["original"])
        tracking.set_version_tags(case, version, {"model_sha256": original_tag})


def test_a_deleted_hash_tag_is_refused_not_skipped(registered, tmp_path):
    from mlcase import tracking

    case, version, model_file = registered
    assert tracking.load_bundle(case, alias="champion").version == version
    marker = tmp_path / "registry-deleted-tag-ran"
    forged = _replace_with_payload(model_file, marker)
    cl = tracking.client(case)
    tags = {t: v for t, v in cl.get_model_version(case.name, str(version)).tags.items()
            if t in ("model_sha256", "hmac_sha256")}
    try:
        for tag in tags:
            cl.delete_model_version_tag(case.name, str(version), tag)
        with pytest.raises(ModelError) as err:
            tracking.load_bundle(case, alias="champion")
        assert str(err.value).startswith(f"registered version {version} has no recorded model_sha256 or hmac_sha256")
        assert "\n" not in str(err.value) and not marker.exists()
    finally:
        model_file.write_bytes(forged["original"])
        tracking.set_version_tags(case, version, tags)
    assert tracking.load_bundle(case, alias="champion").version == version  # restored: it loads again


class _ThreadProbe(BaseEstimator):
    """A regressor that records how many OpenMP threads its caller may use while it predicts."""

    def fit(self, X, y):
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        from threadpoolctl import threadpool_info

        _ThreadProbe.seen = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
        return np.zeros(len(X))


def test_a_few_rows_are_scored_on_one_openmp_thread_and_a_batch_on_all():
    """Single-row predictions spread over OpenMP threads spin-wait on a busy machine (vcd::Baseball: a
    HistGradientBoosting member's p95 went from 7 ms to 82 ms with one other process running); the server
    and the latency check score few rows on one thread, batch scoring keeps them all."""
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime, as a fitted tree model would)
    from threadpoolctl import threadpool_info, threadpool_limits

    from mlcase.candidates import FEW_ROWS

    X = pd.DataFrame({"a": np.arange(FEW_ROWS + 1, dtype=float)})
    b = ModelBundle(model=_ThreadProbe().fit(X, None), name="probe", role="candidate", task="regression",
                    features=["a"], schema={})
    with threadpool_limits(limits=2, user_api="openmp"):  # the suite runs on one (OMP_NUM_THREADS=1)
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
        assert before and set(before) == {2}
        b.scores(X.iloc[:1])
        assert set(_ThreadProbe.seen) == {1}
        b.scores(X)
        assert _ThreadProbe.seen == before
        assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"] == before
