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
from pathlib import Path

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
