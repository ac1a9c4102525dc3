"""One mapping from gRPC status to HTTP status, and one error body, for every endpoint.

The table is grpc-gateway's (`runtime.HTTPStatusFromCode`), which follows the comments of
`google/rpc/code.proto`. The error body is grpc-gateway's too (a `google.rpc.Status` in JSON,
details as `Any` with `@type`) plus the status name and the request id:

    {"code": 3, "status": "INVALID_ARGUMENT", "message": "...",
     "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                  "fieldViolations": [{"field": "V1", "description": "..."}]}],
     "request_id": "..."}

Errors the gateway finds itself (malformed JSON, wrong types, a missing key) use the same shape
with INVALID_ARGUMENT, so a client reads offending fields one way whoever found them. Server-side
faults never carry a stack trace: their text is logged under the request id, and the body says
only that id (the predictor's own INTERNAL message already reads that way, so it is kept).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from mlplatform.common.summaries import shorten

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_Code = grpc.StatusCode

#: gRPC status -> HTTP status, as grpc-gateway maps them.
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    _Code.OK: 200,
    _Code.CANCELLED: 499,
    _Code.UNKNOWN: 500,
    _Code.INVALID_ARGUMENT: 400,
    _Code.DEADLINE_EXCEEDED: 504,
    _Code.NOT_FOUND: 404,
    _Code.ALREADY_EXISTS: 409,
    _Code.PERMISSION_DENIED: 403,
    _Code.UNAUTHENTICATED: 401,
    _Code.RESOURCE_EXHAUSTED: 429,
    _Code.FAILED_PRECONDITION: 400,
    _Code.ABORTED: 409,
    _Code.OUT_OF_RANGE: 400,
    _Code.UNIMPLEMENTED: 501,
    _Code.INTERNAL: 500,
    _Code.UNAVAILABLE: 503,
    _Code.DATA_LOSS: 500,
}

#: Codes whose upstream message may say too much (an exception's text); replaced in the body.
_OPAQUE_CODES = frozenset({_Code.UNKNOWN, _Code.DATA_LOSS})


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status of a gRPC status code; 500 for anything unmapped."""
    return HTTP_STATUS_BY_CODE.get(code, 500)


def code_number(code: grpc.StatusCode) -> int:
    """The numeric value of a gRPC status code (google/rpc/code.proto)."""
    return int(code.value[0])


def bad_request_detail(violations: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A `google.rpc.BadRequest` detail in JSON, as grpc-gateway renders it."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return json_format.MessageToDict(detail)


class ApiError(Exception):
    """A refused or failed request, as a gRPC status (and so one HTTP status).

    `http_status` overrides the table for the few refusals that happen before any gRPC status
    exists (413 body too large, 415 unsupported content type, 405 method not allowed).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = list(details)
        self.http_status = http_status or http_status_for(code)
        self.request_id = request_id
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON error body; `request_id` is used when the error carries none of its own."""
        return {
            "code": code_number(self.code),
            "status": self.code.name,
            "message": self.message,
            "details": self.details,
            "request_id": self.request_id or request_id,
        }


def invalid_argument(field: str, description: str, message: str | None = None) -> ApiError:
    """INVALID_ARGUMENT (400) naming one offending field."""
    return invalid_arguments([(field, description)], message)


def invalid_arguments(
    violations: Sequence[tuple[str, str]], message: str | None = None
) -> ApiError:
    """INVALID_ARGUMENT (400) naming every offending field (each name cut to
    `summaries.NAME_WIDTH` characters: a field is often a column name the caller chose)."""
    violations = [(shorten(field), description) for field, description in violations]
    if message is None:
        message = "; ".join(f"{field}: {description}" for field, description in violations)
    return ApiError(_Code.INVALID_ARGUMENT, message, [bad_request_detail(violations)])


def internal_error(request_id: str) -> ApiError:
    """The 500 the caller sees for a fault: the request id to quote, nothing else."""
    return ApiError(_Code.INTERNAL, f"internal error (request id {request_id})")


def _details_from_trailer(status_bytes: bytes) -> list[dict[str, Any]]:
    try:
        status = status_pb2.Status.FromString(status_bytes)
    except Exception:  # malformed trailer: the status code and message still stand
        return []
    details = []
    for detail in status.details:
        try:
            details.append(json_format.MessageToDict(detail))
        except (TypeError, KeyError, json_format.Error):
            details.append({"@type": detail.type_url})  # a detail type we cannot decode
    return details


def error_from_rpc(
    error: grpc.aio.AioRpcError, request_id: str, deadline_s: float | None = None
) -> ApiError:
    """The ApiError of a failed predictor call: code, message and the offending fields from the
    rich status details, under the gateway's request id (the caller's, when it sent one).

    The predictor's own request id (its `x-request-id` trailer; the same id for Predict, which
    carries ours) goes to the log beside ours, so one grep finds both sides. Statuses made by
    the gRPC library on this side (no predictor answered: connection refused, deadline passed)
    get a plain message instead of the library's, which names internal addresses.
    """
    code = error.code()
    metadata = {key: value for key, value in (error.trailing_metadata() or ())}
    upstream_id = metadata.get(REQUEST_ID_KEY)
    from_predictor = isinstance(upstream_id, str) and bool(upstream_id)
    status_bytes = metadata.get(STATUS_DETAILS_KEY)
    details = _details_from_trailer(status_bytes) if isinstance(status_bytes, bytes) else []
    message = error.details() or code.name
    known_as = (
        f" (predictor request id {upstream_id})" if upstream_id not in (None, request_id) else ""
    )
    if not from_predictor and code in (_Code.UNAVAILABLE, _Code.DEADLINE_EXCEEDED):
        logger.warning("request %s: predictor call failed: %s: %s", request_id, code.name, message)
        if code is _Code.UNAVAILABLE:
            message = "the predictor is unavailable; retry later"
        else:
            within = f" within {deadline_s:g} s" if deadline_s is not None else ""
            message = f"the predictor did not answer{within} (the gateway's request deadline)"
    elif code in _OPAQUE_CODES:
        logger.error(
            "request %s%s: predictor answered %s: %s", request_id, known_as, code.name, message
        )
        message = f"internal error (request id {request_id})"
    elif http_status_for(code) >= 500:
        logger.warning(
            "request %s%s: predictor answered %s: %s", request_id, known_as, code.name, message
        )
    return ApiError(code, message, details, request_id=request_id)


#: HTTP status -> gRPC status, for refusals made by HTTP routing itself (unknown path, wrong
#: method), which have an HTTP status and no gRPC one (grpc-gateway's routing errors).
_CODE_BY_HTTP_STATUS: dict[int, grpc.StatusCode] = {
    400: _Code.INVALID_ARGUMENT,
    401: _Code.UNAUTHENTICATED,
    403: _Code.PERMISSION_DENIED,
    404: _Code.NOT_FOUND,
    405: _Code.UNIMPLEMENTED,
    409: _Code.ABORTED,
    413: _Code.RESOURCE_EXHAUSTED,
    415: _Code.INVALID_ARGUMENT,
    429: _Code.RESOURCE_EXHAUSTED,
    501: _Code.UNIMPLEMENTED,
    503: _Code.UNAVAILABLE,
    504: _Code.DEADLINE_EXCEEDED,
}


def code_for_http_status(http_status: int) -> grpc.StatusCode:
    """The gRPC status reported in the body of an HTTP-level refusal."""
    code = _CODE_BY_HTTP_STATUS.get(http_status)
    if code is not None:
        return code
    return _Code.INVALID_ARGUMENT if http_status < 500 else _Code.UNKNOWN
