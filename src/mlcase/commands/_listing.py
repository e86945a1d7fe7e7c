"""Listings of the CLI (leaderboard, model versions, monitoring windows, check findings) in three formats.

A :class:`Listing` holds the raw values of a table; :func:`show` prints it as

* ``table``: a Rich table for people, on stderr. When stderr is not a terminal (a pipe,
  a CI log) the console is as wide as the table, so no cell is cut or wrapped;
* ``csv``: RFC 4180 CSV on stdout, numbers in plain positional notation, for scripts;
* ``md``: a Markdown table on stdout, for a ticket or a pull request.

No format ever shortens a name. Money is written as money: cents, and below a cent enough
decimals for three significant digits (``$0.0000000397``), never ``3.97e-08``.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from ..formats import money, number  # noqa: F401 - re-exported for the command modules

FORMATS = ("table", "csv", "md")
FormatOpt = Annotated[str, typer.Option(
    "--format", help="table (for people, on stderr), csv or md (Markdown), both on stdout.",
    show_default=True)]


@dataclass
class Column:
    """One column: its header, how a value is shown in the table and Markdown, and its alignment."""

    name: str
    show: Callable[[Any], str] = str
    right: bool = False


@dataclass
class Listing:
    """A table of raw values; ``notes`` are printed under the table (stderr) in every format."""

    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)  # a Rich style per row (table format only)


def check_format(fmt: str) -> str:
    """``fmt`` lower-cased, or a one-line error naming the choices."""
    from ..errors import MlcaseError

    f = (fmt or "").strip().lower()
    if f not in FORMATS:
        raise MlcaseError(f"--format {fmt!r} is not known", f"use one of {', '.join(FORMATS)}")
    return f


def show(listing: Listing, fmt: str, console) -> None:
    """Print ``listing`` in ``fmt`` (see the module docstring); ``console`` is the stderr console."""
    fmt = check_format(fmt)
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.name for c in listing.columns])
        writer.writerows([[plain(v) for v in row] for row in listing.rows])
    elif fmt == "md":
        sys.stdout.write(markdown(listing) + "\n")
    else:
        from rich.table import Table

        from ..formats import markup_escape

        table = Table(title=markup_escape(listing.title), title_justify="left")
        for c in listing.columns:
            table.add_column(markup_escape(c.name), justify="right" if c.right else "left", no_wrap=True)
        for i, row in enumerate(listing.rows):
            style = listing.styles[i] if i < len(listing.styles) else None
            table.add_row(*[markup_escape(c.show(v)) for c, v in zip(listing.columns, row, strict=True)], style=style)
        console.print(table)
    sys.stdout.flush()
    from ..formats import markup_escape

    for note in listing.notes:
        console.print(f"[dim]note:[/dim] {markup_escape(note)}")


def markdown(listing: Listing) -> str:
    """The listing as a GitHub-flavoured Markdown table under a bold title."""
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = [f"**{cell(listing.title)}**", "",
             "| " + " | ".join(cell(c.name) for c in listing.columns) + " |",
             "|" + "|".join("---:" if c.right else "---" for c in listing.columns) + "|"]
    lines += ["| " + " | ".join(cell(c.show(v)) for c, v in zip(listing.columns, row, strict=True)) + " |"
              for row in listing.rows]
    return "\n".join(lines)


def plain(v: Any) -> str:
    """A raw value for CSV: numbers in positional notation with every significant digit, None empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "" if v != v else ("inf" if v > 0 else "-inf")
        import numpy as np

        return np.format_float_positional(v, trim="-")
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def size(v: Any) -> str:
    """Bytes as B/KB/MB/GB."""
    if v is None:
        return "–"
    v = float(v)
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)  # pragma: no cover
