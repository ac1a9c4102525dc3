"""Readiness checks for the stack's services."""

from __future__ import annotations

import urllib.request

from mlplatform.stack.processes import ManagedProcess, ReadinessCheck


def http_ok(url: str) -> ReadinessCheck:
    """Ready when `url` answers 200."""

    def check(_process: ManagedProcess) -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200

    return check


def grpc_health_answers(address: str) -> ReadinessCheck:
    """Ready when the gRPC health service answers, SERVING or not: a predictor with no model
    registered yet is up (NOT_SERVING) and starts serving when the alias appears."""

    def check(_process: ManagedProcess) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(address) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return True

    return check


def log_says(text: str) -> ReadinessCheck:
    """Ready once the process has logged `text` (queue workers log when they consume)."""

    def check(process: ManagedProcess) -> bool:
        return process.log_contains(text)

    return check
