"""Loopback ports for a local stack in tests: chosen free at run time.

A stack's metrics ports are a block (`mlp up --metrics-port N` gives N to the predictor, then
N+1, N+2, ... to the gateway, the exporter, each trainer and each inferer), so one free port is
not enough: every port of the block must be free, and none may be one of the stack's other
ports.
"""

from __future__ import annotations

import socket

#: Metrics ports a one-worker-each stack takes (predictor, gateway, exporter, trainer,
#: inferer), plus one to spare.
METRICS_BLOCK = 6


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def _block_is_free(first: int, count: int) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in range(first, first + count):
            probe = socket.socket()
            sockets.append(probe)
            probe.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for probe in sockets:
            probe.close()


def free_port_block(count: int, avoid: set[int] | None = None) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 now, none of them in `avoid`."""
    avoid = avoid or set()
    for _ in range(500):
        [first] = free_ports(1)
        block = range(first, first + count)
        if block[-1] <= 65535 and not avoid.intersection(block) and _block_is_free(first, count):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found on 127.0.0.1")


def stack_ports() -> tuple[int, int, int, int]:
    """MLflow, predictor, first metrics and gateway ports for a local stack."""
    mlflow_port, predictor_port, gateway_port = free_ports(3)
    metrics_port = free_port_block(METRICS_BLOCK, {mlflow_port, predictor_port, gateway_port})
    return mlflow_port, predictor_port, metrics_port, gateway_port
