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

Score drift is the generic monitor's (the served scores against the reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


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
        out["windows"].append({"window": int(wi), **_summary(part, k)})
    return out


def _summary(df: pd.DataFrame, k: int) -> dict:
    labelled = df[df["_gain"].notna()]
    rate = []
    for p in range(1, k + 1):
        at = labelled[labelled["_pos"] == p]
        rate.append({"position": p, "n": int(len(at)),
                     "rate": float((at["_gain"] > 0).mean()) if len(at) else None})
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
            "clicks_per_list": float(np.mean(clicks)) if clicks else None}


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
