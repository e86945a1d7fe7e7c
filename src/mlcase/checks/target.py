"""Checks of the target: rows without a label, class balance, a constant target."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .context import Context
from .registry import register
from .report import Check
from .thresholds import IMBALANCE_RATE, MIN_CLASS_ROWS


@register("target_missing", ids=("target_missing",), order=20)
def check_target_missing(ctx: Context) -> list[Check]:
    n = int(ctx.ds.excluded.get("missing_target", 0))
    if not n:
        return []
    target = ctx.spec.data.target
    total = len(ctx.frame) + n
    share = n / total
    return [Check("target_missing", "warning",
                  f"{n:,} of {total:,} rows ({share:.1%}) have no value in target '{target}'; they were dropped",
                  column=target, evidence={"rows": n, "rows_total": total, "share": share},
                  fix="fill the target where it is known; if those rows are too recent to have a label, "
                      "set data.label_delay so they are excluded on purpose")]


def drop_classes_query(classes: list[str], target: str, path: str) -> str:
    """A ``data.source`` query over the file at ``path`` without the rows of ``classes``.

    >>> print(drop_classes_query(["Pig", "Goat"], "species", "pets.csv"))
    SELECT * FROM 'pets.csv' WHERE "species" NOT IN ('Pig', 'Goat')
    """
    from ..sql import identifier, literal

    column = identifier(target)
    return f"SELECT * FROM {literal(path)} WHERE {column} NOT IN ({', '.join(literal(c) for c in classes)})"


def rare_classes_fix(classes: list[str], target: str, source: str, left: int | None = None,
                     numbers: tuple[float, float] | None = None) -> str:
    """How to go past classes too rare to learn: drop (or merge) them in the source, with the query to write
    (and, where ``left`` = 2 classes would remain, that the task then is binary); where the classes are whole
    numbers from ``numbers[0]`` to ``numbers[1]``, that a count or a scale is a regression target."""
    from ..data import is_query

    if is_query(source):
        query = drop_classes_query(classes, target, "...")
        example = "add " + query[query.index("WHERE"):] + " to data.source's query"
    else:
        example = f"data.source: {drop_classes_query(classes, target, str(source))}"
    binary = " (two classes then remain: set task: binary and data.positive)" if left == 2 else ""
    ordered = f"; or, {regression_hint(target, numbers)}" if numbers else ""
    return (f"drop their rows or merge them into a related class in the source, e.g. {example}{binary}{ordered}; "
            f"or collect more labelled rows of {'them' if len(classes) > 1 else 'it'}")


def regression_hint(target: str, numbers: tuple[float, float] | None = None) -> str:
    """That whole-number classes may be a count or a scale, a regression target (the finding's fix and the draft)."""
    span = f" ({numbers[0]:g} to {numbers[1]:g})" if numbers else ""
    return (f"if '{target}' is a count or an ordered scale{span}, set task: regression, which predicts a number and "
            "needs no rows of each value")


UNIQUE_TARGET_FIX = ("pick a column whose values repeat, the classes to predict; a number written as text must be "
                     "cleaned to numbers to be a regression target")


def unique_target_said(target: str, distinct: int, rows: int, where: str = "row") -> str:
    """That a class target has a value of its own in every row (ggplot2::luv_colours' 657 colour names): it names
    rows, and no class repeats to be learned (the draft refuses it; the class_balance check says the same of
    every ``where="training row"``)."""
    return (f"target '{target}' has a different value in every {where} ({distinct:,} values in {rows:,} rows): it "
            "names each row, and classes to predict must repeat")


def whole_numbers(labels) -> tuple[float, float] | None:
    """``(lowest, highest)`` where every class label reads as a whole number (a count, a scale), else None."""
    values = pd.to_numeric(pd.Series([str(v) for v in labels]), errors="coerce")
    if values.isna().any() or not (values % 1 == 0).all():
        return None
    return float(values.min()), float(values.max())


@register("target_balance", ids=("class_balance", "target_constant"), order=30)
def check_target_balance(ctx: Context) -> list[Check]:
    ds = ctx.ds
    target = ctx.spec.data.target
    y = ds.y[ctx.train]
    if ds.task in ("regression", "ranking"):  # ranking: the gain per row
        std = float(np.std(y)) if len(y) else 0.0
        rel = ds.relevance
        if std == 0 and ds.task == "ranking" and rel is not None and len(y) and y[0] == 0:
            # AER::MASchools' score4 (658 to 740) within expbil: "target 'score4' has one value (0.0)", the gain
            raw = pd.to_numeric(ctx.frame[target].iloc[ctx.train], errors="coerce")
            return [Check("target_constant", "error",
                          f"no training item of '{target}' reaches ranking.relevant_from {rel.threshold:g} (training "
                          f"rows {raw.min():g} to {raw.max():g}), so none is relevant and every order is worth the same",
                          column=target, evidence={"rows": int(len(y)), "std": std, "relevant_from": rel.threshold},
                          fix=f"set ranking.relevant_from to at most {raw.max():g}, or hold out fewer of the "
                              "relevant lists (a larger training part)")]
        if std == 0:
            return [Check("target_constant", "error",
                          f"target '{target}' has one value ({y[0] if len(y) else 'none'}) in every training row"
                          + (" (its gain)" if ds.task == "ranking" else ""),
                          column=target, evidence={"rows": int(len(y)), "std": std},
                          fix="check the target column and the data filter; there is nothing to predict")]
        group = ctx.spec.data.group
        if ds.task == "ranking" and rel is not None and group in ctx.frame.columns:
            from ..tasks.ranking import RankingCosts

            # what the decision counts: the money each item brings, relevant or not (nlme::Quinidine's Height
            # ranked by Subject, one height per patient; vcdExtra::Draft1970's day of the year by Month at
            # relevant_from 275, whole months relevant or not): no order of any list is worth more than another,
            # and the run stopped at the value ceiling ("a random order costs $0.00"), NO_GO
            rows = ctx.frame.iloc[ctx.train]
            value = RankingCosts(ctx.case, rows).value(y)
            lists = pd.Series(value).groupby(pd.factorize(rows[group].to_numpy())[0]).nunique()
            if len(lists) and lists.le(1).all():
                return [Check("target_constant", "error",
                              f"every item of each of the {len(lists):,} training lists is worth the same: at "
                              f"ranking.relevant_from {rel.threshold:g}, the items of each '{group}' are all "
                              f"relevant or none by '{target}', so no order of a list's items is worth more than "
                              "another",
                              column=target, evidence={"lists": int(len(lists)), "rows": int(len(y)),
                                                       "relevant_from": rel.threshold},
                              fix="set ranking.relevant_from so some list holds items on both sides of it, rank by "
                                  "a target that differs among the items of a list, or group by another column "
                                  "(data.group)")]
        return []
    if ds.task == "binary":
        labels = list(ds.classes)
        counts = {labels[0]: int((y == 0).sum()), labels[1]: int((y == 1).sum())}
    else:
        vc = pd.Series(y).value_counts()
        counts = {str(k): int(v) for k, v in vc.items()}
    n = int(len(y))
    rare, n_rare = min(counts.items(), key=lambda kv: kv[1])
    share = n_rare / n if n else 0.0
    evidence = {"rows": n, "counts": counts, "smallest_class": rare, "smallest_share": share}
    if ds.task == "binary":
        evidence.update(positive=ds.positive, positives=counts[labels[1]], positive_rate=counts[labels[1]] / n)
    if ds.task == "multiclass" and len(counts) == n > MIN_CLASS_ROWS:
        return [Check("class_balance", "error", unique_target_said(target, n, n, where="training row"),
                      column=target, evidence=evidence, fix=UNIQUE_TARGET_FIX)]
    if n_rare < MIN_CLASS_ROWS:
        few = [k for k, v in sorted(counts.items(), key=lambda kv: kv[1]) if v < MIN_CLASS_ROWS]
        evidence["too_few"] = {k: counts[k] for k in few}
        # a multiclass target with a class or a few too rare: the query that drops them; where all but one are
        # (MASS::Cars93's 60 training rows over 6 classes) the table is too small, and dropping is no remedy
        # a binary target cannot merge its rarer class away, and a random split has no time window to widen
        # (Stat2Data::YouthRisk2009: 19 training rows of 'Yes'): say how many labelled rows its rate needs
        labelled = sum(len(part) for part in (ds.split.train, ds.split.valid, ds.split.test))
        need = -(-MIN_CLASS_ROWS * labelled // n_rare) if n_rare else None
        more = (f"collect more labelled rows of '{rare}' (at its rate and this split, about {need:,} labelled rows in "
                f"all would give {MIN_CLASS_ROWS} in training; the case has {labelled:,})" if need else
                f"collect labelled rows of '{rare}'")
        more += ", or widen the time window" if ctx.spec.split.method == "time" else ""
        numbers = whole_numbers(counts) if ds.task == "multiclass" else None
        from .reading import merge_spelling, spaces_only, spelling_twins

        twins = spelling_twins(few, [c for c in counts if c not in few]) if ds.task == "multiclass" else {}
        if twins and len(twins) == len(few):   # medicaldata::opt: 'No' (1 row) is 'No ' (146) without its space
            pairs = ", ".join(f"'{r}' is '{t}'" for r, t in list(twins.items())[:3])
            fix = (f"{pairs} spelt another way: read them as one class, "
                   f"{merge_spelling(target, ctx.spec.data.source, all(spaces_only(p) for p in twins.items()))}")
        else:
            fix = None
        fix = fix or (rare_classes_fix(few, target, ctx.spec.data.source, len(counts) - len(few), numbers)
               if ds.task == "multiclass"
               and len(few) < len(counts) - 1 else
               more + (", or merge it with a related class" if ds.task == "multiclass" else "")
               + (f"; or, {regression_hint(target, numbers)}" if numbers else ""))
        return [Check("class_balance", "error",
                      f"only {n_rare} training row{'s' if n_rare != 1 else ''} of class '{rare}' ({share:.2%} of {n:,}); "
                      f"too few to learn from (at least {MIN_CLASS_ROWS} are needed)"
                      + (f"; {len(few)} classes have fewer than {MIN_CLASS_ROWS}" if len(few) > 1 else ""),
                      column=target, evidence=evidence, fix=fix)]
    limit = IMBALANCE_RATE if ds.task == "binary" else IMBALANCE_RATE * 2 / len(counts)
    if share < limit:
        what = (f"positive class '{ds.positive}' is {counts[labels[1]] / n:.2%} of training rows "
                f"({counts[labels[1]]:,} of {n:,})") if ds.task == "binary" and rare == labels[1] else (
                f"class '{rare}' is {share:.2%} of training rows ({n_rare:,} of {n:,})")
        return [Check("class_balance", "warning", f"heavy class imbalance: {what}", column=target,
                      evidence=evidence,
                      fix="judge models by money and precision/recall at the review capacity, not by accuracy "
                          "(mlcase picks the threshold from the costs); more rows of the rare class help most")]
    return []

