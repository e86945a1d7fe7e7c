"""Human review in the log: reviewer-vs-model and reviewer-vs-reviewer agreement, and the review backlog.

- **Agreement with the model**: each reviewer's last verdict on a case against
  the model's decision (binary: flag = positive; multiclass: the predicted
  class), as the share that agree and Cohen's kappa with its interval, overall,
  per reviewer and per reason the case was reviewed (flagged, deferred, audit).
- **Agreement between reviewers**: cases reviewed by two or more reviewers
  (the first two by review time), Cohen's kappa with its 95% interval
  (statsmodels' asymptotic variance).
- **Backlog**: per window, the cases sent to review (flagged, deferred, or
  drawn for the audit), the cases whose first verdict arrived in the window,
  the backlog at the window's end, and the review capacity of the window
  (``constraints.review_capacity``: a share of the window's decisions or a
  count per period). It is tracked once any verdict is in the log; an alert
  fires when the backlog grew ``monitoring.backlog_windows`` windows in a row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .estimators import kappa


def compute_reviews(run, windows: list[dict]) -> dict | None:
    """The ``reviews`` section of a monitoring run (None when no verdict is in the log)."""
    if not run.has_reviews:
        return None
    verdicts = _verdicts(run)
    return {"n_verdicts": int(len(verdicts)), "n_cases": int(verdicts["_rid"].nunique()) if len(verdicts) else 0,
            "n_reviewers": int(verdicts["_reviewer"].nunique()) if len(verdicts) else 0,
            "model_agreement": _model_agreement(run, verdicts), "between_reviewers": _between(verdicts, run.task),
            "backlog": _backlog(run, windows)}


def _verdicts(run) -> pd.DataFrame:
    """One row per (case, reviewer): the reviewer's last verdict, joined to the case's decisions."""
    return run.con.execute("""
        SELECT l._rid, l._reviewer, l._label, coalesce(l._rts, l._lts) AS _t, g._flag, g._prediction, g._dec,
               g._audit, g._arm
        FROM lab l JOIN log g ON g._rid = l._rid
        WHERE l._reviewer IS NOT NULL AND l._label IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY l._rid, l._reviewer ORDER BY l._seq DESC) = 1
        ORDER BY l._rid, _t, l._seq""").df()


def _model_side(run, v: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reviewer, model, usable) as comparable strings."""
    from .performance import encode_labels

    if run.task == "binary":
        y = encode_labels(run, v["_label"])
        f = pd.to_numeric(v["_flag"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(y) & ~np.isnan(f)
        return np.where(y == 1, "positive", "negative"), np.where(f == 1, "positive", "negative"), ok
    rev = v["_label"].astype("str").to_numpy()
    mod = v["_prediction"].astype("str").to_numpy()
    return rev, mod, v["_prediction"].notna().to_numpy()


def _model_agreement(run, v: pd.DataFrame) -> dict | None:
    if run.task == "regression" or len(v) == 0:
        return None
    rev, mod, ok = _model_side(run, v)
    why = np.where(pd.to_numeric(v["_audit"], errors="coerce").fillna(0).to_numpy() == 1, "audit",
                   v["_dec"].astype("str").to_numpy())
    why = np.where(v["_arm"].astype("str").to_numpy() == "holdout", "holdout", why)
    out = {**kappa(rev[ok], mod[ok]), "by_reviewer": {}, "by_reason": {}}
    reviewers = v["_reviewer"].astype("str").to_numpy()
    for r in sorted(set(reviewers[ok])):
        m = ok & (reviewers == r)
        out["by_reviewer"][r] = {"n": int(m.sum()), "agreement": float((rev[m] == mod[m]).mean())}
    for reason in sorted(set(why[ok])):
        m = ok & (why == reason)
        entry = {"n": int(m.sum()), "agreement": float((rev[m] == mod[m]).mean())}
        if run.task == "binary":
            entry["positive_share"] = float((rev[m] == "positive").mean())
        out["by_reason"][reason] = entry
    return out


def _between(v: pd.DataFrame, task: str = "binary") -> dict | None:
    """Cohen's kappa of the first two reviewers of every case reviewed more than once.

    Regression verdicts are numbers, not categories: kappa would count 10.5 against 10.6 as a plain
    disagreement, so they get the mean absolute difference and the share that agree exactly instead.
    """
    if len(v) == 0:
        return None
    firsts = v.groupby("_rid", sort=False).head(2)
    counts = firsts.groupby("_rid")["_reviewer"].transform("size")
    pairs = firsts[counts == 2]
    if len(pairs) == 0:
        return {"n": 0, "value": None, "low": None, "high": None, "agreement": None,
                "note": "no case was reviewed by two reviewers"}
    a = pairs.groupby("_rid", sort=False)["_label"].nth(0).astype("str").to_numpy()
    b = pairs.groupby("_rid", sort=False)["_label"].nth(1).astype("str").to_numpy()
    if task == "regression":
        x, y = (pd.to_numeric(pd.Series(z), errors="coerce").to_numpy(dtype=float) for z in (a, b))
        ok = ~np.isnan(x) & ~np.isnan(y)
        x, y = x[ok], y[ok]
        return {"n": int(ok.sum()), "value": None, "low": None, "high": None,
                "agreement": float(np.isclose(x, y, rtol=1e-9, atol=1e-9).mean()) if ok.any() else None,
                "mean_abs_diff": float(np.abs(x - y).mean()) if ok.any() else None,
                "measure": "mean absolute difference"}
    return kappa(a, b)


def _window_capacity(run, n: int) -> float | None:
    cap = run.spec.constraints.review_capacity
    if cap is None:
        return None
    if isinstance(cap, float):
        return cap * n
    from ..spec import PERIOD_SECONDS, parse_rate

    count, period = parse_rate(cap, "review capacity")
    return count * run.window_s / PERIOD_SECONDS[period or "day"]


def _backlog(run, windows: list[dict]) -> dict:
    W = len(windows)
    queued = np.zeros(W, dtype=int)
    for wi, c in run.con.execute("""SELECT _wi, count(*) FROM log WHERE _dec IN ('flag', 'review') OR _audit = 1
                                    GROUP BY _wi""").fetchall():
        queued[int(wi)] = int(c)
    # each queued case's first verdict, in the window of its review time (clamped to the log's windows)
    firsts = run.con.execute("""
        SELECT min(coalesce(l._rts, l._lts)) FROM lab l JOIN log g ON g._rid = l._rid
        WHERE l._reviewer IS NOT NULL AND (g._dec IN ('flag', 'review') OR g._audit = 1)
        GROUP BY l._rid""").fetchall()
    reviewed = np.zeros(W, dtype=int)
    starts = np.asarray([w * run.window_s for w in run.windows], dtype=float)
    for (t,) in firsts:
        k = int(np.clip(np.searchsorted(starts, t, side="right") - 1, 0, W - 1)) if (t is not None and run.has_time) \
            else W - 1
        reviewed[k] += 1
    backlog = np.cumsum(queued) - np.cumsum(reviewed)
    need = run.mon.backlog_windows
    rows, streak = [], 0
    for i, w in enumerate(windows):
        grew = backlog[i] > (backlog[i - 1] if i else 0)
        streak = streak + 1 if grew else 0
        cap = _window_capacity(run, w["n"])
        rows.append({"window": w["window"], "queued": int(queued[i]), "reviewed": int(reviewed[i]),
                     "backlog": int(backlog[i]), "capacity": None if cap is None else float(cap),
                     "over_capacity": None if cap is None else bool(queued[i] > cap),
                     "growing_windows": int(streak), "alert": bool(streak >= need and backlog[i] > 0)})
    return {"windows": rows, "alert_after": int(need), "backlog": int(backlog[-1]) if W else 0}
