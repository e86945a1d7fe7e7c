"""The FastAPI app: ``create_app(settings)``.

The served model and its fallback tiers load in ``lifespan`` (from the case's
registry, or injected through :class:`ServeSettings.bundles`); a background
warm-up then runs single-record and batch predictions through every model tier
and checks the fast path against the pipeline, and only after it ``/ready``
answers 200.

Endpoints: ``POST /predict`` (one record or a list; ``?explain=true`` adds SHAP
contributions), ``POST /labels`` (delayed outcomes by request id), ``POST
/feedback`` (one reviewer's verdict), ``GET``/``PUT /routing`` (the holdout
and audit shares, changeable at run time), ``GET /health``, ``GET /ready``,
``GET /metrics`` (Prometheus), ``GET /release`` and ``POST /release/check`` (the
champion and canary in service, :mod:`mlcase.serve.release`). Every endpoint but
the probes needs the API key when one is set (``X-API-Key`` header or
``Authorization: Bearer``). Each record goes to an arm (:mod:`mlcase.serve.routing`):
the ``holdout`` gets today's process instead of the model's decision, the ``canary``
the canary version's, everyone else the champion's. The champion follows the
registry's alias without a restart. Errors the client can fix are :class:`~mlcase.errors.MlcaseError`
subclasses mapped to their status by one exception handler; a request that
parsed never gets a 500: a failing model hands over to the next tier.
"""


import asyncio
import contextlib
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import MlcaseError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
API_KEY_ENV = "MLCASE_API_KEY"


# --------------------------------------------------------------------------- errors (4xx)
class Unauthorized(MlcaseError):
    http_status = 401


class BodyTooLarge(MlcaseError):
    http_status = 413


class InvalidRequest(MlcaseError, ValueError):
    http_status = 422


class UnsupportedMediaType(MlcaseError):
    http_status = 415


def check_json_type(content_type: str | None, fix: str = "send it as JSON") -> None:
    """A body that says it is not JSON (text/plain, a form, XML): 415. Read as JSON anyway, a web page could make
    a browser post records or labels to an open server without asking it first (a cross-site request: a
    text/plain or form body needs no CORS preflight, application/json does). No Content-Type is read as JSON."""
    if content_type is None or not content_type.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMediaType(f"the request body is {media[:80] or 'of no media type'}, not JSON",
                               f"{fix}, with the header Content-Type: application/json")


class Unavailable(MlcaseError):
    http_status = 503


def loaded(part):
    """``part`` of the server state (router, release), or the 503 a caller gets before the server has loaded it."""
    if part is None:
        raise Unavailable("the server is not loaded yet", "retry after /ready answers 200")
    return part


# --------------------------------------------------------------------------- settings
@dataclass
class ServeSettings:
    """What the server serves and how.

    Parameters
    ----------
    case : Case or path
        The case (its spec's ``serving`` section and its registry).
    version : int, optional
        Serve this registry version instead of the ``champion`` alias.
    challenger : int, optional
        Registry version scored in shadow (logged, not returned).
    bundles : dict, optional
        Injected bundles by role (``model``, ``previous_champion``, ``baseline``,
        ``challenger``); roles given here are not read from the registry. With
        ``registry=False`` the registry is not read at all.
    api_key : str, optional
        Overrides ``MLCASE_API_KEY`` and ``serving.api_key_file``.
    log_url : str, optional
        Prediction log location (file path or SQLAlchemy URL); default
        ``serving.log`` or ``<case>/predictions.db``.
    timeout_ms : float, optional
        Model time limit; default ``serving.timeout_ms``, else 4x
        ``constraints.latency_p95_ms``, else 1000.
    warmup : int
        Single-record predictions per model tier before ``/ready`` is 200.
    canary : str, optional
        ``"N:10%"``: registry version (or alias) N acted on for that share of units;
        default ``serving.canary``.
    """

    case: Any
    version: int | None = None
    challenger: int | None = None
    bundles: dict = field(default_factory=dict)
    registry: bool = True
    api_key: str | None = None
    log_url: str | None = None
    timeout_ms: float | None = None
    max_body_bytes: int | None = None
    warmup: int = 200
    workers: int = 4
    log_synchronous: str = "NORMAL"
    canary: str | None = None

    def __post_init__(self):
        """The numbers a caller of the Python API sets (the CLI's flags are checked by Typer and the spec)."""
        from ..arguments import whole_number
        from ..errors import SpecError
        from .predlog import check_synchronous

        for name, low, what in (("warmup", 0, "a number of warm-up predictions"),
                                ("workers", 1, "a number of worker threads"),
                                ("max_body_bytes", 1, "a request size in bytes")):
            if getattr(self, name) is not None:
                setattr(self, name, whole_number(getattr(self, name), f"ServeSettings.{name}", what,
                                                 f"pass {name}={max(low, 1)} or more", minimum=low))
        if self.timeout_ms is not None and (isinstance(self.timeout_ms, bool) or
                                            not isinstance(self.timeout_ms, int | float) or
                                            not 0 < self.timeout_ms < float("inf")):
            raise SpecError(f"ServeSettings.timeout_ms {self.timeout_ms!r}: not a positive number of milliseconds",
                            "pass timeout_ms=250, say, or leave it unset for serving.timeout_ms")
        self.log_synchronous = check_synchronous(self.log_synchronous)


class State:
    """Everything the endpoints use, built in ``lifespan``."""

    def __init__(self):
        self.ready = False
        self.warmup: dict = {"done": False}
        self.notes: list[str] = []
        self.unavailable: list[dict] = []
        self.serving = "champion"
        self.predictor = None
        self.challenger = None
        self.log = None
        self.case = None
        self.api_key: str | None = None
        self.max_body = 1_000_000
        self.conformal_error: str | None = None
        self.router = None          # routing.Router: arms and the audit draw
        self.holdout_rule = None    # the Tier that decides for the holdout arm (None: never act)
        self.unit_field: str | None = None  # data.id: the unit a record is routed by, when it carries it
        self.release = None         # release.Release: the canary, the registry watcher, the guard
        self.policy = None          # governance.policy.LogPolicy: what the log keeps of each column
        self.freshness = None       # freshness.Freshness: data.freshness limits (None: none set)


# --------------------------------------------------------------------------- loading
def _load_state(settings: ServeSettings) -> State:
    from ..case import load_case
    from ..spec import CaseSpec
    from .fallback import Predictor, Tier, load_chain
    from .freshness import load_governance
    from .predlog import PredictionLog, resolve_target

    st = State()
    case = settings.case if hasattr(settings.case, "spec") else load_case(settings.case)
    st.case = case
    spec: CaseSpec = case.spec
    _no_second_arm(settings, spec.task)
    serving = spec.serving
    st.api_key = settings.api_key or os.environ.get(API_KEY_ENV) or _key_from_file(case, serving.api_key_file)
    st.max_body = settings.max_body_bytes or serving.max_body_bytes
    margin, max_unseen = serving.domain_margin, serving.max_unseen_categories
    injected = dict(settings.bundles or {})
    chain = load_chain(case, version=settings.version, bundles=injected, registry=settings.registry)
    st.serving, st.notes, st.unavailable = chain.serving, chain.notes, chain.unavailable
    timeout_ms = settings.timeout_ms or serving.timeout_ms or (
        4 * spec.constraints.latency_p95_ms if spec.constraints.latency_p95_ms else 1000.0)
    st.predictor = Predictor(chain.tiers, chain.decider, timeout_s=timeout_ms / 1000.0, workers=settings.workers)
    if chain.conformal_error:
        st.conformal_error = chain.conformal_error

    def registry(version):
        from .. import tracking

        return tracking.load_bundle(case, alias=None, version=version)

    # shadow
    if "challenger" in injected or settings.challenger is not None:
        cb = injected.get("challenger") or registry(settings.challenger)
        st.challenger = Tier("challenger", cb, domain_margin=margin, max_unseen=max_unseen)
    _load_routing(st, case, chain)
    from .release import Release

    st.release = Release(st, case, settings, settings.canary)
    load_governance(st, case, chain)
    st.log = PredictionLog(resolve_target(case, settings.log_url), synchronous=settings.log_synchronous)
    from .predlog import key_change_note

    note = key_change_note(st.log.backend, st.policy.key_id)   # a restart with another MLCASE_LOG_KEY (or none)
    if note:
        st.notes.append(note)
    return st


def _no_second_arm(settings: ServeSettings, task: str) -> None:
    """``--canary`` and ``--challenger`` on a ranking or forecast case: a one-line :class:`SpecError`. /rank and
    /forecast answer with the champion's chain only, and a canary was started and recorded in the release history
    that no list or series ever reached (`mlcase rollout status`: "the prediction log holds no canary")."""
    asked = [f for f, v in (("--canary", settings.canary), ("--challenger", settings.challenger)) if v is not None]
    if task in ("ranking", "forecast") and asked:
        from ..errors import SpecError

        route = "/rank" if task == "ranking" else "/forecast"
        raise SpecError(f"{asked[0]}: {route} has no canary or shadow arm yet (this case is {task}), so nothing "
                        "would reach that version",
                        "serve without it; promote a version after its evaluation (`mlcase promote`)")


def _key_from_file(case, path: str | None) -> str | None:
    """The API key in ``serving.api_key_file`` (first line, stripped), or None when none is set."""
    from pathlib import Path

    from ..errors import SpecError

    if not path:
        return None
    p = Path(path) if Path(path).is_absolute() else case.root / path
    try:
        key = p.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"serving.api_key_file {p}: cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})",
                        f"create the file with the key on its first line, or set {API_KEY_ENV}") from None
    if not key or not key[0].strip():
        raise SpecError(f"serving.api_key_file {p} is empty", "write the API key on its first line")
    return key[0].strip()


def _load_routing(st: State, case, chain) -> None:
    """The router and, when the holdout gets the rule, the rule's tier (the fallback chain's, or the spec's)."""
    from ..errors import MlcaseError
    from .fallback import Tier
    from .routing import router_for

    rule = next((t for t in chain.tiers if t.kind == "rule"), None)
    if rule is None and case.spec.rule_baselines:
        try:
            rule = Tier("rule", rule=case.spec.rule_baselines[0].rule,
                        rule_columns=[c["name"] for c in chain.primary.bundle.schema.get("columns", [])])
        except MlcaseError as exc:
            st.notes.append(f"the holdout cannot use the rule ({exc}); it never acts")
    st.router = router_for(case, rule_available=rule is not None)
    st.holdout_rule = rule if st.router.policy == "rule" else None
    st.unit_field = case.spec.data.id


def _warm_up(st: State, n: int) -> dict:
    """Compile and check fast paths, then run predictions through every model tier."""
    from .release import warm_tier
    from .schema import synthetic_records

    t0 = time.perf_counter()
    out = {"fast_path": {}}
    canary = st.release.canary_tier() if st.release is not None else None
    tiers = [t for t in st.predictor.tiers if t.kind == "model"] + ([st.challenger] if st.challenger else [])
    for t in tiers + ([canary] if canary is not None else []):
        report = warm_tier(t, n)
        out["fast_path"]["canary" if t is canary else t.name] = report["fast_path"]
        if t is canary:
            st.release.verify_canary(report)
    extra = [st.holdout_rule] if st.holdout_rule is not None and st.holdout_rule not in st.predictor.tiers else []
    for t in [*st.predictor.tiers, *extra]:
        if t.kind == "rule":  # the first DuckDB call imports and plans; pay it before /ready
            recs = synthetic_records(st.predictor.primary.bundle.schema, st.predictor.primary.spec, n=8)
            for k in range(3):
                with contextlib.suppress(Exception):
                    t.scores(recs[k:k + 1])
    primary_recs = synthetic_records(st.predictor.primary.bundle.schema, st.predictor.primary.spec, n=16)
    loop = asyncio.new_event_loop()
    try:
        for k in range(min(n, 50)):
            with contextlib.suppress(Exception):
                loop.run_until_complete(st.predictor.apredict([primary_recs[k % len(primary_recs)]]))
    finally:
        loop.close()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["done"] = True
    return out


# --------------------------------------------------------------------------- the app
def create_app(settings: ServeSettings | dict, state: State | None = None):
    """The FastAPI app serving a case's model (see :class:`ServeSettings`).

    ``state``: models and log already loaded by ``_load_state`` (what :func:`serve` does, so that a
    missing model or a bad log fails with one line before uvicorn starts); default: load in ``lifespan``.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from pydantic import ValidationError
    from starlette.concurrency import run_in_threadpool

    from .freshness import prepare_records
    from .release_routes import add_release_routes, provenance_values
    from .review_routes import holdout_answers, units_of
    from .routing import ACTED_ARMS, sampling_probability

    if isinstance(settings, dict):
        from dataclasses import fields

        known = [f.name for f in fields(ServeSettings)]
        unknown = [k for k in settings if k not in known]
        if unknown or "case" not in settings:
            from ..errors import SpecError

            raise SpecError(f"create_app: {'no setting is named ' + ', '.join(map(repr, unknown)) if unknown else 'no case'}",
                            f"pass a ServeSettings, or a dict with case and any of: {', '.join(known[1:])}")
        settings = ServeSettings(**settings)
    if getattr(getattr(settings.case, "spec", None), "task", None) == "forecast":
        from .forecast_app import create_forecast_app

        return create_forecast_app(settings, state=state)
    st = State()
    metrics = _Metrics(lambda: st)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)  # one row gains nothing from many threads, and they cost latency
        loaded = state if state is not None else await run_in_threadpool(_load_state, settings)
        st.__dict__.update(loaded.__dict__)
        if st.release is not None:
            st.release.st = st  # a reload swaps this state's predictor
        app.state.mlcase = st

        def warm():
            try:
                st.warmup = _warm_up(st, settings.warmup)
            except Exception as exc:  # noqa: BLE001 - the server still serves through the pipelines
                st.warmup = {"done": True, "error": f"{type(exc).__name__}: {exc}"}
            st.ready = True
            if st.release is not None:
                st.release.start()

        thread = threading.Thread(target=warm, name="mlcase-warmup", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(timeout=60)
            if st.release is not None:
                await run_in_threadpool(st.release.stop)
            if st.predictor is not None:
                st.predictor.close()
            if st.log is not None:
                await run_in_threadpool(st.log.close)

    app = FastAPI(title="mlcase model server", version="1", lifespan=lifespan,
                  description="Scores records with a case's registered model, with validation, fallbacks, "
                              "conformal sets and a durable prediction log.")

    @app.exception_handler(MlcaseError)
    async def _mlcase_error(request: Request, exc: MlcaseError):
        status = exc.http_status if 400 <= exc.http_status < 600 else 400
        body = {"error": type(exc).__name__, "message": str(exc)}
        if exc.details.get("issues") is not None:
            body["detail"] = exc.details["issues"]
        headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else (
            {"Retry-After": "1"} if status == 503 else None)
        return JSONResponse(body, status_code=status, headers=headers)

    def check_key(request: Request) -> None:
        if not st.api_key:
            return
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth[:7].lower() == "bearer " else None
        if given is None or not secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                       st.api_key.encode("utf-8")):
            raise Unauthorized("missing or wrong API key" if given else "this endpoint needs an API key",
                               f"send it in the X-API-Key header (set by {API_KEY_ENV} or serving.api_key_file)")

    async def read_json(request: Request, fix: str = "send a JSON object (one record) or a JSON array of records"):
        """The request's JSON body, bounded: size (413) and nesting depth (422) checked before parsing (``fix``: what
        a body that is not JSON is told to send; /rank's is an object {group, items}, not records)."""
        from ..bounded import JsonTooLarge, load_json
        from ..errors import DataError

        check_json_type(request.headers.get("content-type"), fix)
        limit = st.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"the request body has {int(declared)} bytes, more than the limit of {limit}",
                               "send fewer records per request (serving.max_body_bytes sets the limit)")
        if declared is not None and declared.isdigit():
            body = await request.body()
        else:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"the request body is larger than the limit of {limit} bytes",
                                       "send fewer records per request (serving.max_body_bytes sets the limit)")
                chunks.append(chunk)
            body = b"".join(chunks)
        try:
            return load_json(body, "the request body", max_bytes=limit, fix=fix)
        except JsonTooLarge as exc:
            raise BodyTooLarge(str(exc), "send fewer records per request (serving.max_body_bytes sets the limit)") from None
        except DataError as exc:
            raise InvalidRequest(str(exc), None, issues=[{"record": None, "field": "(body)",
                                                          "message": exc.message}]) from None

    # ------------------------------------------------------------------ /predict
    @app.post("/predict", summary="Score one record or a list of records",
              responses={200: {"model": PredictResponse, "description": "One answer per record"},
                         401: {"model": ErrorOut, "description": "Missing or wrong API key"},
                         413: {"model": ErrorOut, "description": "Body larger than serving.max_body_bytes"},
                         415: {"model": ErrorOut, "description": "A body that is not JSON (Content-Type)"},
                         422: {"model": ErrorOut, "description": "Invalid records: one message per field and record"},
                         503: {"model": ErrorOut, "description": "Not loaded yet, or the prediction log is full"}},
              openapi_extra={"parameters": [{"name": "explain", "in": "query", "required": False,
                                             "schema": {"type": "boolean", "default": False},
                                             "description": "Add the top SHAP contributions per record"}],
                             "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                 "anyOf": [{"$ref": "#/components/schemas/Record"},
                                           {"type": "array", "minItems": 1,
                                            "items": {"$ref": "#/components/schemas/Record"}}]}}}},
                             "security": [{"ApiKey": []}, {}]})
    async def predict(request: Request):
        t0 = time.perf_counter()
        check_key(request)
        explain = _flag(request.query_params.get("explain"))
        if st.predictor is None:
            raise Unavailable("the model is not loaded yet", "retry after /ready answers 200")
        primary = st.predictor.primary.bundle
        if primary is not None and primary.task == "ranking":  # a list is ordered by /rank, never row by row: 404
            from ..errors import NotFoundError

            raise NotFoundError("POST /predict scores rows of binary, multiclass and regression cases; this case "
                                "ranks the items of a list", "use POST /rank with {group, items}")
        payload = await read_json(request)
        spec = st.predictor.primary.spec
        if isinstance(payload, dict):
            items = [payload]
        elif isinstance(payload, list) and payload:
            items = payload
        else:
            raise InvalidRequest("the request body must be a JSON object (one record) or a non-empty array of records",
                                 f"send e.g. {json.dumps(spec.example(), default=str)[:200]}",
                                 issues=[{"record": None, "field": "(body)",
                                          "message": "expected an object or a non-empty array"}])
        p = st.predictor  # this request's champion chain, whatever a reload does meanwhile
        items, staleness, fresh_issues = prepare_records(st, items)
        records, issues = spec.validate_records(items)
        issues = sorted([*issues, *fresh_issues], key=lambda i: i.record)
        if issues:
            metrics.invalid.inc(len({i.record for i in issues}))
            first = "; ".join(f"record {i.record} field '{i.field}': {i.message}" for i in issues[:3])
            more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
            raise InvalidRequest(f"{len(issues)} invalid field(s): {first}{more}",
                                 "fix the fields named in 'detail'", issues=[i.to_dict() for i in issues])
        ids = [uuid.uuid4().hex for _ in records]
        routes = st.router.route(units_of(st, items), ids)
        answers, meta = await st.release.answer(
            p, records, routes, skip=None if staleness is None or not st.freshness.fallback
            else [f.stale for f in staleness])
        held = await holdout_answers(st, records, routes)
        shadow = await _shadow(st, records) if st.challenger is not None else None
        explanations = await _explanations(st, records, answers, p) if explain else None
        latency_ms = (time.perf_counter() - t0) * 1000.0
        out, rows, counted = [], [], []
        for k, (rid, rec, a, route) in enumerate(zip(ids, records, answers, routes, strict=True)):
            d = a.to_dict()
            d["request_id"] = rid
            decision, prediction, rule_decision = a.decision, a.prediction, None
            if held[k] is not None:  # today's process answers; the model's answer is only logged
                decision, prediction, rule_decision = held[k]
                d.update(decision=decision, prediction=prediction, score=None, conformal=None)
                d.pop("scores", None)
            audit = route.arm in ACTED_ARMS and decision == "auto" and route.audit_draw
            d["arm"], d["audit"] = route.arm, audit
            if staleness is not None:
                d["flags"] = {**d["flags"], "stale": list(staleness[k].stale)}
            if explanations is not None:
                d["explanation"] = explanations[k] if held[k] is None else None
            out.append(d)
            rows.append((rid, _now(), a.model_version, a.model_name, a.tier,
                         int(a.fallback), a.reason, _dumps(st.policy.inputs(rec)),
                         a.score,  # multiclass: the top probability, as answered and as monitoring's reference
                         _dumps(a.scores), None if prediction is None else str(prediction), decision,
                         _dumps(a.conformal), latency_ms, None if shadow is None else _dumps(shadow[k]),
                         route.arm, st.policy.unit(route.unit_id), int(audit),
                         sampling_probability(route.arm, decision, route.audit_share), a.decision, rule_decision,
                         *provenance_values(*meta[k]),
                         None if staleness is None else _dumps(staleness[k].to_log()),
                         st.policy.key_id))   # which key hashed this row's personal values (None: none hashed)
            counted.append((a.tier, decision, route.arm, "yes" if audit else "no",
                            (a.reason_code or "unknown") if a.fallback else None))
        await commit_rows(st, rows, "prediction")
        # counted once the log holds them: a log that could not record a batch answered 503, and the counters
        # said 85 records answered by the model while the log held 5 and the clients had 5 answers
        for tier, decision, arm, audit, reason in counted:
            metrics.predictions.labels(tier, decision).inc()
            metrics.arms.labels(arm, audit).inc()
            if reason is not None:
                metrics.fallbacks.labels(tier, reason).inc()
        return Response(json.dumps({"predictions": out}, default=_json_default, allow_nan=False),
                        media_type="application/json")

    # ------------------------------------------------------------------ /labels
    @app.post("/labels", summary="Attach delayed outcomes to earlier predictions by request id",
              responses={200: {"model": LabelsOut}, 401: {"model": ErrorOut}, 413: {"model": ErrorOut},
                         422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "anyOf": [{"$ref": "#/components/schemas/LabelIn"},
                            {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/LabelIn"}}]}}}},
                  "security": [{"ApiKey": []}, {}]})
    async def labels(request: Request):
        check_key(request)
        if st.log is None:
            raise Unavailable("the prediction log is not open yet", "retry after /ready answers 200")
        payload = await read_json(request)
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            raise InvalidRequest("the request body is an empty array", "send at least one {request_id, label}",
                                 issues=[{"record": None, "field": "(body)", "message": "empty array"}])
        issues, clean, first = [], [], {}
        served = next((t.spec for t in st.predictor.tiers if t.spec is not None), None)
        # a class is spelled as `mlcase label` and /feedback spell it ('yes', 1 or true for 'Yes'), and stored as
        # the class: /labels refused them, so one outcome was accepted by one path and refused by the other
        from ..review import Target

        bundle = getattr(st.predictor.primary, "bundle", None)
        target = Target.of(bundle) if bundle is not None and bundle.classes is not None else None
        for i, item in enumerate(items):
            try:
                label = LabelIn.model_validate(item).model_dump()
                if target is not None and label["label"] is not None:
                    spelled = target.canonical(label["label"])
                    label["label"] = label["label"] if spelled is None else spelled
                why = served.label_issue(label["label"]) if served is not None else None
                if why:  # a label that is no outcome of the target ("Maybe", NaN) would poison monitoring
                    issues.append({"record": i, "field": "label", "message": why})
                    continue
                if label["label"] is not None:
                    # two labels for one request were both stored, and which one monitoring read was their order
                    # (`mlcase label` refuses a file with them)
                    j, was = first.setdefault(label["request_id"], (i, label["label"]))
                    if str(was) != str(label["label"]):
                        issues.append({"record": i, "field": "label", "message": f"request_id {label['request_id']} "
                                       f"has label {was!r} in record {j}; send one label per request"})
                        continue
                clean.append(label)
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)] or ["(record)"]
                    issues.append({"record": i, "field": loc[0], "message": err.get("msg", "invalid")})
        if issues:
            raise InvalidRequest(f"{len(issues)} invalid field(s) in the labels: record {issues[0]['record']} "
                                 f"field '{issues[0]['field']}': {issues[0]['message']}",
                                 "send objects with a request_id (as the answer being labelled gave it) and a label", issues=issues)
        result = await log_call(st, "labels", st.log.add_labels, clean, "api")
        metrics.labels_in.inc(result["attached"])
        return result

    from .review_routes import add_review_routes

    add_review_routes(app, st, check_key, read_json, metrics)
    add_release_routes(app, st, check_key)
    from .rank_routes import add_rank_routes

    add_rank_routes(app, st, check_key, read_json, metrics)

    # ------------------------------------------------------------------ probes
    @app.get("/health", summary="The process is alive", response_model=HealthOut)
    async def health():
        return {"status": "alive"}

    @app.get("/ready", summary="The model is loaded and warmed up",
             responses={200: {"description": "Ready"}, 503: {"description": "Still warming up"}})
    async def ready(request: Request):
        # a log that cannot record predictions makes every /predict a 503: not ready, so a load balancer sends the
        # traffic elsewhere (it said 200 while every answer was refused); the check writes again to see it recover
        failing = (await run_in_threadpool(st.log.check)
                   if st.ready and st.log is not None and st.log.failing is not None else None)
        ok = st.ready and failing is None
        status = 200 if ok else 503
        try:
            check_key(request)
        except Unauthorized:  # without the key: ready or not, nothing about models, files or errors
            return JSONResponse({"ready": ok}, status_code=status)
        body = {**_ready_body(st, detail=bool(st.api_key)), "ready": ok}
        if not ok:  # one line, first
            why = (("the prediction log cannot record predictions: "
                    + (failing if st.api_key else "(set an API key to see why)"))
                   if failing is not None else "the model tiers are warming up")
            body = {"ready": ok, "reason": why, **body}
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def prom():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_RequestMetrics, metrics=metrics)
    _custom_openapi(app, settings_state=st, settings=settings)
    app.state.mlcase = st
    app.state.metrics = metrics
    return app


async def commit_rows(st: State, rows: list[tuple], what: str = "prediction") -> None:
    """Put ``rows`` on the prediction log and wait for their commit; 503 when the log is full or fails.

    The server answers only after this returns, so an acknowledged answer survives a crash.
    """
    from .predlog import LogFull

    try:
        fut = st.log.submit(rows)
    except LogFull as exc:
        raise Unavailable(f"{exc}; the {what} was not recorded", "retry in a moment") from None
    try:
        await asyncio.wrap_future(fut)
    except Exception as exc:  # noqa: BLE001 - counted by the log; the client must not take it as recorded
        raise Unavailable(f"the prediction log could not record this {what} ({str(exc)[:200]})",
                          "retry; the operator should check the prediction log (mlcase_predlog_failed_rows)") from None


async def log_call(st: State, what: str, fn, *args):
    """``fn(*args)`` on a worker thread; the log's database errors as a one-line 503 (they were a 500 on /labels
    and /feedback when the log's disk was read-only or full)."""
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(fn, *args)
    except st.log.backend.db_errors as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise Unavailable(f"the prediction log could not record the {what} ({type(exc).__name__}: {first}); "
                          "nothing was stored", "retry; the operator should check the prediction log") from None


def _flag(v: str | None) -> bool:
    if v is None:
        return False
    t = v.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("", "0", "false", "no", "off"):
        return False
    raise InvalidRequest(f"query parameter explain={v!r} is not a boolean", "use explain=true or explain=false",
                         issues=[{"record": None, "field": "explain", "message": "expected true or false"}])


async def _shadow(st: State, records: list[dict]) -> list[dict]:
    """Challenger answers, logged beside the served ones."""
    from .fallback import TierFailed

    t = st.challenger
    res = await st.predictor._acall(t, records)
    if isinstance(res, TierFailed):
        return [{"version": t.version, "error": str(res)} for _ in records]
    answers = []
    for s in res:
        a = st.predictor.decider.answer(t, s, None, [], {})
        answers.append({"version": t.version, "score": a.score, "prediction": _json_default(a.prediction)
                        if not isinstance(a.prediction, (str, int, float)) else a.prediction, "decision": a.decision})
    return answers


async def _explanations(st: State, records: list[dict], answers, p) -> list:
    """SHAP contributions of the records a model answered, each by the version that answered it."""
    try:
        from ..explain import explain_rows
    except ImportError as exc:
        raise InvalidRequest(f"explain=true is not available: mlcase.explain cannot be imported ({exc})",
                             "call without explain, or install the complete mlcase package") from None
    from starlette.concurrency import run_in_threadpool

    canary = st.release.canary_tier() if st.release is not None else None
    tiers = {t.version: t for t in (p.primary, canary) if t is not None}
    out: list = [None] * len(records)
    keep = ("base_value", "contributions", "other", "output", "output_space", "explained_class", "explainer",
            "notes")
    for version, tier in tiers.items():
        idx = [k for k, a in enumerate(answers) if a.tier == "model" and a.model_version == version]
        if not idx:
            continue
        frame = tier.spec.frame([records[k] for k in idx])
        try:
            rows = await run_in_threadpool(explain_rows, tier.bundle, frame, 5)
        except Exception as exc:  # noqa: BLE001 - the prediction stands without its explanation
            for k in idx:
                out[k] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        for k, row in zip(idx, rows, strict=False):
            out[k] = {key: row.get(key) for key in keep if key in row}
    return out


def _ready_body(st: State, detail: bool = True) -> dict:
    """What /ready says to a caller with the API key, or to anyone when no key is set (then without
    where the prediction log lives). A caller without the key, when one is set, gets only ``ready``."""
    p = st.predictor
    body = {"ready": st.ready, "serving": st.serving, "notes": st.notes}
    if p is not None:
        body["model"] = p.primary.describe()
        body["fallbacks"] = [t.describe() for t in p.tiers[1:]]
        body["unavailable"] = st.unavailable
        body["timeout_ms"] = None if p.timeout_s is None else p.timeout_s * 1000
        body["conformal"] = {"enabled": bool(p.primary.bundle.conformal), "errors": p.conformal_errors,
                             "last_error": p.last_conformal_error}
    if st.challenger is not None:
        body["challenger"] = st.challenger.describe()
    body["warmup"] = st.warmup
    if st.router is not None:
        body["routing"] = st.router.describe()
    if st.release is not None:
        rel = st.release.describe()
        body["release"] = {k: rel[k] for k in ("champion_version", "canary", "previous_version", "follows_registry",
                                              "auto_rollback", "last_check", "last_error")}
    if st.log is not None:
        body["log"] = st.log.stats()
        if not detail:  # the server is open to anyone: the log's counters, not where it lives
            body["log"].pop("target", None)
            for k in ("last_error", "failing"):
                body["log"][k] = "(set an API key to see it)" if body["log"].get(k) else None
    return _jsonable(body)


def _jsonable(v):
    return json.loads(json.dumps(v, default=_json_default))


def _now() -> str:
    from .predlog import now_iso

    return now_iso()


def _dumps(v) -> str | None:
    from .predlog import to_json

    return to_json(v)


def _json_default(o):
    """numpy values, datetimes and the rest as JSON (the prediction log's encoder)."""
    from .predlog import _default

    return _default(o)


# --------------------------------------------------------------------------- metrics
class _Metrics:
    def __init__(self, state_fn):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mlcase_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("mlcase_request_latency_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("mlcase_predictions", "Answered records by tier and decision",
                                   ["tier", "decision"], registry=r)
        self.fallbacks = Counter("mlcase_fallbacks", "Records answered by a fallback tier, by tier and reason",
                                 ["tier", "reason"], registry=r)
        self.invalid = Counter("mlcase_invalid_records", "Records refused with 422", registry=r)
        self.labels_in = Counter("mlcase_labels", "Labels attached", registry=r)
        self.arms = Counter("mlcase_arm_records", "Answered records by arm and whether they were drawn for the audit",
                            ["arm", "audit"], registry=r)
        r.register(_LogCollector(state_fn))


class _LogCollector:
    """Prediction-log counters read at scrape time."""

    def __init__(self, state_fn):
        self.state_fn = state_fn

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.state_fn()
        s = st.log.stats() if st.log is not None else {"written": 0, "failed": 0, "refused": 0, "queued": 0}
        yield CounterMetricFamily("mlcase_predlog_written_rows", "Prediction rows committed", value=s["written"])
        yield CounterMetricFamily("mlcase_predlog_failed_rows", "Prediction rows a transaction could not write",
                                  value=s["failed"])
        yield CounterMetricFamily("mlcase_predlog_refused_rows", "Prediction rows refused: log queue full",
                                  value=s["refused"])
        yield GaugeMetricFamily("mlcase_predlog_queued_rows", "Prediction rows waiting to be written", value=s["queued"])
        yield GaugeMetricFamily("mlcase_predlog_failing", "1 while the prediction log cannot record predictions",
                                value=1 if s.get("failing") else 0)
        yield GaugeMetricFamily("mlcase_ready", "1 once the model is loaded and warmed up and while the prediction "
                                "log records predictions (what /ready answers)",
                                value=1 if st.ready and not s.get("failing") else 0)


class _RequestMetrics:
    """Pure ASGI middleware: request count and latency by endpoint (no per-request task switch)."""

    KNOWN = {"/predict", "/forecast", "/rank", "/labels", "/feedback", "/routing", "/release", "/release/check",
             "/health", "/ready", "/metrics", "/docs", "/openapi.json"}

    def __init__(self, app, metrics: _Metrics):
        self.app = app
        self.m = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in self.KNOWN else "other"
            self.m.requests.labels(endpoint, str(status[0])).inc()
            self.m.latency.labels(endpoint).observe(time.perf_counter() - t0)


# --------------------------------------------------------------------------- documents
def _models():
    from datetime import datetime

    from pydantic import BaseModel, Field

    class Flags(BaseModel):
        missing: list[str] = Field(default_factory=list, description="Optional features that were missing (imputed)")
        unknown_categories: list[str] = Field(default_factory=list, description="Features with a category unseen in training")
        out_of_range: list[str] = Field(default_factory=list, description="Numbers beyond the margin of the training range")
        stale: list[str] = Field(default_factory=list, description="Features older than data.freshness allows "
                                                                   "(from the record's _as_of)")

    class PredictionOut(BaseModel):
        request_id: str = Field(description="Quote it in POST /labels")
        prediction: str | float | int | bool | None
        score: float | None = Field(description="Binary: P(positive); regression: the prediction; multiclass: top probability")
        scores: dict[str, float] | None = Field(None, description="Multiclass: probability per class")
        decision: Literal["flag", "review", "auto"]
        conformal: list[Any] | None = Field(description="Conformal set (labels) or interval [lo, hi]; a null bound is unbounded (too few calibration rows for the level)")
        fallback: bool
        tier: Literal["model", "champion", "previous_champion", "baseline", "rule", "constant"] = Field(
            description="model: the arm's own model; champion: the champion answered for a failing canary")
        reason: str | None
        model_version: int | None
        flags: Flags
        arm: str = Field("model", description="holdout: today's process answered (score and conformal set are "
                                               "withheld); canary: the canary version's decision; model: the "
                                               "champion's decision")
        audit: bool = Field(False, description="Also send this automatic decision to review (the audit sample)")
        explanation: dict[str, Any] | None = None

    class PredictResponse(BaseModel):
        predictions: list[PredictionOut]

    class Issue(BaseModel):
        record: int | None
        field: str
        message: str

    class ErrorOut(BaseModel):
        error: str
        message: str
        detail: list[Issue] | None = None

    class LabelIn(BaseModel):
        model_config = {"extra": "forbid"}
        request_id: str = Field(min_length=1, max_length=200)
        label: str | int | float | bool | None

    class LabelsOut(BaseModel):
        attached: int
        blank: int = Field(0, description="Of those attached, labels sent empty: no outcome yet")
        unknown: int
        unknown_request_ids: list[str]
        sources: dict[str, int] = Field(default_factory=dict, description="Attached labels by source")

    class FeedbackIn(BaseModel):
        model_config = {"extra": "forbid"}
        request_id: str = Field(min_length=1, max_length=200, pattern=r"\S", description="From /predict")
        outcome: str | int | float | bool = Field(description="The reviewer's verdict: a class of the target")
        reviewer: str = Field(min_length=1, max_length=200, pattern=r"\S")
        reviewed_at: datetime | None = Field(None, description="ISO-8601 (UTC when no zone is given); default now")
        note: str | None = Field(None, max_length=10_000)

    class FeedbackOut(BaseModel):
        request_id: str
        stored: int = Field(description="0 when the same verdict was stored before")
        label: str
        source: str | None = Field(description="holdout, audit or review")
        already_imported: int

    class HealthOut(BaseModel):
        status: str

    return PredictResponse, ErrorOut, LabelIn, LabelsOut, HealthOut, FeedbackIn, FeedbackOut


PredictResponse, ErrorOut, LabelIn, LabelsOut, HealthOut, FeedbackIn, FeedbackOut = _models()


def _custom_openapi(app, settings_state: State, settings: ServeSettings) -> None:
    """Put the record model generated from the served model's schema into the OpenAPI document."""
    from fastapi.openapi.utils import get_openapi

    def openapi():
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        comps = doc.setdefault("components", {}).setdefault("schemas", {})
        p = settings_state.predictor
        if p is not None:
            rec = p.primary.spec.record_model().model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(rec.pop("$defs", {}))
            if settings_state.freshness is not None:  # the features' as-of time, beside them
                rec.setdefault("properties", {})["_as_of"] = settings_state.freshness.schema()
            comps["Record"] = rec
        else:
            comps["Record"] = {"type": "object", "title": "Record"}
        lab = LabelIn.model_json_schema(ref_template="#/components/schemas/{model}")
        comps.update(lab.pop("$defs", {}))
        if p is not None:  # what /labels accepts: the served target's classes (or a number)
            lab["properties"]["label"] = p.primary.spec.label_schema()
        comps["LabelIn"] = lab
        fb = FeedbackIn.model_json_schema(ref_template="#/components/schemas/{model}")
        comps.update(fb.pop("$defs", {}))
        if p is not None:  # the outcomes a reviewer may give: the served model's classes, or a number
            b = p.primary.bundle
            fb["properties"]["outcome"] = ({"type": "number", "description": "The reviewer's verdict"}
                                           if b.task == "regression" else
                                           {"enum": [str(c) for c in b.classes or []],
                                            "description": "The reviewer's verdict: a class of the target"})
        comps["FeedbackIn"] = fb
        doc["components"].setdefault("securitySchemes", {})["ApiKey"] = {
            "type": "apiKey", "in": "header", "name": "X-API-Key"}
        if p is not None:
            app.openapi_schema = doc
        return doc

    app.openapi = openapi


def serve(case, host: str = "127.0.0.1", port: int = 8000, version: int | None = None,
          challenger: int | None = None, log_level: str = "warning", announce=None, **kw) -> None:
    """Run the server with uvicorn until interrupted (what ``mlcase serve`` calls).

    ``announce(case, notes)`` is called once the models and the log are loaded, before uvicorn starts, with what
    /ready's ``notes`` say (the baseline served for want of a champion, a canary not served, ...).
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import socket

    from ..errors import MlcaseError, SpecError

    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SpecError(f"port {port!r}: not a port number", "pass a whole number from 1 to 65535, e.g. --port 8000")
    settings = ServeSettings(case=case, version=version, challenger=challenger, **kw)
    forecasting = getattr(getattr(case, "spec", None), "task", None) == "forecast"
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:  # a taken port or a wrong --host fails here with one line, not after loading the models
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except (OSError, OverflowError) as exc:
        raise MlcaseError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc})",
                          "pass a free --port, or a --host address of this machine") from None
    finally:
        probe.close()
    if forecasting:  # task: forecast has its own server (POST /forecast)
        from .forecast_app import serve_forecast

        _no_second_arm(settings, "forecast")

        return serve_forecast(settings, host, port, log_level=log_level, announce=announce)
    state = _load_state(settings)  # a missing model, a bad --version or a bad log fails here, as one line
    if announce is not None:
        announce(state.case, list(state.notes))
    app = create_app(settings, state=state)
    run_uvicorn(app, host, port, log_level)


def run_uvicorn(app, host: str, port: int, log_level: str = "warning") -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then stop gracefully and return (exit 0).

    uvicorn raised the signal again after its graceful shutdown, so a server stopped the way a supervisor stops
    it (requests in flight answered, the prediction log flushed and closed) died of it: exit -15 (143 in a
    container, which Kubernetes reports as an error) on SIGTERM, 130 and "interrupted" on Ctrl-C. A second
    Ctrl-C, which cuts the graceful shutdown short, is still an interruption (130).
    """
    import signal

    import uvicorn
    from uvicorn.server import HANDLED_SIGNALS

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                   timeout_graceful_shutdown=10))
    server.run()
    if server.force_exit:
        raise KeyboardInterrupt


__all__ = ["ServeSettings", "create_app", "run_uvicorn", "serve"]

