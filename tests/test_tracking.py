"""MLflow tracking and the registry: versions, aliases, hashes (trusted types and signatures: test_bundle.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcase import tracking
from mlcase.bakeoff import register, run_bakeoff
from mlcase.data import prepare
from mlcase.errors import ModelError, NotFoundError

from .test_bakeoff import make_case, planted_binary


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two bake-offs of one case, each registered; ``champion`` is set by hand after the first."""
    case = make_case(tmp_path_factory.mktemp("registry"), planted_binary(500), "label", name="churn-registry",
                     candidates=["logistic", "lightgbm"], split={"cv_folds": 3},
                     baselines=["majority", "linear", {"rule": "x1 * x2 > 0.3"}])
    ds = prepare(case)
    first = run_bakeoff(case, ds, budget=8, quiet=True, max_trials=4)
    v1 = register(case, first)
    tracking.set_alias(case, "champion", v1["candidate_version"], reason="set by the test as the decision would")
    second = run_bakeoff(case, ds, budget=6, quiet=True, max_trials=2)
    v2 = register(case, second)
    return case, ds, first, v1, second, v2


@pytest.mark.slow
def test_aliases_move_on_a_second_run_while_version_1_remains(two_runs):
    case, ds, first, v1, second, v2 = two_runs
    assert (v1["candidate_version"], v1["baseline_version"]) == (1, 2)
    assert (v2["candidate_version"], v2["baseline_version"]) == (3, 4)
    assert tracking.alias_version(case, "candidate") == 3 and tracking.alias_version(case, "baseline") == 4
    assert tracking.alias_version(case, "champion") == 1  # register never moves champion
    rows = {r["version"]: r for r in tracking.versions(case)}
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1]["aliases"] == ["champion"] and rows[3]["aliases"] == ["candidate"]
    assert rows[1]["tags"]["mlcase.alias.champion"] == "set by the test as the decision would"
    # each version says which bake-off and which register run made it
    assert rows[1]["tags"]["mlcase.bakeoff_run_id"] == first.run_id != second.run_id == rows[3]["tags"]["mlcase.bakeoff_run_id"]
    assert rows[3]["tags"]["mlcase.register_run_id"] == v2["run_id"] == rows[3]["run_id"]
    assert rows[2]["tags"]["mlcase.role"] == "baseline" and rows[2]["tags"]["mlcase.family"] == first.best_baseline
    old = tracking.load_bundle(case, version=1)
    assert old.version == 1 and old.name == first.candidate and old.role == "candidate"
    np.testing.assert_allclose(old.scores(ds.X_test), first.candidate_bundle.scores(ds.X_test))


@pytest.mark.slow
def test_a_registered_bundle_loads_back_with_its_metadata(two_runs):
    case, ds, _, _, second, _ = two_runs
    loaded = tracking.load_bundle(case, alias="candidate")
    mem = second.candidate_bundle
    assert loaded.version == 3 and loaded.features == ds.features and loaded.classes == ["no", "yes"]
    assert loaded.metrics["cv_mean"] == pytest.approx(mem.metrics["cv_mean"])
    assert loaded.metrics["bakeoff_run_id"] == second.run_id
    np.testing.assert_allclose(loaded.scores(ds.X_test), mem.scores(ds.X_test))
    base = tracking.load_bundle(case, alias="baseline")
    if base.name == "rule":
        assert base.rule == "x1 * x2 > 0.3"
        np.testing.assert_array_equal(base.model.flags(ds.X_test), ((ds.X_test.x1 * ds.X_test.x2) > 0.3).astype(int))
    with pytest.raises(NotFoundError, match="no registered model alias 'nope' for case 'churn-registry'"):
        tracking.load_bundle(case, alias="nope")


@pytest.mark.slow
def test_the_mlflow_model_has_a_signature_and_an_input_example(two_runs):
    import mlflow

    case, ds, _, _, second, _ = two_runs
    row = next(r for r in tracking.versions(case) if r["version"] == 3)
    assert "mlcase.mlflow_model_error" not in row["tags"]
    with tracking.caller_state():  # MLflow's fluent API reads the case's store while mlcase points it there
        tracking.setup(case)
        info = mlflow.models.get_model_info(row["source"])
    assert [c.name for c in info.signature.inputs] == ds.features
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_a_tampered_artifact_is_refused_on_load(two_runs, tmp_path):
    case, *_ = two_runs
    row = next(r for r in tracking.versions(case) if r["version"] == 2)
    artifact = row["tags"]["mlcase.bundle_uri"].split(f"{row['run_id']}/", 1)[1]
    folder = tracking.download_run_artifact(case, row["run_id"], artifact, tmp_path)
    meta = json.loads((folder / "bundle.json").read_text())
    good = tracking.read_bundle(folder, expected=row["tags"])
    assert good.name == meta["name"]
    meta["threshold"] = 0.01  # someone lowers the threshold after registration
    (folder / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="bundle.json does not match the hash recorded when it was registered"):
        tracking.read_bundle(folder, expected=row["tags"])


@pytest.mark.slow
def test_models_command_lists_versions_with_aliases(two_runs):
    from typer.testing import CliRunner

    from mlcase.cli import app
    from mlcase.spec import dump_spec

    case, *_ = two_runs
    (case.root / "case.yaml").write_text(dump_spec(case.spec))
    out = CliRunner().invoke(app, ["models", str(case.root), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [v["version"] for v in data["versions"]] == [1, 2, 3, 4]
    assert {a for v in data["versions"] for a in v["aliases"]} == {"champion", "candidate", "baseline"}
    human = CliRunner().invoke(app, ["models", str(case.root)], env={"COLUMNS": "200"})
    assert human.exit_code == 0 and "candidate" in human.output and "champion" in human.output


def test_an_unreachable_store_is_a_note_not_a_crash(tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    case = make_case(tmp_path, planted_binary(200), "label", name="no-store", candidates=["logistic"],
                     split={"cv_folds": 3}, tracking_uri=f"sqlite:///{tmp_path}/not-a-folder/mlflow.db",
                     bakeoff={"bag": False})   # the single best trial, not a bag of its near-ties
    res = run_bakeoff(case, prepare(case), budget=4, quiet=True)
    assert res.wait_tracking(timeout=60)
    assert res.candidate == "logistic" and res.run_id is None
    assert any(n.startswith("MLflow tracking failed") and "tracking_uri" in n for n in res.notes)


def test_setup_leaves_no_tracking_uri_in_the_environment(tmp_path, monkeypatch):
    """MLflow's set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; a `mlcase serve` started
    later from the same process would inherit it and serve this case's store instead of its own."""
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    case = make_case(tmp_path, planted_binary(60), "label", name="env-leak")
    tracking.setup(case)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert tracking.mlflow().get_tracking_uri() == case.tracking_uri  # MLflow itself still points at the case
