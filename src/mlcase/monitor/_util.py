"""Small SQL and value helpers shared by the monitoring modules."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ..sql import identifier as _q  # noqa: F401 - the monitoring modules import them from here
from ..sql import literal as _lit  # noqa: F401


def _floats(s: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for NULL (DuckDB hands back nullable integers)."""
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
