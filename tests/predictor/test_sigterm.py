"""SIGTERM on `mlp predictor` (a real subprocess): health goes NOT_SERVING, calls are still
served through the drain delay, calls accepted before it ends finish (none comes back
CANCELLED), later ones are refused UNAVAILABLE, every OK answer is in the prediction log, and
the process exits 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from predictor_harness import wait_until
from predictor_registry import Registry

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.store import open_store
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


@dataclass(frozen=True)
class Answer:
    request_id: str
    code: grpc.StatusCode
    details: str
    sent_at: float
    answered_at: float


def call_until_refused(port: int, caller: int, answers: list[Answer], give_up_at: float) -> None:
    """One client: Predict in a loop (each call a 50 ms model call) until a call is refused."""
    slow = dataframe_to_frame(pd.DataFrame({"x": [-0.05]}))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = predictor_pb2_grpc.PredictorStub(channel)
        for number in range(10_000):
            if time.monotonic() > give_up_at:
                return
            request_id = f"caller{caller}-{number}"
            sent_at = time.monotonic()
            try:
                stub.Predict(
                    predictor_pb2.PredictRequest(inputs=slow, request_id=request_id), timeout=30
                )
            except grpc.RpcError as error:
                details = error.details() or ""
                answers.append(Answer(request_id, error.code(), details, sent_at, time.monotonic()))
                return
            answers.append(Answer(request_id, grpc.StatusCode.OK, "", sent_at, time.monotonic()))


def test_sigterm_under_concurrent_callers_cancels_no_accepted_call(
    registry: Registry, tmp_path: Path
) -> None:
    """8 callers in a loop, SIGTERM: calls are served through the drain delay, none comes back
    CANCELLED, every call after it is UNAVAILABLE, and every OK answer is logged."""
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLP_STORE_URI": store_uri,
        "MLP_PREDICTOR_METRICS_HOST": "127.0.0.1",
    }
    drain_delay = 1.0
    arguments = ["--model", "identity", "--host", "127.0.0.1", "--port", "0"]
    arguments += ["--metrics-port", "0", "--drain-delay", str(drain_delay)]
    arguments += ["--shutdown-grace", "20"]
    process = subprocess.Popen(
        [mlp, "predictor", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = LogReader(process)
    callers: list[threading.Thread] = []
    answers: list[Answer] = []
    try:
        listening = wait_until(lambda: log.find(LISTENING), 60, 0.1, "the predictor to listen")
        port = int(listening.group(1))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_until(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    == health_pb2.HealthCheckResponse.SERVING
                ),
                60,
                0.1,
                "SERVING",
            )
        give_up_at = time.monotonic() + 60
        callers = [
            threading.Thread(
                target=call_until_refused, args=(port, caller, answers, give_up_at), daemon=True
            )
            for caller in range(8)
        ]
        for caller in callers:
            caller.start()
        wait_until(lambda: len(answers) >= 40, 30, 0.02, "the callers to get going")
        signalled_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        for caller in callers:
            caller.join(45)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert not any(caller.is_alive() for caller in callers), "a caller never got refused"
    stderr = "".join(log.lines)
    codes = {answer.code for answer in answers}
    assert grpc.StatusCode.CANCELLED not in codes, stderr[-3000:]
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, answers
    refused = [answer for answer in answers if answer.code == grpc.StatusCode.UNAVAILABLE]
    assert len(refused) == 8, "each caller stops at its first refusal"
    # Calls are served through the drain delay: refusals start only once it is over...
    assert min(answer.answered_at for answer in refused) >= signalled_at + drain_delay
    served_in_drain = [
        answer
        for answer in answers
        if answer.code == grpc.StatusCode.OK
        and signalled_at + 0.2 < answer.sent_at < signalled_at + drain_delay - 0.2
    ]
    assert served_in_drain, "no call was served during the drain delay"
    # ...by the handlers, before the port closes, each saying why.
    for answer in refused:
        assert answer.details == "the predictor is shutting down; retry on another replica"
    # Once the process has exited, a call cannot connect: gRPC reports that as UNAVAILABLE too.
    late = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]})))
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as after_exit,
    ):
        predictor_pb2_grpc.PredictorStub(channel).Predict(late, timeout=5)
    assert after_exit.value.code() == grpc.StatusCode.UNAVAILABLE
    ok_ids = {answer.request_id for answer in answers if answer.code == grpc.StatusCode.OK}
    with open_store(store_uri) as store:
        logged = {
            record.request_id
            for record in store.query_predictions(model_name="identity", limit=100_000)
        }
    assert ok_ids - logged == set(), "OK answers missing from the prediction log"
    assert any("predictor stopped" in line for line in log.lines), stderr[-3000:]
