"""The series of a forecast case: read, checked, put on a regular grid, and cut into rolling origins.

The long layout is Nixtla's (``unique_id``, ``ds``, ``y`` and the covariates), which
statsforecast, mlforecast and utilsforecast all take. The history of each series is cut
into three periods, in time order::

    | training ............ | backtest: B cut-offs, `step` apart | test: T cut-offs |

Every cut-off forecasts ``horizon`` steps. The backtest windows tune the candidates, pick
the model and calibrate the conformal intervals; the test period, the last part of each
series, is forecast once at the end, by models trained on what came before its first
cut-off (:func:`test_cutoff`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..case import Case
from ..errors import DataError, SpecError
from ..sql import identifier
from ..times import TIME_DTYPE

ID, DS, Y = "unique_id", "ds", "y"
ONE_SERIES = "series"  # the unique_id of a case without data.series

#: steps in a season by the frequency's base (pandas offset name without its anchor)
_SEASONS = {"D": 7, "B": 5, "C": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "SM": 24, "SMS": 24, "BM": 12,
            "BMS": 12, "BME": 12, "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4, "Y": 1, "YS": 1,
            "YE": 1, "A": 1, "AS": 1, "h": 24, "H": 24, "bh": 8, "BH": 8, "min": 60, "T": 60, "s": 60, "S": 60}
#: steps in a year by the frequency's base (for the default lags and AutoETS's input size)
_YEAR = {"D": 364, "B": 260, "C": 260, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4,
         "h": 24 * 7 * 4, "H": 24 * 7 * 4}


@dataclass
class SeriesData:
    """The prepared series of a case (see the module docstring).

    Attributes
    ----------
    frame : DataFrame
        ``unique_id`` (str), ``ds`` (datetime), ``y`` (float) and the covariates, sorted by
        series and time, one row per step with no gap.
    freq : str
        pandas frequency alias (given or inferred).
    season_length, horizon, step : int
    known, past_only : list of str
        Covariates known in advance, and observed only up to the cut-off.
    backtest_windows, test_windows : int
        Cut-offs in the backtest and test periods (fewer than asked when the series are short).
    """

    frame: pd.DataFrame
    freq: str
    season_length: int
    horizon: int
    step: int
    known: list[str]
    past_only: list[str]
    backtest_windows: int
    test_windows: int
    target: str
    time: str
    series_col: str | None
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # every column of the data as read
    fill: str | None = None                           # forecast.fill: how gaps were filled (and are when served)

    @property
    def n_series(self) -> int:
        return int(self.frame[ID].nunique())

    @property
    def test_span(self) -> int:
        """Steps at the end of each series that belong to the test period."""
        return (self.test_windows - 1) * self.step + self.horizon

    @property
    def backtest_span(self) -> int:
        return (self.backtest_windows - 1) * self.step + self.horizon

    def before_test(self) -> pd.DataFrame:
        """Each series without its test period: what the backtests and the tuning may read."""
        return drop_last(self.frame, self.test_span)

    def train_part(self) -> pd.DataFrame:
        """Each series before its first backtest cut-off (the MASE scale of the backtests comes from it)."""
        return drop_last(self.frame, self.test_span + self.backtest_span)

    def cutoffs(self, period: str) -> pd.DataFrame:
        """``unique_id, cutoff`` of every window of ``period`` (``backtest`` or ``test``)."""
        span, windows = ((self.test_span, self.test_windows) if period == "test"
                         else (self.test_span + self.backtest_span, self.backtest_windows))
        offset = pd.tseries.frequencies.to_offset(self.freq)
        last = self.frame.groupby(ID, observed=True)[DS].max()
        rows = []
        for uid, end in last.items():
            first = end - (span - 0) * offset
            for k in range(windows):
                rows.append({ID: uid, "cutoff": first + k * self.step * offset})
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        lengths = self.frame.groupby(ID, observed=True).size()
        return {"rows": int(len(self.frame)), "task": "forecast", "series": self.n_series,
                "series_column": self.series_col, "target": self.target, "time": self.time,
                "freq": self.freq, "season_length": self.season_length, "horizon": self.horizon,
                "step": self.step, "known": list(self.known), "past_only": list(self.past_only),
                "backtest_windows": self.backtest_windows, "test_windows": self.test_windows,
                "start": str(self.frame[DS].min()), "end": str(self.frame[DS].max()),
                "shortest_series": int(lengths.min()), "longest_series": int(lengths.max()),
                "fingerprint": self.fingerprint, "notes": list(self.notes),
                "features": list(self.known) + list(self.past_only)}


def drop_last(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each series without its last ``n`` rows (``frame`` sorted by series and time)."""
    if n <= 0:
        return frame
    pos = frame.groupby(ID, observed=True).cumcount(ascending=False)
    return frame[pos.to_numpy() >= n].reset_index(drop=True)


def season_of(freq: str) -> int:
    """Steps in a season of ``freq`` (7 for daily data, 12 for monthly ...; 1 when unknown).

    A multiple of a unit divides its season where it can (``2h``: a day of 12 steps), else takes the
    year where that is at most 53 steps (``28D``, four-week periods: 13 a year), else has none. A
    four-weekly series was drafted with the daily season of 7 steps, 196 days.
    """
    base, n = _base(freq), _multiple(freq)
    season = _SEASONS.get(base, 1)
    if n == 1 or season == 1:
        return season
    if season % n == 0 and season // n > 1:
        return season // n
    year = year_of(freq)   # 7D: a week a step, 52 a year
    return year if year is not None and year <= 53 else 1


def year_of(freq: str) -> int | None:
    """Steps in a year of ``freq`` (364 for daily: whole weeks, so a lag keeps the weekday; 13 for ``28D``),
    or None where a whole number of steps does not make one."""
    year, n = _YEAR.get(_base(freq)), _multiple(freq)
    return None if year is None or year % n else year // n


def _multiple(freq: str) -> int:
    """How many units one step of ``freq`` spans (28 for ``28D``, 1 for ``D`` and ``MS``)."""
    return max(int(pd.tseries.frequencies.to_offset(freq).n), 1)


def _base(freq: str) -> str:
    name = pd.tseries.frequencies.to_offset(freq).name
    base = name.split("-")[0]
    return base.lstrip("0123456789") or base


def infer_freq(frame: pd.DataFrame, time: str) -> str:
    """The frequency of the series (pandas' ``infer_freq`` on the longest series, else the usual gap)."""
    longest = frame.groupby(ID, observed=True)[DS].count().idxmax()
    ds = pd.DatetimeIndex(frame.loc[frame[ID] == longest, DS].sort_values().unique())
    if len(ds) < 3:
        raise DataError(f"data.time '{time}': the longest series has {len(ds)} time steps, too few to forecast",
                        "a forecast case needs series with many time steps")
    freq = pd.infer_freq(ds)
    if freq is None:   # the usual gap, as a Timedelta whatever the times' unit (pandas reads text as microseconds)
        _months_on_varying_days(ds, time)
        gap = pd.Timedelta(pd.Series(ds[1:] - ds[:-1]).mode().iloc[0])
        freq = _calendar_freq(ds, gap)
    return freq


#: calendar steps a series of one time per month can take, by the usual number of months between times
_MONTH_STEPS = {1: ("a month", "month", "MS"), 3: ("a quarter", "quarter", "QS"), 12: ("a year", "year", "YS")}


def _months_on_varying_days(ds: pd.DatetimeIndex, time: str) -> None:
    """One time a month (a quarter, a year) on a day that varies near its start or end is that period's data:
    a one-line error says to write the period's first day. openintro::goog's monthly prices are dated on each
    month's first trading day (2014-01-02, 2013-12-02, 2013-11-01 ...): the usual gap was 31 days, and the run
    said "not regular at frequency 31D: 94 missing step(s)"."""
    months = ds.year * 12 + ds.month
    steps = np.diff(months)
    if len(steps) < 2 or (steps <= 0).any():
        return                                    # two times in one month: not monthly data
    usual = int(pd.Series(steps).mode().iloc[0])
    if usual not in _MONTH_STEPS or (ds.day == 1).all() or ds.is_month_end.all():
        return                                    # no period; or on its first or last day (_months_freq reads it)
    # anywhere in the month: stevedata::thatcher_approval's monthly polls, on the 1st and then on days 10 to 28,
    # were read at "28D" (the usual gap) with "138 missing steps" to fill; 4-weekly or 30-day data puts two times
    # in some month and is not read as monthly above
    start, end = bool((ds.day <= 7).all()), bool((ds.day >= ds.days_in_month - 6).all())
    why = "a first or last trading day?" if start or end else "a poll's or a reading's day?"
    what, unit, freq = _MONTH_STEPS[usual]
    days = f"days {ds.day.min()} to {ds.day.max()}"
    col = identifier(time)
    err = DataError(f"data.time '{time}': one time {what}, on {days} of the month: {unit}ly data dated on a "
                    f"varying day ({why}), so no calendar frequency fits it",
                    f"date each row by its {unit}'s first day, e.g. SELECT * REPLACE (date_trunc('{unit}', {col}) "
                    f"AS {col}) FROM ... in data.source (pandas: .dt.to_period('{freq[0]}').dt.start_time); the "
                    f"run then reads it at frequency {freq}")
    err.freq = freq       # the draft writes the frequency the fixed data will have
    raise err


def _calendar_freq(ds: pd.DatetimeIndex, gap: pd.Timedelta) -> str:
    """The frequency of times whose usual gap is ``gap`` (pandas found none: a step is missing somewhere).

    Whole days are days, not hours: pandas names a one-day Timedelta ``24h``, and a daily series with
    one gap was drafted as hourly, with a season of 24 (stevedata::ukg_eeri, a daily exchange-rate index).
    Days that are all weekdays are business days (holidays are then missing steps the run names), and
    a gap of seven days is a week anchored on the first time's weekday.
    """
    day = pd.Timedelta(days=1)
    calendar = _months_freq(ds, gap)
    if calendar:
        return calendar
    if gap == day:
        # business days where at most 1 in 100 times falls on a weekend: stevedata::aluminum_premiums' 916 trading
        # days hold 5 weekend dates, and were read as daily with "390 missing step(s)" (the weekends); as business
        # days the run names the 5 dates off the grid instead
        return "B" if float((ds.day_of_week >= 5).mean()) <= 0.01 else "D"
    if gap == 7 * day:
        return f"W-{ds[0].day_name()[:3].upper()}"
    if gap > day and gap % day == pd.Timedelta(0):
        return f"{gap // day}D"
    return pd.tseries.frequencies.to_offset(gap).freqstr


def _months_freq(ds: pd.DatetimeIndex, gap: pd.Timedelta) -> str | None:
    """Months, quarters or years, where every time is the first (or the last) day of its month: their gaps
    vary (28 to 31, 89 to 92, 365 or 366 days), and a quarterly series with missing quarters was drafted
    at "92D", its grid drifting off the quarters (datasets::presidents' approval ratings)."""
    midnight = bool((ds == ds.normalize()).all())
    start, end = bool((ds.day == 1).all()), bool(ds.is_month_end.all())
    if not midnight or not (start or end):
        return None
    days = gap / pd.Timedelta(days=1)
    months = ds.year * 12 + ds.month
    first = ds[0].month
    if 28 <= days <= 31:
        return "MS" if start else "ME"
    if 89 <= days <= 92 and bool(((months - months[0]) % 3 == 0).all()):
        anchor = pd.Timestamp(2000, (first - 1) % 3 + 1, 1).strftime("%b").upper()
        return f"{'QS' if start else 'QE'}-{anchor}"
    years = round(days / 365.2425)
    if years >= 1 and abs(days - years * 365.2425) <= 1.5 and bool((ds.month == first).all()):
        # a year, or several: HistData::Wheat's prices every five years from 1565 were drafted at "1826D" (five
        # years and a leap day), a grid that drifted off the years until the run named 48 missing steps
        month = pd.Timestamp(2000, first, 1).strftime("%b").upper()
        return f"{years if years > 1 else ''}{'YS' if start else 'YE'}-{month}"
    return None


#: how to fill a missing step: "0 for no demand" was the advice for nycflights13::weather's hourly temperatures
FILL_HINT = ("0 where nothing happened, as for sales or counts; for a level such as a temperature, a price or a "
             "rate, the step before's value or an interpolation; forecast.fill: zero, previous or interpolate does "
             "it in the run")


def fill_gaps(out: pd.DataFrame, freq: str, how: str, known: list[str]) -> tuple[pd.DataFrame, int, int]:
    """``out`` (series id, time, ``y`` and covariates, sorted by series and time from each series' first value) with
    each series on the regular grid of ``freq`` and its missing target values filled ``how`` (``forecast.fill``:
    previous, zero or interpolate); the known covariates of a missing step keep the step before's, past-only ones
    stay missing (the models read them so). A series with a time off the grid is left as it is, for
    :func:`check_regular` to name. Returns ``(frame, steps added, target values filled)``.

    The serving history of a case with ``forecast.fill`` is filled by the same function, so a request with a
    market holiday missing gets what training got (Stat2Data::AppleStock's Labor Day, causaldata::google_stock's
    Memorial Day: each stopped the run as "1 missing step(s)").
    """
    offset = pd.tseries.frequencies.to_offset(freq)
    parts, added = [], 0
    for uid, part in out.groupby(ID, observed=True, sort=False):
        have = pd.DatetimeIndex(part[DS])
        grid = pd.date_range(have[0], have[-1], freq=offset)
        if len(grid) != len(have) and have.isin(grid).all():
            part = part.set_index(DS).reindex(grid).rename_axis(DS).reset_index()
            part[ID] = uid
            new = ~grid.isin(have)
            added += int(new.sum())
            if known:   # only the added steps: a known covariate missing in the data is still refused
                part.loc[new, known] = part[known].ffill()[new]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)[list(out.columns)] if parts else out
    missing = frame[Y].isna()
    if missing.any():
        by = frame.groupby(ID, observed=True, sort=False)[Y]
        if how == "zero":
            frame[Y] = frame[Y].fillna(0.0)
        elif how == "interpolate":
            frame[Y] = by.transform(lambda s: s.interpolate(limit_area="inside")).fillna(by.ffill())
        else:
            frame[Y] = by.ffill()
    return frame, added, int(missing.sum())


def series_keys(df: pd.DataFrame, frame: pd.DataFrame, time: str, series: str | None, target: str) -> list[str]:
    """The columns that, with ``series``, give each series one row per time, or ``[]`` where none do.

    ``frame`` holds the series id and time of ``df``'s rows (its index). Columns are added greedily,
    the one that leaves the fewest repeated times first, among the columns with few values (keys, not
    measurements): fpp2::prisonLF's prisoner counts repeat per state and quarter, and are told apart by
    gender and legal status.
    """
    keys = frame[[ID, DS]].copy()
    left = int(keys.duplicated().sum())
    chosen: list[str] = []
    pool = [c for c in df.columns if c not in (time, target, series, "rownames")
            and not pd.api.types.is_float_dtype(df[c]) and df[c].notna().all()
            and df[c].nunique() <= max(50, len(df) // 20) and not _part_of_time(df.loc[frame.index, c], frame[DS])]
    while left and pool:
        counts = {c: int(keys.assign(_k=df.loc[frame.index, c].to_numpy()).duplicated().sum()) for c in pool}
        best = min(pool, key=counts.get)
        if counts[best] >= left:
            break
        keys[f"_k{len(chosen)}"] = df.loc[frame.index, best].to_numpy()
        chosen.append(best)
        pool.remove(best)
        left = counts[best]
    if not chosen or left:
        return []
    if len(keys.drop(columns=DS).drop_duplicates()) > len(keys) / 2:
        # keys that leave most series a single step name rows, not series (wooldridge::traffic2: its monthly
        # accident counts repeat per year, and 7 dummy columns made 82 "series" of 108 rows, refused as 1 step long)
        return []
    return ([series] if series else []) + chosen


#: names of calendar parts: a column so named that disagrees with the time on repeated rows is a rolled-over date
_CALENDAR = re.compile(r"^(year|yr|month|mon|mo|mnth|day|mday|wday|dow|yday|doy|week|wk|quarter|qtr|hour|date)s?$",
                       re.I)

#: a column that takes its time's usual value on at least this share of rows is a part of the time, not a key
TIME_PART_SHARE = 0.95


def _part_of_time(values: pd.Series, ds: pd.Series) -> bool:
    """Whether ``values`` is (nearly) a function of the time ``ds``: a calendar part (``year``, ``month``, ``day``,
    ``wday``) beside the date. A key names several series at one time; a calendar part names the time again, and
    where it disagrees with it, the row is a data error. mosaicData::Birthdays writes 29 February of 1969 and
    other non-leap years, which its `date` rolls to 1 March: the 309 repeated (state, date) rows were told apart
    by `month`, and the draft keyed each state's series by month, twelve series with 11-month gaps."""
    counts = pd.DataFrame({"t": ds.to_numpy(), "v": values.to_numpy()}).groupby(["t", "v"], sort=False).size()
    usual = counts.groupby(level=0, sort=False).max()     # rows with their time's most common value, per time
    return bool(usual.sum() >= TIME_PART_SHARE * len(values))


def started(out: pd.DataFrame) -> pd.Series:
    """Which rows of ``out`` (sorted by series and time) are part of their series: from its first value on. A
    series that starts later than the others has missing values before its start (a wide table melted to long,
    as fpp3::us_employment, or gt::countrypops' West Bank and Gaza from 1990 of 1960 to 2022)."""
    return out[Y].notna().groupby(out[ID], observed=True, sort=False).cummax()


def ended(out: pd.DataFrame) -> pd.Series:
    """Which rows of ``out`` (sorted by series and time) come after their series' last value: a series that ends
    before the others (fpp3::prices melted to long: chicken and eggs end in 1993, nails and wheat in 1996, copper
    and oil in 1997) has no value there, as one that starts later has none before its start. They are not part of
    it: ``forecast.fill`` filled chicken's 1994 to 1997 with its 1993 price and the test period scored the naive
    forecast exact on those made-up actuals, and without a fill the run stopped on "10 missing values"."""
    seen = out[Y].notna().to_numpy()[::-1]
    after = pd.Series(seen, index=out.index[::-1]).groupby(out[ID].to_numpy()[::-1], sort=False).cummax()
    return ~after.reindex(out.index)


def series_named(frame: pd.DataFrame, uid) -> str:
    """How an error names series ``uid`` of ``frame``: by its id, or "the series" in a case of one series, whose
    id is the placeholder ``ONE_SERIES`` (stevedata::Arca's one price series was "series 'series'")."""
    one = str(uid) == ONE_SERIES and frame[ID].nunique() == 1
    return "the series" if one else f"series '{uid}'"


def check_filled(out: pd.DataFrame, target: str) -> None:
    """The one-line error for a target missing inside a series (``out``'s ``y``, sorted by series and
    time; rows before a series' first value do not count); the draft notes the same (DAAG::measles:
    62 years missing from 1637)."""
    missing_y = out[Y].isna() & started(out)
    if missing_y.any():
        first = out[missing_y].iloc[0]
        raise DataError(f"data.target '{target}': {int(missing_y.sum())} missing value(s) (first in "
                        f"{series_named(out, first[ID])} at {first[DS].date()})",
                        f"fill them ({FILL_HINT}) or drop that series")


#: the source query ``mlcase init`` drafts to derive one column (a series key, a date from its parts)
_DRAFTED = re.compile(r"SELECT \*, (?P<expr>.+) AS (?P<name>\w+) FROM '(?:[^']|'')*'", re.S)


def derive_columns(case, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the column the case's drafted source query derives, where the file lacks it.

    ``init`` drafts ``SELECT *, <expr> AS series_key FROM 'data.csv'`` (the columns that tell the series apart,
    fpp2::prisonLF) or ``... make_date(Year, Month, 1) AS date ...`` (Stat2Data::CO2Hawaii), so a file laid out
    like the raw data lacked the column the case reads, and `mlcase score` refused it. The same expression runs
    on the file's rows, in a DuckDB connection that reaches no file."""
    import duckdb

    m = drafted_column(case)
    if not m or m["name"] in frame.columns:
        return frame
    try:
        values = evaluate_sql(frame, m["expr"])
    except duckdb.Error as exc:  # a column the expression reads is missing, or of another type
        raise DataError(f"INPUT: the column '{m['name']}' of the case's data is missing, and its source's "
                        f"{m['expr']} does not run on the file ({str(exc).splitlines()[0][:160]})",
                        "score a file laid out like the case's data (series, time, target, covariates)") from None
    return frame.assign(**{m["name"]: values})


def drafted_column(case) -> dict | None:
    """``{"name", "expr"}`` of the column the case's drafted source query derives (see :func:`derive_columns`)."""
    m = _DRAFTED.fullmatch(str(case.spec.data.source).strip())
    return {"name": m["name"], "expr": m["expr"]} if m else None


def evaluate_sql(frame: pd.DataFrame, expr: str):
    """DuckDB's values of the SQL expression ``expr`` on each row of ``frame``, in a connection that reaches no file:
    the draft and :func:`derive_columns` compute a drafted column as the source query does."""
    from ..sql import connect

    con = connect()
    try:
        con.register("input_rows", frame)
        return con.execute(f"SELECT {expr} AS v FROM input_rows").df()["v"].to_numpy()
    finally:
        con.close()


def check_unique(frame: pd.DataFrame, df: pd.DataFrame, time: str, series: str | None, target: str) -> None:
    """One row per series and time; else a one-line error naming the columns that tell the rows apart."""
    dup = frame.duplicated([ID, DS])
    if not dup.any():
        return
    first = frame[dup].iloc[0]
    keys = series_keys(df, frame, time, series, target)
    fix = "keep one row per series and time (aggregate the others)"
    clash = [c for c in df.columns if c not in (time, target, series, "rownames") and df[c].notna().all()
             and _CALENDAR.match(str(c)) and _part_of_time(df.loc[frame.index, c], frame[DS])
             and frame.assign(_k=df.loc[frame.index, c].to_numpy()).duplicated([ID, DS, "_k"]).sum() < dup.sum()]
    if clash and not keys:
        # calendar parts that name another time than the time column on the repeated rows: dates that do not
        # exist, rolled over (mosaicData::Birthdays' 29 February 1969 is its `date` 1969-03-01)
        at = frame.index[(frame[DS] == first[DS]).to_numpy()]
        usual = df.loc[at, clash].mode().iloc[0]              # the calendar parts most rows at that time give
        pair = frame.index[((frame[ID] == first[ID]) & (frame[DS] == first[DS])).to_numpy()]
        row = next((df.loc[i] for i in pair if (df.loc[i, clash] != usual).any()), df.loc[pair[0]])
        seen = ", ".join(f"{c} {row[c]}" for c in clash)
        fix = (f"on the repeated rows {', '.join(map(repr, clash))} disagree with '{time}' (e.g. {seen} at "
               f"{first[DS].date()}): a date that does not exist, rolled over; correct or drop those rows in "
               "data.source, or aggregate them per series and time")
    per = frame.groupby([ID, DS], observed=True, sort=False).size()
    if not keys and not clash and per.min() > 1 and per.nunique() == 1:
        # every time holds the same number of rows: finer steps dated by a coarser time (wooldridge::traffic2's
        # 12 monthly accident counts a year, dated by `year` alone, with month dummies beside them)
        finer = {12: "months", 4: "quarters", 52: "weeks", 7: "days", 24: "hours"}.get(int(per.iloc[0]), "steps")
        fix = (f"every time holds {int(per.iloc[0])} rows, as if it held {int(per.iloc[0])} {finer} dated by "
               f"'{time}' alone: write each row's full date in data.source (e.g. make_date(year, month, 1) from a "
               "month column), or aggregate the rows per time")
    if keys:
        fix = (f"the rows are told apart by {' + '.join(keys)}: make those one series column, e.g. "
               f"{key_column_sql(keys)} AS series_key in data.source with data.series: series_key "
               "(`mlcase init --task forecast --series` does this in its draft), or aggregate them per time")
    when = first[DS].date() if first[DS] == first[DS].normalize() else first[DS]   # a day is written as a date
    raise DataError(f"data.time '{time}': {int(dup.sum())} repeated time(s) within a series (e.g. "
                    f"{series_named(frame, first[ID])} at {when})", fix)


def key_column_sql(keys: list[str]) -> str:
    """DuckDB's expression joining the key columns into one series id.

    >>> print(key_column_sql(["state", "legal"]))
    concat_ws('/', "state", "legal")
    """
    return "concat_ws('/', " + ", ".join(identifier(k) for k in keys) + ")"


def check_regular(frame: pd.DataFrame, freq: str, time: str) -> None:
    """Every series must have one row per step of ``freq`` from its first to its last time."""
    offset = pd.tseries.frequencies.to_offset(freq)
    for uid, part in frame.groupby(ID, observed=True, sort=False):
        ds = pd.DatetimeIndex(part[DS])
        grid = pd.date_range(ds[0], ds[-1], freq=offset)
        if len(grid) != len(ds) or not grid.equals(ds):
            _months_on_varying_days(ds, time)   # a month's data on its first trading day: say so, not "missing"
            missing = grid.difference(ds)
            off_grid = ds.difference(grid)
            holiday = "; on a business day's holiday, a price or a rate keeps the day before's" if _base(freq) == "B" else ""
            if len(off_grid):
                # a time off the grid first: filling cannot help while it is there (HistData::Wheat's prices every
                # five years to 1820, then 1821; stevedata::aluminum_premiums' 5 weekend dates among trading days
                # were said as "23 missing step(s)", and forecast.fill then filled nothing)
                first = off_grid[0].date() if off_grid[0] == off_grid[0].normalize() else off_grid[0]
                gaps = f", and {len(missing)} step(s) missing, which forecast.fill can fill after" if len(missing) else ""
                weekday = f" ({first:%A})" if _base(freq) in ("B", "C", "D") else ""   # a weekend among trading days
                what = f"{len(off_grid)} time(s) off the {freq} grid, e.g. {first}{weekday}{gaps}"
                fix = ("drop the time(s) off the grid, or date each on its step, in data.source (a WHERE or a CASE "
                       "in its query), or set forecast.freq to the data's frequency")
            else:
                what = f"{len(missing)} missing step(s), the first at {missing[0].date()}"
                fix = f"fill the missing steps ({FILL_HINT}{holiday}) or set forecast.freq to the data's frequency"
            raise DataError(f"data.time '{time}': {series_named(frame, uid)} is not regular at frequency {freq}: {what}",
                            fix)


def load_series(case: Case, frame: pd.DataFrame | None = None) -> SeriesData:
    """Read the case's data and return its :class:`SeriesData` (a one-line :class:`DataError` for bad data)."""
    from ..data import _normalise_frame, check_columns, fingerprint_frame, load_frame, parse_time

    spec = case.spec
    fc = spec.forecast
    if spec.task != "forecast" or fc is None:
        raise SpecError("this case is not a forecast case", "set task: forecast and a forecast section")
    # a DataFrame is read as data.source is (as prepare reads one): Arrow and nullable dtypes, decimals, zoned days,
    # repeated names; as it was, an Arrow-backed or Decimal target was "not numeric" and zoned days the UTC instants
    df = load_frame(case) if frame is None else _normalise_frame(frame.reset_index(drop=True))
    check_columns(case, df)
    d = spec.data
    target = d.target
    y = pd.to_numeric(df[target], errors="coerce") if not pd.api.types.is_numeric_dtype(df[target]) else df[target]
    bad = df[target][y.isna() & df[target].notna()]
    if len(bad):
        raise DataError(f"data.target '{target}' is not numeric (e.g. {bad.astype(str).iloc[0]!r})",
                        "a forecast case forecasts a number; pick a numeric column")
    time = parse_time(case, df)
    no_time = np.asarray(pd.isna(time))
    if no_time.any():  # a row without a time has no step (HistData::Snow.dates' last row: deaths of no known day)
        first = int(np.flatnonzero(no_time)[0])
        raise DataError(f"data.time '{d.time}': {int(no_time.sum()):,} row(s) have no time (e.g. row {first + 1} of the "
                        f"data, {target} {df[target].iloc[first]})",
                        f"drop them in data.source (SELECT * FROM ... WHERE \"{d.time}\" IS NOT NULL), or give each "
                        "its time")
    if d.series:
        # a row without a series key was read as a series named 'nan', and its series "missed" the step
        # (fpp3::aus_arrivals with two Origin blanked: "series 'Japan' is not regular: 2 missing step(s)")
        from ..data import check_keyed

        check_keyed(df, d.series, "data.series", "series")
    out = pd.DataFrame({ID: df[d.series].astype(str) if d.series else ONE_SERIES,
                        DS: pd.to_datetime(time).astype(TIME_DTYPE), Y: y.astype("float64")})
    covariates = list(fc.known) + list(fc.past_only)
    for c in covariates:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            codes = pd.to_numeric(col, errors="coerce")
            if codes.isna().sum() > col.isna().sum():
                raise DataError(f"forecast covariate '{c}' is not numeric (e.g. {col.dropna().astype(str).iloc[0]!r})",
                                "encode it as numbers (0/1 for a flag, a price, a count) before forecasting")
            col = codes
        out[c] = col.astype("float64")
    check_unique(out, df, d.time, d.series, target)
    out = out.sort_values([ID, DS], kind="stable").reset_index(drop=True)
    # rows before a series' first value are not part of the series
    begun = started(out)
    notes = []
    if not begun.all():
        dropped = out.loc[~begun, ID]
        gone = sorted(set(dropped) - set(out.loc[begun, ID]))
        if gone:
            raise DataError(f"data.target '{target}': series '{gone[0]}' has no value at all"
                            + (f" ({len(gone)} such series)" if len(gone) > 1 else ""),
                            "drop the series without values")
        notes.append(f"{len(dropped):,} rows before the first value of their series were dropped "
                     f"({dropped.nunique():,} series start later than the data)")
        out = out[begun.to_numpy()].reset_index(drop=True)
    over = ended(out)
    if over.any():
        gone = out.loc[over, ID]
        notes.append(f"{len(gone):,} rows after the last value of their series were dropped ({gone.nunique():,} "
                     f"series end before the data: {', '.join(map(str, list(dict.fromkeys(gone))[:5]))}"
                     f"{', ...' if gone.nunique() > 5 else ''}); each is forecast from its own last value")
        out = out[~over.to_numpy()].reset_index(drop=True)
    if not fc.fill:
        check_filled(out, target)
    freq = fc.freq or infer_freq(out, d.time)
    try:
        pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise SpecError(f"forecast.freq: '{freq}' is not a pandas frequency",
                        "use an alias such as D, W-SUN, MS, QS or h") from None
    if fc.fill:
        out, added, filled = fill_gaps(out, freq, fc.fill, list(fc.known))
        if filled:
            notes.append(f"forecast.fill: {fc.fill} filled {filled:,} missing value(s) of '{target}' "
                         f"({added:,} of them missing steps), {filled / len(out):.1%} of the steps; the backtests "
                         "score the filled values as actuals")
    check_regular(out, freq, d.time)
    for c in fc.known:
        if out[c].isna().any():
            raise DataError(f"forecast.known: covariate '{c}' has {int(out[c].isna().sum())} missing value(s)",
                            "a covariate known in advance must be filled in for every step; fill it or move it to "
                            "forecast.past_only")
    season = fc.season_length or season_of(freq)
    step = fc.step or fc.horizon
    lengths = out.groupby(ID, observed=True).size()
    data = SeriesData(frame=out, freq=freq, season_length=season, horizon=fc.horizon, step=step,
                      known=list(fc.known), past_only=list(fc.past_only), backtest_windows=fc.backtest_windows,
                      test_windows=fc.test_windows, target=target, time=d.time, series_col=d.series, fill=fc.fill)
    data.notes.extend(notes)
    _fit_windows(data, int(lengths.min()))
    data.fingerprint = fingerprint_frame(out)
    data.columns = [str(c) for c in df.columns]
    return data


def min_train(season_length: int) -> int:
    """Steps of history the first backtest cut-off needs: two seasons and the largest lag, at least 30."""
    return max(30, 2 * season_length + 1)


def longest_horizon(shortest: int, season_length: int) -> int:
    """The longest horizon whose two backtest windows and one test window (a step apart by a horizon) fit
    the shortest series after its training history; below 1 no forecast case fits."""
    return (shortest - min_train(season_length)) // 3


def verdict_horizon(shortest: int, season_length: int, n_series: int) -> int:
    """The longest horizon at which the shortest series holds two backtest windows and enough test windows
    for a verdict (:data:`~mlcase.forecast.decision.MIN_TEST_BLOCKS` series x cut-offs over all series);
    below 1 no horizon does."""
    from .decision import MIN_TEST_BLOCKS

    per_series = -(-MIN_TEST_BLOCKS // max(int(n_series), 1))
    return (shortest - min_train(season_length)) // (2 + per_series)


def min_series_length(season_length: int) -> int:
    """The fewest steps a series may hold: its training history, two backtest windows and a test window of one step
    (the length at which :func:`longest_horizon` first reaches 1)."""
    return min_train(season_length) + 3


def too_short(shortest: int, season_length: int, drop: str | None = None) -> str:
    """The fix for a series too short at any horizon (``drop``: a query without the short series)."""
    need = min_train(season_length)
    return (f"even at horizon 1 a series needs {min_series_length(season_length)} steps ({need} of training "
            "history: two seasons and the largest lag, at least 30); drop the shorter series"
            + (f" (e.g. data.source: {drop})" if drop else "") + ", or predict it as a regression case")


def fitted_windows(shortest: int, season_length: int, horizon: int, step: int, backtest: int,
                   test: int) -> tuple[int, int]:
    """``(backtest, test)`` windows the shortest series holds after its training history: the backtest windows
    give way first (down to 2), then the test windows (down to 1); ``(2, 1)`` may still not fit."""
    need = min_train(season_length)

    def span(b, t):
        return need + (b - 1) * step + horizon + (t - 1) * step + horizon

    while span(backtest, test) > shortest and backtest > 2:
        backtest -= 1
    while span(backtest, test) > shortest and test > 1:
        test -= 1
    return backtest, test


def most_test_windows(shortest: int, season_length: int, horizon: int, step: int) -> int:
    """The most test windows the shortest series holds beside the fewest backtest windows (2)."""
    room = shortest - min_train(season_length) - step - 2 * horizon
    return max(room // step + 1, 0) if room >= 0 else 0


def _fit_windows(data: SeriesData, shortest: int) -> None:
    """Fewer windows when the shortest series cannot hold them all (a note says so); too short is an error."""
    need = min_train(data.season_length)
    asked = (data.backtest_windows, data.test_windows)
    data.backtest_windows, data.test_windows = fitted_windows(shortest, data.season_length, data.horizon, data.step,
                                                              *asked)
    if data.test_span + data.backtest_span + need > shortest:
        fix = ("forecast a shorter horizon (forecast.horizon), or drop the short series"
               if longest_horizon(shortest, data.season_length) >= 1 else too_short(shortest, data.season_length))
        raise DataError(f"the shortest series has {shortest} steps; {need} of training history, 2 backtest windows "
                        f"and a test window of {data.horizon} steps need {need + data.backtest_span + data.test_span}",
                        fix)
    if (data.backtest_windows, data.test_windows) != asked:
        data.notes.append(f"the shortest series ({shortest} steps) holds {data.backtest_windows} backtest and "
                          f"{data.test_windows} test windows (asked: {asked[0]} and {asked[1]})")
