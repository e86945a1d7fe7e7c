"""Monitoring's governance parts: stale features per window, windows kept after retention pruned
their rows, the no-traffic gaps of the dead-man's switch, and the owner of every alert.

- **Freshness** (``data.freshness``): the server logs each answer's feature ages and stale
  features (``freshness``); each window gets ``freshness[feature] = {stale, stale_share, known,
  unknown_share, age_p50_s}`` and an alert ``stale_features`` when a feature's stale share passes
  ``monitoring.max_stale_share``.
- **Archive** (``serving.retention``): windows whose rows were pruned are read back from the
  log's ``monitor_archive`` table and shown as they were computed, with ``archived: true``.
- **Gaps**: with ``monitoring.dead_man_windows``, ``no_traffic`` for every run of that many empty
  windows between windows of the log.
- **Owners**: every alert gets ``owner`` (:mod:`mlcase.governance.owners`).
"""

from __future__ import annotations

import json

from ._util import _lit, _num
from .sources import json_path_key


# --------------------------------------------------------------------------- freshness
def compute_freshness(run, windows: list[dict]) -> None:
    """``windows[i]["freshness"]`` per feature with a limit, from the logged ``freshness`` JSON."""
    limits = run.spec.data.freshness
    if not limits:
        return
    has = run.con.execute("SELECT count(_fresh) FROM log").fetchall()[0][0]
    for w in windows:
        w["freshness"] = {}
    if not has:
        return
    for f in limits:
        # the key as written (json.dumps wrote 'ä' as "\u00e4", which DuckDB's JSON path does not unescape)
        path = _lit("$.age_s." + json_path_key(f))
        rows = run.con.execute(f"""
            SELECT _wi, count(*) FILTER (WHERE list_contains(CAST(json_extract(_fresh, '$.stale') AS VARCHAR[]),
                                                             {_lit(f)})),
                   count(TRY_CAST(json_extract(_fresh, {path}) AS DOUBLE)),
                   median(TRY_CAST(json_extract(_fresh, {path}) AS DOUBLE)), count(*)
            FROM log GROUP BY _wi ORDER BY _wi""").fetchall()
        for wi, stale, known, p50, n in rows:
            windows[int(wi)]["freshness"][f] = {
                "limit_s": limits[f], "stale": int(stale), "stale_share": stale / n if n else 0.0,
                "known": int(known), "unknown_share": 1 - known / n if n else None, "age_p50_s": _num(p50)}


def stale_alerts(run, windows: list[dict]) -> list[dict]:
    """``stale_features``: a feature stale in more than ``monitoring.max_stale_share`` of a window's answers."""
    limit = run.mon.max_stale_share
    out = []
    for w in windows:
        if w["too_small"]:
            continue
        for f, s in (w.get("freshness") or {}).items():
            if s["stale_share"] > limit:
                out.append({"kind": "stale_features", "feature": f, "window": w["window"], "value": s["stale_share"],
                            "threshold": limit,
                            "message": f"{f} was older than data.freshness allows in {s['stale_share']:.1%} of the "
                                       f"answers of window {w['window']} ({s['stale']} of {w['n']}) > {limit:.1%}"})
    return out


# --------------------------------------------------------------------------- archive
def read_archive(run) -> list[dict]:
    """The archived windows of this window length in the log's ``monitor_archive`` (oldest first)."""
    source = run.source
    rows: list[tuple] = []
    if source.kind == "sqlite":
        from ..serve.predlog import connect_read_only

        con = connect_read_only(source.target)
        try:
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'monitor_archive'").fetchone():
                rows = con.execute("SELECT window_seconds, data FROM monitor_archive ORDER BY window_start").fetchall()
        finally:
            con.close()
    elif source.kind == "sqlalchemy":
        import sqlalchemy as sa

        engine = sa.create_engine(source.target)
        try:
            if "monitor_archive" in sa.inspect(engine).get_table_names():
                with engine.connect() as con:
                    rows = list(con.execute(sa.text("SELECT window_seconds, data FROM monitor_archive "
                                                    "ORDER BY window_start")))
        finally:
            engine.dispose()
    same = [json.loads(d) for s, d in rows if abs(float(s) - run.window_s) < 1e-6]
    if len(same) < len(rows):
        run.warnings.append({"kind": "archive", "message": f"{len(rows) - len(same)} archived window(s) of another "
                             "length than this run's are not shown; monitor with --window equal to "
                             "monitoring.window to see them"})
    return same


def merge_archive(run, windows: list[dict]) -> list[dict]:
    """The live windows and the archived ones they do not cover, by start time."""
    archive = getattr(run, "archive", None) or []
    live = {w["start"] for w in windows}
    old = [{**w, "archived": True} for w in archive if w.get("start") not in live]
    if old:
        run.warnings.append({"kind": "archive", "message": f"{len(old)} window(s) before {old[-1]['end']} are "
                             "kept as aggregates: their rows were pruned by serving.retention"})
    return sorted(old + windows, key=lambda w: w.get("start") or "")


# --------------------------------------------------------------------------- gaps and owners
def gap_alerts(run, windows: list[dict]) -> list[dict]:
    """``no_traffic`` for runs of ``monitoring.dead_man_windows`` empty windows inside the log."""
    import pandas as pd

    from ..governance.deadman import gap_alerts as gaps

    n = run.mon.dead_man_windows
    if not n or not run.has_time:
        return []
    starts = [pd.Timestamp(w["start"]).timestamp() for w in windows if w.get("start")]
    return gaps(starts, run.window_s, n)


def finish_alerts(run, alerts: list[dict]) -> list[dict]:
    """Give every alert its owner."""
    from ..governance.owners import assign

    return assign(alerts, run.spec)
