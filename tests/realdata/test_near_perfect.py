"""A near-perfect model on a leaky real table: Ecdat::Fishing's ``catch`` is the catch rate of the chosen mode.

The table (1,182 anglers, 4 modes) gives each mode's catch rate (``cbeach``, ``cpier``, ``cboat``,
``ccharter``) and, as ``catch``, the rate of the mode the angler chose: known only after the choice.
The one-feature check scores it just under the error bar (a warning), so ``mlcase run`` goes on and
the candidate is right on 99%+ of the test rows. The decision's reasons must say that a score like
that is more likely a leak than an easy decision, and must not say it once the copy is excluded.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.checks.thresholds import LEAK_ERROR, LEAK_WARN
from mlcase.cli import main

from .tables import Table

pytestmark = pytest.mark.slow

FISHING = Table("fishing-random", "Ecdat", "Fishing", "multiclass", "mode", {"method": "stratified", "seed": 1},
                {"decision": "which fishing trip to offer an angler", "baselines": ["majority", "linear"],
                 "candidates": ["lightgbm"]},
                note="1,182 anglers, 4 modes; catch (and price) copy the chosen mode's own columns")


def run(folder, store, **overrides) -> tuple[dict, dict, dict]:
    FISHING.write(folder, **overrides)
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    case = load_case(folder)
    return json.loads(out.getvalue()), results.load(case, "evaluation"), results.load(case, "checks")


def test_a_near_perfect_candidate_gets_the_leak_caveat_in_its_reasons(tmp_path, empty_store):
    summary, ev, checks = run(tmp_path / "leaky", empty_store)
    # the one-feature check warns about `catch` but does not stop the run
    score = checks["stats"]["one_feature"]["scores"]["catch"]
    assert LEAK_WARN <= score < LEAK_ERROR
    assert [c["severity"] for c in checks["checks"] if c["id"] == "target_leakage"] == ["warning"]
    cand = ev["champion_candidate"]
    acc = ev["metrics"][cand]["accuracy"]
    assert acc >= 0.99 and ev["metrics"]["linear"]["accuracy"] < 0.95
    note = next(r for r in summary["reasons"] if r.startswith("near-perfect on test"))
    assert f"accuracy {acc:.4f} on {ev['n_test']:,} rows" in note and "target_leakage warnings" in note

    # without the copy, the model is an ordinary one and the caveat is gone
    summary, ev, _ = run(tmp_path / "clean", empty_store, data={"features": {"exclude": ["catch"]}})
    assert ev["metrics"][ev["champion_candidate"]]["accuracy"] < 0.9
    assert not any(r.startswith("near-perfect") for r in summary["reasons"])


MLB = Table("mlb-seasons", "openintro", "mlb_teams", "ranking", "wins", {"method": "group", "seed": 1},
            {"decision": "which teams to feature first in a season's preview", "data": {"group": "year"},
             "ranking": {"k": 10, "gain": "graded"}, "baselines": ["linear"], "candidates": ["lightgbm"]},
            note="2,784 team seasons in 145 years; `losses` is games minus wins",
            # the leak alone (with the league), so that any ranker finds it within the time box on a loaded machine:
            # with every column, a CI run under load gave LightGBM too few trees to reach 99.5% (98.7%)
            transform=lambda df: df[["year", "league_id", "games_played", "losses", "wins"]])


def test_a_ranking_whose_lists_are_worth_the_best_order_gets_the_leak_caveat(tmp_path, empty_store):
    """openintro::mlb_teams ranked by year: the candidate ordered every test season as its wins do (cost $0.000)
    and went GO without a word, where `losses` and the division `rank` order a season by themselves. The
    per-column leakage checks look across lists, not within one; the decision's reasons now say it."""
    MLB.write(tmp_path / "mlb")
    shutil.copy(empty_store, tmp_path / "mlb" / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(tmp_path / "mlb"), "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    summary = json.loads(out.getvalue())
    ev = results.load(load_case(tmp_path / "mlb"), "evaluation")
    cand = ev["metrics"][ev["champion_candidate"]]
    share = cand["value_per_list"] / cand["ideal_value_per_list"]
    assert share >= 0.995 and ev["n_test"] >= 20
    note = next(r for r in summary["reasons"] if r.startswith("near-perfect on test"))
    assert f"worth {share:.1%} of the best order of their items, on {ev['n_test']:,} lists" in note
    assert "a rank within the list" in note
