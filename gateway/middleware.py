"""Pure ASGI middleware at the edge: a request id on every request, and the body size limit.

Pure ASGI (not Starlette's BaseHTTPMiddleware) because both run on every request and must not
add a task or a copy of the body to the hot path.
"""

from __future__ import annotations

import re
import uuid

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlplatform.common.log_setup import log_ids
from mlplatform.gateway.responses import REQUEST_ID_HEADER, error_response
from mlplatform.gateway.status_mapping import ApiError

_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode("ascii")
# The id travels on as gRPC metadata and into logs: keep it to safe, short tokens.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def request_id_of(scope: Scope) -> str:
    """The request id of this request: the caller's `X-Request-ID` when it is a safe token
    (letters, digits, `._:-`, at most 128), otherwise a new one."""
    state = scope.setdefault("state", {})
    request_id = state.get("request_id")
    if request_id is None:
        offered = _header(scope, _REQUEST_ID_HEADER_BYTES)
        if offered is not None and _VALID_REQUEST_ID.fullmatch(offered):
            request_id = offered.decode("ascii")
        else:
            request_id = uuid.uuid4().hex
        state["request_id"] = request_id
    return request_id


class RequestIdMiddleware:
    """Gives every request an id (`request.state.request_id`), echoes it as `X-Request-ID`,
    and puts it in the ids every log line of the request carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id_text = request_id_of(scope)
        request_id = request_id_text.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(key.lower() == _REQUEST_ID_HEADER_BYTES for key, _ in headers):
                    headers.append((_REQUEST_ID_HEADER_BYTES, request_id))
            await send(message)

        with log_ids(request_id=request_id_text):
            await self.app(scope, receive, send_with_id)


def body_too_large(limit: int) -> ApiError:
    """413: the body is over the limit (RESOURCE_EXHAUSTED in the body, like gRPC's own
    refusal of an oversized message)."""
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the request body is larger than {limit} bytes (MLP_GATEWAY_MAX_BODY_BYTES)",
        http_status=413,
    )


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_body_bytes` with 413 before anything parses them.

    A declared Content-Length over the limit is refused before the body is read at all; a body
    without one (chunked) is counted as it streams in, and reading stops at the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            refusal = error_response(body_too_large(limit), request_id_of(scope), scope["path"])
            await refusal(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read: the app's ApiError handler answers.
                    raise body_too_large(limit)
            return message

        await self.app(scope, counting_receive, send)
