"""The identity check's small least squares run on one BLAS thread, scipy's included (see `_few_blas_threads`)."""

from __future__ import annotations

import numpy as np
import sklearn.linear_model  # noqa: F401 - scipy's BLAS loaded before the outer limit, as in a run
from threadpoolctl import threadpool_info, threadpool_limits

from mlcase.checks.leakage import IDENTITY_THREADED_SIZE, _few_blas_threads


def _blas() -> dict[str, int]:
    return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_a_small_fit_runs_on_one_blas_thread_and_a_large_one_keeps_its_threads():
    with threadpool_limits(limits=2, user_api="blas"):       # the suite itself runs on one (OMP_NUM_THREADS=1)
        before = _blas()
        with _few_blas_threads(np.zeros((1875, 33))):        # modeldata::ames' numeric columns
            inside = _blas()
        assert _blas() == before                             # given back after
        wide = int(np.sqrt(IDENTITY_THREADED_SIZE / 100_000)) + 1
        with _few_blas_threads(np.zeros((100_000, wide))):
            large = _blas()
    # scipy's own OpenBLAS (what LinearRegression's lstsq calls) is loaded and limited, not only numpy's
    assert any("scipy" in path for path in inside), inside
    assert set(inside.values()) == {1}
    assert large == before and max(before.values()) == 2
