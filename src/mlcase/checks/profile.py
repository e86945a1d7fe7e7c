"""Checks out of core: a source larger than memory is profiled by DuckDB with a memory limit.

When ``data.source`` is a Parquet file or a set of Parquet partitions (a glob such as
``'events/*/*.parquet'``, or a query over them) whose files take more than
``engine.memory_share`` of this machine's memory, ``mlcase check`` does not load it into
pandas: :func:`profile` reads every row in one DuckDB scan per group of columns, capped at
:data:`MEMORY_LIMIT` and spilling to a temporary folder past it (rows, missing share, distinct
values, range, mean, standard deviation and quantiles of numbers, the most frequent values of
text), and the row-level checks (leakage, duplicates, shift, label maturity ...) run on a
uniform sample of :data:`SAMPLE_ROWS` rows drawn by DuckDB's reservoir sampling under the same
cap. The SQL sandbox (:mod:`mlcase.sql`) applies as for any read of the source.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import pandas as pd

from ..case import Case
from ..scratch import scratch
from ..sql import identifier

MEMORY_LIMIT = "512MB"
SAMPLE_ROWS = 200_000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BATCH = 16               # columns per aggregate scan
TOP = 5


def _source_query(case: Case) -> str:
    """The source as a SELECT (a file path becomes ``SELECT * FROM reader(path)``)."""
    from ..data import reader_sql
    from ..sql import check_query

    src = str(case.spec.data.source).strip()
    if src.lower().startswith(("select", "with", "from")):
        return check_query(src, "data.source", case.root)
    path = Path(src) if Path(src).is_absolute() else case.root / src
    if any(ch in src for ch in "*?["):
        return f"SELECT * FROM read_parquet({_literal(str(path))}, union_by_name = true)"
    return f"SELECT * FROM {reader_sql(path)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_files(case: Case) -> list[Path]:
    """The Parquet files the source reads (a path, a glob, or the quoted paths of a query)."""
    import re

    src = str(case.spec.data.source)
    names = re.findall(r"'([^']+\.parquet)'", src) or ([src] if src.lower().endswith(".parquet") else [])
    out: list[Path] = []
    for n in names:
        p = n if Path(n).is_absolute() else str(case.root / n)
        out += [Path(f) for f in sorted(glob.glob(p))]
    return out


def source_bytes(case: Case) -> int:
    return sum(f.stat().st_size for f in source_files(case))


def is_large(case: Case, total_memory: int | None = None) -> bool:
    """True when the source is Parquet taking more than ``engine.memory_share`` of the memory."""
    from ..engine import larger_than_memory

    n = source_bytes(case)
    return n > 0 and larger_than_memory(n, case.spec.engine.memory_share, total_memory)


def _connect(case: Case, spill: str | Path, memory_limit: str):
    from ..sql import connect

    dirs = [case.root] + [Path(p) if Path(p).is_absolute() else case.root / p for p in case.spec.data.allowed_paths]
    return connect(dirs, (), memory_limit=memory_limit, spill=spill)


def profile(case: Case, memory_limit: str = MEMORY_LIMIT) -> dict:
    """Per-column statistics over every row of the source, computed by DuckDB under ``memory_limit``."""
    t0 = time.perf_counter()
    query = _source_query(case)
    with scratch(case, "profile-") as tmp:
        con = _connect(case, tmp, memory_limit)
        try:
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {query}").fetchall()}
            n = int(con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])
            cols: dict[str, dict] = {}
            names = list(types)
            for k in range(0, len(names), BATCH):
                cols.update(_profile_batch(con, query, names[k:k + BATCH], types, n))
        finally:
            con.close()
    return {"rows": n, "columns": cols, "memory_limit": memory_limit, "bytes": source_bytes(case),
            "seconds": round(time.perf_counter() - t0, 3)}


q = identifier


def _numeric_type(t: str) -> bool:
    t = t.upper()
    return any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC")) and "[]" not in t


def _profile_batch(con, query: str, names: list[str], types: dict, n: int) -> dict:
    aggs, plan = [], []
    for c in names:
        col = q(c)
        aggs += [f"count({col})", f"approx_count_distinct({col})"]
        if _numeric_type(types[c]):
            x = f"CAST({col} AS DOUBLE)"
            aggs += [f"min({x})", f"max({x})", f"avg({x})", f"stddev_samp({x})",
                     f"approx_quantile({x}, [{', '.join(map(str, QUANTILES))}])"]
            plan.append((c, "numeric"))
        else:
            aggs += [f"approx_top_k(CAST({col} AS VARCHAR), {TOP})"]
            plan.append((c, "text"))
    row = con.execute(f"SELECT {', '.join(aggs)} FROM ({query})").fetchall()[0]
    out, i = {}, 0
    for c, kind in plan:
        count, distinct = int(row[i]), int(row[i + 1])
        d = {"type": types[c], "missing": n - count, "missing_share": (n - count) / n if n else 0.0,
             "distinct": distinct}
        if kind == "numeric":
            lo, hi, mean, sd, qs = row[i + 2:i + 7]
            d.update(min=lo, max=hi, mean=mean, std=sd,
                     quantiles=dict(zip(map(str, QUANTILES), qs or [], strict=False)))
            i += 7
        else:
            d["top"] = list(row[i + 2] or [])
            i += 3
        out[c] = d
    return out


def sample_frame(case: Case, rows: int | None = None, memory_limit: str = MEMORY_LIMIT) -> pd.DataFrame:
    """A uniform sample of ``rows`` (:data:`SAMPLE_ROWS`) rows of the source (DuckDB reservoir sampling, seeded by
    ``split.seed``)."""
    from ..data import _normalise_frame

    rows = SAMPLE_ROWS if rows is None else rows
    query = _source_query(case)
    with scratch(case, "profile-") as tmp:
        con = _connect(case, tmp, memory_limit)
        try:
            df = con.execute(f"SELECT * FROM ({query}) USING SAMPLE reservoir({int(rows)} ROWS) "
                             f"REPEATABLE ({int(case.spec.split.seed)})").df()
        finally:
            con.close()
    src = str(case.spec.data.source).strip()
    path = Path(src) if Path(src).is_absolute() else case.root / src
    comma = None
    if path.suffix.lower() in (".csv", ".tsv") and path.is_file():   # '1,500' reads as the whole file does
        from functools import partial

        from ..data import comma_reading

        comma = partial(comma_reading, path)
    return _normalise_frame(df, comma=comma)


__all__ = ["profile", "sample_frame", "is_large", "source_bytes", "source_files", "MEMORY_LIMIT", "SAMPLE_ROWS"]
