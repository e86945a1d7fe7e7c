"""Label timing: labels known before their features (a leak) and labels too young to be final."""

from __future__ import annotations

import math

import numpy as np

from ..data import immature_mask
from ..times import as_datetimes
from .context import Context, Skip
from .registry import register
from .report import Check
from .thresholds import LABEL_BEFORE_ERROR, MATURITY_DROP, MATURITY_Z


@register("label_time", ids=("label_before_features",), order=60)
def check_label_time(ctx: Context) -> list[Check]:
    d = ctx.spec.data
    if not d.label_time:
        raise Skip("no data.label_time column")
    if ctx.ds.time is None:
        raise Skip("data.label_time needs data.time (the time the features describe)")
    label_time = as_datetimes(ctx.frame[d.label_time])
    feat_time = ctx.ds.time
    ok = label_time.notna() & feat_time.notna()
    before = (label_time < feat_time) & ok
    n_before = int(before.sum())
    lag_days = ((label_time - feat_time)[ok].dt.total_seconds() / 86400).to_numpy()
    evidence = {"rows": int(ok.sum()), "label_before_features": n_before,
                "share": n_before / max(int(ok.sum()), 1),
                "unparsed_label_times": int((label_time.isna() & ctx.frame[d.label_time].notna()).sum())}
    if len(lag_days):
        evidence.update(lag_days_median=float(np.median(lag_days)), lag_days_p95=float(np.quantile(lag_days, 0.95)))
    if not n_before:
        return []
    share = evidence["share"]
    sev = "error" if share >= LABEL_BEFORE_ERROR else "warning"
    examples = ctx.frame.loc[before.to_numpy(), [d.time, d.label_time]].head(3)
    ex = "; ".join(f"{r[d.time]} -> {r[d.label_time]}" for _, r in examples.iterrows())
    evidence["examples"] = ex
    return [Check("label_before_features", sev,
                  f"{n_before:,} rows ({share:.1%}) have a label time ('{d.label_time}') before their feature time "
                  f"('{d.time}'), e.g. {ex}", column=d.label_time, evidence=evidence,
                  fix="the features of those rows were recorded after the outcome was known; rebuild them "
                      "as of a time before the label (a point-in-time snapshot), or drop those rows")]


@register("label_maturity", ids=("label_maturity",), order=70)
def check_label_maturity(ctx: Context) -> list[Check]:
    spec = ctx.spec
    delay = spec.data.label_delay
    if ctx.ds.time is None:
        if delay:
            return [Check("label_maturity", "warning",
                          "data.label_delay is set but data.time names no column, so immature rows cannot be found",
                          evidence={"label_delay_days": delay / 86400},
                          fix="set data.time to the column with each row's time")]
        raise Skip("no data.time column")
    if ctx.ds.task == "multiclass":
        raise Skip("a positive rate by age needs a binary or numeric target")
    test = np.zeros(len(ctx.frame), dtype=bool)
    test[ctx.test] = True
    keep = ~test & ctx.ds.time.notna().to_numpy()  # a row without a time has no age
    t = ctx.ds.time[keep]
    y = ctx.ds.y[keep].astype("float64")
    age = ((t.max() - t).dt.total_seconds()).to_numpy()
    if delay:
        recent = age < delay
        edges = [0.0, delay / 2, delay]
        k = 2
        while edges[-1] < age.max() and len(edges) < 9:
            edges.append(delay * k)
            k *= 2
        edges.append(np.inf)
    else:
        qs = np.unique(np.quantile(age, np.linspace(0, 1, 11))) if len(age) else np.array([])
        if len(qs) < 3:  # one or two distinct ages: no recent rows to set against older ones
            raise Skip("too few distinct times to compare recent labels with older ones")
        edges = [0.0, *qs[1:-1].tolist(), np.inf]
        recent = age < edges[1]
    table = []
    bucket = np.searchsorted(np.asarray(edges[1:-1]), age, side="right")
    for b in range(len(edges) - 1):
        m = bucket == b
        if m.any():
            table.append({"age_from_days": edges[b] / 86400,
                          "age_to_days": edges[b + 1] / 86400 if np.isfinite(edges[b + 1]) else None,
                          "rows": int(m.sum()), "rate": float(y[m].mean())})
    n_recent, n_old = int(recent.sum()), int((~recent).sum())
    what = "positive rate" if ctx.ds.task == "binary" else "mean target"
    excluded = int(ctx.ds.excluded.get("immature_label", 0))
    immature_n = int(immature_mask(ctx.ds.time, delay).sum()) if delay else 0
    evidence = {"label_delay_days": delay / 86400 if delay else None, "excluded": excluded,
                "immature_rows": immature_n, "include_immature": spec.data.include_immature,
                "rate_by_age": table, "measure": what}
    if n_recent == 0 or n_old == 0:
        if excluded:
            return [Check("label_maturity", "info",
                          f"{excluded:,} rows younger than the label delay were excluded from training, validation and test",
                          evidence=evidence)]
        return []
    r_new, r_old = float(y[recent].mean()), float(y[~recent].mean())
    if ctx.ds.task == "binary":
        p = (y.sum()) / len(y)
        se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n_recent + 1 / n_old))
    else:
        se = math.sqrt(np.var(y[recent]) / n_recent + np.var(y[~recent]) / n_old) or 1e-12
    z = (r_new - r_old) / se
    evidence.update(recent_rows=n_recent, recent_rate=r_new, mature_rate=r_old, z=z)
    dropped = r_old != 0 and (r_old - r_new) / abs(r_old) >= MATURITY_DROP and z <= -MATURITY_Z
    if dropped:
        if delay and not spec.data.include_immature:
            title = (f"the {what} of rows younger than the label delay ({delay / 86400:g} days) is {r_new:.3g} against "
                     f"{r_old:.3g} in older rows: their labels are not in yet; {excluded:,} such rows were excluded "
                     "from training, validation and test")
            fix = ("nothing to do if the delay is right; if the drop starts earlier than the delay, "
                   "lengthen data.label_delay")
        elif delay:
            title = (f"the {what} of rows younger than the label delay is {r_new:.3g} against {r_old:.3g}, and "
                     f"data.include_immature keeps {immature_n:,} of them in training")
            fix = "set data.include_immature: false so unlabelled recent rows do not teach the model 'negative'"
        else:
            days = edges[1] / 86400
            title = (f"the {what} of the most recent rows (last {days:.3g} days) is {r_new:.3g} against {r_old:.3g} "
                     "before: recent labels may not be in yet")
            fix = f"if labels arrive late, set data.label_delay (e.g. '{max(1, math.ceil(days))}d') to exclude rows too young to have one"
        return [Check("label_maturity", "warning", title, column=spec.data.time, evidence=evidence, fix=fix)]
    if excluded:
        return [Check("label_maturity", "info",
                      f"{excluded:,} rows younger than the label delay were excluded from training, validation and test "
                      f"(recent {what} {r_new:.3g}, older {r_old:.3g})", column=spec.data.time, evidence=evidence)]
    return []

