"""API-key auth for the predictor's gRPC surface: one grpc.aio server interceptor.

With keys configured (`MLP_API_KEYS`, `MLP_API_KEYS_FILE`), every method needs a key with the
scope `mlplatform.common.access` maps it to: health checking and reflection stay open (load
balancers, `grpc_health_probe` and `grpcurl list` work without credentials), and a method the
table does not name needs `admin`, so a service added later is closed by default. A call
without a known key ends with UNAUTHENTICATED, one whose key lacks the scope with
PERMISSION_DENIED, both before the servicer runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from mlplatform.common.access import scope_for
from mlplatform.common.api_keys import (
    AUTHORIZATION,
    X_API_KEY,
    ApiKeys,
    Verdict,
    presented_key,
    refusal_message,
)

__all__ = ["ApiKeyInterceptor"]

_STATUS = {
    Verdict.MISSING: grpc.StatusCode.UNAUTHENTICATED,
    Verdict.INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Verdict.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
}


def _metadata_value(metadata: Iterable[tuple[str, Any]] | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name and isinstance(value, str):
            return value
    return None


def _refusing(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends every call with `code`."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

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
    """Refuses calls whose key is missing, unknown or lacks the method's scope.

    With no keys it lets everything through, so it can be installed unconditionally.
    """

    def __init__(self, keys: ApiKeys | Iterable[str]) -> None:
        self.keys = keys if isinstance(keys, ApiKeys) else ApiKeys(keys)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not self.keys.enabled:
            return handler
        needed = scope_for(handler_call_details.method)
        if needed is None:
            return handler
        metadata = handler_call_details.invocation_metadata
        key = presented_key(
            _metadata_value(metadata, AUTHORIZATION), _metadata_value(metadata, X_API_KEY)
        )
        verdict = self.keys.check(key, needed)
        if verdict is Verdict.ALLOWED:
            return handler
        return _refusing(handler, _STATUS[verdict], refusal_message(verdict, needed))
