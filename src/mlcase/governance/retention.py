"""Retention: ``serving.retention: 180d`` keeps the prediction log that long, and not longer.

:func:`apply_retention` (``mlcase retention CASE``) removes the rows older than the retention
period from every store of the case (:func:`stores.stores_for`), whole monitoring windows at a
time: the cut-off is rounded down to a window boundary of ``monitoring.window``. Before the rows
go, monitoring is run over the log, and the windows about to be emptied are stored as
aggregates in the log's ``monitor_archive`` table *in the same transaction* that deletes their
rows: ``mlcase monitor`` and the report show those windows as before (drift, decisions,
fallbacks, realized and estimated performance, alerts), marked ``archived``. Killed mid-way, the
log keeps either all of its rows or the archive and none of them; running it again finishes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..errors import SpecError
from .stores import PredictionLogStore, check_log, governance_dir, stores_for


def cutoff(case, now=None) -> tuple[str, float]:
    """The retention cut-off as the log writes times (ISO-8601 UTC) and as epoch seconds.

    ``now - serving.retention``, rounded down to a boundary of ``monitoring.window``.
    """
    from ..case import as_case
    from ..times import read_now

    case = as_case(case)
    t = read_now(now)
    keep = case.spec.serving.retention
    if keep is None:
        raise SpecError("serving.retention is not set, so nothing is too old to keep",
                        "set serving.retention in case.yaml (e.g. 180d) to prune older rows")
    w = case.spec.monitoring.window
    edge = math.floor((t - keep) / w) * w
    iso = datetime.fromtimestamp(edge, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return iso, edge


def apply_retention(case, log: str | None = None, now=None, dry_run: bool = False) -> dict:
    """Prune every store of rows older than ``serving.retention``, keeping their monitoring windows.

    Parameters
    ----------
    case : Case, str or Path
        The case, or the path of its ``case.yaml`` (or of the folder holding it).
    log : str or Path, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    now : datetime, str or float, optional
        The time the retention period counts back from: a datetime, ISO-8601 text or epoch seconds
        (default now).
    dry_run : bool
        Count what would go; change nothing.

    Returns
    -------
    dict
        ``before`` (the cut-off), ``stores`` (store, location, rows), ``rows``, ``archived_windows``,
        ``dry_run``.
    """
    from ..case import as_case
    from ..lock import case_lock
    from ..serve.predlog import now_iso

    case = as_case(case)
    log = check_log(log)
    before, edge = cutoff(case, now)
    with case_lock(case, "retention"):
        stores = stores_for(case, log)
        counts = [(st, st.prune(before, dry_run=True)) for st in stores]
        archive: list[dict] = []
        window_s = case.spec.monitoring.window
        log_rows = sum(n for st, n in counts if isinstance(st, PredictionLogStore))
        if log_rows and not dry_run:
            archive = _windows_before(case, log, edge)
        out = []
        for st, n in counts:
            if n and not dry_run:
                n = (st.prune(before, archive=archive, window_s=window_s) if isinstance(st, PredictionLogStore)
                     else st.prune(before))
            out.append({"store": st.name, "location": st.location, "rows": n})
    result = {"kind": "retention", "ran_at": now_iso(), "retention_seconds": case.spec.serving.retention,
              "before": before, "dry_run": dry_run, "stores": out, "rows": sum(s["rows"] for s in out),
              "archived_windows": [w["window"] for w in archive]}
    if not dry_run:
        from .forget import _write

        governance_dir(case).mkdir(parents=True, exist_ok=True)
        _write(governance_dir(case) / "retention.json", result)
    return result


def _windows_before(case, log, edge: float) -> list[dict]:
    """The monitoring windows (``monitoring.window``) that end at or before ``edge``, computed from the log."""
    import pandas as pd

    from ..monitor import monitor

    try:
        result = monitor(case, log=log)
    except Exception as exc:
        from ..errors import MlcaseError

        if isinstance(exc, MlcaseError):
            raise type(exc)(f"retention: the monitoring windows of the rows to prune cannot be computed, so nothing "
                            f"was pruned ({exc.message})", exc.fix) from None
        raise
    out = []
    for w in result.windows:
        if w.get("archived") or w.get("end") is None:
            continue
        if pd.Timestamp(w["end"]).timestamp() <= edge:
            out.append(w)
    return out
