"""Whose money the report and the card state, on modeldata::credit_data with a volume (5,000 applications a month)
and a review capacity of 12.5%.

The value per month is the candidate's over the best baseline (lift per decision x decisions). Under a verdict that
keeps the baseline the banner read "champion linear (registry version 2)" and, below it, "value per month -$181,257",
and the card, which then describes the baseline, "Saving over linear: -$36.25 per decision": as if the champion lost
money against itself. Each is now said as the candidate's over the baseline.
"""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.formats import money

from .tables import BY_ID
from .test_report_numbers_probe import page


@pytest.fixture(scope="module")
def credit(tmp_path_factory, empty_store):
    table = BY_ID["credit-random"]
    folder = table.write(tmp_path_factory.mktemp("value") / "credit",
                         problem={"volume": "5000/month"}, constraints={"review_capacity": 0.125, "latency_p95_ms": 200})
    shutil.copy(empty_store, folder / "mlflow.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(folder), "--quiet", "--force"]) == 0
    return folder


def test_the_value_per_month_is_said_as_the_candidates_over_the_baseline(credit):
    case = load_case(credit)
    ev, decision = results.load(case, "evaluation"), results.load(case, "decision")
    value, lift = ev["value_per_period"], ev["lift"]
    assert value["period"] == "month" and value["decisions"] == 5000
    # the oracle: the lift per decision times the decisions of a month
    assert value["expected"] == pytest.approx(lift["money_per_decision"]["estimate"] * 5000, rel=1e-9)
    cand, base = lift["candidate"], value.get("versus") or lift["baseline"]
    facts = page(credit).facts
    key = f"value per month ({cand} over {base})"
    assert key in facts and "value per month" not in facts, facts
    assert facts[key].startswith(money(value["expected"], "$", 0)), facts[key]
    card = (credit / "model_card.md").read_text(encoding="utf-8")
    assert f"- **Saving of {cand} over {lift['baseline']}:** " in card
    assert f"- **Per month, {cand} over {base}:** {money(value['net_expected'])} net of operating cost" in card
    if decision["verdict"] == "USE_BASELINE":  # the card describes the baseline; the saving stays the candidate's
        assert f"- **Model:** `{lift['baseline']}`" in card
