"""The local stack: MLflow server, trainers, inferers, predictor, monitoring exporter and
gateway as child processes.

Started in dependency order, each checked ready before the next starts; stopped in reverse.
Each service writes its log to `<data_dir>/logs/<service>.log` (`mlp logs` reads them); the
caller may also have them echoed. It uses the RabbitMQ at MLP_BROKER_URL (the one thing it
does not start).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pika
import pika.exceptions

from mlplatform.client import messaging
from mlplatform.stack.processes import ManagedProcess, ProcessFailed, ServiceSpec
from mlplatform.stack.readiness import grpc_health_answers, http_ok, log_says

#: Printed when no broker answers.
START_RABBITMQ_HINT = (
    "start one with `rabbitmq-server -detached` (Debian/Ubuntu: apt-get install rabbitmq-server), "
    "or `docker run -d -p 5672:5672 rabbitmq:3-management`, or point MLP_BROKER_URL at yours"
)


class BrokerUnavailable(RuntimeError):
    """No RabbitMQ answers at the configured URL."""


@dataclass
class StackConfig:
    """Where the local stack keeps its data and listens. Ports 0 are not allowed here:
    the services must know each other's addresses before they start."""

    data_dir: Path
    broker_url: str = messaging.DEFAULT_BROKER_URL
    model: str = "credit_fraud@production"
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    predictor_port: int = 50051
    #: The first of a block of consecutive metrics ports, in this order: predictor, gateway,
    #: monitoring exporter, each trainer, each inferer. From 9095 with one worker each, every
    #: service gets the port it defaults to (9095...9097) or compose gives it (9098, 9099).
    metrics_port: int = 9095
    gateway_port: int = 8000
    trainers: int = 1
    inferers: int = 1
    #: Run `mlp monitor exporter` (the monitoring gauges), refreshed every `monitor_interval` s.
    with_exporter: bool = True
    monitor_interval: float = 60.0
    #: How often the predictor looks for a moved alias.
    reload_interval: float = 2.0
    #: MLflow's backend store; default a SQLite file in `data_dir`.
    mlflow_backend_uri: str | None = None
    #: More environment for every service (queue names in tests, ...).
    environment: dict[str, str] = field(default_factory=dict)
    with_gateway: bool = True

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def store_uri(self) -> str:
        return f"sqlite:///{self.data_dir.resolve() / 'store.db'}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def predictor_address(self) -> str:
        return f"{self.host}:{self.predictor_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Each service's metrics port, by its name in the stack."""
        names = ["predictor", "gateway", "exporter"]
        names += _numbered("trainer", self.trainers) + _numbered("inferer", self.inferers)
        return {name: self.metrics_port + offset for offset, name in enumerate(names)}

    def metrics_url(self, service: str) -> str:
        return f"http://{self.host}:{self.metrics_ports[service]}/metrics"


def _numbered(role: str, count: int) -> list[str]:
    """`trainer`, or `trainer1`, `trainer2`... when there are several."""
    return [role] if count == 1 else [f"{role}{index + 1}" for index in range(count)]


def _mlp(*args: str) -> list[str]:
    """The `mlp` command of this very environment."""
    return [sys.executable, "-m", "mlplatform.cli", *args]


def service_specs(config: StackConfig) -> list[ServiceSpec]:
    """Every service of the stack, in start order."""
    data_dir = config.data_dir.resolve()
    shared = {
        "MLFLOW_TRACKING_URI": config.tracking_uri,
        "MLP_STORE_URI": config.store_uri,
        "MLP_BROKER_URL": config.broker_url,
        "MLP_DATA_DIR": str(data_dir),
        # MLflow's client retries a refused connection for minutes by default; services
        # here start after the server answers, so fail fast and let our retries decide.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        **config.environment,
    }
    backend = config.mlflow_backend_uri or f"sqlite:///{data_dir / 'mlflow.db'}"
    specs = [
        ServiceSpec(
            name="mlflow",
            argv=[
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", backend,
                "--artifacts-destination", (data_dir / "mlartifacts").as_uri(),
                "--serve-artifacts",
                "--host", config.host,
                "--port", str(config.mlflow_port),
                "--workers", "1",
            ],
            ready=http_ok(f"{config.tracking_uri}/health"),
            environment=shared,
            banner=f"MLflow UI          {config.tracking_uri}",
        ),
    ]  # fmt: skip
    ports = config.metrics_ports
    for role, count in (("trainer", config.trainers), ("inferer", config.inferers)):
        for name in _numbered(role, count):
            argv = _mlp(role, "--metrics-host", config.host, "--metrics-port", str(ports[name]))
            specs.append(
                ServiceSpec(name=name, argv=argv, ready=log_says(" consuming "), environment=shared)
            )
    predictor_argv = _mlp(
        "predictor",
        "--model", config.model,
        "--host", config.host,
        "--port", str(config.predictor_port),
        "--metrics-port", str(ports["predictor"]),
        "--reload-interval", str(config.reload_interval),
    )  # fmt: skip
    specs.append(
        ServiceSpec(
            name="predictor",
            argv=predictor_argv,
            ready=grpc_health_answers(config.predictor_address),
            environment=shared,
            banner=f"gRPC predictor     {config.predictor_address} "
            f"(metrics {config.metrics_url('predictor')})",
        )
    )
    exporter_url = f"http://{config.host}:{ports['exporter']}"
    if config.with_exporter:
        exporter_argv = _mlp(
            "monitor", "exporter",
            "--metrics-host", config.host,
            "--metrics-port", str(ports["exporter"]),
            "--monitor-interval", str(config.monitor_interval),
        )  # fmt: skip
        specs.append(
            ServiceSpec(
                name="exporter",
                argv=exporter_argv,
                ready=http_ok(f"{exporter_url}/metrics"),
                environment=shared,
                banner=f"monitoring gauges  {exporter_url}/metrics",
            )
        )
    if config.with_gateway:
        gateway_argv = _mlp(
            "gateway",
            "--host", config.host,
            "--port", str(config.gateway_port),
            "--predictor", config.predictor_address,
            "--metrics-host", config.host,
            "--metrics-port", str(ports["gateway"]),
        )  # fmt: skip
        if config.with_exporter:  # the gateway's /monitor pages read the exporter
            gateway_argv += ["--monitor-url", exporter_url]
        specs.append(
            ServiceSpec(
                name="gateway",
                argv=gateway_argv,
                ready=http_ok(f"{config.gateway_url}/healthz"),
                environment=shared,
                banner=f"REST gateway       {config.gateway_url}  "
                f"(docs: {config.gateway_url}/docs)",
            )
        )
    return specs


def check_broker(broker_url: str) -> None:
    """Raises BrokerUnavailable, with how to start one, when no RabbitMQ answers."""
    parameters = messaging.connection_parameters(broker_url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 3
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.AMQPError as error:
        raise BrokerUnavailable(
            f"no RabbitMQ answers at {broker_url} ({type(error).__name__}); {START_RABBITMQ_HINT}"
        ) from None


@contextmanager
def local_stack(config: StackConfig, sink: TextIO | None = None) -> Iterator[list[ManagedProcess]]:
    """Runs the stack for the duration of the block; every child is stopped on exit.

    Each service's log goes to its file under `config.log_dir` (started afresh) and, when
    `sink` is given, to `sink` too, each line prefixed with the service's name."""
    check_broker(config.broker_url)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    started: list[ManagedProcess] = []
    try:
        for spec in service_specs(config):
            log_path = config.log_dir / f"{spec.name}.log"
            log_path.unlink(missing_ok=True)
            process = ManagedProcess(spec, sink, log_path=log_path)
            started.append(process)
            process.wait_ready()
        yield started
    finally:
        for process in reversed(started):
            process.stop()


__all__ = ["BrokerUnavailable", "ProcessFailed", "StackConfig", "local_stack", "service_specs"]
