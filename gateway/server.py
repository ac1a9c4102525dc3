"""Runs the gateway app under uvicorn.

uvicorn's "auto" choices pick uvloop and httptools when they are installed (they are
dependencies here): measured on the single-row benchmark, they take about a third off the
gateway's own share of the latency. Access logging is off by default for the same reason
(one log line per request costs more than the routing); `--access-log` turns it on.
"""

from __future__ import annotations

import logging
import socket

import uvicorn

from mlplatform.common.metrics_endpoint import serve_metrics
from mlplatform.common.tracing import instrument_fastapi, instrument_grpc_client, tracing_enabled
from mlplatform.gateway.app import create_app
from mlplatform.gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


class PortTakenError(OSError):
    """The gateway's port is held by another process."""


def check_port_free(host: str, port: int) -> None:
    """PortTakenError, naming the address, when something already listens there (uvicorn
    would log a bind error among its start-up lines instead)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortTakenError(
                f"cannot listen on {host}:{port}: {error.strerror or error} (--port: another one)"
            ) from None


def serve(settings: GatewaySettings, access_log: bool = False, log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT; uvicorn finishes in-flight requests before exiting.
    Raises PortTakenError or MetricsPortTaken when the port or the metrics port is in use."""
    check_port_free(settings.host, settings.port)
    app = create_app(settings)
    metrics_endpoint = serve_metrics(
        app.state.metrics.registry, settings.metrics_host, settings.metrics_port
    )
    if tracing_enabled():
        # A SERVER span per request, and its context sent on to the predictor.
        instrument_fastapi(app)
        instrument_grpc_client()
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
        # uvicorn's own start and stop lines (eight of them) say what ours before and after
        # say (the app logs its stop): its warnings and errors only.
        log_level=max(
            logging.getLevelNamesMapping().get(log_level.upper(), logging.INFO), logging.WARNING
        ),
        # Logging is the service's own (mlplatform.common.log_setup): uvicorn's records go
        # through the same handler, in the same format.
        log_config=None,
        access_log=access_log,
        server_header=False,
        # A client's keep-alive connection stays open between requests (benchmarks, SDKs).
        timeout_keep_alive=30,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    if metrics_endpoint is not None:
        metrics_endpoint.stop()
