"""`mlp up` as a user runs it: the whole stack comes up and says where it listens and where
the logs are, and nothing else; each service logs to its own file (JSON lines here, as
MLP_LOG_FORMAT asks), which `mlp logs` shows; one SIGTERM stops every child, each with no
traceback; with no broker it says how to start one. `--follow` echoes the logs, prefixed."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from mlplatform.stack.processes import ManagedProcess, ServiceSpec
from tests.support.ports import free_ports, stack_ports
from tests.support.prometheus_scrape import names, scrape, value
from tests.support.queues import BROKER_URL
from tests.trainer.workers import wait_until

pytestmark = pytest.mark.slow


def _mlp() -> str:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    return mlp


def test_up_starts_everything_and_sigterm_stops_it_all(tmp_path: Path) -> None:
    mlflow_port, predictor_port, metrics_port, gateway_port = stack_ports()
    suffix = uuid.uuid4().hex[:8]
    environment = {
        **os.environ,
        "MLP_BROKER_URL": BROKER_URL,
        "MLP_PIPELINES_QUEUE": f"up.{suffix}.pipelines",
        "MLP_BATCHES_QUEUE": f"up.{suffix}.batches",
        "MLP_LOG_FORMAT": "json",
    }
    command = [
        _mlp(), "up", "--data-dir", str(tmp_path / "stack"),
        "--mlflow-port", str(mlflow_port), "--predictor-port", str(predictor_port),
        "--metrics-port", str(metrics_port), "--gateway-port", str(gateway_port),
    ]  # fmt: skip
    stack = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(iter(stack.stdout.readline, "")),
        daemon=True,  # type: ignore[union-attr]
    )
    reader.start()
    try:
        wait_until(lambda: any("the stack is up" in line for line in output), 240, "mlp up")
        children = psutil.Process(stack.pid).children(recursive=True)
        assert len(children) >= 5
        text = "".join(output)
        assert f"http://127.0.0.1:{mlflow_port}" in text
        assert f"127.0.0.1:{predictor_port}" in text
        assert f"http://127.0.0.1:{gateway_port}/docs" in text
        # The monitoring exporter runs, and every service serves /metrics on its port.
        exporter_url = f"http://127.0.0.1:{metrics_port + 2}/metrics"
        assert f"monitoring gauges  {exporter_url}" in text
        expected = {
            metrics_port: "mlp_predictor_requests_in_flight",
            metrics_port + 1: "mlp_gateway_requests_total",  # the stack's /healthz checks
            metrics_port + 3: "mlp_queue_messages_ready",  # the trainer's
            metrics_port + 4: "mlp_queue_messages_ready",  # the inferer's
        }
        for port, name in expected.items():
            assert name in names(scrape(f"http://127.0.0.1:{port}/metrics")), (port, name)
        refreshed = wait_until(
            lambda: value(scrape(exporter_url), "mlp_monitor_last_refresh_timestamp_seconds"),
            60,
            "the exporter's first refresh",
        )
        assert refreshed > 0
        log_dir = tmp_path / "stack" / "logs"
        assert f"{log_dir}/" in text
        assert len(output) <= 12, f"mlp up printed more than where things are:\n{text}"
        services = ("mlflow", "trainer", "inferer", "predictor", "exporter", "gateway")
        assert sorted(path.stem for path in log_dir.glob("*.log")) == sorted(services)
        shown = _mlp_logs(environment, tmp_path, "predictor")
        assert "predictor for credit_fraud@production listening" in shown
        # No model is registered: the predictor says so once, not at every 2 s poll.
        wait_until(
            lambda: "not (re)loaded" in _mlp_logs(environment, tmp_path, "predictor"),
            60,
            "the predictor to say it has no model",
        )
        time.sleep(5)  # two more polls
        assert _mlp_logs(environment, tmp_path, "predictor").count("not (re)loaded") == 1
        every = _mlp_logs(environment, tmp_path)
        for name in services:
            assert f"{name:<9} | " in every, f"mlp logs shows nothing of {name}"
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=120) == 0
    finally:
        if stack.poll() is None:
            stack.kill()
    reader.join(timeout=10)
    assert not [child for child in children if child.is_running() and child.status() != "zombie"]
    with socket.socket() as probe:  # nothing listens on the gateway's port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        probe.bind(("127.0.0.1", gateway_port))
    for name in ("trainer", "inferer", "predictor", "gateway"):
        log = (log_dir / f"{name}.log").read_text()
        assert "Traceback" not in log, f"{name}:\n{log}"
        records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
        assert {record["service"] for record in records} == {name}
        assert not [record for record in records if record["level"] == "ERROR"], log


def _mlp_logs(environment: dict[str, str], tmp_path: Path, *service: str) -> str:
    result = subprocess.run(
        [_mlp(), "logs", *service, "--lines", "0", "--data-dir", str(tmp_path / "stack")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_follow_echoes_each_line_prefixed_and_keeps_the_file(tmp_path: Path) -> None:
    """What `mlp up --follow` does with each service's output (a stand-in child here)."""
    script = "import sys; print('first'); print('second', file=sys.stderr)"
    sink = io.StringIO()
    child = ManagedProcess(
        ServiceSpec(name="echo", argv=[sys.executable, "-c", script], ready=lambda _: True),
        sink,
        log_path=tmp_path / "echo.log",
    )
    assert child.process.wait(30) == 0
    child.stop()  # joins the reader: every line is written
    assert sorted(sink.getvalue().splitlines()) == ["echo      | first", "echo      | second"]
    assert sorted((tmp_path / "echo.log").read_text().splitlines()) == ["first", "second"]


def test_up_without_a_broker_says_how_to_start_one(tmp_path: Path) -> None:
    [closed_port] = free_ports(1)
    result = subprocess.run(
        [_mlp(), "up", "--data-dir", str(tmp_path)],
        env={**os.environ, "MLP_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"no RabbitMQ answers at amqp://guest:guest@127.0.0.1:{closed_port}" in result.stderr
    assert "rabbitmq-server -detached" in result.stderr
