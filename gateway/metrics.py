"""Prometheus metrics of the gateway: requests by route, method and status, their latency.

Served on a port of their own (`--metrics-port`, default 9096), as the predictor's are: the
REST port is the public one, with API keys on every route, and a scrape must not need a key
or show up among the requests it counts. Routes are labelled by their template
(`/models/{name}`), never by the path asked for, so the series stay few; a path no route
matches is `unmatched`.

Pure ASGI middleware, like the others in middleware.py: it runs on every request.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
UNMATCHED = "unmatched"


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter(
            "mlp_gateway_requests",
            "HTTP requests answered, by route template, method and HTTP status.",
            labels,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "mlp_gateway_request_latency_seconds",
            "Time from a request's arrival at the gateway to the end of its answer.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlp_gateway_requests_in_flight",
            "HTTP requests being handled now.",
            registry=self.registry,
        )
        # Each label set's children, found once (as the predictor's metrics keep them).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.request_latency.labels(*labels))
            self._children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request, whatever answered it (a route, a refused key, the
    body limit, an error handler)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.in_flight.dec()
            # The router puts the matched route into the scope the middleware shares.
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.answered(route, scope["method"], status, time.perf_counter() - started)
