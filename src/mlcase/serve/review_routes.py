"""The label loop's routes: ``POST /feedback``, ``GET``/``PUT /routing``, and the holdout's answers for ``/predict``.

Kept out of :mod:`mlcase.serve.app` (the factory) so each group of endpoints is one module;
:func:`add_review_routes` is called by ``create_app`` with the app's state and helpers.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' ``Request`` annotation at run time


def add_review_routes(app, st, check_key, read_json, metrics) -> None:
    """Add ``POST /feedback`` and ``GET``/``PUT /routing`` to ``app`` (``st`` is the app's :class:`State`)."""
    from fastapi import Request
    from pydantic import ValidationError

    from .app import ErrorOut, FeedbackIn, FeedbackOut, InvalidRequest, Unavailable, loaded

    # ------------------------------------------------------------------ /feedback
    @app.post("/feedback", summary="Store one reviewer's verdict on a case as its label",
              responses={200: {"model": FeedbackOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut},
                         413: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "$ref": "#/components/schemas/FeedbackIn"}}}}, "security": [{"ApiKey": []}, {}]})
    async def feedback(request: Request):
        from ..review import Target, record_feedback

        check_key(request)
        if st.log is None or st.predictor is None:
            raise Unavailable("the prediction log is not open yet", "retry after /ready answers 200")
        payload = await read_json(request)
        try:
            item = FeedbackIn.model_validate(payload).model_dump()
            if item["reviewed_at"] is not None:
                item["reviewed_at"] = item["reviewed_at"].isoformat()
        except ValidationError as exc:
            issues = [{"record": None, "field": ([str(p) for p in e.get("loc", ())] or ["(body)"])[0],
                       "message": e.get("msg", "invalid")} for e in exc.errors(include_url=False)]
            raise InvalidRequest(f"{len(issues)} invalid field(s) in the feedback: field '{issues[0]['field']}': "
                                 f"{issues[0]['message']}", "send {request_id, outcome, reviewer[, reviewed_at, "
                                 "note]}", issues=issues) from None
        from .app import log_call

        result = await log_call(st, "feedback", record_feedback, st.log.backend, item,
                                Target.of(st.predictor.primary.bundle))
        metrics.labels_in.inc(result["stored"])
        return result

    # ------------------------------------------------------------------ /routing
    @app.get("/routing", summary="The arms and shares in force",
             responses={200: {"description": "Shares, arms and the holdout's policy"}, 401: {"model": ErrorOut}})
    async def routing_get(request: Request):
        check_key(request)
        return loaded(st.router).describe()

    @app.put("/routing", summary="Change the holdout, canary or audit share at run time (no restart)",
             responses={200: {"description": "The shares now in force"}, 401: {"model": ErrorOut},
                        409: {"model": ErrorOut, "description": "A canary share, but no canary is loaded"},
                        422: {"model": ErrorOut}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "additionalProperties": False,
                 "properties": {"holdout": {"type": "number", "minimum": 0, "maximum": 0.5},
                                "canary": {"type": "number", "minimum": 0, "maximum": 0.5},
                                "audit_share": {"type": "number", "minimum": 0, "maximum": 1}}}}}},
                 "security": [{"ApiKey": []}, {}]})
    async def routing_put(request: Request):
        from ..errors import SpecError

        check_key(request)
        loaded(st.router)
        payload = await read_json(request)
        if not isinstance(payload, dict):
            raise InvalidRequest("the body must be a JSON object such as {\"holdout\": 0.05}",
                                 "send the shares to change", issues=[{"record": None, "field": "(body)",
                                                                        "message": "expected an object"}])
        if payload.get("holdout", 0) and primary_task(st) != "binary":
            raise InvalidRequest(f"a holdout needs a binary task (this model is {primary_task(st)})",
                                 "leave holdout at 0", issues=[{"record": None, "field": "holdout",
                                                                "message": "binary tasks only"}])
        if payload.get("canary") and (st.release is None or st.release.canary is None):
            from .release_routes import NoCanaryLoaded

            raise NoCanaryLoaded("no canary version is loaded, so it cannot get a share",
                                 "start the server with --canary N:10% (or serving.canary)")
        from datetime import UTC, datetime

        before, when = st.router.shares.canary, datetime.now(UTC).isoformat(timespec="milliseconds")
        try:
            st.router.update(**payload)
        except SpecError as exc:
            field = next((k for k in payload if k in str(exc)), "(body)")
            raise InvalidRequest(str(exc.message), exc.fix, issues=[{"record": None, "field": field,
                                                                      "message": exc.message}]) from None
        now = st.router.shares.canary
        if now != before and st.release is not None:   # the share rollout status checks the arms' sizes by
            import asyncio

            await asyncio.to_thread(st.release.share_changed, now, when)
        return st.router.describe()


def primary_task(st) -> str | None:
    return st.predictor.primary.bundle.task if st.predictor is not None else None


def units_of(st, items: list) -> list[str | None]:
    """Each record's ``data.id`` (accepted beside the features, never one): the unit its arm is drawn for.

    None (the request id is the unit) where the record has no usable id: missing, null, empty, not a
    text or whole number, or a JSON number written with a point or an exponent past 2**53 (``9007199254740993.0`` reads as
    9007199254740992: another person's id).
    """
    import math

    units: list[str | None] = [None] * len(items)
    name = st.unit_field
    if not name:
        return units
    for k, item in enumerate(items):
        v = item.get(name) if isinstance(item, dict) else None
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v) if abs(v) < 2 ** 53 else None   # past 2**53 a float is not one whole number: no unit
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            continue
        text = str(v).strip()
        units[k] = text if 0 < len(text) <= 200 else None
    return units


async def holdout_answers(st, records: list[dict], routes) -> list:
    """For holdout records, today's process: ``(decision, prediction, rule_decision)``; None elsewhere.

    The rule (when the holdout gets it) runs like a fallback tier, with the time limit; if it cannot
    answer, the holdout record gets "never act".
    """
    from .fallback import TierFailed
    from .routing import HOLDOUT_ARM, decision_of

    out: list = [None] * len(records)
    hold = [k for k, r in enumerate(routes) if r.arm == HOLDOUT_ARM]
    if not hold:
        return out
    flags = [False] * len(hold)
    used_rule = False
    if st.holdout_rule is not None:
        res = await st.predictor._acall(st.holdout_rule, [records[k] for k in hold])
        if not isinstance(res, TierFailed):
            # the rule as its evaluation counted it: under the review capacity (Decider.flag_of)
            decider = st.predictor.decider
            flags, used_rule = [decider.flag_of(st.holdout_rule, float(v)) for v in res], True
    neg, pos = (st.predictor.decider.classes or [None, None])[:2]
    for j, k in enumerate(hold):
        decision = decision_of(flags[j])
        out[k] = (decision, pos if flags[j] else neg, decision if used_rule else None)
    return out
