"""Runs the gateway app under uvicorn.

uvicorn's "auto" choices pick uvloop and httptools when they are installed (they are
dependencies here): measured on the single-row benchmark, they take about a third off the
gateway's own share of the latency. Access logging is off by default for the same reason
(one log line per request costs more than the routing); `--access-log` turns it on.
"""

from __future__ import annotations

import logging

import uvicorn

from mlplatform.common.metrics_endpoint import serve_metrics
from mlplatform.gateway.app import create_app
from mlplatform.gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


def serve(settings: GatewaySettings, access_log: bool = False, log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT; uvicorn finishes in-flight requests before exiting.
    Raises MetricsPortTaken when the metrics port is in use."""
    app = create_app(settings)
    metrics_endpoint = serve_metrics(
        app.state.metrics.registry, settings.metrics_host, settings.metrics_port
    )
    logger.info(
        "gateway on %s://%s:%d forwarding to the predictor at %s%s (auth %s)",
        "https" if settings.tls_cert else "http",
        settings.host,
        settings.port,
        settings.predictor,
        " over TLS" if settings.predictor_tls_files else "",
        "on" if app.state.api_keys.enabled else "off",
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        # A client's keep-alive connection stays open between requests (benchmarks, SDKs).
        timeout_keep_alive=30,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    if metrics_endpoint is not None:
        metrics_endpoint.stop()
