"""What the model card and the report say about governance: personal data, what the log keeps,
retention, freshness limits, and who owns which alert."""

from __future__ import annotations

#: what the prediction log keeps of a column, in words
KEPT = {"raw": "kept raw", "hashed": "kept hashed", "drop": "not kept"}


def governance_summary(spec, found: list[dict] | None = None) -> dict:
    """The governance facts of a case spec (``found``: the ``personal_data`` check's columns, if run)."""
    from .owners import routing_table
    from .policy import LogPolicy

    policy = LogPolicy.from_spec(spec)
    personal = [{"column": p.column, "kind": p.kind, "purpose": p.purpose, "declared_as": "personal_data",
                 "logged": policy.of(p.column)} for p in spec.personal_data]
    listed = {p["column"]: p for p in personal}
    for f in found or []:
        if f["column"] in listed:   # declared without a kind: what the check found it holds
            listed[f["column"]]["kind"] = listed[f["column"]]["kind"] or f.get("kind")
        elif f.get("detected"):
            personal.append({"column": f["column"], "kind": f.get("kind"), "purpose": None,
                             "declared_as": f.get("declared_as"), "logged": policy.of(f["column"])})
    logged = {c: how for c, how in spec.serving.log_inputs.items()}
    for p in personal:
        logged.setdefault(p["column"], p["logged"])
    mon = spec.monitoring
    return {"personal_data": personal,
            "log_inputs": logged,
            "unit_id": policy.of(spec.data.id) if spec.data.id else None,
            "retention_seconds": spec.serving.retention,
            "freshness": dict(spec.data.freshness), "on_stale": spec.serving.on_stale,
            "max_stale_share": mon.max_stale_share,
            "alert_owners": routing_table(spec),
            "notify": [{"program": n.command[0], "owners": n.owners} for n in mon.notify],
            "dead_man_windows": mon.dead_man_windows, "window_seconds": mon.window}
