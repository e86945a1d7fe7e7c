"""The evaluation section: value ceiling, metrics and money, lift CI, ROC/PR, calibration,
cost vs threshold, slices with CIs, latency.

Reads ``results["ceiling"]`` (:func:`mlcase.evaluate.value_ceiling`) and
``results["evaluation"]`` (:func:`mlcase.evaluate.evaluate`). Every plot has a
table or a sentence beside it carrying the same numbers, so the section reads
without JavaScript.
"""

from __future__ import annotations

import math
from typing import Any

from ...evaluate.calibration import regressed
from ...formats import money as _money
from . import Section, esc, figure, fmt, table

TITLE = "Evaluation"
ORDER = 30
STAGES = ("evaluation", "ceiling")

_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b", "#0ea5e9", "#d946ef"]


def build(results: dict[str, dict]) -> list[Section]:
    """One "Evaluation" section with a child per topic (only those whose results exist)."""
    ceiling = results.get("ceiling")
    ev = results.get("evaluation")
    if not ceiling and not ev:
        return []
    children: list[Section] = []
    if ceiling:
        children.append(Section(id="value-ceiling", title="Value ceiling (before training)",
                                html=ceiling_html(ceiling), status="error" if ceiling.get("stop") else "ok"))
    intro = ""
    if ev:
        cur = ev.get("currency", "$")
        children.append(Section(id="eval-metrics", title="Champion and baselines on the test rows",
                                html=metrics_html(ev, cur)))
        children.append(Section(id="eval-lift", title="Lift over the best baseline and the model-free floor",
                                html=lift_html(ev, cur)))
        curves = ev.get("curves") or {}
        if curves.get("roc") or curves.get("pr"):
            children.append(Section(id="eval-roc-pr", title="ROC and precision-recall", html=roc_pr_html(ev)))
        if curves.get("cost_vs_threshold"):
            children.append(Section(id="eval-threshold", title="Cost vs threshold",
                                    html=threshold_html(ev, cur)))
        if curves.get("predicted_vs_actual"):
            children.append(Section(id="eval-pred-actual", title="Predicted vs actual",
                                    html=pred_actual_html(curves["predicted_vs_actual"])))
        cal = ev.get("calibration") or {}
        if cal.get("reliability") or cal.get("reliability_after"):
            children.append(Section(id="eval-calibration", title="Calibration", html=calibration_html(cal)))
        slices = ev.get("slices") or {}
        if slices.get("columns"):
            children.append(Section(id="eval-slices", title="Slices and fairness", html=slices_html(slices, cur),
                                    status="warning" if slices.get("flags") else "ok"))
        base = ev.get("slices_baseline") or {}
        if base.get("columns"):   # a USE_BASELINE champion's own groups (AER::HMDA: linear's, not lightgbm's)
            children.append(Section(id="eval-slices-baseline",
                                    title=f"Slices and fairness of the best baseline ({base.get('model')})",
                                    html=slices_html(base, cur, "Best baseline"),
                                    status="warning" if base.get("flags") else "ok"))
        if ev.get("latency"):
            lat = ev["latency"]
            children.append(Section(id="eval-latency", title="Latency", html=latency_html(lat),
                                    status=None if lat.get("ok") is None else ("ok" if lat["ok"] else "error")))
        # a ranking decides a list at a time: n_test counts lists (AER::TravelMode read "42 test rows" for the 42
        # travellers' lists of 168 rows)
        test, valid = _units(ev, "test"), _units(ev, "valid")
        intro = (f"<p>The candidate <strong>{esc(ev.get('champion_candidate'))}</strong> against every baseline on "
                 f"{esc(test)}, touched once. "
                 + ("The choice of the best baseline" if ev.get("unit") == "list" else
                    "Thresholds, calibration and the choice of the best baseline")
                 + f" (<strong>{esc(ev.get('best_baseline'))}</strong>) "
                 + ("was" if ev.get("unit") == "list" else "were") + f" made on the {esc(valid)}.</p>")
    else:
        intro = "<p>The run stopped at the value ceiling; no model was trained or evaluated.</p>"
    return [Section(id="evaluation", title=TITLE, html=intro, order=ORDER, children=children)]


# --------------------------------------------------------------------------- helpers
def _units(ev: dict, part: str) -> str:
    """"891 test rows", or for a ranking "42 test lists (168 rows)"."""
    n = ev.get(f"n_{part}")
    if ev.get("unit") == "list":
        rows = ev.get(f"n_{part}_rows")
        return f"{fmt(n)} {part}{'' if part == 'test' else 'ation'} lists" + (f" ({fmt(rows)} rows)" if rows else "")
    return f"{fmt(n)} {part}{'' if part == 'test' else 'ation'} rows"


def _ci(d: dict | None, cur: str | None = None, digits: int = 3) -> str:
    if not d:
        return "–"
    if cur is not None:
        return (f"{_money(d.get('estimate'), cur, digits)} "
                f"[{_money(d.get('ci_low'), cur, digits)}, {_money(d.get('ci_high'), cur, digits)}]")
    return f"{fmt(d.get('estimate'))} [{fmt(d.get('ci_low'))}, {fmt(d.get('ci_high'))}]"


def _fig(data: list, layout: dict, height: int = 360, caption: str | None = None) -> str:
    base = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "height": height,
            "legend": {"orientation": "h", "y": -0.2}}
    return figure({"data": data, "layout": {**base, **layout}}, height=height, caption=caption)


def _vline(x: float, label: str, dash: str = "dash", color: str = "#334155") -> tuple[dict, dict]:
    shape = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
             "line": {"dash": dash, "color": color, "width": 1.5}}
    ann = {"x": x, "y": 1, "xref": "x", "yref": "paper", "text": label, "showarrow": False,
           "yanchor": "bottom", "font": {"size": 11, "color": color}}
    return shape, ann


# --------------------------------------------------------------------------- value ceiling
def ceiling_html(c: dict) -> str:
    cur = c.get("currency", "$")
    reasons = "".join(f"<li>{esc(r)}</li>" for r in c.get("reasons") or [])
    head = f"<ul>{reasons}</ul>" if reasons else ""
    if not c.get("applicable", True):
        return head
    period = (c.get("volume") or {}).get("period")
    binary = c.get("task", "binary") == "binary"
    rows = []
    for name, d in (c.get("current") or {}).items():
        row = {"process": name, "kind": "model-free policy" if d.get("model_free", True) else "rule baseline",
               "what": d.get("description")}
        if binary:
            row["flags"] = f"{100 * d.get('flag_rate', 0):.3g}%"
        rows.append({**row, "cost per decision": _money(d.get("cost_per_decision"), cur),
                     f"cost per {period or 'period'}": _money(d.get("cost_per_period"), cur, 0),
                     "best": "best" if name == c.get("best_current") else ""})
    p = c.get("perfect") or {}
    row = {"process": "perfect model", "kind": "upper bound",
           "what": "knows the truth" + (", within review capacity" if binary else "")}
    if binary:
        row["flags"] = f"{100 * p.get('flag_rate', 0):.3g}%"
    rows.append({**row, "cost per decision": _money(p.get("cost_per_decision"), cur),
                 f"cost per {period or 'period'}": _money(p.get("cost_per_period"), cur, 0), "best": ""})
    names = [r["process"] for r in rows]
    values = [d.get("cost_per_decision") for d in (c.get("current") or {}).values()] + [p.get("cost_per_decision")]
    best = (c.get("current") or {}).get(c.get("best_current") or "", {}).get("cost_per_decision")
    shapes, anns = [], []
    if best is not None and c.get("required_per_decision") is not None:
        bar = best - c["required_per_decision"]
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": bar, "y1": bar,
                       "line": {"dash": "dash", "color": "#ef4444"}})
        anns.append({"xref": "paper", "yref": "y", "x": 1, "y": bar, "xanchor": "right", "yanchor": "bottom",
                     "showarrow": False, "text": "a model must get below this line", "font": {"color": "#ef4444"}})
    fig = _fig([{"type": "bar", "x": names, "y": values, "marker": {"color": _COLORS[:len(names)]},
                 "name": "cost per decision"}],
               {"title": {"text": "Cost per decision: processes that need no model vs a perfect model"},
                "yaxis": {"title": {"text": f"cost per decision ({cur})"}}, "shapes": shapes, "annotations": anns},
               height=320)
    return head + table(rows) + fig


# --------------------------------------------------------------------------- metrics and money
_METRIC_COLS = {"binary": ["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "flag_rate"],
                "multiclass": ["log_loss", "accuracy", "macro_f1"],
                "regression": ["rmse", "mae", "r2", "mape"]}


def metrics_html(ev: dict, cur: str) -> str:
    task = ev.get("task", "binary")
    period = (ev.get("volume") or {}).get("period")
    rows = []
    for name, m in (ev.get("metrics") or {}).items():
        money = (ev.get("money") or {}).get(name, {})
        role = "candidate" if name == ev.get("champion_candidate") else (
            "best baseline" if name == ev.get("best_baseline") else
            "other candidate" if (ev.get("roles") or {}).get(name) == "candidate" else "baseline")
        row: dict[str, Any] = {"model": name, "role": role}
        if task == "binary":
            row["threshold"] = (ev.get("thresholds") or {}).get(name)
        for k in _METRIC_COLS.get(task) or [c for c in m if c in ("value_per_list",) or "@" in c or c == "mrr"]:
            if k in m:
                row[k] = m[k]
        rows.append({**row, **_money_cols(money, cur, period)})
    for name, d in (ev.get("model_free") or {}).items():
        rows.append({"model": f"model-free: {name}",
                     "role": "best model-free policy" if d.get("best") else "model-free policy",
                     "what": d.get("description"), **_money_cols(d.get("money") or {}, cur, period)})
    note = ""
    cap = ev.get("capacity_check") or {}
    if cap:
        note = (f"<p>Review capacity {100 * cap['capacity']:.3g}% of cases: the candidate's threshold flags "
                f"{100 * cap['valid_flag_rate']:.3g}% of validation rows and {100 * cap['test_flag_rate']:.3g}% of "
                f"test rows{' (above capacity: watch the flag rate)' if cap.get('test_over_capacity') else ''}.</p>")
    matched = ev.get("threshold_notes") or {}
    if matched:
        note += ("<p>Thresholds carried to the served model by their rate (the out-of-fold threshold would flag "
                 "a different share of rows there): " + "; ".join(f"<strong>{esc(k)}</strong>: {esc(v)}"
                                                                  for k, v in matched.items()) + ".</p>")
    if ev.get("decision_note"):
        note += f"<p>The decision: {esc(ev['decision_note'])}.</p>"
    points = ev.get("point_notes") or {}
    if points:
        note += ("<p>Each model's prediction is its score mapped to the cheapest prediction for the costs (a "
                 "quantile of the outcome: the median where under- and over-prediction cost the same), where that "
                 "saves money on validation rows the map was not fitted on; the metrics are the score's: "
                 + "; ".join(f"<strong>{esc(k)}</strong> {esc(v)}" for k, v in points.items()) + ".</p>")
    caption = ("Metrics at each model's own threshold; money from the case's cost matrix, row by row. Model-free "
               "policies need no model (never act, act at random, a constant, the prior); a random policy's money "
               "is its exact expectation")
    if ev.get("unit") == "list":
        caption = ("List metrics at k; money per list: the value a list's order leaves against the best order of its "
                   "items. Model-free policies need no model (a random order, popularity); a random order's money is "
                   "its exact expectation")
    return table(rows, caption=caption) + note


def _money_cols(money: dict, cur: str, period: str | None) -> dict:
    cols = {"cost / decision": _money(money.get("per_decision"), cur, 3),
            "cost / 1,000": _money(money.get("per_1000"), cur, 0),
            "total on test": _money(money.get("total_test"), cur, 0)}
    if period:
        cols[f"cost / {period}"] = _money(money.get("per_period"), cur, 0)
    return cols


def _resampled(ev: dict) -> str:
    """What the lift's bootstrap resamples, from the evaluation's ``resampled``: a group split's whole test groups, a
    time split's runs of consecutive rows, else the rows (or lists) one by one. ggplot2::txhousing by year resampled
    66 runs of 30 consecutive months and read "resamples of the test rows"."""
    by = ev.get("resampled") or {}
    if by.get("unit") == "group":
        n = by.get("n_test_groups")
        return f"the {fmt(n)} test groups of '{by.get('column')}' (whole groups, with their rows)"
    if by.get("unit") == "time block":
        return (f"runs of {fmt(by.get('block_length'))} consecutive test rows in '{by.get('column')}' order "
                f"({_count(by.get('n_blocks'))} blocks over {_count(ev.get('n_test'))} rows: circular block bootstrap, "
                "Politis-White length, as their costs are autocorrelated in time)")
    return f"the test {'lists' if ev.get('unit') == 'list' else 'rows'} (all {_count(ev.get('n_test'))}, one by one)"


def _count(v) -> str:
    return f"{int(v):,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else fmt(v)


def ci_design(ev: dict) -> str:
    """Which design the lift's CIs come from, in a sentence (the report's lift paragraph and the model card)."""
    lift = ev.get("lift") or {}
    level = lift.get("percentile_level")
    read = (f"; percentiles read at {100 * level:.2f}%, Hesterberg's expanded level for that many resampled units"
            if level and abs(level - 0.95) > 5e-5 else "")
    return (f"paired bootstrap, {fmt(lift.get('n_boot'))} resamples of {_resampled(ev)}, 95% CI{read}")


def lift_html(ev: dict, cur: str) -> str:
    lift = ev.get("lift") or {}
    money = lift.get("money_per_decision") or {}
    metric = lift.get("metric") or {}
    op = (ev.get("operating_cost") or {}).get("per_decision", 0.0)
    required = op + (ev.get("min_lift") or 0.0)
    text = (f"<p>Lift of <strong>{esc(lift.get('candidate'))}</strong> over <strong>{esc(lift.get('baseline'))}"
            f"</strong> ({esc(ci_design(ev))}; "
            f"positive favours the candidate): money per decision {esc(_ci(money, cur))}; "
            f"{esc(metric.get('name'))} {esc(_ci(metric))}. The model must add {esc(_money(required, cur, 3))} per "
            f"decision (operating cost {esc(_money(op, cur, 3))}, {esc((ev.get('operating_cost') or {}).get('source'))}"
            f" + min_lift).</p>")
    floor = ev.get("best_model_free") or ev.get("trivial_baseline")
    fv = ev.get("floor_vs_never")
    info = (ev.get("model_free") or {}).get(floor)
    if info:
        text += (f"<p>The floor is the best model-free policy on the validation rows: <strong>{esc(floor)}</strong> "
                 f"({esc(info.get('description'))}), {esc(_money(info.get('cost_per_decision'), cur, 3))} per "
                 "decision on the test rows. A model or baseline earns GO or USE_BASELINE only by beating it with "
                 "a 95% CI above zero.</p>")
    if fv:
        text += (f"<p>{esc(fv['description'][0].upper() + fv['description'][1:])} saves "
                 f"{esc(_ci(fv, cur))} per decision over never acting: what the process gains with no "
                 "model at all.</p>")
    value = ev.get("value_per_period")
    if value:
        text += (f"<p>Value per {esc(value['period'])} of <strong>{esc(lift.get('candidate'))}</strong> over "
                 f"<strong>{esc(value.get('versus') or lift.get('baseline'))}</strong> at {esc(fmt(value['decisions']))} "
                 "decisions: "
                 f"{esc(_money(value['expected'], cur, 0))} expected, range {esc(_money(value['low'], cur, 0))} to "
                 f"{esc(_money(value['high'], cur, 0))}; after operating cost "
                 f"{esc(_money(value['net_expected'], cur, 0))} "
                 f"({esc(_money(value['net_low'], cur, 0))} to {esc(_money(value['net_high'], cur, 0))}).</p>")
    floor_label = f"model-free: {floor}" if ev.get("model_free") else floor
    rows = [{"comparison": f"{lift.get('candidate')} vs {lift.get('baseline')}", **_est(money)}]
    for name, d in (ev.get("lift_over_model_free") or ev.get("lift_over_trivial") or {}).items():
        rows.append({"comparison": f"{name} vs {floor_label}", **_est(d)})
    if fv:
        rows.append({"comparison": f"model-free: {fv['policy']} vs model-free: never act", **_est(fv)})
    y = [r["comparison"] for r in rows][::-1]
    est = [r["estimate"] for r in rows][::-1]
    lo = [r["estimate"] - r["ci_low"] for r in rows][::-1]
    hi = [r["ci_high"] - r["estimate"] for r in rows][::-1]
    shapes, anns = [], []
    for x, label, dash, color in ((0.0, "0", "solid", "#64748b"), (required, "required", "dash", "#ef4444")):
        s, a = _vline(x, label, dash, color)
        shapes.append(s)
        anns.append(a)
    fig = _fig([{"type": "scatter", "mode": "markers", "x": est, "y": y, "name": "lift per decision",
                 "error_x": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                 "marker": {"size": 10, "color": _COLORS[0]}}],
               {"title": {"text": f"Money saved per decision, 95% CI ({cur})"},
                "xaxis": {"title": {"text": f"lift per decision ({cur})"}}, "yaxis": {"automargin": True},
                "shapes": shapes, "annotations": anns}, height=120 + 50 * len(rows))
    table_rows = [{"comparison": r["comparison"], "lift per decision": _money(r["estimate"], cur, 3),
                   "95% CI low": _money(r["ci_low"], cur, 3), "95% CI high": _money(r["ci_high"], cur, 3)}
                  for r in rows]
    samples = lift.get("samples_quantiles") or (ev.get("curves") or {}).get("lift_samples")
    hist = ""
    if samples:
        hist = _fig([{"type": "histogram", "x": samples, "nbinsx": 30, "marker": {"color": _COLORS[0]},
                      "name": "bootstrap lift (percentiles)"}],
                    {"title": {"text": "Bootstrap distribution of the lift (1st..99th percentile points)"},
                     "xaxis": {"title": {"text": f"lift per decision ({cur})"}}, "shapes": shapes[:1]}, height=260)
    return text + fig + table(table_rows) + hist


def _est(d: dict) -> dict:
    return {"estimate": d.get("estimate", 0.0), "ci_low": d.get("ci_low", 0.0), "ci_high": d.get("ci_high", 0.0)}


# --------------------------------------------------------------------------- curves
def roc_pr_html(ev: dict) -> str:
    curves = ev.get("curves") or {}
    metrics = ev.get("metrics") or {}
    roc, pr = curves.get("roc") or {}, curves.get("pr") or {}
    roc_data = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "chance",
                 "line": {"dash": "dot", "color": "#94a3b8"}}]
    pr_data = []
    for i, name in enumerate(roc):
        auc = metrics.get(name, {}).get("roc_auc")
        roc_data.append({"type": "scatter", "mode": "lines", "x": roc[name]["fpr"], "y": roc[name]["tpr"],
                         "name": f"{name} (AUC {fmt(auc, 3)})", "line": {"color": _COLORS[i % len(_COLORS)]}})
    for i, name in enumerate(pr):
        ap = metrics.get(name, {}).get("pr_auc")
        pr_data.append({"type": "scatter", "mode": "lines", "x": pr[name]["recall"], "y": pr[name]["precision"],
                        "name": f"{name} (AP {fmt(ap, 3)})",
                        "line": {"color": _COLORS[i % len(_COLORS)], "shape": "vh"}})
    return (_fig(roc_data, {"title": {"text": "ROC (test rows)"}, "xaxis": {"title": {"text": "false positive rate"}},
                            "yaxis": {"title": {"text": "true positive rate"}}})
            + _fig(pr_data, {"title": {"text": "Precision-recall (test rows)"},
                             "xaxis": {"title": {"text": "recall"}}, "yaxis": {"title": {"text": "precision"}}}))


def threshold_html(ev: dict, cur: str) -> str:
    c = ev["curves"]["cost_vs_threshold"]
    chosen, cap, cap_t = c.get("chosen_threshold"), c.get("capacity"), c.get("capacity_threshold")
    data = [{"type": "scatter", "mode": "lines", "x": c["threshold"], "y": c["cost"], "name": "cost per decision",
             "line": {"color": _COLORS[0]}},
            {"type": "scatter", "mode": "lines", "x": c["threshold"], "y": c["flagged"], "name": "share flagged",
             "yaxis": "y2", "line": {"color": _COLORS[1], "dash": "dot"}}]
    shapes, anns = [], []
    if chosen is not None:
        s, a = _vline(chosen, f"chosen {chosen:.3g}", "solid", "#10b981")
        shapes.append(s)
        anns.append(a)
    if cap_t is not None:
        s, a = _vline(cap_t, f"capacity {100 * cap:.3g}%", "dash", "#ef4444")
        a["yanchor"] = "top"
        shapes.append(s)
        anns.append(a)
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": 0, "x1": cap_t, "y0": 0, "y1": 1,
                       "fillcolor": "#ef4444", "opacity": 0.06, "line": {"width": 0}})
    # zoom on the thresholds that flag anything (scores of rare events crowd near 0)
    busy = [t for t, f in zip(c["threshold"], c["flagged"], strict=True) if f >= 0.01]
    x_max = min(1.0, max([max(busy) if busy else 1.0, 1.5 * (chosen or 0), 1.5 * (cap_t or 0), 0.01]))
    fig = _fig(data, {"title": {"text": f"Cost vs threshold for {c.get('bundle')} (validation rows)"},
                      "xaxis": {"title": {"text": "threshold on P(positive)"}, "range": [0, x_max]},
                      "yaxis": {"title": {"text": f"cost per decision ({cur})"}},
                      "yaxis2": {"title": {"text": "share flagged"}, "overlaying": "y", "side": "right",
                                 "range": [0, 1], "tickformat": ".0%"},
                      "shapes": shapes, "annotations": anns})
    cap_txt = (f" Review capacity {100 * cap:.3g}%: thresholds below {fmt(cap_t, 3)} (shaded) would flag more "
               "cases than the team can review." if cap is not None and cap_t is not None else "")
    return (f"<p>The threshold minimises the cost per decision on the validation rows, each row with its own "
            f"costs; chosen: {esc(fmt(chosen, 4))}.{esc(cap_txt)}</p>" + fig)


def pred_actual_html(d: dict) -> str:
    lo = min(d["actual"] + d["predicted"]) if d["actual"] else 0
    hi = max(d["actual"] + d["predicted"]) if d["actual"] else 1
    return _fig([{"type": "scatter", "mode": "markers", "x": d["actual"], "y": d["predicted"], "name": "test rows",
                  "marker": {"size": 5, "opacity": 0.6, "color": _COLORS[0]}},
                 {"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "perfect",
                  "line": {"dash": "dot", "color": "#94a3b8"}}],
                {"title": {"text": "Predicted vs actual (sample of test rows)"},
                 "xaxis": {"title": {"text": "actual"}}, "yaxis": {"title": {"text": "predicted"}}})


def calibration_html(cal: dict) -> str:
    data = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "perfectly calibrated",
             "line": {"dash": "dot", "color": "#94a3b8"}}]
    curves = [("before calibration", cal.get("reliability_before"), _COLORS[3]),
              ("after calibration", cal.get("reliability_after"), _COLORS[2]),
              ("candidate", cal.get("reliability"), _COLORS[0])]
    for label, r, color in curves:
        if r:
            data.append({"type": "scatter", "mode": "lines+markers", "x": r["mean_predicted"], "y": r["observed"],
                         "name": label, "line": {"color": color}, "text": [f"{n} rows" for n in r["count"]]})
    if cal.get("applied"):
        text = (f"<p>The candidate was calibrated ({esc(cal.get('method'))}, fitted on the validation rows). "
                f"Expected calibration error on the test rows: {esc(fmt(cal.get('ece_test_before'), 3))} before, "
                f"{esc(fmt(cal.get('ece_test_after'), 3))} after; log loss "
                f"{esc(fmt(cal.get('log_loss_test_before'), 4))}"
                f" before, {esc(fmt(cal.get('log_loss_test_after'), 4))} after."
                + (f" The calibration, chosen on the validation rows alone, did not carry over to the test rows "
                   f"(its {esc(' and '.join(regressed(cal)))} rose): "
                   "<code>evaluation.calibrate: none</code> keeps the model's own scores."
                   if regressed(cal) else "") + "</p>")
    else:
        text = (f"<p>Not recalibrated ({esc(cal.get('note') or cal.get('setting'))}). Expected calibration error "
                f"on the test rows: {esc(fmt(cal.get('ece_test'), 3))}.</p>")
    top = max([v for _, r, _ in curves if r for v in (*r["mean_predicted"], *r["observed"])] or [1.0])
    top = min(1.0, 1.1 * top)
    return text + _fig(data, {"title": {"text": "Reliability (test rows, equal-count bins)"},
                              "xaxis": {"title": {"text": "mean predicted probability"}, "range": [0, top]},
                              "yaxis": {"title": {"text": "observed rate"}, "range": [0, top]}})


# --------------------------------------------------------------------------- slices
_SKIP = {"group", "n", "insufficient_evidence", "positives", "baseline_cost_per_decision", "lift_per_decision"}


def slices_html(slices: dict, cur: str, who: str = "Candidate") -> str:
    parts = []
    flags = slices.get("flags") or []
    if flags:
        parts.append("<ul>" + "".join(f"<li><strong>alert</strong>: {esc(f)}</li>" for f in flags) + "</ul>")
    for col, info in (slices.get("columns") or {}).items():
        if info.get("error"):
            parts.append(f"<p>{esc(col)}: {esc(info['error'])}</p>")
            continue
        groups = info.get("groups") or []
        metric_names = [k for k in (groups[0] if groups else {}) if not k.endswith(("_ci", "_n")) and k not in _SKIP]
        rows = []
        for g in groups:
            row: dict[str, Any] = {"group": g["group"], "n": g["n"]}
            if "positives" in g:
                row["positives"] = g["positives"]
            for m in metric_names:
                v, ci = g.get(m), g.get(f"{m}_ci")
                digits = 3
                if m == "cost_per_decision":
                    row[m] = _money(v, cur) + (f" [{_money(ci[0], cur)}, {_money(ci[1], cur)}]" if ci else "")
                else:
                    row[m] = fmt(v, digits) + (f" [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else "")
            if "lift_per_decision" in g:
                row["lift vs baseline"] = _money(g.get("lift_per_decision"), cur)
            row["evidence"] = "insufficient evidence" if g.get("insufficient_evidence") else "ok"
            rows.append(row)
        kind = "sensitive column" if info.get("sensitive") else "slice"
        extra = []
        lg = info.get("largest_gap")
        if lg:
            ci = lg.get("ci") or [None, None]
            ci_txt = f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if None not in ci else ""
            rel = " times the overall MAE" if lg.get("relative_to_overall") else ""
            extra.append(f"largest gap: {lg['metric']} {lg['gap']:.3f}{rel}{ci_txt} between '{lg['low_group']}' and "
                         f"'{lg['high_group']}'{', flagged' if lg.get('flagged') else ''}")
        for key, label in (("demographic_parity_difference", "demographic parity difference"),
                           ("equalized_odds_difference", "equalized odds difference")):
            if info.get(key) is not None:
                extra.append(f"{label} {info[key]:.3f} (fairlearn)")
        judged = info.get("equalized_odds_judged")
        if judged:
            ci = judged.get("ci") or [None, None]
            ci_txt = f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if None not in ci else ""
            extra.append(f"equalized odds difference on rates of {slices.get('min_slice_size')}+ rows "
                         f"{judged['value']:.3f}{ci_txt} ({judged['metric']})")
        extra += list(info.get("notes") or [])
        parts.append(f"<h4>{esc(col)} ({kind})</h4>"
                     + (f"<p>{esc('; '.join(extra))}.</p>" if extra else "")
                     + table(rows, caption=f"{who} per group, 95% CI in brackets (Wilson's for rates, bootstrap for costs and errors); groups under "
                                           f"{slices.get('min_slice_size')} rows: insufficient evidence"))
        if info.get("per_class"):
            from ...evaluate.slices import per_class_rows

            parts.append(table(per_class_rows(info), caption=f"{who} per class, that class against the rest: the "
                               f"share of each group of {slices.get('min_slice_size')}+ rows predicted it (fairlearn's "
                               "selection rate), the largest gaps with Newcombe's 95% CI"))
        plot_metric = lg["metric"] if lg else "cost_per_decision"
        ok = [g for g in groups if g.get(plot_metric) is not None]
        if ok:
            est = [g[plot_metric] for g in ok]
            lo = [g[plot_metric] - g[f"{plot_metric}_ci"][0] if g.get(f"{plot_metric}_ci") else 0 for g in ok]
            hi = [g[f"{plot_metric}_ci"][1] - g[plot_metric] if g.get(f"{plot_metric}_ci") else 0 for g in ok]
            parts.append(_fig([{"type": "scatter", "mode": "markers", "x": est, "y": [str(g["group"]) for g in ok],
                                "error_x": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                                "marker": {"size": 9, "color": [_COLORS[3] if g.get("insufficient_evidence")
                                                                else _COLORS[0] for g in ok]},
                                "name": plot_metric}],
                              {"title": {"text": f"{plot_metric} by {col} (95% CI; red: insufficient evidence)"},
                               "xaxis": {"title": {"text": plot_metric}}, "yaxis": {"automargin": True}},
                              height=140 + 40 * len(ok)))
    return "".join(parts)


# --------------------------------------------------------------------------- latency
def latency_html(lat: dict) -> str:
    if "single_p50_ms" not in lat:
        return f"<p>{esc(lat.get('note', 'not measured'))}</p>"
    limit = lat.get("limit_p95_ms")
    spread = lat.get("single_p95_spread_ms")
    rows = [{"call": "single row (best window)", "p50 ms": lat["single_p50_ms"], "p95 ms": lat["single_p95_ms"],
             "samples": lat.get("n_single")}]
    if lat.get("single_p95_own_ms") is not None:
        rows.append({"call": "single row, without waiting for a CPU", "p50 ms": None,
                     "p95 ms": lat["single_p95_own_ms"], "samples": lat.get("n_single")})
    rows.append({"call": "1,000 rows", "p50 ms": lat["batch1000_p50_ms"], "p95 ms": lat["batch1000_p95_ms"],
                 "samples": lat.get("n_batch")})
    gate = lat.get("gate_ms", lat["single_p95_ms"])
    verdict = ("no latency constraint in the spec" if limit is None else
               f"single-row p95 {gate:.2f} ms ({lat.get('gate', 'wall time')}) {'within' if lat.get('ok') else 'over'} "
               f"the {limit:g} ms limit")
    how = ""
    if spread:
        how = (f"<p>{esc(fmt(lat.get('n_single')))} single-row calls after {esc(fmt(lat.get('warmup')))} warm-up calls, in "
               f"{esc(fmt(lat.get('n_windows')))} windows; the windows' p95 ranged from {spread[0]:.2f} to "
               f"{spread[1]:.2f} ms (wall clock), and the best window is reported"
               + (f"; a single row is timed through {lat['single_path']}, what the server answers one record with"
                  if lat.get("single_path") else "")
               + (f"; {100 * lat['cpu_wait_share']:.0f}% of the timed wall time was spent waiting for a CPU"
                  if lat.get("cpu_wait_share") is not None else "")
               + (f" (load average {lat['load_average']:.2f} on {lat.get('cpu_count')} CPUs)"
                  if lat.get("load_average") is not None else "") + ".</p>")
    if lat.get("depends_on_margin") and lat.get("margin_note"):
        how += f"<p><strong>Margin:</strong> {esc(lat['margin_note'])}.</p>"
    shapes, anns = [], []
    if limit is not None:
        # on a log axis plotly.js takes shapes in data units but annotations at log10 of the value
        y_limit = math.log10(limit) if limit > 0 else 0
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": limit, "y1": limit,
                       "line": {"dash": "dash", "color": "#ef4444"}})
        anns.append({"xref": "paper", "yref": "y", "x": 1, "y": y_limit, "xanchor": "right", "yanchor": "bottom",
                     "text": f"limit {limit:g} ms", "showarrow": False, "font": {"color": "#ef4444"}})
    fig = _fig([{"type": "bar", "x": ["single row", "1,000 rows"], "y": [lat["single_p50_ms"], lat["batch1000_p50_ms"]],
                 "name": "p50", "marker": {"color": _COLORS[0]}},
                {"type": "bar", "x": ["single row", "1,000 rows"], "y": [lat["single_p95_ms"], lat["batch1000_p95_ms"]],
                 "name": "p95", "marker": {"color": _COLORS[1]}}],
               {"title": {"text": "Predict latency on this machine (ms, log scale)"}, "barmode": "group",
                "yaxis": {"title": {"text": "ms"}, "type": "log"}, "shapes": shapes, "annotations": anns},
               height=300)
    return f"<p>{esc(verdict)}.</p>" + how + table(rows) + fig
