"""Which request bodies an endpoint reads, decided by their Content-Type; 415 for the rest.

- JSON: `application/json` and the structured-syntax `application/*+json` types
  (RFC 6839), on `/predict` and `/invocations`; CSV: `text/csv`, on `/invocations` only (as
  MLflow's scoring server reads it); `application/octet-stream`, on the V2 infer routes only
  when `Inference-Header-Content-Length` says where the JSON header ends (Triton's binary
  tensor data).
- A request without a Content-Type is read as JSON: HTTP clients sending raw bytes (Python's
  `requests` with `data=`, httpx with `content=`) send none.
- Anything else is 415 in the gateway's one error shape, naming the accepted types. That
  includes `application/x-www-form-urlencoded`, which `curl -d` sends unless told otherwise
  (the message then says how to tell it), and `text/plain` and `multipart/form-data`: with
  form-urlencoded, these are the types a browser may send across origins without asking first,
  so refusing them keeps other web pages from posting to the gateway.
- A `charset` other than UTF-8, or any other parameter, is 415 as well, as MLflow's scoring
  server answers (JSON is UTF-8 by RFC 8259).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

import grpc

from mlplatform.gateway.status_mapping import ApiError, bad_request_detail

CONTENT_TYPE_FIELD = "Content-Type"
_FORM = "application/x-www-form-urlencoded"


class BodyFormat(StrEnum):
    """How a request body is read."""

    JSON = "json"
    CSV = "csv"
    BINARY = "binary"


_ACCEPTED_NAMES = {
    BodyFormat.JSON: "application/json (or an application/*+json type)",
    BodyFormat.CSV: "text/csv",
    BodyFormat.BINARY: "application/octet-stream (with Inference-Header-Content-Length)",
}


def _format_of(media_type: str) -> BodyFormat | None:
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return BodyFormat.JSON
    if media_type == "text/csv":
        return BodyFormat.CSV
    if media_type == "application/octet-stream":
        return BodyFormat.BINARY
    return None


def unsupported_media_type(content_type: str, accepted: Collection[BodyFormat]) -> ApiError:
    """415 naming the content type received and the ones accepted."""
    names = " or ".join(_ACCEPTED_NAMES[kind] for kind in BodyFormat if kind in accepted)
    message = f"unsupported content type {content_type!r:.80}; send {names}, charset utf-8"
    if content_type.split(";")[0].strip().lower() == _FORM:
        message += " (curl -d sends application/x-www-form-urlencoded: add "
        message += "-H 'Content-Type: application/json')"
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
        [bad_request_detail([(CONTENT_TYPE_FIELD, message)])],
        http_status=415,
    )


def body_format(content_type: str | None, accepted: Collection[BodyFormat]) -> BodyFormat:
    """How to read a body sent with `content_type` (None: no header), or a 415 ApiError."""
    if content_type is None or not content_type.strip():
        return BodyFormat.JSON
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    for parameter in parameters:
        if not parameter:  # `application/json;`
            continue
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise unsupported_media_type(content_type, accepted)
    found = _format_of(media_type.lower())
    if found is None or found not in accepted:
        raise unsupported_media_type(content_type, accepted)
    return found
