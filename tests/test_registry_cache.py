"""What the registry answered is remembered while the embedded store is unchanged: a fresh process loads the
champion without importing MLflow, an alias moved by anyone is seen at once, and the cache never makes a bundle
trusted (the files and the signature are verified on every load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mlcase import tracking
from mlcase.errors import ModelError
from tests.serving_case import bundle, make_case, register

CHILD = """
import sys
from mlcase.case import load_case
from mlcase import tracking
b = tracking.load_bundle(load_case(sys.argv[1]))
print(b.version, b.name, "mlflow" in sys.modules)
"""


def _child(case) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(case.root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def _settle(case) -> None:
    """The store as it is when nothing has written it for a minute (a store written in the last 2 s is never
    remembered: see ``tracking.RACY_NS``)."""
    old = time.time() - 60
    for suffix in ("", "-wal", "-journal"):
        path = f"{case.root / 'mlflow.db'}{suffix}"
        if os.path.exists(path):
            os.utime(path, (old, old))


@pytest.fixture
def registered(tmp_path):
    case, ds = make_case(tmp_path / "case", "churn", n=800)
    v1 = register(case, bundle(ds, "logistic"), aliases=["champion"])
    v2 = register(case, bundle(ds, "hist_gbm"))
    return case, v1, v2


def test_a_fresh_process_loads_the_champion_without_mlflow_and_sees_an_alias_moved_by_anyone(registered):
    case, v1, v2 = registered
    _settle(case)
    assert _child(case) == [str(v1), "logistic", "True"]          # asked MLflow, and remembered the answer
    cache = json.loads((case.work_dir / tracking.REGISTRY_CACHE).read_text())
    assert cache["entries"]["alias:champion"]["version"] == v1
    assert _child(case) == [str(v1), "logistic", "False"]         # the same answer, MLflow not even imported

    # the alias is moved outside mlcase (as the MLflow UI would): the next load sees it
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=case.tracking_uri, registry_uri=case.tracking_uri).set_registered_model_alias(
        case.name, "champion", str(v2))
    assert _child(case) == [str(v2), "hist_gbm", "True"]
    assert tracking.load_bundle(case).version == v2
    _settle(case)
    assert _child(case) == [str(v2), "hist_gbm", "True"]
    assert _child(case) == [str(v2), "hist_gbm", "False"]


def test_a_store_written_in_the_last_two_seconds_is_not_remembered(registered):
    case, v1, _ = registered
    assert tracking.load_bundle(case).version == v1   # the store was just written by the registrations
    assert not (case.work_dir / tracking.REGISTRY_CACHE).exists()


def test_the_cache_never_makes_a_bundle_trusted(registered):
    case, v1, _ = registered
    _settle(case)
    assert tracking.load_bundle(case).version == v1
    path = case.work_dir / tracking.REGISTRY_CACHE
    saved = json.loads(path.read_text())
    entry = saved["entries"]["alias:champion"]
    folder = case.root / entry["folder"]

    # a cache edited to vouch for other hashes is not believed: MLflow answers and the true bundle loads
    path.write_text(json.dumps({**saved, "entries": {"alias:champion": {**entry, "tags": {
        **entry["tags"], "model_sha256": "0" * 64}}}}))
    assert tracking.load_bundle(case).version == v1

    # an artifact changed after registration is refused, whether the cache or MLflow names it
    meta = json.loads((folder / "bundle.json").read_text())
    meta["threshold"] = 0.01
    (folder / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="bundle.json does not match the hash recorded when it was registered"):
        tracking.load_bundle(case)


def test_a_moved_or_copied_case_folder_loads_and_writes_its_own_artifacts(registered, tmp_path, capsys):
    """MLflow keeps every artifact location as an absolute path. A swept case folder copied elsewhere, with the
    original moved away, failed `mlcase score` and `explain` with "internal error (MlflowException: Failed to
    download artifacts ...)"; a copy beside its original read, and wrote, the original's artifacts. The embedded
    store now follows its folder, once, and says so."""
    import shutil

    from mlcase.case import load_case

    case, v1, v2 = registered
    tracking.reset_cache()
    capsys.readouterr()
    assert tracking.load_bundle(case).version == v1           # in place: nothing moved (MLflow's Default experiment
    assert "moved" not in capsys.readouterr().err             # sits in the cwd of the first command, not the case)
    tracking.reset_cache()
    copy = tmp_path / "elsewhere" / "case"
    shutil.copytree(case.root, copy)
    shutil.rmtree(case.root / "mlartifacts")          # the original's artifacts are gone (moved, not copied)
    capsys.readouterr()
    moved = load_case(copy / "case.yaml")
    b = tracking.load_bundle(moved)
    assert (b.version, b.name) == (v1, "logistic")
    said = capsys.readouterr().err
    assert f"this case was moved or copied from {case.root.resolve()}" in said, said
    assert str((copy / "mlartifacts").resolve()) in said
    from mlflow import MlflowClient

    cl = MlflowClient(tracking_uri=moved.tracking_uri, registry_uri=moved.tracking_uri)
    exp = cl.get_experiment_by_name(moved.name)
    assert exp.artifact_location == (copy / "mlartifacts").resolve().as_uri()
    assert all(str(case.root.resolve()) not in r.info.artifact_uri for r in cl.search_runs([exp.experiment_id]))
    # a new version registered in the copy lands in the copy
    from mlcase.data import prepare

    v3 = register(moved, bundle(prepare(moved), "logistic"))
    run = cl.get_run(cl.get_model_version(moved.name, str(v3)).run_id)
    assert run.info.artifact_uri.startswith((copy / "mlartifacts").resolve().as_uri())
    assert not (case.root / "mlartifacts").exists()
    # said once: the next process finds nothing to move
    tracking.reset_cache()
    tracking.load_bundle(load_case(copy / "case.yaml"), version=v2)
    assert "moved or copied" not in capsys.readouterr().err
