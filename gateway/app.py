"""The gateway's FastAPI app: settings in, app out.

The gRPC channel is opened in the lifespan (it belongs to the serving event loop) and closed
on shutdown. Every failure, wherever it is raised (a route, the auth dependency, HTTP routing,
query validation, the body limit), is rendered by the same error response.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mlplatform.common.metrics_endpoint import METRICS_OFF
from mlplatform.gateway import monitor_pages, routes, v2_routes
from mlplatform.gateway.auth import ApiKeyMiddleware
from mlplatform.gateway.metrics import GatewayMetrics, MetricsMiddleware
from mlplatform.gateway.middleware import (
    BodySizeLimitMiddleware,
    RequestIdMiddleware,
    request_id_of,
)
from mlplatform.gateway.openapi import install_openapi
from mlplatform.gateway.predictor_backend import PredictorBackend
from mlplatform.gateway.responses import JsonResponse, error_response
from mlplatform.gateway.settings import GatewaySettings
from mlplatform.gateway.status_mapping import (
    ApiError,
    code_for_http_status,
    invalid_arguments,
)

logger = logging.getLogger(__name__)

DESCRIPTION = """\
REST in front of the mlplatform Predictor (gRPC). `POST /predict` takes JSON rows;
`POST /invocations` speaks MLflow's scoring-server protocol, so clients of `mlflow models serve`
work unchanged; `/v2/...` speaks KServe's Open Inference Protocol (V2), so tritonclient.http and
other V2 clients do (V2's errors carry `{"error": message}`).

Errors carry the gRPC status of the failure, mapped to HTTP as grpc-gateway maps it
(INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, INTERNAL 500), with the
offending fields and the request id. With API keys configured, send `Authorization: Bearer KEY`
or `X-API-Key: KEY`; a key needs the route's scope (`predict` for the routes here).
"""


#: Where Swagger UI's and ReDoc's scripts and styles are served (open like /docs itself).
DOCS_ASSETS = "/docs/assets"


def _version() -> str:
    try:
        return metadata.version("mlplatform")
    except metadata.PackageNotFoundError:
        return "0"


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error, request_id_of(request.scope), request.url.path)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = code_for_http_status(error.status_code)
    api_error = ApiError(
        code,
        str(error.detail),
        http_status=error.status_code,
        headers=dict(error.headers or {}),
    )
    return error_response(api_error, request_id_of(request.scope), request.url.path)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    violations = [
        (".".join(str(part) for part in problem.get("loc", ())), str(problem.get("msg", "")))
        for problem in error.errors()
    ]
    return error_response(
        invalid_arguments(violations), request_id_of(request.scope), request.url.path
    )


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for `settings` (the predictor channel opens when the app starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backend = PredictorBackend(
            settings.predictor, settings.request_timeout_s, settings.predictor_tls_files
        )
        try:
            yield
        finally:
            await app.state.backend.close()
            # uvicorn's own lines are off (server.py): this is the one line of a stop.
            logger.info("gateway stopped: the requests in flight were answered")

    # Swagger UI's and ReDoc's files come from the fastapi-offline package, not a CDN: /docs
    # works where the browser has no internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="mlplatform REST gateway",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
    )
    app.state.settings = settings
    app.state.api_keys = settings.api_key_store()
    app.include_router(routes.router)
    app.include_router(v2_routes.router)
    app.include_router(monitor_pages.router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Added last = outermost: every response, a 401 or 413 included, gets the request id, and
    # a refused key is answered before the body is read.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if app.state.api_keys.enabled:  # no per-request cost when authentication is off
        app.add_middleware(ApiKeyMiddleware, keys=app.state.api_keys)
    app.add_middleware(RequestIdMiddleware)
    app.state.metrics = GatewayMetrics()
    if settings.metrics_port != METRICS_OFF:  # outermost: it sees every answer, 401 and 413 too
        app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_openapi(app)
    return app
