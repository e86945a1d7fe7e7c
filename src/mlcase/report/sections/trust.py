"""Explanations and uncertainty: SHAP importance and beeswarm, conformal coverage and deferral, the model card.

Reads ``results["explain"]`` (:func:`mlcase.explain.explain_global`),
``results["conformal"]`` (:func:`mlcase.conformal.evaluate_conformal`) and
``results["card"]`` (written by :func:`mlcase.cards.write_model_card`). Each
plot has a table beside it with the same numbers, so the section reads without
JavaScript.
"""

from __future__ import annotations

from typing import Any

from . import Section, esc, figure, fmt, plot_text, table

TITLE = "Explanations and uncertainty"
ORDER = 40
STAGES = ("explain", "conformal")
MAX_PLOT_FEATURES = 12
_BLUE, _RED, _GREY, _AMBER = "#2563eb", "#ef4444", "#94a3b8", "#f59e0b"


def build(results: dict[str, dict]) -> list[Section]:
    """One section with a child for SHAP, one for conformal prediction, and the model-card link."""
    exp, conf = results.get("explain"), results.get("conformal")
    if not exp and not conf:
        return []
    children = []
    if exp:
        children.append(Section(id="trust-shap", title="What drives the predictions (SHAP)", html=explain_html(exp)))
    if conf:
        cur = (((results.get("case") or {}).get("spec") or {}).get("costs") or {}).get("currency") or "$"
        children.append(Section(id="trust-conformal", title="Uncertainty and deferral to review",
                                html=conformal_html(conf, cur), status=_coverage_status(conf)))
    intro = ("<p>Why the model predicts what it does, how sure it is, and which cases it should hand to a "
             f"person. {card_link(results)}</p>") + _which_model(results)
    return [Section(id="trust", title=TITLE, html=intro, order=ORDER, children=children)]


def _which_model(results: dict) -> str:
    """Which model the explanations and sets below are of, where it is not the champion served (Ecdat::MedExp,
    USE_BASELINE: SHAP and the conformal intervals are the candidate lightgbm's, the server answers with linear's)."""
    described = {m for m in ((results.get("explain") or {}).get("model"), (results.get("conformal") or {}).get("model"))
                 if m}
    reg = results.get("registry") or {}
    champion = reg.get("champion_name") or (results.get("decision") or {}).get("champion")
    if not described or not champion or described == {champion}:
        return ""
    versions = {reg.get("candidate"): reg.get("candidate_version"), reg.get("baseline"): reg.get("baseline_version")}
    names = ", ".join(f"{m} (registry version {versions[m]})" if versions.get(m) is not None else m
                      for m in sorted(described))
    v = reg.get("champion_version")
    return (f'<p class="note">The explanations and uncertainty below are of <strong>{esc(names)}</strong>; the '
            f"champion served is <strong>{esc(champion)}</strong>{esc(f' (registry version {v})' if v else '')}, "
            "whose answers carry its own conformal sets and explanations.</p>")


def card_link(results: dict) -> str:
    """A link to the model card (it sits beside case.yaml, one folder above the report)."""
    card = results.get("card")
    if card:
        return ('The <a href="../model_card.html">model card</a> (<a href="../model_card.md">Markdown</a>) '
                "sums up what the model is for and what it cannot support.")
    return "The model card is not written yet: run <code>mlcase card</code>."


# --------------------------------------------------------------------------- SHAP
def explain_html(exp: dict) -> str:
    imp = exp.get("importance") or []
    out = [f"<p>Mean absolute SHAP value per column over {esc(fmt(exp.get('n_rows')))} test rows, in "
           f"<strong>{esc(_space(exp.get('output')))}</strong>; the {esc(exp.get('explainer'))} explainer on "
           f"{esc(exp.get('explained_model'))}. Encoded columns (one-hot, missing indicators) are summed back to "
           "the column they come from. Base value (the average output): "
           f"{esc(_base(exp.get('base_value'), exp.get('classes')))}.</p>"]
    for note in exp.get("notes") or []:
        out.append(f'<p class="note">Note: {esc(note)}.</p>')
    if imp:
        out.append(figure(importance_figure(imp), height=max(240, 28 * min(len(imp), MAX_PLOT_FEATURES) + 90),
                          caption="Mean |SHAP| per column"))
    if exp.get("beeswarm"):
        out.append(figure(beeswarm_figure(exp["beeswarm"], exp.get("output")),
                          height=max(280, 34 * min(len(exp["beeswarm"]), MAX_PLOT_FEATURES) + 110),
                          caption="Each dot is one test row: its SHAP value for the column (x), coloured by the "
                                  "column's value (red high, blue low; grey for categories)"))
    out.append(table([{"column": r["feature"], "mean |SHAP|": r["mean_abs_shap"]} for r in imp],
                     caption="Mean |SHAP| per column", digits=4))
    err = exp.get("additivity_max_error")
    if err is not None:
        out.append(f"<p class=\"muted\">Check: base value + SHAP values equals the model output on every row "
                   f"(largest difference {esc(f'{err:.1e}')}).</p>")
    return "".join(out)


def importance_figure(imp: list[dict]):
    import plotly.graph_objects as go

    top = imp[:MAX_PLOT_FEATURES][::-1]
    fig = go.Figure(go.Bar(x=[r["mean_abs_shap"] for r in top], y=[r["feature"] for r in top], orientation="h",
                           marker_color=_BLUE, hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=40), xaxis_title="mean |SHAP|", yaxis=dict(automargin=True))
    return fig


def beeswarm_figure(swarm: list[dict], output: str | None):
    """A beeswarm-style strip plot: one row per column, dots jittered vertically, colour by value rank."""
    import numpy as np
    import plotly.graph_objects as go

    rows = swarm[:MAX_PLOT_FEATURES]
    fig = go.Figure()
    rng = np.random.default_rng(0)
    n = len(rows)
    for i, entry in enumerate(rows):
        pts = entry.get("points") or []
        if not pts:
            continue
        y_pos = n - 1 - i
        shap_vals = np.array([p[1] for p in pts], dtype=float)
        values = [p[0] for p in pts]
        jitter = _swarm_offsets(shap_vals, rng)
        if entry.get("numeric"):
            num = np.array([np.nan if v is None else float(v) for v in values])
            colour = _rank01(num)
            marker = dict(size=6, color=colour, colorscale=[[0, _BLUE], [1, _RED]], cmin=0, cmax=1,
                          showscale=i == 0, colorbar=dict(title="value", tickvals=[0, 1], ticktext=["low", "high"],
                                                          len=0.6) if i == 0 else None, opacity=0.8)
        else:
            marker = dict(size=6, color=_GREY, opacity=0.8)
        fig.add_trace(go.Scatter(
            x=shap_vals, y=y_pos + jitter, mode="markers", marker=marker, name=entry["feature"], showlegend=False,
            text=[_short(v) for v in values],
            hovertemplate=f"{plot_text(entry['feature'])} = %{{text}}<br>SHAP %{{x:.4g}}<extra></extra>"))
    fig.add_vline(x=0, line_color="#cbd5e1")
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=40), xaxis_title=f"SHAP value ({_space(output)})",
                      yaxis=dict(tickvals=list(range(n)), ticktext=[r["feature"] for r in rows][::-1],
                                 range=[-0.6, n - 0.4], automargin=True, zeroline=False))
    return fig


def _swarm_offsets(x, rng, width: float = 0.35):
    """Vertical offsets that spread dots where they are dense (a cheap beeswarm)."""
    import numpy as np

    from ...numeric import histogram

    if len(x) < 2 or np.ptp(x) == 0:
        return rng.uniform(-width / 3, width / 3, len(x))
    hist, edges = histogram(x, bins=min(40, len(x)))  # values equal up to rounding are one bin, not an error
    idx = np.clip(np.digitize(x, edges[1:-1]), 0, len(hist) - 1)
    density = hist[idx] / hist.max()
    return rng.uniform(-1, 1, len(x)) * width * density


def _rank01(v):
    import numpy as np

    out = np.full(len(v), 0.5)
    ok = ~np.isnan(v)
    if ok.sum() > 1:
        ranks = v[ok].argsort().argsort()
        out[ok] = ranks / max(ok.sum() - 1, 1)
    return out.tolist()


# --------------------------------------------------------------------------- conformal
def conformal_html(conf: dict, cur: str = "$") -> str:
    target, cov = conf.get("target_coverage"), conf.get("coverage")
    regression = conf.get("task") == "regression"
    what = "intervals" if regression else "prediction sets"
    out = [f"<p>Split-conformal {esc(what)} ({esc(conf.get('method'))}) calibrated on "
           f"{esc(fmt(conf.get('n_calibration')))} validation rows at alpha {esc(fmt(conf.get('alpha')))}: "
           f"they should hold the true {'value' if regression else 'class'} for at least "
           f"{esc(_pct(target))} of cases. On {esc(fmt(conf.get('n_test')))} test rows they hold it for "
           f"<strong>{esc(_pct(cov))}</strong> (theory allows {esc(_pct((conf.get('coverage_bounds') or [None])[0]))}"
           f" to {esc(_pct((conf.get('coverage_bounds') or [None, None])[1]))}, give or take "
           f"{esc(_pct(2 * (conf.get('coverage_sd') or 0)))} of sampling noise).</p>"]
    design = conf.get("coverage_design")
    if design:
        out.append(f"<p>The split is by group: a group's rows are covered or missed together (intra-group correlation "
                   f"{esc(fmt(design.get('intra_group_correlation')))}), so the noise is counted over groups: the "
                   f"{esc(fmt(conf.get('n_test')))} test rows of {esc(fmt(design.get('groups_test')))} groups are worth "
                   f"about {esc(fmt(round(design.get('n_test_effective') or 0)))} independent rows.</p>")
    if conf.get("coverage_note"):
        out.append(f"<p><strong>Coverage alert:</strong> {esc(conf['coverage_note'])}.</p>")
    for label, note in conformal_notes(conf):
        out.append(f"<p><strong>{label}:</strong> {esc(note)}.</p>")
    if conf.get("by_prediction"):
        out.append(table(conf["by_prediction"], columns=["predicted_from", "predicted_to", "count", "coverage",
                                                         "mean_width"],
                         caption="Test rows by fifth of the predicted value"))
    if conf.get("by_class"):
        out.append(table(conf["by_class"], columns=["class", "count", "coverage", "mean_set_size"],
                         caption="Test rows by true class"))
    methods = conf.get("methods") or []
    if methods:
        out.append(figure(coverage_figure(methods, target), height=300, caption="Coverage per method vs target"))
        out.append(table(methods, caption=f"Conformal methods on the test rows (the served one: {conf.get('method')})"))
    if conf.get("by_set_size"):
        out.append(table(conf["by_set_size"], columns=["set_size", "count", "share", "coverage"],
                         caption="Test rows by prediction-set size"))
        empty = next((r for r in conf["by_set_size"] if r.get("set_size") == 0), None)
        if empty:   # palmerpenguins at alpha 0.5: 55% of the sets were empty, and the table alone did not say why
            out.append(f"<p>{esc(fmt(empty.get('count')))} test rows ({esc(_pct(empty.get('share')))}) got an empty "
                       "set: no class is likely enough to be kept at this level (a large alpha keeps only the classes the "
                       "model is surest of, and these rows have none). An empty set never holds the truth, so these rows count as "
                       "misses in the coverage; they ask for review like a set of two or more classes.</p>")
    if conf.get("width_histogram") and (conf["width_histogram"].get("counts") or []):
        out.append(figure(width_figure(conf["width_histogram"], conf.get("max_interval_width")), height=280,
                          caption="Interval widths on the test rows"))
    d = conf.get("deferral") or {}
    if d:
        out.append(_deferral_html(conf, d, cur))
    for a in conf.get("assumptions") or []:
        out.append(f'<p class="muted">Assumption: {esc(a)}.</p>')
    return "".join(out)


def _cut_sentence(cut: dict) -> str:
    """Where the deferral cut was chosen, and the room it keeps for new rows (:func:`mlcase.conformal.deferral.held_rows`)."""
    if not cut.get("n_validation"):
        return ""
    said = (f" How uncertain a case must be to go to review was chosen on the {esc(fmt(cut.get('n_validation')))} "
            "validation rows, as the threshold was, and the server and <code>mlcase score</code> apply the same cut")
    if cut.get("hold") is None:   # a model calibrated before the cut kept a margin
        return said + ", so the share reviewed on new rows is as near the capacity as these test rows show."
    return (said + f"; it keeps {esc(fmt(cut.get('room')))} of the {esc(fmt(cut.get('capacity_room')))} rows the "
            f"capacity left there after the flags, so that new rows stay within the capacity with "
            f"{esc(fmt(round(100 * cut['hold'])))}% confidence (the share of new rows past the cut varies from "
            "batch to batch).")


def _deferral_html(conf: dict, d: dict, cur: str = "$") -> str:
    from ...formats import money

    regression = conf.get("task") == "regression"
    limit = conf.get("max_interval_width")
    rule = (f"intervals wider than {fmt(limit)}" if regression else "sets that are not a single class")
    cap = "no limit" if d.get("capacity_share") is None else f"{_pct(d['capacity_share'])} ({d.get('capacity_rows')} rows)"
    intro = (f"<p>Deferral: cases with {esc(rule)} go to a person, most uncertain first, while flagged plus "
             f"deferred cases stay within the review capacity ({esc(cap)}). "
             f"{esc(fmt(d.get('wanted')))} cases asked to be deferred; {esc(fmt(d.get('deferred')))} were"
             + (" (the capacity binds)" if d.get("capacity_binding") else "") + "."
             + _cut_sentence(d.get("cut") or {}) + "</p>")
    if regression and limit is None:  # MASS::Boston read "cases with intervals wider than – go to a person"
        intro = ("<p>Deferral: no <code>conformal.max_interval_width</code> is set, so no interval is too wide and "
                 "every case is automated; set it to send the widest intervals to a person.</p>")
    if not d.get("enabled", True):
        intro = "<p>Deferral is switched off (<code>conformal.defer: false</code>); numbers show the model alone.</p>"
    rows = [
        {"policy": "model alone", "automated share": 1.0, "review load": d.get("flagged_share", 0.0),
         "error rate (automated)": d.get("error_rate_model_only"),
         "cost per decision": money(d.get("cost_model_only"), cur, 3)},
        {"policy": "model + deferral", "automated share": d.get("automated_share"), "review load": d.get("review_load"),
         "error rate (automated)": d.get("error_rate_automated"),
         "cost per decision": money(d.get("cost_combined"), cur, 3)},
    ]
    if regression:
        for r, mae in zip(rows, (_mae_all(d), d.get("mae_automated")), strict=True):
            r.pop("error rate (automated)")
            r["MAE (automated)"] = mae
    parts = [intro, figure(deferral_figure(d, regression), height=300, caption="Automated vs deferred cases"),
             table(rows, caption="The threshold policy alone and combined with deferral")]
    detail = {"deferred": d.get("deferred"), "deferred share": d.get("deferred_share")}
    if regression:
        detail.update({"MAE automated": d.get("mae_automated"), "MAE deferred": d.get("mae_deferred")})
    else:
        detail.update({"error rate automated": d.get("error_rate_automated"),
                       "error rate deferred": d.get("error_rate_deferred")})
        if d.get("flagged") is not None:
            detail["flagged"] = d.get("flagged")
    if d.get("cost_combined_if_reviewers_flag") is not None:
        detail["cost if reviewers act like a flag"] = money(d["cost_combined_if_reviewers_flag"], cur, 3)
    parts.append(table([detail], caption="Deferred cases"))
    return "".join(parts)


def _mae_all(d: dict) -> float | None:
    """The model's MAE over every test row (automated and deferred), which the model alone has (its row read "–")."""
    auto, deferred = d.get("mae_automated"), d.get("mae_deferred")
    share = d.get("deferred_share") or 0.0
    if auto is None and deferred is None:
        return None
    if not share or deferred is None:
        return auto if share < 1 else deferred
    return (1 - share) * (auto or 0.0) + share * deferred


def coverage_figure(methods: list[dict], target: float | None):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=[m["method"] for m in methods], y=[m["coverage"] for m in methods],
                           marker_color=_BLUE, text=[_pct(m["coverage"]) for m in methods], textposition="outside",
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", line_color=_RED, annotation_text=f"target {_pct(target)}")
    lo = min([m["coverage"] for m in methods] + [target or 1]) - 0.05
    fig.update_layout(margin=dict(l=10, r=10, t=20, b=40), yaxis=dict(title="coverage", range=[max(0, lo), 1.02]))
    return fig


def width_figure(hist: dict, limit: float | None):
    import plotly.graph_objects as go

    edges, counts = hist["edges"], hist["counts"]
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)] if len(edges) == len(counts) + 1 else edges[:1]
    fig = go.Figure(go.Bar(x=mids, y=counts, marker_color=_BLUE, hovertemplate="width %{x:.4g}: %{y}<extra></extra>"))
    if limit is not None:
        fig.add_vline(x=limit, line_dash="dash", line_color=_RED, annotation_text="deferral limit")
    fig.update_layout(margin=dict(l=10, r=10, t=20, b=40), xaxis_title="interval width", yaxis_title="test rows")
    return fig


def deferral_figure(d: dict, regression: bool):
    import plotly.graph_objects as go

    groups = ["automated", "deferred"]
    if regression:
        vals = [d.get("mae_automated"), d.get("mae_deferred")]
        label = "mean absolute error"
    else:
        vals = [d.get("error_rate_automated"), d.get("error_rate_deferred")]
        label = "error rate of the model's decision"
    fig = go.Figure(go.Bar(x=groups, y=[0 if v is None else v for v in vals], marker_color=[_BLUE, _AMBER],
                           text=[fmt(v) for v in vals], textposition="outside",
                           hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(margin=dict(l=10, r=10, t=20, b=40), yaxis_title=label)
    return fig


def _coverage_status(conf: dict) -> str | None:
    cov, bounds = conf.get("coverage"), conf.get("coverage_bounds")
    if cov is None or not bounds:
        return None
    # imported here: conformal at the top of the module cost every import of it 0.5 s
    from ...conformal.evaluation import coverage_floor

    return "warning" if cov < coverage_floor(conf) else "ok"


# --------------------------------------------------------------------------- helpers
def _space(output: str | None) -> str:
    return {"log_odds": "log-odds of the positive class", "probability": "probability",
            "prediction": "the predicted value", "margin": "per-class margin (log-odds)"}.get(output or "", output or "")


def _base(base: Any, classes: list | None) -> str:
    if isinstance(base, list):
        names = classes or list(range(len(base)))
        return ", ".join(f"{c}: {fmt(b)}" for c, b in zip(names, base, strict=True))
    return fmt(base)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _short(v: Any) -> str:
    s = "missing" if v is None else str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def conformal_notes(conf: dict) -> list[tuple[str, str]]:
    """The conformal result's notes as ``(label, text)``, in the order the report and the card print them: the
    calibration's (too few rows for alpha), coverage by class, coverage by predicted value."""
    out = [("Calibration", note) for note in conf.get("notes") or []]
    if conf.get("class_coverage_note"):
        out.append(("Coverage by class", conf["class_coverage_note"]))
    if conf.get("prediction_coverage_note"):
        out.append(("Coverage by predicted value", conf["prediction_coverage_note"]))
    return out
