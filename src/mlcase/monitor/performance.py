"""Delayed labels and realized performance per window (and the estimate before labels, per window)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import RuleError
from ._util import _floats, _q
from .estimate import cbpe
from .estimators import mean_ci, proportion


# ------------------------------------------------------------------ labels
def label_summary(run) -> dict:
    """How the labels joined the log: rows, duplicated and conflicting request ids, unmatched ids."""
    r = run.con.execute("""
        WITH per AS (SELECT _rid, count(*) AS n, count(DISTINCT _label) AS nv FROM lab WHERE _label IS NOT NULL
                     GROUP BY _rid)
        SELECT (SELECT count(*) FROM lab), count(*), count(*) FILTER (WHERE n > 1),
               coalesce(sum(n - 1) FILTER (WHERE n > 1), 0), count(*) FILTER (WHERE nv > 1),
               (SELECT count(*) FROM lab WHERE _label IS NULL) FROM per""").fetchall()[0]
    unmatched = run.con.execute("""SELECT count(*) FROM lastlab l WHERE NOT EXISTS
                                    (SELECT 1 FROM log g WHERE g._rid = l._rid)""").fetchall()[0][0]
    examples = [x[0] for x in run.con.execute("""SELECT _rid FROM (SELECT _rid, count(*) n FROM lab
                                                  WHERE _label IS NOT NULL GROUP BY _rid)
                                                  WHERE n > 1 ORDER BY _rid LIMIT 5""").fetchall()]
    matched = run.con.execute("SELECT count(_label) FROM log").fetchall()[0][0]
    # of the duplicated ids: those with both an outcome and a reviewer's verdict (each estimate reads its own kind:
    # realized performance the last outcome, the review and audit estimates the last verdict), and those with
    # several labels of one kind (the last of that kind is read)
    kinds = run.con.execute("""
        WITH k AS (SELECT _rid, (_reviewer IS NOT NULL OR coalesce(_src, '') IN ('review', 'audit')) AS rev
                   FROM lab WHERE _label IS NOT NULL),
             per AS (SELECT _rid, count(*) FILTER (WHERE rev) AS nr, count(*) FILTER (WHERE NOT rev) AS no
                     FROM k GROUP BY _rid)
        SELECT count(*) FILTER (WHERE nr > 0 AND no > 0), count(*) FILTER (WHERE nr > 1 OR no > 1)
        FROM per""").fetchall()[0]
    return {"rows": int(r[0]), "request_ids": int(r[1]), "duplicated_request_ids": int(r[2]),
            "duplicate_rows": int(r[3]), "conflicting_request_ids": int(r[4]),
            "outcome_and_verdict_request_ids": int(kinds[0]), "same_kind_duplicated_request_ids": int(kinds[1]),
            "duplicate_examples": examples, "unmatched_request_ids": int(unmatched),
            "matched": int(matched), "unreadable": 0, "blank_rows": int(r[5]),
            "policy": "last label per request id wins, per kind: realized performance reads the last outcome, the review "
                      "and audit estimates the last reviewer's verdict, the holdout and model-arm lines the last "
                      "label of either kind (a blank one is no outcome yet and replaces none)"}


def encode_labels(run, labels: pd.Series) -> np.ndarray:
    """Labels as the task's targets: binary 0/1 (NaN if unknown), regression floats, multiclass strings."""
    s = labels.astype("str")
    if run.task in ("regression", "ranking"):  # ranking: an item's outcome (a click 1/0, a rating)
        return pd.to_numeric(s, errors="coerce").to_numpy("float64")
    if run.task == "multiclass":
        # a label is read as a reviewer's outcome is (review.Target): '3.0' for class 3 (a labels file with gaps
        # writes floats), ' yes' or 'YES' for the one class 'yes'. A '3.0' counted as a wrong prediction, and
        # accuracy read 0.0 on stevedata::CFT15
        from ..review import Target

        classes = [str(c) for c in (run.classes or [])]
        if not classes:
            return s.to_numpy()
        target = Target("multiclass", classes)
        return s.map({v: target.canonical(v) or v for v in pd.unique(s)}).to_numpy()
    y = np.full(len(s), np.nan)
    neg = run.classes[0] if run.classes else None
    y[(s == str(run.positive)).to_numpy()] = 1
    y[(s == str(neg)).to_numpy()] = 0
    low = s.str.lower()
    unknown = np.isnan(y)
    y[unknown & low.isin(["1", "1.0", "true", "yes"]).to_numpy()] = 1
    y[unknown & low.isin(["0", "0.0", "false", "no"]).to_numpy()] = 0
    return y


# ------------------------------------------------------------------ performance
def window_frame(run, wi: int, columns: list[str], labelled_only: bool = False) -> pd.DataFrame:
    inner = [c for c in columns if c in run.col]
    sel = ["_score", "_flag", "_dec", "_prediction", "_label", "_arm", "_audit", "_pi", "_rlabel", "_lsrc", "_olabel",
           "_osrc", "coalesce(_unit, _rid) AS _unit"] + [
        f"{run.col[c]} AS {_q(c)}" for c in inner]
    where = "_wi = ?" + (" AND _label IS NOT NULL" if labelled_only else "")
    return run.con.execute(f"SELECT {', '.join(sel)} FROM log WHERE {where}", [wi]).df()


def cost_columns(run) -> list[str]:
    c = run.spec.costs
    exprs = [v for v in (c.true_positive, c.false_positive, c.false_negative, c.true_negative, c.under, c.over)
             if isinstance(v, str)]
    from ..rules import validate_expression

    cols: list[str] = []
    for e in exprs:
        try:
            cols += validate_expression(e, list(run.col), aggregate=True)
        except RuleError:
            cols += [n for n in run.col if n in e]
    return list(dict.fromkeys(cols))


def compute_performance(run, windows: list[dict]) -> None:
    """Fill ``estimated`` (binary, before labels) and ``realized`` / ``realized_so_far`` of every window."""
    from .label_sources import Parts, summarize, window_parts

    cost_cols = cost_columns(run)
    cost_problem: str | None = None
    unreadable = left_out = 0
    everything = Parts()
    for wi, w in enumerate(windows):
        need_est = run.task == "binary"
        if not need_est and w["labels"]["labelled"] == 0:
            continue
        df = window_frame(run, wi, cost_cols, labelled_only=not need_est)
        costs, problem = row_costs(run, df)
        cost_problem = cost_problem or problem
        if need_est:
            p_all, f_all = _floats(df["_score"]), _floats(df["_flag"])
            scored = ~np.isnan(p_all) & ~np.isnan(f_all)
            if scored.any():
                p, f = p_all[scored], f_all[scored]
                w["estimated"] = cbpe(p, f, costs.take(scored) if costs is not None else None,
                                      units=df["_unit"].astype("str").to_numpy()[scored])
                w["estimated"]["n"] = int(scored.sum())
            parts = window_parts(df, lambda s: encode_labels(run, s), costs)
            if run.has_holdout or parts.r_y:
                w["by_source"] = summarize(parts, mature=w["mature"])
            everything.extend(parts)
        # realized performance rests on the labels no decision chose: a reviewer's verdict exists because the
        # case was flagged, deferred or audited. On ISLR::Caravan's served test rows, the 194 reviewed cases
        # alone read a realized cost of -2.63 per decision where every row's outcome gave -0.70
        reviewed = df["_rlabel"].notna().to_numpy()
        has = df["_olabel"].notna().to_numpy()
        review_only = int((reviewed & ~has).sum())
        left_out += review_only
        if not has.any():
            continue
        y = encode_labels(run, df["_olabel"][has])
        known = ~pd.isna(y) if run.task == "multiclass" else ~np.isnan(y)
        unreadable += int((~known).sum())
        idx = np.flatnonzero(has)[known]
        realized = realized_metrics(run, df.iloc[idx], y[known], costs.take(idx) if costs is not None else None)
        if realized is None:
            continue
        sources = df["_osrc"].iloc[idx].astype("str").value_counts()
        realized["labels"] = {"basis": "every label (the last per request id)" if not reviewed.any() else
                              "delayed outcomes (the last per request id); reviewers' verdicts are left out",
                              "n": int(len(idx)), "sources": {str(k): int(v) for k, v in sources.items()}}
        if reviewed.any():
            realized["labels"]["reviewed_left_out"] = review_only
        if w["mature"]:
            w["realized"] = realized
        else:
            w["realized_so_far"] = realized
    if cost_problem:
        run.warnings.append({"kind": "costs", "message": f"business cost not computed: {cost_problem}"})
    if left_out:
        where = ("their weighted estimate is the audit line (precision, recall)" if run.task == "binary" else
                 "only delayed outcomes (mlcase label, POST /labels) give it")
        run.warnings.append({"kind": "labels", "message": f"{left_out} case(s) labelled only by a reviewer are left "
                             "out of realized performance: the model's decisions chose them for review (flagged, "
                             f"deferred, audited), so their outcomes are not the population's; {where}"})
    _untrusted_estimate(run, windows)
    run.unreadable_labels = unreadable
    run.by_source = None
    if run.task == "binary" and (run.has_holdout or everything.r_y):
        run.by_source = summarize(everything, mature=all(w["mature"] for w in windows), with_sizing=True)


def _untrusted_estimate(run, windows: list[dict]) -> None:
    """Mark the estimate before labels untrusted where the validation outcomes were already far from it.

    The estimate reads the scores as probabilities. The reference keeps what it said on the validation rows and what
    their outcomes were; a score that is no probability (a 'majority' baseline scores 0 and flags nothing) estimated
    accuracy 1.0 with a band of [1.0, 1.0] in every window of nycflights13's late flights, whose outcomes were right
    0.74 to 0.87 of the time, and validation had said so (estimated 1.0, realized 0.77)."""
    cal = (run.ref or {}).get("calibration") or {}
    est, real, n = cal.get("estimated_accuracy"), cal.get("realized_accuracy"), cal.get("n") or 0
    if est is None or real is None or n <= 0:
        return
    # 3 sd of the realized accuracy on those rows: a calibrated model misses by more 0.3% of the time (at 1.96 sd,
    # AER::CreditCard's lightgbm, 0.968 estimated and 0.987 realized on 150 rows, was called untrusted, and its band
    # covered the held-out rows' accuracy)
    sd = float(np.sqrt(max(real * (1 - real), 1.0 / n) / n))
    if abs(est - real) <= 3 * sd:
        return
    note = (f"on the validation rows it estimated accuracy {est:.3g} where the outcomes gave {real:.3g} "
            f"(calibration error {cal.get('ece', float('nan')):.3g}, {n} rows)")
    for w in windows:
        if w.get("estimated"):
            w["estimated"]["trusted"] = False
            w["estimated"]["untrusted_because"] = note
    if any(w.get("estimated") for w in windows):
        run.warnings.append({"kind": "estimate", "message": "the performance estimated before labels reads the scores "
                             f"as probabilities, and they are not: {note}; wait for labels"})


def row_costs(run, df: pd.DataFrame):
    """Per-row costs for the window (binary: RowCosts; None where the task or the log cannot give them)."""
    if run.task != "binary":
        return None, None
    from ..tasks import binary_costs

    rows = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    try:
        return binary_costs(run.case, rows), None
    except RuleError as exc:
        return None, str(exc)


def realized_metrics(run, df: pd.DataFrame, y: np.ndarray, costs) -> dict | None:
    """Metrics and business cost of the labelled rows ``df`` with targets ``y``."""
    n = len(y)
    if n == 0:
        return None
    out: dict[str, Any] = {"n": int(n)}
    ci: dict[str, dict] = {}
    # n counts requests (decisions); units the units they were for (data.id, logged as unit_id): the intervals are
    # clustered by unit, so a unit sent twice is not two independent outcomes
    unit = (df["_unit"].astype("str").to_numpy() if "_unit" in df else np.arange(n).astype(str))
    out["units"] = int(len(set(unit.tolist())))
    if run.task == "ranking":  # list metrics come from mlcase.monitor.ranking
        return {**out, "label_mean": float(np.nanmean(y)) if np.isfinite(y).any() else None}
    if run.task == "binary":
        f = _floats(df["_flag"])
        ok = ~np.isnan(f)
        yk, fk = y[ok].astype(int), f[ok].astype(int)
        if len(yk):
            tp = int(((fk == 1) & (yk == 1)).sum())
            out.update({"accuracy": float((fk == yk).mean()),
                        "precision": tp / int(fk.sum()) if fk.sum() else None,
                        "recall": tp / int(yk.sum()) if yk.sum() else None,
                        "flag_rate": float(fk.mean()), "positive_rate": float(yk.mean())})
            uk, hit = unit[ok], (fk == yk).astype(int)
            ci.update({"accuracy": proportion(int(hit.sum()), len(yk), hit, uk),
                       "precision": proportion(tp, int(fk.sum()), yk[fk == 1], uk[fk == 1]),
                       "recall": proportion(tp, int(yk.sum()), fk[yk == 1], uk[yk == 1])})
            if costs is not None:
                per = costs.take(np.flatnonzero(ok)).of(yk, fk)
                out["cost"] = float(per.mean())
                out["cost_total"] = float(per.sum())
                ci["cost"] = mean_ci(per, uk)
        p = _floats(df["_score"])
        has = ~np.isnan(p)
        if has.sum() and len(np.unique(y[has])) == 2:
            out.update(_probability_metrics(y[has], p[has]))
            yy, pp = y[has].astype(int), np.clip(p[has], 0.0, 1.0)
            ci["brier"] = mean_ci((pp - yy) ** 2, unit[has])
    elif run.task == "regression":
        from ..tasks import get_task, regression_cost

        pred = _floats(df["_score"])
        ok = ~np.isnan(pred)
        if ok.sum() == 0:
            return None
        out.update(get_task("regression").metrics(y[ok], pred[ok]))
        err = pred[ok] - y[ok]
        ci["mae"] = mean_ci(np.abs(err), unit[ok])
        mse = mean_ci(err ** 2, unit[ok])  # RMSE's interval: the root of the mean squared error's
        ci["rmse"] = {**mse, **{k: (float(np.sqrt(max(mse[k], 0.0))) if mse[k] is not None else None)
                                for k in ("value", "low", "high")}}
        rows = df.iloc[np.flatnonzero(ok)].drop(columns=[c for c in df.columns if c.startswith("_")])
        # money on what was predicted: the score, or its point map where the costs called for one
        told = _floats(df["_prediction"]) if "_prediction" in df else pred
        told = np.where(np.isnan(told), pred, told)
        try:
            per = regression_cost(run.case, rows, y[ok], told[ok])
            out["cost"], out["cost_total"] = float(per.mean()), float(per.sum())
            ci["cost"] = mean_ci(per, unit[ok])
        except RuleError as exc:
            run.warnings.append({"kind": "costs", "message": f"business cost not computed: {exc}"})
    else:
        pred = df["_prediction"].astype("str").to_numpy()
        from sklearn import metrics as m

        out.update({"accuracy": float(np.mean(pred == y)),
                    "macro_f1": float(m.f1_score(y, pred, average="macro", zero_division=0))})
        hit = (pred == y).astype(int)
        ci["accuracy"] = proportion(int(hit.sum()), len(y), hit, unit)
        from ..tasks import multiclass_cost

        # as the evaluation prices it: costs.matrix, else each error costs 1 (monitoring priced nothing
        # without a matrix, so `mlcase monitor` showed no realized cost where `mlcase run` had shown one)
        per = multiclass_cost(run.case, y, pred)
        out["cost"], out["cost_total"] = float(per.mean()), float(per.sum())
        ci["cost"] = mean_ci(per, unit)
    if ci:
        # 95% intervals of the window's metrics (Wilson for shares, t for means): a drop on 60 labels and one on
        # 6,000 read the same without them (modeldata::attrition's accuracy 0.857 on 426 unchanged rows and 0.722
        # on the 115 who work overtime)
        out["ci"] = {k: v for k, v in ci.items() if v["value"] is not None}
    return out


def _probability_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC AUC, log loss and Brier score of probabilities ``p`` for 0/1 ``y`` (scikit-learn's metrics)."""
    from sklearn import metrics as m

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    return {"roc_auc": float(m.roc_auc_score(y, p)), "log_loss": float(m.log_loss(y, p, labels=[0, 1])),
            "brier": float(m.brier_score_loss(y, p, pos_label=1))}
