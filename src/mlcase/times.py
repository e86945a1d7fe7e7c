"""How mlcase reads every time, in training, batch scoring and serving alike: datetimes without a zone, in UTC.

A time with a zone (``2020-05-01T10:00:00Z``, ``...+02:00``, a zoned column from DuckDB or Parquet) is
converted to UTC and its zone dropped; a time without one is taken as it is (as UTC). One rule
everywhere, because pandas refuses to subtract or compare zoned and plain times: a model trained on
plain dates that was sent ``2020-05-01T10:00:00Z`` (what JSON clients write) failed with
``TypeError: Cannot subtract tz-naive and tz-aware datetime-like objects``, and every fallback with it.
"""

from __future__ import annotations

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
        return s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return pd.to_datetime(s, errors="coerce")
    return pd.to_datetime(s, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)


def is_zoned(s: pd.Series) -> bool:
    """Whether ``s`` is a datetime column with a time zone."""
    return isinstance(s.dtype, pd.DatetimeTZDtype)
