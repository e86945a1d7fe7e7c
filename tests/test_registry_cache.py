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
