"""The predictor's gRPC surface: one grpc.aio server carrying the Predictor, KServe V2, health
and reflection services. API keys, when any are configured, are checked by one interceptor;
without keys there is none, so no per-call cost.
"""

from __future__ import annotations

from importlib import metadata

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc

from mlplatform.common.api_keys import ApiKeys
from mlplatform.common.store import Store
from mlplatform.predictor.auth import ApiKeyInterceptor
from mlplatform.predictor.kserve import InferenceServicer
from mlplatform.predictor.metrics import PredictorMetrics
from mlplatform.predictor.prediction_service import PredictionService
from mlplatform.predictor.request_decoding import DecodingGuard
from mlplatform.predictor.servicer import PredictorServicer
from mlplatform.predictor.settings import PredictorSettings
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

SERVER_NAME = "mlplatform-predictor"
PREDICTOR_SERVICE = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name
INFERENCE_SERVICE = grpc_predict_v2_pb2.DESCRIPTOR.services_by_name[
    "GRPCInferenceService"
].full_name
HEALTH_SERVICES = ("", PREDICTOR_SERVICE, INFERENCE_SERVICE)
#: The prediction calls the request metrics count (their `api` label), by method path.
COUNTED_APIS = {
    f"/{PREDICTOR_SERVICE}/Predict": "Predict",
    f"/{INFERENCE_SERVICE}/ModelInfer": "ModelInfer",
}


class PortTakenError(OSError):
    """The gRPC port cannot be bound (another process holds it)."""


def _server_version() -> str:
    try:
        return metadata.version("mlplatform")
    except metadata.PackageNotFoundError:
        return "unknown"


def grpc_server(
    settings: PredictorSettings,
    service: PredictionService,
    store: Store | None,
    keys: ApiKeys,
    metrics: PredictorMetrics,
    credentials: grpc.ServerCredentials | None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """The server, bound and not yet started, its health servicer, and the bound port."""
    message_bytes = settings.max_message_mb * 1024 * 1024
    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(keys)] if keys.enabled else None,
        options=[
            ("grpc.max_receive_message_length", message_bytes),
            ("grpc.max_send_message_length", message_bytes),
            # gRPC's default SO_REUSEPORT lets a second predictor silently share a taken port
            # (each getting some of the calls); without it, a taken port fails the start.
            ("grpc.so_reuseport", 0),
        ],
    )
    slot = service.slot

    def count_undecodable(method: str) -> None:  # counted as refused, like bad rows
        api = COUNTED_APIS.get(method)
        if api is not None:
            model = slot.current
            name, version = (model.name, model.version) if model else (slot.reference.name, "")
            metrics.request_answered(api, name, version, "INVALID_ARGUMENT", 0.0)

    guarded = DecodingGuard(server, on_refused=count_undecodable)
    predictor_pb2_grpc.add_PredictorServicer_to_server(PredictorServicer(service, store), guarded)
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(service, SERVER_NAME, _server_version()), guarded
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (PREDICTOR_SERVICE, INFERENCE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server,
    )
    address = f"{settings.host}:{settings.port}"
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpc says "Failed to bind", never why
        port = 0
    if port == 0:
        raise PortTakenError(f"cannot listen on the gRPC port {address}: is it taken?")
    return server, health_servicer, port
