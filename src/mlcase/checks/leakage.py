"""Target leakage (one feature predicts the target almost perfectly) and proxies of sensitive columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .context import Context, Skip
from .registry import register
from .report import Check
from .stats import _fmt_score, _predictiveness, _target
from .thresholds import IDENTITY_R2, LEAK_ERROR, LEAK_MIN_MINORITY, LEAK_WARN, PROXY_AUC, PROXY_R2


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



IDENTITY_MAX_COLUMNS = 300   # wider tables skip the identity check (its least squares grows with the columns)


@register("identity", ids=("target_identity",), order=51)
def check_identity(ctx: Context) -> list[Check]:
    """A regression target that a linear formula of several numeric features gives exactly.

    causaldata::nhefs's ``wt82_71`` is ``wt82 - wt71``: no one column predicts it (the
    one-feature check saw nothing), ridge regression found the formula, and the case went GO
    with a test R^2 of 1.000. An accounting identity (a total and its parts, a difference of two
    readings) is known only when its parts are, which is rarely at decision time.
    """
    if ctx.ds.task != "regression":
        raise Skip("the identity check is for regression targets")
    cols = [c for c in ctx.features if ctx.encoded(c)[0] is not None]
    if len(cols) < 2 or len(cols) > IDENTITY_MAX_COLUMNS:
        raise Skip(f"{len(cols)} numeric features (2 to {IDENTITY_MAX_COLUMNS} are checked)")
    X = np.column_stack([ctx.encoded(c)[0] for c in cols])
    y = np.asarray(ctx.ds.y[ctx.train_sample], dtype="float64")
    ok = np.isfinite(y)
    X, y, fold = X[ok], y[ok], ctx.fold[ok]
    X = np.where(np.isfinite(X), X, np.nan)
    with warnings.catch_warnings():                  # a column missing in every row has no median
        warnings.simplefilter("ignore", RuntimeWarning)
        X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)   # a missing value: the column's median
    X = np.nan_to_num(X, nan=0.0)
    sd = X.std(axis=0)
    keep = sd > 0
    cols = [c for c, k in zip(cols, keep, strict=True) if k]
    X = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]   # standardised: a date in ns would swamp the rest
    if len(cols) < 2 or len(y) < max(50, 3 * len(cols)) or y.std() == 0 or len(np.unique(fold)) < 2:
        raise Skip("too few rows or varying numeric columns for a linear fit")
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    r2 = float(r2_score(y, cross_val_predict(LinearRegression(), X, y, cv=PredefinedSplit(fold))))
    ctx.stats["identity"] = {"r2": r2, "rows": int(len(y)), "columns": len(cols)}
    if r2 < IDENTITY_R2:
        return []
    # the fewest columns, by the size of their standardised coefficients, that give the formula
    order = np.argsort(-np.abs(LinearRegression().fit(X, y).coef_))
    names: list[str] = []
    for k in range(1, min(len(cols), 8) + 1):
        names = [cols[j] for j in order[:k]]
        if LinearRegression().fit(X[:, order[:k]], y).score(X[:, order[:k]], y) >= IDENTITY_R2:
            break
    if len(names) == 1:
        return []  # one column alone: the one-feature check (target_leakage) reports it
    listed = ", ".join(f"'{c}'" for c in names)
    return [Check("target_identity", "error",
                  f"a linear formula of {listed} gives the target almost exactly (out-of-fold R^2 {r2:.4f})",
                  column=names[0], evidence={"r2": r2, "columns": names, "rows": int(len(y)),
                                             "threshold": IDENTITY_R2},
                  fix=f"check whether the target is computed from {listed} (a total and its parts, a "
                      "difference of two readings); if a part is only known after the outcome, add it to "
                      "data.unavailable_at_serving (or data.features.exclude)")]


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

