"""CQR, the conformal method shown beside the served one, on a calibration part too small for it.

MASS::snails (96 rows: snail deaths by species, exposure, humidity and temperature) drafts a random
split whose validation part holds 15 rows. MAPIE's CQR intervals are two-sided (alpha / 2 on each
side) and need 1 / (alpha / 2) = 20 calibration rows at alpha 0.1; the guard checked alpha alone, and
`mlcase run` stopped with an internal error from MAPIE's predict_interval. CQR is now left out of
the report's table there, and the served absolute-residual intervals are evaluated as before.
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


def test_a_calibration_part_too_small_for_cqr_leaves_it_out_and_the_run_decides(tmp_path, empty_store):
    folder = tmp_path / "snails"
    # a boosted candidate, served alone: the one CQR is fitted for
    drafted(folder, "MASS", "snails", "Deaths", store=empty_store, candidates=["lightgbm"], bakeoff={"ensemble": False})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "10s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    case = load_case(folder)
    assert results.load(case, "evaluation")["champion_candidate"] == "lightgbm"
    conf = results.load(case, "conformal")
    assert conf["n_calibration"] < 2 / conf["alpha"]
    assert [m["method"] for m in conf["methods"]] == ["absolute"]
    assert 0 <= conf["coverage"] <= 1 and conf["n_test"] >= 15
