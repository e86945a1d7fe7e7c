"""Monitoring a ranking model from its served lists and the feedback on their items.

``POST /rank`` logs each item of a list as one row (request id ``<list_id>:<position>``,
``prediction`` its position); ``POST /labels`` attaches each item's outcome (a click 1/0, a
rating). Per monitoring window and overall, :func:`list_metrics` gives:

- the click-through (or relevance) rate at each position 1..k, over the labelled items there;
- the realized NDCG@k of the lists with feedback: the order served against the best order of
  the same items by their outcomes (gain 1 for a click; a graded outcome keeps the case's
  gain), over the lists where some item was relevant;
- clicks (relevant items) per list in the top k: the list-level metric an A/B test compares
  (``mlcase abtest analyze`` with one row per list or per session);
- the share of lists the popularity fallback ordered.

Each comes with its 95% interval over the lists (``ci``: Wilson for a position's rate, t for the means of NDCG
and clicks per list), so a drop on 20 lists does not read as one on 2,000; the lists, not the items, are the
units (the items of one list share its user).

Score drift is the generic monitor's (the served scores against the reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._util import _iso


def list_metrics(run, k: int, relevance: dict | None) -> dict[str, Any]:
    """Position rates, realized NDCG@k and clicks per list, per window and overall (see the module docstring)."""
    df = run.con.execute("""SELECT _rid, _wi, _prediction, _label, _tier FROM log
                            WHERE _rid LIKE '%:%'""").df()
    if df.empty:
        return {"k": k, "n_lists": 0, "note": "no list from POST /rank in the log"}
    parts = df["_rid"].str.rsplit(":", n=1, expand=True)
    df["_list"], df["_pos"] = parts[0], pd.to_numeric(parts[1], errors="coerce")
    df["_y"] = pd.to_numeric(df["_label"], errors="coerce")
    df = df[df["_pos"].notna()]
    thr = (relevance or {}).get("relevant_from", 1.0)
    graded = (relevance or {}).get("gain") == "graded"
    df["_gain"] = np.where(df["_y"] >= thr - 1e-12, (df["_y"] - thr + 1.0) if graded else 1.0, 0.0)
    df.loc[df["_y"].isna(), "_gain"] = np.nan
    out: dict[str, Any] = {"k": k, "relevance": relevance, **_summary(df, k), "windows": []}
    for wi, part in df.groupby("_wi", sort=True):
        # the window's name as the other windows and alerts give it (an alert said "window": 0 to its owner)
        name = _iso(run.windows[int(wi)] * run.window_s) if run.has_time else "all"
        out["windows"].append({"window": int(wi), "window_name": name, **_summary(part, k)})
    out["alerts"] = _quality_alerts(run, out, k)
    return out


MIN_LISTS = 20   # lists with a relevant item a window needs before its NDCG is compared with the test period's


def _test_ndcg(run, k: int) -> tuple[float, int] | None:
    """The served model's NDCG@k on the test period and its number of lists (the evaluation's), or None."""
    from .. import results

    ev = results.load(run.case, "evaluation") or {}
    rk = ev.get("ranking") or {}
    name = getattr(run.bundle, "name", None)
    # the headline NDCG@k of every model the run judged; the curve (ndcg_at) stops at the longest test list, so lists
    # shorter than k (Ecdat::Yogurt's 4 brands, k = 10) had no NDCG@10 on it and no window was ever compared
    at = ((ev.get("metrics") or {}).get(name) or {}).get(f"ndcg@{k}")
    if at is None:
        at = ((rk.get("ndcg_at") or {}).get(name) or {}).get(str(k))
    n = rk.get("n_lists_with_relevant") or rk.get("n_lists")
    return (float(at), int(n)) if at is not None and n else None


def _quality_alerts(run, out: dict, k: int) -> list[dict]:
    """A ``ranking_quality`` alert for each window whose realized NDCG@k is below the test period's, one-sided at 5%
    after Holm's adjustment over the windows compared. The per-list spread is the window's (under no change both
    periods share it), so the test period's own sampling error counts too. A new item users take to that the model
    ranks low (AER::TravelMode: every traveller taking a 'rideshare' with car's features) took realized NDCG from
    0.97 to 0.39 on 70 lists with drift alerts only, none on the lists' quality."""
    from scipy import stats

    ref = _test_ndcg(run, k)
    if ref is None:
        return []
    ndcg_ref, n_ref = ref
    tests = []
    for w in out["windows"]:
        n, val = w["n_lists_ndcg"], w["realized_ndcg"]
        if n < MIN_LISTS or val is None:
            continue
        sd = w.get("ndcg_sd") or 0.0
        se = sd * np.sqrt(1 / n + 1 / n_ref)
        p = float(stats.norm.sf((ndcg_ref - val) / se)) if se > 0 else float(val >= ndcg_ref)
        w["ndcg_test"] = {"value": ndcg_ref, "lists": n_ref, "p_value": p}
        tests.append((p, w))
    from ..numeric import holm

    alerts = []
    m = len(tests)
    for (_, w), running in zip(tests, holm([p for p, _ in tests]), strict=True):
        running = float(running)
        w["ndcg_test"]["p_adjusted"] = running
        if running < 0.05:
            alerts.append({"kind": "ranking_quality", "feature": None, "window": w.get("window_name", w["window"]),
                           "value": w["realized_ndcg"], "message": (
                               f"realized NDCG@{k} {w['realized_ndcg']:.3f} (95% CI {w['ci']['realized_ndcg'][0]:.3f} "
                               f"to {w['ci']['realized_ndcg'][1]:.3f}) on {w['n_lists_ndcg']} lists, below the test "
                               f"period's {ndcg_ref:.3f} on {n_ref} (p = {running:.2g} after Holm over {m} windows)")})
    return alerts


def _summary(df: pd.DataFrame, k: int) -> dict:
    labelled = df[df["_gain"].notna()]
    from .estimators import mean_ci, proportion

    rate = []
    for p in range(1, k + 1):
        at = labelled[labelled["_pos"] == p]
        hits = int((at["_gain"] > 0).sum())
        ci = proportion(hits, len(at))
        rate.append({"position": p, "n": int(len(at)), "rate": float(hits / len(at)) if len(at) else None,
                     "ci": [ci["low"], ci["high"]] if len(at) else None})
    ndcg, clicks = [], []
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for _, lst in labelled.groupby("_list", sort=False):
        g = lst.sort_values("_pos")
        top = g[g["_pos"] <= k]
        clicks.append(float((top["_gain"] > 0).sum()))
        ideal = np.sort(g["_gain"].to_numpy())[::-1][:k]
        best = float((ideal * disc[:len(ideal)]).sum())
        if best <= 0:
            continue
        got = top["_gain"].to_numpy()
        pos = top["_pos"].to_numpy(dtype=int)
        ndcg.append(float((got * disc[pos - 1]).sum()) / best)
    lists = df.groupby("_list", sort=False)["_tier"].first()
    return {"n_lists": int(len(lists)), "n_lists_with_feedback": int(labelled["_list"].nunique()),
            "n_items_labelled": int(len(labelled)),
            "fallback_share": float((lists != "model").mean()) if len(lists) else None,
            "rate_by_position": rate,
            "realized_ndcg": float(np.mean(ndcg)) if ndcg else None, "n_lists_ndcg": len(ndcg),
            "ndcg_sd": float(np.std(ndcg, ddof=1)) if len(ndcg) > 1 else None,   # over lists: the quality test's spread
            "clicks_per_list": float(np.mean(clicks)) if clicks else None,
            "ci": {"realized_ndcg": _interval(mean_ci(np.asarray(ndcg))), "clicks_per_list": _interval(
                mean_ci(np.asarray(clicks)))}}


def _interval(ci: dict) -> list | None:
    return None if ci.get("low") is None else [ci["low"], ci["high"]]


def list_frame(case, log=None) -> pd.DataFrame:
    """One row per list served by ``POST /rank``: what an A/B analysis of list-level metrics reads.

    Columns: ``list_id``, ``group`` (the unit: user, query or session), ``ts`` (when it was
    served), ``tier`` (model, previous_champion, baseline or popularity), ``arm``, ``items``,
    ``labelled`` (items with feedback), ``clicks`` (relevant items in the top k, from the
    feedback; a click is an outcome at or above ``ranking.relevant_from``) and ``clicked`` (1 when
    any was). ``mlcase abtest analyze FILE --unit group --variant arm --metric clicks --aggregate
    sum`` then compares clicks per user (or per session) between the arms.

    Parameters
    ----------
    case : Case
    log : str or Path, optional
        The prediction log (SQLite file or SQLAlchemy URL); default ``serving.log`` or
        ``<case>/predictions.db``.
    """
    from ..serve.predlog import open_existing
    from ..tasks.ranking import k_of

    backend, _ = open_existing(case, None if log is None else str(log) if "://" in str(log) else f"sqlite:///{log}")
    try:
        pred = backend.read_frame("SELECT request_id, ts, tier, arm, unit_id, prediction FROM predictions "
                                  "WHERE request_id LIKE '%:%'")
        lab = backend.read_frame("SELECT request_id, label FROM labels ORDER BY id")
    finally:
        backend.close()
    k = k_of(case)
    thr = case.spec.ranking.relevant_from if case.spec.ranking is not None else None
    if pred.empty:
        return pd.DataFrame(columns=["list_id", "group", "ts", "tier", "arm", "items", "labelled", "clicks",
                                     "clicked"])
    last = lab.drop_duplicates("request_id", keep="last").set_index("request_id")["label"]
    pred["y"] = pd.to_numeric(pred["request_id"].map(last), errors="coerce")
    pred["list_id"] = pred["request_id"].str.rsplit(":", n=1).str[0]
    pred["pos"] = pd.to_numeric(pred["prediction"], errors="coerce")
    pred["hit"] = (pred["y"] >= (1.0 if thr is None else thr) - 1e-12) & (pred["pos"] <= k)
    out = pred.groupby("list_id", sort=False).agg(
        group=("unit_id", "first"), ts=("ts", "first"), tier=("tier", "first"), arm=("arm", "first"),
        items=("request_id", "size"), labelled=("y", "count"), clicks=("hit", "sum")).reset_index()
    out["clicks"] = out["clicks"].astype(int)
    out["clicked"] = (out["clicks"] > 0).astype(int)
    return out
