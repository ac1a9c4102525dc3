"""Benchmark of the batch inferer: rows per second through RabbitMQ beside the model alone.

    python bench/bench_inferer.py [--rows 100000] [--rows-per-message 5000] [--workers 1]
        [--chunk-rows 2048] [--probabilities] [--inferer process|thread] [--skip-pycaret]
        [--compile auto|off] [--repeat 3]

Two models are trained on 30 float features (scikit-learn's make_classification) and registered
in a temporary MLflow store the way the trainer registers them: a plain scikit-learn pipeline
(StandardScaler + 100-tree random forest) and a PyCaret pipeline (its `lightgbm`, preprocessing
included, exported with `save_model`). For each:

- in-process floor: `LoadedModel.predict` (loaded by `model_loading.load_model` as the inferer
  serves it: n_jobs=1, and compiled by ONNX Runtime when `--compile auto`, the inferer's default,
  compiles it) over the same rows in chunks of `--chunk-rows`, the inferer's chunk size; the
  backend that served is printed beside the model;
- store alone: `Store.append_batch_predictions` of those predictions into a fresh SQLite store,
  in this process, with no broker: the most rows per second the store takes from one writer,
  a ceiling for any inferer writing to it;
- through the broker: `submit_batch` publishes the rows to a queue of the benchmark's own, and
  `--workers` inferers consume it into a temporary SQLite store. The clock runs from the first
  publish to the batch's status `succeeded`. Each inferer has already loaded the model (a
  warm-up batch goes first): loading is a one-off cost, not throughput.

By default the inferers are `mlp inferer` processes, as deployed: an inferer thread in this
process would share the GIL with the publisher. `--inferer thread` runs them as threads here.

The breakdown sums what the inferers report per part (worker-seconds, so with several workers
it can exceed the wall time): `predict` is the model calls, `prepare` is decoding the message,
checking the rows and building what the store writes, `store` is the time from a part's last
prediction until its rows were stored and the part counted (the writer process stores while the
model predicts, so this overlaps the next part's prediction). Target (issue 7): the broker rate
is at least 70% of the in-process rate. The verdict is printed; the exit status is non-zero
only when something failed. The load average is printed
too: on a shared machine, other work moves these figures (the floor alone was seen anywhere
from 57,000 to 90,000 rows/s here within minutes), so the floor and the broker run are
measured back to back `--repeat` times and the run with the median ratio is reported, beside
every ratio measured.

Over 300 lines: two models trained and registered, then for each the floor, the store alone and
the broker run with inferer processes or threads, repeated, and the report; what every bench
shares is in harness.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from harness import load_report, mlp_command, print_table, verdict  # beside this file

from mlplatform.client import messaging
from mlplatform.client.batches import submit_batch
from mlplatform.common.compiled_serving import CompileMode, CompileOptions
from mlplatform.common.consumer import QueueWorker
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.common.store import (
    BatchPredictions,
    BatchRecord,
    BatchStatus,
    Store,
    open_store,
    utc_now,
)
from mlplatform.inferer.batch_job import DEFAULT_CHUNK_ROWS
from mlplatform.inferer.model_cache import ModelCache
from mlplatform.inferer.worker import InfererHandler

TARGET_RATIO = 0.70
FEATURE_COUNT = 30
TRAINING_ROWS = 5000
TARGET_COLUMN = "label"
ALIAS = "production"
QUEUE_WAIT_MS = 2000
POLL_SECONDS = 0.01
BATCH_TIMEOUT_SECONDS = 1800.0
PART_LINE = re.compile(
    r"batch (?P<batch>\S+) part \d+/\d+: (?P<rows>\d+) rows by .* "
    r"\(predict (?P<predict>[\d.]+)s, prepare (?P<prepare>[\d.]+)s, store (?P<store>[\d.]+)s\)"
)


class BenchError(Exception):
    """The benchmark could not measure (as opposed to measuring a slow result)."""


@dataclass
class Result:
    """One model's figures."""

    label: str
    name: str
    rows: int
    floor_seconds: float
    store_alone_seconds: float
    publish_seconds: float
    total_seconds: float
    predict_seconds: float
    prepare_seconds: float
    store_seconds: float
    #: Every repeat's ratio, this result's among them.
    all_ratios: tuple[float, ...] = ()

    @property
    def floor_rate(self) -> float:
        return self.rows / self.floor_seconds

    @property
    def store_alone_rate(self) -> float:
        return self.rows / self.store_alone_seconds

    @property
    def broker_rate(self) -> float:
        return self.rows / self.total_seconds

    @property
    def ratio(self) -> float:
        return self.broker_rate / self.floor_rate


# --- data and models ----------------------------------------------------------------------------


def make_data(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (with the target column) and `rows` rows to predict, one distribution."""
    from sklearn.datasets import make_classification

    features, target = make_classification(
        n_samples=TRAINING_ROWS + rows,
        n_features=FEATURE_COUNT,
        n_informative=12,
        n_redundant=6,
        random_state=0,
    )
    frame = pd.DataFrame(features, columns=[f"f{index:02d}" for index in range(FEATURE_COUNT)])
    training = frame.iloc[:TRAINING_ROWS].assign(**{TARGET_COLUMN: target[:TRAINING_ROWS]})
    return training, frame.iloc[TRAINING_ROWS:].reset_index(drop=True)


def register_models(
    root: Path, training: pd.DataFrame, with_pycaret: bool
) -> tuple[str, dict[str, str]]:
    """Trains and registers the models; returns the tracking URI and {name: label}."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # MLflow resets it when imported
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment(
        "bench-inferer", artifact_location=(root / "artifacts").as_uri()
    )
    features = training.drop(columns=TARGET_COLUMN)

    def register(name: str, estimator: object) -> None:
        # As the trainer logs models: cloudpickle, with a signature.
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(features, estimator.predict(features.head(5))),
                input_example=features.head(2),
                serialization_format="cloudpickle",
                registered_model_name=name,
                pip_requirements=["scikit-learn"],  # skips inferring them: seconds per model
            )
        mlflow.MlflowClient(tracking_uri).set_registered_model_alias(
            name, ALIAS, info.registered_model_version
        )

    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1)
    )
    register("bench_sklearn_rf", forest.fit(features, training[TARGET_COLUMN]))
    models = {"bench_sklearn_rf": "scikit-learn RF, 100 trees"}
    if with_pycaret:
        from pycaret.classification import ClassificationExperiment

        experiment = ClassificationExperiment()
        experiment.setup(
            training, target=TARGET_COLUMN, session_id=0, n_jobs=1, verbose=False, html=False
        )
        model = experiment.finalize_model(
            experiment.create_model("lightgbm", fold=2, verbose=False)
        )
        pipeline, _filename = experiment.save_model(model, str(root / "pycaret"), verbose=False)
        register("bench_pycaret_lightgbm", pipeline)
        models["bench_pycaret_lightgbm"] = "PyCaret pipeline, lightgbm"
    return tracking_uri, models


# --- the in-process floor -----------------------------------------------------------------------

#: The backend each model's floor was served by (`LoadedModel.backend`), by model name.
BACKENDS: dict[str, str] = {}


def compile_options(compile_mode: str) -> CompileOptions | None:
    """What `mlp inferer --compile MODE` loads models with."""
    return None if compile_mode == "off" else CompileOptions(CompileMode(compile_mode))


def floor_seconds(
    tracking_uri: str,
    name: str,
    rows: pd.DataFrame,
    chunk_rows: int,
    probabilities: bool,
    compile_mode: str = "off",
) -> tuple[float, list[BatchPredictions]]:
    """Seconds the loaded model's own predict takes over `rows`, chunk by chunk; and the
    chunks' predictions as the inferer hands them to the store. `compile_mode` is the
    inferer's `--compile`."""
    model = load_model(
        ModelReference.parse(f"{name}@{ALIAS}"),
        tracking_uri,
        compile_options=compile_options(compile_mode),
    )
    BACKENDS[name] = model.backend
    checked = model.check(rows)
    model.predict(checked.iloc[:chunk_rows], with_probabilities=probabilities)  # warm-up
    outputs = []
    began = time.perf_counter()
    for start in range(0, len(checked), chunk_rows):
        chunk = checked.iloc[start : start + chunk_rows]
        outputs.append(model.predict(chunk, with_probabilities=probabilities))
    elapsed = time.perf_counter() - began
    created_at = utc_now()
    chunks = []
    batch_id = f"store-alone-{uuid.uuid4().hex[:10]}"
    for position, output in enumerate(outputs):
        start = position * chunk_rows
        chunks.append(
            BatchPredictions(
                model_name=model.name,
                model_version=model.version,
                batch_id=batch_id,
                row_offset=start,
                inputs=rows.iloc[start : start + chunk_rows],
                predictions=output.predictions,
                probabilities=output.probabilities,
                class_names=model.class_names if output.probabilities is not None else (),
                latency_ms=0.0,
                created_at=created_at,
            )
        )
    return elapsed, chunks


def store_alone_seconds(chunks: list[BatchPredictions], root: Path) -> float:
    """Seconds `append_batch_predictions` takes for these chunks into a fresh SQLite store."""
    with open_store(f"sqlite:///{root / f'store-alone-{uuid.uuid4().hex[:8]}.db'}") as store:
        began = time.perf_counter()
        inserted = sum(store.append_batch_predictions(chunk) for chunk in chunks)
        elapsed = time.perf_counter() - began
    if inserted != sum(len(chunk) for chunk in chunks):
        raise BenchError(f"the store alone inserted {inserted:,} rows")
    return elapsed


# --- inferers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def inferer_threads(
    count: int,
    queue: messaging.WorkQueue,
    store: Store,
    tracking_uri: str,
    broker_url: str,
    chunk_rows: int,
    log_path: Path,
    compile_mode: str,
) -> Iterator[None]:
    """`count` inferer workers in threads of this process, logging to `log_path`."""
    log_handler = logging.FileHandler(log_path)
    inferer_logger = logging.getLogger("mlplatform.inferer")
    inferer_logger.addHandler(log_handler)
    inferer_logger.setLevel(logging.INFO)
    workers: list[tuple[QueueWorker, threading.Thread]] = []
    try:
        for number in range(count):
            models = ModelCache(tracking_uri, compile_options=compile_options(compile_mode))
            handler = InfererHandler(models, store, chunk_rows=chunk_rows)
            worker = QueueWorker(queue, handler, store, broker_url, name=f"bench-{number}")
            thread = threading.Thread(target=worker.run, name=worker.name, daemon=True)
            thread.start()
            workers.append((worker, thread))
        for worker, _thread in workers:
            if not worker.consuming.wait(60):
                raise BenchError(f"inferer thread {worker.name} did not start consuming")
        yield
    finally:
        for worker, _thread in workers:
            worker.stop()
        for worker, thread in workers:
            thread.join(timeout=120)
            if thread.is_alive():
                print(f"warning: inferer thread {worker.name} did not stop", file=sys.stderr)
        inferer_logger.removeHandler(log_handler)
        log_handler.close()


@contextlib.contextmanager
def inferer_processes(
    count: int,
    queue: messaging.WorkQueue,
    store_uri: str,
    tracking_uri: str,
    broker_url: str,
    chunk_rows: int,
    log_path: Path,
    compile_mode: str,
) -> Iterator[None]:
    """`count` `mlp inferer` processes, logging to `log_path`."""
    mlp = mlp_command()
    if not Path(mlp).exists():
        raise BenchError("the mlp console script is not installed in this environment")
    environment = {
        **os.environ,
        "MLP_BATCHES_QUEUE": queue.name,
        "MLP_QUEUE_WAIT_MS": str(queue.wait_ms),
        "MLP_STORE_URI": store_uri,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLP_BROKER_URL": broker_url,
        "PYTHONWARNINGS": "ignore",
    }
    log = log_path.open("ab")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    [mlp, "inferer", "--chunk-rows", str(chunk_rows), "--compile", compile_mode],
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for(
            lambda: log_path.read_text(errors="replace").count(f"consuming {queue.name}") >= count,
            120,
            f"{count} inferer process(es) to start consuming",
            processes,
        )
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    processes: list[subprocess.Popen[bytes]] | None = None,
) -> Any:
    """`condition()` once it is truthy; BenchError on timeout or when an inferer dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for process in processes or ():
            if process.poll() is not None:
                raise BenchError(f"an inferer exited ({process.returncode}) before {what}")
        time.sleep(POLL_SECONDS)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished_batch(store: Store, batch_id: str) -> BatchRecord | None:
    try:
        batch = store.get_batch(batch_id)
    except KeyError:
        return None
    return batch if batch.status in (BatchStatus.SUCCEEDED, BatchStatus.FAILED) else None


def part_timings(log_path: Path, batch_id: str) -> tuple[int, float, float, float]:
    """(rows, predict, prepare, store seconds) summed over the batch's parts in the log."""
    rows = 0
    predict = prepare = store = 0.0
    for match in PART_LINE.finditer(log_path.read_text(errors="replace")):
        if match["batch"] == batch_id:
            rows += int(match["rows"])
            predict += float(match["predict"])
            prepare += float(match["prepare"])
            store += float(match["store"])
    return rows, predict, prepare, store


def through_broker(
    name: str,
    rows: pd.DataFrame,
    tracking_uri: str,
    root: Path,
    arguments: argparse.Namespace,
    broker_url: str,
) -> tuple[float, float, float, float, float]:
    """(publish, total, predict, prepare, store seconds) for one batch of `rows`."""
    tag = uuid.uuid4().hex[:10]
    queue = messaging.WorkQueue(f"bench.{tag}.batches", wait_ms=QUEUE_WAIT_MS)
    store_uri = f"sqlite:///{root / f'store-{tag}.db'}"
    log_path = root / f"inferer-{tag}.log"
    log_path.touch()
    model = f"{name}@{ALIAS}"
    compile_mode = getattr(arguments, "compile", "auto")  # the inferer's own default
    store = open_store(store_uri)
    try:
        if arguments.inferer == "process":
            inferers = inferer_processes(
                arguments.workers,
                queue,
                store_uri,
                tracking_uri,
                broker_url,
                arguments.chunk_rows,
                log_path,
                compile_mode,
            )
        else:
            inferers = inferer_threads(
                arguments.workers,
                queue,
                store,
                tracking_uri,
                broker_url,
                arguments.chunk_rows,
                log_path,
                compile_mode,
            )
        with inferers:
            # One small part per worker, so each has loaded the model before the clock starts.
            warm_up = submit_batch(
                rows.head(100 * arguments.workers),
                model,
                broker_url=broker_url,
                batch_id=f"warm-up-{tag}",
                rows_per_message=100,
                include_probabilities=arguments.probabilities,
                queue=queue,
            )
            warmed = wait_for(lambda: finished_batch(store, warm_up.batch_id), 300, "warm-up")
            if warmed.status is not BatchStatus.SUCCEEDED:
                raise BenchError(f"warm-up batch failed: {warmed.error}")

            batch_id = f"bench-{tag}"
            began = time.perf_counter()
            submission = submit_batch(
                rows,
                model,
                broker_url=broker_url,
                batch_id=batch_id,
                rows_per_message=arguments.rows_per_message,
                include_probabilities=arguments.probabilities,
                queue=queue,
            )
            published = time.perf_counter()
            batch = wait_for(
                lambda: finished_batch(store, batch_id), BATCH_TIMEOUT_SECONDS, "the batch"
            )
            finished = time.perf_counter()
        if batch.status is not BatchStatus.SUCCEEDED:
            raise BenchError(f"batch {batch_id} failed: {batch.error}")
        stored_rows = store.count_predictions(batch_id=batch_id)
        if stored_rows != len(rows) or submission.row_count != len(rows):
            raise BenchError(f"batch {batch_id}: {stored_rows:,} rows stored of {len(rows):,}")
        logged_rows, predict, prepare, store_seconds = part_timings(log_path, batch_id)
        if logged_rows < len(rows):
            raise BenchError(f"the inferer log accounts for {logged_rows:,} of {len(rows):,} rows")
        return published - began, finished - began, predict, prepare, store_seconds
    finally:
        store.close()
        with (
            contextlib.suppress(Exception),
            messaging.open_channel(broker_url) as (channel, _version),
        ):
            for queue_name in (queue.name, queue.dead_letter, queue.wait):
                channel.queue_delete(queue_name)


def measure_model(
    name: str,
    label: str,
    rows: pd.DataFrame,
    tracking_uri: str,
    root: Path,
    arguments: argparse.Namespace,
    broker_url: str,
) -> Result:
    """The floor and the broker run, back to back, `--repeat` times: the median-ratio run."""
    runs: list[Result] = []
    store_alone = 0.0
    for repeat in range(arguments.repeat):
        floor, chunks = floor_seconds(
            tracking_uri,
            name,
            rows,
            arguments.chunk_rows,
            arguments.probabilities,
            arguments.compile,
        )
        if repeat == 0:
            store_alone = store_alone_seconds(chunks, root)
        del chunks
        publish, total, predict, prepare, store = through_broker(
            name, rows, tracking_uri, root, arguments, broker_url
        )
        runs.append(
            Result(
                label, name, len(rows), floor, store_alone, publish, total, predict, prepare, store
            )
        )
    ratios = tuple(run.ratio for run in runs)
    median = sorted(runs, key=lambda run: run.ratio)[len(runs) // 2]
    return dataclasses.replace(median, all_ratios=ratios)


# --- report -------------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def print_report(results: list[Result], arguments: argparse.Namespace) -> None:
    messages = -(-arguments.rows // arguments.rows_per_message)
    print(
        f"{arguments.rows:,} rows of {FEATURE_COUNT} doubles in {messages} messages of "
        f"{arguments.rows_per_message:,}; {arguments.workers} inferer {arguments.inferer}(es); "
        f"chunks of {arguments.chunk_rows:,} rows; probabilities "
        f"{'on' if arguments.probabilities else 'off'}; {os.cpu_count()} cores"
    )
    print()
    print_table(
        ["model", "predict rows/s", "via broker rows/s", "ratio", "store rows/s", "publish s",
         "total s", "predict w-s", "prepare w-s", "store w-s"],
        [
            [f"{result.label} ({BACKENDS.get(result.name, '?')})",
             f"{result.floor_rate:,.0f}", f"{result.broker_rate:,.0f}",
             f"{result.ratio:.0%}", f"{result.store_alone_rate:,.0f}",
             f"{result.publish_seconds:.2f}", f"{result.total_seconds:.2f}",
             f"{result.predict_seconds:.2f}", f"{result.prepare_seconds:.2f}",
             f"{result.store_seconds:.2f}"]
            for result in results
        ],
    )  # fmt: skip
    print("(w-s: worker-seconds, summed over the inferers' parts)")
    if any(len(result.all_ratios) > 1 for result in results):
        print("\nratio of every run (the median run is shown above):")
        for result in results:
            print(f"  {result.label}: {', '.join(f'{ratio:.0%}' for ratio in result.all_ratios)}")
    for result in results:
        if result.store_alone_rate < TARGET_RATIO * result.floor_rate:
            print(
                f"note: {result.label}: the store alone takes {result.store_alone_rate:,.0f} "
                f"rows/s, under {TARGET_RATIO:.0%} of the model's {result.floor_rate:,.0f}: "
                "the store, not the broker, caps the rate"
            )
    print("\ntargets (issue 7):")
    for result in results:
        figure = f"{result.ratio:.0%} of the in-process rate"
        met = result.ratio >= TARGET_RATIO
        print(f"  {verdict(result.label, figure, f'>= {TARGET_RATIO:.0%}', met)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-message", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--probabilities", action="store_true", help="ask for probabilities too")
    parser.add_argument("--inferer", choices=("process", "thread"), default="process")
    parser.add_argument("--skip-pycaret", action="store_true")
    parser.add_argument(
        "--compile",
        choices=("auto", "off"),
        default="auto",
        help="the inferers' --compile, and how the floor's model is loaded (default: auto)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="floor and broker runs per model; median reported"
    )
    arguments = parser.parse_args(argv)
    for option in ("rows", "rows_per_message", "workers", "chunk_rows", "repeat"):
        if getattr(arguments, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    broker_url = os.environ.get("MLP_BROKER_URL", messaging.DEFAULT_BROKER_URL)

    with load_report():  # spans the measurements: other work on the machine skews them
        try:
            results = measure_models(arguments, broker_url)
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        print_report(results, arguments)
    return 0


def measure_models(arguments: argparse.Namespace, broker_url: str) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-inferer-") as scratch:
        root = Path(scratch)
        training, rows = make_data(arguments.rows)
        tracking_uri, models = register_models(root, training, not arguments.skip_pycaret)
        return [
            measure_model(name, label, rows, tracking_uri, root, arguments, broker_url)
            for name, label in models.items()
        ]


if __name__ == "__main__":
    sys.exit(main())
