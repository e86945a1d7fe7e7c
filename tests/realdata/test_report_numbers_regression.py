"""The report's and the card's numbers on a regression case: MASS::Boston (506 suburbs, under-pricing costing 1 and
over-pricing 2 per unit, so each model's prediction is its score mapped to a cheaper quantile).

The deferral table's "model alone" cost was the raw score's ($3.515 per decision) where the model answers, and the
evaluation costs, the mapped prediction ($3.120); with no ``conformal.max_interval_width`` the section said "cases with
intervals wider than – go to a person", and the model alone's MAE read "–" though it is the test MAE.
"""

from __future__ import annotations

import pytest

from mlcase import results
from mlcase.formats import money

from .test_report_numbers_probe import page, section_text, tables


def test_deferral_costs_and_errors_are_the_evaluations_and_no_limit_is_said_as_such(runs):
    run = runs.get("boston-random")
    case, folder = run["case"], run["folder"]
    ev, conf = results.load(case, "evaluation"), results.load(case, "conformal")
    cand = ev["champion_candidate"]
    assert conf["model"] == cand
    d = conf["deferral"]
    assert d["cost_model_only"] == pytest.approx(ev["cost_per_decision"][cand], rel=1e-12)
    p = page(folder)
    rows = {r["policy"]: r for t in tables(p, "trust-conformal") for r in t["rows"] if "policy" in r}
    assert rows["model alone"]["cost per decision"] == money(ev["money"][cand]["per_decision"], "$", 3)
    text = section_text(p, "trust-conformal")
    assert case.spec.conformal.max_interval_width is None
    assert "wider than –" not in text and "no conformal.max_interval_width is set" in text, text
    # nothing deferred: the model alone's MAE is the candidate's test MAE, the number the evaluation shows
    assert d["deferred"] == 0
    assert float(rows["model alone"]["MAE (automated)"]) == pytest.approx(ev["metrics"][cand]["mae"], rel=1e-3)
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    assert f"model alone {money(d['cost_model_only'], '$', 3)}" in card


def test_the_regression_report_opens_offline_with_every_plot_drawn(runs, open_report):
    view = open_report(runs.get("boston-random")["folder"] / "report" / "index.html")
    view.assert_healthy()
    figs = view.figures()
    assert len(figs) >= 8 and all(f["marks"] > 0 for f in figs), figs
