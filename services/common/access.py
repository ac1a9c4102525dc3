"""Which scope each endpoint needs: the one table for the predictor's RPCs and the gateway's
routes alike.

An endpoint is a gRPC method (`/package.Service/Method`) or a REST path (`/predict`). An entry
ending in `/` covers everything under it (a gRPC service, a REST subtree); the longest entry
that matches wins. `OPEN` endpoints need no key (health, readiness, docs, reflection: probes and
tools call them without credentials, and none of them exposes a model or data).

Anything the table does not name needs `admin`: a route or RPC added later is closed to every
ordinary key until it is mapped here on purpose.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache


class Scope(StrEnum):
    """What a key may do. `admin` includes every other scope."""

    PREDICT = "predict"
    OUTCOMES = "outcomes"
    MONITOR = "monitor"
    ADMIN = "admin"


#: Endpoints callable without a key.
OPEN = None

ENDPOINT_SCOPES: dict[str, Scope | None] = {
    # gRPC: health checking and reflection (grpc_health_probe, grpcurl list).
    "/grpc.health.v1.Health/": OPEN,
    "/grpc.reflection.v1alpha.ServerReflection/": OPEN,
    "/grpc.reflection.v1.ServerReflection/": OPEN,
    # gRPC: predictions and the description of the served model.
    "/mlplatform.v1.Predictor/Predict": Scope.PREDICT,
    "/mlplatform.v1.Predictor/GetModelInfo": Scope.PREDICT,
    "/inference.GRPCInferenceService/": Scope.PREDICT,
    # gRPC: true labels of logged predictions.
    "/mlplatform.v1.Predictor/RecordOutcomes": Scope.OUTCOMES,
    # REST: liveness, readiness, version and the API docs.
    "/healthz": OPEN,
    "/readyz": OPEN,
    "/ping": OPEN,
    "/version": OPEN,
    "/docs": OPEN,
    "/docs/oauth2-redirect": OPEN,
    "/docs/assets/": OPEN,
    "/redoc": OPEN,
    "/openapi.json": OPEN,
    "/v2/health/": OPEN,
    # REST: predictions (native, MLflow scoring protocol, KServe V2) and model descriptions.
    "/predict": Scope.PREDICT,
    "/invocations": Scope.PREDICT,
    "/models/": Scope.PREDICT,
    "/v2": Scope.PREDICT,
    "/v2/": Scope.PREDICT,
    # REST: outcomes and the monitoring pages.
    "/outcomes": Scope.OUTCOMES,
    "/outcomes/": Scope.OUTCOMES,
    "/monitor": Scope.MONITOR,
    "/monitor/": Scope.MONITOR,
}

_SUBTREES = sorted((entry for entry in ENDPOINT_SCOPES if entry.endswith("/")), key=len)


@lru_cache(maxsize=4096)
def scope_for(endpoint: str) -> Scope | None:
    """The scope `endpoint` needs; None when it is open; `admin` when the table omits it."""
    if endpoint in ENDPOINT_SCOPES:
        return ENDPOINT_SCOPES[endpoint]
    for subtree in reversed(_SUBTREES):  # longest first
        if endpoint.startswith(subtree):
            return ENDPOINT_SCOPES[subtree]
    return Scope.ADMIN


def grants(scopes: frozenset[Scope], needed: Scope) -> bool:
    """True when a key with `scopes` may call an endpoint that needs `needed`."""
    return needed in scopes or Scope.ADMIN in scopes
