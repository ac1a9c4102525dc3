"""The gateway's one gRPC channel to the predictor, shared by every request.

One asyncio channel multiplexes all calls over HTTP/2; opening one per request would cost a
connection setup each time. Every call carries the configured deadline (so the predictor stops
working on requests nobody waits for), the request id (`x-request-id`) and the caller's API key,
which the predictor checks itself. A failed call becomes an `ApiError` through the one status
mapping. Reconnection backoff is capped at a few seconds so a restarted predictor is picked up
quickly instead of after gRPC's default two-minute ceiling. With TLS settings the channel is
encrypted (and presents the gateway's client certificate to a predictor requiring mTLS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

from mlplatform.client.tls import TlsFiles, secure_aio_channel
from mlplatform.gateway.status_mapping import error_from_rpc
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

PREDICTOR_SERVICE = "mlplatform.v1.Predictor"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the predictor's default limit
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # No client keepalive pings: a server with gRPC's default ping policy (at most one per
    # 5 minutes) answers more frequent ones with GOAWAY.
]
HEALTH_TIMEOUT_S = 2.0

Metadata = tuple[tuple[str, str], ...]


def call_metadata(request_id: str, api_key: str | None) -> Metadata:
    """The metadata of one call: its request id, and the caller's key when there is one."""
    if api_key is None:
        return (("x-request-id", request_id),)
    return (("x-request-id", request_id), ("authorization", f"Bearer {api_key}"))


class PredictorBackend:
    """Calls to one predictor over one channel; create it inside the serving event loop."""

    def __init__(self, address: str, timeout_s: float, tls: TlsFiles | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        if tls is None:
            self.channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        else:
            self.channel = secure_aio_channel(address, tls, _CHANNEL_OPTIONS)
        self._predict = predictor_pb2_grpc.PredictorStub(self.channel).Predict
        self._model_info = predictor_pb2_grpc.PredictorStub(self.channel).GetModelInfo
        self._record_outcomes = predictor_pb2_grpc.PredictorStub(self.channel).RecordOutcomes
        self._health = health_pb2_grpc.HealthStub(self.channel).Check
        self.v2 = v2_grpc.GRPCInferenceServiceStub(self.channel)

    async def call(
        self,
        method: Callable[..., Awaitable[Any]],
        request: Any,
        request_id: str,
        api_key: str | None,
    ) -> Any:
        """`method` (a stub method on this channel, e.g. `self.v2.ModelInfer`) called with the
        deadline, the request id and the key; ApiError as for `predict`."""
        try:
            return await method(
                request, timeout=self.timeout_s, metadata=call_metadata(request_id, api_key)
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, request_id, self.timeout_s) from None

    async def model_infer(
        self, request: v2.ModelInferRequest, request_id: str, api_key: str | None
    ) -> v2.ModelInferResponse:
        """KServe V2 ModelInfer on the predictor; ApiError as for `predict`."""
        return await self.call(self.v2.ModelInfer, request, request_id, api_key)

    async def predict(
        self, request: predictor_pb2.PredictRequest, api_key: str | None
    ) -> predictor_pb2.PredictResponse:
        """Predict; ApiError when the predictor refuses or cannot be reached in time."""
        try:
            return await self._predict(
                request,
                timeout=self.timeout_s,
                metadata=call_metadata(request.request_id, api_key),
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, request.request_id, self.timeout_s) from None

    async def model_info(
        self, model_name: str, request_id: str, api_key: str | None
    ) -> predictor_pb2.GetModelInfoResponse:
        """The served model's description; ApiError as for `predict`."""
        try:
            return await self._model_info(
                predictor_pb2.GetModelInfoRequest(model_name=model_name),
                timeout=self.timeout_s,
                metadata=call_metadata(request_id, api_key),
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, request_id, self.timeout_s) from None

    async def record_outcomes(
        self,
        request: predictor_pb2.RecordOutcomesRequest,
        request_id: str,
        api_key: str | None,
    ) -> predictor_pb2.RecordOutcomesResponse:
        """Attach outcomes to logged predictions; ApiError as for `predict`."""
        try:
            return await self._record_outcomes(
                request, timeout=self.timeout_s, metadata=call_metadata(request_id, api_key)
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, request_id, self.timeout_s) from None

    async def serving_status(self) -> str:
        """The predictor's health status name for the Predictor service (`SERVING`,
        `NOT_SERVING`, ...), or the gRPC error code name when it does not answer."""
        try:
            response = await self._health(
                health_pb2.HealthCheckRequest(service=PREDICTOR_SERVICE),
                timeout=min(HEALTH_TIMEOUT_S, self.timeout_s),
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def close(self) -> None:
        await self.channel.close()
