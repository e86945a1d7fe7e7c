"""Human review as a label source: the review queue out as a file, reviewers' verdicts back in as labels.

:func:`export_queue` writes the cases waiting for review (flagged, deferred by
conformal, or drawn for the audit sample), each with its score, conformal set,
top SHAP reasons, the rule's verdict and its request id, plus the record's
inputs and four empty columns for the reviewer: ``outcome``, ``reviewer``,
``reviewed_at``, ``note``. :func:`import_reviews` reads such a file back (or
any CSV/Parquet with ``request_id``, ``outcome``, ``reviewer`` and optionally
``reviewed_at`` and ``note``) and stores each verdict as a label with its
source (``review``, ``audit`` or ``holdout``, see
:func:`mlcase.serve.predlog.label_source`). ``POST /feedback`` stores one
verdict through :func:`record_feedback`.

An import is all or nothing: every row is checked first (the outcome is a
class of the target, a reviewer is named, ``reviewed_at`` is a time not before
the prediction, the request id is in the log, no reviewer reviews a case twice
in one file), and the first bad row stops it with one line naming the row;
otherwise all rows are written in one transaction. Rows without an outcome
(cases not reviewed yet) are skipped; a verdict already imported is not stored
twice, so importing the same file again changes nothing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import DataError, MlcaseError, NotFoundError

QUEUE_COLUMNS = ["request_id", "ts", "why", "arm", "unit_id", "sampling_probability", "score", "prediction",
                 "decision", "model_decision", "conformal", "rule_decision", "reasons", "model_version"]
REVIEW_COLUMNS = ["outcome", "reviewer", "reviewed_at", "note"]
REQUIRED = ("request_id", "outcome", "reviewer")
INPUT_PREFIX = "input."
MAX_NOTE = 10_000
SUFFIXES = (".csv", ".parquet")
TRUE_WORDS, FALSE_WORDS = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no"}


class ReviewRejected(DataError):
    """A review that cannot be stored: names the row (1-based, after the header) and the field."""

    http_status = 422


# --------------------------------------------------------------------------- what an outcome may be
@dataclass
class Target:
    """The values a reviewer's outcome may take: the classes of the target, or a number (regression)."""

    task: str
    classes: list[str] | None = None
    positive: str | None = None

    @classmethod
    def of(cls, bundle) -> Target:
        classes = [str(c) for c in bundle.classes] if bundle.classes is not None else None
        return cls(bundle.task, classes, None if bundle.positive is None else str(bundle.positive))

    def canonical(self, value) -> str | None:
        """The stored label for ``value`` (a class name, or a number as text), or None if it is not one."""
        text = str(value).strip()
        if self.task in ("regression", "ranking"):  # a ranking label is the item's outcome: a click, a rating
            try:
                v = float(text)
            except ValueError:
                return None
            return repr(v) if math.isfinite(v) else None
        classes = self.classes or []
        if text in classes:
            return text
        folded = [c for c in classes if c.lower() == text.lower()]
        if len(folded) == 1:
            return folded[0]
        from .data import label_in

        number = str(label_in(text, classes))   # '3.0' for class 3, as a spreadsheet writes a number
        if number in classes:
            return number
        if self.task == "binary" and len(classes) == 2:
            low = text.lower()
            if low in TRUE_WORDS:
                return self.positive or classes[1]
            if low in FALSE_WORDS:
                return next(c for c in classes if c != (self.positive or classes[1]))
        return None

    def describe(self) -> str:
        return "a number" if self.task in ("regression", "ranking") else "one of " + ", ".join(self.classes or [])


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _iso_utc(value) -> str | None:
    """``value`` as ISO-8601 UTC (``...Z``); a time without a zone is taken as UTC; None if unreadable."""
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat().replace("+00:00", "Z")


def check_reviews(items: list[dict], target: Target, where: str = "review") -> list[dict]:
    """Each review as stored (``request_id``, ``label``, ``reviewer``, ``reviewed_at``, ``note``), or
    :class:`ReviewRejected` naming the first bad row. ``items`` must all carry an outcome."""
    out, seen = [], {}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for k, item in enumerate(items):
        row = item.get("_row", k + 1)
        rid = "" if _blank(item.get("request_id")) else str(item["request_id"]).strip()

        def bad(field, msg, fix, row=row, rid=rid):
            named = f" (request_id {rid})" if rid else ""
            return ReviewRejected(f"{where} row {row}{named}: {msg}", fix, row=row, field=field)

        if not rid:
            raise bad("request_id", "request_id is empty", "copy the request_id of the case from the queue file")
        label = target.canonical(item.get("outcome"))
        if label is None:
            raise bad("outcome", f"outcome {str(item.get('outcome'))[:60]!r} is not {target.describe()}",
                      f"write {target.describe()} (leave it empty for a case not reviewed yet)")
        if _blank(item.get("reviewer")):
            raise bad("reviewer", "reviewer is empty", "name who reviewed the case (agreement between reviewers "
                                                        "is measured by name)")
        reviewer = str(item["reviewer"]).strip()[:200]
        reviewed_at = now if _blank(item.get("reviewed_at")) else _iso_utc(item["reviewed_at"])
        if reviewed_at is None:
            raise bad("reviewed_at", f"reviewed_at {str(item['reviewed_at'])[:40]!r} is not a date and time",
                      "write an ISO-8601 time such as 2026-03-05T14:30:00Z (or leave it empty for now)")
        note = None if _blank(item.get("note")) else str(item["note"])
        if note is not None and len(note) > MAX_NOTE:
            raise bad("note", f"note has {len(note)} characters, more than {MAX_NOTE}", "shorten the note")
        key = (rid, reviewer)
        if key in seen:
            raise bad("reviewer", f"{reviewer} reviews this case again (first at row {seen[key]})",
                      "keep one verdict per reviewer and case in a file")
        seen[key] = row
        out.append({"request_id": rid, "label": label, "reviewer": reviewer, "reviewed_at": reviewed_at,
                    "note": note, "_row": row})
    return out


def store_reviews(backend, reviews: list[dict], channel: str, where: str = "review") -> dict:
    """Write checked reviews in one transaction (the request ids must be in the log; duplicates of
    stored verdicts are skipped). Returns counts by label source."""
    import pandas as pd

    from .serve.predlog import label_rows

    ids = sorted({r["request_id"] for r in reviews})
    info = {r[0]: r[1:] for r in backend.lookup("predictions", ids, ("arm", "audit", "ts"))}
    for r in reviews:
        if r["request_id"] not in info:
            raise NotFoundError(f"{where} row {r['_row']}: request_id {r['request_id']!r} is not in the prediction "
                                "log; nothing was imported",
                                "use the request_id the server answered with" + (
                                    "" if where == "feedback" else ", or pass --log with the log that holds it"))
        ts = _iso_utc(info[r["request_id"]][2])
        if ts is not None and pd.Timestamp(r["reviewed_at"]) < pd.Timestamp(ts):
            raise ReviewRejected(f"{where} row {r['_row']} (request_id {r['request_id']}): reviewed_at "
                                 f"{r['reviewed_at']} is before the prediction ({ts}); nothing was imported",
                                 "check the review's date and time", row=r["_row"], field="reviewed_at")
    stored = {(x[0], x[1], x[2], x[3]) for x in backend.lookup("labels", ids, ("reviewer", "label", "reviewed_at"))}
    fresh = [r for r in reviews if (r["request_id"], r["reviewer"], r["label"], r["reviewed_at"]) not in stored]
    rows = label_rows(fresh, {k: v[:2] for k, v in info.items()}, channel)
    if rows:
        rows = backend.add_labels(rows)   # less any whose prediction an erasure removed since the lookup
    by = {}
    for row in rows:
        by[row[3]] = by.get(row[3], 0) + 1
    return {"stored": len(rows), "already_imported": len(reviews) - len(fresh), "sources": by}


def record_feedback(backend, item: dict, target: Target) -> dict:
    """One reviewer's verdict (what ``POST /feedback`` stores); bad input raises naming the field."""
    reviews = check_reviews([{**item, "_row": 1}], target, where="feedback")
    out = store_reviews(backend, reviews, "feedback", where="feedback")
    source = next(iter(out["sources"]), None)
    return {"request_id": reviews[0]["request_id"], "stored": out["stored"], "label": reviews[0]["label"],
            "source": source, "already_imported": out["already_imported"]}


# --------------------------------------------------------------------------- import
def read_review_file(path: Path):
    """A CSV/Parquet review file with every value as text (ids and notes are never re-typed)."""
    import pandas as pd

    from .data import csv_sep

    if not path.is_file():
        raise DataError(f"review file {path}: {'is a folder' if path.is_dir() else 'no such file'}",
                        "pass the CSV or Parquet file the reviewers filled in")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"review file {path.name}: unsupported file type '{path.suffix or path.name}'",
                        "use a .csv or .parquet file")
    if path.stat().st_size == 0 or (suffix == ".csv" and not path.read_bytes()[:65536].strip()):
        # it read "cannot read it (EmptyDataError: No columns to parse from file)"
        raise DataError(f"review file {path.name} is empty: no header, no rows, nothing was imported",
                        "export the queue with `mlcase review export`, fill in outcome and reviewer, and import that")
    try:
        if suffix == ".csv":
            # a queue reviewed in a spreadsheet comes back as it saves CSV: ';' where the locale writes 0,5
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", sep=csv_sep(path))
        else:
            df = pd.read_parquet(path)
            df = df.astype(object).where(df.notna(), None)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise DataError(f"review file {path.name}: cannot read it ({type(exc).__name__}: {first})",
                        f"check that it is a valid {suffix.lstrip('.').upper()} file (CSV in UTF-8)") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"review file {path.name}: lacks the column(s) {', '.join(missing)}",
                        "give it request_id, outcome and reviewer (optionally reviewed_at and note), as "
                        "`mlcase review export` writes them")
    return df


def import_reviews(case, path, log: str | None = None, bundle=None) -> dict:
    """Store the verdicts of a filled-in review file as labels (all rows, or none).

    Parameters
    ----------
    case : Case
    path : str or Path
        CSV or Parquet with ``request_id``, ``outcome``, ``reviewer`` and optionally
        ``reviewed_at`` (ISO-8601; default now) and ``note``.
    log : str, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    bundle : ModelBundle, optional
        Gives the classes an outcome may take; default the registered champion (else baseline).

    Returns
    -------
    dict
        ``rows`` read, ``reviewed`` (rows with an outcome), ``stored``, ``already_imported``,
        ``skipped_unreviewed``, ``sources`` (stored labels by source) and ``log``.
    """
    from .case import load_case, path_arg
    from .errors import redact_url
    from .serve.predlog import open_existing

    case = load_case(case)
    p = path_arg(path, "review file", "pass the path of the filled-in CSV or Parquet review file")
    df = read_review_file(p)
    items = []
    for k, rec in enumerate(df.to_dict(orient="records")):
        if _blank(rec.get("outcome")):
            continue
        items.append({**{c: rec.get(c) for c in ("request_id", *REVIEW_COLUMNS)}, "_row": k + 1})
    target = Target.of(bundle if bundle is not None else _served_bundle(case))
    reviews = check_reviews(items, target, where=p.name)
    backend, where = open_existing(case, log)
    try:
        out = store_reviews(backend, reviews, f"review:{p.name}", where=p.name) if reviews else {
            "stored": 0, "already_imported": 0, "sources": {}}
    finally:
        backend.close()
    from .governance.stores import register_file

    register_file(case, p, "review file")
    return {"file": str(p), "rows": int(len(df)), "reviewed": len(reviews), **out,
            "skipped_unreviewed": int(len(df) - len(items)), "log": redact_url(where)}


def _served_bundle(case):
    from .monitor.run import default_bundle

    return default_bundle(case, "champion")[0]


# --------------------------------------------------------------------------- export
QUEUE_SQL = """
SELECT p.request_id, p.ts, p.arm, p.unit_id, p.audit, p.sampling_probability, p.score, p.prediction, p.decision,
       p.model_decision, p.conformal, p.rule_decision, p.model_version, p.tier, p.inputs
FROM predictions p
WHERE (p.decision IN ('flag', 'review') OR p.audit = 1) AND p.ts >= :since {pending}
ORDER BY p.ts, p.request_id
"""
PENDING_SQL = ("AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.request_id = p.request_id "
               "AND l.reviewer IS NOT NULL)")


def export_queue(case, output, since=None, log: str | None = None, now=None, reasons: int = 3,
                 include_reviewed: bool = False) -> dict:
    """Write the cases waiting for review to ``output`` (``.csv`` or ``.parquet``).

    Parameters
    ----------
    case : Case
    output : str or Path
    since : str or float, optional
        Only predictions younger than this (``7d``, ``12h``, seconds); default all.
    log : str, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    now : datetime or str, optional
        The time ``since`` counts back from; default now.
    reasons : int
        Top SHAP contributions per row (0: none, and no model is loaded).
    include_reviewed : bool
        Also cases that already have a reviewer's verdict.

    Returns
    -------
    dict
        ``rows``, ``by_why`` (flag / review / audit), ``output``, ``since``, ``log``, ``warnings``.
    """
    import pandas as pd

    from .case import load_case, path_arg
    from .errors import redact_url
    from .serve.predlog import open_existing
    from .spec import parse_duration

    case = load_case(case)
    if not (isinstance(reasons, int) and not isinstance(reasons, bool) and reasons >= 0):  # 'x' > 0: TypeError
        from .arguments import whole_number

        reasons = whole_number(reasons, "reasons", "a number of reasons per row", "pass e.g. reasons=3, or 0 for none",
                               minimum=0)
    out_path = path_arg(output, "-o", "pass the path of the .csv or .parquet file to write the queue to")
    if out_path.suffix.lower() not in SUFFIXES:
        raise DataError(f"-o {out_path.name}: unsupported file type '{out_path.suffix or out_path.name}'",
                        "write the queue to a .csv or .parquet file")
    since_iso = "0000"
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            raise DataError(f"--since: {exc}", "give a duration such as 7d, 12h or 30m") from None
        from .times import read_now

        t_now = pd.Timestamp(read_now(now), unit="s", tz="UTC")   # epoch seconds too, as monitor reads them
        since_iso = (t_now - pd.Timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    backend, where = open_existing(case, log)
    try:
        df = backend.read_frame(QUEUE_SQL.format(pending="" if include_reviewed else PENDING_SQL),
                                {"since": since_iso})
    finally:
        backend.close()
    warnings: list[str] = []
    inputs = [_record(v) for v in df["inputs"]]
    queue = pd.DataFrame({c: df[c] for c in ("request_id", "ts", "arm", "unit_id", "sampling_probability", "score",
                                             "prediction", "decision", "model_decision", "conformal",
                                             "rule_decision", "model_version")})
    queue.insert(2, "why", ["audit" if a == 1 else d for a, d in zip(df["audit"], df["decision"], strict=True)])
    queue["rule_decision"] = _rule_verdicts(case, df["rule_decision"].tolist(), inputs, warnings)
    queue["reasons"] = _reasons(case, df, inputs, reasons, warnings) if reasons > 0 else None
    queue = queue[QUEUE_COLUMNS]
    features = list(dict.fromkeys(k for rec in inputs for k in rec))
    for f in features:
        queue[INPUT_PREFIX + f] = [rec.get(f) for rec in inputs]
    for c in REVIEW_COLUMNS:
        queue[c] = None
    _write(queue, out_path)
    from .governance.stores import register_file

    register_file(case, out_path, "review queue")  # `mlcase forget` and retention reach it
    by_why = {k: int(v) for k, v in queue["why"].value_counts().items()}
    return {"rows": int(len(queue)), "by_why": by_why, "output": str(out_path),
            "since": None if since is None else since_iso, "log": redact_url(where), "warnings": warnings}


def _record(text) -> dict:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return {}
    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


def _rule_verdicts(case, logged: list, inputs: list[dict], warnings: list[str]) -> list:
    """The rule's verdict per row: as logged (holdout rows), else the case's rule on the logged inputs."""
    out = [None if _blank(v) else v for v in logged]
    todo = [k for k, v in enumerate(out) if v is None and inputs[k]]
    rules = case.spec.rule_baselines
    if not todo or not rules:
        return out
    import pandas as pd

    from .governance.policy import LogPolicy
    from .rules import Rule

    frame = pd.DataFrame([inputs[k] for k in todo])
    try:
        rule = Rule(rules[0].rule, columns=list(frame.columns), kind="boolean", where="baselines rule")
        hidden = LogPolicy.from_spec(case.spec).limits(rule.used_columns)
        if hidden:  # the rule would read hashes: say what cannot be done instead
            warnings.append(f"the rule's verdict is left empty where it was not logged: {', '.join(hidden)} is "
                            f"{next(iter(hidden.values())).split(':')[0]}")
            return out
        flags = rule.predict(frame)
    except MlcaseError as exc:
        warnings.append(f"the rule's verdict is left empty: {exc}")
        return out
    for k, f in zip(todo, flags, strict=True):
        out[k] = "flag" if f else "auto"
    return out


def _reasons(case, df, inputs: list[dict], top: int, warnings: list[str]) -> list:
    """Top SHAP contributions per row, from the model version that answered it ('' where none)."""
    from . import tracking
    from .explain import explain_rows
    from .serve.schema import RecordSpec

    out: list = [None] * len(df)
    rows = [k for k in range(len(df)) if df["tier"].iloc[k] in ("model", "previous_champion") and inputs[k]
            and df["model_version"].iloc[k] is not None and not _blank(df["model_version"].iloc[k])]
    by_version: dict[int, list[int]] = {}
    for k in rows:
        by_version.setdefault(int(df["model_version"].iloc[k]), []).append(k)
    from .governance.policy import LogPolicy

    policy = LogPolicy.from_spec(case.spec)
    for version, idx in by_version.items():
        try:
            bundle = tracking.load_bundle(case, alias=None, version=version)
            hidden = policy.limits(bundle.features)
            if hidden:  # SHAP on hashes would explain nothing: say so
                warnings.append(f"no SHAP reasons for model version {version}: {', '.join(hidden)} is "
                                f"{next(iter(hidden.values())).split(':')[0]}")
                continue
            frame = RecordSpec(bundle.schema, bundle.features).frame([inputs[k] for k in idx])
            explained = explain_rows(bundle, frame, top=top)
        except Exception as exc:  # noqa: BLE001 - the queue stands without its reasons; the warning says why
            warnings.append(f"no SHAP reasons for model version {version}: {type(exc).__name__}: {str(exc)[:160]}")
            continue
        for k, row in zip(idx, explained, strict=True):
            out[k] = "; ".join(f"{c['feature']}={_short(c.get('value'))} ({c['contribution']:+.3g})"
                               for c in row.get("contributions", []))
    return out


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)[:40]


def _write(frame, path: Path) -> None:
    """Write atomically (a temporary file renamed into place): a failed write leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8")
        else:
            frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["QUEUE_COLUMNS", "REVIEW_COLUMNS", "ReviewRejected", "Target", "check_reviews", "export_queue",
           "import_reviews", "record_feedback", "store_reviews"]
