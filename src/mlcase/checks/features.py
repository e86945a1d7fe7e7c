"""Checks of the feature columns: the spec's feature list, constant, missing, high-cardinality,
identifier-like, entity-key and mixed-type columns."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from ..formats import shown
from ..sql import identifier
from .context import Context
from .registry import register
from .report import Check
from .stats import _examples
from .thresholds import HIGH_CARDINALITY, HIGH_MISSING, NEAR_CONSTANT_SHARE


@register("feature_list", ids=("unavailable_at_serving", "sensitive_feature", "reserved_in_include"), order=40)
def check_feature_list(ctx: Context) -> list[Check]:
    d = ctx.spec.data
    out: list[Check] = []
    unavailable = set(d.unavailable_at_serving)
    for c in ctx.features:
        if c in unavailable:
            out.append(Check(
                "unavailable_at_serving", "error",
                f"'{c}' is listed in data.unavailable_at_serving but is still a feature (data.features.include names it)",
                column=c, evidence={"listed_in": "data.unavailable_at_serving", "used_by": "data.features.include"},
                fix=f"remove '{c}' from data.features.include (serving will not have it), or from "
                    "data.unavailable_at_serving if it is in fact known when the decision is made"))
    for c in ctx.features:
        if c in ctx.spec.sensitive:
            out.append(Check("sensitive_feature", "error", f"sensitive column '{c}' is used as a feature",
                             column=c, evidence={"sensitive": ctx.spec.sensitive},
                             fix=f"remove '{c}' from the features; sensitive columns are only for fairness slices"))
    reserved = {"data.target": d.target, "data.id": d.id, "data.time": d.time, "data.group": d.group,
                "data.label_time": d.label_time}
    for c in d.features.include or []:
        role = [k for k, v in reserved.items() if v == c] or (["sensitive"] if c in ctx.spec.sensitive else [])
        if role:
            out.append(Check("reserved_in_include", "warning",
                             f"data.features.include lists '{c}', which is {role[0]}; it is not used as a feature",
                             column=c, evidence={"role": role[0]},
                             fix=f"remove '{c}' from data.features.include"))
    return out


@register("constant", ids=("constant_column", "near_constant_column"), order=80)
def check_constant(ctx: Context) -> list[Check]:
    out: list[Check] = []
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        if info.n_unique <= 1:
            value = None if info.n_unique == 0 else ctx.frame[c].dropna().iloc[0]
            what = "is empty" if info.n_unique == 0 else f"has one value ({shown(value)}) in every row"
            out.append(Check("constant_column", "warning", f"feature '{c}' {what}", column=c,
                             evidence={"distinct": info.n_unique, "missing_share": info.missing_rate},
                             fix=f"add '{c}' to data.features.exclude; a column that never changes cannot help"))
            continue
        s = ctx.column(c, ctx.all_sample).dropna()
        if len(s) == 0:
            continue
        top = s.value_counts()
        share = float(top.iloc[0]) / len(s)
        if share >= NEAR_CONSTANT_SHARE:
            out.append(Check("near_constant_column", "warning",
                             f"feature '{c}' is {shown(top.index[0])} in {share:.2%} of rows", column=c,
                             evidence={"top_value": str(top.index[0]), "top_share": share, "distinct": info.n_unique,
                                       "rows": int(len(s))},
                             fix=f"exclude '{c}' (data.features.exclude) unless its rare values matter; "
                                 "it carries little information"))
    return out


@register("missingness", ids=("high_missingness",), order=90)
def check_missingness(ctx: Context) -> list[Check]:
    out = []
    for c in ctx.features:
        rate = ctx.ds.schema.columns[c].missing_rate
        if HIGH_MISSING <= rate < 1:
            out.append(Check("high_missingness", "warning", f"feature '{c}' is missing in {rate:.1%} of rows",
                             column=c, evidence={"missing_share": rate, "rows": int(len(ctx.frame))},
                             fix=f"find out why '{c}' is missing (is it recorded later, or only for some rows?); "
                                 "exclude it or keep it knowing the models see missingness as a signal"))
    return out


@register("cardinality", ids=("high_cardinality",), order=100)
def check_cardinality(ctx: Context) -> list[Check]:
    out = []
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        if info.kind in ("categorical", "text") and info.n_unique > HIGH_CARDINALITY:
            kind = "free text" if info.kind == "text" else "categorical"
            out.append(Check("high_cardinality", "warning",
                             f"{kind} feature '{c}' has {info.n_unique:,} distinct values", column=c,
                             evidence={"distinct": info.n_unique, "kind": info.kind,
                                       "distinct_share": info.n_unique / max(len(ctx.frame), 1)},
                             fix=f"group rare values of '{c}' (e.g. in the data.source SQL), extract what matters "
                                 "from it, or exclude it; most values are seen too rarely to learn from"))
    return out


@register("id_like", ids=("id_like_feature",), order=110)
def check_id_like(ctx: Context) -> list[Check]:
    out = []
    n = len(ctx.frame)
    for c in ctx.features:
        info = ctx.ds.schema.columns[c]
        s = ctx.frame[c]
        # an integer with a distinct value per row that only grows down the table is a row number
        row_number = (info.kind in ("numeric", "id") and pd.api.types.is_integer_dtype(s) and n > 50
                      and info.n_unique >= 0.99 * n and s.is_monotonic_increasing)
        if info.kind == "id" or row_number:
            what = "a row number" if row_number else "an identifier"
            out.append(Check("id_like_feature", "warning",
                             f"feature '{c}' looks like {what} ({info.n_unique:,} distinct values in {n:,} rows)",
                             column=c, evidence={"distinct": info.n_unique, "rows": int(n),
                                                 "increasing_with_row_order": bool(row_number)},
                             fix=f"set data.id: {c} (or exclude it); a model can only memorise identifiers, "
                                 "and their order can leak when they were assigned"))
    return out


@register("entity_key", ids=("entity_key_feature", "panel_split"), order=115)
def check_entity_key(ctx: Context) -> list[Check]:
    """A feature named like an identifier whose values repeat: the key of an entity with several rows.

    Panel and repeated-measures tables (a household's purchases, a person's years) keep one key per
    entity. Split at random, an entity's rows fall on both sides, and a model that learns the key (or
    anything that singles the entity out) is scored on entities it has already seen: the test
    measures known entities, not new ones. scikit-learn's answer is GroupKFold; here it is
    ``data.group`` with ``split.method: group``. On Ecdat::Catsup (300 households, 9 purchases
    each) the drafted random split put the lift over the linear baseline at $0.156 per decision;
    with the households kept apart it is $0.060.
    """
    from ..data import entity_key, panel_keys

    if ctx.spec.split.method in ("group", "group_time", "time") or ctx.spec.data.group:
        return []
    out = []
    panel = panel_keys(ctx.frame[ctx.features], exclude=())
    if panel is not None:
        e, t = panel
        n_e, n_t = int(ctx.frame[e].nunique()), int(ctx.frame[t].nunique())
        out.append(Check("panel_split", "warning",
                         f"each row is one '{e}' in one '{t}' ({n_e:,} values of '{e}' over {n_t:,} of '{t}'): a "
                         f"random split fills each '{e}''s held-out rows from its other '{t}'s, so the test "
                         "measures interpolation, which a decision about the next period never gets",
                         column=e, evidence={"entity": e, "period": t, "entities": n_e, "periods": n_t,
                                             "split": ctx.spec.split.method},
                         fix=f"set data.time: {t} and split.method: time to score the next periods, or data.group: "
                             f"{e} and split.method: group to score new '{e}' values; accept the finding if the "
                             "decision fills gaps in the past"))
    for c in ctx.features:
        if panel is not None and c == panel[0]:
            continue                                    # the panel's warning names it
        found = entity_key(c, ctx.frame[c])
        if found is None:
            continue
        values, per = found
        out.append(Check("entity_key_feature", "warning",
                         f"feature '{c}' looks like the key of an entity with several rows ({values:,} values, "
                         f"{per:.1f} rows each): a random split puts one entity's rows in both training and test, "
                         "so the test measures entities the model has already seen",
                         column=c, evidence={"distinct": values, "rows_per_value": round(per, 2),
                                             "split": ctx.spec.split.method},
                         fix=f"set data.group: {c} and split.method: group to score new entities (the key then "
                             "stops being a feature), or accept the finding if every decision is about an entity "
                             "already in the data"))
    return out


@register("mixed_types", ids=("mixed_types",), order=120)
def check_mixed_types(ctx: Context) -> list[Check]:
    out = []
    for c in ctx.features:
        s = ctx.frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            continue
        counts = s.value_counts(dropna=True)
        total = int(counts.sum())
        if total == 0:
            continue
        if s.dtype == object:  # several Python types in one column (a frame passed in directly)
            kinds = pd.Series([_value_kind(v) for v in counts.index], index=counts.index)
            by_kind = counts.groupby(kinds.to_numpy()).sum().sort_values(ascending=False)
            if len(by_kind) > 1:
                main = by_kind.index[0]
                bad = counts[kinds.to_numpy() != main]
                out.append(_mixed(c, f"mostly {main} values, but {int(bad.sum()):,} rows hold other types",
                                  bad, total, {k: int(v) for k, v in by_kind.items()}, ctx.spec.data.source))
                continue
        parsed = pd.to_numeric(pd.Series(counts.index.astype(str)), errors="coerce").to_numpy()
        numeric_rows = int(counts.to_numpy()[~np.isnan(parsed)].sum())
        if 0.5 <= numeric_rows / total < 1:
            bad = counts[np.isnan(parsed)]
            out.append(_mixed(c, f"{numeric_rows / total:.1%} of values are numbers, {int(bad.sum()):,} rows are not",
                              bad, total, {"number": numeric_rows, "text": int(bad.sum())}, ctx.spec.data.source))
    return out


def _value_kind(v: Any) -> str:
    """``number`` for any int or float (1 and 2.5 are not mixed types), else the Python type's name."""
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, numbers.Number):
        return "number"
    return type(v).__name__


def _mixed(c: str, what: str, bad: pd.Series, total: int, kinds: dict, source: str) -> Check:
    from ..data import is_query, reader_sql

    examples = _examples(bad.index)
    name = identifier(c)
    # trim(): DuckDB 2.0.1 pushes a bare TRY_CAST of a CSV column into the reader, which then fails on the
    # first 'pending' ("CSV Error on Line: 5") instead of giving NULL
    cast = f"TRY_CAST(trim({name}) AS DOUBLE) AS {name}"
    # the query to paste: over the case's own file (it read 'file.csv'), or the change to make in its query
    # (read with mlcase's own CSV options, as the run reads it)
    example = (f"replace {name} by {cast} in data.source's query" if is_query(source) else
               f"SELECT * REPLACE ({cast}) FROM {reader_sql(source)}")
    return Check("mixed_types", "warning", f"column '{c}' mixes types: {what} (e.g. {', '.join(examples)})",
                 column=c, evidence={"kinds": kinds, "offending_rows": int(bad.sum()), "rows": total,
                                     "examples": [str(v) for v in list(bad.index)[:5]],
                                     "example_counts": [int(v) for v in bad.to_numpy()[:5]]},
                 fix=f"clean those values of '{c}' at the source, or cast in data.source (they become missing), "
                     f"e.g. {example}")

