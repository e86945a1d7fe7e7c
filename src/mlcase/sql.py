"""The one guard for every SQL a case holds: the ``data.source`` query, rules, costs, assumptions.

A ``case.yaml`` may be committed by anyone with write access to a repository, so its
SQL is untrusted input. Two shapes reach DuckDB, and both pass two guards:

1. **The text** is parsed before it runs. A query (``data.source``) must be exactly one
   read-only statement: DuckDB's own parser must see one ``SELECT`` statement and
   sqlglot a ``SELECT`` / ``UNION`` / ``WITH ... SELECT`` tree with no statement inside
   it (``COPY``, ``INSTALL``, ``LOAD``, ``ATTACH``, ``PRAGMA``, ``SET``, ``CALL``,
   ``EXPORT``, ``CREATE`` ...) and no function that runs SQL text or reads settings
   (``query()``, ``getenv()`` ...). An expression (rules, costs, assumption checks) must be
   one expression over known columns: no statement, ``;``, subquery, table or table
   function (:func:`check_expression`).
2. **The engine** runs it on a connection from :func:`connect`: ``enable_external_access``
   off, so no file, URL, extension or pandas frame is reachable except the folders and
   files given (``allowed_directories`` / ``allowed_paths``: the case folder and the
   paths ``data.allowed_paths`` declares); no extension is installed or loaded; no spill
   folder; and ``lock_configuration`` on, so the query cannot switch any of it back.

DuckDB checks a file's real path (after symbolic links) against the allowed folders,
so a link in the case folder that points elsewhere is refused too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import RuleError, SpecError

# functions that reach outside an expression or a query (files, settings, the catalog, SQL text)
_FORBIDDEN_FUNC = re.compile(
    r"^(read_.*|.*_scan|glob|query|query_table|getenv|current_setting|duckdb_.*|pragma_.*|"
    r"load|install|attach|copy|export|import|sniff_csv|json_execute_serialized_sql|"
    r"parquet_.*|iceberg_.*|delta_.*|sqlite_.*|postgres_.*|mysql_.*|httpfs_.*|"
    r"range|generate_series|unnest|which_secret|set_variable|getvariable)$", re.I)
# in a data.source query, table functions may read files; these never may run
_FORBIDDEN_IN_QUERY = re.compile(
    r"^(query|query_table|getenv|current_setting|set_variable|getvariable|json_execute_serialized_sql|"
    r"which_secret|duckdb_secrets|duckdb_settings|duckdb_extensions|load|install|attach|copy|export|import)$", re.I)
# DuckDB's CSV sniffer turns Yes/No into booleans; keep the file's own values
# header = true: the first row names the columns, as pandas reads a CSV. DuckDB's sniffer reads a first row whose
# types match the data's as data: Ecdat::nkill.byCountryYr's header (rownames, 1970 ... 2018: years, over counts)
# became a data row, the columns column00 to column49, and `init --target 2018` said "not a column".
# A query's FROM 'file.csv' reads with them too (:func:`_absolute_paths`)
CSV_OPTIONS = (", header = true, auto_type_candidates = ['BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'TIMESTAMPTZ', "
               "'VARCHAR']")
_CSV_TABLE = re.compile(r"\.(csv|tsv)(\.gz)?$", re.I)
# table functions whose string arguments are file paths (made absolute against the case folder)
_FILE_FUNC = re.compile(r"^(read_.*|.*_scan|glob|sniff_csv|parquet_.*)$", re.I)
AGGREGATES = {"avg", "mean", "sum", "count", "min", "max", "stddev", "stddev_samp", "stddev_pop",
              "variance", "var_samp", "var_pop", "median", "quantile", "quantile_cont", "quantile_disc",
              "mode", "count_if", "bool_and", "bool_or", "corr", "covar_pop", "covar_samp",
              "approx_count_distinct", "entropy", "kurtosis", "skewness", "first", "last", "any_value",
              "list", "string_agg", "arg_min", "arg_max", "product", "fsum", "favg", "sumkahan"}


# --------------------------------------------------------------------------- the engine
def literal(text: str) -> str:
    """``text`` as a SQL string literal.

    >>> print(literal("it's.csv"))
    'it''s.csv'
    """
    return "'" + str(text).replace("'", "''") + "'"


_lit = literal


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a column name with any character).

    >>> print(identifier('a"b c'))
    "a""b c"
    """
    return '"' + str(name).replace('"', '""') + '"'


def connect(directories: Iterable[str | Path] = (), files: Iterable[str | Path] = (),
            memory_limit: str | None = None, spill: str | Path | None = None):
    """An in-memory DuckDB connection locked down to read only ``directories`` and ``files``.

    With neither, nothing outside DuckDB's memory is reachable (what rules, costs and
    assumption checks run on: their rows are registered as a view, which is not an
    external access). The configuration is locked: no statement can undo it.
    ``memory_limit`` (``"512MB"``) caps DuckDB's memory; past it, it spills to the folder
    ``spill`` (a temporary folder mlcase made; none by default), so a query over data larger
    than memory still runs (out-of-core profiles).
    """
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "allow_community_extensions": False})
    try:
        # no spill folder unless mlcase gave one (the default .tmp/ would be writable)
        con.execute(f"SET temp_directory = {_lit(str(spill)) if spill else repr('')}")
        if memory_limit:
            con.execute(f"SET memory_limit = {_lit(memory_limit)}")
        dirs = sorted({_dir_entry(d) for d in directories for d in _variants(d)})
        paths = sorted({str(v) for f in files for v in _variants(f)})
        if dirs:
            con.execute(f"SET allowed_directories = [{', '.join(_lit(d) for d in dirs)}]")
        if paths:
            con.execute(f"SET allowed_paths = [{', '.join(_lit(p) for p in paths)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _variants(p: str | Path) -> set[str]:
    """A path as written (made absolute) and with its symbolic links resolved (DuckDB checks the latter)."""
    p = Path(p).absolute()
    return {os.path.normpath(p), os.path.normpath(p.resolve())}


def _dir_entry(d: str) -> str:
    return d.rstrip("/") + "/"


# --------------------------------------------------------------------------- queries
@contextlib.contextmanager
def _quiet_sqlglot():
    """sqlglot logs a warning for every statement it parses only as a generic command."""
    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def check_query(sql: str, where: str = "data.source", root: str | Path | None = None) -> str:
    """Refuse anything but one read-only ``SELECT``; return it with relative file paths made absolute.

    ``root`` is the folder relative paths in ``FROM 'data.csv'`` or ``read_csv('data/*.csv')``
    resolve against (the sandbox refuses relative paths, since it checks a path before the
    search path would resolve it). Raises :class:`~mlcase.errors.SpecError` naming ``where``.
    """
    import duckdb
    import sqlglot
    from sqlglot import exp

    fix = ("write one SELECT over files in the case folder, e.g. SELECT * FROM 'data.csv' WHERE "
           "signup >= '2024-01-01'")
    text = sql.strip()
    try:
        statements = duckdb.connect(":memory:").extract_statements(text)
    except duckdb.Error as exc:
        raise SpecError(f"{where}: not a valid DuckDB query ({str(exc).splitlines()[0][:160]})", fix) from None
    if len(statements) != 1:
        kinds = ", ".join(s.type.name for s in statements)
        raise SpecError(f"{where}: the query holds {len(statements)} statements ({kinds}); only one SELECT is allowed",
                        "remove the ';' and everything after it; " + fix)
    if statements[0].type != duckdb.StatementType.SELECT:
        raise SpecError(f"{where}: only a SELECT query is allowed, got a {statements[0].type.name} statement", fix)
    try:
        with _quiet_sqlglot():
            trees = [t for t in sqlglot.parse(text, dialect="duckdb") if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        first = str(exc).splitlines()[0][:160]
        raise SpecError(f"{where}: the query cannot be checked ({first})", fix) from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        raise SpecError(f"{where}: only a single SELECT (or UNION / WITH ... SELECT) is allowed", fix)
    tree = trees[0]
    for node in tree.walk():
        if isinstance(node, (exp.DDL, exp.DML, exp.Command, exp.Set, exp.Pragma, exp.Use, exp.Transaction,
                             exp.Commit, exp.Rollback, exp.Attach, exp.Detach, exp.Install, exp.Export,
                             exp.Describe, exp.Summarize, exp.LoadData, exp.Alter)):
            raise SpecError(f"{where}: a {type(node).__name__.upper()} inside the query is not allowed", fix)
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if _FORBIDDEN_IN_QUERY.match(name):
                raise SpecError(f"{where}: the function {name}() is not allowed in data.source",
                                "read files with read_csv / read_parquet or FROM 'file'; " + fix)
    return _absolute_paths(text, tree, root, where) if root is not None else text


def _absolute_paths(text: str, tree, root: str | Path, where: str) -> str:
    """``text`` with every relative file path of a ``FROM 'file'`` or a file-reading function made absolute."""
    from sqlglot import exp

    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    spans: list[tuple[int, int, str]] = []

    def add(node, value: str, csv_table: bool = False) -> None:
        if "://" in value:
            raise SpecError(f"{where}: the query reads a URL ({value.split('://', 1)[0]}://...)",
                            "data.source may read only files in the case folder or in data.allowed_paths")
        meta = node.meta or {}
        start, end = meta.get("start"), meta.get("end")
        if start is None or end is None or (Path(value).is_absolute() and not csv_table):
            return
        quote = text[start]
        if quote not in "'\"" or text[end] != quote:
            return
        absolute = os.path.normpath(Path(root).absolute() / value)
        if csv_table:
            # FROM 'file.csv' reads as mlcase reads the file itself (CSV_OPTIONS): DuckDB's own sniffer read
            # datasets::Titanic's Survived (No/Yes) as booleans behind a query, and data.positive 'Yes' was
            # "not a value of target 'Survived' (values: False, True)"
            spans.append((start, end, f"read_csv_auto('{absolute.replace(chr(39), chr(39) * 2)}'{CSV_OPTIONS})"))
            return
        spans.append((start, end, quote + absolute.replace(quote, quote * 2) + quote))

    for table in tree.find_all(exp.Table):
        ident = table.this
        if isinstance(ident, exp.Identifier) and ident.quoted and not table.db and (
                ident.name.lower() not in ctes) and re.search(r"[./*]", ident.name):
            add(ident, ident.name, csv_table=bool(_CSV_TABLE.search(ident.name)))
    for func in tree.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if not _FILE_FUNC.match(name):
            continue
        args = ([func.this] if isinstance(func.this, exp.Expression) else []) + list(func.expressions)
        first = args[0] if args else None
        items = first.expressions if isinstance(first, exp.Array) else [first]
        for lit in items:
            if isinstance(lit, exp.Literal) and lit.is_string:
                add(lit, lit.this)
    out = text
    for start, end, repl in sorted(spans, reverse=True):
        out = out[:start] + repl + out[end + 1:]
    return out


def run_query(sql: str, root: str | Path, allowed: Iterable[str | Path] = (), where: str = "data.source"):
    """Check ``sql`` (:func:`check_query`) and run it in the sandbox; return a pandas DataFrame.

    Files may be read under ``root`` and the folders or files of ``allowed``. A query that
    reaches anything else fails with a one-line :class:`~mlcase.errors.DataError` that names
    the file it tried, never anything read from it.
    """
    import duckdb

    from .errors import DataError

    query = check_query(sql, where, root)
    dirs, files = [Path(root)], []
    for p in allowed:
        p = Path(p) if Path(p).is_absolute() else Path(root) / p
        (files if p.is_file() else dirs).append(p)
    con = connect(dirs, files)
    try:
        return con.execute(query).df()
    except duckdb.PermissionException as exc:
        target = re.search(r'"([^"]*)"', str(exc))
        raise DataError(f"{where}: the query may read files only in the case folder {root}"
                        + (" and data.allowed_paths" if allowed else "")
                        + (f"; it tried {target.group(1)}" if target else f" ({str(exc).splitlines()[0][:120]})"),
                        "move the file into the case folder, or declare its folder in data.allowed_paths") from None
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        raise DataError(f"{where}: the SQL query failed: {msg}",
                        "check the file names and columns in the query (paths are relative to the case folder)") from None
    finally:
        con.close()


# --------------------------------------------------------------------------- expressions
def check_expression(expression: str, columns: list[str], where: str = "rule", aggregate: bool = False) -> list[str]:
    """Check that ``expression`` is one safe SQL expression over ``columns``; return the columns it uses.

    Raises :class:`~mlcase.errors.RuleError` for a statement, a ``;``, a subquery, a table
    or table function, a function that reaches outside the row (files, settings), an
    aggregate in a row rule (unless ``aggregate``), a window, or an unknown column.
    """
    import difflib

    import sqlglot
    from sqlglot import exp

    if not isinstance(expression, str) or not expression.strip():
        raise RuleError(f"{where}: the expression is empty", "write a SQL expression such as \"balance > 1800\"")
    text = expression.strip()
    if ";" in _strip_strings(text):
        raise RuleError(f"{where}: ';' is not allowed: {expression!r}",
                        "write one SQL expression, not statements")
    try:
        with _quiet_sqlglot():
            tree = sqlglot.parse_one(f"SELECT {text}", dialect="duckdb")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        first = str(exc).splitlines()[0][:160]
        raise RuleError(f"{where}: not a valid SQL expression: {expression!r} ({first})",
                        "write one SQL expression such as \"balance > 1800 AND student = 'Yes'\"") from None
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or any(
            tree.args.get(k) for k in ("from", "from_", "where", "group", "having", "joins", "limit", "with", "order")):
        raise RuleError(f"{where}: only a single expression is allowed, got {expression!r}",
                        "remove FROM/WHERE/commas; write one expression over the columns")
    body = tree.expressions[0]
    for node in body.walk():
        if isinstance(node, (exp.Select, exp.Subquery, exp.Union, exp.Query)) and node is not tree:
            raise RuleError(f"{where}: subqueries are not allowed: {expression!r}",
                            "write a single expression over the case's columns")
        if isinstance(node, (exp.Table, exp.Command, exp.Create, exp.Drop, exp.Insert, exp.Delete, exp.Update)):
            raise RuleError(f"{where}: statements and tables are not allowed: {expression!r}",
                            "write a single expression over the case's columns")
        if isinstance(node, exp.Func):
            fname = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if _FORBIDDEN_FUNC.match(fname) or fname.startswith("read"):
                raise RuleError(f"{where}: the function {fname}() is not allowed in an expression",
                                "use only functions of the row's columns (no files, settings or tables)")
            if not aggregate and (fname in AGGREGATES or isinstance(node, exp.AggFunc)):
                raise RuleError(f"{where}: aggregate {fname}() is not allowed in a row rule: {expression!r}",
                                "a rule decides each row on its own columns; aggregates belong in assumptions[].check")
        if isinstance(node, exp.Window):
            raise RuleError(f"{where}: window functions are not allowed: {expression!r}",
                            "write an expression over one row's columns")
    used: list[str] = []
    known = {c.lower(): c for c in columns}
    unknown: list[str] = []
    for col in body.find_all(exp.Column):
        name = col.name
        if col.table:
            unknown.append(col.sql())
            continue
        if name.lower() in known:
            if known[name.lower()] not in used:
                used.append(known[name.lower()])
        else:
            unknown.append(name)
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, columns, n=1)
            hints.append(f"'{u}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise RuleError(f"{where}: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(hints)} in {expression!r}",
                        "use the data's column names (quote text values with single quotes)", columns=unknown)
    return used


def _strip_strings(text: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", text)
