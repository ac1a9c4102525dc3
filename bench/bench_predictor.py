"""Benchmark of the online predictor: scikit-learn serving and compiled serving, each over the
native protocol, KServe V2 over gRPC and V2 over REST (through the gateway), side by side with
the in-process floor.

    python bench/bench_predictor.py [--models forest[,rf,lightgbm]] [--calls 2000]
        [--callers 8] [--rounds 5] [--seconds 10] [--trees 100] [--no-h2load] [--smoke]
        [--predictor-option=--max-batch-wait-ms=5 ...]

Models (`--models`, registered in a temporary MLflow store, see harness.register_models), on
examples/data/credit_fraud_sample.csv (30 features): `forest`, StandardScaler + a `--trees`
random forest (the default); `rf` and `lightgbm`, PyCaret pipelines. Each model is served by
`mlp predictor` twice, `--compile off` (scikit-learn) and `--compile auto` (ONNX Runtime when
the model compiles and passes the check; the backend each predictor reports in GetModelInfo is
printed), each with `mlp gateway` in front, and once more `--compile off` logging to a SQLite
store; beside them bench/trivial_server.py, which answers native calls with a fixed prediction
(what a unary call on grpc.aio costs alone, the ceiling of any server built on it). Each in its
own process. One-row requests, without probabilities:

- native: `Predictor/Predict` with a Frame;
- V2 gRPC: `GRPCInferenceService/ModelInfer`, one FP64 tensor per column in
  `raw_input_contents` (what tritonclient.grpc sends), asking for the `prediction` output only
  (as native asks for no probabilities);
- V2 REST: `POST /v2/models/NAME/infer` on the gateway with Triton's binary tensor data, inputs
  and the `prediction` output (what tritonclient.http sends by default);
- native, logging on (`--compile off` only).

Two clients: Python (pre-built requests, blocking gRPC stubs, http.client on one keep-alive
connection) and, when Debian's h2load is installed (scripts/ensure_h2load), h2load (C, one
pre-encoded request). In process, timed interleaved with every path's sequential calls (one of
each in turn; h2load's in blocks), so drifting load weighs on all alike: the floor, the
pipeline's own `predict` on a one-row DataFrame, and the compiled model's `LoadedModel.predict`
on the checked row. Each served row's "in process" is its backend's. Throughput: `--callers`
concurrent callers (threads with a connection each; h2load streams, or connections for
HTTP/1.1), each path of both backends back to back in each of `--rounds` rounds, and native
with one caller; a ratio of rates is the median over rounds of ratios within a round.

Targets on the `--compile off` rows (issue 23): V2 gRPC p50 within 0.3 ms of native p50; V2 gRPC
throughput with 8 callers at least 90% of native's. Also (issue 5): native p50 within 1 ms of
the floor; native with 8 callers at least 5x its 1-caller rate; logging costs under 5% of p50.
On the forest's compiled rows (issue 25, read from h2load): native p50 <= 0.6 ms; native
throughput with 8 callers at least 5x `--compile off`'s; beside them, how much of the compiled
p50 the trivial server takes too, and its throughput over `--compile off`'s. V2 REST has no
target; its gap to native is printed.

Over 300 lines: three paths, two backends and two clients (h2load's pre-encoded requests
included) and the verdicts of three issues; what every bench shares is in harness.py.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BENCH_MODELS,
    Call,
    H2load,
    compiled_model,
    credit_fraud_features,
    gateway_process,
    h2load_interleaved,
    http_caller,
    interleaved,
    load_report,
    median_ratio,
    percentile,
    predictor_process,
    print_table,
    rate,
    register_models,
    rounds,
    served_estimator,
    show,
    trivial_process,
    verdict,
)

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

#: `mlp predictor --compile` of each backend's rows; TRIVIAL marks bench/trivial_server.py's.
OFF, AUTO, TRIVIAL = "off", "auto", "trivial"
IN_PROCESS = "in process"
NATIVE, V2_GRPC, V2_REST, LOGGED = "native gRPC", "V2 gRPC", "V2 REST", "native, logging on"
ONE_CALLER = "native, 1 caller"
PATHS = (NATIVE, V2_GRPC, V2_REST)
NATIVE_METHOD = "/mlplatform.v1.Predictor/Predict"
PREDICTION_OUTPUT = "prediction"  # V2's output of the labels
V2_METHOD = "/inference.GRPCInferenceService/ModelInfer"
TARGET_V2_P50_GAP_MS = 0.3
TARGET_V2_RATE_SHARE = 0.90
TARGET_NATIVE_ABOVE_FLOOR_MS = 1.0
TARGET_LOGGING_SHARE = 0.05
TARGET_CONCURRENT_SPEEDUP = 5.0
TARGET_COMPILED_P50_MS = 0.6
TARGET_COMPILED_SPEEDUP = 5.0

Key = tuple[str, str]  # (compile, path)


@dataclass
class Figures:
    """One row of the table: one path of one backend seen by one client."""

    compile: str
    path: str
    client: str
    #: p50 of the backend's own in-process predict (None on the in-process rows)
    in_process_ms: float | None = None
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


def build_requests(row, model: str = BENCH_MODELS["forest"]) -> Requests:  # type: ignore[no-untyped-def]
    native = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
    # V2 names its one output: with none named the server answers every output, probabilities
    # included, which is more model work than native's answer without them.
    infer = v2.ModelInferRequest(model_name=model)
    infer.outputs.add(name=PREDICTION_OUTPUT)
    header: dict[str, object] = {
        "inputs": [],
        "outputs": [{"name": PREDICTION_OUTPUT, "parameters": {"binary_data": True}}],
        "parameters": {"binary_data_output": True},
    }
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


def served_backend(address: str) -> str:
    """What the predictor at `address` says answers: its GetModelInfo backend (and why not
    compiled)."""
    with grpc.insecure_channel(address) as channel:
        info = predictor_pb2_grpc.PredictorStub(channel).GetModelInfo(
            predictor_pb2.GetModelInfoRequest(), timeout=30
        )
    return info.backend + (f" ({info.compile_reason})" if info.compile_reason else "")


# --- measuring ------------------------------------------------------------------------------


def figures_of(
    client: str, timings: dict[Key, list[float]], rates: dict[Key, list[float]]
) -> list[Figures]:
    rows = []
    for key, calls in timings.items():
        compile_mode, path = key
        own = None
        if path != IN_PROCESS and compile_mode != TRIVIAL:
            own = percentile(timings[compile_mode, IN_PROCESS], 0.5)
        p50, p99 = percentile(calls, 0.5), percentile(calls, 0.99)
        rows.append(Figures(compile_mode, path, client, own, p50, p99, rates.get(key, [])))
    ones = [Figures(key[0], key[1], client, rates=values) for key, values in rates.items()]
    return rows + [row for row in ones if row.path == ONE_CALLER]


def measure(
    arguments: argparse.Namespace, tracking_uri: str, model: str, root: Path
) -> list[Figures]:
    estimator = served_estimator(tracking_uri, model)
    compiled = compiled_model(tracking_uri, model)
    row = credit_fraud_features().head(1)
    checked = compiled.check(row)
    requests = build_requests(row, model)
    in_process: dict[Key, Call] = {
        (OFF, IN_PROCESS): lambda: estimator.predict(row),  # type: ignore[attr-defined]
        (AUTO, IN_PROCESS): lambda: compiled.predict(checked),
    }
    print(f"{model} in process: --compile auto loads it as {compiled.backend}", flush=True)
    store_uri = f"sqlite:///{root / 'store.db'}"
    seconds = arguments.seconds / arguments.rounds
    with ExitStack() as servers:
        addresses, urls = {}, {}
        for mode in (OFF, AUTO):
            options = [*arguments.option, "--compile", mode]
            addresses[mode] = servers.enter_context(
                predictor_process(tracking_uri, model, store_uri, options=options)
            )
            urls[mode] = servers.enter_context(gateway_process(addresses[mode]))
            backend = served_backend(addresses[mode])
            print(f"{model}: mlp predictor --compile {mode} serves it by {backend}", flush=True)
        logged = servers.enter_context(
            predictor_process(
                tracking_uri, model, store_uri, log=True,
                options=[*arguments.option, "--compile", OFF],
            )
        )  # fmt: skip
        trivial = servers.enter_context(trivial_process())
        rest_urls = {mode: f"{url}/v2/models/{model}/infer" for mode, url in urls.items()}
        makers: dict[Key, Callable[[], Call]] = {}
        for mode, address in addresses.items():
            makers[mode, NATIVE] = lambda a=address: native_caller(a, requests.native)
            makers[mode, V2_GRPC] = lambda a=address: v2_caller(a, requests.v2)
            makers[mode, V2_REST] = lambda u=rest_urls[mode]: http_caller(
                u, requests.rest_body, requests.rest_headers
            )
        makers[TRIVIAL, NATIVE] = lambda: native_caller(trivial, requests.native)
        print(f"measuring {model} from Python...", flush=True)
        actions = {**in_process, **{key: make() for key, make in makers.items()}}
        actions[OFF, LOGGED] = native_caller(logged, requests.native)
        timings = interleaved(actions, arguments.calls, warm_up=min(50, arguments.calls))
        rates = rounds(throughputs(makers, arguments.callers, seconds), arguments.rounds)
        rows = figures_of("python", timings, rates)
        if arguments.no_h2load or shutil.which("h2load") is None:
            return rows
        print(f"measuring {model} from h2load...", flush=True)
        clients: dict[Key, H2load] = {}
        native = requests.native.SerializeToString()
        for mode, address in addresses.items():
            folder = root / model / mode
            clients[mode, NATIVE] = H2load.grpc(address, NATIVE_METHOD, native, folder / "n")
            clients[mode, V2_GRPC] = H2load.grpc(
                address, V2_METHOD, requests.v2.SerializeToString(), folder / "v2"
            )
            clients[mode, V2_REST] = H2load(
                rest_urls[mode], requests.rest_body, requests.rest_headers, folder / "r", h1=True
            )
        clients[TRIVIAL, NATIVE] = H2load.grpc(trivial, NATIVE_METHOD, native, root / "trivial")
        timings = h2load_interleaved(in_process, clients, arguments.calls)
        h2load_rates = {
            key: lambda c=client: c.rate(seconds, arguments.callers)
            for key, client in clients.items()
        }
        for mode in (OFF, AUTO):
            h2load_rates[mode, ONE_CALLER] = lambda c=clients[mode, NATIVE]: c.rate(seconds, 1)
        return rows + figures_of("h2load", timings, rounds(h2load_rates, arguments.rounds))


def throughputs(
    makers: dict[Key, Callable[[], Call]], callers: int, seconds: float
) -> dict[Key, Callable[[], float]]:
    """Each path's rate with `callers` callers, then each backend's native with one."""
    measures: dict[Key, Callable[[], float]] = {
        key: lambda make=make: rate(make, callers, seconds) for key, make in makers.items()
    }
    for mode in (OFF, AUTO):
        measures[mode, ONE_CALLER] = lambda make=makers[mode, NATIVE]: rate(make, 1, seconds)
    return measures


# --- output ---------------------------------------------------------------------------------


def print_figures(rows: list[Figures], callers: int) -> None:
    by_key = {(row.compile, row.path, row.client): row for row in rows}
    table = []
    for row in rows:
        served = row.path != IN_PROCESS
        native = by_key.get((row.compile, NATIVE, row.client)) if served else None
        off = by_key.get((OFF, row.path, row.client))
        table.append(
            [
                "trivial server" if row.compile == TRIVIAL else f"--compile {row.compile}",
                row.path, row.client, show(row.in_process_ms),
                show(row.p50_ms, 3), show(row.p99_ms, 3),
                show(row.p50_ms - row.in_process_ms) if row.p50_ms and row.in_process_ms else None,
                show(row.p50_ms - native.p50_ms) if row.p50_ms and native and native.p50_ms
                else None,
                show(statistics.median(row.rates), 0) if row.rates else None,
                ratio(row, native, "{:.0%}") if row.path != ONE_CALLER else None,
                ratio(row, off, "{:.1f}x") if row.compile != OFF else None,
            ]
        )  # fmt: skip
    print_table(
        ["predictor", "path", "client", "in process", "p50", "p99", "p50-in process",
         "p50-native", f"{callers} callers req/s", "x native", "x off"],
        table,
    )  # fmt: skip
    print(
        "(times in ms, one-row requests; in process = the backend's own predict in this "
        "process, interleaved with the client's calls: scikit-learn's for --compile off, the "
        "compiled model's for auto; req/s = median over rounds (1 caller on the 1-caller rows); "
        "x native, x off = median over rounds of the rate over the same backend's native rate, "
        "or over --compile off's rate on the same path, in the same round)"
    )


def ratio(row: Figures, other: Figures | None, style: str) -> str | None:
    if not row.rates or other is None or not other.rates:
        return None
    return style.format(median_ratio(row.rates, other.rates))


def target_verdicts(rows: list[Figures], callers: int) -> list[str]:
    """Issues 23 and 5, on the `--compile off` rows: one line per target and client, its
    figure, the target, met or MISSED."""
    by_key = {(row.path, row.client): row for row in rows if row.compile == OFF}
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
            share = median_ratio(v2_row.rates, native.rates)
            lines.append(verdict(
                f"{client}: V2 gRPC {callers}-caller throughput / native", f"{share:.0%}",
                f">= {TARGET_V2_RATE_SHARE:.0%}", share >= TARGET_V2_RATE_SHARE,
            ))  # fmt: skip
        if native.in_process_ms is not None:
            above = native.p50_ms - native.in_process_ms
            lines.append(verdict(
                f"{client}: native p50 - floor", f"{above:+.2f} ms",
                f"<= {TARGET_NATIVE_ABOVE_FLOOR_MS:g} ms", above <= TARGET_NATIVE_ABOVE_FLOOR_MS,
            ))  # fmt: skip
        one_caller = by_key.get((ONE_CALLER, client))
        if one_caller is not None and one_caller.rates and native.rates:
            speedup = median_ratio(native.rates, one_caller.rates)
            lines.append(verdict(
                f"{client}: native {callers} callers / 1 caller", f"{speedup:.2f}x",
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


def compiled_verdicts(rows: list[Figures], callers: int) -> list[str]:
    """Issue 25, on the compiled native rows against `--compile off`'s, per client (the
    targets are read from h2load's), each followed by the trivial server's share of it."""
    by_key = {(row.compile, row.path, row.client): row for row in rows}
    lines = []
    for client in dict.fromkeys(row.client for row in rows):
        compiled, off = by_key.get((AUTO, NATIVE, client)), by_key.get((OFF, NATIVE, client))
        trivial = by_key.get((TRIVIAL, NATIVE, client))
        if compiled is None or compiled.p50_ms is None:
            continue
        lines.append(verdict(
            f"{client}: compiled native p50", f"{compiled.p50_ms:.3f} ms",
            f"<= {TARGET_COMPILED_P50_MS:g} ms", compiled.p50_ms <= TARGET_COMPILED_P50_MS,
        ))  # fmt: skip
        if trivial is not None and trivial.p50_ms is not None:
            lines.append(
                f"  the trivial server's p50 {trivial.p50_ms:.3f} ms: the predictor adds "
                f"{compiled.p50_ms - trivial.p50_ms:+.3f} ms to a unary call on grpc.aio"
            )
        if off is not None and off.rates and compiled.rates:
            speedup = median_ratio(compiled.rates, off.rates)
            lines.append(verdict(
                f"{client}: compiled native {callers}-caller throughput / --compile off's",
                f"{speedup:.2f}x", f">= {TARGET_COMPILED_SPEEDUP:g}x",
                speedup >= TARGET_COMPILED_SPEEDUP,
            ))  # fmt: skip
            if trivial is not None and trivial.rates:
                ceiling = median_ratio(trivial.rates, off.rates)
                lines.append(
                    f"  the trivial server's: {ceiling:.2f}x --compile off's (no server on "
                    "grpc.aio in one process goes faster here)"
                )
    return lines


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default="forest", help=f"comma-separated, of {', '.join(BENCH_MODELS)}"
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per path")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of throughput")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds of throughput per path, all rounds"
    )
    parser.add_argument("--trees", type=int, default=100, help="the forest's trees")
    parser.add_argument("--no-h2load", action="store_true", help="the Python client only")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs")
    parser.add_argument(
        "--predictor-option",
        dest="option",
        action="append",
        default=[],
        help="an option for both `mlp predictor`s, e.g. --predictor-option=--max-batch-wait-ms=5",
    )
    arguments = parser.parse_args()
    arguments.models = arguments.models.split(",")
    unknown = [model for model in arguments.models if model not in BENCH_MODELS]
    if unknown:
        parser.error(
            f"--models: unknown {', '.join(unknown)}; expected of {', '.join(BENCH_MODELS)}"
        )
    if arguments.smoke:
        arguments.calls, arguments.rounds, arguments.seconds, arguments.trees = 20, 1, 0.2, 5
    if arguments.rounds < 1 or arguments.calls < 1:
        parser.error("--rounds and --calls need at least 1")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    with load_report(), tempfile.TemporaryDirectory(prefix="bench-predictor-") as folder:
        print(f"training and registering {', '.join(arguments.models)}...", flush=True)
        tracking_uri = register_models(Path(folder), arguments.models, arguments.trees)
        for model in arguments.models:
            name = BENCH_MODELS[model]
            rows = measure(arguments, tracking_uri, name, Path(folder))
            print(f"\n{name} ({model}):")
            print_figures(rows, arguments.callers)
            print("\ntargets on --compile off (issue 23: V2 beside native; issue 5: the floor):")
            for line in target_verdicts(rows, arguments.callers):
                print(f"  {line}")
            if model == "forest":
                print("targets on the compiled forest (issue 25, read from h2load):")
                for line in compiled_verdicts(rows, arguments.callers):
                    print(f"  {line}")
            print()


if __name__ == "__main__":
    main()
