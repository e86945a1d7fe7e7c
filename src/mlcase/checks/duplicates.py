"""Duplicate rows and duplicate ids (which make a test score look better than it is)."""

from __future__ import annotations

import pandas as pd

from .context import Context
from .registry import register
from .report import Check
from .stats import _row_hash
from .thresholds import DUPLICATE_WARN_SHARE


@register("duplicates", ids=("duplicate_rows", "duplicate_ids", "duplicate_items"), order=130)
def check_duplicates(ctx: Context) -> list[Check]:
    out: list[Check] = []
    d = ctx.spec.data
    frame = ctx.frame
    columns = [c for c in frame.columns if c != d.id]
    h = _row_hash(frame, columns)
    dup = int(pd.Series(h).duplicated().sum())
    fh = _row_hash(frame, ctx.features)
    test_seen = int(pd.Index(fh[ctx.test]).isin(fh[ctx.train]).sum()) if len(ctx.test) else 0
    share = dup / max(len(frame), 1)
    if dup:
        sev = "warning" if share >= DUPLICATE_WARN_SHARE else "info"
        grid = _combinations(frame, columns)
        forced = grid is not None and grid < len(frame)
        msg = f"{dup:,} rows ({share:.2%}) repeat another row in every column" + (f" but '{d.id}'" if d.id else "")
        fix = ("remove double-logged rows at the source (or DISTINCT in data.source); "
               "duplicates across train and test make the test score look better than it is")
        if forced:
            # the columns' values allow fewer combinations than there are rows: the rows must repeat (a table of
            # counts repeated into its cases, vcdExtra::Accident's 186,730 victims in 80 cells; a few coded answers)
            sev = "info"
            msg += (f": the columns allow at most {grid:,} combinations of values for {len(frame):,} rows, so rows "
                    "repeat wherever cases are alike")
            fix = ("nothing to do where each row is a case; if rows were logged twice, remove them at the source "
                   "(or DISTINCT in data.source)")
        out.append(Check("duplicate_rows", sev, msg,
                         evidence={"duplicates": dup, "share": share, "rows": int(len(frame)),
                                   "combinations": grid,
                                   "test_rows_with_features_seen_in_train": test_seen,
                                   "test_rows": int(len(ctx.test))},
                         fix=fix))
    if d.id:
        ids = frame[d.id]
        dup_ids = int(ids.duplicated().sum())
        if dup_ids:
            tr = pd.Index(ids.iloc[ctx.train].unique())
            across = int(tr.isin(ids.iloc[ctx.test].unique()).sum())
            split_note = ("" if ctx.spec.split.method == "group" and d.group == d.id
                          else f"; {across:,} ids are in both train and test")
            out.append(Check("duplicate_ids", "warning",
                             f"{dup_ids:,} rows repeat an id of '{d.id}' ({ids.nunique():,} distinct ids "
                             f"in {len(ids):,} rows){split_note}", column=d.id,
                             evidence={"duplicate_rows": dup_ids, "distinct_ids": int(ids.nunique()),
                                       "ids_in_train_and_test": across},
                             fix=f"keep one row per id, or set data.group: {d.id} and split.method: group "
                                 "so one entity never sits in both train and test"))
    out.extend(_duplicate_items(ctx))
    return out


def _combinations(frame: pd.DataFrame, columns: list) -> int | None:
    """How many combinations of values ``columns`` allow (the product of their distinct counts, missing counted
    as a value); None past 10^12."""
    total = 1
    for c in columns:
        total *= max(1, int(frame[c].nunique(dropna=False)))
        if total > 10 ** 12:
            return None
    return total


def _duplicate_items(ctx: Context) -> list[Check]:
    """A ranking list that holds one item twice (causaldata::restaurant_inspections: 61% of the rows repeat a
    business name within its year, the chains' outlets), so a served list showed "MCDONALD'S" at 1 and 2."""
    d = ctx.spec.data
    if ctx.spec.task != "ranking" or not d.item or not d.group or d.item not in ctx.frame or d.group not in ctx.frame:
        return []
    pairs = ctx.frame[[d.group, d.item]]
    rep = pairs.duplicated()
    n = int(rep.sum())
    if not n:
        return []
    lists = int(pairs[rep][d.group].nunique())
    share = n / max(len(pairs), 1)
    example = pairs[rep].iloc[0]
    target = d.target
    return [Check(
        "duplicate_items", "warning" if share >= DUPLICATE_WARN_SHARE else "info",
        f"{n:,} rows ({share:.2%}) repeat an item of '{d.item}' within their list of '{d.group}' ({lists:,} of "
        f"{pairs[d.group].nunique():,} lists; e.g. '{example[d.item]}' in {example[d.group]}): a served list "
        "shows such an item more than once, and NDCG counts it each time", column=d.item,
        evidence={"repeated_rows": n, "share": share, "lists_with_repeats": lists},
        fix=f"keep one row per ({d.group}, {d.item}), e.g. data.source: SELECT \"{d.group}\", \"{d.item}\", "
            f"avg(\"{target}\") AS \"{target}\", ... GROUP BY 1, 2; or point data.item at a column that is "
            "unique within each list")]

