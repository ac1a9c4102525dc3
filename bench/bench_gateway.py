"""Benchmark of the REST gateway beside direct gRPC: single-row latency and concurrent throughput.

    python bench/bench_gateway.py [--calls 2000] [--callers 8] [--seconds 5] [--smoke]

The benchmark model (bench/harness.py: StandardScaler + random forest, 30 features) served by
`mlp predictor --compile off` (logging off; scikit-learn, as the floor predicts) with
`mlp gateway` in front, each in its own process. The same row
goes as a gRPC Predict (blocking stub, pre-built request) and as JSON (pre-encoded) to
`/predict` (from http.client, the standard library's lean client, and from httpx, which costs
about 0.4 ms more client work per request) and `/invocations`; `/healthz` shows what HTTP and
the client cost without a predictor call. Sequential calls are interleaved with the in-process
floor; throughput is `--callers` threads with a connection each, every path in turn.
(V2 over REST is measured beside native and V2 gRPC in bench_predictor.py.)

Target (issue 6): REST /predict p50 within 1.5 ms of gRPC p50.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predictor import native_caller
from harness import (
    BENCH_MODELS,
    Call,
    credit_fraud_features,
    gateway_process,
    http_caller,
    interleaved,
    load_report,
    percentile,
    predictor_process,
    print_table,
    rate,
    register_models,
    served_estimator,
    show,
    verdict,
)

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2

MODEL = BENCH_MODELS["forest"]
GRPC, REST, REST_HTTPX = "gRPC Predict", "REST /predict", "REST /predict (httpx)"
TARGET_P50_GAP_MS = 1.5


def httpx_caller(url: str, body: bytes) -> Call:
    client = httpx.Client(timeout=30)
    headers = {"content-type": "application/json"}

    def call() -> object:
        response = client.post(url, content=body, headers=headers)
        response.raise_for_status()
        return response

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per path")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of throughput")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.calls, arguments.seconds, arguments.trees = 20, 0.2, 5
    with load_report():
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
            root = Path(folder)
            print("training and registering the model...", flush=True)
            tracking_uri = register_models(root, trees=arguments.trees)
            estimator = served_estimator(tracking_uri, MODEL)
            row = credit_fraud_features().head(1)
            request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
            record = {name: float(value) for name, value in row.iloc[0].items()}
            predict_body = orjson.dumps({"records": [record]})
            invocations_body = orjson.dumps({"dataframe_records": [record]})
            store_uri = f"sqlite:///{root / 'store.db'}"
            with (
                predictor_process(
                    tracking_uri, MODEL, store_uri, options=("--compile", "off")
                ) as address,
                gateway_process(address) as url,
            ):
                makers: dict[str, Callable[[], Call]] = {
                    GRPC: lambda: native_caller(address, request),
                    REST: lambda: http_caller(f"{url}/predict", predict_body),
                    REST_HTTPX: lambda: httpx_caller(f"{url}/predict", predict_body),
                    "REST /invocations": lambda: http_caller(
                        f"{url}/invocations", invocations_body
                    ),
                    "REST /healthz (no gRPC)": lambda: http_caller(f"{url}/healthz", None),
                }
                print(f"measuring (predictor {address}, gateway {url})...", flush=True)
                actions = {path: make() for path, make in makers.items()}
                floor = lambda: estimator.predict(row)  # type: ignore[attr-defined]  # noqa: E731
                timings = interleaved(
                    {"floor": floor, **actions}, arguments.calls, min(50, arguments.calls)
                )
                rates = {
                    path: rate(make, arguments.callers, arguments.seconds)
                    for path, make in makers.items()
                }
        floor_ms = percentile(timings["floor"], 0.5)
        p50 = {path: percentile(timings[path], 0.5) for path in makers}
        print()
        print_table(
            ["path", "floor", "p50", "p99", "p50-floor", f"{arguments.callers} callers req/s"],
            [
                [path, show(floor_ms), show(p50[path]), show(percentile(timings[path], 0.99)),
                 show(p50[path] - floor_ms), show(rates[path], 0)]
                for path in makers
            ],
        )  # fmt: skip
        print(
            "(times in ms, one row of 30 features; sequential calls from one client on one "
            "connection, interleaved with the floor; REST rows from http.client unless marked "
            "httpx)"
        )
        print("\ntargets (issue 6):")
        for label in (REST, REST_HTTPX):
            gap = p50[label] - p50[GRPC]
            print(
                "  "
                + verdict(
                    f"{label} p50 - gRPC p50", f"{gap:+.2f} ms", f"<= {TARGET_P50_GAP_MS} ms",
                    gap <= TARGET_P50_GAP_MS,
                )
            )  # fmt: skip


if __name__ == "__main__":
    main()
