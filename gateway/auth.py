"""API-key auth of the REST endpoints that reach a model (`/predict`, `/invocations`,
`/models/{name}`); health, readiness and docs stay open.

The caller's key is checked here (401 before any gRPC call) and forwarded to the predictor,
which checks it again: the predictor may be reached directly, so it cannot trust the gateway
to have checked. Keys travel as `Authorization: Bearer KEY` or `X-API-Key: KEY`. The security
schemes below only describe them in `/docs` (its "Authorize" button).
"""

from __future__ import annotations

import grpc
from fastapi import Request

from mlplatform.common.api_keys import ApiKeys, is_forwardable, presented_key
from mlplatform.gateway.status_mapping import ApiError

MISSING_KEY = "an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
INVALID_KEY = "the API key is not valid"
MALFORMED_KEY = "the API key must be printable ASCII"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlplatform"'}

#: What /docs shows for the protected routes (the "Authorize" button): either scheme works.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer KEY`"},
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "`X-API-Key: KEY`",
    },
}
OPENAPI_SECURITY = {"security": [{"bearer": []}, {"apiKey": []}]}


def _unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, headers=_CHALLENGE)


def check_api_key(keys: ApiKeys, authorization: str | None, x_api_key: str | None) -> str | None:
    """The key to forward to the predictor (None: the caller sent none).

    Raises UNAUTHENTICATED (401) when keys are configured and the caller's is missing or wrong,
    or when the caller's key could not travel as gRPC metadata.
    """
    key = presented_key(authorization, x_api_key)
    if keys.enabled:
        if key is None:
            raise _unauthenticated(MISSING_KEY)
        if not keys.accepts(key):
            raise _unauthenticated(INVALID_KEY)
    if key is not None and not is_forwardable(key):
        raise _unauthenticated(MALFORMED_KEY)
    return key


def api_key_of(request: Request) -> str | None:
    """The checked key of a request to a protected route (None: the caller sent none).

    Called by the routes themselves, not declared as a FastAPI dependency: resolving
    dependencies cost more per request than the check.
    """
    headers = request.headers
    return check_api_key(
        request.app.state.api_keys, headers.get("authorization"), headers.get("x-api-key")
    )
