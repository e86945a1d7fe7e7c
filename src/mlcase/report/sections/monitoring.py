"""The monitoring section: drift, decisions, fallbacks and estimated vs realized performance per window.

Reads ``results["monitoring"]`` (:meth:`mlcase.monitor.MonitorResult.to_dict`,
saved by ``mlcase monitor``). Every plot draws the alert thresholds of the
spec's ``monitoring`` section; windows younger than the label delay are drawn
hollow and named "not final", never as good news. A table beside the plots
carries the same numbers. "Labels and review" says what each realized number
rests on: the holdout arm (unbiased), the model's own arm (shaped by its
action), the audit-weighted reviews; the holdout's cost per window; reviewer
agreement; and the review backlog against capacity.
"""

from __future__ import annotations

from ...formats import money
from . import Section, esc, figure, fmt, table

TITLE = "Monitoring"
ORDER = 60
STAGES = ("monitoring",)
#: what writes ``monitoring.json`` (``mlcase run`` does not): the placeholder's fix
NOT_RUN_FIX = ("Serve the model (<code>mlcase serve</code>), let it answer requests (and receive labels), then run "
               "<code>mlcase monitor</code> on the case and <code>mlcase report</code>.")

_COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b", "#0ea5e9", "#d946ef",
           "#84cc16", "#f97316"]
MAX_FEATURES_PLOTTED = 10


def build(results: dict[str, dict]) -> list[Section]:
    """One "Monitoring" section with children: alerts, drift, decisions and fallbacks, performance, windows."""
    mon = results.get("monitoring")
    if not mon:
        return []
    windows = mon.get("windows") or []
    th = mon.get("thresholds") or {}
    cur = (((results.get("case") or {}).get("spec") or {}).get("costs") or {}).get("currency") or "$"
    children = [
        Section(id="monitoring-alerts", title="Alerts", html=alerts_html(mon),
                status="error" if mon.get("alerts") else "ok"),
        Section(id="monitoring-drift", title="Data and prediction drift", html=drift_html(windows, th),
                status="error" if any(a["kind"] in ("drift", "score_drift") for a in mon.get("alerts", [])) else "ok"),
        Section(id="monitoring-decisions", title="Decisions and fallbacks", html=decisions_html(windows, th),
                status="error" if any(a["kind"] == "fallback" for a in mon.get("alerts", [])) else "ok"),
        Section(id="monitoring-performance", title="Estimated and realized performance",
                html=performance_html(windows, th, mon.get("task"), cur),
                status="error" if any(a["kind"] in ("estimated_cost", "realized_cost")
                                      for a in mon.get("alerts", [])) else "ok"),
        Section(id="monitoring-windows", title="Windows", html=windows_html(windows, cur)),
    ]
    src, reviews = (mon.get("overall") or {}).get("by_source"), mon.get("reviews")
    if src or reviews:
        warned = any(w.get("kind") in ("label_bias", "estimate_check") for w in mon.get("warnings") or [])
        children.insert(4, Section(
            id="monitoring-labels", title="Labels and review", html=labels_html(windows, src, reviews, cur),
            status="error" if any(a["kind"] == "review_backlog" for a in mon.get("alerts", [])) else (
                "warning" if warned else "ok")))
    model = mon.get("model") or {}
    version = f" version {model['version']}" if model.get("version") is not None else ""
    intro = (f"<p>{esc(fmt(mon.get('n_rows')))} predictions of <strong>{esc(model.get('name'))}</strong>{esc(version)} "
             f"from <code>{esc(mon.get('source'))}</code>, in {len(windows)} window(s) of "
             f"{esc(_duration(mon.get('window_seconds') or 0))}, compared with the training reference "
             f"(as of {esc(mon.get('as_of') or '–')}). "
             f"<strong>{len(mon.get('alerts') or [])} alert(s)</strong>.</p>")
    return [Section(id="monitoring", title=TITLE, html=intro, order=ORDER, children=children,
                    status="error" if mon.get("alerts") else "ok")]


# --------------------------------------------------------------------------- helpers
def _fig(data: list, layout: dict, height: int = 340, caption: str | None = None) -> str:
    base = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": height,
            "legend": {"orientation": "h", "y": -0.25}}
    # every x is a window's label ("2026-12-07T00:00:00Z"): on a date axis one window was drawn between ticks of
    # "23:59:59.999 Dec 6, 2026" and "00:00:00.0005", a day and times no window has
    xaxis = {"type": "category", **(layout.get("xaxis") or {})}
    return figure({"data": data, "layout": {**base, **layout, "xaxis": xaxis}}, height=height, caption=caption)


def _hline(y: float, label: str, color: str = "#ef4444", dash: str = "dash") -> tuple[dict, dict]:
    shape = {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y,
             "line": {"dash": dash, "color": color, "width": 1.5}}
    ann = {"x": 1, "y": y, "xref": "paper", "yref": "y", "text": label, "showarrow": False,
           "xanchor": "right", "yanchor": "bottom", "font": {"size": 11, "color": color}}
    return shape, ann


def _lines(*items) -> dict:
    shapes, anns = [], []
    for y, label, color in items:
        if y is None:
            continue
        s, a = _hline(y, label, color)
        shapes.append(s)
        anns.append(a)
    return {"shapes": shapes, "annotations": anns}


def _duration(seconds: float) -> str:
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} s"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.3g}%"


# --------------------------------------------------------------------------- alerts
def alerts_html(mon: dict) -> str:
    alerts = mon.get("alerts") or []
    parts = []
    if alerts:
        rows = [{"kind": a["kind"], "window": a.get("window"), "what": a.get("feature") or a.get("assumption"),
                 "value": a.get("value"), "threshold": a.get("threshold"), "message": a.get("message")}
                for a in alerts[:100]]
        more = f" (first 100 of {len(alerts)})" if len(alerts) > 100 else ""
        parts.append(table(rows, caption=f"Alerts{more}: `mlcase monitor` exits 1 while any fires"))
    else:
        parts.append("<p>No alert: no feature drifted past the PSI alert level with a significant test, the "
                     "fallback share and the costs stayed under their limits, and every assumption held.</p>")
    warnings = mon.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{esc(w.get('message'))}</li>" for w in warnings[:50])
        parts.append(f"<p>Worth a look (no alert):</p><ul>{items}</ul>")
    lab = mon.get("labels") or {}
    if lab.get("rows"):
        parts.append(f"<p>Labels: {fmt(lab.get('rows'))} read for {fmt(lab.get('request_ids'))} request ids, "
                     f"{fmt(lab.get('matched'))} joined to predictions; {fmt(lab.get('duplicated_request_ids'))} "
                     f"request ids labelled more than once ({fmt(lab.get('conflicting_request_ids'))} with "
                     f"different values; {esc(lab.get('policy'))}); {fmt(lab.get('unmatched_request_ids'))} "
                     "labels for unknown request ids.</p>")
    return "".join(parts)


# --------------------------------------------------------------------------- drift
def drift_html(windows: list[dict], th: dict) -> str:
    if not windows:
        return "<p>No windows.</p>"
    x = [w["window"] for w in windows]
    peak: dict[str, float] = {}
    for w in windows:
        for f, s in w.get("drift", {}).items():
            if s.get("psi") is not None:
                peak[f] = max(peak.get(f, 0.0), s["psi"])
    shown = sorted(peak, key=lambda f: -peak[f])[:MAX_FEATURES_PLOTTED]
    data = []
    for i, f in enumerate(shown):
        data.append({"type": "scatter", "mode": "lines+markers", "name": f, "x": x,
                     "y": [w["drift"].get(f, {}).get("psi") for w in windows],
                     "line": {"color": _COLORS[i % len(_COLORS)]}})
    if any(w.get("score_drift") for w in windows):
        data.append({"type": "scatter", "mode": "lines+markers", "name": "score", "x": x,
                     "y": [(w.get("score_drift") or {}).get("psi") for w in windows],
                     "line": {"color": "#0f172a", "dash": "dot", "width": 3}})
    layout = {"xaxis": {"title": {"text": "window"}}, "yaxis": {"title": {"text": "PSI"}, "rangemode": "tozero"},
              **_lines((th.get("psi_alert"), f"alert {th.get('psi_alert')}", "#ef4444"),
                       (th.get("psi_warn"), f"warning {th.get('psi_warn')}", "#f59e0b"))}
    caption = (f"PSI per window of the {len(shown)} features that moved most, and of the score. A feature drifts "
               f"when its PSI passes the alert line and its KS / chi-square test rejects at level {th.get('alpha')} "
               "after Holm's adjustment over the window's columns.")
    fig = _fig(data, layout, caption=caption)
    last = windows[-1]
    rows = []
    for f, s in sorted(last.get("drift", {}).items(), key=lambda kv: -(kv[1].get("psi") or 0)):
        rows.append({"feature": f, "status": s.get("status"), "PSI": s.get("psi"), "JS": s.get("js"),
                     "test": "KS" if s.get("kind") == "numeric" else "chi-square",
                     "statistic": s.get("ks") if s.get("kind") == "numeric" else s.get("chi2"),
                     "p": s.get("p_value"), "p (Holm)": s.get("p_adjusted"), "missing": _pct(s.get("missing_rate")),
                     "missing (train)": _pct(s.get("missing_rate_ref")),
                     "unseen": (s.get("unseen") or {}).get("count")})
    sd = last.get("score_drift")
    if sd:  # the score's own row: its PSI is plotted, and it can warn or alert
        rows.append({"feature": "score (model output)", "status": sd.get("status"), "PSI": sd.get("psi"),
                     "JS": sd.get("js"), "test": "KS", "statistic": sd.get("ks"), "p": sd.get("p_value"),
                     "p (Holm)": sd.get("p_adjusted"), "missing": "–", "missing (train)": "–", "unseen": None})
    return fig + table(rows, caption=f"Drift in the latest window ({last['window']}, {last['n']} rows)")


# --------------------------------------------------------------------------- decisions and fallbacks
def decisions_html(windows: list[dict], th: dict) -> str:
    if not windows:
        return ""
    x = [w["window"] for w in windows]
    keys = sorted({k for w in windows for k in w.get("decisions", {})})
    data = [{"type": "bar", "name": k, "x": x, "y": [w["decisions"].get(k, 0.0) for w in windows],
             "marker": {"color": _COLORS[i % len(_COLORS)]}} for i, k in enumerate(keys)]
    ref = windows[0].get("decisions_ref") or {}
    lines = [(v, f"training {k} {100 * v:.3g}%", "#334155") for k, v in ref.items() if k == "flag"]
    dec_fig = _fig(data, {"barmode": "stack", "yaxis": {"title": {"text": "share of decisions"}, "range": [0, 1]},
                          **_lines(*lines)},
                   caption="Share of each decision per window" + (" (dashed: flag rate on the validation rows)"
                                                                   if lines else ""))
    tiers = sorted({t for w in windows for t in w["fallback"].get("by_tier", {}) if t != "model"})
    fb = [{"type": "bar", "name": t, "x": x, "y": [w["fallback"]["by_tier"].get(t, 0.0) for w in windows],
           "marker": {"color": _COLORS[(i + 3) % len(_COLORS)]}} for i, t in enumerate(tiers)]
    fb.append({"type": "scatter", "mode": "lines+markers", "name": "fallback share", "x": x,
               "y": [w["fallback"]["share"] for w in windows], "line": {"color": "#0f172a"}})
    limit = th.get("max_fallback_share")
    fb_fig = _fig(fb, {"barmode": "stack", "yaxis": {"title": {"text": "share of answers"}, "rangemode": "tozero"},
                       **_lines((limit, f"max {_pct(limit)}", "#ef4444"))},
                  caption="Answers given by a fallback tier, by tier; above the red line the window alerts")
    rows = [{"window": w["window"], "fallback": _pct(w["fallback"]["share"]),
             "top reasons": "; ".join(f"{r} ({_pct(s)})" for r, s in list(w["fallback"].get("by_reason", {}).items())[:3])}
            for w in windows if w["fallback"]["share"] > 0]
    return dec_fig + fb_fig + (table(rows, caption="Fallback reasons") if rows else "")


# --------------------------------------------------------------------------- performance
def performance_html(windows: list[dict], th: dict, task: str | None, cur: str = "$") -> str:
    if not windows:
        return ""
    has_cost = any(((w.get("estimated") or {}).get("cost")) or ((w.get("realized") or w.get("realized_so_far") or {})
                                                               .get("cost") is not None) for w in windows)
    parts = []
    if has_cost:
        parts.append(_perf_fig(windows, "cost", f"cost per decision ({cur})",
                               [(th.get("max_estimated_cost"), f"max estimated {money(th.get('max_estimated_cost'), cur)}",
                                 "#f59e0b"),
                                (th.get("max_realized_cost"), f"max realized {money(th.get('max_realized_cost'), cur)}",
                                 "#ef4444")], key_label="cost per decision"))
    metric = "accuracy" if task in ("binary", "multiclass") else ("rmse" if task == "regression" else None)
    if metric:
        parts.append(_perf_fig(windows, metric, metric, []))
    if task == "binary":
        parts.append("<p>Estimated values come from the model's calibrated probabilities before any label "
                     "arrives (confidence-based performance estimation); the band is the 95% sampling range of "
                     "the realized value if the probabilities are right. Hollow grey points are windows younger "
                     "than the label delay: their labels are not all in, so they are not final.</p>")
    return "".join(parts) or "<p>No labels and no estimate for this task yet.</p>"


def _perf_fig(windows: list[dict], key: str, label: str, limits: list, key_label: str | None = None) -> str:
    x = [w["window"] for w in windows]
    data = []
    est = [(w.get("estimated") or {}).get(key) for w in windows]
    if any(isinstance(e, dict) and e.get("value") is not None for e in est):
        lo = [e.get("low") if isinstance(e, dict) else None for e in est]
        hi = [e.get("high") if isinstance(e, dict) else None for e in est]
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": hi, "line": {"width": 0},
                     "showlegend": False, "hoverinfo": "skip"})
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": lo, "line": {"width": 0}, "fill": "tonexty",
                     "fillcolor": "rgba(37,99,235,0.15)", "name": "estimated 95% band"})
        data.append({"type": "scatter", "mode": "lines+markers", "x": x,
                     "y": [e.get("value") if isinstance(e, dict) else None for e in est],
                     "name": f"estimated {label}", "line": {"color": "#2563eb", "dash": "dash"}})
    mature = [(w.get("realized") or {}).get(key) for w in windows]
    partial = [(w.get("realized_so_far") or {}).get(key) if not w.get("realized") else None for w in windows]
    if any(v is not None for v in mature):
        data.append({"type": "scatter", "mode": "lines+markers", "x": x, "y": mature, "name": f"realized {label}",
                     "line": {"color": "#10b981"}})
    if any(v is not None for v in partial):
        data.append({"type": "scatter", "mode": "markers", "x": x, "y": partial, "name": "realized so far (not final)",
                     "marker": {"color": "#94a3b8", "symbol": "circle-open", "size": 10}})
    if not data:
        return ""
    layout = {"yaxis": {"title": {"text": label}}, "xaxis": {"title": {"text": "window"}}, **_lines(*limits)}
    return _fig(data, layout, caption=f"Estimated vs realized {key_label or label} per window")


# --------------------------------------------------------------------------- windows table
def windows_html(windows: list[dict], cur: str = "$") -> str:
    rows = []
    for w in windows:
        drift = [f for f, s in w.get("drift", {}).items() if s.get("status") == "drift"]
        est = w.get("estimated") or {}
        real = w.get("realized") or {}
        so_far = w.get("realized_so_far") or {}
        rows.append({"window": w["window"], "rows": w["n"] if not w["too_small"] else f"{w['n']} (too few)",
                     "labels": "not final" if not w["mature"] else _pct(1 - (w["labels"]["unlabelled_share"] or 0)),
                     "label delay (median)": _delay(w["labels"].get("delay_median_s")),
                     "drifted": ", ".join(drift) or "–",
                     "fallback": _pct(w["fallback"]["share"]),
                     # money in the case's currency, to the cent and below a cent to three digits ("0.03" had none)
                     "est. cost": _money_or_none((est.get("cost") or {}).get("value"), cur),
                     "realized cost": _money_or_none(real.get("cost"), cur) if real else (
                         f"{money(so_far.get('cost'), cur, 3)} (not final)" if so_far.get("cost") is not None else None),
                     "est. accuracy": (est.get("accuracy") or {}).get("value"),
                     "realized accuracy": real.get("accuracy")})
    return table(rows, caption="Per window (realized numbers only once the window is older than the label delay)")


def _money_or_none(v, cur: str) -> str | None:
    """A cost per decision as the evaluation's table writes it (to the tenth of a cent: $0.125, not $0.12)."""
    return None if v is None else money(v, cur, 3)


def _delay(seconds) -> str:
    if seconds is None:
        return "–"
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds:.3g} s"


# --------------------------------------------------------------------------- labels and review
def _ci(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "–"
    if m.get("low") is None:
        return fmt(m["value"], 3)
    return f"{fmt(m['value'], 3)} [{fmt(m['low'], 3)}, {fmt(m['high'], 3)}]"


def labels_html(windows: list[dict], src: dict | None, reviews: dict | None, cur: str = "$") -> str:
    """Holdout vs acted-on vs audit-weighted metrics, value given up, the estimate check, reviews, backlog."""
    parts = []
    if src:
        parts.append(_sources_table(src))
        bias = [f"{m.replace('_', ' ')} {fmt(b['acted'], 3)} on the model's own labels vs {fmt(b['holdout'], 3)} on "
                f"the holdout" for m, b in (src.get("bias") or {}).items() if b["outside"]]
        if bias:
            parts.append("<p><strong>The acted-on labels are biased</strong> (outside the holdout's 95% interval): "
                         + esc("; ".join(bias)) + ". The model's action changes the outcomes it is judged on; "
                         "trust the holdout and the audit.</p>")
        parts.append(_given_up_html(windows, src.get("holdout"), cur))
        parts.append(_estimate_check_html(src.get("estimate_check")))
    if reviews:
        parts.append(_reviews_html(reviews))
        parts.append(_backlog_html(reviews.get("backlog") or {}))
    return "".join(p for p in parts if p)


def _sources_table(src: dict) -> str:
    rows = []
    for key, name in (("holdout", "holdout arm"), ("acted", "model arm (acted on)"), ("audit", "reviews + audit")):
        s = src.get(key)
        if not s:
            continue
        lab = s.get("labels") or {}
        srcs = ", ".join(f"{k} {v}" for k, v in (lab.get("sources") or {}).items())
        if key == "audit":
            weights = ("weighted by 1 / sampling probability" if s.get("automatic") is None else
                       f"the audit standing for the log's {s['automatic']:,} automatic decisions")
            srcs = f"review {lab.get('review')}, audit {lab.get('audit')} ({weights})"
        rows.append({"labels from": name, "rows": lab.get("n"), "sources": srcs or "–",
                     "precision": _ci(s.get("precision")), "recall": _ci(s.get("recall")),
                     "positive rate": _ci(s.get("positive_rate")), "final": "yes" if s.get("final") else "not yet"})
    return table(rows, caption="The model's precision, recall and positive rate by what the labels rest on "
                               "(value [95% interval]); only the holdout and the weighted audit are unbiased")


def _money_ci(m: dict | None, cur: str) -> str:
    """A money value with its 95% interval: ``$0.41 [$0.12, $0.70]``."""
    if not m or m.get("value") is None:
        return "–"
    if m.get("low") is None:
        return money(m["value"], cur)
    return f"{money(m['value'], cur)} [{money(m['low'], cur)}, {money(m['high'], cur)}]"


def _given_up_html(windows: list[dict], holdout: dict | None, cur: str = "$") -> str:
    if not holdout or not holdout.get("value_given_up"):
        return ""
    x, y, err_hi, err_lo = [], [], [], []
    for w in windows:
        g = ((w.get("by_source") or {}).get("holdout") or {}).get("value_given_up")
        if not g or g["total"]["value"] is None:
            continue
        t = g["total"]
        x.append(w["window"])
        y.append(t["value"])
        err_hi.append(None if t["high"] is None else t["high"] - t["value"])
        err_lo.append(None if t["low"] is None else t["value"] - t["low"])
    fig = ""
    if x:
        fig = _fig([{"type": "bar", "name": "value given up", "x": x, "y": y, "marker": {"color": "#f59e0b"},
                     "error_y": {"type": "data", "array": err_hi, "arrayminus": err_lo, "visible": True}}],
                   {"yaxis": {"title": {"text": f"cost given up per window ({cur})"}},
                    "xaxis": {"title": {"text": "window"}, "type": "category"}},
                   caption="Value given up by the holdout per window: the cost today's process had on the held-out "
                           "units minus the cost the model would have had on them (95% interval)")
    g = holdout["value_given_up"]
    units, n = holdout.get("units", holdout.get("n")), holdout.get("n")
    # a unit (data.id) may send several requests: the holdout counts units, its decisions are the requests
    held = f"{fmt(units)} units" + (f" ({fmt(n)} requests)" if units != n else "")
    text = (f"<p>The holdout ({held}, {_pct(holdout.get('share'))} of decisions) cost "
            f"{_money_ci(g['per_decision'], cur)} per decision more than the model would have, "
            f"{money((g.get('total') or {}).get('value'), cur)} over the whole log.")
    sizing = holdout.get("sizing")
    if sizing:
        text += (f" A precision interval of ±{sizing['precision_half_width']:g} needs about "
                 f"{fmt(sizing.get('holdout_units_needed') or sizing['holdout_rows_needed'])} held-out units"
                 + (f", giving up about {money(sizing['value_given_up'], cur)}" if sizing.get("value_given_up") is not None
                    else "") + ".")
    return fig + text + "</p>"


def _estimate_check_html(check: dict | None) -> str:
    if not check or not check.get("metrics"):
        return ""
    rows = [{"metric": m, "estimated before labels": v["estimated"], "band low": v["low"], "band high": v["high"],
             "realized on the holdout": v["realized"], "within": "yes" if v["within"] else "NO"}
            for m, v in check["metrics"].items()]
    verdict = ("the probabilities hold up: estimates before labels can be trusted" if check.get("within") else
               "the probabilities do not match the outcomes: recalibrate before trusting estimates before labels")
    return table(rows, caption=f"The estimate before labels checked against {check['n']} holdout rows "
                               f"(bands at 95% for the family): {verdict}")


_REASONS = {"flag": "flagged cases", "review": "deferred cases", "audit": "audit sample", "holdout": "holdout",
            "auto": "automatic decisions"}


def _reviews_html(reviews: dict) -> str:
    parts = [f"<p>{fmt(reviews.get('n_verdicts'))} verdicts on {fmt(reviews.get('n_cases'))} cases by "
             f"{fmt(reviews.get('n_reviewers'))} reviewer(s).</p>"]
    ag = reviews.get("model_agreement")
    if ag:
        rows = [{"reviewer": r, "cases": v["n"], "agrees with the model": _pct(v["agreement"])}
                for r, v in ag.get("by_reviewer", {}).items()]
        rows += [{"reviewer": f"(all) {_REASONS.get(reason, reason)}", "cases": v["n"],
                  "agrees with the model": _pct(v["agreement"])} for reason, v in ag.get("by_reason", {}).items()]
        parts.append(table(rows, caption=f"Reviewers vs the model: Cohen's kappa {_ci(ag)}, agreement "
                                         f"{_pct(ag.get('agreement'))} on {fmt(ag.get('n'))} verdicts"))
    bt = reviews.get("between_reviewers")
    if bt and bt.get("n") and bt.get("mean_abs_diff") is not None:
        parts.append(f"<p>Reviewers vs each other on {fmt(bt['n'])} cases reviewed twice: their numbers differ "
                     f"by {fmt(bt['mean_abs_diff'])} on average, {_pct(bt.get('agreement'))} identical.</p>")
    elif bt and bt.get("n"):
        parts.append(f"<p>Reviewers vs each other on {fmt(bt['n'])} cases reviewed twice: Cohen's kappa "
                     f"{esc(_ci(bt))}, raw agreement {_pct(bt.get('agreement'))}.</p>")
    elif bt:
        parts.append(f"<p>{esc(bt.get('note'))}: reviewer-vs-reviewer agreement needs some cases reviewed twice.</p>")
    return "".join(parts)


def _backlog_html(backlog: dict) -> str:
    rows = backlog.get("windows") or []
    if not rows:
        return ""
    x = [r["window"] for r in rows]
    data = [{"type": "bar", "name": "sent to review", "x": x, "y": [r["queued"] for r in rows],
             "marker": {"color": "#2563eb"}},
            {"type": "bar", "name": "reviewed", "x": x, "y": [r["reviewed"] for r in rows],
             "marker": {"color": "#10b981"}},
            {"type": "scatter", "mode": "lines+markers", "name": "backlog", "x": x, "y": [r["backlog"] for r in rows],
             "line": {"color": "#ef4444"}}]
    if any(r["capacity"] is not None for r in rows):
        data.append({"type": "scatter", "mode": "lines+markers", "name": "review capacity", "x": x,
                     "y": [r["capacity"] for r in rows], "line": {"color": "#334155", "dash": "dash"}})
    return _fig(data, {"barmode": "group", "yaxis": {"title": {"text": "cases"}, "rangemode": "tozero"},
                       "xaxis": {"title": {"text": "window"}, "type": "category"}},
                caption=f"Review backlog per window against the review capacity; an alert fires when it grows "
                        f"{backlog.get('alert_after')} windows in a row")
