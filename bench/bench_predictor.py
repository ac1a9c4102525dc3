"""Benchmark of the online predictor: the native protocol, KServe V2 over gRPC and V2 over REST
(through the gateway), side by side with the in-process floor.

    python bench/bench_predictor.py [--calls 2000] [--callers 8] [--rounds 5] [--seconds 10]
        [--trees 100] [--no-h2load] [--smoke] [--predictor-option=--model-process ...]

One model, StandardScaler + a `--trees` random forest on examples/data/credit_fraud_sample.csv
(30 features), registered in a temporary MLflow store and served by `mlp predictor` (logging
off) with `mlp gateway` in front, each in its own process. One-row requests:

- native: `Predictor/Predict` with a Frame;
- V2 gRPC: `GRPCInferenceService/ModelInfer`, one FP64 tensor per column in
  `raw_input_contents` (what tritonclient.grpc sends);
- V2 REST: `POST /v2/models/NAME/infer` on the gateway with Triton's binary tensor data, inputs
  and outputs (what tritonclient.http sends by default);
- native, logging on: a second predictor logging to a SQLite store.

Two clients: Python (pre-built requests, blocking gRPC stubs, http.client on one keep-alive
connection) and, when Debian's h2load is installed, h2load (C, one pre-encoded request). The
floor is the model's own `predict` on a one-row DataFrame in this process, timed interleaved
with every path's sequential calls (one of each in turn), so drifting load weighs on all alike.
Throughput: `--callers` concurrent callers (threads with a connection each; h2load streams, or
connections for HTTP/1.1), each path back to back in each of `--rounds` rounds, and native with
one caller; a ratio of rates is the median over rounds of ratios within a round.

Targets (issue 23): V2 gRPC p50 within 0.3 ms of native p50; V2 gRPC throughput with 8 callers
at least 90% of native's. Also (issue 5): native p50 within 1 ms of the floor; native with 8
callers at least 5x its 1-caller rate; logging costs under 5% of p50. V2 REST has no target;
its gap to native is printed.

Over 300 lines: three paths from two clients (h2load's pre-encoded requests included) and the
verdicts; what every bench shares is in harness.py.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
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
    register_forest,
    rounds,
    served_estimator,
    show,
    timed,
    verdict,
)

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

MODEL = "bench_sklearn_rf"
NATIVE, V2_GRPC, V2_REST, LOGGED = "native gRPC", "V2 gRPC", "V2 REST", "native, logging on"
ONE_CALLER = "native, 1 caller"
TARGET_V2_P50_GAP_MS = 0.3
TARGET_V2_RATE_SHARE = 0.90
TARGET_NATIVE_ABOVE_FLOOR_MS = 1.0
TARGET_LOGGING_SHARE = 0.05
TARGET_CONCURRENT_SPEEDUP = 5.0


@dataclass
class Figures:
    """One row of the table: one path seen by one client."""

    path: str
    client: str
    floor_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: requests/s with the concurrent callers, one per round
    rates: list[float] = field(default_factory=list)


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requests:
    """The one-row request of each path, built once."""

    native: predictor_pb2.PredictRequest
    v2: v2.ModelInferRequest
    rest_body: bytes
    rest_headers: dict[str, str]


def build_requests(row) -> Requests:  # type: ignore[no-untyped-def]
    native = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
    infer = v2.ModelInferRequest(model_name=MODEL)
    header: dict[str, object] = {"inputs": [], "parameters": {"binary_data_output": True}}
    raws = []
    for name in row.columns:
        raw = row[name].to_numpy("<f8").tobytes()
        infer.inputs.add(name=name, datatype="FP64", shape=[len(row)])
        infer.raw_input_contents.append(raw)
        header["inputs"].append(  # type: ignore[attr-defined]
            {"name": name, "shape": [len(row)], "datatype": "FP64",
             "parameters": {"binary_data_size": len(raw)}}
        )  # fmt: skip
        raws.append(raw)
    json_header = orjson.dumps(header)
    headers = {"Inference-Header-Content-Length": str(len(json_header))}
    return Requests(native, infer, json_header + b"".join(raws), headers)


def native_caller(address: str, request: predictor_pb2.PredictRequest) -> Call:
    predict = predictor_pb2_grpc.PredictorStub(grpc.insecure_channel(address)).Predict
    return lambda: predict(request, timeout=30)


def v2_caller(address: str, request: v2.ModelInferRequest) -> Call:
    infer = v2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address)).ModelInfer
    return lambda: infer(request, timeout=30)


# --- h2load ---------------------------------------------------------------------------------


class H2load:
    """h2load (Debian's nghttp2-client, C) replaying one pre-encoded request: gRPC over
    HTTP/2 (one connection, streams at a time), or HTTP/1.1 (`h1`: connections at a time)."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], folder: Path, h1: bool):
        folder.mkdir(parents=True, exist_ok=True)
        self.body, self.log = folder / "request.bin", folder / "h2load.log"
        self.body.write_bytes(body)
        self.url, self.h1 = url, h1
        self.headers = [
            option for name, value in headers.items() for option in ("-H", f"{name}: {value}")
        ]

    @classmethod
    def grpc(cls, address: str, method: str, message: bytes, folder: Path) -> H2load:
        framed = b"\x00" + len(message).to_bytes(4, "big") + message
        headers = {"content-type": "application/grpc", "te": "trailers"}
        return cls(f"http://{address}{method}", framed, headers, folder, h1=False)

    def run(self, concurrency: int, *options: str) -> str:
        spread = ["-c", str(concurrency)] if self.h1 else ["-c", "1", "-m", str(concurrency)]
        arguments = ["h2load", *spread, *(["--h1"] if self.h1 else []), *options]
        arguments += ["-d", str(self.body), *self.headers, self.url]
        output = subprocess.run(arguments, capture_output=True, text=True, check=True).stdout
        if " 0 failed, 0 errored, 0 timeout" not in output:
            raise RuntimeError(f"h2load calls failed:\n{output}")
        return output

    def sequential(self, calls: int) -> list[float]:
        """Seconds of each of `calls` one-at-a-time calls (the connection's first call, which
        opens it, is made but not kept)."""
        self.log.unlink(missing_ok=True)  # h2load appends to an existing log
        self.run(1, "-n", str(calls + 1), f"--log-file={self.log}")
        lines = self.log.read_text().splitlines()[1:]  # start, status, microseconds
        return [int(line.split("\t")[2]) / 1e6 for line in lines]

    def rate(self, seconds: float, concurrency: int) -> float:
        warm_up = f"--warm-up-time={500}ms"
        output = self.run(concurrency, f"--duration={round(seconds * 1000)}ms", warm_up)
        match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
        if match is None:
            raise RuntimeError(f"no rate in h2load's output:\n{output}")
        return float(match.group(1))


def h2load_interleaved(
    floor: Call, clients: dict[str, H2load], calls: int, block: int = 100
) -> dict[str, list[float]]:
    """Floor timings and each client's sequential calls, alternating in blocks of `block`."""
    timings: dict[str, list[float]] = {"floor": [], **{label: [] for label in clients}}
    while len(timings["floor"]) < calls:
        count = min(block, calls - len(timings["floor"]))
        timings["floor"] += timed(floor, count)
        for label, client in clients.items():
            timings[label] += client.sequential(count)
    return timings


# --- measuring ------------------------------------------------------------------------------


def figures_of(
    client: str, timings: dict[str, list[float]], rates: dict[str, list[float]]
) -> list[Figures]:
    floor = percentile(timings["floor"], 0.5)
    rows = [
        Figures(
            path,
            client,
            floor,
            percentile(timings[path], 0.5),
            percentile(timings[path], 0.99),
            rates.get(path, []),
        )
        for path in timings
        if path != "floor"
    ]
    return [*rows, Figures(ONE_CALLER, client, rates=rates[ONE_CALLER])]


def measure(arguments: argparse.Namespace, root: Path) -> list[Figures]:
    tracking_uri = register_forest(root, MODEL, arguments.trees)
    estimator = served_estimator(tracking_uri, MODEL)
    row = credit_fraud_features().head(1)
    requests = build_requests(row)

    def floor() -> object:
        return estimator.predict(row)  # type: ignore[attr-defined]

    store_uri = f"sqlite:///{root / 'store.db'}"
    seconds = arguments.seconds / arguments.rounds
    options = arguments.option
    with (
        predictor_process(tracking_uri, MODEL, store_uri, options=options) as address,
        predictor_process(tracking_uri, MODEL, store_uri, log=True, options=options) as logged,
        gateway_process(address) as url,
    ):
        rest_url = f"{url}/v2/models/{MODEL}/infer"
        makers: dict[str, Callable[[], Call]] = {
            NATIVE: lambda: native_caller(address, requests.native),
            V2_GRPC: lambda: v2_caller(address, requests.v2),
            V2_REST: lambda: http_caller(rest_url, requests.rest_body, requests.rest_headers),
        }
        print(f"measuring from Python (predictor {address}, gateway {url})...", flush=True)
        actions = {"floor": floor, **{path: make() for path, make in makers.items()}}
        actions[LOGGED] = native_caller(logged, requests.native)
        timings = interleaved(actions, arguments.calls, warm_up=min(50, arguments.calls))
        rates = rounds(
            {
                **{
                    path: lambda make=make: rate(make, arguments.callers, seconds)
                    for path, make in makers.items()
                },
                ONE_CALLER: lambda: rate(makers[NATIVE], 1, seconds),
            },
            arguments.rounds,
        )
        rows = figures_of("python", timings, rates)
        if arguments.no_h2load or shutil.which("h2load") is None:
            return rows
        print("measuring from h2load...", flush=True)
        clients = {
            NATIVE: H2load.grpc(
                address, "/mlplatform.v1.Predictor/Predict",
                requests.native.SerializeToString(), root / "native",
            ),
            V2_GRPC: H2load.grpc(
                address, "/inference.GRPCInferenceService/ModelInfer",
                requests.v2.SerializeToString(), root / "v2",
            ),
            V2_REST: H2load(
                rest_url, requests.rest_body, requests.rest_headers, root / "rest", h1=True
            ),
        }  # fmt: skip
        timings = h2load_interleaved(floor, clients, arguments.calls)
        rates = rounds(
            {
                **{
                    path: lambda c=c: c.rate(seconds, arguments.callers)
                    for path, c in clients.items()
                },
                ONE_CALLER: lambda: clients[NATIVE].rate(seconds, 1),
            },
            arguments.rounds,
        )
        return rows + figures_of("h2load", timings, rates)


# --- output ---------------------------------------------------------------------------------


def print_figures(rows: list[Figures], callers: int) -> None:
    natives = {row.client: row for row in rows if row.path == NATIVE}
    table = []
    for row in rows:
        native = natives[row.client]
        share = None
        if row.rates and native.rates:
            ratios = [a / b for a, b in zip(row.rates, native.rates, strict=True)]
            share = f"{statistics.median(ratios):.0%}"
        table.append(
            [
                row.path, row.client, show(row.floor_ms), show(row.p50_ms), show(row.p99_ms),
                show(row.p50_ms - row.floor_ms) if row.p50_ms and row.floor_ms else None,
                show(row.p50_ms - native.p50_ms) if row.p50_ms and native.p50_ms else None,
                show(statistics.median(row.rates), 0) if row.rates else None, share,
            ]
        )  # fmt: skip
    print_table(
        ["path", "client", "floor", "p50", "p99", "p50-floor", "p50-native",
         f"{callers} callers req/s", "x native"],  # (the 1-caller row: 1 caller's req/s)
        table,
    )  # fmt: skip
    print(
        "(times in ms, one-row requests; floor = model.predict in process, interleaved with "
        "the client's calls; req/s = median over rounds; x native = median over rounds of the "
        "rate over native's rate in the same round)"
    )


def target_verdicts(rows: list[Figures], callers: int) -> list[str]:
    """One line per target and client: its figure, the target, met or MISSED."""
    by_key = {(row.path, row.client): row for row in rows}
    lines = []
    for client in dict.fromkeys(row.client for row in rows):
        native, v2_row = by_key.get((NATIVE, client)), by_key.get((V2_GRPC, client))
        if native is None or native.p50_ms is None:
            continue
        if v2_row is not None and v2_row.p50_ms is not None:
            gap = v2_row.p50_ms - native.p50_ms
            lines.append(verdict(
                f"{client}: V2 gRPC p50 - native p50", f"{gap:+.2f} ms",
                f"<= {TARGET_V2_P50_GAP_MS:g} ms", gap <= TARGET_V2_P50_GAP_MS,
            ))  # fmt: skip
        if v2_row is not None and v2_row.rates and native.rates:
            share = statistics.median(
                a / b for a, b in zip(v2_row.rates, native.rates, strict=True)
            )
            lines.append(verdict(
                f"{client}: V2 gRPC {callers}-caller throughput / native", f"{share:.0%}",
                f">= {TARGET_V2_RATE_SHARE:.0%}", share >= TARGET_V2_RATE_SHARE,
            ))  # fmt: skip
        if native.floor_ms is not None:
            above = native.p50_ms - native.floor_ms
            lines.append(verdict(
                f"{client}: native p50 - floor", f"{above:+.2f} ms",
                f"<= {TARGET_NATIVE_ABOVE_FLOOR_MS:g} ms", above <= TARGET_NATIVE_ABOVE_FLOOR_MS,
            ))  # fmt: skip
        one_caller = by_key.get((ONE_CALLER, client))
        if one_caller is not None and one_caller.rates and native.rates:
            speedup = statistics.median(
                a / b for a, b in zip(native.rates, one_caller.rates, strict=True)
            )
            lines.append(verdict(
                f"{client}: native {callers} callers / 1 caller", f"{speedup:.1f}x",
                f">= {TARGET_CONCURRENT_SPEEDUP:g}x", speedup >= TARGET_CONCURRENT_SPEEDUP,
            ))  # fmt: skip
        logged = by_key.get((LOGGED, client))
        if logged is not None and logged.p50_ms is not None:
            share = logged.p50_ms / native.p50_ms - 1
            lines.append(verdict(
                f"{client}: logging on", f"{share:+.1%} of p50",
                f"< {TARGET_LOGGING_SHARE:.0%}", share < TARGET_LOGGING_SHARE,
            ))  # fmt: skip
    return lines


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per path")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of throughput")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds of throughput per path, all rounds"
    )
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--no-h2load", action="store_true", help="the Python client only")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs")
    parser.add_argument(
        "--predictor-option",
        dest="option",
        action="append",
        default=[],
        help="an option for `mlp predictor`, e.g. --predictor-option=--model-process",
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.calls, arguments.rounds, arguments.seconds, arguments.trees = 20, 1, 0.2, 5
    if arguments.rounds < 1 or arguments.calls < 1:
        parser.error("--rounds and --calls need at least 1")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    with load_report(), tempfile.TemporaryDirectory(prefix="bench-predictor-") as folder:
        print("training and registering the model...", flush=True)
        rows = measure(arguments, Path(folder))
        print()
        print_figures(rows, arguments.callers)
        print("\ntargets (issue 23: V2 beside native; issue 5: native beside the floor):")
        for line in target_verdicts(rows, arguments.callers):
            print(f"  {line}")


if __name__ == "__main__":
    main()
