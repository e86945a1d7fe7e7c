"""`mlcase run --json` says whose test metrics it gives, and gives the champion's beside them."""

from __future__ import annotations

import pytest

from mlcase import results


@pytest.mark.parametrize("table_id", ["credit-random", "fgl-random", "boston-random"])
def test_the_summary_names_the_model_of_its_metrics_and_gives_the_champions(runs, table_id):
    run = runs.get(table_id)
    summary, case = run["summary"], run["case"]
    ev = results.load(case, "evaluation")
    cand = ev["champion_candidate"]
    # "champion": "linear" beside lightgbm's metrics read as linear's (a USE_BASELINE keeps the baseline)
    assert summary["metrics_of"] == cand and summary["metrics"] == pytest.approx(ev["metrics"][cand])
    champion = summary["champion"]
    if champion is None:
        assert summary["champion_metrics"] == {}
    else:
        assert summary["champion_metrics"] == pytest.approx(ev["metrics"][champion])
        assert set(summary["champion_metrics"]) == set(summary["metrics"])
