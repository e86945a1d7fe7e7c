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


@register("target_balance", ids=("class_balance", "target_constant"), order=30)
def check_target_balance(ctx: Context) -> list[Check]:
    ds = ctx.ds
    target = ctx.spec.data.target
    y = ds.y[ctx.train]
    if ds.task in ("regression", "ranking"):  # ranking: the gain per row
        std = float(np.std(y)) if len(y) else 0.0
        if std == 0:
            return [Check("target_constant", "error",
                          f"target '{target}' has one value ({y[0] if len(y) else 'none'}) in every training row",
                          column=target, evidence={"rows": int(len(y)), "std": std},
                          fix="check the target column and the data filter; there is nothing to predict")]
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
    if n_rare < MIN_CLASS_ROWS:
        return [Check("class_balance", "error",
                      f"only {n_rare} training row{'s' if n_rare != 1 else ''} of class '{rare}' ({share:.2%} of {n:,}); "
                      f"too few to learn from (at least {MIN_CLASS_ROWS} are needed)",
                      column=target, evidence=evidence,
                      fix=f"collect more labelled rows of '{rare}', widen the time window, "
                          "or merge it with a related class")]
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

