"""The images' HEALTHCHECK: one small script, standard library (and grpc for the predictor).

    python healthcheck.py http URL          # 2xx within the timeout
    python healthcheck.py grpc HOST:PORT    # grpc.health.v1 says SERVING (a model is loaded)
    python healthcheck.py broker            # MLP_BROKER_URL's host accepts a TCP connection

Queue workers (trainer, inferer) listen on nothing: a worker that dies exits and the restart
policy starts it again, so their check reports what they need to work, their broker.
Exit status 0 is healthy, 1 unhealthy (Docker's convention); the reason goes to stdout,
which `docker inspect` shows.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse
import urllib.request

TIMEOUT_S = 4.0
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def check_http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return f"{url}: HTTP {response.status}"


def check_grpc(address: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S
        )
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(f"{address}: {status}")
    return f"{address}: {status}"


def check_broker() -> str:
    url = urllib.parse.urlsplit(os.environ.get("MLP_BROKER_URL", DEFAULT_BROKER_URL))
    default_port = 5671 if url.scheme == "amqps" else 5672
    address = (url.hostname or "127.0.0.1", url.port or default_port)
    with socket.create_connection(address, timeout=TIMEOUT_S):
        return f"broker {address[0]}:{address[1]} reachable"


def main(arguments: list[str]) -> int:
    try:
        match arguments:
            case ["http", url]:
                print(check_http(url))
            case ["grpc", address]:
                print(check_grpc(address))
            case ["broker"]:
                print(check_broker())
            case _:
                print(__doc__)
                return 2
    except Exception as error:  # any failure is reported, with its reason
        print(f"unhealthy: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
