"""Know why: where the model loses, whether more labels would pay, what each group of columns is worth,
and which labels look wrong. Reads ``results["analysis"]`` (:func:`mlcase.analysis.analyze`)."""

from __future__ import annotations

from ...formats import money
from . import Section, esc, figure, fmt, table

TITLE = "Know why"
ORDER = 35
STAGES = ("analysis",)


def build(results: dict) -> list[Section]:
    a = results.get("analysis")
    if not a:
        return []
    if a.get("skipped"):
        return [Section(id="analysis", title=TITLE, html=f"<p>Not available for this case: {esc(a['skipped'])}.</p>",
                        order=ORDER)]
    cur = (((results.get("case") or {}).get("spec") or {}).get("costs") or {}).get("currency", "$")
    children = [Section(id="analysis-slices", title="Where the model loses", html=slices_html(a, cur),
                        status="warning" if (a.get("slices") or {}).get("losing") else "ok"),
                Section(id="analysis-curve", title="Would more labels pay?", html=curve_html(a, cur)),
                Section(id="analysis-groups", title="What each group of columns is worth", html=groups_html(a, cur)),
                Section(id="analysis-labels", title="Labels that look wrong", html=labels_html(a))]
    intro = (f"<p>Analysed in {esc(fmt(a.get('seconds')))} s; re-run any time with <code>mlcase analyze</code> "
             "(no new bake-off).</p>")
    return [Section(id="analysis", title=TITLE, html=intro, order=ORDER, children=children)]


def _m(v, cur: str) -> str:
    """Money as the project writes it: to the cent, and below a cent to three significant digits (on
    modeldata::hpc_data, whose decisions cost about $0.21, every slice read "$0.00 ($0.00 to $0.00)" or "-$0.00")."""
    return money(v, cur)


def _ci(d: dict | None, cur: str) -> str:
    if not d or d.get("estimate") is None:
        return "–"
    return f"{_m(d['estimate'], cur)} ({_m(d.get('ci_low'), cur)} to {_m(d.get('ci_high'), cur)})"


def slices_html(a: dict, cur: str) -> str:
    sl = a.get("slices") or {}
    refs = sl.get("references") or {}
    # how many were tried, on money and on the error rate, and how many could not be judged: AER::CPS1985 read
    # "the 0 most telling were tried" above a table of a slice tried on the test rows (on its error rate), with
    # 91 of the 114 slices scanned under 30 test rows said nowhere
    n_money, n_error = len(sl.get("money") or []), len(sl.get("error") or [])
    n_test = esc(sl.get("n_test"))
    tried = (f"the {n_money} most telling were tried on the {n_test} untouched test rows with Holm's correction over "
             "them" if n_money else f"none was tried on the {n_test} untouched test rows for its money (no slice with "
             "enough test rows did worse than its fallback on discovery by enough)")
    out = [f"<p>Slices of single columns and pairs were found on {esc(sl.get('discovery'))} "
           f"({esc(sl.get('scanned'))} scanned); {tried}"
           + (f"; {n_error} {'was' if n_error == 1 else 'were'} tried on {'its' if n_error == 1 else 'their'} error "
              "rate" if n_error else "")
           + (f"; {esc(sl['unjudgeable'])} of the {esc(sl.get('scanned'))} have too few test rows "
              f"(under {esc(sl.get('min_size'))}{' or too few groups' if sl.get('resampled') else ''}) to be judged"
              if sl.get("unjudgeable") else "") + ". A slice loses money "
           f"when it has at least {esc(sl.get('min_size'))} test rows and its money lost per decision has a 95% CI "
           "above zero with a Holm-adjusted p below 0.05. Its hybrid hands the slice to the fallback and keeps the "
           "candidate elsewhere; it is evaluated on the validation rows and reported on the test rows.</p>"]
    from ...analysis.slices import resampled_said, too_few_groups

    if too_few_groups(sl.get("resampled")):
        out.append(f"<p><strong>Under the group split {esc(resampled_said(sl['resampled']))}.</strong></p>")
        return "".join(out)
    if sl.get("resampled"):
        out.append(f"<p>Under the group split {esc(resampled_said(sl['resampled']))}: rows of one entity are not "
                   "independent draws.</p>")
    if sl.get("note"):
        out.append(f'<p class="note">Note: {esc(sl["note"])}.</p>')
    losing = sl.get("losing") or []
    out.append(f"<p><strong>{'Loses money in: ' + esc(', '.join(losing)) if losing else 'No slice loses money beyond chance.'}"
               "</strong></p>")
    grouped = bool(sl.get("resampled"))
    rows = [{"slice": e["label"], "against": refs.get(e["reference"], e["reference"]), "test rows": e["n_test"],
             **({"test groups": e.get("n_test_groups")} if grouped else {}),
             f"lost per decision ({cur}, 95% CI)": _ci(e.get("test"), cur), "Holm p": e.get("p_holm"),
             "hybrid saves on validation": _ci(e.get("hybrid_valid"), cur),
             "hybrid saves on test": _ci(e.get("hybrid_test"), cur),
             "verdict": "loses money" if e.get("loses_money") else ""} for e in sl.get("money") or []]
    if rows:
        out.append(table(rows, caption="Slices tried: money the candidate loses against the fallback"))
    h = sl.get("hybrid")
    if h and h.get("test"):
        names = "; ".join(f"{s['label']} → {s['reference_description']}" for s in h["slices"])
        t, v = h["test"]["saving_over"], (h.get("valid") or {}).get("saving_over") or {}
        out.append(f"<p>Combined hybrid (every slice whose switch saved money on validation: {esc(names)}): "
                   f"{esc(_m(h['test']['cost_per_decision'], cur))} per decision on test; saves "
                   f"{esc(_ci(t.get('candidate'), cur))} over the candidate alone on test, "
                   f"{esc(_ci(v.get('candidate'), cur))} on validation.</p>")
    err = [{"slice": e["label"], "test rows": e["n_test"], "relative loss here / elsewhere": e.get("ratio"),
            "95% CI": _interval(e.get("ratio_ci")), "Holm p": e.get("p_holm"),
            "verdict": "errs much more" if e.get("errs_more") else ""} for e in sl.get("error") or []]
    if err:
        out.append(table(err, caption="Where the candidate errs most, relative to a model-free prediction "
                                      "(descriptive: real data is uneven, some slices are simply harder)"))
    return "".join(out)


def _interval(ci) -> str | None:
    """``[low, high]`` with the table's digits (the ratio's CI read "[0.9629655225163539, 1.3544738618382088]")."""
    if not ci or len(ci) != 2:
        return None
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def curve_html(a: dict, cur: str) -> str:
    lc = a.get("learning_curve") or {}
    if lc.get("skipped"):
        return f"<p>Not measured: {esc(lc['skipped'])}.</p>"
    out = [f"<p>The candidate's configuration ({esc(lc.get('model'))}) cross-validated on "
           f"{esc(', '.join(f'{100 * f:.0f}%' for f in lc.get('fractions') or []))} of the training rows; the money "
           "per decision is fitted with an inverse power law <code>a + b·n^-c</code> and extrapolated with a "
           "bootstrap band (" + (f"whole groups resampled, {esc(lc['resampled']['n_groups'])} "
                                 f"{esc(lc['resampled']['column'])} values" if lc.get("resampled") else "the rows resampled")
           + ", the law refitted).</p>"]
    for key in ("note_model", "note"):
        if lc.get(key):
            out.append(f'<p class="note">Note: {esc(lc[key])}.</p>')
    pts = lc.get("points") or []
    ext = lc.get("extrapolation") or []
    bc = lc.get("baseline_curve") or {}
    if bc:
        out.append(f"<p>The best baseline ({esc(bc.get('model'))}) learns from more rows too: its own curve is "
                   "cross-validated on the same rows, and the saving over it with more labels is against what it "
                   "would cost with them" + ("" if bc.get("fitted") else
                                             " (its curve did not fit here, so that saving assumes it stays put)")
                   + ".</p>")
    if pts:
        out.append(figure(_curve_figure(pts, ext, cur, bc.get("points") or [], bc.get("model")), height=320,
                          caption="Money per decision by fit rows"))
        # fit rows are a mean over the folds (credit_data read "712.4" rows): whole rows, said as a mean
        out.append(table([{"share": p["fraction"], "fit rows (mean per fold)": round(p["fit_rows"]),
                           f"cost per decision ({cur})":
                           p["cost_per_decision"], "loss": p["loss"]} for p in pts], caption="Points"))
    if ext:
        rows = []
        for e in ext:
            row = {"labels": f"{e['multiple']:g}x ({e['labels']:,})", f"cost per decision ({cur})": e["cost_per_decision"],
                   "95% band": f"{_m(e['band'][0], cur)} to {_m(e['band'][1], cur)}"}
            for name, s in (e.get("saving_over") or {}).items():
                row[f"saves over {name}"] = f"{_m(s['estimate'], cur)} ({_m(s['band'][0], cur)} to {_m(s['band'][1], cur)})"
            rows.append(row)
        out.append(table(rows, caption="Expected money per decision with more labels"))
    st = a.get("settle")
    if st and st.get("multiple"):
        more = f"{st['more_labelled_rows']:,}"
        out.append(f"<p>With about {esc(more)} more labelled rows "
                   f"({esc(st['multiple'])}x today's) the lift over {esc(st['versus'])} would likely be settled.</p>")
    elif st and st.get("uncertain"):
        lo, hi = st["gain_band"]
        k = f"{st['multiple_at_estimate']:g}"
        out.append(f"<p>The curve's best guess is that {esc(k)}x today's "
                   f"labels would settle the lift over {esc(st['versus'])}, but its 95% band for that gain runs from "
                   f"{esc(_m(lo, cur))} to {esc(_m(hi, cur))}"
                   + (f": at its low end the lift would be {esc(_m(st['worst_lift'], cur))}, short of the "
                      f"{esc(_m(st['needed_lift'], cur))} that would settle it" if st.get("worst_lift") is not None
                      else "") + "; too uncertain to promise a count.</p>")
    out.append(f'<p class="muted">{esc(lc.get("time"))}.</p>')
    return "".join(out)


def _curve_figure(pts: list[dict], ext: list[dict], cur: str, base_pts: list[dict] | None = None,
                  base_name: str | None = None):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p["fit_rows"] for p in pts], y=[p["cost_per_decision"] for p in pts],
                             mode="markers+lines", name="cross-validated"))
    if base_pts:
        fig.add_trace(go.Scatter(x=[p["fit_rows"] for p in base_pts], y=[p["cost_per_decision"] for p in base_pts],
                                 mode="markers+lines", name=f"best baseline ({base_name})", line={"dash": "dot"}))
    if ext:
        xs = [e["labels"] for e in ext]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[e["band"][1] for e in ext] + [e["band"][0] for e in ext][::-1],
                                 fill="toself", mode="none", name="95% band", opacity=0.3))
        fig.add_trace(go.Scatter(x=xs, y=[e["cost_per_decision"] for e in ext], mode="markers+lines",
                                 line={"dash": "dash"}, name="power law"))
    fig.update_layout(xaxis_title="labelled rows the model is fitted on", yaxis_title=f"cost per decision ({cur})",
                      xaxis_type="log", margin={"t": 20})
    return fig


def groups_html(a: dict, cur: str) -> str:
    fg = a.get("feature_groups") or {}
    if fg.get("skipped"):
        return f"<p>Not measured: {esc(fg['skipped'])}.</p>"
    what = "Each of the groups named in <code>feature_groups</code>" if fg.get("named_in_spec") else "Each column"
    out = [f"<p>{what} left out in turn, the candidate's configuration cross-validated without it: a group "
           "is worth what its absence costs per decision (paired bootstrap 95% CI over "
           f"{esc(fg.get('n_rows'))} out-of-fold rows"
           + (f", whole groups resampled: {esc(fg['resampled']['n_groups'])} {esc(fg['resampled']['column'])} values"
              if fg.get("resampled") else "") + ").</p>"]
    rows = [{"group": g["group"], "columns": ", ".join(g.get("columns") or [])[:80],
             f"worth per decision ({cur}, 95% CI)": _ci(g.get("worth_per_decision"), cur),
             "loss without / with": f"{fmt(g.get('loss_without'))} / {fmt(g.get('loss_with'))}",
             "earns its keep": g.get("pays") if "pays" in g else g.get("note")} for g in fg.get("groups") or []]
    if rows:
        out.append(table(rows, caption="What each group is worth"))
    if fg.get("not_measured"):
        out.append(f"<p>Not measured within the time share: {esc(', '.join(fg['not_measured']))}.</p>")
    out.append(f'<p class="muted">{esc(fg.get("time"))}.</p>')
    return "".join(out)


def labels_html(a: dict) -> str:
    from ...analysis.labels import conflicts_said, flagged_said

    lb = a.get("labels") or {}
    if lb.get("skipped"):
        return f"<p>Not run: {esc(lb['skipped'])}.</p>"
    out = [f"<p>{esc(lb.get('method'))} on the bake-off's out-of-fold scores: {esc(flagged_said(lb))}; "
           f"{esc(conflicts_said(lb))} ({esc(lb.get('near_duplicate_rule'))}). All {esc(lb.get('rows_in_file'))} rows are in "
           f"<code>{esc(lb.get('file'))}</code> for a reviewer (fill in outcome, reviewer, reviewed_at, note).</p>"]
    top = lb.get("top") or []
    if top:
        hardest = lb.get("n_flagged_if_right") is not None and not lb.get("n_flagged_excess")
        out.append(table(top[:25], caption="The rows whose labels the model finds least likely" if hardest
                         else "Rows to review first"))
    return "".join(out)
