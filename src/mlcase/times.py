"""How mlcase reads every time, in training, batch scoring and serving alike: datetimes without a zone, in UTC.

A time with a zone (``2020-05-01T10:00:00Z``, ``...+02:00``, a zoned column from DuckDB or Parquet) is
converted to UTC and its zone dropped; a time without one is taken as it is (as UTC). One rule
everywhere, because pandas refuses to subtract or compare zoned and plain times: a model trained on
plain dates that was sent ``2020-05-01T10:00:00Z`` (what JSON clients write) failed with
``TypeError: Cannot subtract tz-naive and tz-aware datetime-like objects``, and every fallback with it.
"""

from __future__ import annotations

import re

import pandas as pd

# the one unit of a time axis: microseconds, pandas 3's unit for parsed text, hold years 1 to 9999 (nanoseconds
# stop at 1678 to 2261, and HistData::Arbuthnot's christenings start in 1629)
TIME_DTYPE = "datetime64[us]"


def as_datetimes(values) -> pd.Series:
    """``values`` as zone-less UTC datetimes (pandas' ``datetime64``, in the unit pandas reads them in:
    microseconds for text); what does not parse is ``NaT``.

    >>> as_datetimes(["2020-05-01T10:00:00Z", "2020-05-01T12:00:00+02:00", "2020-05-01", "soon"]).tolist()
    [Timestamp('2020-05-01 10:00:00'), Timestamp('2020-05-01 10:00:00'), Timestamp('2020-05-01 00:00:00'), NaT]
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype="object")
    if pd.api.types.is_datetime64_any_dtype(s):
        if s.dt.tz is None:
            return s
        # local midnights in a zone are those days, as training read them (mlcase.data): a Parquet file to score
        # gave them to the model as the instants in UTC, 13 hours earlier in Sydney, a day before the day meant
        days = zoned_days(s)
        return days if days is not None else s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return pd.to_datetime(s, errors="coerce")
    if (days := offset_dates(s)) is not None:
        return days
    return pd.to_datetime(s, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)


# a day written as local midnight with its UTC offset, as a database's zoned timestamp of dates exports it
# (PostgreSQL's timestamptz: "2024-03-04 00:00:00+01")
_MIDNIGHT_WITH_OFFSET = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[T ]00:00(?::00(?:\.0+)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)\s*$")


def offset_dates(values: pd.Series) -> pd.Series | None:
    """Text whose every value is a day written as local midnight with a UTC offset: those days; else None.

    Converted to UTC, ``1920-01-01T00:00:00+01:00`` was 23:00 on 31 December 1919, so a monthly series exported
    from a zoned timestamp column (datasets::nottem, written so) was drafted as month-ends at 23:00 (frequency
    ``ME``), and every forecast was dated the day before the month it meant. Such a value names a day; a time of
    day other than midnight, or one value without an offset, keeps the instant reading of :func:`as_datetimes`.

    >>> offset_dates(pd.Series(["1920-01-01T00:00:00+01:00", "1920-02-01 00:00+01", None])).tolist()
    [Timestamp('1920-01-01 00:00:00'), Timestamp('1920-02-01 00:00:00'), NaT]
    >>> offset_dates(pd.Series(["1920-01-01T10:00:00+01:00"])) is None
    True
    """
    text = values.dropna()
    if text.empty or not isinstance(text.iloc[0], str) or not _MIDNIGHT_WITH_OFFSET.match(text.iloc[0]):
        return None                                       # the usual case, decided on one value
    days = text.astype(str).str.extract(_MIDNIGHT_WITH_OFFSET, expand=False)
    if days.isna().any():
        return None
    out = pd.Series(pd.NaT, index=values.index, dtype=TIME_DTYPE)
    out[text.index] = pd.to_datetime(days, format="%Y-%m-%d", errors="coerce").astype(TIME_DTYPE)
    return None if out[text.index].isna().any() else out


def zoned_days(s: pd.Series) -> pd.Series | None:
    """A zoned datetime column whose every value is local midnight in a zone other than UTC: those days; else None.

    The typed form of :func:`offset_dates`: a Parquet file's ``timestamp[tz=Australia/Sydney]`` column of quarter
    starts (a database's timestamptz of dates) read as UTC was 13:00 the day before, and a forecast case refused
    its series as "not regular", where the CSV of the same table read its days.
    """
    if not is_zoned(s) or str(s.dt.tz) in ("UTC", "utc", "Etc/UTC"):
        return None
    local = s.dt.tz_localize(None)
    values = local.dropna()
    if values.empty or not (values == values.dt.normalize()).all():
        return None
    return local.astype(TIME_DTYPE)


def is_zoned(s: pd.Series) -> bool:
    """Whether ``s`` is a datetime column with a time zone."""
    return isinstance(s.dtype, pd.DatetimeTZDtype)


# month/day/year, as the US writes dates and as Excel and SAS export them ("9/30/1990", "10/16/2009 0:00:00"): DuckDB's
# CSV sniffer reads ISO dates only, so openintro::birds' strike dates and Ecdat::breaches' `Date_of_Breach` were text,
# a category with a value per day, and the draft found no time to split by in 800 breach dates
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def us_dates(values: pd.Series) -> pd.Series | None:
    """``values`` (text) as datetimes where every value is a month/day/year date (with an optional time), else
    None. A first number above 12 is a day (day/month/year, as most of the world writes dates): such a
    column stays text, since a single day/month value cannot be told from a month/day one when it is served.

    >>> us_dates(pd.Series(["9/30/1990 0:00:00", "11/29/1993", None])).tolist()
    [Timestamp('1990-09-30 00:00:00'), Timestamp('1993-11-29 00:00:00'), NaT]
    >>> us_dates(pd.Series(["30/9/1990", "1/2/1990"])) is None
    True
    """
    first = values.first_valid_index()
    if first is None or us_date(values[first]) is None:
        return None                                      # the usual case, decided on one value
    parsed = {}
    for v in pd.unique(values.dropna()):
        parsed[v] = us_date(v)
        if parsed[v] is None:
            return None                                  # not a date, a day first (month 30), or no day (2/30/1990)
    return pd.Series(values.map(parsed), index=values.index).astype(TIME_DTYPE)


def us_date(value):
    """One month/day/year text as a ``Timestamp``, or None where it is not one (the server reads a request so)."""
    m = _US_DATE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        return None
    month, day, year, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    try:
        return pd.Timestamp(year, month, day, hour, minute, second)
    except ValueError:                                   # a month past 12, a day past the month's last
        return None


# a number written as text that is epoch seconds, not a date: a decimal point, or nine digits and more (`date +%s`
# gives ten); eight digits stay a date, as pandas reads them (20260115)
_EPOCH_TEXT = re.compile(r"^[+-]?(\d{9,}(\.\d*)?|\d+\.\d+)$")


def read_now(now, arg: str = "now") -> float:
    """The time a caller passed as ``now``, in epoch seconds (UTC); ``None`` is the current time.

    ``now`` is epoch seconds (an int or float: ``time.time()``), a ``datetime``/``Timestamp``/``date``
    (without a zone: UTC), or ISO-8601 text (``2026-01-15T06:00:00Z``, ``2026-01-15``; ``"now"``; digits
    as ``date +%s`` writes them). Anything else is a :class:`~mlcase.errors.SpecError` naming ``arg``:
    a number read as nanoseconds (pandas' unit) put ``now=time.time()`` in 1970, silently.

    >>> read_now(1768456800) == read_now("2026-01-15T06:00:00Z") == read_now("2026-01-15 06:00")
    True
    """
    import math
    from datetime import UTC, date, datetime

    import numpy as np

    from .errors import SpecError

    fix = ("pass an ISO-8601 time (2026-01-15T06:00:00Z), a datetime, or epoch seconds (time.time()); "
           "leave it out for the current time")
    if now is None:
        return datetime.now(UTC).timestamp()
    seconds = None
    if isinstance(now, (bool, np.bool_)):
        raise SpecError(f"{arg}: expected a time, got {now!r}", fix)
    if isinstance(now, (int, float, np.integer, np.floating)):
        seconds = float(now)
    elif isinstance(now, str):
        text = now.strip()
        if text.lower() == "now":
            return datetime.now(UTC).timestamp()
        if _EPOCH_TEXT.match(text):
            seconds = float(text)
    elif not isinstance(now, (datetime, date, np.datetime64, pd.Timestamp)):
        raise SpecError(f"{arg}: expected a time, got a {type(now).__name__}", fix)
    if seconds is not None:
        if not math.isfinite(seconds):
            raise SpecError(f"{arg}: expected a time, got {now!r}", fix)
        try:  # what the rest reads it as: a date between years 1 and 9999
            datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            raise SpecError(f"{arg}: {now!r} is not a time in epoch seconds (milliseconds? divide by 1000)",
                            fix) from None
        return seconds
    if isinstance(now, str) and now.strip().lower() in ("today", "tomorrow", "yesterday"):
        ts = None  # pandas reads "today" as the local clock's time: not a time mlcase can tell the zone of
    else:
        try:
            ts = pd.Timestamp(now)
        except (ValueError, TypeError, OverflowError):
            ts = None
    if ts is None or pd.isna(ts):
        shown = repr(now) if len(repr(now)) <= 60 else repr(now)[:57] + "..."
        raise SpecError(f"{arg}: cannot read {shown} as a time", fix)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.timestamp()


# a duration written as text: pandas' own ("0 days 01:00:00", "-1 days +23:59:30.5": DataFrame.to_csv of a timedelta
# column) and ISO 8601's ("PT1H30M", "P2DT3H", "PT0.5S": what JSON clients send); no months or years (not a fixed
# length), and no bare "01:00:00", which is a time of day as often as a duration
_DURATION_TEXT = re.compile(r"^\s*(?:[+-]?\d+ days? [+-]?\d{1,2}:\d{2}:\d{2}(?:\.\d+)?"
                            r"|[+-]?P(?=\d|T\d)(?:\d+(?:\.\d+)?[WD])?(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?"
                            r"(?:\d+(?:\.\d+)?S)?)?)\s*$")


def duration_seconds(value):
    """One duration as seconds (a float): a ``timedelta``, ``numpy.timedelta64`` or duration text (see
    :func:`durations`); anything else as it is, so a number stays a number (seconds) and other text is refused where
    it is checked. How batch scoring and the server read a value of a column that training read as durations.

    >>> duration_seconds("PT1H30M"), duration_seconds("0 days 00:00:01.500000"), duration_seconds(7.0)
    (5400.0, 1.5, 7.0)
    """
    import datetime

    import numpy as np

    if isinstance(value, np.timedelta64):
        value = pd.Timedelta(value)
    if isinstance(value, datetime.timedelta):      # pd.Timedelta too
        return float("nan") if pd.isna(value) else value.total_seconds()
    if isinstance(value, str) and _DURATION_TEXT.match(value):
        try:
            return pd.Timedelta(value.strip()).total_seconds()
        except ValueError:
            return value
    return value


def durations(values: pd.Series) -> pd.Series | None:
    """A column of durations as seconds (floats, NaN where missing), or None where it is no such column.

    A timedelta column (a Parquet ``duration``, DuckDB's INTERVAL, a DataFrame's ``timedelta64``) and text whose every
    value is a duration (``0 days 01:00:00``, ``PT1H``) are durations. They were read three ways: a Parquet file's as
    an integer in the file's unit (``duration[ms]`` 1000 times ``duration[s]`` of the same times), a DataFrame's as a
    category, the CSV's as text; and batch scoring refused them in a numeric column.

    >>> durations(pd.Series(["PT1H", "0 days 00:01:00", None])).tolist()
    [3600.0, 60.0, nan]
    >>> durations(pd.Series(["PT1H", "soon"])) is None
    True
    """
    if pd.api.types.is_timedelta64_dtype(values):
        return values.dt.total_seconds().astype("float64")
    if not pd.api.types.is_string_dtype(values.dtype):     # text only (object or str)
        return None
    text = values.dropna()
    if text.empty or not isinstance(text.iloc[0], str) or not _DURATION_TEXT.match(text.iloc[0]):
        return None                                       # the usual case, decided on one value
    if not text.astype(str).str.match(_DURATION_TEXT).all():
        return None
    try:
        seconds = pd.to_timedelta(text.astype(str).str.strip()).dt.total_seconds()
    except ValueError:
        return None
    out = pd.Series(float("nan"), index=values.index, dtype="float64")
    out[text.index] = seconds.to_numpy()
    return out
