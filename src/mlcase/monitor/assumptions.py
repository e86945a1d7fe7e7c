"""The spec's ``assumptions[].check`` re-run per window on the log."""

from __future__ import annotations

from ..errors import RuleError
from ._util import _q


def check_assumptions(run, windows: list[dict]) -> None:
    """Each ``assumptions[].check``, validated by :class:`mlcase.rules.Rule`, evaluated per window.

    One grouped DuckDB query per assumption over a view of the log with the
    case's column names (the target holds the joined labels), with external
    access off as in :meth:`Rule.check`.
    """
    from ..rules import Rule

    checks = [(k, a) for k, a in enumerate(run.spec.assumptions) if a.check]
    if not checks:
        return
    available = [*run.col, run.target]
    target_sql = ("TRY_CAST(_label AS DOUBLE)" if _target_is_numeric(run) else "_label")
    cols = ", ".join(f"{run.col[c]} AS {_q(c)}" for c in run.col)
    run.con.execute(f"""CREATE VIEW named AS SELECT _wi, _label IS NOT NULL AS _labelled,
                         {cols + ', ' if cols else ''}{target_sql} AS {_q(run.target)} FROM log""")
    run.con.execute("SET enable_external_access = false")
    import duckdb

    for k, a in checks:
        where = f"assumptions[{k}].check"
        try:
            rule = Rule(expression=a.check, columns=available, kind="aggregate", where=where)
        except RuleError as exc:
            run.warnings.append({"kind": "assumption", "assumption": a.text,
                                  "message": f"not checked on the log: {exc}"})
            continue
        uses_target = a.needs_labels if a.needs_labels is not None else run.target in rule.used_columns
        try:
            rows = run.con.execute(f"""SELECT _wi, ({rule.expression}) AS v, count(*) FROM named
                                        {'WHERE _labelled' if uses_target else ''} GROUP BY _wi""").fetchall()
        except duckdb.Error as exc:
            run.warnings.append({"kind": "assumption", "assumption": a.text,
                                  "message": f"{where}: DuckDB cannot evaluate it on the log: "
                                             f"{str(exc).splitlines()[0]}"})
            continue
        values = {int(r[0]): (r[1], int(r[2])) for r in rows}
        for wi, w in enumerate(windows):
            entry = {"text": a.text, "check": a.check, "needs_labels": bool(uses_target)}
            if uses_target and (not w["mature"] or w["labels"]["labelled"] == 0):
                entry.update({"status": "waiting_for_labels", "value": None, "n": w["labels"]["labelled"]})
                w["assumptions"].append(entry)
                continue
            value, n = values.get(wi, (None, 0))
            value = value.item() if hasattr(value, "item") else value
            entry.update({"value": value, "n": n})
            if value is None:
                entry["status"] = "unknown"
            elif bool(value):
                entry["status"] = "ok"
            else:
                entry["status"] = "broken" if n >= run.mon.min_window_rows else "too_small"
            w["assumptions"].append(entry)


def _target_is_numeric(run) -> bool:
    cols = {c["name"]: c for c in (run.bundle.schema or {}).get("columns", [])}
    return run.task == "regression" or cols.get(run.target, {}).get("kind") == "numeric"
