"""Benchmark of the online predictor: single-row latency, concurrent throughput, logging cost.

    python bench/bench_predictor.py [--calls 2000] [--callers 8] [--seconds 5] [--skip-pycaret]

For two registered models, a plain scikit-learn pipeline (StandardScaler + 100-tree random
forest) and a PyCaret pipeline (its `rf`, preprocessing included), both trained on
examples/data/credit_fraud_sample.csv (30 features) and registered in a temporary MLflow store:

- in-process floor: the loaded model's `predict` on a one-row DataFrame (n_jobs=1, as served),
  and on 8 rows (what batching exploits);
- p50/p99 over `--calls` sequential single-row gRPC calls to `mlp predictor` running in its own
  process, with prediction logging off, and the p50 of a second predictor with logging on (to a
  SQLite store). The floor, the plain calls and the logged calls are interleaved round by round,
  so the changing load of a shared machine hits all three alike;
- throughput with `--callers` concurrent callers (threads, one channel each) for `--seconds`,
  and, when Debian's h2load is installed, with `--callers` concurrent streams from h2load.

The client is Python (a pre-built request, a blocking stub). Its own cost is printed beside the
figures: the same measurements against a trivial server that answers without a model.
Targets (issue 5): sequential p50 within 1 ms of the floor; concurrent throughput at least 5x
the sequential throughput; logging on costs under 5% of p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pandas as pd

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "credit_fraud_sample.csv"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


@dataclass
class Figures:
    """One row of the result table."""

    label: str
    floor_ms: float | None = None
    floor_8_rows_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    logged_p50_ms: float | None = None
    sequential_rps: float | None = None
    concurrent_rps: float | None = None
    h2load_rps: float | None = None


# --- models --------------------------------------------------------------------------------


def register_models(root: Path, with_pycaret: bool) -> tuple[str, dict[str, pd.DataFrame]]:
    """Train and register the benchmark models; returns the tracking URI and feature frames."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench", artifact_location=(root / "art").as_uri())
    data = pd.read_csv(DATA)
    features = data.drop(columns="Class")

    def register(name: str, estimator: object) -> None:
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(features, estimator.predict(features.head(5))),
                input_example=features.head(2),
                serialization_format="cloudpickle",
                registered_model_name=name,
                pip_requirements=["scikit-learn"],
            )
        MlflowClient(tracking_uri).set_registered_model_alias(
            name, "production", info.registered_model_version
        )

    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1)
    )
    register("bench_sklearn_rf", forest.fit(features, data["Class"]))
    frames = {"bench_sklearn_rf": features}
    if with_pycaret:
        from pycaret.classification import ClassificationExperiment

        experiment_object = ClassificationExperiment()
        experiment_object.setup(
            data, target="Class", session_id=0, n_jobs=1, verbose=False, html=False
        )
        pipeline = experiment_object.finalize_model(
            experiment_object.create_model("rf", fold=2, verbose=False)
        )
        register("bench_pycaret_rf", pipeline)
        frames["bench_pycaret_rf"] = features
    return tracking_uri, frames


def loaded_estimator(tracking_uri: str, name: str) -> object:
    """The model as the predictor loads it (n_jobs set to 1)."""
    from mlplatform.common.model_loading import ModelReference, load_model

    return load_model(ModelReference.parse(name), tracking_uri).estimator


def floor_ms(estimator: object, rows: pd.DataFrame, repeats: int = 300) -> float:
    """p50 of the model's own predict on `rows`, in this process."""
    for _ in range(20):
        estimator.predict(rows)  # type: ignore[attr-defined]
    return percentile(timed(lambda: estimator.predict(rows), repeats), 0.5)  # type: ignore[attr-defined]


# --- servers --------------------------------------------------------------------------------


@contextmanager
def predictor_process(tracking_uri: str, model: str, store_uri: str, log: bool) -> Iterator[str]:
    """`mlp predictor` in its own process; yields its address once it serves the model."""
    mlp = shutil.which("mlp")
    if mlp is None:
        raise SystemExit("the mlp command is not installed (pip install -e .)")
    arguments = [mlp, "predictor", "--model", model, "--host", "127.0.0.1", "--port", "0"]
    arguments += ["--metrics-port", "-1", "--log-predictions" if log else "--no-log-predictions"]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLP_STORE_URI": store_uri}
    process = subprocess.Popen(
        arguments, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield _address_when_serving(process)
    finally:
        process.terminate()
        process.wait(60)


def _address_when_serving(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    address = None
    for line in process.stderr:
        match = LISTENING.search(line)
        if match:
            address = f"127.0.0.1:{match.group(1)}"
        if address and "serving " in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            return address
    raise RuntimeError("the predictor exited before serving its model")


class TrivialPredictor(predictor_pb2_grpc.PredictorServicer):
    """Answers every Predict with a fixed response: what the client and gRPC cost alone."""

    def __init__(self) -> None:
        self.response = predictor_pb2.PredictResponse(model_name="trivial", model_version="1")
        self.response.predictions.name = "prediction"
        self.response.predictions.int64_values.values.append(0)

    async def Predict(self, request, context):  # type: ignore[no-untyped-def]
        return self.response


def serve_trivial() -> None:
    """Run the trivial server (this script's `--serve-trivial` mode); prints its port."""

    async def main() -> None:
        server = grpc.aio.server()
        predictor_pb2_grpc.add_PredictorServicer_to_server(TrivialPredictor(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


@contextmanager
def trivial_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-trivial"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield f"127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.terminate()
        process.wait(30)


# --- load -----------------------------------------------------------------------------------


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Seconds taken by each of `repeats` runs of `action`."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def interleaved(actions: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """Time each action once per round, round after round.

    Interleaving puts every action under the same machine load (this machine is shared), so a
    difference between them is theirs, not the neighbours'.
    """
    for action in actions:
        for _ in range(50):
            action()  # warm-up
    timings: list[list[float]] = [[] for _ in actions]
    for _ in range(rounds):
        for index, action in enumerate(actions):
            started = time.perf_counter()
            action()
            timings[index].append(time.perf_counter() - started)
    return timings


def caller(channel: grpc.Channel, request: predictor_pb2.PredictRequest) -> Callable[[], object]:
    predict = predictor_pb2_grpc.PredictorStub(channel).Predict
    return lambda: predict(request, timeout=30)


def concurrent(
    address: str, request: predictor_pb2.PredictRequest, callers: int, seconds: float
) -> float:
    """Rows per second answered to `callers` threads calling back-to-back for `seconds`."""
    counts = [0] * callers
    deadline = time.perf_counter() + seconds + 1.0
    start_at = time.perf_counter() + 1.0  # the first second warms up and is not counted

    def caller(index: int) -> None:
        with grpc.insecure_channel(address) as channel:
            predict = predictor_pb2_grpc.PredictorStub(channel).Predict
            while (now := time.perf_counter()) < deadline:
                predict(request, timeout=30)
                if now >= start_at:
                    counts[index] += 1

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def h2load_throughput(
    address: str, request: predictor_pb2.PredictRequest, streams: int, folder: Path
) -> float | None:
    """Rows/s with `streams` concurrent calls from h2load (a C client: no Python in the way).

    Replays one pre-encoded gRPC request (1-byte flag, 4-byte length, message); None when
    h2load (Debian's nghttp2-client) is not installed.
    """
    h2load = shutil.which("h2load")
    if h2load is None:
        return None
    message = request.SerializeToString()
    body = folder / "request.grpc"
    body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    url = f"http://{address}/mlplatform.v1.Predictor/Predict"
    arguments = [h2load, "-c", "1", "-m", str(streams), "-d", str(body)]
    arguments += ["-H", "content-type: application/grpc", "-H", "te: trailers", url]
    subprocess.run([*arguments[:1], "-n", "200", *arguments[1:]], capture_output=True, check=True)
    output = subprocess.run(
        [*arguments[:1], "-n", "3000", *arguments[1:]], capture_output=True, text=True, check=True
    ).stdout
    if "3000 succeeded" not in output:
        raise RuntimeError(f"h2load calls failed:\n{output}")
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
    return float(match.group(1)) if match else None


def percentile(timings: list[float], share: float) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def measure_model(
    figures: Figures,
    tracking_uri: str,
    store_uri: str,
    features: pd.DataFrame,
    arguments: argparse.Namespace,
) -> None:
    """Floor, sequential latency with logging off and on (interleaved), throughput."""
    estimator = loaded_estimator(tracking_uri, figures.label)
    figures.floor_8_rows_ms = floor_ms(estimator, features.head(8), 100)
    row = features.head(1)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
    with (
        predictor_process(tracking_uri, figures.label, store_uri, log=False) as plain,
        predictor_process(tracking_uri, figures.label, store_uri, log=True) as logged,
        grpc.insecure_channel(plain) as plain_channel,
        grpc.insecure_channel(logged) as logged_channel,
    ):
        floor, calls, logged_calls = interleaved(
            [
                lambda: estimator.predict(row),  # type: ignore[attr-defined]
                caller(plain_channel, request),
                caller(logged_channel, request),
            ],
            arguments.calls,
        )
        figures.floor_ms = percentile(floor, 0.5)
        figures.p50_ms = percentile(calls, 0.5)
        figures.p99_ms = percentile(calls, 0.99)
        figures.logged_p50_ms = percentile(logged_calls, 0.5)
        figures.sequential_rps = len(calls) / sum(calls)
        figures.concurrent_rps = concurrent(plain, request, arguments.callers, arguments.seconds)
        figures.h2load_rps = h2load_throughput(plain, request, arguments.callers, arguments.workdir)


def measure_client(
    figures: Figures, request: predictor_pb2.PredictRequest, arguments: argparse.Namespace
) -> None:
    """The same load against a server that answers without a model: the client's own cost."""
    with trivial_process() as address, grpc.insecure_channel(address) as channel:
        [calls] = interleaved([caller(channel, request)], arguments.calls)
        figures.p50_ms = percentile(calls, 0.5)
        figures.p99_ms = percentile(calls, 0.99)
        figures.sequential_rps = len(calls) / sum(calls)
        figures.concurrent_rps = concurrent(address, request, arguments.callers, arguments.seconds)
        figures.h2load_rps = h2load_throughput(
            address, request, arguments.callers, arguments.workdir
        )


def show(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Figures], callers: int) -> None:
    header = (
        f"{'':<22}{'floor 1 row':>12}{'floor 8 rows':>13}{'p50':>8}{'p99':>8}"
        f"{'p50 logged':>11}{'seq rows/s':>11}{f'{callers} callers rows/s':>19}{'x seq':>7}"
        f"{'h2load rows/s':>15}{'x seq':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        speedup = h2load_speedup = None
        if row.concurrent_rps and row.sequential_rps:
            speedup = row.concurrent_rps / row.sequential_rps
        if row.h2load_rps and row.sequential_rps:
            h2load_speedup = row.h2load_rps / row.sequential_rps
        print(
            f"{row.label:<22}{show(row.floor_ms):>12}{show(row.floor_8_rows_ms):>13}"
            f"{show(row.p50_ms):>8}{show(row.p99_ms):>8}{show(row.logged_p50_ms):>11}"
            f"{show(row.sequential_rps, 0):>11}{show(row.concurrent_rps, 0):>19}"
            f"{show(speedup, 1):>7}{show(row.h2load_rps, 0):>15}{show(h2load_speedup, 1):>7}"
        )
    print(
        "(times in ms; floor = model.predict in process; p50/p99 = single-row gRPC calls from a "
        f"Python client; {callers} callers = Python threads; h2load = {callers} streams from "
        "h2load, one pre-encoded request)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-pycaret", action="store_true")
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_trivial:
        serve_trivial()
        return
    rows: list[Figures] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-predictor-") as folder:
        root = Path(folder)
        arguments.workdir = root
        print("training and registering the models...", flush=True)
        tracking_uri, frames = register_models(root, not arguments.skip_pycaret)
        store_uri = f"sqlite:///{root / 'store.db'}"
        for name, features in frames.items():
            print(f"measuring {name}...", flush=True)
            figures = Figures(name)
            measure_model(figures, tracking_uri, store_uri, features, arguments)
            rows.append(figures)
        print("measuring the client against a trivial server...", flush=True)
        trivial = Figures("client vs trivial")
        request = predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(frames["bench_sklearn_rf"].head(1))
        )
        measure_client(trivial, request, arguments)
        rows.append(trivial)
    print()
    print_table(rows, arguments.callers)
    load_after = os.getloadavg()
    print(
        f"load average before/after (1 min): {load_before[0]:.2f} / {load_after[0]:.2f} on "
        f"{os.cpu_count()} CPUs (other work on the machine skews every figure)"
    )


if __name__ == "__main__":
    main()
