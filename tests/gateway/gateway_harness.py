"""Runs real gateways for tests: `python -m mlplatform.cli gateway` in its own process (as the
local stack starts it), on a free loopback port, ready once `GET /healthz` answers 200."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayUnderTest:
    """A running gateway process: its URL, an HTTP client, and its log."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        url: str,
        log_path: Path,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self.client = httpx.Client(base_url=url, timeout=30, verify=verify)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_gateway(
    predictor_address: str,
    log_dir: Path,
    *options: str,
    environment: dict[str, str] | None = None,
    https_ca: Path | None = None,
) -> Iterator[GatewayUnderTest]:
    """A gateway forwarding to `predictor_address`, stopped (SIGTERM) when the block ends.

    `https_ca`: the gateway serves HTTPS (its --tls-cert among `options`); trust this CA."""
    port = free_port()
    argv = [sys.executable, "-m", "mlplatform.cli", "gateway", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--predictor", predictor_address, *options]
    if "--metrics-port" not in options:  # the default port would clash between gateways
        argv += ["--metrics-port", "-1"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLP_")}
    env.update(environment or {})
    log_path = log_dir / f"gateway-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    scheme = "http" if https_ca is None else "https"
    verify = True if https_ca is None else ssl.create_default_context(cafile=str(https_ca))
    gateway = GatewayUnderTest(process, f"{scheme}://127.0.0.1:{port}", log_path, verify)
    try:
        _wait_healthy(gateway)
        yield gateway
    finally:
        gateway.client.close()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_healthy(gateway: GatewayUnderTest, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if gateway.process.poll() is not None:
            raise AssertionError(f"the gateway exited early:\n{gateway.log()}")
        try:
            if gateway.client.get("/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the gateway did not answer /healthz:\n{gateway.log()}")
        time.sleep(0.05)
