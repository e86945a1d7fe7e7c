"""Target leakage (one feature predicts the target almost perfectly) and proxies of sensitive columns."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd

from .context import Context, Skip
from .registry import register
from .report import Check
from .stats import _fmt_score, _predictiveness, _target, values_are_codes
from .thresholds import (
    IDENTITY_R2,
    LEAK_ERROR,
    LEAK_MIN_MINORITY,
    LEAK_PERFECT_MIN_MINORITY,
    LEAK_WARN,
    PROXY_AUC,
    PROXY_R2,
)


@register("leakage", ids=("target_leakage",), order=50)
def check_leakage(ctx: Context) -> list[Check]:
    y = ctx.ds.y[ctx.train_sample]
    kind = ctx.ds.task
    target = _target(y, kind=kind)
    scores: dict[str, float] = {}
    metric = "r2" if kind == "regression" else "auc"
    lookups: dict[str, dict] = {}
    for c in ctx.features:
        values, codes = ctx.encoded(c)
        score, metric = _predictiveness(values, codes, ctx.fold, target)
        scores[c] = score
        if values is None or values_are_codes(np.unique(values[~np.isnan(values)])):  # a code per value
            found = lookup(codes, y)
            if found is not None:
                lookups[c] = found
    ctx.stats["one_feature"] = {"metric": metric, "rows": int(len(y)),
                                "scores": dict(sorted(((k, v) for k, v in scores.items() if v == v),
                                                      key=lambda kv: -kv[1]))}
    minority = None
    if kind != "regression":
        minority = int(pd.Series(y).value_counts().min()) if len(y) else 0
    out = []
    for c, score in scores.items():
        if not score == score or score < LEAK_WARN or (c in lookups and score < LEAK_ERROR):
            continue  # below the bar, or a lookup that says more (below)
        sev = "error" if score >= LEAK_ERROR else "warning"
        perfect = metric == "auc" and score >= 1.0 and minority is not None and minority >= LEAK_PERFECT_MIN_MINORITY
        if sev == "error" and minority is not None and minority < LEAK_MIN_MINORITY and not perfect:
            sev = "warning"  # with a handful of positives a near-perfect AUC is weak evidence; a perfect one is not
        what = "almost perfectly" if score >= LEAK_ERROR else "very strongly"
        out.append(Check("target_leakage", sev,
                         f"'{c}' alone predicts the target {what} (one-feature {_fmt_score(score, metric)})",
                         column=c, evidence={"score": score, "metric": metric, "rows": int(len(y)),
                                             "rarer_class_rows": minority,
                                             "threshold": LEAK_ERROR if score >= LEAK_ERROR else LEAK_WARN},
                         fix=f"check whether '{c}' is only known after the outcome; if so add it to "
                             "data.unavailable_at_serving (or data.features.exclude). If it is truly known at "
                             "decision time, a simple rule on it may be all the case needs"))
    for c, found in lookups.items():
        if scores[c] == scores[c] and scores[c] >= LEAK_ERROR:
            continue  # said above
        sev = "error" if found["share"] >= LEAK_ERROR else "warning"
        if sev == "error" and minority is not None and minority < LEAK_MIN_MINORITY:
            sev = "warning"
        out.append(Check("target_leakage", sev,
                         f"'{c}' determines the target: {found['pure']:,} of its {found['levels']:,} repeated values "
                         f"each have one target value ({found['share']:.1%} of the {found['rows']:,} training rows "
                         f"in them; chance alone would give {found['chance']:.1%})",
                         column=c, evidence={**found, "metric": "lookup", "score": found["share"],
                                             "one_feature": scores[c] if scores[c] == scores[c] else None,
                                             "threshold": LEAK_ERROR if sev == "error" else LEAK_WARN},
                         fix=f"check whether the target is a relabelling of '{c}' (a code and its name, a lookup "
                             "in another table) or is only known with it after the outcome; if so add it to "
                             "data.unavailable_at_serving (or data.features.exclude). If it is truly known at "
                             "decision time, the lookup table may be all the case needs"))
    return out


LOOKUP_MIN_COVER = 0.5    # the rows in repeated values of a column are at least this share of the rows
LOOKUP_MAX_CHANCE = 0.25  # ... and chance alone would make at most this share of them one-valued
LOOKUP_TOP_VALUES = 256   # the target's commonest values that the chance is summed over
# ... unless every repeated value is one-valued past any chance: at least LEAK_ERROR of the rows, this many standard
# deviations above what chance gives (about 3e-7 one-sided). openintro::kobe_basket's play-by-play `description`
# ("Kobe Bryant makes 4-foot two point shot") has 30 repeated texts, every one of them a make or a miss only; pairs
# of a near-even binary target are one-valued half the time, so the chance (0.30) passed the cap, and the case went
# GO on 27 test shots
LOOKUP_MIN_Z = 5.0


def lookup(codes: np.ndarray, y) -> dict | None:
    """How far one column's values fix the target, or None where they do not say.

    The share of training rows, among those whose value of the column repeats, whose target is
    the only one their value has; and the share the target's own frequencies would give by
    chance (a value seen m times is one-valued with probability sum_v p_v^m). The one-feature
    scores above are out-of-fold, so a value seen in one fold only is scored at the overall
    mean: nycflights13::airports' ``tz`` (the UTC offset) is one value per ``tzone`` name, yet
    ``tzone`` scored an out-of-fold R^2 of 0.941, under the warning, because two airports in
    Chongqing (+8 hours among American -5 to -10) and two in Vancouver were seen in one fold.
    A value seen once says nothing and is left out.
    """
    y = pd.Series(np.asarray(y)).astype(str)   # one target value: equal as the labels read
    frame = pd.DataFrame({"code": codes, "y": y.to_numpy()})
    sizes = frame.groupby("code", sort=False)["y"].agg(["size", "nunique", "first"])
    repeated = sizes[sizes["size"] >= 2]
    rows = int(repeated["size"].sum())
    if len(y) == 0 or rows < LOOKUP_MIN_COVER * len(y) or len(repeated) < 2:
        return None
    one = repeated[repeated["nunique"] == 1]
    if one["first"].nunique() < 2:
        return None   # one value of the target in all of them: a constant, not a lookup
    p = y.value_counts(normalize=True).to_numpy()[:LOOKUP_TOP_VALUES]   # the rest add at most their p^2
    m = repeated["size"].to_numpy()
    q = (p[None, :] ** m[:, None]).sum(axis=1)      # the chance that a value seen m times is one-valued
    chance = float((m * q).sum() / rows)
    share = float(one["size"].sum() / rows)
    # the one-valued rows against chance's: mean sum(m q), variance sum(m^2 q (1 - q)), the values independent
    z = (share * rows - chance * rows) / max(float(np.sqrt((m * m * q * (1 - q)).sum())), 1e-12)
    if share < LEAK_WARN or (chance > LOOKUP_MAX_CHANCE and not (share >= LEAK_ERROR and z >= LOOKUP_MIN_Z)):
        return None
    return {"share": share, "chance": chance, "rows": rows, "levels": int(len(repeated)), "pure": int(len(one)),
            "z": round(float(z), 2)}



IDENTITY_MAX_COLUMNS = 300   # wider tables skip the identity check (its least squares grows with the columns)


@register("identity", ids=("target_identity",), order=51)
def check_identity(ctx: Context) -> list[Check]:
    """A target that several features give exactly: a linear formula (regression), a pair's values (classes).

    causaldata::nhefs's ``wt82_71`` is ``wt82 - wt71``: no one column predicts it (the
    one-feature check saw nothing), ridge regression found the formula, and the case went GO
    with a test R^2 of 1.000. An accounting identity (a total and its parts, a difference of two
    readings) is known only when its parts are, which is rarely at decision time. A product or a
    ratio is a linear formula of the logarithms: openintro::mlbbat10's ``bat_avg`` is ``hit /
    at_bat``, fitted on the rows where the target and those columns are positive. For a class
    target see :func:`_class_identity`.
    """
    if ctx.ds.task in ("binary", "multiclass"):
        return _class_identity(ctx)
    if ctx.ds.task != "regression":
        raise Skip("the identity check is for regression and class targets")
    cols = [c for c in ctx.features if ctx.encoded(c)[0] is not None]
    categories = [c for c in ctx.features if ctx.encoded(c)[0] is None]
    if not cols or len(cols) + len(categories) < 2 or len(cols) > IDENTITY_MAX_COLUMNS:
        raise Skip(f"{len(cols)} numeric features (1 to {IDENTITY_MAX_COLUMNS}, and another feature, are checked)")
    raw = np.column_stack([ctx.encoded(c)[0] for c in cols])
    y = np.asarray(ctx.ds.y[ctx.train_sample], dtype="float64")
    ok = np.isfinite(y)
    raw, y, fold = np.where(np.isfinite(raw[ok]), raw[ok], np.nan), y[ok], ctx.fold[ok]
    with warnings.catch_warnings():                  # a column missing in every row has no median
        warnings.simplefilter("ignore", RuntimeWarning)
        X = np.where(np.isnan(raw), np.nanmedian(raw, axis=0), raw)   # a missing value: the column's median
    X = np.nan_to_num(X, nan=0.0)
    with _few_blas_threads(X):
        found = _identity_with_levels(X, y, fold, cols, _factors(ctx, categories, ok))
    if found is None:
        raise Skip("too few rows or varying numeric columns for a linear fit")
    r2, names, broken = found
    ctx.stats["identity"] = {"r2": r2, "rows": int(len(y)), "columns": len(cols), "broken": broken}
    if r2 >= IDENTITY_R2:
        if len(names) == 1:
            return []  # one column alone: the one-feature check (target_leakage) reports it
        listed = ", ".join(f"'{c}'" for c in names)
        return [Check("target_identity", "error",
                      f"a linear formula of {listed} gives the target almost exactly (out-of-fold R^2 {r2:.4f}"
                      f"{_broken(broken, len(y))})",
                      column=names[0], evidence={"r2": r2, "columns": names, "rows": int(len(y)),
                                                 "broken_rows": broken, "threshold": IDENTITY_R2},
                      fix=f"check whether the target is computed from {listed} (a total and its parts, a "
                          "difference of two readings); if a part is only known after the outcome, add it to "
                          "data.unavailable_at_serving (or data.features.exclude)")]
    # a product or a ratio (a rate, a share, an average per unit) is a linear formula of the logs, on the
    # rows where the target and the columns it is made of are positive
    pos = y > 0
    share = np.mean(np.nan_to_num(raw[pos], nan=0.0) > 0, axis=0) if pos.any() else np.zeros(len(cols))
    use = share >= IDENTITY_POSITIVE_SHARE
    rows = pos & np.all(np.nan_to_num(raw[:, use], nan=0.0) > 0, axis=1)
    # a column with few values enters as a factor per value (its dummies): quantreg::uis's `FRAC` is `LEN.T`
    # over the planned stay, 90 days or 180 by `TREAT` (0 or 1), and the case went GO with a test R^2 of 1.000
    factors = _factors(ctx, categories + [c for c, u in zip(cols, use, strict=True) if not u], ok)
    if use.sum() < 1 or use.sum() + len(factors) < 2:
        return []
    log_cols = [c for c, u in zip(cols, use, strict=True) if u]
    with _few_blas_threads(X):
        found = _identity_with_levels(np.log(raw[rows][:, use]), np.log(y[rows]), fold[rows], log_cols,
                                      [(c, codes[rows]) for c, codes in factors])
    if found is None:
        return []
    r2, names, broken = found
    ctx.stats["identity"].update({"log_r2": r2, "log_rows": int(rows.sum()), "log_broken": broken})
    if r2 < IDENTITY_R2 or len(names) < 2:
        return []  # one column: a power of it, a monotone transform the one-feature check reports
    listed = ", ".join(f"'{c}'" for c in names)
    logged = [c for c in names if c in log_cols]
    return [Check("target_identity", "error",
                  f"a product or ratio of {listed} gives the target almost exactly (out-of-fold R^2 {r2:.4f} of "
                  f"its logarithm, on the {int(rows.sum()):,} rows where "
                  + (f"it and {', '.join(repr(c) for c in logged)} are" if logged else "it is") + " positive"
                  f"{_broken(broken, int(rows.sum()))})",
                  column=names[0], evidence={"log_r2": r2, "columns": names, "rows": int(rows.sum()),
                                             "broken_rows": broken, "threshold": IDENTITY_R2},
                  fix=f"check whether the target is computed from {listed} (a rate, a share, an average per "
                      "unit); if a part is only known after the outcome, add it to data.unavailable_at_serving "
                      "(or data.features.exclude)")]


#: least squares smaller than this (rows x columns^2, about 0.1 s on one core) run on one BLAS thread
IDENTITY_THREADED_SIZE = 2e8


def _few_blas_threads(X: np.ndarray):
    """One BLAS thread for the identity's least squares where they are small.

    OpenBLAS's threads wait for each other at every call; on a machine where other work holds the CPUs they wait
    for a CPU too. modeldata::ames (1,875 rows x 33 columns, 6 cross-validated fits and their trimmed refits) took
    6.2 s in this check on 2 BLAS threads with other processes running (load 4 on 2 cores) and 0.57 s on one; the
    whole data-check stage 16.5 s against 4.6 s. A larger fit keeps the threads it can use.
    """
    if X.shape[0] * X.shape[1] ** 2 >= IDENTITY_THREADED_SIZE:
        return contextlib.nullcontext()
    import sklearn.linear_model  # noqa: F401 - loads scipy's BLAS first: only libraries loaded are limited
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _broken(broken: int, n: int) -> str:
    return (f"; it holds on all but the {broken:,} of {n:,} rows furthest from it, typos or rows computed "
            "otherwise") if broken else ""


IDENTITY_POSITIVE_SHARE = 0.9   # a column positive on this share of the rows with a positive target enters the logs
IDENTITY_MAX_FACTOR_LEVELS = 6  # a column with at most this many values (missing one of them) enters as dummies


def _identity_with_levels(X: np.ndarray, y: np.ndarray, fold: np.ndarray, cols: list[str],
                          factors: list[tuple[str, np.ndarray]]):
    """:func:`_linear_identity` of the columns, and where it falls short, of the columns and a term per value of
    the few-valued ones (their dummies, as a category enters a linear model): the better of the two.

    A formula the columns give is named by them alone, as before (DAAG::carprice's ``Max.Price - Min.Price``,
    not the rounded copy that a fit with five ``Type`` dummies ranked first). Only the
    :data:`IDENTITY_MAX_FACTORS` factors whose values explain most of what the columns leave enter, and only
    where a fit with them in sample reaches :data:`IDENTITY_FACTOR_GATE`: dummies of 40 five-valued columns beside
    50 numbers on 64,000 rows made the check 7 times slower (15 s to 105 s) for nothing. A formula with
    dummies must hold on every row: their terms leave a smooth trend little to miss once the rows furthest
    from it are set aside (Ecdat::USGDPpresidents' ``Year`` from population, prices and the source of the
    unemployment figures reached 0.9991 of its logarithm with 6 of 144 rows set aside).
    """
    from sklearn.linear_model import LinearRegression

    found = _linear_identity(X, y, fold, cols)
    if (found is not None and found[0] >= IDENTITY_R2) or not factors or len(y) < IDENTITY_MIN_ROWS or y.std() == 0:
        return found
    Z, _ = _standardised(X)
    rest = y - LinearRegression().fit(Z, y).predict(Z)

    def explained(codes: np.ndarray) -> float:   # between-value share of the rest's sum of squares
        _, inv = np.unique(codes, return_inverse=True)
        means = np.bincount(inv, rest) / np.bincount(inv)
        return float(np.sum(means[inv] ** 2) / max(np.sum(rest ** 2), 1e-300))

    top = sorted(factors, key=lambda f: -explained(f[1]))[:IDENTITY_MAX_FACTORS]
    dummies, names = [], []
    for name, codes in top:
        present = np.unique(codes)
        dummies.append((codes[:, None] == present[None, 1:]).astype("float64"))
        names += [name] * (len(present) - 1)
    W = np.column_stack([Z, *dummies])
    if LinearRegression().fit(W, y).score(W, y) < IDENTITY_FACTOR_GATE:
        return found
    more = _linear_identity(np.column_stack([X, *dummies]), y, fold, cols + names, trim=False)
    if found is None or (more is not None and more[0] > found[0]):
        return more
    return found


IDENTITY_MAX_FACTORS = 3      # few-valued columns that may enter a formula as a term per value
IDENTITY_FACTOR_GATE = 0.9    # in-sample R^2 with them below this: no formula (a broken one, poxetc's, fits 0.97)


def _factors(ctx: Context, columns: list[str], ok: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``(name, codes on the training rows where ok)`` of the columns with 2 to IDENTITY_MAX_FACTOR_LEVELS values
    (missing one of them); a number's codes are its values, not its bins."""
    out = []
    for c in columns:
        values, codes = ctx.encoded(c)
        if values is not None and not values_are_codes(np.unique(values[np.isfinite(values)])):
            continue
        codes = codes[ok]
        if 2 <= len(np.unique(codes)) <= IDENTITY_MAX_FACTOR_LEVELS:
            out.append((c, codes))
    return out


IDENTITY_TRIM = 0.10        # at most this share of rows may break an identity (typos, corrections)
# an exact formula is checked from 20 training rows: out of fold, R^2 0.999 on 20 rows is no accident
# (openintro::textbooks' `diff` is `ucla_new - amaz_new` to 1e-14 on 46 training rows, and went GO under a floor
# of 50); trimming rows that break it, which a small sample could fit by chance, from 50
IDENTITY_MIN_ROWS = 20
IDENTITY_TRIM_MIN_ROWS = 50
IDENTITY_TRIM_STEP = 0.02   # set aside this share of the rows furthest from the fit at each step


def _standardised(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(the varying columns standardised, which columns vary)``: a date in ns would swamp the rest."""
    sd = X.std(axis=0) if len(X) else np.zeros(X.shape[1])
    keep = sd > 0
    return (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep], keep


def _linear_identity(X: np.ndarray, y: np.ndarray, fold: np.ndarray, cols: list[str], trim: bool = True):
    """``(out-of-fold R^2 of a linear fit, the fewest columns that give R^2 >= IDENTITY_R2 in sample, rows that
    break it)``, or None when there are too few rows or varying columns to fit.

    A formula that holds on all but a few rows is an identity with a few typos: DAAG::poxetc's ``fpox2all``
    is ``fpox`` per 1,000 of ``all`` on 219 of its 220 rows, and one ratio written 15.32 for 153.2 pulled the
    fit's R^2 to 0.970; DAAG::whoops' ``ratio`` is whooping-cough deaths per 1,000 deaths on 127 of its 142
    years (others have a shifted decimal: 2.82 for 28.2); stevedata::anes_partytherms' ``therm_bmp`` is the
    mean of ``therm_dem`` and ``therm_gop`` but on a few rows. All three went GO. Where the fit falls short,
    the :data:`IDENTITY_TRIM_STEP` share of rows furthest from it out of fold is set aside and the fit judged
    again on the rest, up to :data:`IDENTITY_TRIM` of the rows (iterated trimmed least squares): an identity
    with typos becomes exact, while a relation with noise everywhere gains little (trimming the largest 10%
    of normal residuals leaves about 60% of their variance).
    """
    X, keep = _standardised(X)
    cols = [c for c, k in zip(cols, keep, strict=True) if k]
    if len(cols) < 2 or len(y) < max(IDENTITY_MIN_ROWS, 3 * len(cols)) or y.std() == 0 or len(np.unique(fold)) < 2:
        return None
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    n = len(y)
    held = np.ones(n, dtype=bool)
    pred = cross_val_predict(LinearRegression(), X, y, cv=PredefinedSplit(fold))
    r2 = first = float(r2_score(y, pred))
    step = max(1, int(round(IDENTITY_TRIM_STEP * n)))
    while r2 < IDENTITY_R2:
        if not trim:
            return first, [], 0
        k = min(step, int(IDENTITY_TRIM * n) - int((~held).sum()))
        idx = np.flatnonzero(held)
        if k <= 0:
            return first, [], 0
        held[idx[np.argsort(-np.abs(y[idx] - pred))[:k]]] = False
        if held.sum() < max(IDENTITY_TRIM_MIN_ROWS, 3 * len(cols)) or len(np.unique(fold[held])) < 2 or y[held].std() == 0:
            return first, [], 0
        pred = cross_val_predict(LinearRegression(), X[held], y[held], cv=PredefinedSplit(fold[held]))
        r2 = float(r2_score(y[held], pred))
    broken = int((~held).sum())
    X, y = X[held], y[held]
    # the fewest columns, by the size of their standardised coefficients, that give the formula (a column with
    # dummies enters with all of them)
    order = np.argsort(-np.abs(LinearRegression().fit(X, y).coef_))
    ranked = list(dict.fromkeys(cols[j] for j in order))
    names: list[str] = []
    for k in range(1, min(len(ranked), 8) + 1):
        names = ranked[:k]
        use = np.isin(cols, names)
        if LinearRegression().fit(X[:, use], y).score(X[:, use], y) >= IDENTITY_R2:
            break
    return r2, names, broken


IDENTITY_MAX_LEVELS = 64     # a column with more codes than this is not paired (its pairs only memorise)
IDENTITY_MAX_PAIRED = 40     # the columns that best predict the class alone are paired, at most this many
IDENTITY_MAX_MAJORITY = 0.98  # a target with a class this common is too easy to call a pair an identity


def _class_identity(ctx: Context) -> list[Check]:
    """A class target that the values of two features give exactly, out of fold.

    Ecdat::Kakadu's ``answer`` (yy, ny, nn: the answers to two bids) is coded from ``lower`` and
    ``upper``, the bounds those answers put on the willingness to pay: upper 999 is yy, lower 0 is
    nn, anything else ny. Neither column alone predicts it (one-feature AUC under 0.9), LightGBM
    found the pair, and the case went GO with a test accuracy of 1.000. Each pair of low-cardinality
    columns (their codes: categories, or a number's values or quantile bins) is read as a lookup
    table fitted on the other folds; a pair that gets at least ``IDENTITY_R2`` of the held-out rows
    right, where neither column does alone, is an error. Counting a (pair, class) table is a few
    milliseconds per pair, so the 40 best single columns (780 pairs) are checked.
    """
    yc, classes = pd.factorize(pd.Series(ctx.ds.y[ctx.train_sample]).astype(str))
    n, k = len(yc), len(classes)
    fold = ctx.fold
    if n < 100 or k < 2 or np.bincount(yc).max() / n > IDENTITY_MAX_MAJORITY or len(np.unique(fold)) < 2:
        raise Skip("too few rows, or one class too common, to call a pair of columns an identity")

    n_folds = int(fold.max()) + 1

    def oof_accuracy(combo: np.ndarray, levels: int) -> float:
        """Held-out rows a (value -> class) table of the other folds gets right: one count per fold, value, class."""
        held = np.bincount((fold * levels + combo) * k + yc, minlength=n_folds * levels * k)
        held = held.reshape(n_folds, levels, k)
        fit = held.sum(axis=0, keepdims=True) - held          # each fold's table from the other folds
        guess = fit.argmax(axis=2)
        seen = fit.sum(axis=2) > 0
        right = np.take_along_axis(held, guess[..., None], axis=2)[..., 0]
        return float(right[seen].sum()) / n

    single = {}
    for c in ctx.features:
        codes = ctx.encoded(c)[1]
        levels = int(codes.max()) + 1 if len(codes) else 0
        if 2 <= levels <= IDENTITY_MAX_LEVELS:
            single[c] = (oof_accuracy(codes, levels), codes, levels)
    cols = sorted((c for c, v in single.items() if v[0] < IDENTITY_R2), key=lambda c: -single[c][0])
    cols = cols[:IDENTITY_MAX_PAIRED]
    best = (0.0, None, None)
    for i, a in enumerate(cols):
        _, ca, la = single[a]
        for b in cols[i + 1:]:
            _, cb, lb = single[b]
            acc = oof_accuracy(ca * lb + cb, la * lb)
            if acc > best[0]:
                best = (acc, a, b)
    ctx.stats["identity"] = {"pair_accuracy": best[0], "pair": [best[1], best[2]], "rows": int(n),
                             "columns": len(cols)}
    acc, a, b = best
    if a is None or acc < IDENTITY_R2:
        return _class_rule(ctx, cols, single, yc, fold)
    return [Check("target_identity", "error",
                  f"the values of '{a}' and '{b}' together give the class almost exactly (out-of-fold accuracy "
                  f"{acc:.4f}; alone {single[a][0]:.3f} and {single[b][0]:.3f})",
                  column=a, evidence={"accuracy": acc, "columns": [a, b], "rows": int(n), "threshold": IDENTITY_R2,
                                      "alone": {a: single[a][0], b: single[b][0]}},
                  fix=f"check whether the target is coded from '{a}' and '{b}'; if one is only known after the "
                      "outcome, add it to data.unavailable_at_serving (or data.features.exclude). If the class "
                      "truly is a rule on them at decision time, write it as a rule baseline (baselines: - rule: ...)")]


RULE_DEPTH = 3               # a class rule: a decision tree this deep (up to 8 leaves) on the best single columns


def _class_rule(ctx: Context, cols: list[str], single: dict, yc: np.ndarray, fold: np.ndarray) -> list[Check]:
    """A class target that a shallow rule on a few features gives exactly, out of fold.

    mosaicData::HELPfull's ``HOMELESS`` is "a night in a shelter or on the street in the last six months":
    ``A15A > 0 or A15B > 0``. Neither column alone gives it (one-feature AUC 0.90 and 0.84); a lookup table on
    their 33 x 33 quantile bins leaves most held-out cells unseen (out-of-fold accuracy 0.921), so the pair
    check passed, LightGBM found the rule, and the case went GO at a test AUC of 1.000. A decision tree of depth
    ``RULE_DEPTH`` on the same best single columns (numbers as they are, missing values kept, categories as
    codes) writes such thresholds down; fitted on the other folds it gets at least ``IDENTITY_R2`` of the
    held-out rows right only where the class is coded from the columns its splits name. Three fits of one
    small tree: milliseconds beside the pair check.
    """
    from sklearn.tree import DecisionTreeClassifier

    if len(cols) < 2:
        return []
    X = np.column_stack([v if v is not None else c.astype("float64")
                         for v, c in (ctx.encoded(name) for name in cols)])
    guess = np.empty(len(yc), dtype=yc.dtype)
    with warnings.catch_warnings():
        # "y could represent a regression problem": scikit-learn's word on classes as many as rows
        # (ggplot2::luv_colours' colour names), printed to the user's terminal; the class_balance check says it
        warnings.simplefilter("ignore", UserWarning)
        for f in np.unique(fold):
            tree = DecisionTreeClassifier(max_depth=RULE_DEPTH, random_state=0).fit(X[fold != f], yc[fold != f])
            guess[fold == f] = tree.predict(X[fold == f])
        tree = DecisionTreeClassifier(max_depth=RULE_DEPTH, random_state=0).fit(X, yc)
    acc = float((guess == yc).mean())
    used = [cols[j] for j in dict.fromkeys(int(i) for i in tree.tree_.feature if i >= 0)]
    ctx.stats["identity"].update(rule_accuracy=acc, rule_columns=used)
    one = (ctx.stats.get("one_feature") or {}).get("scores", {})
    if acc < IDENTITY_R2 or len(used) < 2 or all(one.get(c, 0) >= LEAK_ERROR for c in used):
        return []          # no rule; or one column, which the one-feature check reports
    listed = ", ".join(f"'{c}'" for c in used)
    alone = ", ".join(f"{single[c][0]:.3f}" for c in used)
    return [Check("target_identity", "error",
                  f"a rule on {listed} (a decision tree of depth {RULE_DEPTH}) gives the class almost exactly "
                  f"(out-of-fold accuracy {acc:.4f}; each alone {alone})",
                  column=used[0], evidence={"accuracy": acc, "columns": used, "rows": int(len(yc)),
                                            "threshold": IDENTITY_R2, "depth": RULE_DEPTH,
                                            "alone": {c: single[c][0] for c in used}},
                  fix=f"check whether the target is coded from {listed}; if one is only known after the outcome, "
                      "add it to data.unavailable_at_serving (or data.features.exclude). If the class truly is a "
                      "rule on them at decision time, write it as a rule baseline (baselines: - rule: ...)")]


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
                                 # '{s}' is sensitive, so it is already evaluated as groups: "add it to slices" sent
                                 # the owner to do what the run does
                                 fix=f"read the outcomes across '{s}' in the report's slices and fairness; exclude or "
                                     f"coarsen '{c}' (data.features.exclude) if the decision must not depend on '{s}'"))
    ctx.stats["proxies"] = {s: dict(sorted(v.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else 0))[:10])
                            for s, v in found.items()}
    return out

