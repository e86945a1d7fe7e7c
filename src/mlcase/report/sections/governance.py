"""Governance: personal data and what the prediction log keeps, retention, feature freshness, and who
owns which alert (with the last monitoring run's alerts by owner and the stale share per feature).

Reads the spec (``results["case"]["spec"]``), the ``personal_data`` check's statistics
(``results["checks"]``) and the last monitoring run (``results["monitoring"]``).
"""

from __future__ import annotations

from . import Section, esc, table

TITLE = "Governance"
ORDER = 70
STAGES: tuple[str, ...] = ()  # always built: the spec alone says most of it


def build(results: dict[str, dict]) -> list[Section]:
    from ...checks.personal import QUASI_KINDS
    from ...formats import duration
    from ...governance.summary import KEPT, governance_summary
    from ...spec import CaseSpec

    spec_dict = (results.get("case") or {}).get("spec")
    if not spec_dict:
        return []
    spec = CaseSpec.model_validate(spec_dict)
    found = ((results.get("checks") or {}).get("stats") or {}).get("personal_data")
    g = governance_summary(spec, found)
    parts = []
    if g["personal_data"]:
        parts.append("<h3>Personal data</h3>" + table(
            [{"column": p["column"], "holds": (p["kind"] or "–").replace("_", " ")
              + (" (quasi-identifier)" if p["kind"] in QUASI_KINDS else ""),
              "purpose": p["purpose"] or "not declared under personal_data", "the log keeps it": p["logged"]}
             for p in g["personal_data"]]))
    combo = ((results.get("checks") or {}).get("stats") or {}).get("quasi_identifiers")
    if combo:
        parts.append(f"<p>Quasi-identifiers together: {esc(', '.join(combo['columns']))} single out "
                     f"{combo['unique']:,} of {combo['rows']:,} rows ({combo['share']:.0%}).</p>")
    if not g["personal_data"]:
        parts.append("<p>No personal data is declared under <code>personal_data</code>, and the data checks found "
                     "none.</p>")
    facts = []
    if g["unit_id"] is not None:
        facts.append(f"the log has the unit (<code>data.id</code>) {KEPT[g['unit_id']]}")
    facts += [f"{esc(c)} {KEPT[how]}" for c, how in g["log_inputs"].items() if c != spec.data.id]
    facts.append(f"rows are kept {esc(duration(g['retention_seconds']))} (serving.retention), their monitoring "
                 "windows as aggregates" if g["retention_seconds"] else
                 "no retention period is set: the prediction log grows until someone deletes it")
    if g["freshness"]:
        facts.append("features may be at most " + ", ".join(f"{esc(duration(s))} old ({esc(f)})"
                                                            for f, s in g["freshness"].items())
                     + ("; a stale one sends the record to the next fallback tier" if g["on_stale"] == "fallback"
                        else "; a stale one is flagged in the answer"))
    if g["dead_man_windows"]:
        facts.append(f"the dead-man's switch fires after {g['dead_man_windows']} empty window(s) of "
                     f"{esc(duration(g['window_seconds']))}")
    text = "; ".join(facts)
    parts.append("<p>" + text[:1].upper() + text[1:] + ".</p>")
    parts.append("<h3>Who owns which alert</h3>" + table(
        [{"alert": a["alert"].replace("_", " "), "owner": a["owner"], "from": a["via"]} for a in g["alert_owners"]]))
    mon = results.get("monitoring") or {}
    parts += _monitoring_parts(mon)
    # an undeclared identifier stops the run (an error); an undeclared quasi-identifier alone is a warning
    undeclared = [p for p in g["personal_data"] if p["declared_as"] is None]
    status = ("error" if any(p["kind"] not in QUASI_KINDS for p in undeclared) else "warning" if undeclared
              else None)
    return [Section(id="governance", title=TITLE, html="".join(parts), order=ORDER, status=status)]


def _monitoring_parts(mon: dict) -> list[str]:
    parts = []
    owners = mon.get("alerts_by_owner") or {}
    if owners:
        sent = {}
        for n in mon.get("notifications") or []:
            sent.setdefault(n["owner"], []).append("sent" if n["ok"] else f"failed: {n['error']}")
        parts.append("<h3>Alerts of the last monitoring run, by owner</h3>" + table(
            [{"owner": o, "alerts": v["n"], "kinds": ", ".join(k.replace("_", " ") for k in v["kinds"]),
              "notified": "; ".join(sent.get(o, [])) or "–"} for o, v in owners.items()]))
    rows = []
    for w in mon.get("windows") or []:
        for f, s in (w.get("freshness") or {}).items():
            rows.append({"window": w["window"], "feature": f, "stale share": s["stale_share"],
                         "as-of unknown": s["unknown_share"], "median age (s)": s["age_p50_s"]})
    if rows:
        parts.append("<h3>Stale features per window</h3>" + table(rows[-60:]))
    archived = [w["window"] for w in mon.get("windows") or [] if w.get("archived")]
    if archived:
        parts.append(f"<p>{len(archived)} window(s) up to {esc(archived[-1])} are shown from their archived "
                     "aggregates: their rows were pruned by serving.retention.</p>")
    return parts
