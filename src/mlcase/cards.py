"""The model card (Mitchell et al., "Model Cards for Model Reporting", 2019).

:func:`write_model_card` writes ``<case>/model_card.md`` and ``model_card.html``
from the stage results in ``<case>/.mlcase/`` (see :mod:`mlcase.results`) and
the spec, so the card can be rebuilt at any time without retraining. Stages that
have not run are named as such in the card, never invented. Ethical
considerations are left as ``TODO`` for a person to write.

:func:`log_card` logs both files to the MLflow run of a registered model
version and tags the version with where the card is.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from . import results as _results
from .case import Case, load_case
from .errors import redact_url
from .formats import md_cell, md_code, md_text, number
from .formats import money as _money

CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
ARTIFACT_DIR = "model_card"
LIBRARIES = ("scikit-learn", "lightgbm", "xgboost", "catboost", "shap", "mapie", "pandas", "numpy", "mlflow")
NOT_RUN = "_Not run: no results for this stage in `.mlcase/`. Run `mlcase run`, then `mlcase card`._"
TODO = "**TODO (for a person):**"


# --------------------------------------------------------------------------- public API
def write_model_card(case: Case | str | Path) -> tuple[Path, Path]:
    """Write ``model_card.md`` and ``model_card.html`` beside ``case.yaml``.

    Returns
    -------
    (Path, Path)
        The Markdown and the HTML file.
    """
    case = load_case(case)
    res = card_results(case)
    if not res:   # an empty card would replace the one the last run wrote
        from .errors import NotFoundError

        raise NotFoundError(f"no stage results in {case.work_dir} to write the model card from",
                            f"run `mlcase run {case.root}` first")
    text = card_markdown(case, res)
    md_path, html_path = case.root / CARD_MD, case.root / CARD_HTML
    case.root.mkdir(parents=True, exist_ok=True)
    _write(md_path, text)
    _write(html_path, card_html(text, f"Model card: {case.name}"))
    _results.save(case, "card", {"md": str(md_path), "html": str(html_path), "written_at": _now(),
                                 "stages": sorted(k for k in res if k != "card")})
    return md_path, html_path


def card_results(case: Case) -> dict[str, dict]:
    """The stage results a card is written from, with the registry's aliases as they are now (a promote or a
    rollback after the run moved ``champion``: the card describes, and is logged with, the version served)."""
    res = _results.load_all(case)
    if res.get("registry"):
        from .report.registry_now import registry_now

        res["registry"] = registry_now(case, res["registry"])
    return res


def log_card(case: Case | str | Path, version: int) -> dict:
    """Log the card (rewritten first) to the MLflow run of registered model ``version``.

    The files land under ``model_card/`` in that run's artifacts, and the
    version gets the tag ``mlcase.model_card`` pointing at them.

    Returns
    -------
    dict
        ``version``, ``run_id`` and the ``artifact_uri`` of the Markdown card.
    """
    from . import tracking
    from .errors import NotFoundError

    case = load_case(case)
    entry = next((v for v in tracking.versions(case) if str(v["version"]) == str(version)), None)
    if entry is None or not entry.get("run_id"):   # before the card is rewritten: a refusal changes nothing
        raise NotFoundError(f"no registered model version {version} for case '{case.name}' in {redact_url(case.tracking_uri)}",
                            "run `mlcase run` first, or pass a version that `mlcase versions` lists")
    md_path, html_path = write_model_card(case)
    run_id = entry["run_id"]
    for path in (md_path, html_path):
        tracking.log_run_text(case, run_id, path.read_text(encoding="utf-8"), f"{ARTIFACT_DIR}/{path.name}")
    uri = f"runs:/{run_id}/{ARTIFACT_DIR}/{CARD_MD}"
    tracking.set_version_tags(case, int(version), {"mlcase.model_card": uri})
    return {"version": int(version), "run_id": run_id, "artifact_uri": uri}


# --------------------------------------------------------------------------- markdown
def card_markdown(case: Case, res: dict[str, dict]) -> str:
    """The card as Markdown, from the spec and the stage results ``res`` (``results.load_all``)."""
    spec = case.spec
    if spec.task == "forecast":
        from .forecast.card import forecast_card_markdown

        return forecast_card_markdown(case, res)
    L: list[str] = [f"# Model card: {case.name}", ""]
    L += [f"> Written by mlcase {_pkg_version('mlcase')} on {_now()} from the stage results in `.mlcase/`. "
          "Sections marked TODO need a person.", ""]
    for section in (_details, _intended_use, _factors, _metrics, _evaluation_data, _training_data,
                    _quantitative, _caveats, _ethics, _governance):
        L += section(case, spec, res)
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def _model(res: dict) -> dict:
    """Which model the card describes: the champion when the decision set one, else the candidate."""
    decision = res.get("decision") or {}
    registry = res.get("registry") or {}
    bakeoff = res.get("bakeoff") or {}
    evaluation = res.get("evaluation") or {}
    candidate = registry.get("candidate") or bakeoff.get("candidate") or evaluation.get("champion_candidate")
    verdict = decision.get("verdict")
    if registry.get("champion_moved_after_run") and registry.get("champion_of_this_run"):
        # promoted or rolled back by hand to another of this run's versions: the card describes the one served
        name, role, version = registry.get("champion_name"), "champion", registry.get("champion_version")
    elif verdict in ("GO", "USE_BASELINE") and decision.get("champion") and not registry.get("champion_moved_after_run"):
        name, role = decision["champion"], "champion"
        version = registry.get("champion_version")
    else:
        name, role = candidate, "candidate"
        version = registry.get("candidate_version")
    row = next((r for r in bakeoff.get("leaderboard") or [] if r.get("name") == name), {})
    return {"name": name, "role": role, "version": version, "verdict": verdict, "row": row,
            "candidate": candidate, "baseline": registry.get("baseline") or evaluation.get("best_baseline"),
            "serving": None if role == "champion" else _serving(registry, decision)}


def _serving(registry: dict, decision: dict) -> str | None:
    """The champion in words where the card describes another version (an earlier run's champion, still served)."""
    from .report.registry_now import champion_text

    if registry.get("champion_version") is None and not registry.get("champion_moved_after_run"):
        return None
    return champion_text(registry, decision.get("champion"))


def _details(case, spec, res) -> list[str]:
    m = _model(res)
    L = ["## Model details", ""]
    if m["name"] is None:
        L += ["_No model yet: the bake-off has not run._" if "bakeoff" not in res else "_The bake-off kept no model._",
              ""]
    else:
        row = m["row"]
        family = row.get("family") or m["name"]
        kind = row.get("kind")
        L.append(f"- **Model:** {md_code(m['name'])} ({md_text(family)}{', ' + md_text(kind) if kind else ''}), the {m['role']}"
                 + (f"; decision **{m['verdict']}**" if m["verdict"] else "; no decision yet"))
        if m["version"] is not None:
            L.append(f"- **Registered:** `{case.name}` version {m['version']} in {md_code(redact_url(case.tracking_uri))}")
        else:
            L.append("- **Registered:** not yet (the registry stage has not run)" if "registry" not in res
                     else "- **Registered:** no version for this model")
        if m["serving"]:
            L.append(f"- **Champion (served):** {md_text(m['serving'])}")
        if row.get("params"):
            params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(row["params"].items()))
            L.append(f"- **Parameters:** {md_text(params)}")
        if row.get("cv_mean") is not None:
            L.append(f"- **Cross-validated {row.get('metric') or 'score'}:** {_num(row['cv_mean'])}"
                     + (f" (sd {_num(row['cv_std'])})" if row.get("cv_std") is not None else ""))
    trained = _stage_time(case, "bakeoff") or _stage_time(case, "evaluation")
    L.append(f"- **Training date:** {trained or 'not run'}")
    L.append(f"- **Decision it supports:** {md_text(spec.decision)}")
    owner = spec.owner or spec.owners.get("model")
    if owner or spec.owners:
        extra = "; ".join(f"{k}: {v}" for k, v in spec.owners.items())
        L.append(f"- **Owners:** {md_text(owner or '')}{' (' + md_text(extra) + ')' if extra else ''}")
    fp = _find(res, ("fingerprint", "data_fingerprint"))
    L.append(f"- **Data fingerprint:** {md_code(fp) if fp else 'unknown (the data stage has not run)'}")
    versions = ", ".join(f"{p} {_pkg_version(p)}" for p in LIBRARIES if _pkg_version(p) != "not installed")
    L.append(f"- **Software:** mlcase {_pkg_version('mlcase')}; {versions}")
    conf = res.get("conformal")
    if conf:
        L.append(f"- **Uncertainty:** split-conformal {conf.get('method')} at alpha {conf.get('alpha')} "
                 f"(calibrated on {conf.get('n_calibration')} validation rows)")
    L.append(f"- **Citation / contact:** {TODO} how to cite this model and whom to contact.")
    return L


def _intended_use(case, spec, res) -> list[str]:
    decision = res.get("decision")
    L = ["## Intended use", "", f"- **Primary use:** {md_text(spec.decision)}."]
    if spec.problem.current_process:
        L.append(f"- **It replaces or supports:** {md_text(spec.problem.current_process)}.")
    if spec.problem.volume:
        L.append(f"- **Volume:** {md_text(spec.problem.volume)} decisions.")
    if spec.goals:
        L.append("- **Goals:** " + "; ".join(map(md_text, spec.goals)) + ".")
    if spec.owners:
        L.append("- **Primary users:** " + ", ".join(f"{md_text(v)} ({md_text(k)})" for k, v in spec.owners.items()) + ".")
    if decision:
        L += ["", f"**Decision: {decision.get('verdict')}.**", ""]
        L += [f"- {md_text(r)}" for r in decision.get("reasons") or []]
    else:
        L += ["", "Decision: " + NOT_RUN]
    L += ["", "### Out-of-scope uses", ""]
    L += [f"- {md_text(g)}" for g in spec.non_goals]
    L += [f"- Any decision other than the one above ({md_text(spec.decision)}).",
          "- Populations, periods or data sources unlike the training data (see Training data)."]
    if spec.data.unavailable_at_serving:
        L.append("- Requests that supply " + ", ".join(map(md_code, spec.data.unavailable_at_serving))
                 + " (not available at serving time).")
    return L


def _factors(case, spec, res) -> list[str]:
    L = ["## Factors", ""]
    if spec.slices:
        L.append("- **Slices evaluated:** " + ", ".join(map(md_code, spec.slices)))
    if spec.sensitive:
        L.append("- **Sensitive columns** (kept out of the features, evaluated as groups): "
                 + ", ".join(map(md_code, spec.sensitive)))
        # Stat2Data::Titanic: Sex "kept out of the features" while SexCode, the same column as 0/1 (AUC 1.000), was
        # the model's strongest feature; the proxy finding was only among the caveats
        proxies = [c for c in (res.get("checks") or {}).get("checks") or [] if c.get("id") == "proxy"]
        if proxies:
            L.append("- **Features that stand in for them** (the `proxy` check): " + ", ".join(
                f"{md_code(c.get('column'))} for {md_code((c.get('evidence') or {}).get('sensitive'))} "
                f"({str((c.get('evidence') or {}).get('metric', '')).upper()} "
                f"{float((c.get('evidence') or {}).get('score') or 0):.3f})" for c in proxies)
                     + ": keeping a sensitive column out of the features does not keep what it says out of the model")
    if not spec.slices and not spec.sensitive:
        L.append("- No slices or sensitive columns are named in `case.yaml`; results are for the whole population "
                 "only. Add `slices:` and `sensitive:` to see subgroups.")
    L.append(f"- {TODO} other relevant groups, instruments or environments this model may meet.")
    return L


def _metrics(case, spec, res) -> list[str]:
    ev = res.get("evaluation")
    L = ["## Metrics", ""]
    L.append(f"- **Money:** every decision is costed from `costs:` in {md_text(spec.costs.currency)}: "
             + md_text(_costs_text(spec)) + ".")
    cap = spec.constraints.review_capacity
    if cap is not None:
        # the thresholds flag no more than the capacity on the validation rows they are chosen on; on the test rows
        # they can (credit_data: "thresholds never flag more" beside a threshold that flagged 33.6% of the test rows)
        shown = f"{100 * cap:.3g}% of cases" if isinstance(cap, float) else str(cap)
        chk = ((res.get("evaluation") or {}).get("capacity_check") or {})
        test = (f"; on the test rows the candidate's flags {_pct(chk['test_flag_rate'])}"
                + (", above it" if chk.get("test_over_capacity") else "")) if chk.get("test_flag_rate") is not None else ""
        L.append(f"- **Review capacity:** {shown} (thresholds are chosen on the validation rows to flag no more{test}).")
    if spec.constraints.latency_p95_ms:
        L.append(f"- **Latency limit:** p95 {spec.constraints.latency_p95_ms:g} ms.")
    if not ev:
        return L + ["", NOT_RUN]
    L.append(f"- **Primary metric:** {ev.get('primary_metric')} (model selection); the decision is made in money.")
    if ev.get("decision_note"):
        L.append(f"- **Decision:** {md_text(ev['decision_note'])}.")
    for k, v in (ev.get("point_notes") or {}).items():
        L.append(f"- **Prediction of {md_text(k)}:** {md_text(v)}.")
    thresholds = {k: v for k, v in (ev.get("thresholds") or {}).items() if v is not None}
    ties = ev.get("tie_shares") or {}
    if thresholds:
        L.append("- **Decision thresholds** (chosen on the validation rows to minimise cost within capacity): "
                 + ", ".join(f"{md_text(k)} {_num(v)}" + (f" ({_pct(ties[k])} of the rows scored at it, drawn at random)"
                                                   if k in ties else "") for k, v in thresholds.items()))
    return L


def _evaluation_data(case, spec, res) -> list[str]:
    ev = res.get("evaluation") or {}
    data = res.get("data") or {}
    split = data.get("split") or {}
    L = ["## Evaluation data", ""]
    n_test = ev.get("n_test") or split.get("n_test")
    if ev.get("unit") == "list":  # ranking: a decision is a list
        L.append(f"- **Test lists:** {n_test} ({ev.get('n_test_rows')} rows), held out by a {spec.split.method} "
                 f"split (test share {spec.split.test_size:g}, seed {spec.split.seed}); used once, for the numbers "
                 f"in this card.")
        L.append(f"- **Validation lists:** {ev.get('n_valid')} ({ev.get('n_valid_rows')} rows), used to choose the "
                 "best baseline and the model-free floor.")
        if ev.get("lift"):
            L.append(f"- **Confidence intervals:** {md_text(_ci_design(ev))}.")
        return L
    L.append(f"- **Test rows:** {n_test if n_test is not None else 'not run'}, held out by a "
             f"{spec.split.method} split (test share {spec.split.test_size:g}, seed {spec.split.seed}); "
             "used once, for the numbers in this card.")
    n_valid = ev.get("n_valid") or split.get("n_valid")
    if n_valid:
        L.append(f"- **Validation rows:** {n_valid}, used for thresholds, calibration and conformal calibration.")
    if ev.get("lift"):
        L.append(f"- **Confidence intervals:** {md_text(_ci_design(ev))}.")
    shift = [c for c in (res.get("checks") or {}).get("checks", []) if "shift" in str(c.get("id", ""))]
    if shift:
        L.append("- **Split shift:** " + "; ".join(md_text(c.get("title", "")) for c in shift))
    return L


def _ci_design(ev: dict) -> str:
    """Which bootstrap design the card's 95% CIs come from (rows, groups or time blocks), as the report says it."""
    from .report.sections.evaluation import ci_design

    return ci_design(ev)


def _training_data(case, spec, res) -> list[str]:
    data = res.get("data") or {}
    split = data.get("split") or {}
    L = ["## Training data", ""]
    sheet = case.root / "datasheet.md"
    L.append("- **Datasheet:** " + ("[datasheet.md](datasheet.md)" if sheet.exists() or "datasheet" in res
                                    else "not written yet (run `mlcase check` or `mlcase run`)"))
    L.append(f"- **Source:** {md_code(spec.data.source)}; target {md_code(spec.data.target)}"
             + (f" (positive: {md_code(spec.data.positive)})" if spec.data.positive is not None else ""))
    n_train = split.get("n_train")
    if data.get("rows") is not None:
        L.append(f"- **Rows:** {data['rows']} labelled" + (f", {n_train} for training" if n_train else ""))
    if data.get("features"):
        feats = data["features"]
        shown = ", ".join(map(md_code, feats[:25])) + (f" and {len(feats) - 25} more" if len(feats) > 25 else "")
        L.append(f"- **Features ({len(feats)}):** {shown}")
    if data.get("excluded"):
        L.append("- **Rows excluded:** " + md_text(", ".join(f"{k}: {v}" for k, v in data["excluded"].items())))
    if not data:
        L.append("- " + NOT_RUN)
    return L


def _quantitative(case, spec, res) -> list[str]:
    ev = res.get("evaluation")
    cur = spec.costs.currency
    L = ["## Quantitative analyses", ""]
    if not ev:
        L += ["### Test results", "", NOT_RUN, ""]
    else:
        m = _model(res)
        names = [n for n in dict.fromkeys([m["name"], ev.get("champion_candidate"), ev.get("best_baseline"),
                                           ev.get("best_model_free") or ev.get("trivial_baseline")]) if n]
        metric_names = []
        for n in names:
            for k in (ev.get("metrics") or {}).get(n, {}):
                if k not in metric_names:
                    metric_names.append(k)
        metric_names = metric_names[:8]
        rows = []
        free = ev.get("model_free") or {}
        for n in names:
            met = (ev.get("metrics") or {}).get(n, {})
            cost = (ev.get("cost_per_decision") or {}).get(n)
            label = n
            if n not in (ev.get("metrics") or {}) and n in free:  # the floor: a policy that needs no model
                cost, label = free[n].get("cost_per_decision"), f"model-free: {n} ({free[n].get('description')})"
                met = {k: v for k, v in free[n].items() if k in metric_names}  # a ranking's floor has list metrics
            rows.append({"model": label, f"cost per decision ({cur})": cost, **{k: met.get(k) for k in metric_names}})
        L += ["### Test results", "", *_md_table(rows), ""]
        lift = (ev.get("lift") or {}).get("money_per_decision")
        if lift:
            # the candidate's saving: on a USE_BASELINE card, which describes the baseline, "Saving over linear"
            # read as the baseline's over itself
            L.append(f"- **Saving of {md_text(ev['lift'].get('candidate'))} over {md_text(ev['lift'].get('baseline'))}:** "
                     f"{_per_decision(lift, cur)}")
        floor = ev.get("best_model_free")
        over = (ev.get("lift_over_model_free") or {}).get(ev.get("champion_candidate"))
        if floor and over:
            L.append(f"- **Saving over the best model-free policy** ({md_text((ev.get('model_free') or {}).get(floor, {}).get('description') or floor)}): "
                     f"{_per_decision(over, cur)}")
        value = ev.get("value_per_period")
        if value:
            L.append(f"- **Per {value.get('period')}, {md_text(ev['lift'].get('candidate'))} over "
                     f"{md_text(value.get('versus') or ev['lift'].get('baseline'))}:** "
                     f"{_money(value.get('net_expected'), cur)} net of operating "
                     f"cost (CI {_money(value.get('net_low'), cur)} to {_money(value.get('net_high'), cur)})")
        lat = ev.get("latency") or {}
        if lat.get("single_p95_ms") is not None:
            # the number the limit was judged on, as the report's verdict says it (credit_data's card read 9.178 ms,
            # the wall clock, where the decision judged 6.314 ms without the time spent waiting for a busy CPU)
            gate = lat.get("gate_ms")
            judged = (f"; judged on {_num(gate)} ms ({lat.get('gate')})"
                      if gate is not None and gate != lat["single_p95_ms"] else "")
            limit = f" against the {_num(lat['limit_p95_ms'])} ms limit" if lat.get("limit_p95_ms") is not None else ""
            path = f", through {lat['single_path']} as served" if lat.get("single_path") else ""
            L.append(f"- **Latency:** single-row p95 {_num(lat['single_p95_ms'])} ms (wall clock{path}){judged}{limit}")
        L.append("")
        from .report.sections.ranking import card_markdown as ranking_md

        L += ranking_md(ev)
        L += _slices_md(*_card_slices(res), _model(res)["name"])
    L += _analysis_md(res.get("analysis"), cur)
    described = _model(res)["name"]
    L += _conformal_md(res.get("conformal"), cur, described)
    L += _explain_md(res.get("explain"), described, _refit_of(res))
    return L


def _card_slices(res: dict) -> tuple[dict, str | None]:
    """The slices of the model the card describes where the evaluation has them (a USE_BASELINE champion's own:
    AER::HMDA's card for linear showed lightgbm's groups), else the candidate's, and the model they are of."""
    from .evaluate.slices import slices_of

    ev = res.get("evaluation") or {}
    described = _model(res)["name"]
    own = slices_of(ev, described)
    if own:
        return own, described
    return ev.get("slices") or {}, (ev.get("slices") or {}).get("model") or ev.get("champion_candidate")


def _slices_md(slices: dict, model: str | None = None, described: str | None = None) -> list[str]:
    L = ["### Per-slice results", ""]
    cols = slices.get("columns") or {}
    if not cols:
        return L + [slices.get("note") or "No slices were evaluated.", ""]
    L += _of_another(model, described)
    for col, info in cols.items():
        if info.get("error"):
            L += [f"**{md_text(col)}**: {md_text(info['error'])}", ""]
            continue
        groups = info.get("groups") or []
        keep = ["group", "n"] + [k for k in ("accuracy", "recall", "false_positive_rate", "selection_rate", "mae",
                                             "ndcg", "floor_ndcg", "ndcg_lift_over_floor",
                                             "cost_per_decision", "lift_per_decision")
                                 if any(k in g for g in groups)]
        L += [f"**{md_text(col)}**" + (" (sensitive)" if info.get("sensitive") else ""), ""]
        L += _md_table([{k: g.get(k) for k in keep} for g in groups])
        gap = info.get("largest_gap")
        if gap:
            L.append("")
            rel = " times the overall MAE" if gap.get("relative_to_overall") else ""
            ci = gap.get("ci") or [None, None]
            # the interval, as the reasons give it: a gap above the alert whose CI runs through zero may be chance
            ci_txt = (f" (95% CI {_num(ci[0])} to {_num(ci[1])}" + (", which includes zero" if ci[0] <= 0 else "") + ")"
                      if None not in ci else "")
            L.append(f"Largest gap: {gap.get('metric')} {_num(gap.get('gap'))}{rel} between {md_text(gap.get('low_group'))} and "
                     f"{md_text(gap.get('high_group'))}{ci_txt}" + (" — **above the alert level**" if gap.get("flagged") else ""))
        parity = [f"{label} {_num(info[k])}" for k, label in (("demographic_parity_difference", "demographic parity difference"),
                                                              ("equalized_odds_difference", "equalized odds difference"))
                  if info.get(k) is not None]
        if parity:
            L.append("")
            L.append("fairlearn, over the groups of enough rows: " + "; ".join(parity))
        if info.get("per_class"):
            from .evaluate.slices import per_class_rows

            L += ["", "Per class, that class against the rest (fairlearn's selection rate and true positive rate, over "
                  "the groups of enough rows; gaps with Newcombe's 95% CI):", ""]
            L += _md_table(per_class_rows(info)) + [""]
        for note in info.get("notes") or []:
            L.append(f"Note: {md_text(note)}.")
        if info.get("insufficient"):
            L.append(f"Too few rows to judge: {', '.join(map(md_text, info['insufficient']))}.")
        L.append("")
    return L


def _analysis_md(a: dict | None, cur: str) -> list[str]:
    """Where the model loses, whether more labels would pay, what each group is worth, which labels look wrong."""
    from .analysis.labels import conflicts_said, flagged_said
    from .analysis.slices import resampled_said, too_few_groups

    L = ["### Where the model loses, and what would help", ""]
    if not a:
        return L + [NOT_RUN, ""]
    if a.get("skipped"):
        return L + [f"Not available: {a['skipped']}.", ""]
    sl = a.get("slices") or {}
    losing = [e for e in sl.get("money") or [] if e.get("loses_money")]
    if too_few_groups(sl.get("resampled")):
        # a group split's test of 8 cities tried no slice: "none loses money beyond chance" claimed a verdict
        L.append(f"- **Weak slices:** {sl.get('scanned')} scanned; {md_text(resampled_said(sl['resampled']))}")
    else:
        L.append(f"- **Weak slices:** {sl.get('scanned')} scanned, {len(sl.get('money') or [])} tried on the test rows "
                 "(Holm-corrected); " + ("none loses money beyond chance" if not losing else "loses money in " + "; ".join(
                     f"{md_code(e['label'])} ({_money(e['test']['estimate'], cur)} per decision, 95% CI "
                     f"{_money(e['test']['ci_low'], cur)} to {_money(e['test']['ci_high'], cur)})" for e in losing)))
    if sl.get("erring"):
        L.append("- **Errs most (relative to a model-free prediction):** " + ", ".join(map(md_code, sl["erring"])))
    for e in (a.get("learning_curve") or {}).get("extrapolation") or []:
        if e["multiple"] > 1:
            L.append(f"- **With {e['multiple']:g}x the labels ({e['labels']:,}):** {_money(e['cost_per_decision'], cur)} "
                     f"per decision expected (band {_money(e['band'][0], cur)} to {_money(e['band'][1], cur)})")
    for g in ((a.get("feature_groups") or {}).get("groups") or [])[:5]:
        w = g.get("worth_per_decision")
        if w:
            L.append(f"- **Columns {md_code(g['group'])} are worth** {_money(w['estimate'], cur)} per decision (95% CI "
                     f"{_money(w['ci_low'], cur)} to {_money(w['ci_high'], cur)})")
    lb = a.get("labels") or {}
    if lb.get("file"):
        L.append(f"- **Label audit:** {md_text(flagged_said(lb))}; {md_text(conflicts_said(lb))} ({md_code(Path(lb['file']).name)})")
    return L + [""]


def _of_another(model: str | None, described: str | None) -> list[str]:
    """A line saying the numbers below are of another model than the card's (a USE_BASELINE card describes the
    baseline, and the run explains and calibrates the candidate)."""
    if not model or not described or model == described:
        return []
    return [f"_Of {md_code(model)}, not of the model this card describes ({md_code(described)})._", ""]


def _conformal_md(conf: dict | None, cur: str = "$", described: str | None = None) -> list[str]:
    L = ["### Uncertainty (conformal prediction)", ""]
    if not conf:
        return L + [NOT_RUN, ""]
    L += _of_another(conf.get("model"), described)
    target = conf.get("target_coverage")
    L.append(f"- **Coverage on the test rows:** {_pct(conf.get('coverage'))} (target {_pct(target)}, "
             f"method {conf.get('method')}, {conf.get('n_calibration')} calibration rows)")
    from .report.sections.trust import conformal_notes

    for label, note in conformal_notes(conf):
        L.append(f"- **{label}:** {md_text(note)}")
    if conf.get("mean_set_size") is not None:
        L.append(f"- **Mean set size:** {_num(conf['mean_set_size'])}; single-class sets: "
                 f"{_pct(conf.get('singleton_share'))}")
    if conf.get("mean_width") is not None:
        L.append(f"- **Mean interval width:** {_num(conf['mean_width'])}")
    d = conf.get("deferral") or {}
    if d:
        L.append(f"- **Deferral to review:** {d.get('deferred')} of {conf.get('n_test')} cases "
                 f"({_pct(d.get('deferred_share'))}); review load {_pct(d.get('review_load'))} of a capacity of "
                 f"{_pct(d.get('capacity_share')) if d.get('capacity_share') is not None else 'unlimited'}")
        if d.get("error_rate_automated") is not None or d.get("error_rate_deferred") is not None:
            L.append(f"- **Error rate:** automated {_pct(d.get('error_rate_automated'))}, deferred "
                     f"{_pct(d.get('error_rate_deferred'))}")
        if d.get("mae_automated") is not None:
            L.append(f"- **Mean absolute error:** automated {_num(d.get('mae_automated'))}, deferred "
                     f"{_num(d.get('mae_deferred'))}")
        L.append(f"- **Cost per decision:** model alone {_money(d.get('cost_model_only'), cur, 3)}, with deferral "
                 f"{_money(d.get('cost_combined'), cur, 3)}")
    L.append("")
    return L


def _refit_of(res: dict) -> dict | None:
    """The registry's ``refit`` record where the card describes the refitted version (``refit: all``), else None."""
    refit = (res.get("registry") or {}).get("refit") or {}
    version = _model(res).get("version")
    if refit.get("refit_version") is None or version is None or int(version) != int(refit["refit_version"]):
        return None
    return refit


def _explain_md(exp: dict | None, described: str | None = None, refit: dict | None = None) -> list[str]:
    L = ["### What drives the predictions (SHAP)", ""]
    if not exp:
        return L + [NOT_RUN, ""]
    L += _of_another(exp.get("model"), described)
    top = exp.get("importance") or []
    L.append(f"Mean |SHAP| ({md_text(exp.get('output'))}) over {exp.get('n_rows')} test rows, "
             f"{exp.get('explainer')} explainer on {md_text(exp.get('explained_model'))}:")
    if refit:
        # the card names the refitted version, and these values are the evaluated one's (MASS::Boston refitted on
        # all 506 rows: lstat 3.30 and rm 2.03 against the table's 2.93 and 2.48, with nothing to say which)
        L.append("")
        L.append(f"_These are the SHAP values of version {refit.get('evaluated_version')}, the model evaluated on "
                 f"the test rows ({refit.get('evaluated_rows_seen')} training rows); version "
                 f"{refit['refit_version']} is it refitted on all {refit.get('rows_seen')} labelled rows, and "
                 f"`mlcase explain --version {refit['refit_version']}` explains its predictions._")
    L.append("")
    L += _md_table([{"feature": r["feature"], "mean |SHAP|": r["mean_abs_shap"]} for r in top[:10]])
    for note in exp.get("notes") or []:
        L.append(f"\n_Note: {md_text(note)}._")
    L.append("")
    return L


def _caveats(case, spec, res) -> list[str]:
    L = ["## Caveats and recommendations", ""]
    checks = res.get("checks")
    items: list[str] = []
    if checks:
        for c in checks.get("checks") or []:
            if c.get("severity") in ("error", "warning"):
                col = f" ({md_code(c['column'])})" if c.get("column") else ""
                fix = f" Recommendation: {md_text(c['fix'])}" if c.get("fix") else ""
                if c.get("accepted"):
                    fix = f" Accepted by the owner: {md_text(c['accepted'])}"
                    items.append(f"**{c['severity']}, accepted** {md_code(c.get('id'))}{col}: {md_text(c.get('title'))}.{fix}")
                else:
                    items.append(f"**{c['severity']}** {md_code(c.get('id'))}{col}: {md_text(c.get('title'))}.{fix}")
        if checks.get("forced"):
            items.append("**The run went past error-level data checks (`--force`).**")
    else:
        items.append("Data checks: not run.")
    decision = res.get("decision")
    if decision and decision.get("verdict") != "GO":
        items.append(f"The decision is {decision.get('verdict')}: "
                     + "; ".join(map(md_text, decision.get("reasons") or [])) + ".")
    for flag in _card_slices(res)[0].get("flags") or []:
        items.append(f"Slice gap: {md_text(flag if isinstance(flag, str) else _flag_text(flag))}")
    conf = res.get("conformal") or {}
    if conf.get("coverage") is not None and conf.get("coverage_bounds"):
        # imported here: conformal at the top of the module cost every import of it 0.5 s
        from .conformal.evaluation import coverage_floor

        if conf["coverage"] < coverage_floor(conf):
            items.append(f"Conformal coverage {_pct(conf['coverage'])} is below its target "
                         f"{_pct(conf.get('target_coverage'))} beyond sampling noise: "
                         + md_text(conf.get("coverage_note") or "the test rows may differ from the validation rows (drift)")
                         + "; recalibrate before relying on the sets.")
    for a in conf.get("assumptions") or []:
        items.append(f"Deferral assumption: {md_text(a)}.")
    items.append("Monitor drift and realised costs after deployment (`mlcase monitor`); retrain every "
                 f"{spec.compute.retrain_every / 86400:g} days as planned.")
    return L + [f"- {i}" for i in items]


def _ethics(case, spec, res) -> list[str]:
    L = ["## Ethical considerations", "",
         f"{TODO} who is affected by this decision, what harm a wrong decision does to them, which groups "
         "could be treated unequally, and what mitigations are in place."]
    if spec.sensitive:
        L.append("")
        L.append("Sensitive columns named in the spec: " + ", ".join(map(md_code, spec.sensitive))
                 + " (see Per-slice results).")
    return L


def _governance(case, spec, res) -> list[str]:
    """Personal data, what the prediction log keeps and for how long, freshness limits, alert owners."""
    from .checks.personal import QUASI_KINDS
    from .formats import Markdown, duration
    from .governance.summary import KEPT, governance_summary

    stats = (res.get("checks") or {}).get("stats") or {}
    g = governance_summary(spec, stats.get("personal_data"))
    L = ["## Data protection and operations", ""]
    if g["personal_data"]:
        L += ["Personal data:", ""]
        L += _md_table([{"column": md_code(p["column"]), "holds": (p["kind"] or "–").replace("_", " ")
                         + (" (quasi-identifier)" if p["kind"] in QUASI_KINDS else ""),
                         # the TODO's bold is Markdown (a plain cell escaped it to '\*\*TODO'); a purpose is text
                         "purpose": p["purpose"] or Markdown(f"{TODO} not declared under personal_data"),
                         "prediction log keeps it": p["logged"]} for p in g["personal_data"]]) + [""]
    combo = stats.get("quasi_identifiers")
    if combo:
        L.append(f"- **Quasi-identifiers together:** {', '.join(md_code(c) for c in combo['columns'])} single out "
                 f"{combo['unique']:,} of {combo['rows']:,} rows ({combo['share']:.0%}) of the data: with a ZIP "
                 "code, a birth date and sex, 87% of US residents are unique (Sweeney, 2000); whoever holds them "
                 "can find these people in another list.")
    else:
        L.append("- **Personal data:** none declared under `personal_data`, and the data checks found none.")
    if g["unit_id"] is not None:
        L.append(f"- **Prediction log:** the unit (`data.id`) {KEPT[g['unit_id']]}"
                 + ("; " + ", ".join(f"{md_code(c)} {KEPT[h]}" for c, h in g["log_inputs"].items() if c != spec.data.id)
                    if any(c != spec.data.id for c in g["log_inputs"]) else "")
                 + ". Hashed values are HMAC-SHA256 with a key kept outside the log (`MLCASE_LOG_KEY`).")
    L.append(f"- **Retention:** {duration(g['retention_seconds'])} (`mlcase retention`; monitoring windows are kept "
             "as aggregates)" if g["retention_seconds"] else
             "- **Retention:** not set: the prediction log is kept until someone deletes it (set `serving.retention`).")
    if g["freshness"]:
        L.append("- **Feature freshness:** " + ", ".join(f"{md_code(f)} at most {duration(s)} old" for f, s in
                                                        g["freshness"].items())
                 + ("; a stale feature sends the record to the next fallback tier" if g["on_stale"] == "fallback"
                    else "; a stale feature is flagged in the answer")
                 + f"; alert above {_pct(g['max_stale_share'])} stale answers per window.")
    L += ["", "Who owns which alert:", ""]
    L += _md_table([{"alert": a["alert"].replace("_", " "), "owner": a["owner"], "from": a["via"]}
                    for a in g["alert_owners"]]) + [""]
    if g["notify"]:
        L.append("- **Notified through:** " + ", ".join(md_code(n["program"]) + (f" (for {md_text(', '.join(n['owners']))})"
                                                                               if n["owners"] else "")
                                                       for n in g["notify"]))
    if g["dead_man_windows"]:
        L.append(f"- **Dead-man's switch:** alerts after {g['dead_man_windows']} empty window(s) of "
                 f"{duration(g['window_seconds'])} (no prediction, or no monitoring run).")
    return L


# --------------------------------------------------------------------------- HTML
def card_html(markdown_text: str, title: str) -> str:
    """A self-contained HTML page of the Markdown card (no scripts, no external requests).

    Rendered by the report's Jinja stack (``report/templates/model_card.html.j2``).
    """
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    from .report.render import environment, static

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return environment().get_template("model_card.html.j2").render(
        title=title, css=static("card.css"), body=Markup(body)) + "\n"


# --------------------------------------------------------------------------- helpers
def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _stage_time(case: Case, stage: str) -> str | None:
    path = case.work_dir / f"{stage}.json"
    if not path.exists():
        return None
    return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pkg_version(name: str) -> str:
    if name == "mlcase":
        from . import __version__

        return __version__
    from .packages import version

    return version(name) or "not installed"  # xgboost: also from the xgboost-cpu wheel


def _find(obj: Any, keys: tuple[str, ...]) -> Any:
    """The first value under any of ``keys``, searching nested dicts breadth-first."""
    queue = [obj]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            for k in keys:
                if cur.get(k):
                    return cur[k]
            queue.extend(v for v in cur.values() if isinstance(v, dict))
    return None


def _costs_text(spec) -> str:
    c = spec.costs
    if spec.task == "binary":
        parts = [f"{k.replace('_', ' ')} {_short(getattr(c, k))}" for k in
                 ("true_positive", "false_positive", "false_negative", "true_negative") if getattr(c, k) is not None]
        return "; ".join(parts) or "none given (each error costs 1)"
    if spec.task == "regression":
        return f"under-prediction {_short(c.under if c.under is not None else 1)} per unit, over-prediction " \
               f"{_short(c.over if c.over is not None else 1)} per unit"
    if spec.task == "ranking":
        return (f"a relevant item at position 1 is worth {_short(c.relevant_item if c.relevant_item is not None else 1)}"
                f", discounted by position ({c.position_discount}); a list costs the value it leaves against the "
                "best order of its items")
    return "a cost matrix" if c.matrix else "none given (each error costs 1)"


def _flag_text(flag: dict) -> str:
    return ", ".join(f"{k} {_short(v)}" for k, v in flag.items())


def _md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["_(no rows)_"]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(md_cell(_num(r.get(c)) if isinstance(r.get(c), float) else r.get(c)) for c in cols)
            + " |" for r in rows]
    return out


def _per_decision(d: dict, cur: str) -> str:
    """A saving per decision with its 95% CI, to the tenth of a cent under one unit (as the report's banner)."""
    digits = 3 if all(abs(d.get(k) or 0) < 1 for k in ("estimate", "ci_low", "ci_high")) else 2
    return (f"{_money(d.get('estimate'), cur, digits)} per decision (95% CI {_money(d.get('ci_low'), cur, digits)} to "
            f"{_money(d.get('ci_high'), cur, digits)})")


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        f = float(v)
        if f != f:
            return "–"
        return number(f, 4)
    return str(v)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _short(v: Any) -> str:
    s = _num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    return s if len(s) <= 60 else s[:57] + "..."


