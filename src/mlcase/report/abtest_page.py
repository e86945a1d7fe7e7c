"""The A/B analysis as one self-contained HTML page, with every confidence interval drawn.

plotly.js is inlined from the installed ``plotly`` package, so the page opens
offline and can be attached to a ticket or an e-mail.
"""

from __future__ import annotations

import math
from pathlib import Path

from .sections import esc, figure, table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:4px;font-weight:600;color:#fff}
.SHIP{background:#2e7d32}.DONT_SHIP{background:#c62828}.INCONCLUSIVE{background:#f9a825;color:#222}
.UNTRUSTWORTHY{background:#6a1b9a}.warn{background:#fff8e1;border-left:4px solid #f9a825;padding:.4rem .8rem;margin:.3rem 0}
table.tbl{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}table.tbl td,table.tbl th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
table.tbl th{background:#f5f5f5}table.tbl td:first-child,table.tbl th:first-child{text-align:left}
caption{text-align:left;font-weight:600;padding:.3rem 0}figure.plot{margin:1rem 0}.plotly-fig{min-height:320px}
p.conclusion{font-size:1rem;line-height:1.5;background:#f7f9fc;padding:.8rem;border-radius:4px}
"""

_RENDER = """
document.querySelectorAll('script[data-for]').forEach(function(s){
  var spec = JSON.parse(s.textContent);
  Plotly.newPlot(s.getAttribute('data-for'), spec.data || [], spec.layout || {}, {displaylogo:false, responsive:true});
});
"""


def _plotly_js() -> str:
    from .render import plotly_js

    return plotly_js()


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def forest_figure(rows: list[dict], title: str, relative: bool = True, margins: list[dict] | None = None):
    """A forest plot: one line per comparison, the point estimate and its 95% CI.

    ``rows`` need ``label``, ``estimate``, ``ci_low``, ``ci_high`` and optionally
    ``colour``; ``margins`` adds dashed lines (guardrail margins) at ``x`` with ``name``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    scale = 100.0 if relative else 1.0
    for r in rows:
        if not all(_finite(r.get(k)) for k in ("estimate", "ci_low", "ci_high")):
            continue
        est, lo, hi = r["estimate"] * scale, r["ci_low"] * scale, r["ci_high"] * scale
        fig.add_trace(go.Scatter(
            x=[est], y=[r["label"]], mode="markers", name=r["label"], showlegend=False,
            marker={"size": 10, "color": r.get("colour", "#1565c0")},
            error_x={"type": "data", "symmetric": False, "array": [hi - est], "arrayminus": [est - lo],
                     "thickness": 2, "width": 6},
            hovertemplate=f"{r['label']}<br>estimate %{{x:.4g}}{'%' if relative else ''}<br>95% CI "
                          f"[{lo:.4g}, {hi:.4g}]<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#555", "width": 1})
    for m in margins or []:
        fig.add_vline(x=m["x"] * scale, line={"color": "#c62828", "dash": "dash", "width": 1},
                      annotation_text=m["name"], annotation_position="top")
    n = max(1, len(rows))
    fig.update_layout(title=title, height=160 + 40 * n, margin={"l": 220, "r": 30, "t": 60, "b": 50},
                      xaxis_title=("relative difference (%)" if relative else "difference (treatment - control)"),
                      yaxis={"autorange": "reversed"}, template="plotly_white")
    return fig


def _effect_rows(result: dict) -> tuple[list[dict], list[dict]]:
    """Relative-effect rows (raw and CUPED) and absolute-only rows (Mann-Whitney shifts)."""
    rel, absolute = [], []
    for r in result["metrics"]:
        base = f"{r['metric']} · {r['arm']}"
        colour = "#2e7d32" if r["significant"] and r["better"] else ("#c62828" if r["significant"] else "#1565c0")
        if r["method_key"] == "mann-whitney":
            absolute.append({"label": base + " (HL shift)", "estimate": r["diff"], "ci_low": r["ci_low"],
                             "ci_high": r["ci_high"], "colour": colour})
            continue
        rel.append({"label": base + (" (raw)" if r.get("cuped") else ""), "estimate": r["rel_diff"],
                    "ci_low": r["rel_ci_low"], "ci_high": r["rel_ci_high"],
                    "colour": "#90a4ae" if r.get("cuped") else colour})
        if r.get("cuped"):
            c = r["cuped"]
            rel.append({"label": base + " (CUPED)", "estimate": c["rel_diff"], "ci_low": c["rel_ci_low"],
                        "ci_high": c["rel_ci_high"], "colour": colour})
    return rel, absolute


def render_page(result) -> str:
    """The HTML text of the page for an :class:`~mlcase.abtest.Analysis` (or its ``to_dict()``)."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    parts = [f"<h1>A/B test analysis: {esc(', '.join(d['settings']['metrics']))}</h1>",
             f'<p><span class="verdict {esc(d["verdict"])}">{esc(d["verdict"])}</span>'
             + (" <em>(preliminary: before the planned end)</em>" if d.get("preliminary") else "") + "</p>",
             f'<p class="conclusion">{esc(d["conclusion"])}</p>']
    parts += [f'<div class="warn">{esc(w)}</div>' for w in d.get("warnings", [])]

    # effects ---------------------------------------------------------------------
    rel, absolute = _effect_rows(d)
    parts.append("<h2>Effects (95% confidence intervals)</h2>")
    if rel:
        parts.append(figure(forest_figure(rel, "Relative difference vs control"),
                            caption="Green: significantly better; red: significantly worse; blue: not significant; "
                                    "grey: before CUPED adjustment."))
    if absolute:
        parts.append(figure(forest_figure(absolute, "Shift vs control (Mann-Whitney / Hodges-Lehmann)", relative=False)))
    cols = ["metric", "arm", "method", "n_control", "n_treatment", "mean_control", "mean_treatment", "estimate",
            "ci_low", "ci_high", "rel_diff", "p_value", "p_adjusted", "significant"]
    trows = []
    for r in d["metrics"]:
        lo, hi = r["estimate_ci"]
        trows.append({**r, "estimate": r["estimate"], "ci_low": lo, "ci_high": hi,
                      "method": r["method"] + (" + CUPED" if r.get("cuped") else ""),
                      "rel_diff": r["cuped"]["rel_diff"] if r.get("cuped") else r["rel_diff"],
                      "p_value": r["p_estimate"]})
    parts.append(table(trows, cols, caption="Per metric and arm"))
    why = [{"metric": r["metric"], "arm": r["arm"], "method": r["method_key"], "why": r["method_reason"]}
           for r in d["metrics"]]
    parts.append(table(why, ["metric", "arm", "method", "why"], caption="Why this test"))
    cuped = [{"metric": r["metric"], "arm": r["arm"], **{k: r["cuped"][k] for k in (
        "covariate", "correlation", "theta", "diff", "ci_low", "ci_high", "p_value", "variance_reduction")}}
        for r in d["metrics"] if r.get("cuped")]
    if cuped:
        parts.append(table(cuped, caption="CUPED adjustment"))

    # guardrails ---------------------------------------------------------------------
    if d.get("guardrails"):
        parts.append("<h2>Guardrails</h2>")
        by_scale: dict[str, list] = {}
        for g in d["guardrails"]:
            by_scale.setdefault(g["scale"], []).append(g)
        for scale, gs in by_scale.items():
            rows = [{"label": f"{g['metric']} · {g['arm']}", "estimate": g["estimate"], "ci_low": g["ci_low"],
                     "ci_high": g["ci_high"], "colour": {"pass": "#2e7d32", "fail": "#c62828"}.get(g["status"], "#f9a825")}
                    for g in gs]
            margins = [{"x": (-g["margin"] if g["bad"] == "decrease" else g["margin"]), "name": f"{g['metric']} margin"}
                       for g in gs]
            parts.append(figure(forest_figure(rows, f"Guardrails ({scale} change)", relative=scale == "relative",
                                              margins=margins)))
        parts.append(table(d["guardrails"], ["metric", "arm", "bad", "margin", "scale", "estimate", "ci_low",
                                             "ci_high", "status"], caption="Guardrails"))

    # segments -----------------------------------------------------------------------
    if d.get("segments"):
        parts.append("<h2>Segments (Benjamini-Hochberg adjusted)</h2>")
        tested = [s for s in d["segments"] if s.get("tested")]
        rows = []
        for s in tested:
            if not all(_finite(s.get(k)) for k in ("diff", "ci_low", "ci_high")):
                continue
            mean_c = s.get("mean_control")
            rel_ok = _finite(mean_c) and mean_c != 0 and "Mann-Whitney" not in s.get("method", "")
            rows.append({"label": f"{s['metric']} · {s['segment']} · {s['arm']}",
                         "estimate": s["diff"] / abs(mean_c) if rel_ok else s["diff"],
                         "ci_low": s["ci_low"] / abs(mean_c) if rel_ok else s["ci_low"],
                         "ci_high": s["ci_high"] / abs(mean_c) if rel_ok else s["ci_high"],
                         "colour": "#2e7d32" if s.get("significant") else "#1565c0"})
        if rows:
            parts.append(figure(forest_figure(rows, "Difference per segment, relative to the segment's control mean"),
                                caption="Green: significant after Benjamini-Hochberg; the CIs are not adjusted."))
        parts.append(table(d["segments"], ["metric", "segment", "arm", "n_control", "n_treatment", "diff", "ci_low",
                                           "ci_high", "p_value", "p_adjusted", "significant", "note"],
                           caption="Segments"))

    # trust ----------------------------------------------------------------------------
    srm = d["srm"]
    parts.append("<h2>Trust checks</h2>")
    srm_rows = [{"arm": a, "planned share": d["planned_split"][a], "expected": e, "observed": srm["observed"][a]}
                for a, e in zip(d["arms"], srm["expected"], strict=True)]
    parts.append(table(srm_rows, caption=f"Sample ratio: chi-square {srm['chi2']:.3g}, p = {srm['p_value']:.3g} "
                                         f"({'MISMATCH' if srm['flagged'] else 'ok'} at {srm['threshold']})"))
    h = d["health"]
    health_rows = [{"arm": a, "units": h["units"].get(a, 0), "units in several arms": h["units_in_several_arms"].get(a, 0),
                    **{f"missing {m}": v.get(a, 0) for m, v in h["missing_metric_values"].items()}} for a in d["arms"]]
    miss = h["missing_or_default_assignment"]
    parts.append(table(health_rows, caption=f"Assignment health: {miss['rows']} rows ({miss['units']} units) with a "
                                            f"missing or default arm were left out"))
    body = "\n".join(parts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A/B analysis: {esc(d["verdict"])}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style>'
            f'<script>{_plotly_js()}</script></head><body>{body}<script>{_RENDER}</script></body></html>')


def write_page(result, path: str | Path) -> Path:
    """Write :func:`render_page` to ``path`` (folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(result), encoding="utf-8")
    return path
