"""The KServe V2 (Open Inference Protocol) REST routes, so tritonclient.http and other V2
clients work unchanged against the gateway.

Each route decodes (`v2_codec`), calls the predictor's V2 gRPC service (the same
`GRPCInferenceService` tritonclient.grpc calls directly) and encodes. Errors are the gateway's
(the predictor's status mapped to HTTP, the offending tensor named) in V2's `{"error": ...}`
body. Readiness follows the protocol: 200 for ready, 400 for not (4xx: "false").
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Request
from inference import grpc_predict_v2_pb2 as v2
from starlette.responses import Response

from mlplatform.gateway import auth
from mlplatform.gateway.content_types import BodyFormat, body_format
from mlplatform.gateway.predictor_backend import PredictorBackend
from mlplatform.gateway.responses import JsonResponse
from mlplatform.gateway.rest_codec import parse_json
from mlplatform.gateway.routes import GatewayRoute
from mlplatform.gateway.status_mapping import ApiError
from mlplatform.gateway.v2_codec import (
    HEADER_LENGTH,
    decompressed,
    infer_call,
    infer_result,
    model_metadata_result,
    split_body,
)
from mlplatform.gateway.v2_openapi import (
    V2_ERROR_RESPONSES,
    V2InferResult,
    V2ModelMetadata,
    V2ServerMetadata,
    V2Status,
)

#: The V2 extensions the gateway speaks (Triton's binary tensor data among them).
EXTENSIONS = ["binary_tensor_data"]
_TAGS = ["KServe V2 (Open Inference Protocol)"]
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": V2InferResult,
        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        "description": "JSON, or with binary outputs the JSON header then their bytes",
    },
    **V2_ERROR_RESPONSES,
}

router = APIRouter(route_class=GatewayRoute, tags=_TAGS)


def _backend(request: Request) -> PredictorBackend:
    return request.app.state.backend


async def _call(request: Request, method_name: str, message: Any) -> Any:
    backend = _backend(request)
    method = getattr(backend.v2, method_name)
    return await backend.call(method, message, request.state.request_id, auth.api_key_of(request))


def _not_ready(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, f"{what} is not ready", http_status=400)


async def _infer(request: Request, name: str, version: str) -> Response:
    api_key = auth.api_key_of(request)
    request_id = request.state.request_id
    header_length = request.headers.get(HEADER_LENGTH)
    accepted = (BodyFormat.JSON,) if header_length is None else (BodyFormat.JSON, BodyFormat.BINARY)
    body_format(request.headers.get("content-type"), accepted)
    body = decompressed(
        await request.body(),
        request.headers.get("content-encoding"),
        request.app.state.settings.max_body_bytes,
    )
    header, tail = split_body(body, header_length)
    call = infer_call(parse_json(header), tail, name, version, request_id)
    response = await _backend(request).model_infer(call.request, request_id, api_key)
    content, json_length = infer_result(response, call)
    if json_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(json_length)},
    )


@router.post(
    "/v2/models/{name}/infer",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Infer (V2)",
    responses=_INFER_RESPONSES,
)
async def infer(name: str, request: Request) -> Response:
    """V2 inference: one input tensor per column (`shape` [rows]), JSON `data` or binary
    tensor data (`Inference-Header-Content-Length`); outputs `prediction` and, for
    classifiers, `probabilities` ([rows, classes], classes in the `classes` parameter)."""
    return await _infer(request, name, "")


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Infer with a given model version (V2)",
    responses=_INFER_RESPONSES,
)
async def infer_version(name: str, version: str, request: Request) -> Response:
    """As `/v2/models/{name}/infer`; 404 unless `version` is the one served."""
    return await _infer(request, name, version)


async def _model_metadata(request: Request, name: str, version: str) -> Response:
    message = v2.ModelMetadataRequest(name=name, version=version)
    metadata = await _call(request, "ModelMetadata", message)
    return JsonResponse(model_metadata_result(metadata))


@router.get(
    "/v2/models/{name}",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Model metadata (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2ModelMetadata}, **V2_ERROR_RESPONSES},
)
async def model_metadata(name: str, request: Request) -> Response:
    """Name, versions, platform, input tensors (one per column) and outputs."""
    return await _model_metadata(request, name, "")


@router.get(
    "/v2/models/{name}/versions/{version}",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Model metadata of a version (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2ModelMetadata}, **V2_ERROR_RESPONSES},
)
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    """As `/v2/models/{name}`; 404 unless `version` is the one served."""
    return await _model_metadata(request, name, version)


async def _model_ready(request: Request, name: str, version: str) -> Response:
    answer = await _call(request, "ModelReady", v2.ModelReadyRequest(name=name, version=version))
    if not answer.ready:
        raise _not_ready(f"model {name!r}" + (f" version {version!r}" if version else ""))
    return JsonResponse({"ready": True})


@router.get(
    "/v2/models/{name}/ready",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Model readiness (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2Status}, **V2_ERROR_RESPONSES},
)
async def model_ready(name: str, request: Request) -> Response:
    """200 when the predictor serves model `name`; 400 otherwise."""
    return await _model_ready(request, name, "")


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Model version readiness (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2Status}, **V2_ERROR_RESPONSES},
)
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    """200 when the predictor serves `version` of model `name`; 400 otherwise."""
    return await _model_ready(request, name, version)


@router.get(
    "/v2/health/live",
    summary="Liveness (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2Status}},
)
async def live() -> Response:
    """Always 200 while the gateway serves HTTP (as `/healthz`)."""
    return JsonResponse({"live": True})


@router.get(
    "/v2/health/ready",
    summary="Readiness (V2)",
    response_class=JsonResponse,
    responses={
        200: {"model": V2Status},
        400: V2_ERROR_RESPONSES[400],
        503: V2_ERROR_RESPONSES[503],
    },
)
async def ready(request: Request) -> Response:
    """200 when the predictor's gRPC health check says SERVING (as `/readyz`, and open like
    it); 400 otherwise (V2's "not ready")."""
    status = await _backend(request).serving_status()
    if status != "SERVING":
        raise _not_ready(f"the predictor ({status})")
    return JsonResponse({"ready": True})


@router.get(
    "/v2",
    openapi_extra=auth.OPENAPI_SECURITY,
    summary="Server metadata (V2)",
    response_class=JsonResponse,
    responses={200: {"model": V2ServerMetadata}, **V2_ERROR_RESPONSES},
)
async def server_metadata(request: Request) -> Response:
    """The predictor's name and version, and the extensions the gateway speaks."""
    answer = await _call(request, "ServerMetadata", v2.ServerMetadataRequest())
    return JsonResponse({"name": answer.name, "version": answer.version, "extensions": EXTENSIONS})
