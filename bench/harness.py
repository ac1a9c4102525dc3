"""What the bench scripts share: the benchmark models, servers in their own processes, timing
(interleaved with the in-process floor, rounds of throughput; from Python or from h2load), the
table and the verdicts.

Every script runs from a checkout with the project installed (scripts/setup): `mlp` is found
beside the interpreter running the script, venv active or not. This machine is shared and its
speed swings from minute to minute, so figures that are compared are measured interleaved (one
call of each in turn) or in rounds (each rate back to back), never minutes apart.

Over 300 lines: servers, the models, timing from two clients and output, each small, in one
module so that a bench imports one thing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
CREDIT_FRAUD = REPO / "examples" / "data" / "credit_fraud_sample.csv"
#: Seconds of calls before a rate starts counting (connections open, the batcher adapts).
WARM_UP_S = 0.5
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

Call = Callable[[], object]
#: What a bench names its timings and rates by (a path, or a (backend, path) pair).
K = TypeVar("K", bound=Hashable)


# --- commands and servers -------------------------------------------------------------------


def mlp_command() -> str:
    """The `mlp` beside this interpreter (the venv's, active or not), else the one on PATH."""
    beside = Path(sys.executable).with_name("mlp")
    mlp = str(beside) if beside.exists() else shutil.which("mlp")
    if mlp is None:
        raise SystemExit("the mlp command is not installed (run scripts/setup, then use .venv)")
    return mlp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def predictor_process(
    tracking_uri: str,
    model: str,
    store_uri: str,
    log: bool = False,
    options: Sequence[str] = (),
) -> Iterator[str]:
    """`mlp predictor` serving `model` in its own process; yields its address once it serves.

    `store_uri` is the bench's own store: the default one may belong to another release."""
    arguments = [mlp_command(), "predictor", "--model", model, "--host", "127.0.0.1"]
    arguments += ["--port", "0", "--metrics-port", "-1"]
    arguments += ["--log-predictions" if log else "--no-log-predictions", *options]
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
    seen = []
    for line in process.stderr:
        seen.append(line)
        match = _LISTENING.search(line)
        if match:
            address = f"127.0.0.1:{match.group(1)}"
        if address and "serving " in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            return address
    raise RuntimeError("the predictor exited before serving its model:\n" + "".join(seen[-20:]))


@contextmanager
def trivial_process() -> Iterator[str]:
    """bench/trivial_server.py in its own process; yields its address."""
    script = Path(__file__).with_name("trivial_server.py")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the trivial server did not start: {line!r}")
        yield f"127.0.0.1:{int(line)}"
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def gateway_process(predictor_address: str, *options: str) -> Iterator[str]:
    """`mlp gateway [options]` in front of `predictor_address`; yields its URL once /healthz
    answers."""
    import httpx

    port = free_port()
    # Metrics on a port of their own choosing, so several bench gateways never share 9096.
    arguments = [mlp_command(), "gateway", "--host", "127.0.0.1", "--port", str(port)]
    arguments += ["--metrics-port", "0"]
    process = subprocess.Popen(
        [*arguments, "--predictor", predictor_address, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


def http_caller(url: str, body: bytes | None, headers: dict[str, str] | None = None) -> Call:
    """Requests to `url` (GET without a body, else POST) on one keep-alive connection of
    http.client, the standard library's lean client: little client work per request."""
    parts = urlsplit(url)
    connection = HTTPConnection(parts.hostname, parts.port, timeout=30)
    method = "GET" if body is None else "POST"
    sent_headers = headers or ({} if body is None else {"content-type": "application/json"})

    def call() -> bytes:
        connection.request(method, parts.path, body=body, headers=sent_headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {payload[:300]!r}")
        return payload

    return call


# --- the benchmark models -------------------------------------------------------------------


#: The benchmark models, by their name on the command line: the name each is registered as.
BENCH_MODELS = {
    "forest": "bench_sklearn_rf",
    "rf": "bench_pycaret_rf",
    "lightgbm": "bench_pycaret_lightgbm",
}


def register_models(root: Path, models: Sequence[str] = ("forest",), trees: int = 100) -> str:
    """The benchmark models named (keys of BENCH_MODELS), trained on
    examples/data/credit_fraud_sample.csv (30 features) and registered as NAME@production in a
    fresh MLflow store under `root`; its tracking URI. `forest` is a StandardScaler + `trees`-
    tree random forest; `rf` and `lightgbm` are PyCaret pipelines (setup on the whole sample,
    `create_model` on 2 folds, `finalize_model`)."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a clean table
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench", artifact_location=(root / "art").as_uri())
    data = pd.read_csv(CREDIT_FRAUD)
    features = data.drop(columns="Class")
    for model in models:
        estimator = _trained(model, data, trees)
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(features, estimator.predict(features.head(5))),  # type: ignore[attr-defined]
                input_example=features.head(2),
                serialization_format="cloudpickle",
                registered_model_name=BENCH_MODELS[model],
                pip_requirements=["scikit-learn"],
            )
        MlflowClient(tracking_uri).set_registered_model_alias(
            BENCH_MODELS[model], "production", info.registered_model_version
        )
    return tracking_uri


def _trained(model: str, data, trees: int) -> object:  # type: ignore[no-untyped-def]
    """`model` fitted on the whole of `data` (see register_models)."""
    if model == "forest":
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        forest = RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=-1)
        return make_pipeline(StandardScaler(), forest).fit(
            data.drop(columns="Class"), data["Class"]
        )
    from pycaret.classification import ClassificationExperiment

    experiment = ClassificationExperiment()
    experiment.setup(data, target="Class", session_id=0, n_jobs=1, verbose=False, html=False)
    return experiment.finalize_model(experiment.create_model(model, fold=2, verbose=False))


def credit_fraud_features():  # type: ignore[no-untyped-def]
    """The benchmark models' feature frame."""
    import pandas as pd

    return pd.read_csv(CREDIT_FRAUD).drop(columns="Class")


def served_estimator(tracking_uri: str, name: str) -> object:
    """The model as the predictor loads it (n_jobs set to 1): what the floor calls."""
    from mlplatform.common.model_loading import ModelReference, load_model

    return load_model(ModelReference.parse(name), tracking_uri).estimator


def compiled_model(tracking_uri: str, name: str):  # type: ignore[no-untyped-def]
    """The model as `mlp predictor --compile auto` loads it: compiled and checked, or served by
    scikit-learn when it does not compile (its `backend` and `compile_reason` say which)."""
    from mlplatform.common.compiled_serving import CompileOptions
    from mlplatform.common.model_loading import ModelReference, load_model

    return load_model(ModelReference.parse(name), tracking_uri, compile_options=CompileOptions())


# --- timing ---------------------------------------------------------------------------------


def percentile(timings: Sequence[float], share: float) -> float:
    """The `share` percentile of `timings` (seconds), in milliseconds."""
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def timed(action: Call, repeats: int) -> list[float]:
    """Seconds taken by each of `repeats` runs of `action`."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def interleaved(actions: Mapping[K, Call], calls: int, warm_up: int = 50) -> dict[K, list[float]]:
    """`calls` timings (s) of each action, one call of each in turn, so that the changing load
    of a shared machine weighs on every action alike (the floor among them)."""
    for action in actions.values():
        for _ in range(warm_up):
            action()
    timings: dict[K, list[float]] = {label: [] for label in actions}
    for _ in range(calls):
        for label, action in actions.items():
            started = time.perf_counter()
            action()
            timings[label].append(time.perf_counter() - started)
    return timings


def rate(make_call: Callable[[], Call], callers: int, seconds: float) -> float:
    """Calls per second answered to `callers` threads calling back to back for `seconds`,
    each with its own call (connection) from `make_call`, after `WARM_UP_S` not counted."""
    counts = [0] * callers
    start_at = time.perf_counter() + WARM_UP_S
    deadline = start_at + seconds

    def caller(index: int) -> None:
        call = make_call()
        while (now := time.perf_counter()) < deadline:
            call()
            if now >= start_at:
                counts[index] += 1

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def rounds(rates: Mapping[K, Callable[[], float]], count: int) -> dict[K, list[float]]:
    """Each rate measured once per round, back to back, `count` rounds: a ratio of two rates
    is only meaningful between rates of the same round."""
    measured: dict[K, list[float]] = {label: [] for label in rates}
    for _ in range(count):
        for label, measure in rates.items():
            measured[label].append(measure())
    return measured


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median over rounds of numerator / denominator."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


# --- h2load ---------------------------------------------------------------------------------


class H2load:
    """h2load (Debian's nghttp2-client, C; scripts/ensure_h2load) replaying one pre-encoded
    request: gRPC over HTTP/2 (one connection, streams at a time), or HTTP/1.1 (`h1`:
    connections at a time)."""

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
        warm_up = f"--warm-up-time={round(WARM_UP_S * 1000)}ms"
        output = self.run(concurrency, f"--duration={round(seconds * 1000)}ms", warm_up)
        match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
        if match is None:
            raise RuntimeError(f"no rate in h2load's output:\n{output}")
        return float(match.group(1))


def h2load_interleaved(
    in_process: Mapping[K, Call], clients: Mapping[K, H2load], calls: int, block: int = 100
) -> dict[K, list[float]]:
    """Timings of the in-process calls and of each client's sequential calls, alternating in
    blocks of `block` (an h2load run per block: call by call would time h2load's start)."""
    timings: dict[K, list[float]] = {label: [] for label in [*in_process, *clients]}
    done = 0
    while done < calls:
        count = min(block, calls - done)
        for label, action in in_process.items():
            timings[label] += timed(action, count)
        for label, client in clients.items():
            timings[label] += client.sequential(count)
        done += count
    return timings


# --- output ---------------------------------------------------------------------------------


def show(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table: the first column left-aligned, the others right-aligned, figures
    already formatted (None prints as "-")."""
    cells = [[str(c) for c in columns]] + [
        ["-" if value is None else str(value) for value in row] for row in rows
    ]
    widths = [max(len(row[index]) for row in cells) for index in range(len(columns))]
    for number, row in enumerate(cells):
        first = row[0].ljust(widths[0])
        rest = "".join(
            cell.rjust(width + 2) for cell, width in zip(row[1:], widths[1:], strict=True)
        )
        print(first + rest)
        if number == 0:
            print("-" * (len(first) + len(rest)))


def verdict(name: str, figure: str, target: str, met: bool) -> str:
    """One target's line: its figure, the target, met or MISSED."""
    return f"{name}: {figure} ({target}): {'met' if met else 'MISSED'}"


@contextmanager
def load_report() -> Iterator[None]:
    """Prints the 1-minute load average before and after the block: other work on a shared
    machine skews every figure, and this says how much there was."""
    before = os.getloadavg()[0]
    yield
    after = os.getloadavg()[0]
    print(
        f"load average before/after (1 min): {before:.2f} / {after:.2f} on {os.cpu_count()} "
        "CPUs (other work on the machine skews every figure)"
    )
