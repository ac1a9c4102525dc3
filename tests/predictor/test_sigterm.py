"""SIGTERM on `mlp predictor` (a real subprocess): health goes NOT_SERVING, the request in
flight finishes, then the process exits 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from predictor_harness import wait_until
from predictor_registry import Registry

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(metrics on (\d+)\)")


class LogReader:
    """Collects a subprocess's stderr lines on a thread (so the pipe never fills)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line)

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next((m for line in list(self.lines) if (m := pattern.search(line))), None)


def in_flight(metrics_port: int) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(r"^mlp_predictor_requests_in_flight (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_sigterm_drains_then_exits(registry: Registry, tmp_path: Path) -> None:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLP_PREDICTOR_METRICS_HOST": "127.0.0.1",
    }
    arguments = ["--model", "identity", "--host", "127.0.0.1", "--port", "0"]
    arguments += ["--metrics-port", "0", "--drain-delay", "1.0", "--shutdown-grace", "20"]
    process = subprocess.Popen(
        [mlp, "predictor", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = LogReader(process)
    try:
        listening = wait_until(lambda: log.find(LISTENING), 60, 0.1, "the predictor to listen")
        port, metrics_port = int(listening.group(1)), int(listening.group(2))
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)

        def status() -> int:
            return health.Check(health_pb2.HealthCheckRequest(), timeout=5).status

        wait_until(lambda: status() == health_pb2.HealthCheckResponse.SERVING, 60, 0.1, "SERVING")
        slow = predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(pd.DataFrame({"x": [-2.0]}))  # the model sleeps 2 s
        )
        answers: list[object] = []
        caller = threading.Thread(
            target=lambda: answers.append(
                predictor_pb2_grpc.PredictorStub(channel).Predict(slow, timeout=30)
            ),
            daemon=True,
        )
        caller.start()
        wait_until(lambda: in_flight(metrics_port) >= 1, 30, 0.05, "the slow request")

        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING,
            10,
            0.05,
            "NOT_SERVING after SIGTERM",
        )
        caller.join(30)
        assert len(answers) == 1, "the request in flight at SIGTERM did not finish"
        assert answers[0].predictions.double_values.values[0] == pytest.approx(-2.0)
        assert process.wait(timeout=30) == 0
        channel.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert any("predictor stopped" in line for line in log.lines), "".join(log.lines[-20:])
