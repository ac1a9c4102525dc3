"""The predictor's gRPC surface: the Predictor and KServe V2 servicers (decode with their codec,
predict through the prediction core, encode) and one grpc.aio server carrying them with health
and reflection. API keys, when any are configured, are checked by one interceptor; without keys
there is none, so no per-call cost.
"""

from __future__ import annotations

import asyncio
from importlib import metadata

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

from mlplatform.common.api_keys import ApiKeys
from mlplatform.common.store import Store
from mlplatform.predictor import kserve_codec, native_codec
from mlplatform.predictor.auth import ApiKeyInterceptor
from mlplatform.predictor.grpc_errors import abort_with
from mlplatform.predictor.kserve_codec import PROBABILITIES_OUTPUT
from mlplatform.predictor.metrics import PredictorMetrics
from mlplatform.predictor.outcome_messages import record_outcomes
from mlplatform.predictor.prediction_service import PredictionService, new_request_id
from mlplatform.predictor.request_decoding import DecodingGuard
from mlplatform.predictor.settings import PredictorSettings
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

SERVER_NAME = "mlplatform-predictor"
PREDICTOR_SERVICE = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name
INFERENCE_SERVICE = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
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


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(self, service: PredictionService, store: Store | None = None) -> None:
        self.service = service
        #: Where RecordOutcomes writes: the store the predictions are logged in.
        self.store = store

    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        request_id = request.request_id or new_request_id()
        async with self.service.call("Predict", request_id, context) as call:
            model = call.model(request.model_name)
            rows = native_codec.decode_frame(request.inputs)
            result = await call.predict(
                model, rows, request.include_probabilities, request.key_column
            )
            return native_codec.encode_response(result)

    async def GetModelInfo(
        self, request: predictor_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.GetModelInfoResponse:
        try:
            model = self.service.model_for(request.model_name)
        except Exception as error:
            await abort_with(context, error, new_request_id())
        return native_codec.encode_model_info(model)

    async def RecordOutcomes(
        self, request: predictor_pb2.RecordOutcomesRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.RecordOutcomesResponse:
        try:
            if self.store is None:
                raise RuntimeError("this predictor was started without a store")
            # The store is synchronous: off the event loop, so predictions keep flowing.
            return await asyncio.to_thread(record_outcomes, self.store, request)
        except Exception as error:
            await abort_with(context, error, new_request_id())


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: PredictionService) -> None:
        self.service = service

    async def ServerLive(
        self, request: v2.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: v2.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerReadyResponse:
        return v2.ServerReadyResponse(ready=self.service.slot.current is not None)

    async def ModelReady(
        self, request: v2.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelReadyResponse:
        try:
            self.service.model_for(request.name, request.version)
        except Exception:
            return v2.ModelReadyResponse(ready=False)
        return v2.ModelReadyResponse(ready=True)

    async def ServerMetadata(
        self, request: v2.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name=SERVER_NAME, version=_server_version())

    async def ModelMetadata(
        self, request: v2.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelMetadataResponse:
        try:
            model = self.service.model_for(request.name, request.version)
        except Exception as error:
            await abort_with(context, error, new_request_id())
        return kserve_codec.model_metadata(model)

    async def ModelInfer(
        self, request: v2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelInferResponse:
        request_id = request.id or new_request_id()
        async with self.service.call("ModelInfer", request_id, context) as call:
            model = call.model(request.model_name, request.model_version)
            key_column = kserve_codec.key_column(request)
            rows, wanted = kserve_codec.decode_request(request, model, key_column)
            result = await call.predict(model, rows, PROBABILITIES_OUTPUT in wanted, key_column)
            return kserve_codec.encode_response(result, wanted)


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
    v2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), guarded)
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
