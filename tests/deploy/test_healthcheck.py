"""The images' HEALTHCHECK script, run as Docker runs it, against real servers on loopback:
an HTTP server, a gRPC health service and the RabbitMQ broker the tests use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "images" / "healthcheck.py"


def run_check(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **environment},
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_health() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


def test_http_is_healthy_only_on_a_2xx(http_port: int) -> None:
    assert run_check("http", f"http://127.0.0.1:{http_port}/healthz").returncode == 0
    failed = run_check("http", f"http://127.0.0.1:{http_port}/readyz")
    assert failed.returncode == 1
    assert "unhealthy" in failed.stdout and "503" in failed.stdout


def test_grpc_is_healthy_only_while_serving(
    grpc_health: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = grpc_health
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_check("grpc", f"127.0.0.1:{port}").returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    failed = run_check("grpc", f"127.0.0.1:{port}")
    assert failed.returncode == 1
    assert "NOT_SERVING" in failed.stdout


def test_broker_check_follows_mlp_broker_url() -> None:
    reachable = run_check("broker", MLP_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/%2F")
    assert reachable.returncode == 0, reachable.stdout
    gone = run_check("broker", MLP_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    assert gone.returncode == 1
    assert "unhealthy" in gone.stdout


def test_unknown_usage_prints_the_usage() -> None:
    wrong = run_check("ftp", "somewhere")
    assert wrong.returncode == 2
    assert "python healthcheck.py http URL" in wrong.stdout
