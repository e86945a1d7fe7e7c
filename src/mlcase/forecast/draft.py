"""``mlcase init DATA --target Y --task forecast --time COL [--series COL]``: draft a forecast case."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..sql import identifier


def draft_forecast_spec(data: Path, df: pd.DataFrame, target: str, time: str | None, series: str | None,
                        name: str, source: str, comment, quote, path: str) -> str:
    """The text of a commented forecast ``case.yaml`` (frequency, horizon and covariates guessed from the data)."""
    from ..data import times_of
    from ..spec import parse_spec  # noqa: F401 - the caller validates the draft
    from ..sql import literal
    from .conformal import conformal_level, widest_alpha
    from .data import (
        DS,
        ID,
        Y,
        check_filled,
        check_regular,
        check_unique,
        ended,
        evaluate_sql,
        fitted_windows,
        infer_freq,
        key_column_sql,
        longest_horizon,
        min_series_length,
        season_of,
        series_keys,
        started,
        too_short,
        verdict_horizon,
    )
    from .decision import MIN_TEST_BLOCKS

    if not time:
        raise DataError("--time: a forecast case needs the time column", "pass --time DATE_COLUMN")
    for flag, col in (("--time", time), ("--series", series)):
        if col and col not in df.columns:
            raise DataError(f"{flag} '{col}' is not a column of {data.name}",
                            f"pick one of: {', '.join(map(str, df.columns[:30]))}")
    if not pd.api.types.is_numeric_dtype(df[target]):
        raise DataError(f"--target '{target}' is not numeric", "a forecast case forecasts a number")
    where = ""
    if series and df[series].isna().any():
        # rows without a series key: the run refuses them, so the source query leaves them out (fpp3::aus_arrivals
        # with two Origin blanked was drafted with "series 'Japan' is not regular: 2 missing step(s)")
        from ..draft import without_nulls

        where = f" WHERE {identifier(series)} IS NOT NULL"   # kept by the queries below that derive a column
        source = without_nulls(path, source, series, int(df[series].isna().sum()), "series")
        df = df[df[series].notna()]
    given_time, part = time, None
    year = _year_beside(df, time, series, target)
    if year:
        # --time names the month or quarter of a year column beside it (Stat2Data::Inflation's Month 1 to 12,
        # wooldridge::ezanders' JAN to DEC beside `year`): the time is the date the two make
        part, time = time, year
    ds = times_of(df[time], f"--time '{time}'")  # as the run reads it
    frame = pd.DataFrame({ID: df[series].astype(str) if series else "series", "ds": ds}).dropna()
    keyed = None
    dated = _date_from_parts(df, frame, time, series, target, part)
    if part and not dated:   # a month or a quarter alone is no date: the column's own one-line error
        times_of(df[given_time], f"--time '{given_time}'")
    if dated:
        # whole years beside a month (and day) or quarter column: the time is the date they make
        # (Stat2Data::CO2Hawaii's Year and Month were drafted as 12 series of 30 yearly readings, one per month,
        # and refused as too short; Stat2Data::ResidualOil's Year and Qtr as 4 series of 34 years)
        expr, parts = dated
        time = next(n for n in ("date", "date_", "date__") if n not in df.columns)
        query = f"SELECT *, {expr} AS {time} FROM {literal(path)}{where}"
        source = "\n".join([f"  source: {quote(query)}", *source.splitlines()[1:]])
        df = df.assign(**{time: evaluate_sql(df, expr)})          # as the source query makes it
        frame["ds"] = times_of(df.loc[frame.index, time], f"--time '{time}'")
        keyed = (f"--time '{part}' holds the {'quarter' if _QUARTER_NAME.match(str(part)) else 'month'} of "
                 f"'{parts[0]}', so the source makes the date '{time}' of the two" if part else
                 f"rows repeat per {parts[0]}; {' + '.join(parts[1:])} "
                 f"name{'s' if len(parts) == 2 else ''} the rest of the time, so the source makes the date '{time}'")
    if frame.duplicated([ID, "ds"]).any():
        # a series column that is not the whole key (fpp2::prisonLF: state, where gender and legal status also
        # tell the quarterly counts apart): the draft reads one series per key, joined in the source query
        keys, given = series_keys(df, frame, time, series, target), series
        if not keys:
            check_unique(frame, df, time, series, target)   # the one-line error: aggregate them
        series = next(n for n in ("series_key", "series_key_", "series_key__") if n not in df.columns)
        query = f"SELECT *, {key_column_sql(keys)} AS {series} FROM {literal(path)}{where}"
        source = "\n".join([f"  source: {quote(query)}", *source.splitlines()[1:]])
        df = df.assign(**{series: df[keys].astype(str).agg("/".join, axis=1)})
        frame[ID] = df.loc[frame.index, series]
        # (openintro::pm25_2011_durham, no --series: "rows repeat per time and time; poc tell them apart")
        keyed = (f"rows repeat per {f'{given} and ' if given else ''}time; {' + '.join(keys)} "
                 f"tell{'s' if len(keys) == 1 else ''} them apart, so the source joins them into '{series}', one "
                 "series each; aggregate in the source instead for fewer, summed series")
    # the frequency and the gaps as the run reads them: each series from its first value on (Ecdat::USGDPpresidents
    # has a row per decade from 1610 and GDP per capita from 1790 on; the draft said "the run stops here: 147 missing
    # steps, the first at 1611", and the run read 230 regular years)
    ordered = frame.assign(**{Y: pd.to_numeric(df.loc[frame.index, target], errors="coerce")}).sort_values(
        [ID, DS], kind="stable")
    begun = ordered[(started(ordered) & ~ended(ordered)).to_numpy()]   # and to its last (fpp3::prices' chicken)
    read = begun if len(begun) else ordered
    gaps = None
    try:
        freq = infer_freq(read, time)
    except DataError as exc:   # what the run will say (openintro::goog: monthly prices on a varying day)
        freq, gaps = getattr(exc, "freq", "D"), str(exc)
    try:  # a gap the run refuses is said at the top of the draft (nycflights13::weather: 28 hours missing)
        if not gaps:
            check_regular(read, freq, time)
    except DataError as exc:
        gaps = str(exc)
    if not gaps:   # a value missing inside a series stops the run too (DAAG::measles: 62 years missing from 1637)
        try:
            check_filled(read, target)
        except DataError as exc:
            gaps = str(exc)
    season = season_of(freq)
    horizon = {7: 14, 12: 12, 4: 4, 52: 8, 24: 48, 5: 10}.get(season, max(2, season))
    # the run needs each series to hold its training history, two backtest windows and a test window:
    # fpp3::insurance (40 months) was drafted at horizon 12, and the run refused the draft
    # counted as the run counts them, from each series' first value (gt::countrypops: West Bank and Gaza's 61
    # years hold 31 values, and the draft's horizon 2 was refused by the run)
    sizes = begun.groupby(ID).size().reindex(ordered[ID].unique(), fill_value=0)
    if not sizes.any():
        raise DataError(f"--target '{target}' has no value in {data.name}", "pick the column that holds the numbers "
                        "to forecast")
    shortest = int(sizes.min())
    fits = longest_horizon(shortest, season)
    if fits < 1:
        # which series, and how many like it (tidyr::who2: 219 countries, some with 3 years of counts)
        enough = min_series_length(season)
        short = sizes[sizes < enough]
        which = (f" (series '{sizes.idxmin()}'; {len(short):,} of {len(sizes):,} series {'has' if len(short) == 1 else 'have'}"
                 f" fewer than {enough})") if len(sizes) > 1 else ""
        drop = None
        if series and not keyed and len(short) < len(sizes) and len(short) <= 10:
            # the query that drops them, ready to paste (gt::countrypops: West Bank and Gaza, 31 of 63 years)
            from ..checks.target import drop_classes_query

            drop = drop_classes_query(sorted(map(str, short.index)), series, path)
        raise DataError(f"the shortest series has {shortest} steps{which}, too few for a forecast case",
                        too_short(shortest, season, drop))
    shortened = fits < horizon
    horizon = min(horizon, fits)
    n_series = frame[ID].nunique()
    # at the longest horizon that fits, datasets::USAccDeaths (60 months) held one test window, and a verdict
    # needs MIN_TEST_BLOCKS: the drafted case could only ever keep seasonal naive
    verdict = verdict_horizon(shortest, season, n_series)
    held = (f" (the longest at which the shortest series, {shortest} steps, holds the {MIN_TEST_BLOCKS} test "
            "windows a verdict needs)") if 1 <= verdict < horizon else ""
    horizon = min(horizon, verdict) if verdict >= 1 else horizon
    no_verdict = None if verdict >= 1 else (
        f"the shortest series ({shortest} steps) holds fewer than the {MIN_TEST_BLOCKS} test windows (series x "
        "cut-offs) a verdict needs at any horizon, so the run can only keep seasonal naive (NO_GO) or say "
        "INCONCLUSIVE; add history or forecast more series")
    # the windows the run will fit, and the intervals they calibrate: datasets::JohnsonJohnson's 5 backtest windows
    # (one series) hold no 90% interval, so the draft asks for the level they do hold
    backtests, _tests = fitted_windows(shortest, season, horizon, horizon, 20, 8)
    per_step = backtests * n_series
    alpha = 0.1 if conformal_level(per_step, 0.1) <= per_step else (widest_alpha(per_step) or 0.1)
    interval_note = ("" if conformal_level(per_step, 0.1) <= per_step else
                     f": the {backtests} backtest window(s) the shortest series holds calibrate "
                     + ("no 90% interval" if alpha != 0.1 else "none (see the check no_intervals)"))
    others = [c for c in df.columns if c not in (target, time, series, "rownames")
              and pd.api.types.is_numeric_dtype(df[c])]
    lines = [
        f"# Drafted by `mlcase init` from {comment(data.name)} ({len(df):,} rows, {n_series} series, frequency {freq}).",
        "# Every section has a default; the comments say what the owner must decide.",
        *([f"# note: {comment(keyed)}"] if keyed else []),
        *([f"# note: the run stops here until the data is fixed or forecast.fill is set: {comment(gaps)}"]
          if gaps else []),
        *([f"# note: {comment(no_verdict)}"] if no_verdict else []),
        f"name: {name}",
        "decision: TODO say what the forecast drives (how much to stock, how many staff to roster), in one sentence",
        "owner: TODO team",
        "problem:",
        "  current_process: TODO how the forecast is made today (e.g. the same day last year plus a margin)",
        "  target: TODO what success looks like",
        "task: forecast",
        "data:",
        source,
        f"  target: {quote(target)}",
        f"  time: {quote(time)}",
        f"  series: {quote(series) if series else 'null'}" + ("               # one series" if not series else ""),
        "forecast:",
        f"  horizon: {horizon}                    # TODO steps ahead each forecast covers"
        + (held or (f" (the longest the shortest series, {shortest} steps, holds)" if shortened else "")),
        f"  freq: {freq}                       # inferred from the data",
        f"  season_length: {season}",
        "  known: []                      # TODO covariates known in advance (calendar, holidays, schedules, prices)",
        "  past_only: []                  # TODO covariates only known once they happen (weather): used lagged",
        *(f"  # candidate covariate: {comment(c)}" for c in others[:20]),
        ("  fill: null                     # TODO the gap the note names stops the run: previous (a level: a price, "
         "a rate), zero (counts, sales) or interpolate fills it" if gaps else
         "  fill: null                     # a missing step stops the run; previous, zero or interpolate fills it"),
        "  backtest_windows: 20           # rolling cut-offs for tuning, model choice and intervals",
        "  test_windows: 8                # the last cut-offs, forecast once at the end",
        "costs:                           # TODO money per unit of error",
        "  under: 1                       # per unit the actual exceeds the forecast (a shortage)",
        "  over: 1                        # per unit the forecast exceeds the actual (waste)",
        "baselines: [naive, seasonal_naive, moving_average, auto_ets]",
        "  # - rule: \"1.05 * lag_364\"    # TODO today's rule over lag_<k> columns (k steps back)",
        "candidates: [lightgbm, ridge]",
        "budget: 2m",
        f"conformal: {{alpha: {alpha:g}}}          # {1 - alpha:.0%} intervals per horizon step{interval_note}",
    ]
    return "\n".join(lines) + "\n"


_MONTH_NAME = re.compile(r"^(month|mon|mo|mnth)$", re.I)
_QUARTER_NAME = re.compile(r"^(quarter|qtr|qrt|q)$", re.I)
_DAY_NAME = re.compile(r"^(day|mday|dom|day_?of_?month)$", re.I)
_YEAR_NAME = re.compile(r"^(year|yr|yyyy)$", re.I)
_MONTHS = "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC"


def _whole(s: pd.Series, low: int, high: int) -> bool:
    v = pd.to_numeric(s, errors="coerce")
    return bool(v.notna().all() and (v % 1 == 0).all() and v.between(low, high).all())


def _month_names(s: pd.Series) -> bool:
    """Every value a month's name or its abbreviation, in any case ("JAN", "Sept", "december")."""
    t = s.astype(str).str.strip().str.upper()
    abbreviations = {_MONTHS[i:i + 3] for i in range(0, 36, 3)}
    return bool(s.notna().all() and t.str.fullmatch(r"[A-Z]{3,9}").all()
                and all(m[:3] in abbreviations for m in t.unique()))


def _quarter_labels(s: pd.Series) -> bool:
    return bool(s.notna().all() and s.astype(str).str.strip().str.fullmatch(r"[Qq][1-4]").all())


def _month_sql(df: pd.DataFrame, c: str) -> str | None:
    """The DuckDB expression of the month (1 to 12) that column ``c`` holds, or None where it holds none."""
    if _MONTH_NAME.match(str(c)):
        if _whole(df[c], 1, 12):
            return f"CAST({identifier(c)} AS INTEGER)"
        if _month_names(df[c]):
            return (f"CAST((strpos('{_MONTHS}', upper(substr(trim(CAST({identifier(c)} AS VARCHAR)), 1, 3))) + 2) "
                    "// 3 AS INTEGER)")
    if _QUARTER_NAME.match(str(c)):   # a quarter's first month
        if _whole(df[c], 1, 4):
            return f"(CAST({identifier(c)} AS INTEGER) - 1) * 3 + 1"
        if _quarter_labels(df[c]):
            return f"(CAST(right(trim(CAST({identifier(c)} AS VARCHAR)), 1) AS INTEGER) - 1) * 3 + 1"
    return None


def _year_beside(df: pd.DataFrame, time: str, series: str | None, target: str) -> str | None:
    """The year column beside ``time`` where ``time`` holds a month or a quarter (its name says which, its values
    are 1 to 12, month names, 1 to 4 or Q1 to Q4) and one other column is named and valued as whole years."""
    from ..data import YEAR_SPAN

    if _month_sql(df, time) is None:
        return None
    years = [c for c in df.columns if c not in (time, target, series) and _YEAR_NAME.match(str(c))
             and _whole(df[c], *YEAR_SPAN)]
    return years[0] if len(years) == 1 else None


def _date_from_parts(df: pd.DataFrame, frame: pd.DataFrame, time: str, series: str | None,
                     target: str, part: str | None = None) -> tuple[str, list[str]] | None:
    """``(DuckDB expression, [year, month or quarter(, day)])`` where ``time`` holds whole years that repeat within
    a series and a month column (1 to 12 or month names, with a day column 1 to 31 if any) or a quarter column
    (1 to 4 or Q1 to Q4) tells the rows apart (``part``: the one --time named); else None."""
    from .data import ID

    ds = frame["ds"]
    if not frame.duplicated([ID, "ds"]).any() or not ((ds.dt.month == 1) & (ds.dt.day == 1)).all():
        return None
    rest = [c for c in df.columns if c not in (time, target, series)]
    month = part if part is not None else next((c for c in rest if _month_sql(df, c)), None)
    if month is None:
        return None
    def repeats(parts: list[str]) -> bool:
        return bool(frame.assign(**{f"_{i}": df.loc[frame.index, c].to_numpy() for i, c in enumerate(parts[1:])})
                    .duplicated([ID, "ds", *(f"_{i}" for i in range(len(parts) - 1))]).any())

    # a day column only where the year and month do not already make each row's time (mosaicData::Utilities:
    # monthly bills with the day each meter was read, drafted as a 29-day series with 118 missing steps)
    day = next((c for c in rest if c != month and _DAY_NAME.match(str(c)) and _whole(df[c], 1, 31)), None) \
        if _MONTH_NAME.match(str(month)) and repeats([time, month]) else None
    parts = [time, month] + ([day] if day else [])
    if repeats(parts):
        return None                                     # the parts do not make each row's time
    cols = [f"CAST({identifier(time)} AS INTEGER)", _month_sql(df, month)] + \
        ([f"CAST({identifier(day)} AS INTEGER)"] if day else ["1"])
    return f"make_date({', '.join(cols)})", parts
