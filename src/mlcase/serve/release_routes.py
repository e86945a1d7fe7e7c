"""The release routes: ``GET /release`` (the champion, the canary, the guard, recent events) and
``POST /release/check`` (read the registry's aliases now instead of at the next poll).

Kept out of :mod:`mlcase.serve.app` (the factory); :func:`add_release_routes` is called by
``create_app``. The logic lives in :mod:`mlcase.serve.release`.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' ``Request`` annotation at run time
from ..errors import MlcaseError


class NoCanaryLoaded(MlcaseError):
    """A canary share asked of a server that has no canary version loaded (409: the server's state)."""

    http_status = 409


def add_release_routes(app, st, check_key) -> None:
    """Add ``GET /release`` and ``POST /release/check`` to ``app`` (``st`` is the app's :class:`State`)."""
    from fastapi import Request
    from starlette.concurrency import run_in_threadpool

    from .app import ErrorOut, Unavailable, loaded

    doc = {200: {"description": "The champion and canary in service, the guard's numbers, recent events"},
           401: {"model": ErrorOut}, 503: {"model": ErrorOut}}

    @app.get("/release", summary="The versions in service, the canary and the guardrails", responses=doc,
             openapi_extra={"security": [{"ApiKey": []}, {}]})
    async def release_get(request: Request):
        check_key(request)
        return loaded(st.release).describe()

    @app.post("/release/check", summary="Read the registry's champion and canary aliases now (no restart)",
              responses=doc, openapi_extra={"security": [{"ApiKey": []}, {}]})
    async def release_check(request: Request):
        check_key(request)
        if st.release is None or not st.ready:
            raise Unavailable("the server is not ready yet", "retry after /ready answers 200")
        return await run_in_threadpool(st.release.check)


PROVENANCE_COLUMNS = ("arm_version", "model_sha256", "bundle_sha256", "schema_sha256", "threshold", "code_version")


def provenance_values(arm_version, prov: dict) -> tuple:
    """The prediction log's provenance columns of one record, in ``PREDICTION_COLUMNS_ADDED`` order."""
    from .. import __version__

    return (arm_version, prov.get("model_sha256"), prov.get("bundle_sha256"), prov.get("schema_sha256"),
            prov.get("threshold"), __version__)
