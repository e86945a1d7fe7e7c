"""SQL expressions over the case's columns, parsed and guarded once.

Used for rule baselines (``balance > 1800 AND student = 'Yes'``), per-row costs
(``0.6 * loan_amount``) and assumption checks (``avg(CASE WHEN ... END) < 0.05``).
An expression is accepted only as a single expression over known columns: a
statement, a ``;``, a subquery, a table function (``read_csv`` ...) or an
unknown column is a :class:`~mlcase.errors.RuleError` (:func:`mlcase.sql.check_expression`).
Evaluation is by DuckDB on a :func:`mlcase.sql.connect` connection: no file, URL or
extension reachable, configuration locked.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import RuleError
from .sql import AGGREGATES, check_expression

# the guard lives in mlcase.sql (one for every SQL of a case); these names stay importable from here
_AGGREGATES = AGGREGATES
validate_expression = check_expression
TABLE = "mlcase_rows"


@dataclass
class Rule:
    """A parsed, guarded SQL expression.

    Parameters
    ----------
    expression : str
        The SQL text.
    columns : list of str
        The columns it may read.
    kind : {"boolean", "numeric", "aggregate"}
        What it is used as: a row-wise flag, a row-wise number, or an aggregate check.
    where : str
        Where it came from in the spec (``baselines[2].rule``), for error messages.
    """

    expression: str
    columns: list[str]
    kind: str = "boolean"
    where: str = "rule"
    used_columns: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.used_columns = validate_expression(self.expression, self.columns, self.where,
                                                aggregate=(self.kind == "aggregate"))

    # evaluation ------------------------------------------------------------------
    def evaluate(self, df: pd.DataFrame) -> np.ndarray:
        """Row-wise value of the expression (booleans as 0/1 floats, NULL as NaN)."""
        if self.kind == "aggregate":
            raise RuleError(f"{self.where}: an aggregate check has one value; call check() instead")
        frame = df[self.used_columns] if self.used_columns else _no_columns(df)
        result = _run(f"SELECT ({self.expression})::{'DOUBLE' if self.kind == 'numeric' else 'BOOLEAN'} AS v FROM {TABLE}",
                      frame, self.where)
        out = result["v"].astype("float64").to_numpy()
        if len(out) != len(df):  # pragma: no cover - DuckDB keeps rows
            raise RuleError(f"{self.where}: the rule changed the number of rows")
        return out

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """0/1 flags; NULL (e.g. a missing value in a comparison) counts as false."""
        v = self.evaluate(df)
        return np.where(np.isnan(v), 0, v).astype("int64")

    def check(self, df: pd.DataFrame):
        """The value of an aggregate check over all rows of ``df``."""
        frame = df[self.used_columns] if self.used_columns else _no_columns(df)
        result = _run(f"SELECT ({self.expression}) AS v FROM {TABLE}", frame, self.where)
        v = result["v"].iloc[0]
        return None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)

    def to_dict(self) -> dict:
        return {"expression": self.expression, "kind": self.kind, "where": self.where,
                "used_columns": self.used_columns}


def _no_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for an expression that reads no column (``count(*) > 100``): DuckDB needs one column."""
    return pd.DataFrame({"_mlcase_row": np.zeros(len(df), dtype=bool)}, index=df.index)


_local = threading.local()


def _connection():
    """One DuckDB connection per thread (connections are not shared across threads).

    Opening a connection costs milliseconds; the serving fallback evaluates a rule per
    request, so each thread keeps its own sandboxed one (:func:`mlcase.sql.connect`).
    """
    from .sql import connect

    con = getattr(_local, "con", None)
    if con is None:
        con = connect()
        _local.con = con
    return con


def _run(sql: str, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    import duckdb

    con = _connection()
    try:
        con.register(TABLE, frame)
        return con.execute(sql).df()
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0].rstrip(". ")  # the fix follows after '; '
        raise RuleError(f"{where}: DuckDB cannot evaluate the expression: {msg}",
                        "fix the expression (types must match the columns: quote strings, compare numbers to numbers)") from None
    finally:
        try:
            con.unregister(TABLE)
        except duckdb.Error:
            _local.con = None  # a broken connection is replaced on the next call


def rule_from_spec(expression: str, columns: list[str], where: str, kind: str = "boolean") -> Rule:
    return Rule(expression=expression, columns=list(columns), kind=kind, where=where)


def cost_values(value, df: pd.DataFrame, where: str) -> np.ndarray:
    """Per-row cost: a number broadcast to every row, or a numeric SQL expression over the row."""
    if value is None:
        return np.zeros(len(df))
    if isinstance(value, (int, float)):
        return np.full(len(df), float(value))
    rule = Rule(expression=str(value), columns=list(df.columns), kind="numeric", where=where)
    v = rule.evaluate(df)
    if np.isnan(v).any():
        n = int(np.isnan(v).sum())
        raise RuleError(f"{where}: the cost expression {value!r} is NULL on {n} rows",
                        "wrap it in coalesce(..., 0) or fill the missing values")
    return v


def needs_target(expression: str, target: str) -> bool:
    """Whether an assumption check reads the target (then it runs in monitoring only once labels arrive)."""
    try:
        return target in validate_expression(expression, [target, *_all_idents(expression)], aggregate=True)
    except RuleError:
        return False


def _all_idents(expression: str) -> list[str]:
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression)


def validate_spec_expressions(case, frame: pd.DataFrame, features: list[str], sample_rows: int = 200) -> None:
    """Check every SQL expression of the spec against the data before any stage writes anything.

    Rule baselines (over the features, as the bake-off and the serving fallback use them), per-row
    costs (over all columns) and assumption checks (aggregates over all columns, which must give
    true or false) are parsed, guarded, and run by DuckDB on the first ``sample_rows`` rows, so a
    type error surfaces here as a :class:`~mlcase.errors.RuleError` naming the spec field.
    """
    from .errors import SpecError
    from .spec import RuleBaseline

    spec = case.spec
    columns = [str(c) for c in frame.columns]
    head = frame.head(sample_rows)
    for i, b in enumerate(spec.baselines):
        if not isinstance(b, RuleBaseline):
            continue
        where = f"baselines[{i}].rule"
        if spec.task == "ranking":  # an ORDER BY clause over the features (mlcase.rankers.RuleRanker)
            from .rankers import RuleRanker

            RuleRanker(b.rule, list(features)).fit(head).predict(head)
            continue
        if spec.task == "multiclass":
            raise SpecError(f"{where}: rule baselines decide positive/negative, and this case is multiclass",
                            "remove the rule baseline or make the task binary")
        used = validate_expression(b.rule, columns, where)
        not_features = [c for c in used if c not in features]
        if not_features:
            raise RuleError(f"{where}: unknown column{'s' if len(not_features) > 1 else ''} "
                            f"{', '.join(repr(c) for c in not_features)} in {b.rule!r}: not among the model's "
                            "features (the target, id, time, group, sensitive and excluded columns are not)",
                            "write the rule over feature columns only: it is also served as a fallback", columns=not_features)
        Rule(b.rule, list(features), kind="boolean" if spec.task == "binary" else "numeric", where=where).evaluate(head)
    for name in ("true_positive", "false_positive", "false_negative", "true_negative", "under", "over",
                 "relevant_item"):
        value = getattr(spec.costs, name)
        if isinstance(value, str):
            Rule(value, columns, kind="numeric", where=f"costs.{name}").evaluate(head)
    for i, a in enumerate(spec.assumptions):
        if not a.check:
            continue
        where = f"assumptions[{i}].check"
        value = Rule(a.check, columns, kind="aggregate", where=where).check(head)
        if value is not None and not isinstance(value, bool):
            raise RuleError(f"{where}: the check returned {value!r}, not true or false",
                            "write a comparison, e.g. avg(CASE WHEN churn = 'Yes' THEN 1 ELSE 0 END) < 0.4")
