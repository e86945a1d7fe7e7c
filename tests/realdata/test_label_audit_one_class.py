"""A label audit whose out-of-fold rows hold one class is skipped with its reason, not an internal error.

mosaicData::Weather (weather in five cities over 2016 and 2017, drafted with `date` as its time column) asked
for `year`: under the time split the time-ordered CV folds score only their later rows out of fold, and those
are all from 2017, so cleanlab raised "Labels must contain at least 2 classes" and `mlcase run` ended with an
internal error after the bake-off, the evaluation and the trust stage had run.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

from .tables import drafted

pytestmark = pytest.mark.slow


def test_a_time_split_whose_out_of_fold_rows_hold_one_class_skips_the_label_audit(tmp_path, empty_store):
    folder = tmp_path / "weather"
    drafted(folder, "mosaicData", "Weather", "year", store=empty_store)
    case = load_case(folder)
    assert case.spec.split.method == "time"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", str(folder), "--budget", "6s", "--json", "--quiet"])
    assert code in (0, 3), err.getvalue()
    labels = results.load(case, "analysis")["labels"]
    assert "hold one class only" in labels["skipped"], labels
    assert results.load(case, "decision")["verdict"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
