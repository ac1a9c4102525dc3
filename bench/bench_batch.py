"""Benchmark of batch scoring: the same rows in-process, through the RabbitMQ inferer and on
Spark, rows per second side by side, and Spark's fixed cost.

    python bench/bench_batch.py [--rows 1000000] [--workers 1 2] [--files 2 4]
        [--arrow-rows 10000 50000] [--model-threads 1 2] [--warm-runs 2] [--chunk-rows 10000]
        [--skip-queue] [--output bench/BATCH.md]

The model and rows are bench_inferer's (a 100-tree random forest behind a StandardScaler, 30
float features, registered the way the trainer registers models), and so are the in-process
floor and the queue path, imported from it rather than copied:

- in-process: `LoadedModel.predict` (n_jobs=1, as served) over the rows in chunks of
  `--chunk-rows`, one thread; measured first and again last, the mean of the two reported;
- queue: `mlp inferer` processes (`--workers`, each count measured in turn) consuming the batch
  published by `submit_batch`, from the first publish until the batch is `succeeded`;
- Spark local[2]: `run_spark_batch`, the code `mlp batch spark` runs, over a Parquet input of
  `--files` files, for each `--arrow-rows` (`spark.sql.execution.arrow.maxRecordsPerBatch`)
  and each `--model-threads` (the threads a model may use inside a task: one session each).
  A session's start is timed; the first job is cold (Python workers
  start, the model loads), later jobs are warm. `scoring` is the write of the scored output
  alone, from the job's progress phases; `job` is the whole command (model download, checks,
  write, summary). Spark's fixed cost: session start plus the cold job's extra over a warm one.

Target (issue 21): warm Spark scoring reaches at least 50% of the in-process rate per core.
The table is printed and, with `--output`, written as Markdown. The machine's load average is
printed beside it: other work on a shared machine moves every figure.

Over 300 lines: three ways of scoring (in process, the queue, Spark with its settings) and the
table that sets them side by side; the queue path and the floor are bench_inferer.py's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import bench_inferer  # beside this file: the queue path and the in-process floor
import pandas as pd

from mlplatform.client import messaging
from mlplatform.common.store import open_store
from mlplatform.spark.job import SparkBatchOptions, run_spark_batch
from mlplatform.spark.session import start_session

TARGET_PER_CORE = 0.50
SPARK_CORES = 2
MODEL = "bench_sklearn_rf"


@dataclass
class Row:
    """One line of the table."""

    path: str
    setting: str
    seconds: float
    rows: int
    cores: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


@dataclass
class SparkRun:
    files: int
    arrow_rows: int
    model_threads: int
    cold_job: float
    warm_job: float
    warm_scoring: float


def spark_runs(
    rows: pd.DataFrame, tracking_uri: str, root: Path, arguments: argparse.Namespace
) -> tuple[float, list[SparkRun]]:
    """(session start seconds, a run per files x arrow-rows setting)."""
    results = []
    session_seconds = 0.0
    for threads in arguments.model_threads:
        seconds, runs = spark_session_runs(rows, tracking_uri, root, arguments, threads)
        session_seconds = session_seconds or seconds
        results.extend(runs)
    return session_seconds, results


def spark_session_runs(
    rows: pd.DataFrame,
    tracking_uri: str,
    root: Path,
    arguments: argparse.Namespace,
    threads: int,
) -> tuple[float, list[SparkRun]]:
    """One session whose Python workers let a model use `threads` threads."""
    conf = {
        "spark.executorEnv.LOKY_MAX_CPU_COUNT": str(threads),
        "spark.executorEnv.OMP_NUM_THREADS": str(threads),
    }
    began = time.perf_counter()
    spark = start_session(f"local[{SPARK_CORES}]", conf, f"bench-batch-{threads}")
    session_seconds = time.perf_counter() - began
    results = []
    try:
        store_uri = f"sqlite:///{root / 'spark-store.db'}"
        with open_store(store_uri) as store:
            for files in arguments.files:
                folder = root / f"input-{files}"
                folder.mkdir(exist_ok=True)
                size = -(-len(rows) // files)
                for index in range(files):
                    rows.iloc[index * size : (index + 1) * size].to_parquet(
                        folder / f"part-{index}.parquet"
                    )
                for arrow_rows in arguments.arrow_rows:
                    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_rows))
                    jobs = [
                        one_job(spark, store, store_uri, tracking_uri, folder, root)
                        for _ in range(1 + arguments.warm_runs)
                    ]
                    warm = sorted(jobs[1:])[len(jobs[1:]) // 2]  # the median warm job
                    results.append(
                        SparkRun(files, arrow_rows, threads, jobs[0][0], warm[0], warm[1])
                    )
                    print(
                        f"spark: {files} files, arrow {arrow_rows:,}, {threads} model thread(s): "
                        f"cold {jobs[0][0]:.1f} s, "
                        f"warm job {warm[0]:.1f} s, scoring {warm[1]:.1f} s",
                        flush=True,
                    )
    finally:
        spark.stop()
    return session_seconds, results


def one_job(
    spark: object, store: object, store_uri: str, tracking_uri: str, folder: Path, root: Path
) -> tuple[float, float]:
    """(job seconds, scoring seconds) of one `run_spark_batch`."""
    marks: dict[str, float] = {}

    def on_progress(done: int, known: int, phase: str) -> None:
        marks.setdefault(phase, time.perf_counter())

    output = tempfile.mkdtemp(dir=root, prefix="out-")
    os.rmdir(output)
    began = time.perf_counter()
    run_spark_batch(
        SparkBatchOptions(
            model=f"{MODEL}@{bench_inferer.ALIAS}",
            input_path=str(folder),
            output_path=output,
            sample_rows=0,
        ),
        store,  # type: ignore[arg-type]
        store_uri,
        tracking_uri,
        spark=spark,
        on_progress=on_progress,
    )
    job = time.perf_counter() - began
    scoring = marks.get("summarising", began + job) - marks.get("scoring", began)
    return job, scoring


def in_process_seconds(
    rows: pd.DataFrame, tracking_uri: str, arguments: argparse.Namespace
) -> float:
    seconds, chunks = bench_inferer.floor_seconds(
        tracking_uri, MODEL, rows, arguments.chunk_rows, False
    )
    del chunks
    print(f"in-process: {seconds:.1f} s", flush=True)
    return seconds


def queue_rows(
    rows: pd.DataFrame, tracking_uri: str, root: Path, arguments: argparse.Namespace
) -> list[Row]:
    broker_url = os.environ.get("MLP_BROKER_URL", messaging.DEFAULT_BROKER_URL)
    measured = []
    for workers in arguments.workers:
        settings = argparse.Namespace(
            inferer="process",
            workers=workers,
            chunk_rows=arguments.queue_chunk_rows,
            rows_per_message=arguments.rows_per_message,
            probabilities=False,
            # Spark's UDF scores with scikit-learn: the queue path does too, like for like.
            compile="off",
        )
        publish, total, *_ = bench_inferer.through_broker(
            MODEL, rows, tracking_uri, root, settings, broker_url
        )
        measured.append(
            Row(
                "queue inferer",
                f"{workers} worker(s), {arguments.rows_per_message:,} rows/message",
                total,
                len(rows),
                workers,
                f"publish {publish:.1f} s; rows stored in SQLite",
            )
        )
        print(f"queue: {workers} worker(s): {total:.1f} s", flush=True)
    return measured


def table(
    floor: Row, queue: list[Row], session_seconds: float, runs: list[SparkRun], rows: int
) -> str:
    lines = [
        "| path | setting | seconds | rows/s | cores | rows/s per core | vs in-process per core |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]

    def line(row: Row) -> str:
        per_core = row.rate / row.cores
        return (
            f"| {row.path} | {row.setting} | {row.seconds:.2f} | {row.rate:,.0f} | {row.cores} "
            f"| {per_core:,.0f} | {per_core / floor.rate:.0%} |"
        )

    lines.append(line(floor))
    lines.extend(line(row) for row in queue)
    for run in runs:
        setting = (
            f"{run.files} files, Arrow batches of {run.arrow_rows:,}, "
            f"{run.model_threads} model thread(s)"
        )
        lines.append(line(Row("Spark local[2], warm scoring", setting, run.warm_scoring, rows, 2)))
        lines.append(line(Row("Spark local[2], warm job", setting, run.warm_job, rows, 2)))
    best = min(runs, key=lambda run: run.warm_scoring)
    fixed = session_seconds + best.cold_job - best.warm_job
    lines += [
        "",
        f"Spark's fixed cost: session start {session_seconds:.1f} s + first job's extra "
        f"{best.cold_job - best.warm_job:.1f} s (Python workers start, the model loads) "
        f"= {fixed:.1f} s.",
    ]
    per_core = rows / best.warm_scoring / SPARK_CORES / floor.rate
    verdict = "ABOVE TARGET" if per_core >= TARGET_PER_CORE else "BELOW TARGET"
    lines.append(
        f"{verdict}: best warm Spark scoring ({best.files} files, Arrow {best.arrow_rows:,}) "
        f"is {per_core:.0%} of the in-process rate per core (target {TARGET_PER_CORE:.0%})."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--arrow-rows", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--warm-runs", type=int, default=2)
    parser.add_argument(
        "--model-threads", type=int, nargs="+", default=[2, 1],
        help="threads a model may use in each Spark task (a session each)",
    )  # fmt: skip
    parser.add_argument("--chunk-rows", type=int, default=10_000, help="in-process chunk")
    parser.add_argument("--queue-chunk-rows", type=int, default=2048)
    parser.add_argument("--rows-per-message", type=int, default=5000)
    parser.add_argument("--skip-queue", action="store_true")
    parser.add_argument("--output", type=Path, help="write the table here as Markdown")
    arguments = parser.parse_args(argv)
    if arguments.warm_runs < 1:
        parser.error("--warm-runs must be at least 1 (the warm figure is their median)")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    load_before = bench_inferer.load_average()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
            root = Path(scratch)
            training, rows = bench_inferer.make_data(arguments.rows)
            tracking_uri, _models = bench_inferer.register_models(root, training, False)
            floor_before = in_process_seconds(rows, tracking_uri, arguments)
            queue = [] if arguments.skip_queue else queue_rows(rows, tracking_uri, root, arguments)
            session_seconds, runs = spark_runs(rows, tracking_uri, root, arguments)
            floor_after = in_process_seconds(rows, tracking_uri, arguments)
    except bench_inferer.BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    # The floor before the queue runs and after the Spark runs: the machine's load moves it.
    floor = Row(
        "in-process",
        f"LoadedModel.predict, chunks of {arguments.chunk_rows:,} "
        f"(mean of {floor_before:.1f} s before and {floor_after:.1f} s after the rest)",
        (floor_before + floor_after) / 2,
        len(rows),
        1,
    )
    report = table(floor, queue, session_seconds, runs, len(rows))
    header = (
        f"{arguments.rows:,} rows of {bench_inferer.FEATURE_COUNT} doubles, scikit-learn RF "
        f"(100 trees); {os.cpu_count()} cores; load average before {load_before}, after "
        f"{bench_inferer.load_average()}"
    )
    print(f"\n{header}\n\n{report}")
    if arguments.output:
        arguments.output.write_text(
            f"# Batch scoring: in-process, queue inferer, Spark\n\n"
            f"`python bench/bench_batch.py {' '.join(argv or sys.argv[1:])}`\n\n"
            f"{header}\n\n{report}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
