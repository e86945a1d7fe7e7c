"""``mlcase init``: draft a commented ``case.yaml`` from a data file."""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .candidates import resolve_family
from .data import describe_read_notes, entity_key, infer_schema, panel_keys, read_notes, read_table
from .errors import DataError, SpecError
from .spec import DEFAULT_CANDIDATES


def _q(v) -> str:
    """A YAML double-quoted scalar: JSON's escapes are YAML's, and non-printable characters (which YAML
    refuses anywhere in a file, e.g. U+0085 in a column name) stay escaped."""
    text = json.dumps(v, ensure_ascii=False)
    return "".join(c if c.isprintable() or c in "\t" else json.dumps(c)[1:-1] for c in text)


def _comment(text: str) -> str:
    """Text safe inside a YAML comment: one line, non-printable characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(text).split()))



def _read_name(df: pd.DataFrame, col: str | None) -> str | None:
    """``col`` as reading names it: without the spaces around it, where that names a column and ``col`` does not."""
    if col is None or col in df.columns or not isinstance(col, str) or col.strip() not in df.columns:
        return col
    return col.strip()


def _stem(data: Path) -> str:
    """The file's name without its suffixes: ``sales`` for ``sales.csv.gz`` (the case's default name)."""
    from .data import table_suffix

    name = data.name
    for suffix in (".gz", table_suffix(data)):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or data.stem

def _slug(text: str) -> str:
    """The case name from a file's or the user's name: letters without their accents (``--name "Crédit ü"`` was
    ``cr-dit``), digits, ``_.-``; every other run of characters one ``-``."""
    import unicodedata

    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.").lower()
    return s or "case"


COUNT_MIN_VALUES = 5    # whole numbers from 0 with a rare top take at least this many values to be a count
RANK_MIN_VALUES = 10    # whole numbers from 1 with a rare top take at least this many to be places, not ratings
DRAFT_TRAIN_SHARE = (1 - 0.2) * (1 - 0.2)   # the share of rows the drafted split trains on


def infer_task(y: pd.Series) -> str:
    """binary, multiclass or regression, from the target's values.

    Numbers are a regression target when they are fractional or take more than 20 values, and
    when they look like a count: whole numbers with gaps between them and a value too rare to be
    a class (AER::Medicaid1986's doctor ``visits``: 0 to 16, then 24, 48 and 50, once each), or
    at least ``COUNT_MIN_VALUES`` whole numbers from 0 whose rare values are all above the common
    ones (vcd::Bundesliga's home goals: 0 to 10, with 9 and 10 scored once or twice; vcd::VonBort's
    deaths by horse kick per corps and year: 0 to 4, with 3 and 4 seen 11 and 2 times in 280), or at least
    ``RANK_MIN_VALUES`` from 1 so (places in a contest: bakeoff::episodes_raw's 1 to 13).
    Whole numbers without gaps (a 1 to 5 rating, class codes) stay classes, unless the table is too
    small to learn them as classes: five or more values, at most one with ``MIN_CLASS_ROWS`` training
    rows at the drafted split (carData::OBrienKaiserLong's scores 1 to 11 in 192 rows).
    """
    from .checks.thresholds import MIN_CLASS_ROWS  # fewer rows of a class stop a multiclass run

    values = y.dropna()
    n_unique = values.nunique()
    if n_unique == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if n_unique > 20 or not (values % 1 == 0).all():
            return "regression"
        gaps = values.max() - values.min() + 1 > n_unique
        counts = values.value_counts()
        if gaps and counts.min() < MIN_CLASS_ROWS:
            return "regression"
        rare, common = counts.index[counts < MIN_CLASS_ROWS], counts.index[counts >= MIN_CLASS_ROWS]
        if (values.min() == 0 and n_unique >= COUNT_MIN_VALUES and len(rare) and len(common)
                and rare.min() > common.max()):
            return "regression"          # counts from 0 whose top values are rare: a count's tail
        if (values.min() == 1 and n_unique >= RANK_MIN_VALUES and len(rare) and len(common)
                and rare.min() > common.max()):
            # places from 1 whose last places are rare (bakeoff::episodes_raw's technical-challenge places 1 to 13:
            # 13th twice in 704, drafted as 13 classes and stopped at the first run); a 1 to 5 rating stays classes
            return "regression"
        if n_unique >= COUNT_MIN_VALUES and (counts * DRAFT_TRAIN_SHARE >= MIN_CLASS_ROWS).sum() <= 1:
            # a scale the table is too small to learn as classes (carData::OBrienKaiserLong's scores 1 to 11 in
            # 192 rows: every one under 20 training rows, and the run stopped); as a number it can be learned
            return "regression"
    if n_unique <= 1:
        missing = int(y.isna().sum())
        if n_unique == 1 and missing:
            # vcdExtra::Heart's Disease: 'Disease' or empty; the empty cells were the other class (R's level "None")
            raise DataError(f"target '{y.name}' has a single value ({values.iloc[0]}) in {len(values):,} rows and is "
                            f"empty in the other {missing:,}, which are read as unlabelled",
                            f"if an empty '{y.name}' is a class of its own, write it as a value in the file (or "
                            f"coalesce(\"{y.name}\", 'none') in a data.source query); else pick a column whose "
                            "values differ between rows")
        raise DataError(f"target '{y.name}' has a single value ({values.iloc[0] if len(values) else 'empty'})",
                        "pick a column whose values differ between rows")
    if n_unique == len(values) and n_unique > MIN_CLASS_ROWS:
        from .checks.target import UNIQUE_TARGET_FIX, unique_target_said

        raise DataError(unique_target_said(y.name, n_unique, len(values)), UNIQUE_TARGET_FIX)
    return "multiclass"


def draft_spec(data: str | Path, target: str, name: str | None = None, case_dir: str | Path | None = None,
               task: str | None = None, time: str | None = None, series: str | None = None,
               group: str | None = None, item: str | None = None) -> str:
    """Return the text of a commented ``case.yaml`` drafted from ``data``.

    Task and positive class are inferred from the target (or ``task`` is given), likely id
    and time columns are filled in, every section is present with a default and a
    comment saying what the owner has to decide. ``task="ranking"`` needs ``group`` (and
    takes ``item``): see :func:`_draft_ranking`.
    """
    data = Path(data)
    case_dir = Path(case_dir) if case_dir else data.resolve().parent
    df = read_table(data.resolve(), what="DATA")
    # reading strips the spaces around a column's name (' deny ' is read as 'deny'): a flag naming the column as
    # the file's header writes it was refused, with 'deny' among the columns to pick from
    target, group, item, time, series = (_read_name(df, c) for c in (target, group, item, time, series))
    if target not in df.columns:
        raise DataError(f"--target '{target}' is not a column of {data.name}",
                        f"pick one of: {', '.join(map(str, df.columns[:30]))}")
    for flag, col in (("--group", group), ("--item", item), ("--time", time), ("--series", series)):
        if col is not None and col == target:
            raise SpecError(f"{flag} '{col}' is the target: the label cannot also be the {flag[2:]} column",
                            f"pass another column to {flag}, or leave it out")
    for flag, col in (("--group", group), ("--item", item)):
        if col is not None and col not in df.columns:
            raise DataError(f"{flag} '{col}' is not a column of {data.name}",
                            f"pick one of: {', '.join(map(str, df.columns[:30]))}")
    if task == "forecast":
        # both were dropped without a word (ggplot2::economics with --group pop drafted one series)
        if item is not None:
            raise SpecError("--item: only a ranking case has items", "leave --item out of a forecast case")
        if group is not None:
            raise SpecError("--group: a forecast case has series, not groups",
                            f"pass --series {group} for one series per value of '{group}', or leave --group out")
        from .forecast.draft import draft_forecast_spec

        return draft_forecast_spec(data, df, target, time, series, _slug(name or _stem(data)),
                                   _source(data, case_dir), _comment, _q, _source_path(data, case_dir))
    if series is not None:
        raise SpecError("--series: only a forecast case has series", "pass --task forecast --time COL --series COL, "
                        "or leave --series out")
    if time is not None:   # a time column given is read as the run reads it (COUNT::lbw's 0/1 `smoke` was drafted)
        from .data import times_of

        if time not in df.columns:
            raise DataError(f"--time '{time}' is not a column of {data.name}",
                            f"pick one of: {', '.join(map(str, df.columns[:30]))}")
        times_of(df[time], f"--time '{time}'")
    if task == "ranking" or (task is None and group is not None and item is not None):
        return _draft_ranking(data, df, target, name, case_dir, group, item, time)
    if item is not None:
        raise SpecError("--item: only a ranking case has items", "pass --task ranking --group COL --item COL, "
                        "or leave --item out")
    if task not in (None, "binary", "multiclass", "regression"):
        raise SpecError(f"--task {task!r} is not a task", "use binary, multiclass, regression, ranking or forecast")
    if task is not None:
        _check_given_task(df[target], task)
    task = task or infer_task(df[target])
    schema = infer_schema(df, target, task)
    kinds = {c: schema.columns[c].kind for c in df.columns}
    id_col = _id_column(kinds, target)
    counted = _count_column(df, target, id_col) if task in ("binary", "multiclass") else None
    cells = len(df)
    raw_total = float(df[counted].sum()) if counted is not None else 0.0
    per = 1
    if counted is not None:   # a table of counts: drafted as the cases it counts (the source repeats each row)
        drop = [counted] + [c for c in df.columns if c == id_col or _row_number(df[c])]
        per = max(1, math.ceil(float(df[counted].sum()) / COUNT_MAX_CASES))
        times = np.floor(df[counted] / per + 0.5).astype("int64")   # DuckDB's round: halves away from 0
        df = df.loc[df.index.repeat(times)].drop(columns=drop).reset_index(drop=True)
        schema = infer_schema(df, target, task)
        kinds = {c: schema.columns[c].kind for c in df.columns}
        id_col = None
    # the first date column a time split can use: Ecdat::breaches' first, `Date_Posted_or_Updated`, holds 43 days,
    # too few, and the draft split at random beside `breach_start`'s 732
    # a birth date is when a person was born, not when the decision is made: a split by it tests the youngest
    births = [c for c in df.columns if c != target and _BIRTH_NAME.search(str(c))]
    dates = [c for c, k in kinds.items() if k == "datetime" and c != target and c not in births]
    dates += _text_dates(df, kinds, (target, id_col, *births, *dates))
    time_col = time or next((c for c in dates if not _time_unsplittable(df[c])), dates[0] if dates else None)
    # a panel (each row one entity in one period, with the period in whole years or dates) is split
    # by its period: the decision is about the entities' next periods
    panel = None if time_col else panel_keys(df, exclude=(target, id_col, *births))
    time_col = time_col or (panel[1] if panel else None)
    unsplit = None if time or not time_col else _time_unsplittable(df[time_col])
    if not time_col and not unsplit:
        birth = next((c for c in births if kinds.get(c) == "datetime"), None)
        unsplit = (f"'{birth}' is a birth date, not the time of the decision: a split by it would test the "
                   "youngest; set the date each decision is made, if the file has one" if birth else None)
    if unsplit:
        time_col, panel = None, None
    # a key with several rows per entity keeps each entity on one side of the split (a time split
    # already holds out the future, which is the question for the entities in the data)
    group_col = group if group is not None else None if time_col else next(
        (c for c in df.columns if c not in (target, id_col) and entity_key(c, df[c]) is not None), None)
    if group_col is not None and group_col == id_col:
        id_col = None   # the entity the rows share is no row identifier
    source = _source(data, case_dir)
    if counted is not None:
        times = ("that many times (one row per case)" if per == 1 else
                 f"once per {per:,} of its cases, rounded ({len(df):,} rows for the table's "
                 f"{int(raw_total):,} cases, more than {COUNT_MAX_CASES:,}; each cell keeps its share)")
        source = (f"  # each of the {cells:,} rows is a cell of a table of counts: '{_comment(counted)}' cases with its "
                  f"values; the query repeats each row {times}\n"
                  f"  source: {_q(count_query(_source_path(data, case_dir), counted, drop[1:], per))}"
                  + ("\n" + source.split("\n", 1)[1] if "\n" in source else ""))
    name = _slug(name or _stem(data))
    positive = None
    if task == "binary":
        from .data import _guess_positive

        labels = df[target].dropna().astype(str)
        values = sorted(labels.unique())
        positive = _guess_positive(values, labels.value_counts().to_dict())
        rate = float((labels == positive).mean())   # of the labelled rows, as the run counts them
    personal, quasi = _personal_columns(df, target, id_col, time_col)
    cats = [c for c, k in kinds.items() if k == "categorical" and c not in (target, id_col, *personal)]
    slices = [c for c in cats if 2 <= schema.columns[c].n_unique <= 10][:2]
    candidates = [resolve_family(f, task) for f in DEFAULT_CANDIDATES]
    lines = [
        f"# Drafted by `mlcase init` from {_comment(data.name)} ({len(df):,} rows, {df.shape[1]} columns).",
        "# Every section below has a default; the comments say what the owner must decide.",
        *(f"# note: {_comment(line)}" for line in describe_read_notes(read_notes(df))),
        *(_rare_classes_note(df, target, time_col, data, case_dir, (drop, per) if counted is not None else None)
          if task in ("binary", "multiclass") else []),
        *_unlabelled_note(df[target]),
        *_too_few_rows_note(df[target]),
        *_identifier_target_note(df[target]),
        *_personal_note(personal),
        *_quasi_note(quasi),
        f"name: {name}",
        "decision: TODO say which action the prediction drives, in one sentence",
        "owner: TODO team",
        "problem:",
        "  current_process: TODO how the decision is made today",
        f"  volume: {len(df)}/month          # TODO decisions per period (turns money per decision into money per period)",
        "  target: TODO what success looks like",
        "goals: []",
        "non_goals: []",
        "assumptions: []                   # text + a SQL check over aggregates, e.g. avg(x IS NULL) < 0.05",
        f"task: {task}                       # binary | multiclass | regression (inferred from the target)",
        "data:",
        source,
        f"  target: {_q(target)}",
    ]
    if task == "binary":
        from .data import named_positive

        rarer = "" if named_positive(values, codes=True) == positive else "the rarer class, "
        lines.append(f"  positive: {_q(positive)}              # the class the decision acts on ({rarer}{rate:.1%} of "
                     + ("rows)" if df[target].notna().all() else "the labelled rows)"))
    # a --group given splits by it unless a --time was given too (the future is then the question)
    method = ("time" if time_col and (time is not None or group is None) else "group" if group_col else
              "stratified" if task != "regression" else "random")
    time_comment = (f"               # {_comment(unsplit)}" if unsplit else
                    f"   # a panel: each row one '{panel[0]}' in one '{panel[1]}'; the test is its last periods "
                    f"(data.group: {panel[0]} with split.method: group scores new ones instead)" if panel else
                    "   # enables time splits and time-window monitoring" if time_col else
                    "               # set a date column to split by time")
    lines += [
        _id_line(id_col),
        f"  time: {_q(time_col) if time_col else 'null'}" + time_comment,
        f"  group: {_q(group_col)}" + ("                # an entity with several rows: its rows stay on one side of the split "
                                        "(null if every decision is about an entity already in the data)" if group_col else "")
        if group_col else "  group: null" + _few_entities_comment(df, target, id_col, time_col),
        _features_line(kinds, "decision", target, id_col, group_col, time_col, personal=personal),
        "  unavailable_at_serving: []      # TODO columns that exist in history but not when the decision is made",
        "  label_delay: null               # e.g. 90d: how long until the outcome is known",
        f"split: {{method: {method}, test_size: 0.2, valid_size: 0.2, seed: 42}}",
        "sensitive: []                     # TODO columns to check for fairness (never used as features)"
        + _sensitive_hint(df, target, id_col, personal),
    ]
    if task == "binary":
        lines += [
            "costs:                          # TODO money per decision from the business (a number or a SQL expression per row)",
            "  true_positive: 1               # acting on a case that needed it",
            "  false_positive: 1              # acting on a case that did not",
            "  false_negative: 5              # missing a case that needed action",
            "  true_negative: 0",
            "constraints:",
            "  review_capacity: 0.1           # TODO share of cases you can act on (or a count like '300/day')",
        ]
    elif task == "regression":
        lines += [
            "costs:                          # TODO money per unit of error; the prediction is then the cheapest quantile",
            "  under: 1                       # per unit predicted below the truth",
            "  over: 1                        # per unit predicted above it (1:1: the median, 3:1 under: the 75% quantile)",
            "constraints:",
        ]
    else:
        top = [str(v) for v in df[target].value_counts().index[:2]]
        example = f'{{{_q(top[0])}: {{{_q(top[-1])}: 5}}}}' if len(top) == 2 else '{"a": {"b": 5}}'
        lines += [
            "costs:                          # TODO money per decision by actual and predicted class (unset: each error 1)",
            f"  matrix: null                   # e.g. {_comment(example)}: calling a {_comment(top[0])} case "
            f"{_comment(top[-1])} costs 5; each row then gets the class of least expected cost",
            "constraints:",
        ]
    lines += [
        "  latency_p95_ms: 100",
        "  min_lift: 0.0                  # money per decision the model must add over the best baseline",
        "  operating_cost: auto           # money per decision to run the model, or auto (measured)",
        "compute: {cost_per_cpu_hour: 0.05, retrain_every: 30d}",
        "baselines:",
        f"  - {'majority' if task != 'regression' else 'mean'}",
        "  - linear",
        "  # - rule: \"some_column > 10\"   # TODO today's expert rule as a SQL expression",
        f"candidates: [{', '.join(candidates)}]",
        "budget: 2m",
        f"slices: [{', '.join(_q(s) for s in slices)}]",
        "conformal: {alpha: 0.1}",
        "serving: {fallback: [previous_champion, baseline, constant]}",
        "monitoring: {psi_alert: 0.25, window: 1d, max_fallback_share: 0.05}",
    ]
    return "\n".join(lines) + "\n"


def _text_dates(df: pd.DataFrame, kinds: dict, taken) -> list:
    """Text columns named like a time (``date``, ``month``, ``*_at``) whose every value is a date as the run reads
    ``data.time``: a Parquet file keeps dates written as text (pandas writes unparsed dates so), and
    gt::pizzaplace's `date` ('2015-01-01') was drafted with a time split from its CSV but not from its Parquet."""
    from .data import _TIME_NAME, to_times

    found = []
    for c, k in kinds.items():
        x = df[c]
        if (c in taken or k == "datetime" or pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x)
                or not _TIME_NAME.search(str(c))):
            continue
        values = pd.Series(x.dropna().unique())
        if len(values) < 2 or to_times(values.iloc[:50]).isna().any() or to_times(values).isna().any():
            continue
        found.append(c)
    return found


#: a column named as a birth date (``dob``, ``birth_date``, ``DateOfBirth``, ``born``): never the time of a split
_BIRTH_NAME = re.compile(r"birth|(^|[^a-z])(dob|born|bday)([^a-z]|$)", re.I)


def _time_unsplittable(values: pd.Series) -> str | None:
    """Why a time split on ``values`` (a date column, or a panel's periods) cannot be drafted, else None:
    the split the draft writes (test and validation 20% each) must leave earlier rows to train on."""
    from .data import make_split
    from .times import as_datetimes

    t = values.dropna()
    if len(t) < len(values):
        # a row without a time has no side of a time split; a time missing for some rows is often the outcome's
        # own (vcdExtra::Donner's `death`, the date only the dead have: drafted as the time, its split failed)
        return (f"'{values.name}' is missing in {len(values) - len(t):,} of {len(values):,} rows, which a time split "
                "cannot place: fill it, or set a date column every row has")
    try:
        t = as_datetimes(t) if not pd.api.types.is_numeric_dtype(t) else t
        make_split(len(t), "time", 0.2, 0.2, 42, time=t.to_numpy())
    except (DataError, ValueError, TypeError):
        return (f"'{values.name}' has {t.nunique()} distinct time(s), too few to split by time: set a "
                "date column with more, or keep the split below")
    return None


#: the names of a column that counts the cases a row stands for (R's as.data.frame(table) writes `Freq`)
COUNT_NAMES = ("freq", "frequency", "count", "counts", "n", "number", "cases")
#: a table of counts is repeated into at most about this many rows: past it, once per k cases, rounded (each cell
#: keeps its share; vcd::Bundestag2005's 45,921,652 votes in 80 cells become 4,592,169 rows)
COUNT_MAX_CASES = 5_000_000
#: the cells of a table of counts are combinations of a few values per column (a number: of a few codes)
COUNT_MAX_LEVELS = 50
COUNT_NUMERIC_LEVELS = 12
#: a level that names what the count counts, or a margin: the rows are not cells of one table of cases
COUNT_MEASURES = {"total", "totals", "all", "sum", "population", "cases", "count", "n"}


def _count_column(df: pd.DataFrame, target: str, id_col: str | None) -> str | None:
    """The column that counts the cases each row stands for, where the table is one of counts: vcdExtra::Accident's
    80 rows (age, result, mode, gender) each hold `Freq` victims, 186,730 in all. Read as 80 cases, the count was a
    feature (a cell of deaths counts fewer than its cell of injuries) and every CI was over 16 test rows.

    A count is named so (:data:`COUNT_NAMES`), holds whole numbers from 0 that sum to more than the rows, is not
    the target (a class), and each row is one cell: no two rows share their other values, each of which takes
    few values (:data:`COUNT_MAX_LEVELS`; a number :data:`COUNT_NUMERIC_LEVELS`). A table of successes among the
    count (MASS::eagles' `y` of `n` attempts, COUNT::titanicgrp's `survive` of `cases`, tidyr::table1's `cases`
    of `population`, HSAUR::GHQ's `cases` and `non.cases`) is binomial, not cells of cases alike, and is left as
    it is; so is a count of several measures told apart by a column (tidyr::table2's `type`: cases or population)
    or a table with margins (a level 'Total')."""
    by_name = {str(c).lower(): c for c in df.columns}
    col = next((by_name[n] for n in COUNT_NAMES if n in by_name), None)
    if col is None or col in (target, id_col) or not pd.api.types.is_numeric_dtype(df[col]):
        return None
    v = df[col]
    if v.isna().any() or (v < 0).any() or not (v == v.round()).all():
        return None
    total = float(v.sum())
    if not len(df) < total:
        return None
    rest = [c for c in df.columns if c not in (col, id_col) and not _row_number(df[c])]
    if len(rest) < 2 or v.nunique() < 2 or df[rest].duplicated().any():
        return None
    for c in rest:
        x = df[c]
        if not pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
            if x.nunique() > COUNT_MAX_LEVELS:
                return None
            if {str(v).strip().lower() for v in x.dropna().unique()} & COUNT_MEASURES:
                return None   # the count is of several measures (tidyr::table2's cases and population) or has margins
            continue
        if x.nunique() > COUNT_NUMERIC_LEVELS:   # a measurement (heplots::Rohwer's `n` is a test score beside them)
            return None
        if x.nunique() > 2 and (((x >= 0) & (x <= v)).all() or (x >= v).all()):
            return None   # successes among the count, or its denominator: a binomial table, not cells of cases
        if str(col).lower() in str(c).lower():
            return None   # a second count beside it (HSAUR::GHQ's `non.cases` beside `cases`)
    return col


def _row_number(x: pd.Series) -> bool:
    """Whether a column numbers the rows (1, 2, ... or 0, 1, ...: R's row names written out)."""
    if not pd.api.types.is_integer_dtype(x) or len(x) < 2:
        return False
    start = int(x.iloc[0])
    return start in (0, 1) and bool((x.to_numpy() == range(start, start + len(x))).all())


def count_query(path: str, count: str, drop: list[str], per: int = 1) -> str:
    """A ``data.source`` query that repeats each row of the file at ``path`` ``count`` times (``count / per``,
    rounded, past :data:`COUNT_MAX_CASES` cases), without ``count`` (and ``drop``, an identifier of cells).

    >>> print(count_query("acc.csv", "Freq", ["rownames"]))
    SELECT t.* EXCLUDE ("Freq", "rownames") FROM 'acc.csv' AS t, range(t."Freq") AS r(i)
    >>> print(count_query("votes.csv", "Freq", [], per=10))
    SELECT t.* EXCLUDE ("Freq") FROM 'votes.csv' AS t, range(CAST(round(t."Freq" / 10) AS BIGINT)) AS r(i)
    """
    from .sql import identifier, literal

    cols = ", ".join(identifier(c) for c in [count, *drop])
    times = f"t.{identifier(count)}" if per == 1 else f"CAST(round(t.{identifier(count)} / {int(per)}) AS BIGINT)"
    return f"SELECT t.* EXCLUDE ({cols}) FROM {literal(path)} AS t, range({times}) AS r(i)"


def _list_keys(df: pd.DataFrame, kinds: dict, group: str, *taken) -> list[str]:
    """Columns named like an entity's key (a household, a user), with at least 20 values, each constant within every
    ``group`` list and not already an identifier or one of ``taken``: the key of who a list is for, beside the list's
    own group."""
    from .data import _ENTITY_NAME, _ID_NAME, named

    out = []
    for c, kind in kinds.items():
        if c == group or c in taken or kind == "id" or not (named(_ID_NAME, c) or named(_ENTITY_NAME, c)):
            continue
        if df[c].nunique() >= 20 and df.groupby(group)[c].nunique(dropna=False).le(1).all():
            out.append(c)
    return out


def _id_column(kinds: dict, *taken) -> str | None:
    """The first column inferred as an identifier that is not one of ``taken`` (target, group, item)."""
    return next((c for c, k in kinds.items() if k == "id" and c not in taken), None)


def _features_line(kinds: dict, what: str, *taken, personal: dict | None = None) -> str:
    """``features: {exclude: [...]}`` with the identifiers other than data.id already in it: a second one
    (wooldridge::benefits' `schid` beside `rownames`, mstate::ebmt1's `patid`) was a feature of the first run;
    and the columns that look like personal data (:func:`_personal_columns`), which the run's checks refuse as
    features until the spec declares them."""
    private = [c for c in (personal or {}) if c not in taken]
    more = [c for c, k in kinds.items() if k == "id" and c not in taken and c not in private]
    if not more and not private:
        return f"  features: {{exclude: []}}         # TODO drop columns that must not drive the {what}"
    said = []
    if more:
        said.append(f"{'looks' if len(more) == 1 else 'look'} like {'an identifier' if len(more) == 1 else 'identifiers'}"
                    + (f" ({', '.join(map(_comment, more))})" if private else "") + (" too" if not private else ""))
    if private:
        said.append(f"personal data ({', '.join(map(_comment, private))}): to use it, declare it under personal_data "
                    "with its purpose instead")
    return (f"  features: {{exclude: [{', '.join(map(_q, more + private))}]}}   # {'; '.join(said)}; TODO drop columns "
            f"that must not drive the {what}")


#: names of columns a fairness review usually asks about (a protected attribute or a close proxy of one)
_SENSITIVE_NAME = re.compile(r"(^|[^a-z])(sex|gender|race|ethnic\w*|religion|nationality|citizen\w*|marital|"
                             r"married|female|male|disab\w*|age)([^a-z]|$)", re.I)


def _sensitive_hint(df: pd.DataFrame, target: str, id_col: str | None, personal: dict) -> str:
    """`` (named like one: 'gender', 'ethnicity')``: the columns the owner may want under ``sensitive``, said in the
    comment and not set (a sensitive column is no feature: setting it changes every model). AER::CPS1985's
    `gender` and `ethnicity` were left unsaid beside ``sensitive: []``."""
    names = [c for c in df.columns if c not in (target, id_col, *personal) and _SENSITIVE_NAME.search(str(c))]
    return f"; named like one here: {', '.join(map(_comment, names[:6]))}" if names else ""


def _personal_columns(df: pd.DataFrame, *taken) -> tuple[dict, dict]:
    """The columns that look like personal data, as the run's ``personal_data`` check finds them (a name, an
    e-mail, a phone number ...), each with what it looks like: ``{column: 'person names'}``; and apart, the
    quasi-identifiers kept as features (a postal code, a birth date: the run warns about them). ``taken`` (the
    target, data.id, the time) are left out: the check does not refuse them. medicaldata::covid_testing's
    ``fake_first_name`` and ``fake_last_name`` were drafted as features, and the draft's run stopped at once
    with two ``personal_data`` errors."""
    from .checks.personal import (
        _HINTS,
        _QUASI_HINTS,
        KIND_WORDS,
        PII_SAMPLE,
        UNIQUE_SHARE,
        _words,
        combination,
        scan_column,
    )

    rows = np.arange(len(df))
    if len(rows) > PII_SAMPLE * 2:   # a spread of the rows, as the check samples them
        rows = np.sort(np.random.default_rng(42).choice(rows, PII_SAMPLE * 2, replace=False))
    found, quasi, kept = {}, [], {}
    hints = [*_HINTS.values(), *_QUASI_HINTS.values()]
    for c in df.columns:
        if c in taken:
            continue
        x = df[c]
        if (pd.api.types.is_numeric_dtype(x) and not any(rx.search(_words(str(c))) for rx in hints)
                and not (pd.api.types.is_bool_dtype(x) or x.abs().max() >= 1e12)):
            # numbers are personal data only under a name that says so, or as long as a card number: scanning each
            # (modeldata::grants_other's 1,500 columns) doubled the draft's time
            continue
        hit = scan_column(str(c), x.iloc[rows])
        if hit is None:
            continue
        said = (f"{KIND_WORDS[hit['kind']]} ({hit['match_share']:.0%} of {hit['sampled']:,} sampled values "
                f"match, {hit['distinct']:,} different)")
        if hit.get("quasi"):
            quasi.append({"column": c, "kind": hit["kind"], "said": said})
        else:
            found[c] = said
    # a postal code or a birth date alone is a quasi-identifier: a feature the run warns about (its note says so);
    # both (with sex) single people out, which the run refuses: the birth date is drafted out of the features
    combo = combination(df, quasi, skip=taken)
    for q in quasi:
        if combo is not None and combo["share"] >= UNIQUE_SHARE and q["kind"] == "birth_date":
            together = ", ".join(f"'{c}'" for c in combo["columns"] if c != q["column"])
            found[q["column"]] = (f"{q['said']}; with {together} it singles out {combo['unique']:,} of "
                                  f"{combo['rows']:,} rows ({combo['share']:.0%}), a quasi-identifier")
        else:
            kept[q["column"]] = q["said"]
    return found, kept


def _personal_note(personal: dict) -> list[str]:
    """A ``# note:`` per column that looks like personal data, saying where the draft put it."""
    where = ("drafted into data.features.exclude, so no model uses it; to use it, declare it under personal_data "
             "with its purpose (the prediction log then keeps it hashed)")
    return [f"# note: {_comment(f'{c!r} looks like {what}: {where}')}" for c, what in personal.items()]


def _quasi_note(quasi: dict) -> list[str]:
    """A ``# note:`` per quasi-identifier the draft keeps as a feature (a postal code, a birth date)."""
    where = ("a quasi-identifier (with others it singles people out), kept as a feature: declare it under "
             "personal_data with its purpose (the prediction log then keeps it hashed), or exclude it, or coarsen it")
    return [f"# note: {_comment(f'{c!r} looks like {what}: {where}')}" for c, what in quasi.items()]


def _id_line(id_col: str | None) -> str:
    return f"  id: {_q(id_col) if id_col else 'null'}" + ("                 # looks like an identifier; never a feature"
                                                            if id_col else "")


def _few_entities_comment(df: pd.DataFrame, target: str, id_col: str | None, time_col: str | None) -> str:
    """A comment on ``group: null`` where a column names too few entities for a group split: the test rows are
    then of the same entities, and the case judges decisions about them, not about new ones."""
    from .data import ENTITY_MIN_VALUES, few_entities

    if time_col:
        return ""
    for c in df.columns:
        if c in (target, id_col):
            continue
        k = few_entities(str(c), df[c])
        if k and (set(df[c].unique()) <= {0, 1} or df[c].value_counts(normalize=True).iloc[0] > 0.5):
            # a 0/1 flag named like an entity (dragracer::rpdr_contep's `participant`: was the queen in the show)
            # or a code one value of which holds most rows (medicaldata::covid_testing's `test_id`: 'covid' in
            # 15,522 of 15,524 rows) names no entities: the comment said "only 2 entities with several rows each"
            continue
        if k:
            return (f"                # '{_comment(c)}' names only {k} entities with several rows each, too few to "
                    f"hold some out (a group split needs {ENTITY_MIN_VALUES}): the test rows are of the same {k}, so "
                    "the case judges decisions about them, not about new ones")
    return ""


def _identifier_target_note(y: pd.Series) -> list[str]:
    """A note where the target is named like a row's or an entity's key and holds many numbers: a model of it
    predicts a code, not an outcome. The sweep's runs on mlmRev::Gcsemv's ``student`` (numbered within each school)
    and Ecdat::Ketchup's ``Ketchup.hid`` (a household's number) went GO. A name without an identifier's word
    (causaldata::scorecard's ``unitid``) is not caught: ``[a-z]id$`` would take ``humid``, ``acid``, ``rapid``."""
    from .data import _ENTITY_NAME, _ID_NAME, named

    values = pd.to_numeric(y.dropna(), errors="coerce")
    if not (named(_ID_NAME, y.name) or named(_ENTITY_NAME, y.name)) or values.isna().any() or values.nunique() < 20:
        return []
    text = (f"the target '{y.name}' is named like an identifier ({values.nunique():,} different numbers): a model of "
            "it predicts a code, not an outcome; if the outcome is another column, pass that as --target")
    return [f"# note: {_comment(text)}"]


#: the fewest labelled rows a split takes (:func:`mlcase.data.make_split`)
MIN_SPLIT_ROWS = 10


def _too_few_rows_note(y: pd.Series) -> list[str]:
    """A note where the table has fewer labelled rows than any split takes: carData::Mandel's 8 rows were drafted
    without a word, and the draft's first check stopped with "split: only 8 usable rows"."""
    n = int(y.notna().sum())
    if n >= MIN_SPLIT_ROWS:
        return []
    text = (f"only {n} row{'s' if n != 1 else ''} with a '{y.name}': a run needs at least {MIN_SPLIT_ROWS} to split "
            "into training, validation and test rows, and stops until the file has more")
    return [f"# note: {_comment(text)}"]


def _unlabelled_note(y: pd.Series) -> list[str]:
    """A note where the target is empty in some rows: the run reads them as unlabelled and drops them. Where empty
    means a class (vcdExtra::Caesar's Infection: 'Type 1', 'Type 2', and empty for R's level "None", 179 of 251
    patients), the case would otherwise learn Type 1 against Type 2 and say the positive class is 11.6% of rows."""
    missing = int(y.isna().sum())
    if not missing:
        return []
    text = (f"'{y.name}' is empty in {missing:,} of {len(y):,} rows: the run reads them as unlabelled and leaves them "
            "out; if an empty value is a class of its own (none, no event), write it in the file or coalesce it in "
            "a data.source query")
    return [f"# note: {_comment(text)}"]


def _rare_classes_note(df: pd.DataFrame, target: str, time_col: str | None, data: Path, case_dir: Path,
                       counted: tuple[list[str], int] | None = None) -> list[str]:
    """Comment lines for classes the drafted run will refuse (fewer than ``MIN_CLASS_ROWS`` training rows at the
    drafted split: the oldest 64% of rows under a time split, else 64% of each class), with the source query
    that drops them, ready to paste (openintro::seattlepets' pigs and goats stopped the draft's first run)."""
    from .checks.target import drop_classes_query, regression_hint, whole_numbers
    from .checks.thresholds import MIN_CLASS_ROWS

    share = DRAFT_TRAIN_SHARE
    y = df[target].dropna()
    counts = y.value_counts()
    train = counts * share
    if time_col is not None:
        t = df.loc[y.index, time_col]
        t = t if pd.api.types.is_numeric_dtype(t) else pd.to_datetime(t, errors="coerce", utc=True, format="mixed")
        oldest = t.rank(method="first") <= share * len(y)
        train = y[oldest.to_numpy()].value_counts().reindex(counts.index, fill_value=0)
    few = [c for c in counts.index[train < MIN_CLASS_ROWS]][::-1]
    from .checks.reading import merge_spelling, spaces_only, spelling_key, spelling_twins

    twins = spelling_twins(few, [c for c in counts.index if c not in few])
    if few and len(twins) == len(few):   # medicaldata::opt: 'No' (1 row) is 'No ' (146) without its space
        pairs = ", ".join(f"'{r}' ({counts[r]:,} row{'s' if counts[r] != 1 else ''}) is '{t}' ({counts[t]:,})"
                          for r, t in list(twins.items())[:3])
        query = merge_spelling(target, _source_path(data, case_dir), all(spaces_only(p) for p in twins.items()))
        left = counts.index.map(spelling_key).nunique()
        then = " (two classes then remain: set task: binary and data.positive)" if left == 2 else ""
        note = f"{pairs} spelt another way: the run reads them as different classes; read them as one{then}, e.g."
        return [f"# note: {_comment(note)}", f"#   source: {_q(query.removeprefix('data.source: '))}"]
    where = ("in the oldest 64% of rows, the drafted time split's training part" if time_col is not None else
             f"about {math.ceil(MIN_CLASS_ROWS / share)} in this file at the drafted split")
    def rows_needed(rare) -> int | None:
        """Labelled rows in all at which the class's rate gives MIN_CLASS_ROWS training rows (None: no rows)."""
        return math.ceil(MIN_CLASS_ROWS * len(y) / train[rare]) if train[rare] else None

    if len(counts) == 2 and len(few) == 1:
        # a binary target cannot drop its rarer class (openintro::climber_drugs: 21 positive screenings in 211, 13
        # in training): the run stops at once, so the draft says so first, with how many rows its rate needs
        rare = few[0]
        need = rows_needed(rare)
        more = (f"about {need:,} labelled rows in all at its rate would give {MIN_CLASS_ROWS}; this file has "
                f"{len(y):,}" if need else "there are none")
        note = (f"'{rare}' ({counts[rare]:,} row{'s' if counts[rare] != 1 else ''}): too few to learn from (a run needs {MIN_CLASS_ROWS} training rows "
                f"of each class, {where}) and stops; collect more labelled rows of it ({more})")
        return [f"# note: {_comment(note)}"]
    if not few:
        return []
    if len(few) >= len(counts) - 1:
        # the table is too small for (almost) any class: nothing to drop, and the run stops at once, so the draft
        # says so first, as for a binary target (heplots::Skulls: 5 epochs of 24 skulls, about 15 in training)
        rare = few[0]
        need = rows_needed(rare)
        more = (f"about {need:,} labelled rows in all at the rate of '{rare}' would give {MIN_CLASS_ROWS} of it; this "
                f"file has {len(y):,}" if need else f"there are no training rows of '{rare}'")
        listed = "every class is" if len(few) == len(counts) else f"every class but '{counts.index[0]}' is"
        ordered = f"; or {regression_hint(target)}" if whole_numbers(counts.index) else ""
        note = (f"{listed} too rare to learn from ({len(few)} of {len(counts)}; the rarest, '{rare}', has "
                f"{counts[rare]:,} row{'s' if counts[rare] != 1 else ''}; a run needs {MIN_CLASS_ROWS} training rows of each class, {where}), so the "
                f"run stops; collect more labelled rows ({more}){ordered}")
        return [f"# note: {_comment(note)}"]
    path = _source_path(data, case_dir)
    listed = ", ".join(f"'{c}' ({counts[c]:,} row{'s' if counts[c] != 1 else ''})" for c in few[:4])
    listed += f" and {len(few) - 4} more" if len(few) > 4 else ""
    then = "" if len(counts) - len(few) > 2 else " (two classes then remain: set task: binary and data.positive)"
    ordered = f" (or, {regression_hint(target)})" if whole_numbers(counts.index) else ""
    note = (f"{listed}: too few to learn from (a run needs {MIN_CLASS_ROWS} training rows of a class, {where}) "
            f"and stops; drop or merge them{then}{ordered}, e.g.")
    query = drop_classes_query([str(c) for c in few], target, path)
    if counted is not None:   # the count query's cases, less the rare classes' (a WHERE on its table's rows)
        cols, per = counted
        query = f"{count_query(path, cols[0], cols[1:], per)} WHERE t.{query.split(' WHERE ', 1)[1]}"
    return [f"# note: {_comment(note)}", f"#   source: {_q(query)}"]


def _source(data: Path, case_dir: Path) -> str:
    """The ``data.source`` line(s) for ``data`` (relative to the case folder when inside it).

    A file outside the case folder is also named in ``data.allowed_paths`` (the file alone, not its
    folder): the run reads nothing outside the case folder unless the spec declares it, and the
    draft of ``mlcase init DATA -o elsewhere/case.yaml`` must run as written.
    """
    path = _source_path(data, case_dir)
    if not Path(path).is_absolute():
        return f"  source: {_q(path)}"
    return (f"  source: {_q(path)}\n"
            f"  allowed_paths: [{_q(path)}]   # the file is outside the case folder: only it may be read there")


def without_nulls(path: str, source: str, col: str, n: int, what: str) -> str:
    """``source`` (:func:`_source`'s lines) as a query over ``path`` that leaves out the ``n`` rows where ``col``
    is null, said in a comment (the ranking draft's groups and the forecast draft's series keys)."""
    from .sql import identifier, literal

    query = f"SELECT * FROM {literal(path)} WHERE {identifier(col)} IS NOT NULL"
    return "\n".join([f"  source: {_q(query)}", f"  # {n:,} row(s) without a value in '{_comment(col)}' belong to "
                      f"no {what}: the query leaves them out", *source.splitlines()[1:]])


def _source_path(data: Path, case_dir: Path) -> str:
    """``data`` relative to the case folder when inside it, else absolute (as ``data.source`` names it)."""
    try:
        return str(data.resolve().relative_to(case_dir.resolve()))
    except ValueError:
        return str(data.resolve())


def _check_given_task(y: pd.Series, task: str) -> None:
    """A one-line refusal where ``--task`` cannot learn ``y``, as the run would stop on it (COUNT::lbw's
    mother's `age`, 24 values, was drafted as a binary case with --task binary, and `mlcase check` refused it)."""
    values = sorted(map(str, y.dropna().unique()))
    shown = ", ".join(values[:5]) + (", ..." if len(values) > 5 else "")
    if task == "binary" and len(values) != 2:
        raise DataError(f"--task binary: target '{y.name}' has {len(values)} value{'s' if len(values) != 1 else ''} "
                        f"({shown}); a binary task needs exactly 2",
                        "pass --task multiclass or regression, or leave --task out to infer it")
    if task == "multiclass" and len(values) < 3:
        raise DataError(f"--task multiclass: target '{y.name}' has {len(values)} value{'s' if len(values) != 1 else ''}"
                        f" ({shown}); multiclass needs 3 or more", "pass --task binary for two classes, or leave --task out")
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        bad = y.dropna()[pd.to_numeric(y.dropna(), errors="coerce").isna()].astype(str).unique()[:3]
        if len(bad):
            raise DataError(f"--task regression: target '{y.name}' is not numeric (e.g. {', '.join(bad)})",
                            "pass --task binary or multiclass for a categorical target, or leave --task out")


def _draft_ranking(data: Path, df: pd.DataFrame, target: str, name: str | None, case_dir: Path,
                   group: str | None, item: str | None, time: str | None = None) -> str:
    """The draft of a ranking case: lists by ``group``, items by ``item``, k, relevance and the value of a list."""
    from .tasks.ranking import check_groups, default_threshold

    if group is None:
        raise SpecError("--task ranking needs --group: the column naming the query, user or session of each list",
                        "pass --group COL (and --item COL for recommendation baselines)")
    source = _source(data, case_dir)
    keyless = int(df[group].isna().sum())
    if keyless:
        # rows without a list: the run refuses them, so the draft's source query leaves them out, said
        # (openintro::yrbss_samp's text_while_driving_30d is empty on 8 rows)
        source = without_nulls(_source_path(data, case_dir), source, group, keyless, "list")
        df = df[df[group].notna()]
    check_groups(df, group, "--group")   # as the run checks it (nlme::Wheat2's 3 blocks were drafted, then refused)
    y = pd.to_numeric(df[target], errors="coerce")
    positive = None
    if y.isna().all():
        # two values as text are an interaction, as the run reads them with data.positive (mlmRev::Contraception's
        # use, 'Y' or 'N', was refused here though the run takes it)
        values = sorted(map(str, df[target].dropna().unique()))
        if len(values) != 2:
            raise DataError(f"--target '{target}' is not numeric; a ranking target is a relevance, a 0/1 "
                            "interaction or a rating", "encode it as numbers (clicked: 1, not: 0)")
        from .data import _guess_positive

        positive = _guess_positive(values)
    if df.groupby(group)[target].nunique().le(1).all():
        # nlme::Quinidine's Height ranked by Subject: one height per patient, so every order of every list is
        # worth the same; the run stopped at the value ceiling with "a random order ... costs $0.00"
        raise DataError(f"--target '{target}' never differs within a '{group}' list ({df[group].nunique():,} lists): "
                        "no order of a list's items is worth more than another, so there is nothing to rank",
                        "pick a target that differs among the items of a list, or another --group")
    schema = infer_schema(df, target, "ranking")
    kinds = {c: schema.columns[c].kind for c in df.columns}
    time_col = time or next((c for c, k in kinds.items() if k == "datetime" and c not in (target, group, item)), None)
    # a row label (R's rownames) was a feature the server then required in every item (wooldridge::ncaa_rpi)
    id_col = _id_column(kinds, target, group, item)
    # an entity's key that is constant within each list is who the list is for, not the group (Ecdat::Yogurt long:
    # `household`, 100 households over 2,412 purchases): read as a number, it was drafted as a feature
    list_ids = _list_keys(df, kinds, group, target, item, id_col, time_col)
    kinds.update(dict.fromkeys(list_ids, "id"))
    threshold = 1.0 if positive is not None else default_threshold(y.to_numpy())   # an interaction is 1
    personal, quasi = _personal_columns(df, target, id_col, time_col)
    sizes = df.groupby(group).size()
    # a list of 4 brands (Ecdat::Yogurt long) was drafted k: 10, an NDCG@10 of lists that never reach 10
    k = int(max(1, min(10, np.floor(sizes.median()))))
    baselines = [*(["popularity"] if item else []), "linear", *(["als"] if item else []),
                 *(["recency"] if item and time_col else [])]
    lines = [
        f"# Drafted by `mlcase init --task ranking` from {_comment(data.name)} ({len(df):,} rows, "
        f"{sizes.size:,} lists of {sizes.median():g} items at the median).",
        "# Every section below has a default; the comments say what the owner must decide.",
        *(f"# note: {_comment(line)}" for line in describe_read_notes(read_notes(df))),
        *_personal_note(personal),
        *_quasi_note(quasi),
        f"name: {_slug(name or _stem(data))}",
        "decision: TODO which list the ranking orders (a feed, search results, recommendations), in one sentence",
        "owner: TODO team",
        "problem:",
        "  current_process: TODO how lists are ordered today (most popular first?)",
        f"  volume: {sizes.size}/month          # TODO lists shown per period",
        "  target: TODO what success looks like",
        "task: ranking",
        "data:",
        source,
        f"  target: {_q(target)}                # the relevance, interaction or rating of an item for its group",
        *([f"  positive: {_q(positive)}              # the value that counts as an interaction (1); the other is 0"]
          if positive is not None else []),
        f"  group: {_q(group)}                  # one list per value: the query, user or session",
        f"  item: {_q(item) if item else 'null'}" + ("                   # enables popularity, recency and ALS baselines"
                                                     if item else "                # set the item column for recommendation baselines"),
        f"  time: {_q(time_col) if time_col else 'null'}" + ("   # each group's last interactions are held out" if time_col else ""),
        _id_line(id_col),
        _features_line(kinds, "order", target, id_col, group, item, time_col, personal=personal),
        "ranking:",
        f"  k: {k:<30}# TODO the list length people see"
        + (f" (lists of {sizes.median():g} items at the median)" if k < 10 else ""),
        f"  relevant_from: {threshold:g}              # TODO a target at or above this counts as relevant",
        "  gain: graded                    # graded (target - relevant_from + 1) or binary",
        f"split: {{method: {'group_time' if time_col else 'group'}, test_size: 0.2, valid_size: 0.2, seed: 42}}",
        "costs:",
        "  relevant_item: 1                # TODO money a relevant item brings at position 1 (a number or SQL over the row)",
        "  position_discount: log2         # DCG's 1/log2(p+1); or linear, none, or a list per position",
        "constraints:",
        "  latency_p95_ms: 100",
        "  min_lift: 0.0                  # money per list the model must add over the best baseline",
        "  operating_cost: auto",
        f"baselines: [{', '.join(baselines)}]   # + a rule: {{rule: \"some_count DESC\"}} (an ORDER BY)",
        "candidates: [lightgbm, xgboost]  # LambdaRank and rank:ndcg",
        "budget: 2m",
        "monitoring: {psi_alert: 0.25, window: 1d}",
    ]
    return "\n".join(lines) + "\n"


def write_draft(data: str | Path, target: str, name: str | None = None, out: str | Path | None = None,
                force: bool = False, task: str | None = None, time: str | None = None,
                series: str | None = None, group: str | None = None, item: str | None = None) -> Path:
    """Write the drafted spec to ``out`` (default ``case.yaml`` beside the data); never overwrite unless ``force``."""
    data = Path(data)
    if not data.is_file():  # the data is checked first: a wrong DATA path is not the -o folder's fault
        raise DataError(f"DATA {data}: {'is a folder' if data.is_dir() else 'no such file'}",
                        "pass the path of a CSV or Parquet file (relative to the current folder)", path=str(data))
    out = Path(out) if out else data.resolve().parent / "case.yaml"
    if out.is_dir():
        out = out / "case.yaml"
    if out.exists() and not force:
        raise SpecError(f"{out} already exists", "pass -o another/path.yaml, or --force to replace it")
    if not out.parent.is_dir():
        if out.parent.exists():   # `-o notes.txt/case.yaml`: the folder is a file (it was said not to exist)
            raise SpecError(f"-o {out}: {out.parent} is a file, not a folder",
                            "pass -o a path in a folder (or the folder itself)")
        raise SpecError(f"-o {out}: the folder {out.parent} does not exist",
                        "create it first, or pass -o a path in an existing folder")
    text = draft_spec(data, target, name, case_dir=out.resolve().parent, task=task, time=time, series=series,
                      group=group, item=item)
    from .spec import parse_spec

    parse_spec(text, source=out.name)  # the draft must load
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        # a folder that cannot be written (read-only, not yours, /proc) was an internal error, exit 70
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise SpecError(f"-o {out}: cannot write there ({e.strerror or e})",
                        "pass -o a path in a folder you can write to") from None
    return out


def draft_summary(text: str) -> str:
    """One line of what a drafted ``case.yaml`` guessed and the owner must confirm: the task, the positive class,
    the split and the columns it reads as identifiers, time, entity or excluded (``mlcase init`` printed only
    "wrote case.yaml: fill in the TODOs", so the guesses were read only by those who opened the file)."""
    import yaml

    spec = yaml.safe_load(text) or {}
    data = spec.get("data") or {}
    said = [f"task {spec.get('task')}"]
    if data.get("positive") is not None:
        line = next((x for x in text.splitlines() if x.startswith("  positive:")), "")
        share = re.search(r"(\d+(?:\.\d+)?% of (?:the labelled )?rows)", line)
        said.append(f"positive class '{data['positive']}'" + (f" ({share.group(1)})" if share else ""))
    split = spec.get("split") or {}
    if split.get("method"):
        on = {"time": data.get("time"), "group": data.get("group"), "group_time": data.get("group")}.get(split["method"])
        said.append(f"{split['method']} split" + (f" on '{on}'" if on else ""))
    for key, what in (("id", "id"), ("item", "item"), ("series", "series")):
        if data.get(key):
            said.append(f"{what} '{data[key]}'")
    if spec.get("task") == "forecast" and data.get("time"):
        fc = spec.get("forecast") or {}
        said.append(f"time '{data['time']}'" + (f" (freq {fc['freq']}, horizon {fc['horizon']})"
                                                 if fc.get("freq") and fc.get("horizon") else ""))
    excluded = ((data.get("features") or {}).get("exclude")) or []
    if excluded:
        said.append("not features: " + ", ".join(f"'{c}'" for c in excluded))
    return "guessed: " + "; ".join(said) + " (confirm them in the draft)"
