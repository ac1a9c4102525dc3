"""The gateway's HTTP endpoints. Each decodes, calls the predictor, encodes; nothing else.

Request bodies are read as bytes and decoded by `rest_codec`, not declared as pydantic
parameters (see `openapi.py` for why and for what the docs show). Every failure is an
`ApiError` rendered by the app's one handler; an unexpected exception is logged with its
traceback under the request id and answered 500 with that id only (`GatewayRoute`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import metadata

import grpc
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse, Response

from mlplatform.gateway import auth
from mlplatform.gateway.content_types import BodyFormat, body_format
from mlplatform.gateway.middleware import request_id_of
from mlplatform.gateway.mlflow_formats import Invocation, parse_csv, parse_invocation
from mlplatform.gateway.openapi import (
    BODY_ERROR_RESPONSES,
    ERROR_RESPONSES,
    HealthResult,
    InvocationsResult,
    ModelInfoResult,
    PredictResult,
)
from mlplatform.gateway.outcome_codec import (
    outcomes_result,
    request_from_csv,
    request_from_json,
)
from mlplatform.gateway.predictor_backend import PredictorBackend
from mlplatform.gateway.responses import JsonResponse, error_response
from mlplatform.gateway.rest_codec import (
    invocation_result,
    model_info_result,
    parse_json,
    predict_request,
    predict_result,
)
from mlplatform.gateway.status_mapping import ApiError, internal_error
from mlplatform.v1 import predictor_pb2

logger = logging.getLogger(__name__)

MODEL_NAME_HEADER = "x-model-name"
MODEL_VERSION_HEADER = "x-model-version"
#: `?key_column=C`: column C holds the caller's own key for each row (docs/outcomes.md).
KEY_COLUMN_QUERY = Query(
    default="",
    description="A column holding your own key for each row (an order number): not a model "
    "input; each row's prediction is logged under it, so outcomes can name it by "
    "`prediction_key`. 400 when the rows have no such column.",
)


class GatewayRoute(APIRoute):
    """An APIRoute whose unexpected exceptions become a 500 carrying only the request id."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, HTTPException, RequestValidationError):
                raise
            except ClientDisconnect:  # nobody reads this answer; nothing went wrong here
                request_id = request_id_of(request.scope)
                cancelled = ApiError(grpc.StatusCode.CANCELLED, "the client disconnected")
                return error_response(cancelled, request_id, request.url.path)
            except Exception:
                request_id = request_id_of(request.scope)
                logger.exception(
                    "request %s: %s %s failed", request_id, request.method, request.url.path
                )
                return error_response(internal_error(request_id), request_id, request.url.path)

        return guarded


router = APIRouter(route_class=GatewayRoute)


def _backend(request: Request) -> PredictorBackend:
    return request.app.state.backend


def _body_format(request: Request, accepted: tuple[BodyFormat, ...]) -> BodyFormat:
    """How to read the request's body (see content_types); 415 for a type not accepted."""
    return body_format(request.headers.get("content-type"), accepted)


@router.post(
    "/predict",
    tags=["predictions"],
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Predict JSON rows",
    response_class=JsonResponse,
    responses={200: {"model": PredictResult}, **BODY_ERROR_RESPONSES},
)
async def predict(request: Request, key_column: str = KEY_COLUMN_QUERY) -> Response:
    """Predicts every row, in order. Rows go as `records` (one object per row) or as `columns`
    and `data`; `include_probabilities` adds one `{class: probability}` object per row.
    The body is JSON (`Content-Type: application/json`; 415 for other types). The request id
    is the caller's `X-Request-ID` when given. `?key_column=C` names a column of your own keys
    (see docs/outcomes.md)."""
    api_key = auth.api_key_of(request)
    request_id = request.state.request_id
    _body_format(request, (BodyFormat.JSON,))
    grpc_request = predict_request(parse_json(await request.body()), request_id)
    grpc_request.key_column = key_column
    response = await _backend(request).predict(grpc_request, api_key)
    return JsonResponse(predict_result(response))


async def _invocation(request: Request) -> Invocation:
    read_as = _body_format(request, (BodyFormat.JSON, BodyFormat.CSV))
    body = await request.body()
    if read_as is BodyFormat.CSV:
        return Invocation(parse_csv(body), None, "body")
    return parse_invocation(parse_json(body))


@router.post(
    "/invocations",
    tags=["MLflow scoring server"],
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Predict, MLflow scoring-server protocol",
    response_class=JsonResponse,
    responses={200: {"model": InvocationsResult}, **BODY_ERROR_RESPONSES},
)
async def invocations(request: Request, key_column: str = KEY_COLUMN_QUERY) -> Response:
    """`mlflow models serve`'s endpoint: `dataframe_split`, `dataframe_records`, `instances` or
    `inputs` (or a CSV body), answered as `{"predictions": [...]}`. `params.predict_method`
    `predict_proba` answers one list of class probabilities per row. Rows without column names
    take the model's input columns in order. The served model's name and version are in the
    `X-Model-Name` and `X-Model-Version` headers, the body staying MLflow's. `?key_column=C`
    names a column of your own keys, as for `/predict`."""
    api_key = auth.api_key_of(request)
    request_id = request.state.request_id
    invocation = await _invocation(request)
    backend = _backend(request)
    if invocation.frame is None:
        info = await backend.model_info("", request_id, api_key)
        frame = invocation.with_column_names([column.name for column in info.input_schema])
    else:
        frame = invocation.frame
    grpc_request = predictor_pb2.PredictRequest(
        inputs=frame,
        include_probabilities=invocation.wants_probabilities,
        request_id=request_id,
        key_column=key_column,
    )
    response = await backend.predict(grpc_request, api_key)
    return JsonResponse(
        invocation_result(response, invocation.wants_probabilities),
        headers={
            MODEL_NAME_HEADER: response.model_name,
            MODEL_VERSION_HEADER: response.model_version,
        },
    )


@router.post(
    "/outcomes",
    tags=["monitoring"],
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Attach true labels to logged predictions",
    response_class=JsonResponse,
    responses={
        200: {
            "description": "`{matched, labelled, replaced, reused_prediction_keys, "
            "reused_prediction_key_count}`"
        },
        **BODY_ERROR_RESPONSES,
    },
)
async def record_outcomes(request: Request) -> Response:
    """Outcomes keyed by `request_id` (online calls) or `batch_id` (batch jobs) and `row`, or
    by `prediction_key` (and optionally `model`), with their `label`: JSON
    `{"outcomes": [...]}` or a CSV body (`text/csv`). All or nothing: 400 naming the unknown
    keys (or the bad field) and nothing stored. The answer counts the outcomes matched, the
    predictions labelled, those that replaced an earlier outcome, and the prediction keys
    that named several predictions (see docs/outcomes.md)."""
    api_key = auth.api_key_of(request)
    request_id = request.state.request_id
    read_as = _body_format(request, (BodyFormat.JSON, BodyFormat.CSV))
    body = await request.body()
    if read_as is BodyFormat.CSV:
        grpc_request = request_from_csv(body)
    else:
        grpc_request = request_from_json(parse_json(body))
    response = await _backend(request).record_outcomes(grpc_request, request_id, api_key)
    return JsonResponse(outcomes_result(response))


@router.get(
    "/models/{name}",
    tags=["models"],
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Describe the served model",
    response_class=JsonResponse,
    responses={200: {"model": ModelInfoResult}, **ERROR_RESPONSES},
)
async def model_info(name: str, request: Request) -> Response:
    """Version, alias, problem type, classes and input columns of model `name`; 404 when the
    predictor serves another model."""
    api_key = auth.api_key_of(request)
    info = await _backend(request).model_info(name, request.state.request_id, api_key)
    return JsonResponse(model_info_result(info))


@router.get(
    "/healthz",
    tags=["health"],
    summary="Liveness: the gateway process is up",
    response_class=JsonResponse,
    responses={200: {"model": HealthResult}},
)
async def healthz() -> Response:
    """Always 200 while the process serves HTTP; it does not ask the predictor."""
    return JsonResponse({"status": "ok"})


async def _ready(request: Request) -> Response:
    status = await _backend(request).serving_status()
    if status != "SERVING":
        raise ApiError(
            grpc.StatusCode.UNAVAILABLE, f"the predictor is not serving a model ({status})"
        )
    return JsonResponse({"status": "ready", "predictor": status})


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness: the predictor is reachable and serving a model",
    response_class=JsonResponse,
    responses={200: {"model": HealthResult}, 503: ERROR_RESPONSES[503]},
)
async def readyz(request: Request) -> Response:
    """200 when the predictor's gRPC health check says SERVING; 503 otherwise."""
    return await _ready(request)


@router.get(
    "/ping",
    tags=["MLflow scoring server"],
    summary="MLflow's health check (same as /readyz)",
    response_class=JsonResponse,
    responses={200: {"model": HealthResult}, 503: ERROR_RESPONSES[503]},
)
async def ping(request: Request) -> Response:
    """What MLflow's clients poll before scoring (`ScoringServerClient.wait_server_ready`)."""
    return await _ready(request)


@router.get(
    "/version",
    tags=["MLflow scoring server"],
    summary="The gateway's version",
    response_class=PlainTextResponse,
)
async def version() -> PlainTextResponse:
    """The mlplatform version serving this gateway (MLflow's `/version` answers its own)."""
    try:
        return PlainTextResponse(metadata.version("mlplatform"))
    except metadata.PackageNotFoundError:
        return PlainTextResponse("unknown")
