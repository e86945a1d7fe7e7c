"""The ranking section (``task: ranking`` only): list metrics, NDCG against k, lift per position,
value per list, catalogue coverage and popularity bias.

Reads ``results["evaluation"]["ranking"]`` (:func:`mlcase.evaluate.ranking.evaluate_ranking`).
Every plot has a table beside it with the same numbers. :func:`card_markdown` gives the model
card's part (tables only: the card has no scripts).
"""

from __future__ import annotations

from typing import Any

from ...formats import money as _money_text
from . import Section, esc, figure, fmt, table

TITLE = "Ranking"
ORDER = 31
STAGES: tuple[str, ...] = ()  # built only for a ranking case; nothing (no placeholder) otherwise

_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"]
_FLOOR = "model-free:"


def _label(name: str) -> str:
    return name.replace(_FLOOR, "") + (" (model-free)" if name.startswith(_FLOOR) else "")


def _money(v: Any, cur: str, digits: int = 3) -> str:
    return _money_text(v, cur, digits)


def _ci_money(d: dict | None, cur: str) -> str:
    if not d:
        return "–"
    return f"{_money(d.get('estimate'), cur)} [{_money(d.get('ci_low'), cur)}, {_money(d.get('ci_high'), cur)}]"


def metric_rows(ev: dict) -> list[dict]:
    """One row per model and model-free policy: the list metrics and the value per list with its CI."""
    rk = ev.get("ranking") or {}
    k = rk.get("k", 10)
    cur = ev.get("currency", "$")
    values = rk.get("value_per_list") or {}
    rows = []
    for name, m in (ev.get("metrics") or {}).items():
        role = "candidate" if name == ev.get("champion_candidate") else (
            "best baseline" if name == ev.get("best_baseline") else (ev.get("roles") or {}).get(name, "baseline"))
        rows.append({"model": name, "role": role, **_metric_cells(m, k),
                     "value per list [95% CI]": _ci_money(values.get(name), cur)})
    for name, d in (ev.get("model_free") or {}).items():
        rows.append({"model": name, "role": "floor (best model-free)" if d.get("best") else "model-free",
                     **_metric_cells(d, k), "value per list [95% CI]": _ci_money(values.get(_FLOOR + name), cur)})
    return rows


def _metric_cells(m: dict, k: int) -> dict:
    return {f"NDCG@{k}": m.get(f"ndcg@{k}"), f"MAP@{k}": m.get(f"map@{k}"), f"recall@{k}": m.get(f"recall@{k}"),
            "MRR": m.get("mrr")}


def ndcg_rows(rk: dict) -> list[dict]:
    at = rk.get("ndcg_at") or {}
    ks = sorted({int(v) for d in at.values() for v in d}, key=int)
    return [{"model": _label(name), **{f"@{kk}": d.get(str(kk)) for kk in ks}} for name, d in at.items()]


def position_rows(rk: dict) -> list[dict]:
    pos = (rk.get("by_position") or {}).get("relevance_rate") or {}
    lift = (rk.get("by_position") or {}).get("lift_over_floor") or []
    n = max((len(v) for v in pos.values()), default=0)
    rows = []
    for p in range(n):
        row: dict[str, Any] = {"position": p + 1}
        for name, v in pos.items():
            row[_label(name)] = v[p] if p < len(v) else None
        row["lift over the floor"] = lift[p] if p < len(lift) else None
        rows.append(row)
    return rows


def build(results: dict[str, dict]) -> list[Section]:
    ev = results.get("evaluation") or {}
    rk = ev.get("ranking")
    if ev.get("task") != "ranking" or not rk:
        return []
    cur = ev.get("currency", "$")
    k = rk.get("k", 10)
    rel = rk.get("relevance") or {}
    intro = (f"<p>{esc(fmt(rk.get('n_lists')))} test lists (one per {esc(rk.get('group'))}; "
             f"{esc(fmt(rk.get('n_lists_with_relevant')))} hold a relevant item, mean length "
             f"{esc(fmt(rk.get('mean_list_length'), 3))}), cut at k = {esc(k)}. An item is relevant when the target is "
             f"at least {esc(fmt(rel.get('relevant_from')))}; NDCG's gain is {esc(rel.get('gain'))}. Money: a relevant "
             f"item at position 1 is worth {esc(_money(rk.get('relevant_item_value') or 1, cur, 2))}, discounted by "
             f"{esc(rk.get('discount'))} at lower positions; the best order of the same items is worth "
             f"{esc(_money(rk.get('ideal_value_per_list'), cur))} per list. Tied scores count as a random order "
             f"of the tied items (exact expectation).</p>")
    children = [Section(id="ranking-metrics", title="List metrics and value per list",
                        html=table(metric_rows(ev), caption="Means over the test lists with a relevant item; value "
                                   "per list over every test list, paired bootstrap over the lists"))]
    at = rk.get("ndcg_at") or {}
    if at:
        data = [{"type": "scatter", "mode": "lines+markers", "name": _label(name), "x": [int(v) for v in d],
                 "y": list(d.values()), "line": {"color": _COLORS[i % len(_COLORS)]}}
                for i, (name, d) in enumerate(at.items())]
        fig = figure({"data": data, "layout": {"height": 340, "xaxis": {"title": {"text": "k (list length)"},
                                                                         "type": "log"},
                                                "yaxis": {"title": {"text": "NDCG@k"}},
                                                "legend": {"orientation": "h", "y": -0.25}}},
                     caption="NDCG at several list lengths: candidate, best baseline and the model-free floor")
        children.append(Section(id="ranking-ndcg-k", title="NDCG against k", html=fig + table(ndcg_rows(rk))))
    pos = (rk.get("by_position") or {}).get("relevance_rate") or {}
    if pos:
        lift = (rk.get("by_position") or {}).get("lift_over_floor") or []
        data = [{"type": "bar", "name": _label(name), "x": list(range(1, len(v) + 1)), "y": v,
                 "marker": {"color": _COLORS[i % len(_COLORS)]}} for i, (name, v) in enumerate(pos.items())]
        data.append({"type": "scatter", "mode": "lines+markers", "name": "lift over the floor (right axis)",
                     "x": list(range(1, len(lift) + 1)), "y": lift, "yaxis": "y2", "line": {"color": "#111827"}})
        fig = figure({"data": data, "layout": {"height": 360, "barmode": "group",
                                                "xaxis": {"title": {"text": "position"}, "dtick": 1},
                                                "yaxis": {"title": {"text": "share of relevant items"}},
                                                "yaxis2": {"title": {"text": "lift (x)"}, "overlaying": "y",
                                                           "side": "right"},
                                                "legend": {"orientation": "h", "y": -0.25}}},
                     caption="How often the item at each position is relevant, and the candidate's lift over the "
                             "floor there (candidate share / floor share)")
        children.append(Section(id="ranking-positions", title="Lift per position",
                                html=fig + table(position_rows(rk), digits=3)))
    cov, bias = rk.get("coverage") or {}, rk.get("popularity_bias") or {}
    if cov:
        rows = [{"model": _label(n), "items shown in a top k": c.get("items_shown"), "catalogue": c.get("catalogue"),
                 "coverage": c.get("share"), "popularity pct of top k": (bias.get(n) or {}).get("top_k_popularity_pct"),
                 "popularity pct of the lists": (bias.get(n) or {}).get("lists_popularity_pct"),
                 "popularity bias (ratio)": (bias.get(n) or {}).get("ratio")} for n, c in cov.items()]
        children.append(Section(id="ranking-coverage", title="Catalogue coverage and popularity bias", html=table(
            rows, digits=3, caption="Coverage: share of the catalogue (training and test items) any top-k list "
                                    "shows. Popularity bias: mean training-popularity percentile of the items in the "
                                    "top k over that of all items in the lists (above 1 favours popular items)")))
    return [Section(id="ranking", title=TITLE, html=intro, order=ORDER, children=children)]


def card_markdown(ev: dict) -> list[str]:
    """The model card's ranking part: metric table, NDCG against k, lift per position (Markdown tables)."""
    rk = ev.get("ranking")
    if ev.get("task") != "ranking" or not rk:
        return []

    from ...formats import md_cell

    def md(rows: list[dict]) -> list[str]:
        if not rows:
            return []
        cols = list(dict.fromkeys(c for r in rows for c in r))
        out = ["| " + " | ".join(map(md_cell, cols)) + " |", "|" + "---|" * len(cols)]
        for r in rows:  # a model's name (a rule baseline's, the user's) as text: no pipe splits its row
            out.append("| " + " | ".join(fmt(r.get(c), 4) if not isinstance(r.get(c), str) else md_cell(r[c])
                                         for c in cols) + " |")
        return out

    k = rk.get("k", 10)
    L = [f"### Ranking (k = {k})", "", *md(metric_rows(ev)), "", "**NDCG against k**", "", *md(ndcg_rows(rk)), "",
         "**Relevance by position and lift over the floor**", "", *md(position_rows(rk)), ""]
    return L
