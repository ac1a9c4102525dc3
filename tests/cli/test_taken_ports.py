"""A service started on a port another process holds stops at once with one line naming the
port, no traceback: the predictor's gRPC port (even when the holder is another gRPC server
that allows SO_REUSEPORT, which would otherwise share the port silently), the predictor's
metrics port, and the gateway's port. Real `mlp` subprocesses, real listening sockets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest


def _mlp(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    environment = {
        **os.environ,
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    return subprocess.run(
        [mlp, *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _one_line_naming(result: subprocess.CompletedProcess[str], command: str, what: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"mlp {command}:")]
    assert len(errors) == 1, result.stderr
    assert what in errors[0], errors[0]


def test_predictor_on_a_port_another_grpc_server_holds(tmp_path: Path) -> None:
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # SO_REUSEPORT by default
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        result = _mlp(
            "predictor", "--model", "anything", "--host", "127.0.0.1", "--port", str(port),
            "--metrics-port", "-1", tmp_path=tmp_path,
        )  # fmt: skip
    finally:
        other.stop(None)
    _one_line_naming(result, "predictor", f"gRPC port 127.0.0.1:{port}")


def test_predictor_on_a_taken_metrics_port(held_port: int, tmp_path: Path) -> None:
    result = _mlp(
        "predictor", "--model", "anything", "--host", "127.0.0.1", "--port", "0",
        "--metrics-port", str(held_port), tmp_path=tmp_path,
    )  # fmt: skip
    _one_line_naming(result, "predictor", f"metrics port {held_port} on 0.0.0.0 is taken")


def test_gateway_on_a_taken_port(held_port: int, tmp_path: Path) -> None:
    result = _mlp("gateway", "--host", "127.0.0.1", "--port", str(held_port), tmp_path=tmp_path)
    _one_line_naming(result, "gateway", f"127.0.0.1:{held_port}")
