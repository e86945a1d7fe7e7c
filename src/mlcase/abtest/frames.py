"""Reading experiment data: a CSV/Parquet file as a frame, metric columns as numbers, rows named as the user sees them.

Shared by :mod:`~mlcase.abtest.plan`, :mod:`~mlcase.abtest.analyze` and :mod:`~mlcase.abtest.aa`
(each imports from here; none imports another for these).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, MlcaseError, NotFoundError

_MAX_LISTED = 5


class _Rows:
    """Names rows the way the user sees them: file lines (header = line 1) or DataFrame positions."""

    def __init__(self, from_file: bool):
        self.from_file = from_file

    def name(self, positions) -> str:
        pos = [int(p) for p in positions]
        shown = [p + 2 if self.from_file else p for p in pos[:_MAX_LISTED]]
        word = "line" if self.from_file else "row"
        more = f" and {len(pos) - _MAX_LISTED} more" if len(pos) > _MAX_LISTED else ""
        return f"{word}{'s' if len(pos) > 1 else ''} {', '.join(map(str, shown))}{more}"

    def numbers(self, positions) -> list[int]:
        return [int(p) + (2 if self.from_file else 0) for p in list(positions)[:_MAX_LISTED]]


def numeric_metric(values: pd.Series, name: str, rows: _Rows | None = None) -> pd.Series:
    """A metric column as floats; text that is not a number is an error naming the rows and values."""
    rows = rows or _Rows(False)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        num = values.astype(float)
    else:
        num = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & num.isna() & ~values.astype(str).str.strip().isin(["", "nan", "NaN", "NA"])
        if bad.any():
            pos = np.flatnonzero(bad.to_numpy())
            examples = ", ".join(repr(v) for v in pd.unique(values[bad])[:3])
            raise DataError(f"metric column {name!r} has non-numeric values ({examples}) on {rows.name(pos)}",
                            "encode the metric as numbers (0/1 for conversions) or drop those rows",
                            column=name, rows=rows.numbers(pos))
        num = num.astype(float)
    # an infinite value (a ratio metric over zero sessions, "inf" in an export) was taken as a number: the
    # analysis said SHIP with a mean of inf, CI [nan, nan] and p 0.0005, the A/A check "0% significant"
    inf = np.isinf(num.to_numpy(dtype=float))
    if inf.any():
        pos = np.flatnonzero(inf)
        raise DataError(f"metric column {name!r} has infinite values on {rows.name(pos)}",
                        "fix or drop those rows (a ratio over zero has no value: leave it empty)",
                        column=name, rows=rows.numbers(pos))
    return num


def read_frame(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (text stays text; ids are never turned into floats)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file", "check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            from ..data import csv_sep

            sep = csv_sep(path)   # a ';' file (a spreadsheet's export where 0,5 is a half) writes decimal commas
            df = pd.read_csv(path, sep=sep, decimal="," if sep == ";" else ".")
        else:
            raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}", "use a .csv or .parquet file")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        if isinstance(exc, MlcaseError):
            raise
        raise DataError(f"{path.name}: cannot read it ({str(exc).splitlines()[0][:120]})",
                        "check that it is a valid CSV or Parquet file") from None
    if df.empty:
        raise DataError(f"{path.name}: the file has no rows", "point at a file with past data")
    return df
