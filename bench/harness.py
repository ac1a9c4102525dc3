"""What the bench scripts share: the benchmark model, servers in their own processes, timing
(interleaved with the in-process floor, rounds of throughput), the table and the verdicts.

Every script runs from a checkout with the project installed (scripts/setup): `mlp` is found
beside the interpreter running the script, venv active or not. This machine is shared and its
speed swings from minute to minute, so figures that are compared are measured interleaved (one
call of each in turn) or in rounds (each rate back to back), never minutes apart.

Just over 300 lines: servers, the model, timing and output, each small, in one module so that a
bench imports one thing.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
CREDIT_FRAUD = REPO / "examples" / "data" / "credit_fraud_sample.csv"
#: Seconds of calls before a rate starts counting (connections open, the batcher adapts).
WARM_UP_S = 0.5
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

Call = Callable[[], object]


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


# --- the benchmark model --------------------------------------------------------------------


def register_forest(root: Path, name: str = "bench_sklearn_rf", trees: int = 100) -> str:
    """StandardScaler + random forest on examples/data/credit_fraud_sample.csv (30 features),
    registered as `name@production` in a fresh MLflow store under `root`; its tracking URI."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a clean table
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench", artifact_location=(root / "art").as_uri())
    data = pd.read_csv(CREDIT_FRAUD)
    features = data.drop(columns="Class")
    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=-1)
    ).fit(features, data["Class"])
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            forest,
            name="model",
            signature=infer_signature(features, forest.predict(features.head(5))),
            input_example=features.head(2),
            serialization_format="cloudpickle",
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(tracking_uri).set_registered_model_alias(
        name, "production", info.registered_model_version
    )
    return tracking_uri


def credit_fraud_features():  # type: ignore[no-untyped-def]
    """The benchmark model's feature frame."""
    import pandas as pd

    return pd.read_csv(CREDIT_FRAUD).drop(columns="Class")


def served_estimator(tracking_uri: str, name: str) -> object:
    """The model as the predictor loads it (n_jobs set to 1): what the floor calls."""
    from mlplatform.common.model_loading import ModelReference, load_model

    return load_model(ModelReference.parse(name), tracking_uri).estimator


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


def interleaved(actions: dict[str, Call], calls: int, warm_up: int = 50) -> dict[str, list[float]]:
    """`calls` timings (s) of each action, one call of each in turn, so that the changing load
    of a shared machine weighs on every action alike (the floor among them)."""
    for action in actions.values():
        for _ in range(warm_up):
            action()
    timings: dict[str, list[float]] = {label: [] for label in actions}
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


def rounds(rates: dict[str, Callable[[], float]], count: int) -> dict[str, list[float]]:
    """Each rate measured once per round, back to back, `count` rounds: a ratio of two rates
    is only meaningful between rates of the same round."""
    measured: dict[str, list[float]] = {label: [] for label in rates}
    for _ in range(count):
        for label, measure in rates.items():
            measured[label].append(measure())
    return measured


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median over rounds of numerator / denominator."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


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
