"""The data checks (a table of findings with severity badges) and the datasheet.

Reads ``results["checks"]`` (:meth:`mlcase.checks.CheckReport.to_dict`, plus
``forced`` when a run went on past errors) and ``results["datasheet"]``
(:func:`mlcase.checks.datasheet.datasheet_dict`).
"""

from __future__ import annotations

from typing import Any

from . import Section, esc, fmt, table

TITLE = "Data checks"
ORDER = 10
STAGES = ("checks", "datasheet")


def build(results: dict[str, dict]) -> list[Section]:
    checks = results.get("checks")
    sheet = results.get("datasheet")
    if not checks and not sheet:
        return []
    children = [Section(id="datasheet", title="Datasheet", html=datasheet_html(sheet), order=ORDER)] if sheet else []
    if checks:
        return [Section(id="checks", title=TITLE, html=checks_html(checks), order=ORDER,
                        status=_status(checks), children=children)]
    return [Section(id="datasheet", title="Datasheet", html=datasheet_html(sheet), order=ORDER)]


def _status(checks: dict) -> str:
    n = checks.get("counts") or {}
    return "error" if n.get("error") else ("warning" if n.get("warning") else "ok")


def badge(severity: str) -> str:
    return f'<span class="badge badge-{esc(severity)}">{esc(severity)}</span>'


def _evidence_text(ev: dict) -> str:
    parts = []
    for k, v in (ev or {}).items():
        if isinstance(v, (dict, list)) or v is None:
            continue
        parts.append(f"{k.replace('_', ' ')}: {fmt(v)}")
    return "; ".join(parts)


def _evidence_details(ev: dict) -> str:
    out = []
    for k, v in (ev or {}).items():
        label = esc(k.replace("_", " "))
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            out.append(f"<details><summary>{label}</summary>{table(v)}</details>")
        elif isinstance(v, dict) and v:
            out.append(f"<details><summary>{label}</summary>"
                       + table([{"name": a, "value": b if not isinstance(b, (dict, list)) else str(b)}
                                for a, b in v.items()]) + "</details>")
        elif isinstance(v, list) and v:
            out.append(f'<p class="muted">{label}: {esc(", ".join(map(str, v)))}</p>')
    return "".join(out)


def checks_html(checks: dict) -> str:
    """The summary line, the findings table (errors first) and what was skipped."""
    n = checks.get("counts") or {}
    passed = checks.get("passed") or []
    accepted = f", {n['accepted']} accepted by the owner" if n.get("accepted") else ""
    head = (f"<p><strong>{n.get('error', 0)}</strong> error(s), <strong>{n.get('warning', 0)}</strong> warning(s), "
            f"{n.get('info', 0)} note(s){accepted} from {len(checks.get('ran') or [])} checks on "
            f"{int(checks.get('rows') or 0):,} rows.</p>")
    if checks.get("forced"):
        head += ('<p class="failed"><strong>This run was forced past error-level checks</strong> '
                 "(<code>--force</code>); its results rest on data the checks rejected.</p>")
    rows = []
    for c in checks.get("checks") or []:
        label = "accepted" if c.get("accepted") else c["severity"]
        accepted = (f'<br><em>Accepted by the owner ({esc(c["severity"])}): {esc(c["accepted"])}</em>'
                    if c.get("accepted") else "")
        rows.append(
            f'<tr class="sev-{esc(label)}"><td>{badge(label)}</td><td><code>{esc(c["id"])}</code></td>'
            f"<td>{esc(c.get('column') or '')}</td><td>{esc(c['title'])}{accepted}"
            f"{_evidence_details(c.get('evidence'))}</td>"
            f'<td class="muted">{esc(_evidence_text(c.get("evidence")))}</td><td>{esc(c.get("fix") or "")}</td></tr>')
    body = ""
    if rows:
        body = ('<table class="tbl checks"><thead><tr><th>severity</th><th>check</th><th>column</th><th>finding</th>'
                "<th>evidence</th><th>fix</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    else:
        body = "<p>Every check passed.</p>"
    tail = ""
    assumptions = (checks.get("stats") or {}).get("assumptions") or []
    if assumptions:
        state = {True: "holds", False: "does not hold", None: "not evaluated (NULL)"}
        tail += table([{"assumption": a["text"], "check": a["check"], "result": state.get(a["value"], str(a["value"])),
                        "measured": "; ".join(f"{k} = {fmt(v)}" for k, v in (a.get("measured") or {}).items())}
                       for a in assumptions], caption="Assumptions, measured on the training rows")
    if passed:
        tail += f'<p class="muted">Passed: {esc(", ".join(passed))}.</p>'
    skipped = checks.get("skipped") or {}
    if skipped:
        tail += '<p class="muted">Not applicable: ' + esc("; ".join(f"{k} ({v})" for k, v in skipped.items())) + ".</p>"
    return head + body + tail


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.2f}%"


def _facts(items: list[tuple[str, Any]]) -> str:
    return "<ul>" + "".join(f"<li><strong>{esc(k)}:</strong> {esc(v)}</li>" for k, v in items if v not in (None, "", [])) + "</ul>"


def datasheet_html(sheet: dict) -> str:
    """The datasheet as HTML: composition, collection, preprocessing, uses and the open TODO questions."""
    m, comp, col, uses = sheet["motivation"], sheet["composition"], sheet["collection"], sheet["uses"]
    t = comp["target"]
    if t["task"] == "binary":
        target = (f"{t['column']} (binary): positive class {t['positive']} in {t['positives']:,} of "
                  f"{t['rows']:,} rows ({_pct(t['positive_rate'])})")
    elif t["task"] == "multiclass":
        target = f"{t['column']} (multiclass): " + ", ".join(f"{k} {v:,}" for k, v in t["classes"].items())
    else:
        target = f"{t['column']} (regression): mean {fmt(t['mean'])}, sd {fmt(t['std'])}, median {fmt(t['median'])}"
    splits = ", ".join(f"{p} {o['rows']:,}" + (f" ({_pct(o['positive_rate'])} positive)" if "positive_rate" in o else "")
                       for p, o in comp["splits"].items())
    excluded = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in (comp.get("excluded") or {}).items())
    tr = comp.get("time_range")
    parts = [
        '<p class="muted">After Gebru et al., <em>Datasheets for Datasets</em>. Written from the spec and the data; '
        "lines marked TODO need an answer from a person. Also saved as <code>datasheet.md</code> in the case folder.</p>",
        "<h3>Motivation</h3>",
        _facts([("Decision the data supports", m.get("decision")), ("Owner", m.get("owner")),
                ("Current process", m.get("current_process")), ("Aim", m.get("target"))]),
        "<h3>Composition</h3>",
        _facts([("Rows", f"{comp['rows_read']:,} read, {comp['rows_labelled']:,} with a label, "
                         f"{comp['rows_used']:,} used"),
                ("Excluded rows", excluded), ("Columns", f"{comp['n_columns']} ({comp['n_features']} features)"),
                ("Target", target), (f"Split ({comp['split_method']})", splits),
                ("Time range", f"{tr['min']} to {tr['max']} ({tr['column']})" if tr else None)]),
        table([{"column": c["name"], "role": c["role"], "kind": c["kind"], "type": c["dtype"],
                "missing": _pct(c["missing_share"]), "distinct": c["distinct"], "summary": c["summary"]}
               for c in comp["columns"]], caption="Columns"),
    ]
    if comp.get("slices"):
        key = "positive_rate" if t["task"] == "binary" else ("mean" if t["task"] == "regression" else "top_class")
        parts.append(table([{"column": s["column"] + (" (sensitive)" if s.get("sensitive") else ""), "value": s["value"],
                             "rows": s["rows"], "share": _pct(s["share"]),
                             key.replace("_", " "): _pct(s.get(key)) if key == "positive_rate" else s.get(key)}
                            for s in comp["slices"]], caption="Slices"))
    one = comp.get("one_feature")
    if one and one.get("scores"):
        metric = "AUC" if one["metric"] == "auc" else "R^2"
        parts.append(table([{"feature": k, metric: v} for k, v in list(one["scores"].items())[:15]],
                           caption=f"Each feature alone ({metric} on {one['rows']:,} training rows)", digits=3))
    parts += ["<h3>Collection</h3>",
              _facts([("Source", col.get("source")), ("Fingerprint", col.get("fingerprint")),
                      ("Label delay (days)", col.get("label_delay_days")), ("Label time column", col.get("label_time"))]),
              "<h3>Preprocessing</h3>", "<ul>" + "".join(f"<li>{esc(p)}</li>" for p in sheet["preprocessing"]) + "</ul>",
              "<h3>Uses</h3>",
              _facts([("Intended use", uses.get("intended")), ("Goals", "; ".join(uses.get("goals") or [])),
                      ("Not for", "; ".join(uses.get("not_for") or [])),
                      ("Sensitive columns (never features)", ", ".join(uses.get("sensitive") or [])),
                      ("Possible proxies", ", ".join(f"{p['feature']} for {p['sensitive']}"
                                                     for p in uses.get("possible_proxies") or []))]),
              "<h3>Open questions</h3>",
              '<ul class="todo">' + "".join(f"<li><strong>TODO</strong> ({esc(q['section'])}): {esc(q['question'])}</li>"
                                           for q in sheet.get("todo") or []) + "</ul>"]
    return "".join(parts)
