"""Benchmark of the REST gateway beside direct gRPC: single-row latency and 8-client throughput.

    python bench/bench_gateway.py [--calls 2000] [--clients 8] [--seconds 5]

Registers a scikit-learn pipeline (StandardScaler + 100-tree random forest, 30 features, trained
on examples/data/credit_fraud_sample.csv) in a temporary MLflow store, starts `mlp predictor`
(prediction logging off) and `mlp gateway` in their own processes, then measures against the
same predictor and model:

- gRPC: `--calls` sequential single-row Predict calls (blocking stub, pre-built request);
- REST /predict and /invocations: the same row as JSON (pre-encoded bytes), `--calls`
  sequential requests over one keep-alive connection, from http.client (the standard library's
  lean client) and, for /predict, also from httpx (about 0.4 ms more client work per request);
- REST /healthz: what HTTP and the client cost alone (no predictor call);
- throughput: `--clients` threads calling back-to-back for `--seconds`, one connection each;
- the transports alone: gRPC and REST against a trivial predictor that answers at once, REST
  both from a gateway with its metrics on (as deployed; every other gateway here has them on)
  and from one with `--metrics-port -1`, interleaved: what counting and timing requests costs.

Sequential calls are interleaved in blocks (gRPC, REST, ... in turn) so that drifting load on a
shared machine weighs on every row alike.

Target (issue 6): REST p50 within 1.5 ms of gRPC p50. Clients, gateway and predictor share this
machine's cores (2 here), so the throughput column measures all three together; the load
average before and after is printed because other work on the machine skews every figure.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predictor import (
    mlp_command,
    percentile,
    predictor_process,
    register_models,
    trivial_process,
)

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

TARGET_P50_GAP_MS = 1.5
MODEL = "bench_sklearn_rf"
GRPC = "gRPC Predict"
REST_LEAN = "REST /predict"
REST_HTTPX = "REST /predict (httpx)"


@dataclass
class Row:
    """One line of the result table."""

    label: str
    p50_ms: float
    p99_ms: float
    sequential_rps: float = 0.0
    concurrent_rps: float | None = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gateway_process(predictor_address: str, metrics: bool = True) -> Iterator[str]:
    """`mlp gateway` in its own process; yields its base URL once /healthz answers. Its
    metrics are on (a free port) unless `metrics` is False."""
    mlp = mlp_command()
    port = free_port()
    arguments = [mlp, "gateway", "--host", "127.0.0.1", "--port", str(port)]
    arguments += ["--predictor", predictor_address, "--metrics-port", "0" if metrics else "-1"]
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def interleaved(
    calls_by_label: dict[str, Callable[[], object]], calls: int, rounds: int = 10
) -> dict[str, list[float]]:
    """Latencies (s) of `calls` sequential calls per label, taken in `rounds` interleaved
    blocks (a block of each label in turn), so drifting load on a shared machine weighs on
    every label alike. A warm-up of 100 calls per label is not counted."""
    for call in calls_by_label.values():
        for _ in range(100):
            call()
    timings: dict[str, list[float]] = {label: [] for label in calls_by_label}
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for label, call in calls_by_label.items():
            record = timings[label].append
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                record(time.perf_counter() - started)
    return timings


def throughput(
    make_call: Callable[[], Callable[[], object]], clients: int, seconds: float
) -> float:
    """Requests per second answered to `clients` threads calling back-to-back for `seconds`
    (after one second of warm-up that is not counted)."""
    counts = [0] * clients
    start_at = time.perf_counter() + 1.0
    deadline = start_at + seconds

    def client(index: int) -> None:
        call = make_call()
        while (now := time.perf_counter()) < deadline:
            call()
            if now >= start_at:
                counts[index] += 1

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def grpc_call_factory(address: str, request: predictor_pb2.PredictRequest) -> Callable[[], object]:
    channel = grpc.insecure_channel(address)
    predict = predictor_pb2_grpc.PredictorStub(channel).Predict
    return lambda: predict(request, timeout=30)


def http_call_factory(url: str, body: bytes | None) -> Callable[[], object]:
    client = httpx.Client(timeout=30)
    headers = {"content-type": "application/json"}

    def post() -> object:
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")
        return response

    def get() -> object:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")
        return response

    return get if body is None else post


def lean_call_factory(url: str, body: bytes | None) -> Callable[[], object]:
    """The same request from the standard library's http.client (one keep-alive connection):
    about 0.4 ms less client-side work per request than httpx here, so its figure is closer to
    what the gateway itself costs."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    method = "GET" if body is None else "POST"
    headers = {} if body is None else {"content-type": "application/json"}

    def call() -> object:
        connection.request(method, parts.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {payload[:200]!r}")
        return payload

    return call


def measure(
    factories: dict[str, Callable[[], Callable[[], object]]],
    arguments: argparse.Namespace,
    with_throughput: bool = True,
) -> list[Row]:
    """Sequential latency (interleaved) and concurrent throughput of every label."""
    timings = interleaved({label: make() for label, make in factories.items()}, arguments.calls)
    rows = []
    for label, make_call in factories.items():
        samples = timings[label]
        row = Row(label, percentile(samples, 0.5), percentile(samples, 0.99))
        row.sequential_rps = len(samples) / sum(samples)
        if with_throughput:
            row.concurrent_rps = throughput(make_call, arguments.clients, arguments.seconds)
        print(f"  {label}: p50 {row.p50_ms:.2f} ms", flush=True)
        rows.append(row)
    return rows


def print_table(rows: list[Row], clients: int) -> None:
    header = f"{'':<36}{'p50 ms':>8}{'p99 ms':>8}{'seq req/s':>11}{f'{clients} clients req/s':>19}"
    print(header)
    print("-" * len(header))
    for row in rows:
        concurrent = "-" if row.concurrent_rps is None else f"{row.concurrent_rps:.0f}"
        print(
            f"{row.label:<36}{row.p50_ms:>8.2f}{row.p99_ms:>8.2f}{row.sequential_rps:>11.0f}"
            f"{concurrent:>19}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    arguments = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        root = Path(folder)
        print("training and registering the model...", flush=True)
        tracking_uri, frames = register_models(root, with_pycaret=False)
        row = frames[MODEL].head(1)
        grpc_request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
        record = {name: float(value) for name, value in row.iloc[0].items()}
        predict_body = orjson.dumps({"records": [record]})
        invocations_body = orjson.dumps({"dataframe_records": [record]})
        store_uri = f"sqlite:///{root / 'store.db'}"
        with (
            predictor_process(tracking_uri, MODEL, store_uri, log=False, options=[]) as address,
            gateway_process(address) as url,
        ):
            print(f"measuring {MODEL} (predictor {address}, gateway {url})...", flush=True)
            rows = measure(
                {
                    GRPC: lambda: grpc_call_factory(address, grpc_request),
                    REST_LEAN: lambda: lean_call_factory(f"{url}/predict", predict_body),
                    REST_HTTPX: lambda: http_call_factory(f"{url}/predict", predict_body),
                    "REST /invocations": lambda: lean_call_factory(
                        f"{url}/invocations", invocations_body
                    ),
                    "REST /healthz (no gRPC)": lambda: lean_call_factory(f"{url}/healthz", None),
                },
                arguments,
            )
    print("measuring the transports alone (a trivial predictor that answers without a model)...")
    with (
        trivial_process() as address,
        gateway_process(address) as url,
        gateway_process(address, metrics=False) as unmetered_url,
    ):
        trivial_rows = measure(
            {
                f"{GRPC} (trivial)": lambda: grpc_call_factory(address, grpc_request),
                f"{REST_LEAN} (trivial)": lambda: lean_call_factory(f"{url}/predict", predict_body),
                f"{REST_LEAN} (trivial, no metrics)": lambda: lean_call_factory(
                    f"{unmetered_url}/predict", predict_body
                ),
            },
            arguments,
            with_throughput=False,
        )
    print()
    print_table(rows + trivial_rows, arguments.clients)
    by_label = {row.label: row for row in rows + trivial_rows}
    print()
    for rest_label, grpc_label in (
        (REST_LEAN, GRPC),
        (REST_HTTPX, GRPC),
        (f"{REST_LEAN} (trivial)", f"{GRPC} (trivial)"),
    ):
        gap = by_label[rest_label].p50_ms - by_label[grpc_label].p50_ms
        verdict = "met" if gap <= TARGET_P50_GAP_MS else "NOT met"
        print(
            f"{rest_label} p50 - {grpc_label} p50 = {gap:.2f} ms "
            f"(target <= {TARGET_P50_GAP_MS} ms: {verdict})"
        )
    metered = by_label[f"{REST_LEAN} (trivial)"].p50_ms
    unmetered = by_label[f"{REST_LEAN} (trivial, no metrics)"].p50_ms
    print(f"the gateway's metrics cost {metered - unmetered:.3f} ms of p50 (trivial predictor)")
    print(
        "(one row of 30 features; p50/p99 over sequential calls from one client on one "
        f"keep-alive connection, interleaved; {arguments.clients} clients = Python threads in "
        "this process, one connection each; the REST rows use http.client unless marked httpx)"
    )
    load_after = os.getloadavg()
    print(
        f"load average before/after (1 min): {load_before[0]:.2f} / {load_after[0]:.2f} on "
        f"{os.cpu_count()} CPUs (other work on the machine skews every figure)"
    )


if __name__ == "__main__":
    main()
