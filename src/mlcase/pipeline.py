"""``run(case)``: the one place that knows the order of the stages.

Each stage is a function of the case and the outputs of earlier stages; its
result is saved to ``<case>/.mlcase/<stage>.json`` so the report and the model
card can be rebuilt without retraining.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import results
from .case import Case, load_case
from .errors import ModelError


@dataclass
class RunResult:
    """What ``mlcase run`` did: the decision, the champion, the main numbers and where the report is."""

    case: Case
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)
    champion: str | None = None
    metrics: dict = field(default_factory=dict)
    metrics_of: str | None = None
    champion_metrics: dict = field(default_factory=dict)
    report: Path | None = None
    card: Path | None = None
    versions: dict = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    forced: bool = False
    stopped_at: str | None = None
    check_errors: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # the dataclass repr printed the whole case spec (6,000 characters on one line in a notebook)
        return (f"RunResult(case={self.case.name!r}, decision={self.decision!r}, champion={self.champion!r}, "
                f"report={str(self.report) if self.report else None!r}, stopped_at={self.stopped_at!r})")

    def summary(self) -> dict[str, Any]:
        return {"case": self.case.name, "decision": self.decision, "reasons": self.reasons,
                "champion": self.champion, "metrics": self.metrics, "metrics_of": self.metrics_of,
                "champion_metrics": self.champion_metrics,
                "report": str(self.report) if self.report else None,
                "model_card": str(self.card) if self.card else None,
                "registry": self.versions, "stage_seconds": {k: round(v, 2) for k, v in self.stages.items()},
                "forced": self.forced, "stopped_at": self.stopped_at, "check_errors": self.check_errors}

    def print(self, console) -> None:
        from .formats import markup_escape

        colour = {"GO": "green", "USE_BASELINE": "yellow", "NO_GO": "red", "INCONCLUSIVE": "magenta"}.get(
            self.decision or "", "white")
        console.print(f"\n[bold]{markup_escape(self.case.name)}[/bold]: decision [bold {colour}]{markup_escape(str(self.decision))}[/]"
                      + (f" (champion: {markup_escape(str(self.champion))})" if self.champion else ""))
        for r in self.reasons:
            console.print(f"  - {markup_escape(r)}")
        if self.report:
            console.print(f"report: {markup_escape(str(self.report))}")
        if self.card:
            console.print(f"model card: {markup_escape(str(self.card))}")


class _Timer:
    def __init__(self, result: RunResult, console, quiet: bool):
        self.result, self.console, self.quiet = result, console, quiet

    def __call__(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()
                if not timer.quiet and timer.console is not None:
                    timer.console.print(f"[dim]▸ {name}[/dim]")
                return self

            def __exit__(self, *exc):
                timer.result.stages[name] = time.perf_counter() - self.t0
                return False

        return _Stage()


def run(case: Case | str | Path, budget: float | str | None = None, force: bool = False,
        quiet: bool = False, console=None, refit: str | None = None, engine: str | None = None,
        scheduler: str | None = None) -> RunResult:
    """Run a case end to end and return a :class:`RunResult`.

    Parameters
    ----------
    case : Case, or a path to case.yaml or its folder
    budget : str or float, optional
        Overrides the spec's bake-off budget (``"90s"``, ``"2m"`` or seconds).
    force : bool
        Go on past error-level data checks (the run records that it was forced).
    quiet : bool
        No progress output.
    refit : {"none", "all"}, optional
        Overrides the spec's ``refit``: ``"all"`` registers the champion refitted on every
        labelled row beside the evaluated version (it becomes champion through the same decision).
    engine : {"local", "dask"}, optional
        Where the bake-off's trials run (default: the spec's ``engine``, else local).
    scheduler : str, optional
        A running Dask scheduler's address; without it the Dask engine starts a LocalCluster
        sized to this machine (and closes it at the end). An unreachable address fails before
        anything is written.

    Examples
    --------
    >>> import mlcase                                     # doctest: +SKIP
    >>> result = mlcase.run("examples/telco-churn", budget="60s")  # doctest: +SKIP
    >>> result.decision                                   # doctest: +SKIP
    'GO'
    """
    from .arguments import flag
    from .bakeoff import parse_budget
    from .lock import case_lock

    case = load_case(case)
    # force="no" is true to Python: it ran past error-level data checks; console="x" failed on its first print
    force = flag(force, "force")
    if console is not None and not callable(getattr(console, "print", None)):
        from .errors import SpecError

        raise SpecError(f"console: expected a rich Console, got a {type(console).__name__}",
                        "pass rich.console.Console(stderr=True), or leave it out")
    if budget is not None:
        parse_budget(budget)  # a bad --budget fails before any work (SpecError, not ValueError)
    if refit is not None:
        if refit not in ("none", "all"):
            from .errors import SpecError

            raise SpecError(f"refit: expected 'none' or 'all', got {refit!r}", "use --refit all or --refit none")
        if refit == "all" and case.spec.task == "ranking":
            # the spec's validator refuses it on assignment too, and that was an internal error (ValidationError)
            from .errors import SpecError

            raise SpecError("--refit all is not available for task: ranking yet",
                            "run without --refit: the ranker registered is the one the decision evaluated")
        import copy  # the caller's Case keeps its own spec: a later run of it reads case.yaml's refit

        case = copy.copy(case)
        case.spec = case.spec.model_copy(update={"refit": refit})
    from .engine import engine_for

    engine, scheduler = bakeoff_engine(case, engine, scheduler, console, quiet)
    if case.spec.task == "forecast":  # the forecast bake-off runs in this process
        if case.spec.refit == "all" and not quiet:
            _start(case, force, quiet, console)[0].print(
                "[yellow]note:[/yellow] a forecast's registered models are fitted on every series' whole history "
                "already; refit: all changes nothing")
        with case_lock(case, "run") as held:  # one run at a time per case; a killed run's lock is taken over
            return _run_forecast(case, budget, force, quiet, console, held)
    # the engine first: an unreachable scheduler fails before anything is written
    with engine_for(case, engine, scheduler, console=None if quiet else console) as eng, \
            case_lock(case, "run") as held:  # one run at a time per case; a killed run's lock is taken over
        return _run(case, budget, force, quiet, console, held, eng)


def bakeoff_engine(case: Case, engine: str | None, scheduler: str | None, console=None, quiet: bool = False) -> tuple:
    """``(engine, scheduler)`` for a bake-off of ``case``: as given, except where the bake-off runs in this process.

    The ranking bake-off (lists, group-aware folds) and the forecast one (rolling cut-offs) run their trials
    here, so ``--engine dask`` (or ``engine: dask``) would start a LocalCluster no trial reaches: it is dropped
    with a note on ``console`` (ranking said nothing and started the cluster).
    """
    from .engine import resolve

    if case.spec.task in ("ranking", "forecast") and resolve(case, engine, scheduler)["kind"] == "dask":
        if not quiet:
            if console is None:
                from rich.console import Console

                console = Console(stderr=True)
            console.print(f"[yellow]note:[/yellow] the {case.spec.task} bake-off runs on the local engine; "
                          "--engine dask is ignored")
        return "local", None
    return engine, scheduler


def _start(case: Case, force: bool, quiet: bool, console):
    """``(console, result, stage timer)`` of a run."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True, quiet=quiet)
    out = RunResult(case=case, forced=force)
    return console, out, _Timer(out, console, quiet)


def _run(case: Case, budget, force: bool, quiet: bool, console, held, engine=None) -> RunResult:
    from .data import prepare
    from .lock import take_over

    console, out, stage = _start(case, force, quiet, console)

    with stage("data"):
        dataset = prepare(case)  # bad input fails here, before anything is written
        from .analysis import check_spec

        check_spec(case, dataset)
        from .tasks import capacity_share
        from .tracking import client

        capacity_share(case)  # the review capacity must be usable as a share
        client(case)  # an unreachable, malformed or broken tracking store, too
        killed = take_over(case, held)  # MLflow runs a killed run left RUNNING are closed as KILLED
        if killed and not quiet:
            console.print(f"[yellow]note:[/yellow] the previous run on this case (pid {held.stale.pid}) was killed; "
                          f"its {len(killed)} MLflow run(s) left RUNNING are now KILLED")
        results.clear(case)
        results.save(case, "data", {**dataset.summary(), "schema": dataset.schema.to_dict()})

    from . import checks as checks_mod
    from . import tracking

    with stage("checks"):
        report = checks_mod.run_checks(case, dataset)
        results.save(case, "checks", {**report.to_dict(), "forced": bool(force and report.has_errors)})
        _datasheet(case, dataset, report)
        with tracking.run(case, "checks", tags=tracking.base_tags(case, dataset.fingerprint, "checks")):
            tracking.log_dict(report.to_dict(), "checks.json")
            tracking.log_metrics({"check_errors": len(report.errors), "check_warnings": len(report.warnings)})
            tracking.set_tags({"mlcase.forced": force and report.has_errors})
        if report.has_errors:
            out.check_errors = [c.line() for c in report.errors]
            if not force:
                out.stopped_at = "checks"
                out.report = _report(case)
                # the report's own error: one finding leads with its own fix (ggplot2::mpg's rare classes got
                # only "fix the data" here, while `mlcase check` gave the query that drops them)
                report.raise_for_errors()

    from . import decision as decision_mod
    from . import evaluate as evaluate_mod

    with stage("value ceiling"):
        ceiling = evaluate_mod.value_ceiling(case, dataset)
        results.save(case, "ceiling", ceiling.to_dict())
    if ceiling.stop:
        verdict = decision_mod.decide(case, ceiling, None)
        results.save(case, "decision", verdict.to_dict())
        out.decision, out.reasons, out.stopped_at = verdict.verdict, list(verdict.reasons), "value ceiling"
        out.report = _report(case)
        return out

    from . import bakeoff as bakeoff_mod

    with stage("bake-off"):
        bake = bakeoff_mod.run_bakeoff(case, dataset, budget=budget, console=console, quiet=quiet, engine=engine)
        record = bake.to_dict()
        results.save(case, "bakeoff", record)
    if bake.candidate is None:
        out.stopped_at = "bake-off"
        out.report = _report(case)
        why = "it was interrupted" if bake.interrupted else "every candidate failed or ran out of time"
        raise ModelError(f"the bake-off produced no candidate model: {why} (see {case.root / 'leaderboard.csv'})",
                         "run again with a longer --budget, or fewer candidates in the spec")

    with stage("evaluation"):
        evaluation = evaluate_mod.evaluate(case, dataset, bake.bundles, bake.candidate)
        eval_dict = evaluation.to_dict()
        results.save(case, "evaluation", eval_dict)

    candidate = bake.bundles[bake.candidate]
    with stage("trust"):
        _trust(case, dataset, candidate, bake, eval_dict)

    with stage("analysis"):
        analysis = _analysis(case, dataset, bake, eval_dict, budget)

    with stage("decision"):
        verdict = decision_mod.decide(case, ceiling, evaluation, analysis=analysis, bakeoff=record)
        results.save(case, "decision", verdict.to_dict())

    with stage("registry"):
        from . import monitor as monitor_mod

        for b in bake.bundles.values():
            b.case_name = case.name
            b.data_fingerprint = dataset.fingerprint
        # the baseline the decision compares against is chosen on the validation rows
        if evaluation.best_baseline in bake.bundles:
            bake.best_baseline = evaluation.best_baseline
        from . import conformal

        for name in {bake.candidate, bake.best_baseline} - {None}:
            bundle = bake.bundles[name]
            bundle.reference = monitor_mod.build_reference(dataset, bundle)
            if bundle.conformal is None and case.spec.task != "ranking":  # a USE_BASELINE champion serves prediction sets too
                bundle.conformal = conformal.calibrate_on(bundle, dataset, case.spec.conformal.alpha,
                                                          method=case.spec.conformal.method, case=case)
        versions = bakeoff_mod.register(case, bake)
        refit = _refit_all(case, dataset, bake, verdict, versions, eval_dict)
        moved = decision_mod.apply_decision(case, verdict, refit.pop("versions", versions))
        out.versions = {**versions, **refit, **(moved or {})}
        results.save(case, "registry", out.versions)
        with tracking.run(case, "evaluation", tags=tracking.base_tags(case, dataset.fingerprint, "evaluation")):
            tracking.log_metrics({f"test_{k}": v for k, v in eval_dict.get("metrics", {}).get(bake.candidate, {}).items()})
            tracking.log_dict(eval_dict, "evaluation.json")
            tracking.log_dict(verdict.to_dict(), "decision.json")
            tracking.set_tags({"mlcase.decision": verdict.verdict})

    with stage("model card"):
        from . import cards

        md, _html = cards.write_model_card(case)
        out.card = md
        champion_version = out.versions.get("champion_version") or versions.get("candidate_version")
        if champion_version:
            cards.log_card(case, champion_version)

    with stage("readiness"):
        from .releases import readiness

        results.save(case, "readiness", readiness(case).to_dict())

    out.decision, out.reasons, out.champion = verdict.verdict, list(verdict.reasons), verdict.champion
    # the test metrics are the candidate's, and say so: beside a USE_BASELINE's "champion": "linear" they read as
    # the champion's (AER::HMDA: lightgbm's log loss under linear's name); the champion's own are given beside them
    out.metrics, out.metrics_of = eval_dict.get("metrics", {}).get(bake.candidate, {}), bake.candidate
    out.champion_metrics = (eval_dict.get("metrics") or {}).get(verdict.champion, {}) if verdict.champion else {}
    out.report = _report(case)
    return out


def _run_forecast(case: Case, budget, force: bool, quiet: bool, console, held) -> RunResult:
    """The stage order of ``task: forecast`` (:mod:`mlcase.forecast`): the same stages, on series and cut-offs."""
    from . import tracking
    from .forecast.data import load_series
    from .lock import take_over

    console, out, stage = _start(case, force, quiet, console)
    with stage("data"):
        data = load_series(case)  # bad input fails here, before anything is written
        tracking.client(case)
        take_over(case, held)
        results.clear(case)
        results.save(case, "data", data.summary())
    with stage("checks"):
        from .forecast.checks import run_forecast_checks

        report = run_forecast_checks(case, data)
        results.save(case, "checks", {**report.to_dict(), "forced": bool(force and report.has_errors)})
        if report.has_errors:
            out.check_errors = [c.line() for c in report.errors]
            if not force:
                out.stopped_at, out.report = "checks", _report(case)
                report.raise_for_errors()
    with stage("bake-off"):
        from .forecast.bakeoff import run_forecast_bakeoff

        bake = run_forecast_bakeoff(case, data, budget=budget, console=console, quiet=quiet)
        results.save(case, "forecast_bakeoff", bake.to_dict())
        with tracking.run(case, "forecast-bakeoff", tags=tracking.base_tags(case, data.fingerprint, "bakeoff")):
            tracking.log_dict(bake.to_dict(), "forecast_bakeoff.json")
            tracking.log_metrics({f"backtest_mase_{r['model']}": r["backtest_mase"] for r in bake.leaderboard()})
    with stage("evaluation"):
        from .forecast.evaluate import evaluate_forecast

        ev, _test = evaluate_forecast(case, data, bake)
        results.save(case, "forecast_evaluation", ev)
    with stage("trust"):
        from .forecast.stages import explain_boosting

        explained = explain_boosting(case, data, bake)
        if explained is not None:
            results.save(case, "forecast_explain", explained)
    with stage("decision"):
        from .forecast.decision import decide_forecast

        verdict = decide_forecast(case, ev)
        results.save(case, "decision", verdict.to_dict())
    with stage("registry"):
        versions = _forecast_registry(case, data, bake, ev, verdict)
        out.versions = versions
    with stage("model card"):
        from . import cards

        out.card, _html = cards.write_model_card(case)
        if versions.get("champion_version") or versions.get("candidate_version"):
            cards.log_card(case, versions.get("champion_version") or versions.get("candidate_version"))
    out.decision, out.reasons, out.champion = verdict.verdict, list(verdict.reasons), verdict.champion
    if bake.candidate:
        test = ev["models"][bake.candidate]["test"]
        out.metrics = {k: test[k] for k in ("mase", "smape", "rmse", "pinball", "cost_per_point")}
        out.metrics["coverage"] = test["coverage"]["coverage"]
    out.report = _report(case)
    return out


def _forecast_registry(case: Case, data, bake, ev: dict, verdict) -> dict:
    """Register a forecast case's candidate and best baseline, move ``champion`` as decided, track the evaluation."""
    from . import tracking
    from .decision import apply_decision
    from .forecast.stages import register_forecast

    versions = register_forecast(case, data, bake, ev)
    versions = {**versions, **(apply_decision(case, verdict, versions) or {})}
    results.save(case, "registry", versions)
    with tracking.run(case, "evaluation", tags=tracking.base_tags(case, data.fingerprint, "evaluation")):
        if bake.candidate:
            tracking.log_metrics({f"test_{k}": v for k, v in ev["models"][bake.candidate]["test"].items()
                                  if isinstance(v, float)})
        tracking.log_dict(ev, "forecast_evaluation.json")
        tracking.log_dict(verdict.to_dict(), "decision.json")
        tracking.set_tags({"mlcase.decision": verdict.verdict})
    return versions


def _refit_all(case: Case, dataset, bake, verdict, versions: dict, eval_dict: dict) -> dict:
    """``refit: all``: register the decision's champion refitted on every labelled row, for the same decision.

    Returns the registry fields to add (``refit_version``, ``evaluated_version``, ...), with
    ``versions`` pointing the decision at the refitted version; empty when there is nothing
    to refit (``refit: none``, or a decision that names no champion).
    """
    from . import bakeoff as bakeoff_mod

    name = getattr(verdict, "champion", None)
    if case.spec.refit != "all" or verdict.verdict not in ("GO", "USE_BASELINE") or name not in bake.bundles:
        return {}
    is_candidate = verdict.verdict == "GO"
    evaluated = versions.get("candidate_version" if is_candidate else "baseline_version")
    if not is_candidate and versions.get("baseline") != name:
        evaluated = None
    test = (eval_dict.get("metrics") or {}).get(name, {})
    info = bakeoff_mod.register_refit(case, dataset, bake, name, evaluated, test)
    info.pop("bundle", None)
    moved = dict(versions)
    if is_candidate:
        moved["candidate_version"] = info["refit_version"]
    else:
        moved["by_name"] = {**(versions.get("by_name") or {}), name: info["refit_version"]}
    return {"refit": info, "versions": moved}


def _analysis(case: Case, dataset, bake, eval_dict: dict, budget) -> dict | None:
    """Weak slices, learning curve, feature-group value, label audit (``analysis.enabled``); tracked in MLflow."""
    from . import analysis, tracking
    from .bakeoff import parse_budget

    if not case.spec.analysis.enabled:
        return None
    why = analysis.not_applicable(case)  # a list's loss is not a sum of row losses (ranking)
    if why:
        out = {"skipped": why, "seconds": 0.0}
        results.save(case, "analysis", out)
        return out
    cand, base = eval_dict["champion_candidate"], eval_dict["best_baseline"]
    analysis.save_valid_scores(case, dataset, {"candidate": bake.bundles[cand], "baseline": bake.bundles[base]})
    seconds = parse_budget(budget if budget is not None else case.overrides.get("budget", case.spec.budget))
    out = analysis.analyze(case, dataset, bake.bundles, eval_dict, bake.to_dict(), explain=results.load(case, "explain"),
                           budget_s=seconds)
    results.save(case, "analysis", out)
    with tracking.run(case, "analysis", tags=tracking.base_tags(case, dataset.fingerprint, "analysis")):
        tracking.log_dict(out, "analysis.json")
        for name in (analysis.OOF_FILE, analysis.VALID_FILE):
            if (case.work_dir / name).exists():
                tracking.log_artifact(case.work_dir / name)
        audit = (out.get("labels") or {}).get("file")
        if audit:
            tracking.log_artifact(audit)
        tracking.log_metrics({"analysis_losing_slices": len((out.get("slices") or {}).get("losing") or []),
                              "analysis_seconds": out["seconds"]})
    return out


def _trust(case: Case, dataset, candidate, bake, eval_dict: dict) -> None:
    from . import conformal, explain
    from .evaluate import valid_scores

    X_test = dataset.rows("test")[list(candidate.features)]
    results.save(case, "explain", explain.explain_global(candidate, X_test, max_rows=300, seed=case.spec.split.seed))
    if case.spec.task == "ranking":  # a score orders a list: SHAP per item score, no conformal sets
        return
    alpha = case.spec.conformal.alpha
    conformal.calibrate_on(candidate, dataset, alpha, method=case.spec.conformal.method, case=case)
    group = case.spec.data.group if case.spec.split.method == "group" else None
    conf = conformal.evaluate_conformal(case, candidate, X_test, dataset.y_test, dataset.rows("test"),
                                        calibration=(dataset.X_valid, dataset.y_valid),
                                        calibration_scores=valid_scores(candidate, dataset),
                                        train=(dataset.X_train, dataset.y_train),
                                        seed=case.spec.split.seed,
                                        groups=(dataset.rows("valid")[group], dataset.rows("test")[group])
                                        if group else None)
    results.save(case, "conformal", conf)
    from . import tracking

    with tracking.run(case, "conformal", tags=tracking.base_tags(case, dataset.fingerprint, "conformal")):
        tracking.log_metrics(conf.get("metrics", {}))
        tracking.log_dict(conf, "conformal.json")


def _datasheet(case: Case, dataset, report) -> None:
    from .checks import datasheet

    datasheet.write_datasheet(case, dataset, report)
    results.save(case, "datasheet", datasheet.datasheet_dict(case, dataset, report))


def _report(case: Case) -> Path | None:
    from .report.render import build_report

    return build_report(case)
