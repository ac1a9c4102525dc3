"""Runs real predictors in-process for tests: one background event loop thread for the whole
session (grpc.aio servers live on it), plus polling helpers with deadlines instead of sleeps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlplatform.client.tls import TlsFiles, secure_channel
from mlplatform.common.api_keys import ApiKeys
from mlplatform.common.store import Store
from mlplatform.predictor.server import RunningPredictor, start_predictor
from mlplatform.predictor.settings import PredictorSettings

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio loop on a daemon thread; `run` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def wait_until(
    condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if outcome:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def predictor_settings(model: str, **overrides: Any) -> PredictorSettings:
    """Settings for a test predictor: loopback, free ports, fast reloads and log flushes."""
    values: dict[str, Any] = {
        "model": model,
        "host": "127.0.0.1",
        "port": 0,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "reload_interval_s": 0.2,
        "log_flush_interval_s": 0.05,
        "shutdown_grace_s": 5.0,
    }
    values.update(overrides)
    return PredictorSettings(**values)


class PredictorUnderTest:
    """A started predictor plus a channel to it; stop() shuts both down."""

    def __init__(
        self, loop: BackgroundLoop, running: RunningPredictor, tls: TlsFiles | None = None
    ) -> None:
        self.loop = loop
        self.running = running
        self.address = f"127.0.0.1:{running.port}"
        self.channel = (
            grpc.insecure_channel(self.address)
            if tls is None
            else secure_channel(self.address, tls)
        )

    def health(self, service: str = "") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        wait_until(
            lambda: (
                self.running.slot.current is not None
                and self.health() == health_pb2.HealthCheckResponse.SERVING
            ),
            timeout,
            what=f"{self.running.slot.reference} to be served",
        )

    def stop(self) -> None:
        self.channel.close()
        self.loop.run(self.running.stop())


def start_test_predictor(
    loop: BackgroundLoop,
    model: str,
    tracking_uri: str,
    store: Store | None = None,
    store_uri: str | None = None,
    wait: bool = True,
    api_keys: ApiKeys | None = None,
    client_tls: TlsFiles | None = None,
    **overrides: Any,
) -> PredictorUnderTest:
    """`client_tls`: how the harness's own channel (health checks) reaches a TLS port."""
    settings = predictor_settings(model, **overrides)
    running = loop.run(
        start_predictor(settings, tracking_uri, store_uri=store_uri, store=store, api_keys=api_keys)
    )
    predictor = PredictorUnderTest(loop, running, client_tls)
    if wait:
        predictor.wait_until_serving()
    return predictor
