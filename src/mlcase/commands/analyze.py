"""``mlcase analyze``: where the model loses money, whether more labels would pay, which labels look wrong."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from ..formats import number


def register(app: typer.Typer) -> None:
    @app.command()
    def analyze(
        case: CaseArg = None,
        budget: Annotated[str | None, typer.Option(help="The run's budget the refits take analysis.time_share of "
                                                   "(default the spec's budget), e.g. 60s.")] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Analyse the last run without re-running the bake-off: weak slices, learning curve, feature-group
        value, label audit (written to label_audit.csv); rewrites the decision's reasons, the report and the card."""
        from .. import results
        from ..analysis import analyze_case
        from ..cards import write_model_card
        from ..decision import decide
        from ..lock import case_lock
        from ..report.render import build_report

        c = load(case)
        # not while a run rewrites the results it reads and the report and card it writes (see `mlcase report`)
        with case_lock(c, "analyze") if os.access(c.work_dir, os.W_OK) else contextlib.nullcontext():
            out = analyze_case(c, budget=budget)
            res = results.load_all(c)
            old = res.get("decision") or {}
            verdict = decide(c, res.get("ceiling"), res.get("evaluation"), analysis=out, bakeoff=res.get("bakeoff"))
            decision, reasons, note = verdict.verdict, list(verdict.reasons), None
            if old.get("verdict") == verdict.verdict:  # reasons only: the verdict (and the registry) stay as decided
                results.save(c, "decision", verdict.to_dict())
            elif old.get("verdict"):
                # the spec changed since the run (constraints.min_lift, costs): its verdict is not the case's, whose
                # decision, registry and report stay as the run left them; `--json` printed it as the decision
                # (modeldata::hpc_data's GO read "decision": "USE_BASELINE" after min_lift was raised to 5)
                decision, reasons = old["verdict"], list(old.get("reasons") or [])
                note = (f"case.yaml now decides {verdict.verdict}, not the run's {old['verdict']} (its costs or "
                        f"constraints changed since the run); the decision stays {old['verdict']}: run `mlcase run "
                        f"{c.root}` to decide anew")
            report = build_report(c)
            md, _ = write_model_card(c)
        doc = summary(out)
        doc.update(case=c.name, report=str(report), model_card=str(md), decision=decision, reasons=reasons)
        if note:
            doc.update(note=note, decision_from_spec_now=verdict.verdict)
        if json_out:
            emit_json(doc)
            return
        _print(console(quiet), doc)


def summary(out: dict) -> dict:
    """The headline numbers of an analysis (what ``--json`` prints besides the decision)."""
    sl = out.get("slices") or {}
    lc = out.get("learning_curve") or {}
    fg = out.get("feature_groups") or {}
    lb = out.get("labels") or {}
    return {"losing_slices": sl.get("losing", []), "erring_slices": sl.get("erring", []),
            "slices_scanned": sl.get("scanned"), "slices_tried": len(sl.get("money") or []),
            # the error criterion's slices are tried (and Holm-corrected) beside the money ones: the text read
            # "1 tried" on ISLR::Smarket where 4 more were tried on their error rate
            "slices_tried_error": len(sl.get("error") or []),
            # under a group split: whole groups resampled, how many test groups, and the fewest a slice is judged on
            "slices_resampled": sl.get("resampled"), "slices_unjudgeable": sl.get("unjudgeable"),
            "learning_curve_resampled": lc.get("resampled"),
            "hybrid": sl.get("hybrid"), "learning_curve": {k: lc.get(k) for k in ("points", "extrapolation", "fitted",
                                                                                   "skipped", "note", "time")},
            "settle": out.get("settle"),
            "feature_groups": [{"group": g["group"], "worth_per_decision": g.get("worth_per_decision")}
                               for g in fg.get("groups") or []],
            "feature_groups_not_measured": fg.get("not_measured", []),
            # why a part did not run, and how to read label_audit.csv (its `row` key and how many rows it holds):
            # --json gave "feature_groups": [] with no reason, and no key to find a listed row in the data
            "feature_groups_skipped": fg.get("skipped"), "slices_note": sl.get("note"),
            "label_audit": {k: lb.get(k) for k in ("n_rows", "n_flagged", "n_flagged_if_right", "n_flagged_excess",
                                                   "n_conflicting_pairs", "n_conflicting_rows", "file", "skipped",
                                                   "n_listed", "rows_in_file", "row_key")},
            "seconds": out.get("seconds")}


def _print(con, doc: dict) -> None:
    from ..analysis import conflicts_said, flagged_said
    from ..analysis.slices import resampled_said, too_few_groups
    from ..formats import markup_escape

    con.print(f"[bold]{markup_escape(doc['case'])}[/bold]: analysis in {doc['seconds']:.1f} s (decision {doc['decision']})")
    losing = doc["losing_slices"]
    grouped = doc.get("slices_resampled")
    if too_few_groups(grouped):
        con.print(f"  slices: {doc['slices_scanned']} scanned, none tried: {markup_escape(resampled_said(grouped))}")
    else:
        erring = doc.get("slices_tried_error") or 0
        tried = f"{doc['slices_tried']} tried on the test rows" + (f" for money, {erring} for their error rate"
                                                                  if erring else "")
        con.print(f"  slices: {doc['slices_scanned']} scanned, {tried}; "
                  + (f"loses money in: {markup_escape(', '.join(losing))}" if losing
                     else "no slice loses money beyond chance"))
        if grouped:
            con.print(f"  slices: {markup_escape(resampled_said(grouped))}")
    for e in doc["learning_curve"].get("extrapolation") or []:
        lo, hi = e["band"]
        con.print(f"  learning curve: {e['multiple']:g}x labels ({e['labels']:,}): {number(e['cost_per_decision'], 4)} per "
                  f"decision (band {number(lo, 4)} to {number(hi, 4)})")
    if doc["learning_curve"].get("note") or doc["learning_curve"].get("skipped"):
        con.print(f"  learning curve: {markup_escape(str(doc['learning_curve'].get('note') or doc['learning_curve'].get('skipped')))}")
    for g in doc["feature_groups"][:8]:
        w = g.get("worth_per_decision") or {}
        if w:
            con.print(f"  feature group {markup_escape(str(g['group']))}: worth {number(w['estimate'], 4)} per decision "
                      f"(95% CI {number(w['ci_low'], 4)} to {number(w['ci_high'], 4)})")
    if doc.get("feature_groups_skipped"):
        con.print(f"  feature groups: {markup_escape(str(doc['feature_groups_skipped']))}")
    elif doc.get("feature_groups_not_measured"):
        # ISLR::Smarket: none of its 6 groups was refitted within the time share, and the text said nothing
        missed = doc["feature_groups_not_measured"]
        con.print(f"  feature groups: {len(missed)} not measured within analysis.time_share of the budget "
                  f"({markup_escape(', '.join(map(str, missed[:8])))}{', ...' if len(missed) > 8 else ''}); "
                  "give `mlcase analyze --budget` more time")
    lab = doc["label_audit"]
    if lab.get("file"):
        con.print(f"  label audit: {markup_escape(flagged_said(lab))}; {markup_escape(conflicts_said(lab))}; for review: {markup_escape(str(lab['file']))}")
    for r in doc["reasons"]:
        con.print(f"  - {markup_escape(r)}")
    if doc.get("note"):
        con.print(f"[yellow]note:[/yellow] {markup_escape(doc['note'])}")
    con.print(f"report: {markup_escape(str(doc['report']))}")
