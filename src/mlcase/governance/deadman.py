"""The dead-man's switch: an alert when nothing happened that should have.

With ``monitoring.dead_man_windows: N`` two silences raise an alert:

- ``no_traffic``: no prediction arrived for N whole windows of ``monitoring.window``: after the
  last logged prediction (checked against the clock by ``mlcase deadman`` and ``mlcase monitor``),
  or between two windows of the log (a past outage, in :func:`mlcase.monitor.monitor`);
- ``monitoring_gap``: monitoring itself did not run for N windows. Each ``mlcase monitor`` leaves a
  heartbeat (``<case>/.mlcase/governance/heartbeat.json``); ``mlcase deadman``, run by another
  scheduler than monitoring (cron, a CI job), alerts while the gap lasts, and the next
  ``mlcase monitor`` reports the gap it ended.

A window counts as empty once it is over: with daily windows and N = 2, a model whose last
prediction came on Monday alerts from Thursday 00:00 (Tuesday and Wednesday were empty).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

from ..formats import duration
from .stores import check_log, governance_dir

HEARTBEAT = "heartbeat.json"


def _epoch(t) -> float:
    import pandas as pd

    ts = pd.Timestamp(t if t is not None else datetime.now(UTC))
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.timestamp()


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def empty_windows(last: float, now: float, window_s: float) -> int:
    """Whole windows between the window holding ``last`` and the one holding ``now`` (both excluded)."""
    return max(0, math.floor(now / window_s) - math.floor(last / window_s) - 1)


# --------------------------------------------------------------------------- heartbeat
def read_heartbeat(case) -> dict:
    try:
        return json.loads((governance_dir(case) / HEARTBEAT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_heartbeat(case, now=None, n_rows: int | None = None) -> dict:
    """Note that monitoring ran (``mlcase monitor`` calls it after each run)."""
    from ..case import as_case
    from ..times import read_now
    from .forget import _write

    case = as_case(case)
    beat = {"last_monitor_run": _iso(read_now(now)), "rows": n_rows}
    governance_dir(case).mkdir(parents=True, exist_ok=True)
    _write(governance_dir(case) / HEARTBEAT, beat)
    return beat


# --------------------------------------------------------------------------- the log's span
def log_span(case, log: str | None = None) -> tuple[float | None, float | None, float | None]:
    """``(first, last, created)``: the first and last prediction times in the log (epoch seconds), and when
    a SQLite log file was last changed (None for other databases); all None when there is no log.

    A file that is not a SQLite database (a CSV or Parquet of records, which ``mlcase monitor --log`` reads)
    is a :class:`~mlcase.errors.DataError`: the switch watches the log the server writes.
    """
    import sqlite3

    from ..errors import DataError
    from ..serve.predlog import connect_read_only, resolve_target

    target = resolve_target(case, log)
    sql = "SELECT min(ts), max(ts) FROM predictions"
    fix = "point --log at the serving log (predictions.db or its SQLAlchemy URL), or leave it out for the case's own"
    if "://" not in target or (target.startswith("sqlite:///") and "?" not in target):
        path = Path(target.removeprefix("sqlite:///"))
        if not path.is_file():
            return None, None, None
        if path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq", ".json", ".jsonl"):
            raise DataError(f"log: {path.name} is a file of records, not the serving log: the dead-man's switch "
                            "reads when the server last logged a prediction", fix)
        try:
            con = connect_read_only(path)  # read only: never migrate it here
            try:
                row = con.execute(sql).fetchone()
            except sqlite3.OperationalError:  # no predictions table yet
                row = (None, None)
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:  # not a database at all
            raise DataError(f"log: {path} is not a SQLite prediction log ({exc})", fix) from None
        created = path.stat().st_mtime
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(target)
        try:
            with engine.connect() as con:
                has = sa.inspect(con).has_table("predictions")
                row = tuple(con.execute(sa.text(sql)).fetchone()) if has else (None, None)
        finally:
            engine.dispose()
        created = None
    first, last = (None if v is None else _epoch(v) for v in row)
    return first, last, created


def missing_log(case, log: str | None = None) -> str | None:
    """The path of the log file when the log is a file that does not exist (the server never ran, or the log
    moved or was deleted), else None."""
    from ..serve.predlog import resolve_target

    target = resolve_target(case, log)
    if "://" in target and not (target.startswith("sqlite:///") and "?" not in target):
        return None
    path = Path(target.removeprefix("sqlite:///"))
    return None if path.is_file() else str(path)


# --------------------------------------------------------------------------- the checks
def silence_alerts(case, now=None, log: str | None = None, windows: int | None = None) -> list[dict]:
    """``no_traffic`` after the last prediction and ``monitoring_gap`` since the last heartbeat, at ``now``.

    ``windows`` overrides ``monitoring.dead_man_windows``; with neither set, nothing is checked.
    ``now``: epoch seconds, a datetime or ISO-8601 text (default the current time).
    """
    from ..case import as_case
    from ..times import read_now

    case = as_case(case)
    t = read_now(now)
    mon = case.spec.monitoring
    n = windows or mon.dead_man_windows
    if not n:
        return []
    w = mon.window
    first, last, changed = log_span(case, log)
    out = []
    if last is not None:
        k = empty_windows(last, t, w)
        if k >= n:
            out.append(_alert("no_traffic", _iso(math.floor(last / w) * w + w), k, n,
                              f"no prediction arrived for {k} window(s) of {duration(w)} (the last at {_iso(last)}); "
                              f"the switch fires after {n}"))
    elif (gone := missing_log(case, log)) is not None:
        out.append(_alert("no_traffic", None, None, n,
                          f"there is no prediction log at {gone}: no prediction was logged (the server never ran, "
                          "or its log moved or was deleted); the switch cannot count the empty windows"))
    elif changed is not None and empty_windows(changed, t, w) >= n:
        k = empty_windows(changed, t, w)
        out.append(_alert("no_traffic", _iso(math.floor(changed / w) * w + w), k, n,
                          f"the prediction log holds no prediction, {k} window(s) of {duration(w)} after it was "
                          f"opened; the switch fires after {n}"))
    beat = read_heartbeat(case).get("last_monitor_run")
    since = _epoch(beat) if beat else first
    if since is not None:
        k = empty_windows(since, t, w)
        if k >= n:
            what = f"monitoring did not run for {k} window(s) of {duration(w)} (last run {beat})" if beat else \
                f"monitoring has not run since the first prediction ({_iso(first)}), {k} window(s) of {duration(w)} ago"
            out.append(_alert("monitoring_gap", _iso(math.floor(since / w) * w + w), k, n,
                              f"{what}; the switch fires after {n}"))
    return out


def gap_alerts(starts: list[float], window_s: float, n: int | None) -> list[dict]:
    """``no_traffic`` for every run of at least ``n`` empty windows between windows of the log."""
    if not n:
        return []
    out = []
    for a, b in zip(starts, starts[1:], strict=False):
        k = int(round((b - a) / window_s)) - 1
        if k >= n:
            out.append(_alert("no_traffic", _iso(a + window_s), k, n,
                              f"no prediction arrived for {k} window(s) of {duration(window_s)} from {_iso(a + window_s)} "
                              f"to {_iso(b)}; the switch fires after {n}"))
    return out


def _alert(kind: str, window: str | None, value: int | None, threshold: int, message: str) -> dict:
    return {"kind": kind, "feature": None, "window": window, "value": value, "threshold": threshold,
            "message": message}


def check(case, now=None, log: str | None = None, windows: int | None = None) -> dict:
    """What ``mlcase deadman`` reports: the silences at ``now``, with owners."""
    from ..case import as_case
    from ..times import read_now
    from .owners import assign

    case = as_case(case)
    t = read_now(now)
    if isinstance(log, (str, os.PathLike)) and "://" not in str(log) and not Path(log).exists() \
            and case.resolve(log).is_file():
        log = case.resolve(log)  # a relative --log is found in the case folder, as `mlcase monitor` finds it
    log = check_log(log)
    alerts = assign(silence_alerts(case, t, log, windows), case.spec)
    first, last, _ = log_span(case, log)
    return {"case": case.name, "checked_at": _iso(t), "windows": windows or
            case.spec.monitoring.dead_man_windows, "window_seconds": case.spec.monitoring.window,
            "last_prediction": _iso(last), "last_monitor_run": read_heartbeat(case).get("last_monitor_run"),
            "status": "alert" if alerts else "ok", "alerts": alerts}
