"""A predictor port guarded by `ApiKeyInterceptor`, for the auth tests.

`start_predictor` takes no interceptors (wiring the interceptor into the server is a separate
change), so this starts a second grpc.aio server with the interceptor, serving the real
Predictor and KServe V2 servicers over the `PredictionService` of a running test predictor
(its model, batcher and schema checks), plus health checking and reflection, as the real
server assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from inference import grpc_predict_v2_pb2_grpc
from predictor_harness import BackgroundLoop

from mlplatform.predictor.auth import ApiKeyInterceptor
from mlplatform.predictor.grpc_services import (
    INFERENCE_SERVICE,
    PREDICTOR_SERVICE,
    InferenceServicer,
    PredictorServicer,
)
from mlplatform.predictor.prediction_service import PredictionService
from mlplatform.v1 import predictor_pb2_grpc


@dataclass
class GuardedPredictor:
    """The guarded server and its address."""

    server: grpc.aio.Server
    address: str
    loop: BackgroundLoop

    def stop(self) -> None:
        self.loop.run(self.server.stop(1))


def start_guarded_predictor(
    loop: BackgroundLoop, service: PredictionService, keys: Sequence[str]
) -> GuardedPredictor:
    async def start() -> GuardedPredictor:
        server = grpc.aio.server(interceptors=[ApiKeyInterceptor(keys)])
        predictor_pb2_grpc.add_PredictorServicer_to_server(PredictorServicer(service), server)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(service), server
        )
        health_servicer = health.aio.HealthServicer()
        for name in ("", PREDICTOR_SERVICE, INFERENCE_SERVICE):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (PREDICTOR_SERVICE, INFERENCE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return GuardedPredictor(server, f"127.0.0.1:{port}", loop)

    return loop.run(start())
