"""Names from the data and the spec as they reach what mlcase writes, on real tables.

- The datasheet (``mlcase check``) on MASS::Boston with a column named ``<a href='x'>c</a>``, one with backticks
  and a pipe, and a category column whose values are the same kind of text: the datasheet's Markdown, parsed as
  GitHub parses it (CommonMark and tables), keeps its table widths, makes no link, no HTML and no code span from
  the data, and shows each name as written.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path

import pytest

from mlcase.cli import main

from .tables import BY_ID

LINK = "<a href='x'>c</a>"
TICKS = "cr`im|e ``x"
STAR = "*rm* _zn_"


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _parsed(md: str) -> dict:
    """What a CommonMark + tables reader makes of ``md``: tables as rows of cell texts, token types, code spans."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(md)
    tables, rows, row, cell = [], None, None, None
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "tr_open":
            row = []
        elif t.type in ("th_open", "td_open"):
            cell = ""
        elif t.type == "inline" and cell is not None:
            cell = "".join(c.content for c in t.children or [])
        elif t.type in ("th_close", "td_close"):
            row.append(cell)
            cell = None
        elif t.type == "tr_close":
            rows.append(row)
        elif t.type == "table_close":
            tables.append(rows)
    kinds = {c.type for t in tokens if t.type == "inline" for c in t.children or []} | {t.type for t in tokens}
    codes = [c.content for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "code_inline"]
    texts = ["".join(c.content for c in t.children or []) for t in tokens if t.type == "inline"]
    return {"tables": tables, "kinds": kinds, "codes": codes, "texts": texts}


def test_the_datasheet_shows_hostile_column_and_category_names_as_written(tmp_path: Path):
    table = BY_ID["boston-random"]
    df = table.frame().rename(columns={"chas": LINK, "crim": TICKS, "rm": STAR})
    df["area"] = df["rad"].map(lambda r: LINK if r == 24 else (TICKS if r < 4 else "plain"))
    folder = table.write(tmp_path / "boston", df, slices=["area"])
    code, out, err = _cli("check", str(folder), "--json", "--quiet")
    assert code == 0, err[-2000:]
    md = (folder / "datasheet.md").read_text(encoding="utf-8")
    sheet = _parsed(md)
    # nothing from the data became a link, HTML or a code span of its own
    assert not {"link_open", "html_inline", "html_block", "em_open"} & sheet["kinds"], sheet["kinds"]
    # every row of every table as wide as its header
    assert len(sheet["tables"]) >= 2
    for rows in sheet["tables"]:
        assert len({len(r) for r in rows}) == 1, rows
    columns = {r[0]: r for r in sheet["tables"][0][1:]}
    assert {LINK, TICKS, STAR, "area"} <= set(columns), sorted(columns)
    assert columns[LINK][1:3] == ["feature", "numeric"]
    area = columns["area"][-1]
    assert LINK in area and TICKS in area, area
    slices = {r[1]: r for rows in sheet["tables"] if rows[0][:2] == ["column", "value"] for r in rows[1:]}
    assert {LINK, TICKS, "plain"} <= set(slices), sorted(slices)
    assert [r[0] for r in slices.values()] == ["area"] * len(slices)
    # the rows of each table in the file itself: one unescaped pipe per cell border
    for block in (g for k, g in itertools.groupby(md.splitlines(), key=lambda s: s.startswith("|")) if k):
        widths = {len(line.replace("\\\\", "").replace("\\|", "").split("|")) for line in block}
        assert len(widths) == 1, block
    # the target in a code span, and no code span holds a piece of a name
    assert "medv" in sheet["codes"]
    assert not [c for c in sheet["codes"] if "im|e" in c or c.strip() == "x"], sheet["codes"]


# --------------------------------------------------------------------------- a rule baseline's name
def _run(folder: Path, store: Path) -> dict:
    import shutil

    from mlcase import results
    from mlcase.case import load_case

    shutil.copy(store, folder / "mlflow.db")
    code, out, err = _cli("run", str(folder), "--json", "--quiet", "--force")
    assert code == 0, (out + err)[-2000:]
    return results.load_all(load_case(folder))


@pytest.fixture(scope="module")
def smarket_rules(tmp_path_factory, empty_store):
    """ISLR::Smarket with two named rules (yesterday's and the day before's direction)."""
    table = BY_ID["smarket-time"]
    folder = table.write(tmp_path_factory.mktemp("smarket") / "smarket",
                         baselines=["majority", {"rule": "Lag1 > 0", "name": "momentum"},
                                    {"rule": "Lag1 < 0 AND Lag2 < 0", "name": "rebound"}],
                         candidates=["logistic"], budget="4s")
    return folder, _run(folder, empty_store)


def test_named_rules_go_by_their_names_everywhere(smarket_rules):
    folder, res = smarket_rules
    named = {"momentum", "rebound"}
    # which candidates reach the evaluation (the ensemble, or logistic alone) is the time box's to say: the rules'
    # names are what this test is about
    board = [r["name"] for r in res["bakeoff"]["leaderboard"]]
    assert named | {"majority"} <= set(board) and not any(n.startswith("rule") for n in board)
    ev, decision = res["evaluation"], res["decision"]
    assert set(ev["metrics"]) == set(ev["cost_per_decision"]) and named | {"majority"} <= set(ev["metrics"])
    assert not any(n.startswith("rule") for n in ev["metrics"])
    assert ev["best_baseline"] == decision["evidence"]["best_baseline"] == "momentum"
    assert named | {"majority"} <= set(decision["evidence"]["cost_per_decision"])
    assert "the best baseline (momentum) costs exactly what acting on every case costs on every test row" in decision[
        "reasons"]
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    assert "| momentum | -0.119 |" in card and "momentum 0.4509, rebound 0.4693" in card
    html = (folder / "report" / "index.html").read_text(encoding="utf-8")
    assert "momentum" in html and "rebound" in html
    for text in (json.dumps(res), card, html):
        assert "rule:momentum" not in text and "rule:rebound" not in text


def _spec_error(tmp_path: Path, baselines: list) -> str:
    folder = BY_ID["smarket-time"].write(tmp_path / "smarket", baselines=baselines, candidates=["logistic"])
    code, out, err = _cli("check", str(folder), "--quiet")
    assert code == 2 and out == "" and not (folder / "datasheet.md").exists(), (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_rule_named_like_another_model_is_refused_in_one_line(tmp_path):
    line = _spec_error(tmp_path, ["majority", {"rule": "Lag1 > 0", "name": "momentum"},
                                  {"rule": "Lag2 > 0", "name": "momentum"}])
    assert "baselines[2].name: 'momentum' is also the name of baselines[1]; give each rule its own name" in line
    line = _spec_error(tmp_path, ["majority", {"rule": "Lag1 > 0", "name": "linear"}])
    assert "baselines[1].name: 'linear' is the name of a built-in baseline or model family" in line
    line = _spec_error(tmp_path, [{"rule": "Lag1 > 0", "name": "rule:2"}, {"rule": "Lag2 > 0"}])
    assert "baselines[0].name: 'rule:2' is also the name of baselines[1]" in line


def test_each_rule_is_named_as_written_or_numbered(tmp_path):
    from mlcase.case import load_case

    def names(baselines: list, table: str = "smarket-time") -> list[str]:
        return load_case(BY_ID[table].write(tmp_path / table, baselines=baselines)).spec.rule_names()

    assert names(["majority", {"rule": "Lag1 > 0", "name": "momentum"}]) == ["momentum"]
    assert names(["majority", {"rule": "Lag1 > 0"}]) == ["rule"]
    assert names([{"rule": "Lag1 > 0"}, {"rule": "Lag2 > 0", "name": "two"}, {"rule": "Lag3 > 0"}]) == [
        "rule:1", "two", "rule:3"]
    # unnamed rules of a regression case, numbered as results stored by earlier versions name them
    assert names(["median", {"rule": "lstat < 10"}, {"rule": "rm > 6"}], "boston-random") == ["rule:1", "rule:2"]


# --------------------------------------------------------------------------- names that differ only by spaces
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_name_with_spaces_around_it_is_reported_scored_and_served_as_training_read_it(tmp_path, fmt):
    """MASS::Boston with a second age column written 'age ' (DuckDB's CSV reader drops the space and names it
    age_1): `mlcase check` said nothing, a scoring file with the file's own names lacked 'age_1', and `/predict`
    answered "'age ': is not a column of this model; did you mean 'age_1'?". Now the check names both columns
    and the new name, the datasheet shows age_1, and a file or a request naming 'age ' is read as training read
    it. A Parquet file, whose reader keeps the space, is named the same way."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import Ridge

    from mlcase import results
    from mlcase.bundle import ModelBundle
    from mlcase.case import load_case
    from mlcase.data import prepare
    from mlcase.score import score_file
    from mlcase.serve.schema import RecordSpec

    table = BY_ID["boston-random"]
    df = table.frame()
    df.insert(7, "age ", (df["age"] // 10) * 10)   # the age band, a column of its own
    folder = tmp_path / "boston"
    folder.mkdir()
    if fmt == "parquet":
        df.to_parquet(folder / "data.parquet", index=False)
    folder = table.write(folder, df, data={"source": f"data.{fmt}"})
    code, out, err = _cli("check", str(folder), "--json", "--quiet")
    assert code == 0, err[-2000:]
    found = [c for c in json.loads(out)["checks"] if c["id"] == "duplicate_column_names"]
    assert [(c["severity"], c["column"], c["evidence"]) for c in found] == [
        ("warning", "age_1", {"name": "age ", "read_as": "age_1"})]
    assert found[0]["title"].startswith("column 'age ' was read as 'age_1': its name differs from an earlier "
                                        "column's (read as 'age') only in case or in the spaces around it")
    sheet = _parsed((folder / "datasheet.md").read_text(encoding="utf-8"))
    assert [r[0] for r in sheet["tables"][0][1:]][5:9] == ["rm", "age", "age_1", "dis"]
    case = load_case(folder)
    ds = prepare(case)
    assert "age_1" in ds.features and "age " not in ds.features
    assert results.load(case, "checks")["counts"]["warning"] >= 1

    model = Ridge().fit(ds.X_train, ds.y_train)
    b = ModelBundle(model=model, name="ridge", role="candidate", task="regression", features=list(ds.features),
                    schema=ds.schema.to_dict())
    new = df.drop(columns="medv").head(30)
    new.to_csv(tmp_path / "new.csv", index=False)           # the file's own names: age and 'age '
    res = score_file(case, tmp_path / "new.csv", tmp_path / "out.csv", bundles={"model": b}, progress=False)
    assert (res.rows, res.scored, res.invalid_rows) == (30, 30, 0)
    expected = model.predict(new.rename(columns={"age ": "age_1"})[list(ds.features)])
    assert np.allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], expected)
    rec = new.iloc[3].to_dict()
    clean, issues = RecordSpec(b.schema, b.features).validate_records([rec])
    assert issues == [] and clean[0]["age_1"] == rec["age "] and clean[0]["age"] == rec["age"]
