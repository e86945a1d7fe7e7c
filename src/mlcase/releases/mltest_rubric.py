"""The 28 tests of the ML Test Score, each read from a case's own evidence (:mod:`.mltest`).

Test titles follow Breck et al. (2017), tables I-IV. Each function returns
``(status, evidence, what would close it)``; ``automated`` means mlcase reruns or
enforces it on every run, request or release of the case.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .mltest import Evidence, rubric

A, M, X = "automated", "manual", "missing"
RUN = "run `mlcase run` on the case"


def _stage(ev: Evidence, name: str) -> dict:
    """A stage's results, a forecast case's own where it stores them under ``forecast_<name>`` (bakeoff, evaluation,
    explain): fpp3::us_gasoline's run, GO with an Optuna search and SHAP, read "no bake-off", "no explanations" and
    "this one stopped at the value ceiling before training", each with "run `mlcase run`" as the fix."""
    return ev.results.get(name) or ev.results.get(f"forecast_{name}") or {}


def _has(ev: Evidence, name: str) -> bool:
    return ev.has(name) or ev.has(f"forecast_{name}")


def _schema_columns(data: dict) -> int:
    """The columns the server checks: a table case's schema, a forecast case's time, target, series and covariates
    (a forecast's data results hold no table schema: us_gasoline's read "a schema of 0 columns")."""
    if data.get("task") == "forecast":
        return 2 + bool(data.get("series_column")) + len(data.get("features") or [])
    return len((data.get("schema") or {}).get("columns", []))


# =========================================================================== data
@rubric("data.1", "data", "Feature expectations are captured in a schema")
def _schema(ev: Evidence):
    if ev.has("data") and ev.champion:
        n = _schema_columns(ev.results["data"])
        return A, f"a schema of {n} columns is stored with the champion; the server validates every request", None
    if ev.has("data"):
        return M, "a schema was inferred, but no registered champion enforces it at serving", ev.champion_fix
    return X, "no schema inferred yet", RUN


@rubric("data.2", "data", "All features are beneficial")
def _beneficial(ev: Evidence):
    fix = "measure each feature group's value by ablation and store it (.mlcase/analysis.json)"
    fg = (ev.results.get("analysis") or {}).get("feature_groups") or {}
    # the groups whose worth was measured, not the keys of the result (modeldata::credit_data read "the value of 6
    # feature groups is measured" where the time share measured none of its 13 columns)
    measured = [g for g in fg.get("groups") or [] if g.get("worth_per_decision")]
    if measured:
        left = len(fg.get("not_measured") or [])
        return A, (f"the value of {len(measured)} feature group(s) is measured by ablation on every run"
                   + (f" ({left} more not within the time share)" if left else "")), None
    if fg.get("not_measured"):
        return M, (f"feature-group ablation ran out of its time share before measuring any of "
                   f"{len(fg['not_measured'])} group(s)"), "raise analysis.time_share or the budget, or name fewer " \
                                                           "feature_groups"
    if _has(ev, "explain"):
        top = (_stage(ev, "explain").get("importance") or [])
        return M, f"SHAP importance ranks {len(top)} features; nobody has measured what each adds", fix
    return X, "no feature importance measured", f"{RUN} (SHAP importance), then {fix}"


@rubric("data.3", "data", "No feature's cost is too much")
def _feature_cost(ev: Evidence):
    lat = (ev.results.get("evaluation") or {}).get("latency") or {}
    limit = ev.spec.constraints.latency_p95_ms
    if lat and limit:
        return A, (f"single-record p95 {lat.get('single_p95_ms', float('nan')):.2f} ms against the limit "
                   f"{limit:g} ms, measured on every run"), None
    if lat:
        return M, "latency is measured but no limit is set", "set constraints.latency_p95_ms"
    return X, "no latency measured", f"set constraints.latency_p95_ms and {RUN}"


@rubric("data.4", "data", "Features adhere to meta-level requirements")
def _meta(ev: Evidence):
    declared = [k for k in ("sensitive", "unavailable_at_serving")
                if (ev.spec.sensitive if k == "sensitive" else ev.spec.data.unavailable_at_serving)]
    if declared and ev.has("checks"):
        return A, f"{' and '.join(declared)} declared; the checks refuse such columns as features on every run", None
    if declared:
        return M, f"{' and '.join(declared)} declared, not checked yet", "run `mlcase check`"
    return X, "no column is declared sensitive or unavailable at serving", \
        "declare sensitive: [...] and data.unavailable_at_serving in case.yaml"


@rubric("data.5", "data", "The data pipeline has appropriate privacy controls")
def _privacy(ev: Evidence):
    parts = (["an API key guards the server"] if ev.api_key else []) + (
        [f"sensitive columns declared ({', '.join(ev.spec.sensitive)})"] if ev.spec.sensitive else [])
    fix = "set serving.api_key_file (or MLCASE_API_KEY) and declare the sensitive columns"
    if len(parts) == 2:
        return A, "; ".join(parts), None
    if parts:
        return M, parts[0] + "; " + ("no sensitive column declared" if ev.api_key else "the server has no API key"), fix
    return X, "the server would answer anyone and no sensitive column is declared", fix


@rubric("data.6", "data", "New features can be added quickly")
def _add_feature(ev: Evidence):
    stages = (ev.results.get("card") or {}).get("stages") or []
    if ev.has("registry") and "decision" in stages:
        return A, "a feature is a line of case.yaml; one `mlcase run` re-checks, re-trains, decides and registers", None
    if ev.has("checks"):
        return M, "the data is checked, but no full run has shown the way from a new feature to a decision", RUN
    return X, "no run yet", RUN


@rubric("data.7", "data", "All input feature code is tested")
def _feature_code(ev: Evidence):
    checks = [a for a in ev.spec.assumptions if a.check]
    if checks and ev.has("checks"):
        return A, f"{len(checks)} assumption(s) with a SQL check run against the data on every run", None
    if ev.has("checks"):
        return M, "mlcase's own data checks ran; the case states no expectation of its own data", \
            "add assumptions with a check: (SQL) in case.yaml"
    return X, "the data has not been checked", "run `mlcase check` and add assumptions with a check:"


# =========================================================================== model
@rubric("model.1", "model", "Model specs are reviewed and submitted")
def _reviewed(ev: Evidence):
    git = ev.git
    if git.get("tracked") and git.get("clean"):
        return A, "case.yaml is committed to git and unchanged; every run records the commit", None
    if git.get("tracked"):
        return M, "case.yaml is in git with uncommitted changes", "commit case.yaml (through a review)"
    return X, "case.yaml is not under version control", "commit the case folder to git, changes through review"


@rubric("model.2", "model", "Offline and online metrics correlate")
def _offline_online(ev: Evidence):
    mon = ev.results.get("monitoring") or {}
    realized = [w["realized"] for w in mon.get("windows", []) if w.get("realized") and w["realized"].get("cost")
                is not None]
    offline = (ev.results.get("evaluation") or {}).get("cost_per_decision")
    if realized:
        online = sum(r["cost"] * r["n"] for r in realized) / max(1, sum(r["n"] for r in realized))
        off = offline.get(ev.results["evaluation"].get("champion_candidate")) if isinstance(offline, dict) else offline
        text = f"realized cost per decision {online:.4g} on {sum(r['n'] for r in realized)} labels"
        return A, text + (f" against {off:.4g} offline" if isinstance(off, (int, float)) else ""), None
    if mon:
        return M, "monitoring ran but no labels arrived yet: the online metric is estimated only", \
            "attach delayed labels (POST /labels or `mlcase label`) and re-run `mlcase monitor`"
    return X, "no online metric", "serve the model, attach labels, run `mlcase monitor`"


@rubric("model.3", "model", "All hyperparameters have been tuned")
def _tuned(ev: Evidence):
    bake = _stage(ev, "bakeoff")
    lb = bake.get("leaderboard") or []
    # the search's own trials per family (an ensemble row counts trials already counted: credit_data's 4 lightgbm
    # trials and 2 baselines read "9 trials over 4 families and baselines"); a forecast family counts its `trials`
    families = bake.get("families") or {}

    def n_trials(f: dict) -> int:
        t = f.get("n_trials")
        return int(t if t is not None else f["trials"] if isinstance(f.get("trials"), int) else 0)

    def baseline(r: dict) -> bool:
        return r.get("kind") == "baseline" or r.get("role") == "baseline"

    trials = sum(n_trials(f) for f in families.values())
    if not families:
        trials = sum(int(r.get("n_trials") or 0) for r in lb if not baseline(r) and r.get("name") != "ensemble")
    n_fam = len(families) or len({r.get("family") for r in lb if not baseline(r) and r.get("name") != "ensemble"})
    n_base = sum(baseline(r) for r in lb)
    if trials > n_fam:
        return A, (f"{trials} trials over {n_fam} candidate famil{'y' if n_fam == 1 else 'ies'}, beside {n_base} "
                   "baseline(s), in a time-boxed search on every run"), None
    if lb:
        return M, f"{len(lb)} models fitted with default settings", "give the bake-off a budget that allows a search"
    return X, "no bake-off", RUN


@rubric("model.4", "model", "The impact of model staleness is known")
def _staleness(ev: Evidence):
    windows = [w for w in (ev.results.get("monitoring") or {}).get("windows", [])
               if w.get("realized") or w.get("estimated")]
    if len(windows) >= 2:
        return A, f"performance is tracked over {len(windows)} monitoring windows", None
    if ev.spec.split.method == "time":
        return M, "the evaluation is forward in time (split.method: time)", \
            "monitor the served model over several windows (`mlcase monitor`)"
    return X, "nothing shows how performance decays with age", \
        "use split.method: time, and monitor the served model over several windows"


@rubric("model.5", "model", "A simpler model is not better")
def _simpler(ev: Evidence):
    d = ev.results.get("decision") or {}
    if d.get("verdict"):
        best = _stage(ev, "evaluation").get("best_baseline")
        if best is None:  # the value ceiling stopped the run before training ("best: None" on ceiling-stopped cases)
            return A, (f"every run prices the best model-free process first; this one stopped at the value ceiling "
                       f"before training, so no model stands over it; decision {d['verdict']}"), None
        return A, f"every run compares the candidate with the baselines (best: {best}); decision {d['verdict']}", None
    return X, "no decision yet", RUN


@rubric("model.6", "model", "Model quality is sufficient on all important data slices")
def _slices(ev: Evidence):
    sl = (ev.results.get("evaluation") or {}).get("slices") or {}
    if ev.spec.slices and sl:
        return A, f"quality per slice of {', '.join(ev.spec.slices)} with a gap alert, on every run", None
    if ev.spec.slices:
        return M, f"slices declared ({', '.join(ev.spec.slices)}), not evaluated yet", RUN
    return X, "no slice is declared", "declare slices: [...] in case.yaml"


@rubric("model.7", "model", "The model has been tested for considerations of inclusion")
def _inclusion(ev: Evidence):
    cols = ((ev.results.get("evaluation") or {}).get("slices") or {}).get("columns") or {}
    fair = {c: cols[c] for c in ev.spec.sensitive if (cols.get(c) or {}).get("groups")}
    if ev.spec.sensitive and len(fair) == len(ev.spec.sensitive):
        gaps = [t for c, v in fair.items() if (t := _parity_text(c, v))]
        return A, (f"group metrics with intervals for {', '.join(fair)} on every run (fairlearn)"
                   + (f"; {'; '.join(gaps)}" if gaps else "")), None
    if ev.spec.sensitive:
        return M, f"sensitive columns declared ({', '.join(ev.spec.sensitive)}); no group metrics stored yet", RUN
    return X, "no sensitive column declared", "declare sensitive: [...] in case.yaml"


def _parity_text(col: str, info: dict) -> str | None:
    """A sensitive column's demographic parity difference as the evaluation stored it: a binary model's one number,
    or a multiclass model's per class, one class against the rest (:func:`mlcase.evaluate.slices._per_class`), the
    largest first. carData::BEPS by gender, a three-party vote, had "group metrics ... for gender" and no number."""
    dp = info.get("demographic_parity_difference")
    if dp is not None:
        return f"{col}: demographic parity difference {dp:.3g}"
    per = {str(k): float(d) for k, v in (info.get("per_class") or {}).items()
           if (d := (v or {}).get("demographic_parity_difference")) is not None and d == d}
    if not per:
        return None
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"'{k}' {d:.3g}" for k, d in ranked[:4])
    more = f" and {len(ranked) - 4} more" if len(ranked) > 4 else ""
    return f"{col}: demographic parity difference per class (one against the rest) {shown}{more}"


# =========================================================================== infrastructure
@rubric("infrastructure.1", "infrastructure", "Training is reproducible")
def _reproducible(ev: Evidence):
    tags = ev.champion_run_tags
    fp = tags.get("mlcase.data_fingerprint") or (ev.champion or {}).get("tags", {}).get("mlcase.data_fingerprint")
    pkgs = [k for k in tags if k.startswith("mlcase.pkg.")]
    if fp and pkgs and tags.get("mlcase.git_commit"):
        return A, (f"the champion's run records the data fingerprint, split seed {ev.spec.split.seed}, "
                   f"{len(pkgs)} package versions and the git commit"), None
    if fp:
        return M, "the data fingerprint and seed are recorded, not the code's commit", \
            "run mlcase from a git checkout of the case, so the commit is recorded"
    return X, "no registered champion with recorded inputs", ev.champion_fix


@rubric("infrastructure.2", "infrastructure", "Model specs are unit tested")
def _spec_tested(ev: Evidence):
    if ev.has("checks") or ev.has("data"):
        return A, "case.yaml is validated on every load, its SQL checked and run on the data before anything is " \
                  "written", None
    return M, "case.yaml loads and validates, but has not been run against its data", "run `mlcase check`"


@rubric("infrastructure.3", "infrastructure", "The ML pipeline is integration tested")
def _integration(ev: Evidence):
    stages = (ev.results.get("card") or {}).get("stages") or []
    if ev.has("registry") and ev.has("decision"):
        return A, f"`mlcase run` went end to end ({len(stages) or len(ev.results)} stages, registered)", None
    if ev.has("checks"):
        return M, "some stages ran on their own", RUN
    return X, "the pipeline has not run", RUN


@rubric("infrastructure.4", "infrastructure", "Model quality is validated before serving")
def _validated(ev: Evidence):
    if not ev.champion:
        return X, "no champion", ev.champion_fix
    tags = ev.champion.get("tags", {})
    promoted = [h for h in ev.history if h.get("action") == "promote" and h.get("to_version") == ev.champion["version"]]
    if tags.get("mlcase.verdict") or promoted:
        how = f"decision {tags['mlcase.verdict']}" if tags.get("mlcase.verdict") else "`mlcase promote` (gated)"
        return A, f"champion version {ev.champion['version']} was set by {how}", None
    return M, f"champion version {ev.champion['version']} was set by hand", \
        "move the champion with `mlcase run` (the decision) or `mlcase promote`"


@rubric("infrastructure.5", "infrastructure", "The model is debuggable")
def _debuggable(ev: Evidence):
    replayable = ev.log.get("provenance_rows", 0)
    if _has(ev, "explain") and replayable:
        return A, f"SHAP explanations, and {replayable} logged decisions replayable with `mlcase replay`", None
    if _has(ev, "explain") and ev.spec.task == "forecast":
        return M, ("SHAP explanations of the forecaster's lag and calendar features; `mlcase replay` works on records, "
                   "and a forecast's log row keeps its points, not the history they came from"), \
            "keep each request's history beside its logged forecast to reproduce it"
    if _has(ev, "explain"):
        return M, "SHAP explanations; no logged decision to replay yet", \
            "serve the model: every decision is logged with what `mlcase replay` needs"
    return X, "no explanations", RUN


@rubric("infrastructure.6", "infrastructure", "Models are canaried before serving")
def _canaried(ev: Evidence):
    champ = (ev.champion or {}).get("version")
    canaried = {h.get("to_version") for h in ev.history if h.get("action") == "canary_start"}
    if champ is not None and champ in canaried:
        return A, f"champion version {champ} served a canary before it was promoted", None
    if canaried or ev.spec.serving.canary:
        return M, "canaries have run, but not of the current champion", \
            "canary each new version (`mlcase serve --canary N:10%`) before `mlcase promote`"
    return X, "no canary ever ran", "serve new versions as a canary first: `mlcase serve --canary N:10%`"


@rubric("infrastructure.7", "infrastructure", "Serving models can be rolled back")
def _rollback(ev: Evidence):
    prev = ev.previous_champion
    if prev is not None and ev.spec.serving.auto_rollback:
        return A, f"`mlcase rollback` returns to version {prev}; the server rolls back by itself on a guardrail", None
    if prev is not None:
        return M, f"`mlcase rollback` returns to version {prev}", "set serving.auto_rollback: true"
    return X, "no earlier champion to return to", "promote a second version (the first one becomes the way back)"


# =========================================================================== monitoring
@rubric("monitoring.1", "monitoring", "Dependency changes result in notification")
def _dependencies(ev: Evidence):
    import importlib.metadata as md

    tags = ev.champion_run_tags
    pkgs = {k.removeprefix("mlcase.pkg."): v for k, v in tags.items() if k.startswith("mlcase.pkg.")}
    if not pkgs:
        return X, "the champion's package versions are not recorded" if ev.champion else "no champion", \
            ev.champion_fix
    changed = []
    for name, version in sorted(pkgs.items()):
        try:
            now = md.version(name)
        except md.PackageNotFoundError:
            now = "(not installed)"
        if now != version:
            changed.append(f"{name} {version} -> {now}")
    text = (f"changed since training: {', '.join(changed)}" if changed else
            f"the {len(pkgs)} recorded package versions match this machine's")
    if ev.log.get("provenance_rows"):
        return A, text + "; every logged decision carries the code version, which `mlcase replay` compares", None
    return M, text, "serve the model so each decision records the code version"


@rubric("monitoring.2", "monitoring", "Data invariants hold in training and serving inputs")
def _invariants(ev: Evidence):
    if ev.has("monitoring"):
        return A, "requests are validated against the schema; monitoring checks the assumptions per window", None
    if ev.log.get("rows"):
        return M, f"{ev.log['rows']} requests validated at serving; the assumptions are not monitored", \
            "run `mlcase monitor` on a schedule"
    return X, "nothing served yet", "serve the model and run `mlcase monitor`"


@rubric("monitoring.3", "monitoring", "Training and serving features compute the same values")
def _skew(ev: Evidence):
    mon = ev.results.get("monitoring") or {}
    if mon.get("overall", {}).get("drift"):
        n = len(mon["overall"]["drift"])
        return A, f"monitoring compares {n} served features with the training reference (PSI, tests)", None
    if ev.champion:
        return M, "the champion carries a training reference; served data is not compared yet", \
            "run `mlcase monitor` on the prediction log"
    return X, "no reference to compare with", ev.champion_fix


@rubric("monitoring.4", "monitoring", "Models are not too stale")
def _stale(ev: Evidence):
    if not ev.champion or not ev.champion.get("created"):
        return X, "no champion", ev.champion_fix
    age = (datetime.now(UTC) - datetime.fromisoformat(ev.champion["created"])).total_seconds() / 86400
    limit = ev.spec.compute.retrain_every / 86400
    if age <= limit:
        return A, f"the champion is {age:.1f} days old, within compute.retrain_every ({limit:g} days)", None
    return X, f"the champion is {age:.0f} days old, past compute.retrain_every ({limit:g} days)", \
        "retrain: `mlcase run`"


@rubric("monitoring.5", "monitoring", "Models are numerically stable")
def _numeric(ev: Evidence):
    if ev.has("monitoring"):
        share = max((w["fallback"]["share"] for w in ev.results["monitoring"].get("windows", [])), default=0.0)
        return A, f"non-finite scores hand over to the fallback; monitoring watches the share (max {share:.1%})", None
    if ev.log.get("rows"):
        return M, "non-finite scores hand over to the fallback; the share is not monitored", "run `mlcase monitor`"
    return X, "nothing served yet", "serve the model and run `mlcase monitor`"


@rubric("monitoring.6", "monitoring", "Computing performance has not regressed")
def _latency(ev: Evidence):
    limit = ev.spec.releases.guardrails.max_latency_p95_ms or ev.spec.constraints.latency_p95_ms
    live = ev.spec.serving.auto_rollback or any(h.get("action") == "promote" for h in ev.history)
    if limit and live:
        return A, f"latency p95 is a release guardrail ({limit:g} ms) checked live per arm", None
    if limit:
        return M, f"latency is measured offline against {limit:g} ms", \
            "gate releases on it: serving.auto_rollback: true, or `mlcase rollout status` before `mlcase promote`"
    return X, "no latency limit", "set constraints.latency_p95_ms"


@rubric("monitoring.7", "monitoring", "Prediction quality has not regressed")
def _quality(ev: Evidence):
    mon = ev.spec.monitoring
    limits = [k for k in ("max_realized_cost", "max_estimated_cost") if getattr(mon, k) is not None]
    if ev.has("monitoring") and limits:
        return A, f"monitoring alerts on {' and '.join(limits)}", None
    if ev.has("monitoring"):
        return M, "monitoring reports realized and estimated cost, with no alert threshold", \
            "set monitoring.max_realized_cost or max_estimated_cost"
    return X, "quality is not monitored", "run `mlcase monitor` and set monitoring.max_realized_cost"
