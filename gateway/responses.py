"""JSON responses: orjson bodies, and the one error response every failure becomes."""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from starlette.responses import JSONResponse

from mlplatform.gateway.status_mapping import ApiError

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


def dumps(content: Any) -> bytes:
    """JSON bytes. orjson writes NaN and infinities as null; text that is not valid Unicode
    (lone surrogates echoed from a request) falls back to the standard module's escapes."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=True, default=str).encode("ascii")


class JsonResponse(JSONResponse):
    """application/json rendered with orjson (several times faster than the json module).

    A JSONResponse subclass so that FastAPI documents routes using it as JSON."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def is_v2_path(path: str) -> bool:
    """True for the KServe V2 routes, whose clients read V2's error body."""
    return path == "/v2" or path.startswith("/v2/")


def error_response(error: ApiError, request_id: str, path: str = "") -> JsonResponse:
    """The response of `error`: its HTTP status, the error body, the request id header.

    Under `/v2` the body is V2's `{"error": message}` (what tritonclient and KServe clients
    read); the status, the message and the request id header stay the same."""
    body = error.body(request_id)
    headers = {REQUEST_ID_HEADER: body["request_id"], **error.headers}
    if is_v2_path(path):
        return JsonResponse({"error": body["message"]}, error.http_status, headers)
    return JsonResponse(body, status_code=error.http_status, headers=headers)
