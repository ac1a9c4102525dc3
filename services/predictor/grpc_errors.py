"""Turning a predictor error into a gRPC status the caller can act on.

For invalid input the standard rich error model (`grpc-status-details-bin`: a
`google.rpc.BadRequest`) lists each offending field, so clients read the columns without
parsing text. Every error carries the request id in the `x-request-id` trailer; unexpected
errors are logged here and reach the caller only as INTERNAL with that id. The status travels
in trailing metadata, which gRPC clients refuse beyond 16 KiB (the error itself is then lost),
so the message and the violations are capped far below that, whatever the input.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from itertools import accumulate
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from mlplatform.client.frames import FrameError
from mlplatform.common.input_problems import InvalidInputError
from mlplatform.common.summaries import ELLIPSIS, NAME_WIDTH, NAMES_LIMIT, shorten
from mlplatform.predictor.errors import PredictionFailedError, status_for

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

#: Most bytes of a status message as sent (UTF-8, percent-encoded outside printable ASCII).
MAX_MESSAGE_BYTES = 2048
#: Most field violations listed before the one that counts the rest.
MAX_VIOLATIONS = NAMES_LIMIT
#: Most characters of one violation's description.
MAX_DESCRIPTION_CHARS = 160
#: Most UTF-8 bytes of the listed violations' fields and descriptions together.
MAX_VIOLATION_BYTES = 4096


def field_violations(error: BaseException) -> list[tuple[str, str]]:
    """(field, description) pairs of an input error; empty for other errors."""
    if isinstance(error, InvalidInputError):
        return [(problem.column or "inputs", problem.message) for problem in error.problems]
    if isinstance(error, FrameError):
        return [(error.column or "inputs", error.detail)]
    field = getattr(error, "field", None)
    return [(field, str(error))] if isinstance(field, str) else []


def _sent_size(character: str) -> int:
    """Bytes one character takes in a status message as gRPC sends it (percent-encoded UTF-8
    outside printable ASCII)."""
    if " " <= character <= "~" and character != "%":
        return 1
    return 3 * len(character.encode("utf-8", "surrogatepass"))


def fit_message(message: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """`message`, or its start and `ELLIPSIS` when it takes more than `max_bytes` as sent."""
    if 3 * len(message.encode("utf-8", "surrogatepass")) <= max_bytes:
        return message  # the usual case, decided without a look at each character
    # Every character takes at least one byte: the first max_bytes + 1 decide.
    sent = list(accumulate(_sent_size(character) for character in message[: max_bytes + 1]))
    if len(message) <= max_bytes and sent[-1] <= max_bytes:
        return message
    return message[: bisect_right(sent, max_bytes - _sent_size(ELLIPSIS))] + ELLIPSIS


def capped_violations(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most `MAX_VIOLATIONS` violations within `MAX_VIOLATION_BYTES`, each cut to size,
    and one more (field `inputs`) counting those left out."""
    kept: list[tuple[str, str]] = []
    size = 0
    for field, description in violations[:MAX_VIOLATIONS]:
        field, description = shorten(field, NAME_WIDTH), shorten(description, MAX_DESCRIPTION_CHARS)
        size += len(field.encode("utf-8", "surrogatepass"))
        size += len(description.encode("utf-8", "surrogatepass"))
        if size > MAX_VIOLATION_BYTES:
            break
        kept.append((field, description))
    left_out = len(violations) - len(kept)
    if left_out:
        kept.append(("inputs", f"and {left_out} more problems, left out of this list"))
    return kept


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
        message = fit_message(str(error))
    trailing: list[tuple[str, str | bytes]] = [(REQUEST_ID_KEY, request_id)]
    violations = field_violations(error)
    if violations:
        status = _rich_status(code, message, capped_violations(violations))
        trailing.append((STATUS_DETAILS_KEY, status))
    await context.abort(code, message, trailing_metadata=tuple(trailing))
