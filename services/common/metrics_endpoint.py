"""What every service's Prometheus metrics share: the endpoint on a port of its own, and what
every queue worker counts (dead letters, the backlog of its queue).

The conventions are the predictor's (services/predictor/metrics.py): each service owns its
registry (not prometheus_client's global one, so several can run in one process), serves it
on its own port (scrapes stay off the service's port, and the endpoint can stay private), and
names its metrics `mlp_<service>_...`. `--metrics-port 0` picks a free port, `-1` serves none.
"""

from __future__ import annotations

import errno
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

#: `--metrics-port` value that turns the endpoint off.
METRICS_OFF = -1


class MetricsPortTaken(RuntimeError):
    """The metrics port is in use: the message names it and what to do."""


class MetricsEndpoint:
    """/metrics of one registry over HTTP on a background thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise MetricsPortTaken(
                f"metrics port {port} on {host} is taken; choose another with --metrics-port "
                "(0 picks a free one, -1 serves no metrics)"
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsEndpoint | None:
    """Serves `registry` unless `port` is METRICS_OFF; logs where. Raises MetricsPortTaken."""
    if port == METRICS_OFF:
        return None
    endpoint = MetricsEndpoint(registry, host, port)
    logger.info("metrics on %s", endpoint.url)
    return endpoint


class QueueMetrics:
    """What a queue worker counts whatever its job: messages it dead-lettered, and how many
    wait in its queue (RabbitMQ's count, read every few seconds)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter(
            "mlp_dead_letters",
            "Messages published to a dead-letter queue, by the work queue they came from.",
            ("queue",),
            registry=registry,
        )
        self.messages_ready = Gauge(
            "mlp_queue_messages_ready",
            "Messages waiting in the work queue, as the broker last reported to this worker.",
            ("queue",),
            registry=registry,
        )

    def dead_lettered(self, queue: str) -> None:
        self.dead_letters.labels(queue).inc()

    def backlog(self, queue: str, messages: int) -> None:
        self.messages_ready.labels(queue).set(messages)


class WorkerMetricsSettings(BaseSettings):
    """A queue worker's metrics endpoint. Off unless a port is given: workers scale by
    starting more of them, often on one host, where one fixed default port would refuse the
    second (compose, Kubernetes and `mlp up` give each its port)."""

    model_config = SettingsConfigDict(extra="ignore")

    metrics_host: str = Field(default="0.0.0.0", description="Interface of the metrics endpoint.")
    metrics_port: int = Field(
        default=METRICS_OFF,
        ge=-1,
        le=65535,
        description="Prometheus port; 0 picks one, -1 (the default) serves none.",
    )


class TrainerMetricsSettings(WorkerMetricsSettings):
    """`mlp trainer`'s metrics endpoint: MLP_TRAINER_METRICS_HOST, MLP_TRAINER_METRICS_PORT."""

    model_config = SettingsConfigDict(env_prefix="MLP_TRAINER_", extra="ignore")


class InfererMetricsSettings(WorkerMetricsSettings):
    """`mlp inferer`'s metrics endpoint: MLP_INFERER_METRICS_HOST, MLP_INFERER_METRICS_PORT."""

    model_config = SettingsConfigDict(env_prefix="MLP_INFERER_", extra="ignore")
