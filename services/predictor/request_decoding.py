"""Request bodies that are not the method's message are refused as INVALID_ARGUMENT.

gRPC's Python server parses each request before the handler runs, and a parse failure ends the
call as UNKNOWN ("Unexpected <class 'google.protobuf.message.DecodeError'>") after logging a
traceback. Random bytes are the caller's mistake: they get INVALID_ARGUMENT with the request id
trailer every other error has, and the server logs one line. `DecodingGuard` stands in for the
server while the generated `add_*Servicer_to_server` functions register their (unary-unary)
handlers, and wraps each: its deserializer returns `_Undecodable` instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from mlplatform.predictor.grpc_errors import REQUEST_ID_KEY
from mlplatform.predictor.prediction_service import new_request_id

logger = logging.getLogger(__name__)

#: Hears the method (`/package.Service/Method`) of each refused body, to count it.
RefusalListener = Callable[[str], None]


class _Undecodable:
    """What a guarded deserializer returns for bytes that do not parse as its message."""

    def __init__(self, size: int) -> None:
        self.size = size


def guard_handler(
    handler: grpc.RpcMethodHandler, method: str, on_refused: RefusalListener
) -> grpc.RpcMethodHandler:
    """`handler`, answering a body that does not parse with INVALID_ARGUMENT."""
    deserializer, behaviour = handler.request_deserializer, handler.unary_unary
    if deserializer is None or behaviour is None:  # streaming: the guarded services have none
        return handler
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    message_name = getattr(descriptor, "full_name", "") or "request message"

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or whatever else the protobuf runtime raises on junk
            return _Undecodable(len(data))

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            on_refused(method)
            request_id = new_request_id()
            logger.warning(
                "request %s: %s refused: a body of %d bytes that is not a valid %s",
                request_id,
                method,
                request.size,
                message_name,
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {message_name}",
                trailing_metadata=((REQUEST_ID_KEY, request_id),),
            )
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        guarded,
        request_deserializer=deserialize,
        response_serializer=handler.response_serializer,
    )


class DecodingGuard:
    """Stands in for `server` in the generated `add_*Servicer_to_server(servicer, server)`;
    `on_refused` hears of each body refused."""

    def __init__(self, server: grpc.aio.Server, on_refused: RefusalListener) -> None:
        self._server = server
        self._on_refused = on_refused

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        """Ignored: the generated code passes the same handlers, as a dict, to
        `add_registered_method_handlers` next, which registers them both ways."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        guarded = {
            name: guard_handler(handler, f"/{service_name}/{name}", self._on_refused)
            for name, handler in method_handlers.items()
        }
        generic = grpc.method_handlers_generic_handler(service_name, guarded)
        self._server.add_generic_rpc_handlers((generic,))
        self._server.add_registered_method_handlers(service_name, guarded)
