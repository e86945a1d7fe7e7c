"""Helpers of the case spec: durations, rates and the strict base model."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

SPEC_VERSION = 1

# --------------------------------------------------------------------------- helpers
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)?\s*$", re.I)
_UNIT_SECONDS = {None: 1, "ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600,
                 "d": 86400, "w": 604800}
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
                  "month": 30 * 86400, "quarter": 91 * 86400, "year": 365 * 86400}


def parse_duration(value: Any) -> float:
    """Parse ``90s``, ``2m``, ``1h``, ``30d`` (or a number of seconds) into seconds.

    >>> parse_duration("2m"), parse_duration("90s"), parse_duration(30)
    (120.0, 90.0, 30.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '90s', '2m', '1h' or '30d', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"expected a duration like '90s', '2m', '1h' or '30d', got {value!r}")
        seconds = float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "").lower() or None]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a positive duration, got {value!r}; write one like '90s' or '2m'")
    return seconds


def _duration(value: Any) -> Any:
    if value is None:
        return None
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]


def _positive_duration(value: Any) -> Any:
    seconds = _duration(value)
    if seconds is not None and seconds <= 0:
        raise ValueError(f"expected a duration longer than zero, like '30s' or '180d', got {value!r}")
    return seconds


PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]


def parse_rate(value: Any, what: str = "rate") -> tuple[float, str | None]:
    """Parse ``12000/month`` or ``300/day`` into ``(count, period)``; a bare number has no period."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), None
    m = re.match(r"^\s*([\d_.,]+)\s*(?:/|per)\s*([a-z]+?)s?\s*$", str(value), re.I)
    if not m:
        raise ValueError(f"expected a {what} like '12000/month' or '300/day', got {value!r}")
    period = m.group(2).lower()
    if period not in PERIOD_SECONDS:
        raise ValueError(f"unknown period {period!r} in {value!r}; use one of {', '.join(PERIOD_SECONDS)}")
    try:
        count = float(m.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError(f"expected a {what} like '12000/month' or '300/day', got {value!r}") from None
    return count, period


class _Model(BaseModel):
    # no field takes NaN or infinity (a YAML .nan or .inf): every number in a case is a finite amount
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              allow_inf_nan=False)


