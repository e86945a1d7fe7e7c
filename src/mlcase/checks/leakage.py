"""Target leakage (one feature predicts the target almost perfectly) and proxies of sensitive columns."""

from __future__ import annotations

import pandas as pd

from .context import Context, Skip
from .registry import register
from .report import Check
from .stats import _fmt_score, _predictiveness, _target
from .thresholds import LEAK_ERROR, LEAK_MIN_MINORITY, LEAK_WARN, PROXY_AUC, PROXY_R2


@register("leakage", ids=("target_leakage",), order=50)
def check_leakage(ctx: Context) -> list[Check]:
    y = ctx.ds.y[ctx.train_sample]
    kind = ctx.ds.task
    target = _target(y, kind=kind)
    scores: dict[str, float] = {}
    metric = "r2" if kind == "regression" else "auc"
    for c in ctx.features:
        values, codes = ctx.encoded(c)
        score, metric = _predictiveness(values, codes, ctx.fold, target)
        scores[c] = score
    ctx.stats["one_feature"] = {"metric": metric, "rows": int(len(y)),
                                "scores": dict(sorted(((k, v) for k, v in scores.items() if v == v),
                                                      key=lambda kv: -kv[1]))}
    minority = None
    if kind != "regression":
        minority = int(pd.Series(y).value_counts().min()) if len(y) else 0
    out = []
    for c, score in scores.items():
        if not score == score or score < LEAK_WARN:
            continue
        sev = "error" if score >= LEAK_ERROR else "warning"
        if sev == "error" and minority is not None and minority < LEAK_MIN_MINORITY:
            sev = "warning"  # with a handful of positives a near-perfect AUC is weak evidence
        what = "almost perfectly" if score >= LEAK_ERROR else "very strongly"
        out.append(Check("target_leakage", sev,
                         f"'{c}' alone predicts the target {what} (one-feature {_fmt_score(score, metric)})",
                         column=c, evidence={"score": score, "metric": metric, "rows": int(len(y)),
                                             "rarer_class_rows": minority,
                                             "threshold": LEAK_ERROR if score >= LEAK_ERROR else LEAK_WARN},
                         fix=f"check whether '{c}' is only known after the outcome; if so add it to "
                             "data.unavailable_at_serving (or data.features.exclude). If it is truly known at "
                             "decision time, a simple rule on it may be all the case needs"))
    return out



@register("proxies", ids=("proxy",), order=150)
def check_proxies(ctx: Context) -> list[Check]:
    if not ctx.spec.sensitive:
        raise Skip("no sensitive columns in the spec")
    out = []
    found: dict[str, dict[str, float]] = {}
    for s in ctx.spec.sensitive:
        vals = ctx.column(s, ctx.train_sample)
        mask = vals.notna().to_numpy()
        if vals[mask].nunique() < 2:
            continue
        target = _target(vals[mask].to_numpy())
        found[s] = {}
        for c in ctx.features:
            values, codes = ctx.encoded(c)
            # binned and categorical encodings only: no per-feature sort of the raw values
            score, metric = _predictiveness(None, codes[mask], ctx.fold[mask], target)
            found[s][c] = score
            limit = PROXY_R2 if metric == "r2" else PROXY_AUC
            if score == score and score >= limit:
                out.append(Check("proxy", "warning",
                                 f"'{c}' predicts the sensitive column '{s}' on its own ({_fmt_score(score, metric)}): "
                                 "a possible proxy", column=c,
                                 evidence={"sensitive": s, "score": score, "metric": metric, "threshold": limit,
                                           "rows": int(mask.sum())},
                                 fix=f"compare outcomes across '{s}' (add it to slices) and consider dropping or "
                                     f"coarsening '{c}' if the decision must not depend on '{s}'"))
    ctx.stats["proxies"] = {s: dict(sorted(v.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else 0))[:10])
                            for s, v in found.items()}
    return out

