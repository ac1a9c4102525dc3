"""A second RabbitMQ node of the test's own, on free ports, with settings the shared one
must not have (a consumer timeout of seconds, a TLS listener). Uses the machine's RabbitMQ
installation.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pika

# Debian's /usr/sbin wrappers switch to the rabbitmq user and drop our environment;
# the scripts behind them run the node as we are.
SERVER_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
CTL_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmqctl", "rabbitmqctl")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _find(candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise RuntimeError(f"no RabbitMQ installation found (looked for {', '.join(candidates)})")


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener's PEM files; `require_client_cert` makes it mutual TLS."""

    ca: Path
    cert: Path
    key: Path
    require_client_cert: bool = False

    def config(self, port: int) -> str:
        return (
            f"listeners.ssl.default = 127.0.0.1:{port}\n"
            f"ssl_options.cacertfile = {self.ca}\n"
            f"ssl_options.certfile = {self.cert}\n"
            f"ssl_options.keyfile = {self.key}\n"
            "ssl_options.verify = verify_peer\n"
            f"ssl_options.fail_if_no_peer_cert = {str(self.require_client_cert).lower()}\n"
        )


@dataclass
class RabbitNode:
    name: str
    port: int
    url: str
    environment: dict[str, str]
    process: subprocess.Popen[bytes]
    tls_port: int | None = None

    def ctl(self, *args: str) -> None:
        command = [_find(CTL_CANDIDATES), "-n", self.name, *args]
        done = subprocess.run(
            command, env=self.environment, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}"
            )

    def ctl_until_it_succeeds(self, *args: str, timeout: float = 90) -> None:
        """rabbitmqctl exits 69 (unavailable) while the node is still settling after
        a stop_app; CI saw that once. Retries until `timeout`, then raises the last error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl(*args)
                return
            except RuntimeError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(1)

    def wait_until_answering(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited ({self.process.returncode})")
            try:
                pika.BlockingConnection(pika.URLParameters(self.url + "?socket_timeout=2")).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.5)
        raise RuntimeError(f"RabbitMQ node {self.name} did not answer within {timeout:.0f}s")

    def restart_app(self) -> None:
        """Stops and starts the broker application (connections drop, the node stays)."""
        self.ctl_until_it_succeeds("stop_app")
        self.ctl_until_it_succeeds("start_app")
        self.wait_until_answering()


@contextmanager
def rabbitmq_node(
    folder: Path, consumer_timeout_ms: int = 1_800_000, tls: TlsListener | None = None
) -> Iterator[RabbitNode]:
    """Starts a node whose consumer timeout is `consumer_timeout_ms`, checked every second,
    with a TLS listener on a port of its own (`tls_port`) when `tls` is given."""
    port = _free_port()
    tls_port = _free_port() if tls is not None else None
    name = f"mlptest{uuid.uuid4().hex[:6]}@localhost"
    (folder / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        f"consumer_timeout = {consumer_timeout_ms}\n"
        "loopback_users.guest = true\n"
        + (tls.config(tls_port) if tls is not None and tls_port is not None else "")
    )
    # The channel checks the timeout on its tick (60 s by default).
    (folder / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
    (folder / "enabled_plugins").write_text("[].\n")
    environment = {
        **os.environ,
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(folder / "node.pid"),
    }
    process = subprocess.Popen(
        [_find(SERVER_CANDIDATES)],
        env=environment,
        stdout=(folder / "server.out").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    node = RabbitNode(
        name, port, f"amqp://guest:guest@127.0.0.1:{port}/%2F", environment, process, tls_port
    )
    try:
        node.wait_until_answering()
        yield node
    finally:
        with suppress(Exception):
            node.ctl("stop")
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
