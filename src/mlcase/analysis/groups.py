"""Feature-group value: what each group of columns is worth, in money per decision.

Each group the spec names (``feature_groups: {bureau: [...], app: [...]}``), or each source
column when it names none, is left out in turn and the candidate's configuration is
cross-validated without it (:class:`~.refits.Refits`, the bake-off's folds and early
stopping). A group is worth what its absence costs: the mean over the out-of-fold rows of
``cost without it - cost with everything``, with a paired bootstrap 95% CI (the same rows
resampled for both; under a group split whole groups, as the slices' CIs). A positive worth with a CI above zero says the data source earns its
keep per decision; compare it with what the source costs per decision.

Groups are measured in order (the spec's order, or the columns by SHAP importance) until the
analysis's time share runs out; the rest are listed as not measured.
"""

from __future__ import annotations

import numpy as np

from ..evaluate.lift import group_codes
from .slices import mean_ci as _ci


def group_value(refits, groups: dict[str, list[str]], full_costs: np.ndarray, full_loss: np.ndarray,
                n_boot: int, seed: int, named: bool) -> dict:
    """Ablate each group (see the module); ``full_costs`` / ``full_loss`` are the per-row numbers with every column."""
    features = list(refits.X.columns)
    entries, not_measured = [], []
    for i, (name, cols) in enumerate(groups.items()):
        keep = [c for c in features if c not in set(cols)]
        if not keep:
            entries.append({"group": name, "columns": list(cols), "note": "every feature is in this group: "
                            "nothing is left to fit without it"})
            continue
        got = refits.oof(columns=keep)
        if got is None or got.get("truncated"):
            not_measured.append(name)
            continue
        costs = refits.row_costs(got["scores"])
        loss = refits.row_loss(got["scores"])
        worth = costs - full_costs
        worth_ci = _ci(worth, n_boot, seed + i, refits.groups)
        entries.append({"group": name, "columns": list(cols), "n_columns": len(cols),
                        "worth_per_decision": worth_ci,
                        "loss_without": float(loss.mean()), "loss_with": float(full_loss.mean()),
                        "loss_increase": _ci(loss - full_loss, n_boot, seed + i, refits.groups),
                        "pays": bool(worth_ci["ci_low"] > 0)})
    entries.sort(key=lambda e: -(e.get("worth_per_decision") or {}).get("estimate", -np.inf))
    resampled = ({} if refits.groups is None else
                 {"resampled": {"unit": "group", "column": refits.case.spec.data.group,
                                "n_groups": int(group_codes(refits.groups)[1])}})
    return {"groups": entries, "not_measured": not_measured, "named_in_spec": named,
            "n_rows": int(len(full_costs)), **resampled,
            "how": "each group left out in turn; worth = cost per decision without it - with every column"}


def groups_of(case, features: list[str], order: list[str] | None = None) -> tuple[dict[str, list[str]], bool]:
    """The spec's ``feature_groups`` (only the columns that are features), or one group per feature column."""
    named = case.spec.feature_groups
    if named:
        return {g: [c for c in cols if c in features] for g, cols in named.items()}, True
    ranked = [c for c in (order or []) if c in features]
    ranked += [c for c in features if c not in ranked]
    return {c: [c] for c in ranked}, False
