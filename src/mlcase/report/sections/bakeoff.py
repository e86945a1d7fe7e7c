"""The bake-off section: the leaderboard and the search over time.

Reads ``results["bakeoff"]`` (:meth:`mlcase.bakeoff.BakeoffResult.to_dict`). The
leaderboard table carries every number the plot shows, so the section reads
without JavaScript.
"""

from __future__ import annotations

from . import Section, esc, figure, fmt, table

TITLE = "Baselines and bake-off"
ORDER = 20
STAGES = ("bakeoff",)

_COLORS = {"logistic": "#2563eb", "ridge": "#2563eb", "hist_gbm": "#f59e0b", "lightgbm": "#10b981",
           "xgboost": "#ef4444", "catboost": "#eab308",
           "random_forest": "#8b5cf6"}
_COLUMNS = ["", "name", "kind", "cv_mean", "cv_std", "cv_loss", "cv_cost", "n_trials", "rows_seen", "n_trees",
            "fit_cpu_s", "size", "peak_mem_mb", "predict_1_ms", "predict_1000_ms", "operating_cost_per_decision",
            "note"]


def build(results: dict[str, dict]) -> list[Section]:
    data = results.get("bakeoff")
    if not data:
        return []
    children = [Section(id="bakeoff-leaderboard", title="Leaderboard", html=leaderboard_html(data))]
    if data.get("trials"):
        children.append(Section(id="bakeoff-trials", title="CV score per trial over time", html=trials_html(data)))
    lineage = lineage_html(data, results.get("registry") or {})
    if lineage:
        children.append(Section(id="bakeoff-lineage", title="Which rows each model saw", html=lineage))
    from ...bakeoff.timebox import unsearched

    # a family the time box never reached is a search not done (openintro::london_boroughs read "ok")
    status = ("warning" if data.get("interrupted") or not data.get("candidate") or unsearched(data.get("families") or {})
              else "ok")
    return [Section(id="bakeoff", title=TITLE, order=ORDER, status=status, html=intro_html(data),
                    children=children)]


def intro_html(data: dict) -> str:
    cv = data.get("cv") or {}
    plan = data.get("plan") or {}
    metric = (data.get("metric") or "score").replace("_", " ")
    rows = "train and validation" if cv.get("parts", "train") == "train+valid" else "training"
    if cv.get("mode", "cv") == "holdout":
        sizes = ", ".join(fmt(x) for x in plan.get("sizes") or [])
        how = (f"on a holdout of {esc(_count(plan.get('n_holdout')))} of the {esc(_count(cv.get('n_train')))} training "
               f"rows, with samples that grow for the promising families ({esc(sizes)} rows)")
    else:
        how = (f"by {esc(cv.get('folds'))}-fold cross-validation ({esc(cv.get('method'))} folds) on the "
               f"{esc(_count(cv.get('n_train')))} {rows} rows")
    other = "business cost" if data.get("metric") == "log_loss" or data.get("metric") == "rmse" else (
        (data.get("loss_metric") or "loss").replace("_", " "))
    # a ranking case ranks by its loss (Ecdat::Cracker: "ranked by 1-ndcg@2 (lower is better; the 1-ndcg@2 is shown
    # beside it)"): the same metric is not shown beside itself
    beside = "" if other == metric else f"; the {esc(other)} is shown beside it"
    parts = [f"<p>Every baseline and every trial was scored {how}, ranked by <strong>{esc(metric)}</strong> "
             f"(lower is better{beside}). The bake-off took "
             f"{esc(fmt(data.get('elapsed_s'), 3))} s of a {esc(fmt(data.get('budget_s'), 3))} s budget"
             + (", and was <strong>interrupted</strong>" if data.get("interrupted") else "") + ".</p>"]
    if cv.get("parts") == "train+valid":
        parts.append("<p>The chosen models were then refitted on the train and validation rows; the validation "
                     + ("rows' thresholds, calibration and conformal sets use their out-of-fold scores, from models "
                        if _has_cost(data) else "rows keep their out-of-fold scores, from models ")
                     + "that did not see them.</p>")
    ens = data.get("ensemble") or {}
    if ens.get("weights"):
        members = ", ".join(f"{esc(k)} ({v:.2f})" for k, v in ens["weights"].items())
        verdict = "kept" if ens.get("kept") else "not kept"
        if ens.get("kind") == "bag":
            parts.append(f"<p>{esc(ens.get('caruana'))}. Bag of near-ties (equal weights): {members}; {verdict}: "
                         f"{esc(ens.get('reason'))}.</p>")
        else:
            parts.append(f"<p>Ensemble selection (Caruana): {members}; {verdict}: {esc(ens.get('reason'))}.</p>")
    if data.get("candidate"):
        parts.append(f"<p>Candidate: <strong>{esc(data['candidate'])}</strong>. Best baseline: "
                     f"<strong>{esc(data.get('best_baseline'))}</strong>. When two candidates differ by less "
                     "than their CV noise, the simpler family wins (linear, then histogram boosting, then "
                     "LightGBM/XGBoost, then random forest; fewer trees over more).</p>")
    else:
        parts.append("<p><strong>No candidate finished within the budget.</strong> Give the bake-off more time "
                     "(<code>--budget</code>).</p>")
    notes = data.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def leaderboard_html(data: dict) -> str:
    rows = []
    for r in data.get("leaderboard") or []:
        mark = "★ candidate" if r.get("selected") else ("◆ best baseline" if r.get("name") == data.get("best_baseline") else "")
        rows.append({**r, "": mark, "size": _size(r.get("size_bytes"))})
    cur = "money per decision" if data.get("metric") == "business_cost" else data.get("metric")
    cost = ("cv_cost: money per decision at each fold's best threshold" if _has_cost(data) else
            "cv_cost: none (no threshold to choose: a ranking's lists are judged by their order)")
    return table(rows, _COLUMNS, caption=f"cv_mean: {cur}, the ranking (lower is better); cv_loss: "
                                         f"{data.get('loss_metric') or 'the proper loss'}; {cost}; running costs "
                                         "from the refit on rows_seen rows; operating cost per decision in the case's "
                                         "currency")


def _count(n) -> str:
    """A row count as the rest of the report writes it ("10,532", not "10532")."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else fmt(n)


def _has_cost(data: dict) -> bool:
    """Whether the bake-off priced its folds at a threshold (a ranking case has no threshold: every cv_cost is
    null, and the leaderboard read "money per decision at each fold's best threshold" over a column of "–")."""
    board = data.get("leaderboard") or []
    return not board or any(r.get("cv_cost") is not None for r in board)


def trials_html(data: dict) -> str:
    import plotly.graph_objects as go

    trials = data["trials"]
    fig = go.Figure()
    for fam in dict.fromkeys(t["family"] for t in trials):
        ts = [t for t in trials if t["family"] == fam and t.get("value") is not None]
        done = [t for t in ts if t["state"] == "COMPLETE"]
        pruned = [t for t in trials if t["family"] == fam and t["state"] == "PRUNED" and t.get("folds")]
        color = _COLORS.get(fam, "#64748b")
        if done:
            fig.add_trace(go.Scatter(x=[t["elapsed_s"] for t in done], y=[t["value"] for t in done], mode="markers",
                                     name=fam, marker={"color": color, "size": 8},
                                     text=[f"trial {t['number']}" for t in done]))
        if pruned:
            fig.add_trace(go.Scatter(x=[t["elapsed_s"] for t in pruned],
                                     y=[sum(t["folds"]) / len(t["folds"]) for t in pruned], mode="markers",
                                     name=f"{fam} (pruned, partial mean)", showlegend=True,
                                     marker={"color": color, "size": 7, "symbol": "circle-open"}))
    done = sorted((t for t in trials if t["state"] == "COMPLETE" and t.get("value") is not None),
                  key=lambda t: t["elapsed_s"])
    if done:
        xs, ys, best = [], [], float("inf")
        for t in done:
            best = min(best, t["value"])
            xs.append(t["elapsed_s"])
            ys.append(best)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv", "color": "#111827", "width": 1.5},
                                 name="best so far"))
    for r in data.get("leaderboard") or []:
        if r.get("kind") == "baseline" and r.get("cv_mean") is not None and r.get("name") == data.get("best_baseline"):
            fig.add_hline(y=r["cv_mean"], line={"dash": "dash", "color": "#64748b"},
                          annotation_text=f"baseline: {r['name']}")
    fig.update_layout(xaxis_title="seconds since the bake-off started",
                      yaxis_title=f"CV {(data.get('metric') or '').replace('_', ' ')} (lower is better)",
                      margin={"l": 60, "r": 20, "t": 20, "b": 50}, height=380, legend={"orientation": "h"})
    fams = data.get("families") or {}
    summary = [{"family": f, "search_s": v.get("search_s"), "share": v.get("share_of_search"),
                "trials": v.get("n_trials"), "complete": v.get("complete"), "pruned": v.get("pruned"),
                "failed": v.get("failed"),
                "note": v.get("stopped") or v.get("skipped") or "; ".join(e for e in v.get("errors") or [] if e)}
               for f, v in fams.items()]
    return figure(fig, caption="Each point is one trial's mean CV score when it ended; open circles are trials "
                               "pruned by the median rule (mean of the folds they reached).") + \
        table(summary, ["family", "search_s", "share", "trials", "complete", "pruned", "failed", "note"],
              caption="Search time per family: the time box goes to the families with the lowest estimated "
                      "cost for improvement; clearly dominated families stop")


def lineage_html(data: dict, registry: dict) -> str:
    """Rows seen by the candidate, the best baseline and, with ``refit: all``, the refitted version."""
    board = {r["name"]: r for r in data.get("leaderboard") or []}
    rows = []
    for role, name, version in (("candidate", data.get("candidate"), registry.get("candidate_version")),
                                ("baseline", data.get("best_baseline"), registry.get("baseline_version"))):
        if name and name in board:
            rows.append({"version": version, "model": name, "role": role, "rows_seen": board[name].get("rows_seen"),
                         "fitted_on": (data.get("cv") or {}).get("parts"), "test numbers": "measured on the test rows"})
    refit = registry.get("refit") or {}
    if refit:
        rows.append({"version": refit.get("refit_version"), "model": refit.get("name"), "role": "champion (refit: all)",
                     "rows_seen": refit.get("rows_seen"), "fitted_on": "train+valid+test",
                     "test numbers": f"those of version {refit.get('evaluated_version')} (this one saw the test rows)"})
    if not rows:
        return ""
    note = (f"<p>Threshold of the refitted version, carried by its rate: {esc(refit['threshold_note'])}.</p>"
            if refit.get("threshold_note") else "")
    return table(rows, ["version", "model", "role", "rows_seen", "fitted_on", "test numbers"],
                 caption="Registered versions and the labelled rows their models were fitted on") + note


def _size(v) -> str | None:
    if v is None:
        return None
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return None
