"""API-key auth for the predictor's gRPC surface: one grpc.aio server interceptor.

With keys configured (`MLP_API_KEYS`), every method needs a valid key in the call's metadata
(`authorization: Bearer KEY` or `x-api-key: KEY`) except health checking and reflection: load
balancers, `grpc_health_probe` and `grpcurl list` must work without credentials, and neither
exposes a model. Refused calls end with UNAUTHENTICATED before the servicer runs. The list of
open services is an allow-list, so a service added later is protected by default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from mlplatform.common.api_keys import (
    AUTHORIZATION,
    X_API_KEY,
    ApiKeys,
    api_keys_from_environment,
    presented_key,
)

__all__ = ["OPEN_SERVICES", "ApiKeyInterceptor", "api_keys_from_environment"]

#: Services callable without a key.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

MISSING_KEY = "an API key is required: send `authorization: Bearer KEY` or `x-api-key: KEY`"
INVALID_KEY = "the API key is not valid"


def _service_of(method: str) -> str:
    """`/package.Service/Method` -> `package.Service`."""
    return method.lstrip("/").split("/", 1)[0]


def _metadata_value(metadata: Iterable[tuple[str, Any]] | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name and isinstance(value, str):
            return value
    return None


def _refusing(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends every call with UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        factory = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        factory = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        factory = grpc.unary_stream_rpc_method_handler
    else:
        factory = grpc.unary_unary_rpc_method_handler
    return factory(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid API key, except to `OPEN_SERVICES`.

    With no keys it lets everything through, so it can be installed unconditionally.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = ApiKeys(keys)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or not self.keys.enabled
            or _service_of(handler_call_details.method) in OPEN_SERVICES
        ):
            return handler
        metadata = handler_call_details.invocation_metadata
        key = presented_key(
            _metadata_value(metadata, AUTHORIZATION), _metadata_value(metadata, X_API_KEY)
        )
        if key is None:
            return _refusing(handler, MISSING_KEY)
        if not self.keys.accepts(key):
            return _refusing(handler, INVALID_KEY)
        return handler
