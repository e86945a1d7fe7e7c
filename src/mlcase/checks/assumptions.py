"""The spec's assumptions: each ``check`` evaluated on the training rows, with its operands measured."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import RuleError
from .context import Context, Skip
from .registry import register
from .report import Check


@register("assumptions", ids=("assumption",), order=10)
def check_assumptions(ctx: Context) -> list[Check]:
    items = [(i, a) for i, a in enumerate(ctx.spec.assumptions) if a.check]
    if not items:
        raise Skip("no assumptions with a check in the spec")
    out, results = evaluate_assumptions(items, ctx.frame.iloc[ctx.train], list(ctx.frame.columns))
    ctx.stats["assumptions"] = results
    return out


def evaluate_assumptions(items: list, train: pd.DataFrame, columns: list[str]) -> tuple[list[Check], list[dict]]:
    """Evaluate ``(index, assumption)`` pairs on the training rows ``train``: a check per assumption that is false
    (an error) or NULL (a warning), and what each measured. Shared by the tabular checks and a forecast case's,
    which passes its series without their test period, under the data's own column names."""
    from ..rules import Rule

    out = []
    results = []
    for i, a in items:
        where = f"assumptions[{i}].check"
        rule = Rule(a.check, columns, kind="aggregate", where=where)
        rows = train[rule.used_columns] if rule.used_columns else train.iloc[:, :0]
        value = rule.check(rows)
        measured = _measure_operands(a.check, columns, where, rows)
        results.append({"text": a.text, "check": a.check, "value": value, "measured": measured})
        shown = "; ".join(f"{k} = {_fmt_value(v)}" for k, v in measured.items())
        evidence = {"assumption": a.text, "check": a.check, "value": value, "measured": measured,
                    "rows": int(len(rows)), "where": where}
        if value is None:
            out.append(Check("assumption", "warning",
                             f"assumption '{a.text}' could not be evaluated: its check is NULL on the training rows"
                             + (f" (measured {shown})" if shown else ""), evidence=evidence,
                             fix=f"handle missing values in {where} (coalesce, or count them explicitly)"))
        elif not isinstance(value, bool):
            raise RuleError(f"{where}: the check returned {value!r}, not true or false",
                            "write a comparison, e.g. avg(CASE WHEN churn = 'Yes' THEN 1 ELSE 0 END) < 0.4")
        elif not value:
            out.append(Check("assumption", "error",
                             f"assumption '{a.text}' is false on the training data: measured {shown or 'false'} "
                             f"(check: {a.check})", evidence=evidence,
                             fix="the data contradicts what the case assumes: fix the data or its filter, or "
                                 f"revise the assumption and its check ({where}) with the owner"))
    return out, results


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _measure_operands(expression: str, columns: list[str], where: str, rows: pd.DataFrame) -> dict[str, Any]:
    """Evaluate each aggregate operand of the top-level comparisons of an assumption check.

    ``avg(x) < 0.05 AND count(*) > 100`` gives ``{"avg(x)": 0.31, "count(*)": 5000}``;
    comparisons inside an aggregate (``CASE WHEN churn = 'Yes'``) are not operands.
    """
    import sqlglot
    from sqlglot import exp

    from ..rules import _AGGREGATES, Rule

    tree = sqlglot.parse_one(f"SELECT {expression}", dialect="duckdb").expressions[0]
    comparisons = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ, exp.Between, exp.Is)
    operands: list[exp.Expression] = []

    def visit(node):
        if isinstance(node, (exp.And, exp.Or)):
            visit(node.this)
            visit(node.expression)
        elif isinstance(node, (exp.Not, exp.Paren)):
            visit(node.this)
        elif isinstance(node, comparisons):
            operands.extend(v for k, v in node.args.items() if k in ("this", "expression", "low", "high") and v)
        else:
            operands.append(node)

    visit(tree)
    measured: dict[str, Any] = {}
    for op in operands:
        is_agg = any(isinstance(n, exp.AggFunc) or (isinstance(n, exp.Anonymous) and n.name.lower() in _AGGREGATES)
                     for n in op.walk())
        if not is_agg or isinstance(op, exp.Literal):
            continue
        sql = op.sql(dialect="duckdb", normalize_functions="lower")
        if sql in measured:
            continue
        try:
            measured[sql] = Rule(sql, columns, kind="aggregate", where=where).check(rows)
        except RuleError:
            continue  # an operand that is not a value on its own (the whole check still ran)
    return measured


