"""API-key auth for the predictor's gRPC surface: one grpc.aio server interceptor.

Every method needs a key with the scope `mlplatform.common.access` maps it to (health checking
and reflection stay open for probes; a method the table does not name needs `admin`). A call
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

_STATUS = {
    Verdict.MISSING: grpc.StatusCode.UNAUTHENTICATED,
    Verdict.INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Verdict.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
}


_HANDLER_FACTORIES = {  # by (request streaming, response streaming)
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
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

    factory = _HANDLER_FACTORIES[handler.request_streaming, handler.response_streaming]
    return factory(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls whose key is missing, unknown or lacks the method's scope (with no keys
    configured, none)."""

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
