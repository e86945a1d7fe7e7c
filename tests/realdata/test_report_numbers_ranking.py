"""The report's numbers on a ranking case: AER::TravelMode (210 travellers, each a list of four modes, k = 1, a
relevant mode at position 1 worth 2).

A ranking decides a list at a time, and the evaluation's ``n_test`` counts lists: the report said "against every
baseline on 42 test rows" (42 lists of 168 rows), "400 resamples of the test rows" (lists are resampled) and that a
relevant item "is worth 2 $".
"""

from __future__ import annotations

import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.formats import money

from .test_ranking import travel  # noqa: F401 - the trained ranking case, a fixture
from .test_report_numbers_probe import page, section_text, tables


def test_the_ranking_report_counts_lists_and_writes_money_as_money(travel, open_report):  # noqa: F811
    folder, _ = travel
    ev = results.load(load_case(folder), "evaluation")
    assert ev["unit"] == "list"
    p = page(folder)
    intro = section_text(p, "evaluation")
    assert f"on {ev['n_test']} test lists ({ev['n_test_rows']} rows), touched once" in intro, intro
    assert f"made on the {ev['n_valid']} validation lists ({ev['n_valid_rows']} rows)" in intro
    assert f"{ev['n_test']} test rows" not in intro
    lift = section_text(p, "eval-lift")
    assert f"{ev['lift']['n_boot']} resamples of the test lists" in lift
    rk = ev["ranking"]
    ranking = section_text(p, "ranking")
    assert f"is worth {money(rk['relevant_item_value'], ev['currency'])}, discounted" in ranking, ranking
    # the table's value per list is the NDCG@1 times the item's worth, and the money its complement to the ideal
    k = rk["k"]
    for row in (r for t in tables(p, "ranking-metrics") for r in t["rows"] if r["role"] != "model-free"):
        name = row["model"]
        if name not in ev["metrics"]:
            continue
        value = rk["value_per_list"][name]["estimate"]
        assert row["value per list [95% CI]"].startswith(money(value, ev["currency"], 3))
        assert value == pytest.approx(ev["metrics"][name][f"ndcg@{k}"] * rk["relevant_item_value"])
    # the card's test table: the floor with its cost and its list metrics (it read "–" for every one)
    floor = ev["best_model_free"]
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    head = next(x for x in card.splitlines() if x.startswith("| model | cost per decision"))
    row = next(x for x in card.splitlines() if x.startswith(f"| model-free: {floor} "))
    cells = dict(zip([c.strip() for c in head.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")],
                     strict=True))
    assert float(cells["cost per decision ($)"]) == pytest.approx(ev["model_free"][floor]["cost_per_decision"], rel=1e-3)
    assert float(cells[f"ndcg@{k}"]) == pytest.approx(ev["model_free"][floor][f"ndcg@{k}"], rel=1e-3)
    view = open_report(folder / "report" / "index.html")
    view.assert_healthy()
    figs = view.figures()
    assert len(figs) >= 6 and all(f["marks"] > 0 for f in figs), figs
