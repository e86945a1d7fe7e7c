"""The server of a ``task: forecast`` case: ``POST /forecast``, ``/health``, ``/ready``, ``/metrics``.

``mlcase serve`` starts it instead of the record server when the case forecasts
(:func:`mlcase.serve.app.serve` hands over). It loads the ``champion`` (or ``--version``),
answers through :class:`mlcase.forecast.service.ForecastService` (seasonal naive when the
model fails, is too slow, or the history is too short for its lags; also when no model is
registered yet), commits every answer to the prediction log before it responds (one row per
series forecast: ``prediction`` holds the points, ``scores`` the seasonal-naive forecast of the
same steps, which monitoring compares against), and keeps the same guards as the record
server: the API key (``MLCASE_API_KEY`` or ``serving.api_key_file``; without it ``/ready`` says only
whether it is ready), the body size and JSON depth limits, one-line 4xx errors, and the same Prometheus
metrics (requests and latency by endpoint, forecasts by tier, fallbacks by tier and reason, refused
requests, the prediction log's counters).
"""


import contextlib
import json
import math
import os
import secrets
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from ..errors import DataError, MlcaseError

API_KEY_ENV = "MLCASE_API_KEY"


def _load(settings):
    """``(case, service, log, notes)``: the champion (or the version asked) and the prediction log."""
    from ..case import load_case
    from ..forecast.service import (
        ForecastService,
        load_served,
        seasonal_naive_schema,
        with_time_from,
    )
    from .predlog import PredictionLog, resolve_target

    case = settings.case if hasattr(settings.case, "spec") else load_case(settings.case)
    bundle = (settings.bundles or {}).get("model")
    notes = []
    if bundle is None and settings.registry:
        bundle, schema, notes = load_served(case, settings.version)
    else:
        schema = with_time_from(case, bundle.schema if bundle is not None else seasonal_naive_schema(case))
    timeout = (settings.timeout_ms or case.spec.serving.timeout_ms or 10_000.0) / 1000.0
    service = ForecastService(bundle, schema=schema, timeout_s=timeout)
    try:
        warm = service.warm_up()
        if warm["tier"] != "seasonal_naive" or bundle is None:
            notes.append(f"warmed up: one forecast through the {warm['tier']} tier in {warm['ms']:,.0f} ms")
        else:
            notes.append(f"warm-up: the model did not answer ({warm['reason']}); seasonal naive did")
    except Exception as exc:  # noqa: BLE001 - the server still serves; the first request pays instead
        notes.append(f"warm-up failed ({type(exc).__name__}: {str(exc)[:200]}); the first request pays for it")
    log = PredictionLog(resolve_target(case, settings.log_url), synchronous=settings.log_synchronous)
    return case, service, log, notes


def create_forecast_app(settings, state=None):
    """The FastAPI app of a forecast case (``settings``: :class:`mlcase.serve.app.ServeSettings`)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from ..bounded import JsonTooLarge, load_json
    from .app import Unauthorized, _Metrics, _RequestMetrics

    st: dict = {"ready": False}  # case, service, log, notes, key, max_body (set in lifespan)
    metrics = _Metrics(lambda: SimpleNamespace(log=st.get("log"), ready=st["ready"]))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loaded = state if state is not None else await run_in_threadpool(_load, settings)
        st["case"], st["service"], st["log"], st["notes"] = loaded
        key = settings.api_key or os.environ.get(API_KEY_ENV)
        if key is None and st["case"].spec.serving.api_key_file:
            from .app import _key_from_file

            key = _key_from_file(st["case"], st["case"].spec.serving.api_key_file)
        st["key"], st["max_body"] = key, settings.max_body_bytes or st["case"].spec.serving.max_body_bytes
        st["ready"] = True
        try:
            yield
        finally:
            st["service"].close()
            await run_in_threadpool(st["log"].close)

    app = FastAPI(title="mlcase forecast server", version="1", lifespan=lifespan,
                  description="Forecasts a case's series with its registered model; seasonal naive when the model "
                              "cannot answer.")

    @app.exception_handler(MlcaseError)
    async def _error(request: Request, exc: MlcaseError):
        status = 422 if isinstance(exc, DataError) else (exc.http_status if 400 <= exc.http_status < 600 else 400)
        if status == 422:
            metrics.invalid.inc()
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)

    def check_key(request: Request) -> None:
        key = st.get("key")
        if not key:
            return
        given = request.headers.get("x-api-key")
        if given is None or not secrets.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("utf-8")):
            raise Unauthorized("missing or wrong API key", f"send it in the X-API-Key header (set by {API_KEY_ENV})")

    @app.post("/forecast", summary="Forecast one series (an object) or several (a list)")
    async def forecast(request: Request):
        from .app import BodyTooLarge, Unavailable, check_json_type

        check_key(request)
        if not st["ready"]:
            raise Unavailable("the model is not loaded yet", "retry after /ready answers 200")
        if request.query_params:  # ?horizon=3 was ignored: the answer came back with the model's whole horizon
            name = next(iter(request.query_params))
            raise DataError(f"query parameter '{name}': POST /forecast reads no query parameters",
                            'send it in the JSON body instead, e.g. {"series": ..., "history": [...], "horizon": 3}')
        check_json_type(request.headers.get("content-type"), "send a JSON object {series, history, future} or a list "
                        "of them")
        body = await request.body()
        try:
            data = load_json(body, "the request body", max_bytes=st["max_body"],
                             fix="send a JSON object {series, history, future} or a list of them")
        except JsonTooLarge as exc:
            # a series' whole history is more than the model reads (mosaicData::Births' 7,305 days: 1 MB): say
            # how little it needs, not only "fewer series"
            svc = st.get("service")
            need = f"; the model needs at least {svc.min_history:,} steps of each" if svc is not None else ""
            raise BodyTooLarge(exc.message, f"send fewer series per request, or a shorter history{need} "
                                         "(serving.max_body_bytes sets the limit)") from None
        answers = await run_in_threadpool(_answer_all, st, data)
        for a in answers:
            metrics.predictions.labels(a["tier"], "forecast").inc()
            if a["fallback"]:
                metrics.fallbacks.labels(a["tier"], a.get("reason_code") or "unknown").inc()
        return answers if isinstance(data, list) else answers[0]

    @app.post("/predict", include_in_schema=False)
    @app.post("/rank", include_in_schema=False)
    async def not_here(request: Request):
        # a client of the record or ranking server got FastAPI's bare {"detail": "Not Found"}
        from ..errors import NotFoundError

        raise NotFoundError(f"POST {request.url.path} is not served for a forecast case",
                            'use POST /forecast with {"series": ..., "history": [{"ds": ..., "y": ...}, ...]}')

    @app.get("/health", summary="The process is alive")
    async def health():
        return {"status": "alive"}

    @app.get("/ready", summary="The model is loaded")
    async def ready(request: Request):
        if not st["ready"]:
            return JSONResponse({"ready": False}, status_code=503)
        # a log that cannot write: every /forecast is a 503
        failing = await run_in_threadpool(st["log"].check) if st["log"].failing is not None else None
        try:
            check_key(request)
        except Unauthorized:  # without the key: ready or not, nothing about models or notes
            return JSONResponse({"ready": failing is None}, status_code=200 if failing is None else 503)
        if failing is not None:
            return JSONResponse({"ready": False, "reason": "the prediction log cannot record forecasts: " + (
                failing if st["key"] else "(set an API key to see why)")}, status_code=503)
        svc = st["service"]
        return {"ready": True, "task": "forecast", "model_version": svc.bundle.version if svc.bundle else None,
                "model_name": svc.bundle.name if svc.bundle else None, "horizon": svc.horizon, "freq": svc.freq,
                "min_history": svc.min_history, "known": svc.known, "past_only": svc.past_only,
                "notes": st["notes"]}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prom():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_RequestMetrics, metrics=metrics)
    return app


def _answer_all(st: dict, data) -> list[dict]:
    """Validate every series of a request, forecast each, commit them to the log, then return the answers."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise DataError("the request body is an empty list", "send at least one series")
    service = st["service"]
    where = [f"request[{i}]" if isinstance(data, list) else "request" for i in range(len(items))]
    for item, w in zip(items, where, strict=True):
        _check_fields(item, w)
    parsed = [service.frames(item, w) for item, w in zip(items, where, strict=True)]
    answers = []
    for (history, future, series), item, w in zip(parsed, items, where, strict=True):
        answer = service.answer(history, future, series, item.get("horizon"), where=w)
        _check_finite(answer, w)
        answers.append(answer)
    rows = [_row(a, history) for a, (history, _f, _s) in zip(answers, parsed, strict=True)]
    from .app import Unavailable
    from .predlog import LogFull

    try:  # committed before the answer leaves
        st["log"].write(rows)
    except LogFull as exc:
        raise Unavailable(f"{exc}; the forecast was not recorded", "retry in a moment") from None
    except Exception as exc:  # noqa: BLE001 - a log that cannot write answered 500 (an internal error)
        raise Unavailable(f"the prediction log could not record this forecast ({str(exc)[:200]})",
                          "retry; the operator should check the prediction log (mlcase_predlog_failed_rows)") from None
    for a, r in zip(answers, rows, strict=True):
        a["request_id"] = r[0]
    return answers


#: the fields of one series' request
FIELDS = ("series", "history", "future", "horizon")


def _check_fields(item, where: str) -> None:
    """A :class:`DataError` for a request field the service would misread: a field it does not know (a
    misspelt ``horizn`` was ignored: the model's whole horizon came back), a series id that is not a string or a
    number (an object was logged as its Python repr). The horizon is the service's to check."""
    if not isinstance(item, dict):
        return  # the service names it
    extra = sorted(set(item) - set(FIELDS), key=str)
    if extra:
        raise DataError(f"{where}: unknown field(s) {', '.join(map(repr, extra))}; the fields are "
                        f"{', '.join(FIELDS)}", "rename or drop them (a step's values go in its 'history' row)")
    s = item.get("series")
    if s is not None and (isinstance(s, (bool, dict, list)) or (isinstance(s, float) and not math.isfinite(s))):
        raise DataError(f"{where}.series: expected the series id as a string or a number, got {s!r}",
                        'send e.g. "store-1", or leave it out for a single series')


def _check_finite(answer: dict, where: str) -> None:
    """A :class:`DataError` where the answer holds an infinity (values near 1e308 overflow the intervals): it
    was logged, then the response failed to render (a 500), so the log kept a forecast nobody received."""
    numbers = [answer.get("scale"), *answer.get("seasonal_naive", [])]
    for p in answer["points"]:
        numbers += [p["forecast"], p["lo"], p["hi"], p["quantile_forecast"]]
    if not all(v is None or math.isfinite(v) for v in numbers):
        raise DataError(f"{where}.history: the values are too large to forecast (the forecast or its interval "
                        "overflows to infinity)", "send the series in smaller units, e.g. thousands")


def _row(answer: dict, history) -> tuple:
    """A prediction-log row (:data:`mlcase.serve.predlog.COLUMNS` order) for one series forecast."""
    from .. import __version__
    from .predlog import COLUMNS

    inputs = {"series": answer["series"], "history_end": history["ds"].iloc[-1].isoformat(),
              "history_steps": int(len(history)), "task": "forecast"}
    values = {"request_id": uuid.uuid4().hex, "ts": datetime.now(UTC).isoformat(),
              "model_version": answer["model_version"], "model_name": answer["model_name"], "tier": answer["tier"],
              "fallback": int(answer["fallback"]), "reason": answer["reason"], "inputs": json.dumps(inputs),
              "score": answer["points"][0]["forecast"], "scores": json.dumps(answer["seasonal_naive"]),
              "prediction": json.dumps(answer["points"]), "decision": None, "conformal": json.dumps(
                  {"alpha": answer["alpha"], "scale": answer["scale"]}),
              "latency_ms": answer["latency_ms"], "challenger": None, "arm": "model", "code_version": __version__}
    return tuple(values.get(c) for c in COLUMNS)


def serve_forecast(settings, host: str, port: int, log_level: str = "warning", announce=None) -> None:
    """Run the forecast server with uvicorn until SIGTERM or SIGINT (a graceful stop exits 0)."""
    from .app import run_uvicorn

    state = _load(settings)  # a bad --version or log fails here, as one line
    if announce is not None:
        announce(state[0])
    run_uvicorn(create_forecast_app(settings, state=state), host, port, log_level)
