"""The datasheet of a case's data, after Gebru et al., "Datasheets for Datasets" (2018/2021).

:func:`datasheet_dict` gathers what mlcase can answer from the data and the spec:
composition (rows, columns, kinds, missingness, target distribution, slices),
collection and preprocessing (from ``data``, ``split`` and what
:func:`~mlcase.data.prepare` excluded), intended uses (from the decision, goals
and non-goals) and the data-check results. Questions only a person can answer
(consent, provenance, licence, maintenance) are listed as ``TODO``.
:func:`write_datasheet` renders it as Markdown in ``<case>/datasheet.md``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..case import Case
from ..data import Dataset
from ..formats import Markdown, md_cell, md_code, md_text, number

DATASHEET_FILE = "datasheet.md"
MAX_LEVELS = 10

# Questions from the datasheet template that the data cannot answer: (section, question).
TODO_QUESTIONS = [
    ("motivation", "Who created the data set, on whose behalf, and who paid for it?"),
    ("composition", "Does the data identify people, directly or through combinations of columns, or hold "
                    "confidential information (financial, health, communications)?"),
    ("composition", "Is any information missing on purpose (redacted, or never recorded for some groups)?"),
    ("collection", "How was the data collected (systems, people, sampling), and over what period?"),
    ("collection", "Were the people in the data told, did they consent, and can they withdraw consent?"),
    ("collection", "Has a data protection impact assessment been done?"),
    ("uses", "What else has this data been used for, and what should it not be used for?"),
    ("maintenance", "Who maintains the data, how is it updated, and how long is it kept?"),
    ("maintenance", "Under what licence or agreement may it be used and shared?"),
]


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.2f}%"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if x != x:
            return "–"
        return number(x, 4)
    return str(x)


def _roles(case: Case, dataset: Dataset) -> dict[str, str]:
    spec, d = case.spec, case.spec.data
    roles = {c: "feature" for c in dataset.features}
    for key in ("id", "time", "group", "label_time"):
        col = getattr(d, key)
        if col:
            roles[col] = key.replace("_", " ")
    roles[d.target] = "target"
    for c in spec.sensitive:
        roles[c] = "sensitive"
    for c in d.unavailable_at_serving:
        roles.setdefault(c, "unavailable at serving")
    for c in d.features.exclude:
        roles.setdefault(c, "excluded")
    for c in dataset.frame.columns:
        roles.setdefault(c, "not used")
    return roles


def _column_summary(s: pd.Series, kind: str) -> str:
    if kind in ("numeric",) and pd.api.types.is_numeric_dtype(s):
        v = s.dropna()
        if not len(v):
            return "empty"
        return f"{_num(v.min())} to {_num(v.max())}, mean {_num(v.mean())}"
    if kind == "datetime":
        v = s.dropna()
        return f"{v.min()} to {v.max()}" if len(v) else "empty"
    if kind in ("id", "text"):
        return "e.g. " + ", ".join(repr(str(x)) for x in s.dropna().head(2))
    vc = s.value_counts(normalize=True).head(3)
    return ", ".join(f"{k} {_pct(v)}" for k, v in vc.items())


def _outcome(dataset: Dataset, rows: np.ndarray | slice) -> dict:
    y = dataset.y[rows]
    if dataset.task == "binary":
        return {"rows": int(len(y)), "positives": int(y.sum()), "positive_rate": float(y.mean()) if len(y) else None}
    if dataset.task in ("regression", "ranking"):  # ranking: the mean gain
        return {"rows": int(len(y)), "mean": float(np.mean(y)) if len(y) else None}
    vc = pd.Series(y).value_counts()
    return {"rows": int(len(y)), "top_class": str(vc.index[0]) if len(vc) else None,
            "top_share": float(vc.iloc[0] / len(y)) if len(vc) else None}


def _slices(case: Case, dataset: Dataset) -> list[dict]:
    out = []
    cols = list(dict.fromkeys([*case.spec.slices, *case.spec.sensitive]))
    frame = dataset.frame
    for c in cols:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and s.nunique() > MAX_LEVELS:
            groups = pd.qcut(s, 4, duplicates="drop").astype(str)
        else:
            groups = s.astype(str).where(s.notna(), "(missing)")
        counts = groups.value_counts()
        for level in counts.index[:MAX_LEVELS]:
            idx = np.flatnonzero((groups == level).to_numpy())
            out.append({"column": c, "value": str(level), "rows": int(len(idx)),
                        "share": float(len(idx) / len(frame)), **_outcome(dataset, idx),
                        "sensitive": c in case.spec.sensitive})
    return out


def personal_data_rows(case: Case, found: list[dict] | None) -> list[dict]:
    """Each column holding personal data: declared under ``personal_data`` (with its purpose) or found by the
    ``personal_data`` check, with what the prediction log keeps of it."""
    from ..governance.policy import LogPolicy

    policy = LogPolicy.from_spec(case.spec)
    rows: dict[str, dict] = {}
    for p in case.spec.personal_data:
        rows[p.column] = {"column": p.column, "kind": p.kind, "purpose": p.purpose, "declared_as": "personal_data",
                          "match_share": None}
    for f in found or []:
        r = rows.setdefault(f["column"], {"column": f["column"], "kind": None, "purpose": None,
                                          "declared_as": f.get("declared_as"), "match_share": None})
        r["kind"] = r["kind"] or f.get("kind")
        if f.get("detected"):
            r["match_share"] = f.get("match_share")
    for r in rows.values():
        r["logged"] = policy.of(r["column"])
    return list(rows.values())


def datasheet_dict(case: Case, dataset: Dataset, report) -> dict:
    """The datasheet's content as a dict (what the report renders and ``datasheet.md`` shows).

    Parameters
    ----------
    case : Case
    dataset : Dataset
        From :func:`mlcase.data.prepare`.
    report : CheckReport
        From :func:`mlcase.checks.run_checks` (its counts, findings and statistics are included).
    """
    spec, d = case.spec, case.spec.data
    frame = dataset.frame
    excluded = dict(dataset.excluded)
    n_missing_target = int(excluded.get("missing_target", 0))
    split = dataset.split
    used = int(len(split.train) + len(split.valid) + len(split.test))
    roles = _roles(case, dataset)
    rdict = report.to_dict() if hasattr(report, "to_dict") else dict(report or {})
    personal = personal_data_rows(case, rdict.get("stats", {}).get("personal_data"))
    hidden = {p["column"] for p in personal}
    columns = []
    for name, info in dataset.schema.columns.items():
        columns.append({"name": name, "role": roles.get(name, "not used"), "kind": info.kind, "dtype": info.dtype,
                        "missing_share": info.missing_rate, "distinct": info.n_unique,
                        "summary": "personal data: values not shown" if name in hidden else
                        _column_summary(frame[name], info.kind)})
    target: dict[str, Any] = {"column": d.target, "task": dataset.task, **_outcome(dataset, slice(None))}
    if dataset.task == "binary":
        target.update(positive=dataset.positive, negative=dataset.classes[0])
    elif dataset.task == "multiclass":
        vc = pd.Series(dataset.y).value_counts()
        target["classes"] = {str(k): int(v) for k, v in vc.items()}
    else:
        y = dataset.y
        target.update(std=float(np.std(y)), min=float(np.min(y)), median=float(np.median(y)), max=float(np.max(y)))
    splits = {part: _outcome(dataset, getattr(split, part)) for part in ("train", "valid", "test")}
    time_range = None
    if dataset.time is not None:
        time_range = {"column": d.time, "min": str(dataset.time.min()), "max": str(dataset.time.max())}
    preprocessing = []
    if n_missing_target:
        preprocessing.append(f"{n_missing_target:,} rows without a value in the target '{d.target}' were dropped.")
    if excluded.get("immature_label"):
        preprocessing.append(f"{excluded['immature_label']:,} rows younger than the label delay "
                             f"({d.label_delay / 86400:g} days) were excluded from training, validation and test: "
                             "their labels may not be in yet.")
    elif d.label_delay and d.include_immature:
        preprocessing.append("Rows younger than the label delay are kept (data.include_immature: true).")
    if excluded.get("no_time"):
        preprocessing.append(f"{excluded['no_time']:,} rows without a value in the time column '{d.time}' were "
                             f"excluded: a {dataset.split.method.replace('_', ' ')} split cannot place them before or "
                             "after its cut.")
    chosen = "listed in data.features.include" if d.features.include else "every column not reserved by the spec"
    preprocessing.append(f"{len(dataset.features)} feature columns: {chosen}"
                         + (f", minus data.features.exclude ({', '.join(d.features.exclude)})" if d.features.exclude else "")
                         + ".")
    if d.unavailable_at_serving:
        preprocessing.append(f"Not used because serving will not have them: {', '.join(d.unavailable_at_serving)}.")
    if spec.sensitive:
        preprocessing.append(f"Sensitive columns, never features (used for fairness slices): {', '.join(spec.sensitive)}.")
    preprocessing.append(f"Split: {split.method}, test {spec.split.test_size:g} of the rows, validation "
                         f"{spec.split.valid_size:g} of the rest, seed {spec.split.seed}.")
    proxies = [c for c in rdict.get("checks", []) if c["id"] == "proxy"]
    return {
        "name": spec.name,
        "generated_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "motivation": {"decision": spec.decision, "owner": spec.owner,
                       "current_process": spec.problem.current_process, "target": spec.problem.target,
                       "volume": spec.problem.volume, "goals": list(spec.goals), "owners": dict(spec.owners)},
        "composition": {"rows_read": int(len(frame) + n_missing_target), "rows_labelled": int(len(frame)),
                        "rows_used": used, "excluded": excluded, "n_columns": int(frame.shape[1]),
                        "n_features": len(dataset.features), "columns": columns, "target": target,
                        "splits": splits, "split_method": split.method, "time_range": time_range,
                        "slices": _slices(case, dataset), "personal_data": personal,
                        "one_feature": rdict.get("stats", {}).get("one_feature")},
        "collection": {"source": d.source, "fingerprint": dataset.fingerprint, "time": d.time,
                       "label_delay_days": d.label_delay / 86400 if d.label_delay else None,
                       "label_time": d.label_time},
        "preprocessing": preprocessing,
        "uses": {"intended": spec.decision, "goals": list(spec.goals), "not_for": list(spec.non_goals),
                 "sensitive": list(spec.sensitive),
                 "possible_proxies": [{"feature": c["column"], **c["evidence"]} for c in proxies]},
        "checks": {"counts": rdict.get("counts", {}), "has_errors": rdict.get("has_errors", False),
                   "findings": [{"id": c["id"], "severity": c["severity"], "column": c.get("column"),
                                 "title": c["title"], **({"accepted": c["accepted"]} if c.get("accepted") else {})}
                                for c in rdict.get("checks", [])],
                   "passed": rdict.get("passed", []),
                   "assumptions": [{"text": a["text"], "check": a["check"], "holds": a["value"],
                                    "measured": a["measured"]} for a in rdict.get("stats", {}).get("assumptions", [])]},
        "todo": [{"section": s, "question": q} for s, q in TODO_QUESTIONS],
    }


def _md_table(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return []
    out = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(md_cell(r.get(k, "")) for k, _ in columns) + " |")
    return out + [""]


def _todos(sheet: dict, section: str) -> list[str]:
    return [f"- **TODO** (a person must answer): {t['question']}" for t in sheet["todo"] if t["section"] == section]


def datasheet_markdown(sheet: dict) -> str:
    """Render :func:`datasheet_dict` as Markdown."""
    m, comp, col, uses = sheet["motivation"], sheet["composition"], sheet["collection"], sheet["uses"]
    t = comp["target"]
    L = [f"# Datasheet: {md_text(sheet['name'])}", "",
         f"> Written by mlcase from `case.yaml` and the data ({sheet['generated_at']}). "
         "Lines marked **TODO** need an answer from a person who knows where the data comes from.", "",
         "## Motivation", "", f"- **Decision the data supports:** {md_text(m['decision'])}"]
    for key, label in (("owner", "Owner"), ("current_process", "Current process"), ("target", "Aim"),
                       ("volume", "Volume")):
        if m.get(key):
            L.append(f"- **{label}:** {md_text(m[key])}")
    L += [f"- **Owners:** {', '.join(f'{md_text(k)}: {md_text(v)}' for k, v in m['owners'].items())}"] if m["owners"] else []
    L += _todos(sheet, "motivation") + ["", "## Composition", ""]
    L.append(f"- **Rows:** {comp['rows_read']:,} read, {comp['rows_labelled']:,} with a label, "
             f"{comp['rows_used']:,} used for training, validation and test")
    if comp["excluded"]:
        L.append("- **Excluded rows:** " + ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in comp["excluded"].items()))
    L.append(f"- **Columns:** {comp['n_columns']} ({comp['n_features']} used as features)")
    if t["task"] == "binary":
        L.append(f"- **Target:** {md_code(t['column'])} (binary); positive class {md_code(t['positive'])} in {t['positives']:,} "
                 f"of {t['rows']:,} rows ({_pct(t['positive_rate'])})")
    elif t["task"] == "multiclass":
        L.append(f"- **Target:** {md_code(t['column'])} (multiclass): "
                 + ", ".join(f"{md_text(k)} {v:,}" for k, v in t["classes"].items()))
    else:
        L.append(f"- **Target:** {md_code(t['column'])} ({t['task']}{', as its gain' if t['task'] == 'ranking' else ''}): "
                 f"mean {_num(t['mean'])}, sd {_num(t['std'])}, "
                 f"min {_num(t['min'])}, median {_num(t['median'])}, max {_num(t['max'])}")
    parts = []
    for part, o in comp["splits"].items():
        extra = f" ({_pct(o['positive_rate'])} positive)" if "positive_rate" in o else ""
        parts.append(f"{part} {o['rows']:,}{extra}")
    L.append(f"- **Split ({comp['split_method']}):** " + ", ".join(parts))
    if comp["time_range"]:
        tr = comp["time_range"]
        L.append(f"- **Time range ({md_code(tr['column'])}):** {md_text(tr['min'])} to {md_text(tr['max'])}")
    L += ["", "### Columns", ""]
    L += _md_table([{**c, "missing": _pct(c["missing_share"]), "distinct": f"{c['distinct']:,}"} for c in comp["columns"]],
                   [("name", "column"), ("role", "role"), ("kind", "kind"), ("dtype", "type"),
                    ("missing", "missing"), ("distinct", "distinct"), ("summary", "summary")])
    if comp.get("personal_data"):
        L += ["### Personal data", ""]
        L += _md_table([{**p, "kind": (p["kind"] or "–").replace("_", " "), "purpose": p["purpose"] or
                         Markdown("**TODO** not declared under personal_data"),
                         "declared_as": p["declared_as"] or Markdown("**not declared**"),
                         "found": _pct(p["match_share"]) if p["match_share"] is not None else "–"}
                        for p in comp["personal_data"]],
                       [("column", "column"), ("kind", "holds"), ("purpose", "purpose"), ("declared_as", "declared as"),
                        ("logged", "prediction log keeps it"), ("found", "values that look like it")])
    if comp["slices"]:
        L += ["### Slices", ""]
        measure = ("positive_rate", "positive rate") if t["task"] == "binary" else (
            ("mean", "mean target") if t["task"] == "regression" else ("top_class", "most common class"))
        L += _md_table([{**s, "share": _pct(s["share"]), "rows": f"{s['rows']:,}",
                         measure[0]: _pct(s.get(measure[0])) if measure[0] == "positive_rate" else _num(s.get(measure[0])),
                         "column": s["column"] + (" (sensitive)" if s["sensitive"] else "")} for s in comp["slices"]],
                       [("column", "column"), ("value", "value"), ("rows", "rows"), ("share", "share"),
                        (measure[0], measure[1])])
    one = comp.get("one_feature")
    if one and one.get("scores"):
        metric = "AUC" if one["metric"] == "auc" else "R^2"
        L += [f"### How well each feature predicts the target on its own ({metric}, {one['rows']:,} training rows)", ""]
        L += _md_table([{"feature": k, "score": f"{v:.3f}"} for k, v in list(one["scores"].items())[:15]],
                       [("feature", "feature"), ("score", metric)])
    L += _todos(sheet, "composition") + ["", "## Collection process", "", f"- **Source:** {md_code(col['source'])}",
                                          f"- **Fingerprint of the rows read:** {md_code(col['fingerprint'])}"]
    if col["label_delay_days"]:
        L.append(f"- **Label delay:** {col['label_delay_days']:g} days (labels arrive that long after {md_code(col['time'])})")
    if col["label_time"]:
        L.append(f"- **Label time column:** {md_code(col['label_time'])}")
    L += _todos(sheet, "collection") + ["", "## Preprocessing", ""]
    L += [f"- {md_text(p)}" for p in sheet["preprocessing"]]
    L += ["", "## Uses", "", f"- **Intended use:** {md_text(uses['intended'])}"]
    if uses["goals"]:
        L.append(f"- **Goals:** {'; '.join(map(md_text, uses['goals']))}")
    if uses["not_for"]:
        L.append(f"- **Not for:** {'; '.join(map(md_text, uses['not_for']))}")
    if uses["sensitive"]:
        L.append(f"- **Sensitive columns:** {', '.join(map(md_code, uses['sensitive']))} (never features)")
        if uses["possible_proxies"]:
            L.append("- **Possible proxies of them:** " + ", ".join(
                f"{md_code(p['feature'])} for {md_code(p['sensitive'])} ({p['metric'].upper()} {p['score']:.2f})" for p in uses["possible_proxies"]))
    L += _todos(sheet, "uses") + ["", "## Distribution and maintenance", ""] + _todos(sheet, "maintenance")
    ch = sheet["checks"]
    n = ch.get("counts", {})
    accepted = f", {n['accepted']} accepted by the owner" if n.get("accepted") else ""
    L += ["", "## Data checks", "",
          f"{n.get('error', 0)} error(s), {n.get('warning', 0)} warning(s), {n.get('info', 0)} note(s){accepted}; "
          f"passed: {', '.join(ch['passed']) or 'none'}.", ""]
    for a in ch.get("assumptions", []):
        state = {True: "holds", False: "**does not hold**", None: "could not be evaluated"}[a["holds"]]
        measured = "; ".join(f"{md_code(k)} = {_num(v)}" for k, v in a["measured"].items())
        L.append(f"- Assumption \"{md_text(a['text'])}\" {state} on the training rows" + (f" (measured {measured})" if measured else ""))
    L += [f"- **{f['severity']}** {md_code(f['id'])}" + (f" ({md_code(f['column'])})" if f.get("column") else "")
          + f": {md_text(f['title'])}" + (f" *Accepted by the owner: {md_text(f['accepted'])}*" if f.get("accepted") else "")
          for f in ch["findings"]]
    return "\n".join(L).rstrip() + "\n"


def write_datasheet(case: Case, dataset: Dataset, report) -> Path:
    """Write ``<case>/datasheet.md`` and return its path."""
    path = case.root / DATASHEET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(datasheet_markdown(datasheet_dict(case, dataset, report)), encoding="utf-8")
    tmp.replace(path)
    return path
