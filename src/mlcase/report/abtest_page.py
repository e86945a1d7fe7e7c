"""The A/B analysis as one self-contained HTML page, with every confidence interval drawn.

plotly.js is inlined from the installed ``plotly`` package, so the page opens
offline and can be attached to a ticket or an e-mail.
"""

from __future__ import annotations

import math
from pathlib import Path

from .sections import figure, plot_text, table


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
            hovertemplate=f"{plot_text(r['label'])}<br>estimate %{{x:.4g}}{'%' if relative else ''}<br>95% CI "
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
                             "ci_high": r["ci_high"], "colour": "#90a4ae" if r.get("cuped") else colour})
            if r.get("cuped"):  # the estimate the verdict rests on: the CUPED-adjusted mean difference
                c = r["cuped"]
                absolute.append({"label": base + " (CUPED)", "estimate": c["diff"], "ci_low": c["ci_low"],
                                 "ci_high": c["ci_high"], "colour": colour})
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
    """The HTML text of the page for an :class:`~mlcase.abtest.Analysis` (or its ``to_dict()``).

    The sections are built here from the shared :func:`~mlcase.report.sections.figure` and
    :func:`~mlcase.report.sections.table` helpers; the page is ``report/templates/abtest.html.j2``,
    rendered by the report's Jinja environment.
    """
    from markupsafe import Markup

    from .. import __version__
    from .render import environment, plotly_js, static

    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    sections = [s for s in (_effects(d), _guardrails(d), _segments(d), _trust(d)) if s is not None]
    for s in sections:
        s["blocks"] = [Markup(b) for b in s["blocks"]]
    return environment().get_template("abtest.html.j2").render(
        version=__version__, verdict=d["verdict"], preliminary=bool(d.get("preliminary")),
        metrics=d["settings"]["metrics"], conclusion=d["conclusion"], warnings=list(d.get("warnings", [])),
        sections=sections, css=static("abtest.css"), js=static("abtest.js"), plotly=Markup(plotly_js()))


def _effects(d: dict) -> dict:
    rel, absolute = _effect_rows(d)
    blocks = []
    if rel:
        blocks.append(figure(forest_figure(rel, "Relative difference vs control"),
                             caption="Green: significantly better; red: significantly worse; blue: not significant; "
                                     "grey: before CUPED adjustment."))
    if absolute:
        blocks.append(figure(forest_figure(absolute, "Difference vs control (Mann-Whitney / Hodges-Lehmann shift; "
                                                     "CUPED: adjusted mean difference)",
                                           relative=False)))
    cols = ["metric", "arm", "method", "n_control", "n_treatment", "mean_control", "mean_treatment", "estimate",
            "ci_low", "ci_high", "rel_diff", "p_value", "p_adjusted", "significant"]
    trows = []
    for r in d["metrics"]:
        lo, hi = r["estimate_ci"]
        trows.append({**r, "estimate": r["estimate"], "ci_low": lo, "ci_high": hi,
                      # the estimate's own method: CUPED's (Welch t on adjusted values), not the unadjusted test's
                      # ("Mann-Whitney U (Hodges-Lehmann shift) + CUPED" beside a CUPED mean difference)
                      "method": (f"{r['cuped'].get('method') or 'CUPED'} (unadjusted: {r['method']})"
                                 if r.get("cuped") else r["method"]),
                      "rel_diff": r["cuped"]["rel_diff"] if r.get("cuped") else r["rel_diff"],
                      "p_value": r["p_estimate"]})
    blocks.append(table(trows, cols, caption="Per metric and arm"))
    why = [{"metric": r["metric"], "arm": r["arm"], "method": r["method_key"], "why": r["method_reason"]}
           for r in d["metrics"]]
    blocks.append(table(why, ["metric", "arm", "method", "why"], caption="Why this test"))
    cuped = [{"metric": r["metric"], "arm": r["arm"], **{k: r["cuped"][k] for k in (
        "covariate", "correlation", "theta", "diff", "ci_low", "ci_high", "p_value", "variance_reduction")}}
        for r in d["metrics"] if r.get("cuped")]
    if cuped:
        blocks.append(table(cuped, caption="CUPED adjustment"))
    return {"title": "Effects (95% confidence intervals)", "blocks": blocks}


def _guardrails(d: dict) -> dict | None:
    if not d.get("guardrails"):
        return None
    blocks = []
    by_scale: dict[str, list] = {}
    for g in d["guardrails"]:
        by_scale.setdefault(g["scale"], []).append(g)
    for scale, gs in by_scale.items():
        rows = [{"label": f"{g['metric']} · {g['arm']}", "estimate": g["estimate"], "ci_low": g["ci_low"],
                 "ci_high": g["ci_high"], "colour": {"pass": "#2e7d32", "fail": "#c62828"}.get(g["status"], "#f9a825")}
                for g in gs]
        margins = [{"x": (-g["margin"] if g["bad"] == "decrease" else g["margin"]), "name": f"{g['metric']} margin"}
                   for g in gs]
        blocks.append(figure(forest_figure(rows, f"Guardrails ({scale} change)", relative=scale == "relative",
                                           margins=margins)))
    blocks.append(table(d["guardrails"], ["metric", "arm", "bad", "margin", "scale", "estimate", "ci_low",
                                          "ci_high", "status"], caption="Guardrails"))
    return {"title": "Guardrails", "blocks": blocks}


def _segments(d: dict) -> dict | None:
    if not d.get("segments"):
        return None
    blocks = []
    rows = []
    for s in (s for s in d["segments"] if s.get("tested")):
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
        blocks.append(figure(forest_figure(rows, "Difference per segment, relative to the segment's control mean"),
                             caption="Green: significant after Benjamini-Hochberg; the CIs are not adjusted."))
    blocks.append(table(d["segments"], ["metric", "segment", "arm", "n_control", "n_treatment", "diff", "ci_low",
                                        "ci_high", "p_value", "p_adjusted", "significant", "note"],
                        caption="Segments"))
    return {"title": "Segments (Benjamini-Hochberg adjusted)", "blocks": blocks}


def _trust(d: dict) -> dict:
    srm = d["srm"]
    srm_rows = [{"arm": a, "planned share": d["planned_split"][a], "expected": e, "observed": srm["observed"][a]}
                for a, e in zip(d["arms"], srm["expected"], strict=True)]
    blocks = [table(srm_rows, caption=f"Sample ratio: chi-square {srm['chi2']:.3g}, p = {srm['p_value']:.3g} "
                                      f"({'MISMATCH' if srm['flagged'] else 'ok'} at {srm['threshold']})")]
    h = d["health"]
    health_rows = [{"arm": a, "units": h["units"].get(a, 0), "units in several arms": h["units_in_several_arms"].get(a, 0),
                    **{f"missing {m}": v.get(a, 0) for m, v in h["missing_metric_values"].items()}} for a in d["arms"]]
    miss = h["missing_or_default_assignment"]
    blocks.append(table(health_rows, caption=f"Assignment health: {miss['rows']} rows ({miss['units']} units) with a "
                                             f"missing or default arm were left out"))
    return {"title": "Trust checks", "blocks": blocks}


def write_page(result, path: str | Path) -> Path:
    """Write :func:`render_page` to ``path`` (folders are created) atomically; returns the path."""
    from ..results import write_atomic

    path = Path(path)
    write_atomic(path, render_page(result))
    return path
