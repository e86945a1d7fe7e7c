"""Registration: the candidate and the best baseline as model versions, and the ``refit: all`` version beside them.

Every version carries its lineage as tags: ``mlcase.rows_seen`` (how many labelled rows its
model was fitted on), ``mlcase.fitted_on`` (which parts: ``train+valid``, ``train``,
``train+valid+test``) and ``mlcase.valid_scores`` (``out-of-fold`` when its thresholds,
calibration and conformal quantiles come from cross-fitted scores of the validation rows).
"""

from __future__ import annotations

from typing import Any

from ..case import Case
from .result import BakeoffResult


def lineage_tags(bundle) -> dict:
    m = bundle.metrics or {}
    return {"mlcase.rows_seen": m.get("rows_seen"), "mlcase.fitted_on": m.get("fitted_on"),
            "mlcase.valid_scores": m.get("valid_scores")}


def register(case: Case, result: BakeoffResult, bundles_override: dict | None = None) -> dict:
    """Register the candidate (alias ``candidate``) and the best baseline (alias ``baseline``).

    Each is logged with :func:`mlcase.tracking.log_bundle` in one ``register`` run,
    with an input example of a few training rows and tags naming the bake-off run and the
    rows the model saw. ``champion`` is left alone: the decision stage moves it. Older
    versions stay.

    Returns
    -------
    dict
        ``{"candidate_version": int | None, "baseline_version": int | None, "run_id": str,
        "model_name": str}``.
    """
    from .. import results, tracking
    from ..errors import ModelError

    result.wait_tracking()
    bundles = {**result.bundles, **(bundles_override or {})}
    cand = bundles.get(result.candidate) if result.candidate else None
    base = bundles.get(result.best_baseline) if result.best_baseline else None
    if cand is None and base is None:
        raise ModelError("the bake-off produced no fitted model to register",
                         "give the bake-off a larger budget (--budget) or check the leaderboard notes")
    tags = {"mlcase.bakeoff_run_id": result.run_id or "", "mlcase.metric": result.metric,
            "mlcase.data_fingerprint": result.fingerprint or ""}
    out: dict[str, Any] = {"candidate_version": None, "baseline_version": None, "model_name": case.name,
                           "candidate": result.candidate, "baseline": result.best_baseline}
    with tracking.run(case, "register", tags=tracking.base_tags(case, result.fingerprint, "register"),
                      nested=tracking.active_run_id() is not None) as run:
        out["run_id"] = run.info.run_id
        for key, bundle, alias in (("candidate_version", cand, "candidate"), ("baseline_version", base, "baseline")):
            if bundle is None:
                continue
            row = result.row(bundle.name) or {}
            out[key] = tracking.log_bundle(
                case, bundle, aliases=[alias], input_example=result.input_example,
                tags={**tags, **lineage_tags(bundle), "mlcase.register_run_id": run.info.run_id,
                      "mlcase.cv_mean": row.get("cv_mean"),
                      "mlcase.alias_reason": f"{alias} of bake-off run {result.run_id}"})
            out[f"{alias}_rows_seen"] = (bundle.metrics or {}).get("rows_seen")
    out["tracking_uri"] = case.tracking_uri
    results.save(case, "registry", out)
    return out


def register_refit(case: Case, dataset, result: BakeoffResult, name: str, evaluated_version: int | None,
                   test_metrics: dict | None = None) -> dict:
    """Refit bundle ``name`` on every labelled row and register it beside the evaluated version.

    The new version gets no alias here (the decision moves ``champion``); its tags say it was
    refitted on every labelled row, which version was evaluated, and carry that version's test
    numbers (``mlcase.test_*``): they were measured before this model saw the test rows.

    Returns
    -------
    dict
        ``{"refit_version", "evaluated_version", "name", "rows_seen", "evaluated_rows_seen", "refit_s",
        "threshold", "threshold_note"}`` (the note where the threshold was carried by its rate).
    """
    from .. import tracking
    from .refit import refit_all

    bundle = refit_all(case, dataset, result, name)
    tags = {"mlcase.bakeoff_run_id": result.run_id or "", "mlcase.metric": result.metric,
            "mlcase.data_fingerprint": result.fingerprint or "", **lineage_tags(bundle), "mlcase.refit": "all",
            "mlcase.evaluated_version": evaluated_version if evaluated_version is not None else "",
            "mlcase.test_numbers": (f"from version {evaluated_version}, measured before this version saw the test "
                                    "rows (it was refitted on every labelled row after the decision)")}
    if bundle.metrics.get("threshold_refit_note"):
        tags["mlcase.threshold_carried"] = bundle.metrics["threshold_refit_note"]
    for k, v in (test_metrics or {}).items():
        if isinstance(v, (int, float)):
            tags[f"mlcase.test_{k}"] = v
    with tracking.run(case, "register-refit", tags=tracking.base_tags(case, result.fingerprint, "register"),
                      nested=tracking.active_run_id() is not None):
        version = tracking.log_bundle(case, bundle, aliases=[], input_example=result.input_example, tags=tags)
    m = bundle.metrics
    return {"refit_version": version, "evaluated_version": evaluated_version, "name": name,
            "rows_seen": m.get("rows_seen"), "evaluated_rows_seen": m.get("evaluated_rows_seen"),
            "refit_s": m.get("refit_s"), "threshold": bundle.threshold,
            "threshold_note": m.get("threshold_refit_note"), "bundle": bundle}
