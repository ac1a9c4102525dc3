"""API-key auth of the gateway: every route needs a key with the scope
`mlplatform.common.access` maps it to; health, readiness and docs stay open, and a route the
table does not name needs `admin` (routes added later are closed until mapped).

The check is one pure ASGI middleware, so it covers every route, those added later included,
and answers before a body is read: 401 for a missing or unknown key, 403 for a key without
the route's scope. The caller's key is then forwarded to the predictor, which checks it again:
the predictor may be reached directly, so it cannot trust the gateway to have checked. Keys
travel as `Authorization: Bearer KEY` or `X-API-Key: KEY`. The security schemes below only
describe them in `/docs` (its "Authorize" button).
"""

from __future__ import annotations

import grpc
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mlplatform.common.access import scope_for
from mlplatform.common.api_keys import (
    ApiKeys,
    Verdict,
    is_forwardable,
    presented_key,
    refusal_message,
)
from mlplatform.gateway.middleware import request_id_of
from mlplatform.gateway.responses import error_response
from mlplatform.gateway.status_mapping import ApiError

MALFORMED_KEY = "the API key must be printable ASCII"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlplatform"'}
_AUTHORIZATION = b"authorization"
_X_API_KEY = b"x-api-key"

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


def _refusal(verdict: Verdict, message: str) -> ApiError:
    if verdict is Verdict.FORBIDDEN:
        return ApiError(grpc.StatusCode.PERMISSION_DENIED, message)
    return _unauthenticated(message)


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    authorization = x_api_key = None
    for name, value in scope["headers"]:
        if name == _AUTHORIZATION:
            authorization = value.decode("latin-1")
        elif name == _X_API_KEY:
            x_api_key = value.decode("latin-1")
    return authorization, x_api_key


class ApiKeyMiddleware:
    """Refuses requests whose key is missing, unknown, or lacks the route's scope."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = scope_for(scope["path"])
        if needed is not None:
            verdict = self.keys.check(presented_key(*_headers(scope)), needed)
            if verdict is not Verdict.ALLOWED:
                refusal = _refusal(verdict, refusal_message(verdict, needed))
                response = error_response(refusal, request_id_of(scope), scope["path"])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def api_key_of(request: Request) -> str | None:
    """The caller's key, to forward to the predictor (None: the caller sent none).

    The middleware has checked it when keys are configured here; without keys here the
    predictor is the one that checks. Raises UNAUTHENTICATED (401) when the key could not
    travel as gRPC metadata.
    """
    headers = request.headers
    key = presented_key(headers.get("authorization"), headers.get("x-api-key"))
    if key is not None and not is_forwardable(key):
        raise _unauthenticated(MALFORMED_KEY)
    return key
