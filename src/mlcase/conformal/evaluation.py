"""Conformal sets and intervals judged on the test rows: coverage against its statistical bound,
set size or width, the deferral policy within the review capacity, and CQR beside the served method."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..numeric import histogram
from . import deferral as defer_rule
from .calibrate import (
    BOOSTED,
    CLASSIFICATION_METHODS,
    _mapie_classification_scores,
    calibrate,
    conformal_quantile,
)
from .sets import _class_index, _proba, intervals_from_scores, sets_from_scores


def evaluate_conformal(case, bundle, X_test: pd.DataFrame, y_test, rows_test: pd.DataFrame | None = None, *,
                       calibration: tuple | None = None, train: tuple | None = None, seed: int = 0,
                       calibration_scores=None, groups: tuple | None = None) -> dict:
    """Coverage, set size / width and the deferral policy on the test split.

    Parameters
    ----------
    case : Case
    bundle : ModelBundle
        Calibrated (``bundle.conformal`` set), or ``calibration`` given.
    X_test, y_test
        Test features and encoded target.
    rows_test : DataFrame, optional
        All columns of the test rows (for SQL cost expressions); defaults to ``X_test``.
    calibration : (X_valid, y_valid) or (X_valid, y_valid, scores), optional
        Calibrates the bundle when it is not calibrated yet, and lets the
        evaluation compare LAC with APS (classification); ``scores`` are the
        model's scores on those rows when they must not come from the model
        (:func:`mlcase.evaluate.valid_scores`).
    train : (X_train, y_train), optional
        Regression with a boosted model: fits quantile models for CQR
        (reported next to the absolute-residual intervals; not served).
    seed : int
    calibration_scores : array, optional
        The bundle's scores on the calibration rows (the pipeline passes
        :func:`mlcase.evaluate.valid_scores`); default ``bundle.scores`` of them.
    groups : (calibration groups, test groups), optional
        The entity of each calibration and test row under a group split: rows of one group are covered
        together, so the coverage band counts them by their design effect (:func:`group_design`).

    Returns
    -------
    dict
        ``method``, ``alpha``, ``target_coverage``, ``coverage``,
        ``coverage_bounds`` (the interval the theory allows, before sampling
        noise), ``mean_set_size`` or ``mean_width``, ``deferral`` (policy
        numbers: deferred and flagged counts, review load, capacity, error
        rates and costs of automated vs deferred decisions, combined vs
        model-only cost), ``methods`` (one row per conformal method compared),
        ``metrics`` (a flat dict to log to MLflow), ``assumptions``.
    """
    spec = case.spec.conformal
    if not bundle.conformal:
        if calibration is None:
            raise ModelError(f"model '{bundle.name}' has no conformal calibration",
                             "pass calibration=(X_valid, y_valid) or call calibrate first")
        calibrate(bundle, calibration[0], calibration[1], spec.alpha, spec.method, seed=seed,
                  scores=calibration_scores)
    conf = bundle.conformal
    rows_test = X_test if rows_test is None else rows_test
    y_test = np.asarray(y_test)
    n_cal, alpha = conf["n_calibration"], conf["alpha"]
    out = {
        "model": bundle.name,
        "task": bundle.task,
        "method": conf["method"],
        "alpha": alpha,
        "target_coverage": 1 - alpha,
        "n_calibration": n_cal,
        "n_test": int(len(y_test)),
        "quantile": conf.get("quantile"),
        "coverage_bounds": [1 - alpha, min(1.0, 1 - alpha + 1 / (n_cal + 1))],
        "coverage_sd": coverage_sd(n_cal, alpha, len(y_test)),
        "notes": list(conf.get("notes") or []),   # the calibration's: a method replaced, a raised or missing quantile
    }
    scores = bundle.scores(X_test)
    if bundle.task == "regression":
        out.update(_evaluate_regression(case, bundle, conf, scores, y_test, rows_test))
        covered = out.pop("_covered")
        out["methods"] = [_method_row("absolute", out["coverage"], width=out["mean_width"],
                                      wider=out["deferral"]["wider_than_limit_share"])]
        cqr = _cqr(case, bundle, X_test, y_test, calibration, train, alpha)
        if cqr is not None:
            out["methods"].append(cqr)
    else:
        out.update(_evaluate_classification(case, bundle, conf, scores, y_test, rows_test))
        covered = out.pop("_covered")
        out["methods"] = [_method_row(conf["method"], out["coverage"], size=out["mean_set_size"],
                                      singleton=out["singleton_share"])]
        if calibration is not None and bundle.task == "multiclass":
            out["methods"] += _other_methods(bundle, conf, scores, y_test, calibration, calibration_scores, seed)
    if case.spec.split.method == "time":
        out["assumptions"] = list(out.get("assumptions") or []) + [
            "coverage assumes calibration and new rows are exchangeable; with a time split, later rows may drift "
            "away from the calibration rows, so watch coverage over time"]
    elif case.spec.split.method == "group":
        out["assumptions"] = list(out.get("assumptions") or []) + [
            "coverage assumes calibration and new rows are exchangeable; with a group split, the test groups are "
            "new groups, exchangeable with the calibration groups only as whole groups, so coverage of a new "
            "group can differ from the target"]
        design = group_design(covered, groups[1], groups[0]) if groups is not None else None
        if design is not None:   # rows of one group are covered together: count them as the fewer rows they are worth
            out["coverage_design"] = design
            if design["groups_test"] < FEW_GROUPS:
                out["assumptions"].append(
                    f"the test rows come from only {design['groups_test']} groups, too few to judge the coverage of "
                    "a new group: its band is estimated from them and is wide, or too narrow where they happen to "
                    "be alike")
            out["coverage_sd"] = coverage_sd(design["n_calibration_effective"], alpha,
                                             design["n_test_effective"])
    distinct = len(np.unique(np.round(np.asarray(scores, dtype="float64").reshape(len(scores), -1), 12), axis=0))
    out.update(coverage_check(out, case.spec.split.method, refit_cut=bool((bundle.metrics or {}).get("refit_cut")),
                              refit=getattr(bundle, "oof_valid", None) is not None,
                              distinct=distinct if distinct <= max(20, 0.01 * len(scores)) else None))
    low = class_coverage_note(out)
    if low:
        out["class_coverage_note"] = low
    low = prediction_coverage_note(out)
    if low:
        out["prediction_coverage_note"] = low
    d = out["deferral"]
    out["metrics"] = {
        "conformal_coverage": out["coverage"],
        "conformal_target_coverage": 1 - alpha,
        ("conformal_mean_width" if bundle.task == "regression" else "conformal_mean_set_size"):
            out.get("mean_width", out.get("mean_set_size")),
        "conformal_deferred_share": d["deferred_share"],
        "conformal_review_load": d["review_load"],
        "conformal_cost_combined": d["cost_combined"],
        "conformal_cost_model_only": d["cost_model_only"],
    }
    return out


#: under a group split, fewer test groups than this make the coverage of a new group a guess (the design effect
#: is a variance over groups; reshape2::french_fries' 174 test rows came from 3 of its 12 subjects)
FEW_GROUPS = 10
#: test coverage further than this many ``coverage_sd`` outside the theory's band is flagged
COVERAGE_SDS = 3.0
#: CQR (report only) fits three quantile models with the champion's configuration and predicts the
#: calibration and test rows with each; on nycflights13::flights (201,677 training, 67,225 test rows, a
#: LightGBM of 1,706 trees) it ran for over 15 minutes after a 20 s bake-off. Past this many rows each
#: part is a random sample (the coverage guarantee holds on any exchangeable sample), and the quantile
#: models keep at most CQR_MAX_TREES trees
CQR_MAX_ROWS = 20_000
CQR_MAX_TREES = 300


def coverage_check(result: dict, split_method: str | None = None, refit_cut: bool = False,
                   refit: bool = False, distinct: int | None = None) -> dict:
    """Whether the test coverage lies within its statistical bound, and a sentence when it does not.

    The bound is the theory's band ``[1 - alpha, 1 - alpha + 1/(n + 1)]`` widened by
    :data:`COVERAGE_SDS` times :func:`coverage_sd`. Outside it, the calibration rows do not
    represent the test rows (a time split with drift, groups unlike each other), the served model's
    fit was cut by the time box (``refit_cut``: it is weaker than the fits that calibrated it). Above
    it, the served model was refitted on the calibration rows too (``refit``: it errs less than the
    out-of-fold fits that calibrated it), or the scores tie (``distinct``: the served model's test scores take
    that few values, as a model of one or two coded features gives; openintro::health_coverage's sets held the
    truth for 94% of the rows at a 90% target, and the note blamed the refit).
    """
    lo, hi = result["coverage_bounds"]
    sd = result["coverage_sd"]
    cov = result["coverage"]
    band = [max(0.0, lo - COVERAGE_SDS * sd), min(1.0, hi + COVERAGE_SDS * sd)]
    design = result.get("coverage_design") or {}
    exact = _exact_band(design.get("n_calibration_effective", result.get("n_calibration")),
                        design.get("n_test_effective", result.get("n_test")), result["alpha"])
    if exact is not None:  # never narrower than the normal one
        band = [min(band[0], exact[0]), max(band[1], exact[1])]
    ok = bool(band[0] <= cov <= band[1])
    out = {"coverage_band": band, "coverage_ok": ok, "coverage_note": None}
    if not ok:
        why = {"time": "the test rows come later than the calibration rows and the data drifted",
               "group": "the test groups differ from the calibration groups"}.get(
            split_method or "", "the calibration rows do not represent the test rows")
        if refit_cut and cov < band[0]:
            cut = ("the model's serving fit was cut by the time box, so it is weaker than the complete fits of its "
                   "configuration whose out-of-fold scores calibrated it (raise the budget)")
            why = f"{why}, or {cut}" if split_method in ("time", "group") else cut
        side = "below" if cov < band[0] else "above"
        counted = (f", the {design['groups_test']} test groups' rows counted as {design['n_test_effective']:.0f} "
                   "independent ones" if design else "")
        out["coverage_note"] = (f"test coverage {cov:.3f} is {side} its statistical bound {band[0]:.3f} to "
                                f"{band[1]:.3f} (target {1 - result['alpha']:.2f}, {COVERAGE_SDS:g} sd{counted}): "
                                + (f"{why}; the sets or intervals cannot be trusted at their stated level"
                                   if side == "below" else
                                   f"{why} (here the test rows are easier), so the sets are conservative"
                                   if split_method in ("time", "group") else
                                   f"the served model's scores take {distinct} distinct values, and sets of tied "
                                   "scores hold all of a tie or none of it, so the sets are conservative"
                                   if distinct is not None else
                                   "the served model was refitted on more rows than the out-of-fold fits that "
                                   "calibrated it and errs less than they did, so the sets are conservative"
                                   if refit else "the scores tie, so the sets are conservative"))
    return out


def class_coverage_note(result: dict) -> str | None:
    """A sentence naming the classes whose sets hold the true class far less often than the target: the
    promise is marginal, over all rows, and a rare class can be missed almost always while the total passes.

    ISLR::Caravan (6% buyers): the sets held the truth for 89.7% of 1,165 test rows at a 90% target, and for
    none of the 70 buyers; AER::HMDA: 45.6% of the 57 denied mortgages. A class is named when its coverage is
    more than :data:`COVERAGE_SDS` :func:`coverage_sd` (its own test rows, all calibration rows) below the target.
    """
    alpha = result["alpha"]
    low = _far_below(result, [r for r in result.get("by_class") or [] if r["count"] >= 5])
    if not low:
        return None
    named = ", ".join(f"'{r['class']}' {r['coverage']:.1%} of {r['count']} rows" for r in low)
    return (f"the sets hold the true class for {result['coverage']:.1%} of all test rows, but far less for {named} "
            f"(target {1 - alpha:.0%}): coverage is promised over all cases, not per class, so a set of one class "
            "is no assurance for these; read their sets with care, or send them to review")


def prediction_coverage_note(result: dict) -> str | None:
    """Regression: a sentence naming the fifths of the rows by predicted value whose intervals hold the outcome
    far less often than the target. Absolute-residual intervals are as wide everywhere, and where the error grows
    with the value they miss the high values: carData::SLID's wages, 91.7% over 829 test rows at a 90% target, 81.3%
    in the top fifth of the predictions (the same test as :func:`class_coverage_note`)."""
    alpha = result["alpha"]
    low = _far_below(result, result.get("by_prediction") or [])
    if not low:
        return None
    named = ", ".join(f"predictions {r['predicted_from']:.4g} to {r['predicted_to']:.4g}: {r['coverage']:.1%} of "
                      f"{r['count']} rows" for r in low)
    return (f"the intervals hold the outcome for {result['coverage']:.1%} of all test rows, but far less where {named} "
            f"(target {1 - alpha:.0%}): every interval is as wide, and the errors are larger there; coverage is "
            "promised over all cases, not per range of the prediction"
            + (" (CQR, in the methods table, adapts the width)" if any(m.get("method") == "cqr" for m in
                                                                     result.get("methods") or []) else ""))


def _far_below(result: dict, parts: list[dict]) -> list[dict]:
    """The parts (classes, fifths of the predictions) whose coverage is more than :data:`COVERAGE_SDS`
    :func:`coverage_sd` (their own test rows, all calibration rows) below the target."""
    alpha, n_cal = result["alpha"], result["n_calibration"]
    return [r for r in parts if r["coverage"] < 1 - alpha - COVERAGE_SDS * coverage_sd(n_cal, alpha, r["count"])]


def coverage_floor(conf: dict) -> float:
    """The lowest test coverage a saved conformal result lets pass as sampling noise: its ``coverage_band``
    (the exact band, groups counted by their design effect), or for a result saved before there was a band,
    the theory's lower bound less :data:`COVERAGE_SDS` sd. The card and the report read it, so they alert on
    the same coverage as the evaluation's note (nlme::Relaxin's 0.675, within its exact band from 0.625, was
    still said in the card to be "below its target beyond sampling noise" against the normal 0.699)."""
    band = conf.get("coverage_band")
    if band:
        return float(band[0])
    return float(conf["coverage_bounds"][0]) - COVERAGE_SDS * float(conf.get("coverage_sd") or 0)


def group_design(covered, test_groups, calibration_groups) -> dict | None:
    """Kish design effects of the coverage under a group split: how many independent rows the calibration and
    test rows are worth.

    Rows of one group (a patient's lab tests) are covered or missed together, so the test coverage varies as
    a mean over groups, not over rows: its variance is the ratio estimator's over test groups,
    ``G / (G - 1) * sum_g (c_g - p m_g)^2 / M^2`` (``c_g`` of the group's ``m_g`` rows covered), against
    ``p (1 - p) / M`` for independent rows; their ratio is the test side's design effect. The calibration
    quantile is drawn from groups of the same population, so the same intra-group correlation
    ``rho = (deff - 1) / (m_w - 1)`` (``m_w = sum m_g^2 / M``) gives its design effect from its own group
    sizes. Neither is below 1: the band is never narrower than for independent rows.

    survival::nafld2 (400,123 lab tests of 15,666 patients, a group split by patient) covered 0.892 of
    80,038 test rows at a 90% target; counted as independent rows, the band started at 0.895 and the sets
    were said not to be trusted.
    """
    c = np.asarray(covered, dtype="float64")
    codes, uniq = pd.factorize(pd.Series(np.asarray(test_groups, dtype=object)), use_na_sentinel=False)
    G, M = len(uniq), len(c)
    p = float(c.mean()) if M else 0.0
    if G < 2 or M < 2 or p in (0.0, 1.0):
        return None
    m_g = np.bincount(codes, minlength=G).astype("float64")
    c_g = np.bincount(codes, weights=c, minlength=G)
    var_cluster = G / (G - 1) * float(np.sum((c_g - p * m_g) ** 2)) / M ** 2
    deff_test = max(1.0, var_cluster / (p * (1 - p) / M))
    m_w = float(np.sum(m_g ** 2)) / M
    rho = min(1.0, (deff_test - 1) / (m_w - 1)) if m_w > 1 else 0.0
    k_g = pd.Series(np.asarray(calibration_groups, dtype=object)).value_counts(dropna=False).to_numpy("float64")
    N = float(k_g.sum())
    deff_cal = max(1.0, 1 + (float(np.sum(k_g ** 2)) / N - 1) * rho) if N else 1.0
    return {"groups_test": int(G), "groups_calibration": int(len(k_g)), "intra_group_correlation": rho,
            "design_effect_test": deff_test, "design_effect_calibration": deff_cal,
            "n_test_effective": M / deff_test, "n_calibration_effective": N / deff_cal}


def _exact_band(n_calibration, n_test, alpha: float) -> list[float] | None:
    """The test coverage's band at the tails of :data:`COVERAGE_SDS` normal sds (0.135% each side), from its exact
    distribution: given the calibration rows a new row is covered with a chance that is Beta(k, n + 1 - k),
    ``k = ceil((n + 1)(1 - alpha))``, so the count covered among ``m`` test rows is beta-binomial. On a few dozen
    calibration rows that distribution is skewed, and the normal band is too narrow below: nlme::Relaxin
    (32 calibration, 40 test rows) covered 0.675 against a normal band from 0.699, an outcome with a chance of
    0.6% (stevedata::EBJ, 15 and 19 rows: 0.632 against 0.658, 0.9%), and both were said not to be trusted."""
    if not n_calibration or not n_test:
        return None
    from scipy.stats import betabinom, norm

    n, m = int(n_calibration), int(n_test)
    k = math.ceil((n + 1) * (1 - alpha))
    if k > n:
        return None   # too few calibration rows for the level: the sets hold everything
    tail = float(norm.sf(COVERAGE_SDS))
    dist = betabinom(m, k, n + 1 - k)
    return [float(dist.ppf(tail)) / m, float(dist.ppf(1 - tail)) / m]


def coverage_sd(n_calibration: int, alpha: float, n_test: int | None = None) -> float:
    """Spread of the empirical test coverage.

    Over calibration sets, coverage follows Beta(n + 1 - l, l) with
    ``l = floor((n + 1) alpha)``; a finite test set adds binomial noise.
    """
    n = n_calibration
    l_ = max(1, math.floor((n + 1) * alpha))
    a, b = n + 1 - l_, l_
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    if n_test:
        cov = a / (a + b)
        var += cov * (1 - cov) / n_test
    return float(math.sqrt(var))


def _other_methods(bundle, conf, scores, y_test, calibration, calibration_scores, seed) -> list[dict]:
    """The classification methods not served, calibrated on the same rows, for comparison."""
    rows = []
    for other in CLASSIFICATION_METHODS:
        if other == conf["method"]:
            continue
        alt = dict(conf, method=other, quantile=_alt_quantile(bundle, calibration, conf["alpha"], other, seed,
                                                              calibration_scores))
        member = sets_from_scores(_proba(bundle, scores), alt)
        yi = _class_index(bundle, y_test)
        covered = member[np.arange(len(y_test)), yi] & (yi >= 0)
        sizes = member.sum(axis=1)
        rows.append(_method_row(other, float(covered.mean()), size=float(sizes.mean()),
                                singleton=float((sizes == 1).mean())))
    return rows


def _alt_quantile(bundle, calibration, alpha, method, seed, scores=None):
    X, y = calibration
    s = bundle.scores(X) if scores is None else scores
    q = conformal_quantile(_mapie_classification_scores(bundle, s, np.asarray(y), alpha, method, seed), alpha)
    return None if not math.isfinite(q) else q


def _method_row(method, coverage, size=None, singleton=None, width=None, wider=None, note=None) -> dict:
    row = {"method": method, "coverage": coverage}
    if size is not None:
        row.update(mean_set_size=size, singleton_share=singleton)
    if width is not None:
        row.update(mean_width=width, wider_than_limit_share=wider)
    if note:
        row["note"] = note
    return row


def _capacity(case, n: int) -> tuple[float | None, int]:
    from ..tasks import capacity_rows, capacity_share

    share = capacity_share(case)
    return share, capacity_rows(share, n)


def _choose_deferred(candidates: np.ndarray, uncertainty: tuple, room: int) -> np.ndarray:
    """Defer the most uncertain candidates (lexicographic ``uncertainty`` keys, largest first) up to ``room``."""
    deferred = np.zeros(len(candidates), dtype=bool)
    idx = np.flatnonzero(candidates)
    if room <= 0 or len(idx) == 0:
        return deferred
    keys = [np.asarray(k)[idx] for k in uncertainty]
    order = np.lexsort([-k for k in reversed(keys)])
    deferred[idx[order[:room]]] = True
    return deferred


def _deferred(conf: dict, candidates: np.ndarray, size, close, room: int) -> np.ndarray:
    """The candidates deferred: by the calibration's cut where it has one (chosen on the validation rows, as the
    served model applies it: :mod:`.deferral`; a row's draw at a tie is fixed by its position, as ``mlcase score``
    fixes it by its row number), else the ``room`` most uncertain of them."""
    cut = conf.get("defer_cut")
    if cut is None:
        return _choose_deferred(candidates, (size, close), room)
    return defer_rule.apply_cut(cut, candidates, size, close, defer_rule.draws(np.arange(len(candidates))))


def _evaluate_classification(case, bundle, conf, scores, y, rows) -> dict:
    from ..tasks import binary_costs

    proba = _proba(bundle, scores)
    n = len(y)
    member = sets_from_scores(proba, conf)
    yi = _class_index(bundle, y)
    covered = member[np.arange(n), yi] & (yi >= 0)
    sizes = member.sum(axis=1)
    k = proba.shape[1]
    by_size = []
    for s in range(k + 1):
        m = sizes == s
        if m.any():
            by_size.append({"set_size": s, "share": float(m.mean()), "count": int(m.sum()),
                            "coverage": float(covered[m].mean())})
    ambiguous = sizes != 1
    share, cap_n = _capacity(case, n)
    defer_on = case.spec.conformal.defer
    top2 = np.sort(proba, axis=1)[:, -2:] if k >= 2 else np.zeros((n, 2))
    margin = top2[:, 1] - top2[:, 0]
    if bundle.task == "binary":
        t = 0.5 if bundle.threshold is None else float(bundle.threshold)
        flag = np.asarray(bundle.decide(scores)).astype(bool)
        y01 = y.astype(int)
        wrong = flag.astype(int) != y01
        room = max(0, cap_n - int(flag.sum()))
        candidates = ambiguous & ~flag if defer_on else np.zeros(n, dtype=bool)
        deferred = _deferred(conf, candidates, *defer_rule.keys("binary", scores, sizes, t), room)
        costs = binary_costs(case, rows)
        model_only = costs.of(y01, flag)
        combined = np.where(deferred, costs.of(y01, y01), model_only)
        if_flagged = np.where(deferred, costs.of(y01, np.ones(n, dtype=int)), model_only)
        review = flag | deferred
        extra = {"threshold": t, "flagged": int(flag.sum()), "flagged_share": float(flag.mean()),
                 "cost_combined_if_reviewers_flag": float(if_flagged.mean())}
    else:
        # the model's own decision, as evaluation costs it and the server answers: the class of least expected cost
        # under costs.matrix, not the most probable one (modeldata::hpc_data's "model alone" read $0.226 per decision
        # beside the evaluation's $0.212 for the same model on the same rows)
        pred = _class_index(bundle, np.asarray(bundle.decide(proba)))
        wrong = pred != yi
        flag = np.zeros(n, dtype=bool)
        candidates = ambiguous if defer_on else np.zeros(n, dtype=bool)
        deferred = _deferred(conf, candidates, sizes, -margin, cap_n)
        cost_of = _multiclass_costs(case, bundle)
        model_only = cost_of(yi, pred)
        combined = np.where(deferred, cost_of(yi, yi), model_only)
        review = deferred
        extra = {}
    automated = ~deferred
    deferral = {
        "enabled": bool(defer_on),
        "cut": conf.get("defer_cut"),
        "capacity_share": share,
        "capacity_rows": cap_n,
        "wanted": int(candidates.sum()),
        "wanted_share": float(candidates.mean()),
        "deferred": int(deferred.sum()),
        "deferred_share": float(deferred.mean()),
        "capacity_binding": bool(candidates.sum() > deferred.sum()),
        "review_rows": int(review.sum()),
        "review_load": float(review.mean()),
        "automated_share": float(automated.mean()),
        "error_rate_automated": _rate(wrong, automated),
        "error_rate_deferred": _rate(wrong, deferred),
        "error_rate_model_only": float(wrong.mean()),
        "cost_model_only": float(model_only.mean()),
        "cost_combined": float(combined.mean()),
        "cost_saving": float(model_only.mean() - combined.mean()),
        **extra,
    }
    labels = [str(c) for c in (conf.get("classes") or bundle.classes or [])] if bundle.task == "multiclass" else \
        [str(c) for c in (bundle.classes or ["0", "1"])]
    by_class = [{"class": labels[c] if c < len(labels) else str(c), "count": int((yi == c).sum()),
                 "coverage": float(covered[yi == c].mean()), "mean_set_size": float(sizes[yi == c].mean())}
                for c in range(k) if (yi == c).any()]
    return {
        "coverage": float(covered.mean()),
        "_covered": covered,
        "by_class": by_class,
        "mean_set_size": float(sizes.mean()),
        "singleton_share": float((sizes == 1).mean()),
        "empty_share": float((sizes == 0).mean()),
        "by_set_size": by_size,
        "deferral": deferral,
        "assumptions": _ASSUMPTIONS,
    }


_ASSUMPTIONS = [
    "flagged and deferred cases share the review capacity; deferral takes only what flags leave free",
    "cost_combined assumes reviewers decide deferred cases correctly (no separate review fee in the costs); "
    "cost_combined_if_reviewers_flag (binary) counts each deferred case as flagged instead",
    "error rates of deferred cases are those of the model's own decision on them",
]


def _multiclass_costs(case, bundle):
    """Per-row costs of decisions given as class indices (the matrix lookup is :func:`mlcase.tasks.multiclass_cost`)."""
    from ..tasks import multiclass_cost

    classes = np.asarray([str(c) for c in bundle.classes] + [None], dtype=object)  # index -1: a label not known

    def cost(actual_idx, pred_idx):
        return multiclass_cost(case, classes[np.asarray(actual_idx)], classes[np.asarray(pred_idx)])

    return cost


def _evaluate_regression(case, bundle, conf, pred, y, rows) -> dict:
    from ..tasks import regression_cost

    low, high = intervals_from_scores(pred, conf)
    y = y.astype("float64")
    n = len(y)
    covered = (y >= low) & (y <= high)
    width = high - low
    limit = case.spec.conformal.max_interval_width
    wide = width > limit if limit is not None else np.zeros(n, dtype=bool)
    share, cap_n = _capacity(case, n)
    candidates = wide if case.spec.conformal.defer else np.zeros(n, dtype=bool)
    deferred = _deferred(conf, candidates, *defer_rule.keys("regression", pred, None, width=width), cap_n)
    automated = ~deferred
    # the money of the prediction the model answers (its score mapped to the cheapest quantile for the costs, where
    # the evaluation keeps that map), as evaluation costs it: MASS::Boston's "model alone" read $3.515 per decision,
    # the raw score's, beside the evaluation's $3.120
    model_only = regression_cost(case, rows, y, np.asarray(bundle.decide(pred), dtype="float64"))
    combined = np.where(deferred, 0.0, model_only)
    abs_err = np.abs(pred - y)
    finite = np.isfinite(width)
    hist_counts, edges = histogram(width, bins=20)  # equal widths up to rounding are one bin, not an error
    by_prediction = []
    if n >= 25:   # fifths of the rows by predicted value: one interval width for all, an error that grows with it
        fifth = pd.qcut(pd.Series(pred).rank(method="first"), 5, labels=False).to_numpy()
        for b in range(5):
            m = fifth == b
            by_prediction.append({"predicted_from": float(np.min(pred[m])), "predicted_to": float(np.max(pred[m])),
                                  "count": int(m.sum()), "coverage": float(covered[m].mean()),
                                  "mean_width": float(np.mean(width[m])) if finite[m].all() else None})
    return {
        "coverage": float(covered.mean()),
        "_covered": covered,
        "by_prediction": by_prediction,
        "mean_width": float(np.mean(width)) if finite.all() else None,
        "median_width": float(np.median(width)) if finite.all() else None,
        "max_interval_width": limit,
        "width_histogram": {"counts": hist_counts.tolist(), "edges": [float(e) for e in edges]},
        "deferral": {
            "enabled": bool(case.spec.conformal.defer),
            "cut": conf.get("defer_cut"),
            "capacity_share": share,
            "capacity_rows": cap_n,
            "wanted": int(candidates.sum()),
            "wanted_share": float(candidates.mean()),
            "wider_than_limit_share": float(wide.mean()),
            "deferred": int(deferred.sum()),
            "deferred_share": float(deferred.mean()),
            "capacity_binding": bool(candidates.sum() > deferred.sum()),
            "review_rows": int(deferred.sum()),
            "review_load": float(deferred.mean()),
            "automated_share": float(automated.mean()),
            "mae_automated": _mean(abs_err, automated),
            "mae_deferred": _mean(abs_err, deferred),
            "error_rate_automated": None,
            "error_rate_deferred": None,
            "cost_model_only": float(model_only.mean()),
            "cost_combined": float(combined.mean()),
            "cost_saving": float(model_only.mean() - combined.mean()),
        },
        "assumptions": [
            "cost_combined assumes reviewers set deferred cases to their true value (no review fee in the costs)",
            "absolute-residual intervals all have the same width; adaptive widths come from CQR"
            + (f" (those that would reach below the target's floor {conf['floor']:g} stop there)"
               if conf.get("floor") is not None else ""),
        ],
    }


def _cqr(case, bundle, X_test, y_test, calibration, train, alpha) -> dict | None:
    """CQR intervals from quantile versions of a boosted model (report only)."""
    if calibration is None or train is None or bundle.name not in BOOSTED:
        return None
    n_cal = len(calibration[1])
    # too few rows for the level: MAPIE refuses (raises). Its intervals are two-sided, alpha / 2 on each side, and
    # it wants 1 / (alpha / 2) rows: MASS::snails' 19 calibration rows at alpha 0.1 passed the check on alpha
    # and stopped `mlcase run` with an internal error at predict_interval
    if math.ceil((n_cal + 1) * (1 - alpha)) > n_cal or n_cal < 2 / alpha:
        return None
    from mapie.regression import ConformalizedQuantileRegressor

    from ..explain import unwrap

    estimator = _quantile_pipeline(unwrap(bundle.model)[0])
    if estimator is None:
        return None
    note = f"quantile {type(estimator[-1]).__name__} on the same preprocessing; report only"
    parts, sampled = {}, []
    for name, (X, y) in (("training", train), ("calibration", calibration), ("test", (X_test, y_test))):
        X, y = X.reset_index(drop=True), np.asarray(y, dtype="float64")
        if len(y) > CQR_MAX_ROWS:
            keep = np.sort(np.random.default_rng(0).choice(len(y), CQR_MAX_ROWS, replace=False))
            sampled.append(f"{CQR_MAX_ROWS:,} of {len(y):,} {name} rows")
            X, y = X.iloc[keep], y[keep]
        parts[name] = (X, y)
    if sampled:
        note += f"; on random samples ({', '.join(sampled)})"
    cqr = ConformalizedQuantileRegressor(estimator=estimator, confidence_level=1 - alpha, prefit=False)
    with warnings.catch_warnings(), _quiet_mapie_info():
        warnings.simplefilter("ignore", UserWarning)
        cqr.fit(*parts["training"])
        cqr.conformalize(*parts["calibration"])
        _, bounds = cqr.predict_interval(parts["test"][0])
    low, high = bounds[:, 0, 0], bounds[:, 1, 0]
    y = parts["test"][1]
    width = high - low
    limit = case.spec.conformal.max_interval_width
    return _method_row("cqr", float(((y >= low) & (y <= high)).mean()), width=float(width.mean()),
                       wider=float((width > limit).mean()) if limit is not None else 0.0, note=note)


@contextlib.contextmanager
def _quiet_mapie_info():
    """MAPIE logs "The predictions are ill-sorted." on the root logger when the quantile models cross
    (it sorts them itself); that line would land on the user's stderr in every regression run."""
    class _Drop(logging.Filter):
        def filter(self, record):
            return "ill-sorted" not in record.getMessage()

    root, drop = logging.getLogger(), _Drop()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _quantile_pipeline(model):
    """A clone of the model's pipeline whose last step fits quantiles (None if not possible)."""
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    from ..candidates import empty_columns_bin

    if not isinstance(model, Pipeline):
        return None
    empty_columns_bin()  # the quantile model is a HistGradientBoosting one unless the model is LightGBM
    last = model[-1]
    name = type(last).__name__
    steps = [(n, clone(s)) for n, s in model.steps[:-1]]
    if name == "HistGradientBoostingRegressor":
        q = clone(last).set_params(loss="quantile", quantile=0.5,
                                   max_iter=min(int(last.get_params()["max_iter"]), CQR_MAX_TREES))
    elif name == "LGBMRegressor":
        q = clone(last).set_params(objective="quantile", alpha=0.5,
                                   n_estimators=min(int(last.get_params()["n_estimators"]), CQR_MAX_TREES))
    elif name.startswith("CatBoost"):  # MAPIE cannot set CatBoost's quantile, and its input is text
        return None
    else:
        q = HistGradientBoostingRegressor(loss="quantile", quantile=0.5, max_iter=200, random_state=0)
    return Pipeline(steps + [(model.steps[-1][0], q)])


def _rate(wrong: np.ndarray, mask: np.ndarray) -> float | None:
    return float(wrong[mask].mean()) if mask.any() else None


def _mean(v: np.ndarray, mask: np.ndarray) -> float | None:
    return float(v[mask].mean()) if mask.any() else None
