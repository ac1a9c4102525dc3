"""Turning a predictor error into a gRPC status the caller can act on.

The status message says what is wrong; for invalid input the standard rich error model
(`grpc-status-details-bin` holding a `google.rpc.Status` with a `google.rpc.BadRequest`) also
lists each offending field, so clients can read the columns without parsing text. Every error
carries the request id in the `x-request-id` trailer. Unexpected errors are logged here with
their traceback and reach the caller only as INTERNAL with that id.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from mlplatform.client.frames import FrameError
from mlplatform.common.input_schema import InvalidInputError
from mlplatform.predictor.errors import PredictionFailedError, status_for

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def field_violations(error: BaseException) -> list[tuple[str, str]]:
    """(field, description) pairs of an input error; empty for other errors."""
    if isinstance(error, InvalidInputError):
        return [(problem.column or "inputs", problem.message) for problem in error.problems]
    if isinstance(error, FrameError):
        return [(error.column or "inputs", error.detail)]
    field = getattr(error, "field", None)
    return [(field, str(error))] if isinstance(field, str) else []


def _rich_status(code: grpc.StatusCode, message: str, violations: list[tuple[str, str]]) -> bytes:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return status_pb2.Status(
        code=code.value[0], message=message, details=[detail]
    ).SerializeToString()


async def abort_with(
    context: grpc.aio.ServicerContext, error: BaseException, request_id: str
) -> NoReturn:
    """End the call with the one status `error` maps to (never returns)."""
    code = status_for(error)
    if code is grpc.StatusCode.INTERNAL and not isinstance(error, PredictionFailedError):
        logger.error("request %s: unexpected error", request_id, exc_info=error)
        message = f"internal error (request id {request_id})"
    else:
        message = str(error)
    trailing: list[tuple[str, str | bytes]] = [(REQUEST_ID_KEY, request_id)]
    violations = field_violations(error)
    if violations:
        trailing.append((STATUS_DETAILS_KEY, _rich_status(code, message, violations)))
    await context.abort(code, message, trailing_metadata=tuple(trailing))
