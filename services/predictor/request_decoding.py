"""Request bodies that are not the method's message are refused as INVALID_ARGUMENT.

Why: gRPC's Python server parses each request with the method's deserializer before the
handler runs, and a parse failure ends the call as UNKNOWN with "Unexpected <class
'google.protobuf.message.DecodeError'>: ..." as its message, after logging a traceback. A
body of random bytes is the caller's mistake, so it gets INVALID_ARGUMENT "request body is not
a valid mlplatform.v1.PredictRequest", with the request id trailer every other error has, and
the server logs one line without a traceback.

How: `DecodingGuard` stands in for the server while the generated `add_*Servicer_to_server`
functions register their handlers. Each unary-unary handler's deserializer is wrapped to return
an `UndecodableRequest` instead of raising, and its behaviour to refuse one: one more coroutine
frame per call. Streaming handlers pass through unchanged (the services
guarded have none).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from mlplatform.predictor.grpc_errors import REQUEST_ID_KEY
from mlplatform.predictor.prediction_service import new_request_id

logger = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]
Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


@dataclass(frozen=True)
class UndecodableRequest:
    """What a guarded deserializer returns for bytes that do not parse as its message."""

    message_name: str
    size: int


def message_name(deserializer: Deserializer | None) -> str:
    """The full protobuf name of the message `deserializer` parses (`X.FromString`)."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "") or "request message"


def tolerant(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, answering an `UndecodableRequest` where it would raise."""
    name = message_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or whatever else the protobuf runtime raises on junk
            return UndecodableRequest(name, len(data))

    return deserialize


#: Hears the method (`/package.Service/Method`) of each refused body, to count it.
RefusalListener = Callable[[str], None]


def refusing_undecodable(
    behaviour: Behaviour, method: str, on_refused: RefusalListener | None = None
) -> Behaviour:
    """`behaviour`, except that an `UndecodableRequest` is refused as INVALID_ARGUMENT."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, UndecodableRequest):
            if on_refused is not None:
                on_refused(method)
            request_id = new_request_id()
            logger.warning(
                "request %s: %s refused: a body of %d bytes that is not a valid %s",
                request_id,
                method,
                request.size,
                request.message_name,
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {request.message_name}",
                trailing_metadata=((REQUEST_ID_KEY, request_id),),
            )
        return await behaviour(request, context)

    return guarded


def guard_handler(
    handler: grpc.RpcMethodHandler, method: str, on_refused: RefusalListener | None = None
) -> grpc.RpcMethodHandler:
    """`handler` with its body parsing guarded, if it is unary-unary; else `handler`."""
    if handler.request_streaming or handler.response_streaming:
        return handler
    if handler.request_deserializer is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        refusing_undecodable(handler.unary_unary, method, on_refused),
        request_deserializer=tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are guarded (each guarded once, then kept;
    methods it does not serve are not kept, so unknown names cannot grow the cache)."""

    def __init__(self, inner: grpc.GenericRpcHandler, on_refused: RefusalListener | None) -> None:
        self._inner = inner
        self._on_refused = on_refused
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            guarded = guard_handler(handler, method, self._on_refused)
            self._guarded[method] = guarded
        return guarded


class DecodingGuard:
    """Stands in for `server` in the generated `add_*Servicer_to_server(servicer, server)`,
    registering the service's handlers with their request parsing guarded; `on_refused`
    hears of each body refused."""

    def __init__(self, server: grpc.aio.Server, on_refused: RefusalListener | None = None) -> None:
        self._server = server
        self._on_refused = on_refused

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_GuardedGenericHandler(handler, self._on_refused) for handler in handlers)
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                name: guard_handler(handler, f"/{service_name}/{name}", self._on_refused)
                for name, handler in method_handlers.items()
            },
        )
