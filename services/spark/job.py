"""One Spark batch from start to end: checks, a batch record, scoring, output, log, record.

Everything that can be checked without Spark is checked first (model reference, registry,
input path and columns, output path, Java), so a mistake costs seconds. The batch record is
created before Spark starts and ends `succeeded` with its rows, duration and prediction
summary, or `failed` with the reason; either way `mlp batch status ID` shows it.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.common.store import BatchRecord, BatchStatus, Store
from mlplatform.spark.errors import SparkBatchError
from mlplatform.spark.inputs import (
    BatchInput,
    check_columns,
    check_kinds,
    is_remote,
    resolve_input,
)
from mlplatform.spark.models import download_model, parse_reference
from mlplatform.spark.progress import ProgressCallback, StageProgress
from mlplatform.spark.scoring import (
    ROW_INDEX_COLUMN,
    ModelForSpark,
    output_columns,
    scored_frame,
    spark_kind,
)
from mlplatform.spark.session import DEFAULT_MASTER, java_executable, start_session

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_ROWS = 1000
_SAMPLE_SEED = 17
_RAISED = re.compile(r"^(?:[\w.]+(?:Error|Exception)): (.+)$")


@dataclass(frozen=True)
class SparkBatchOptions:
    """What `mlp batch spark` was asked to do."""

    model: str
    input_path: str
    output_path: str
    master: str = DEFAULT_MASTER
    id_column: str | None = None
    with_probabilities: bool = False
    conf: dict[str, str] = field(default_factory=dict)
    input_format: str | None = None
    log_predictions: bool = False
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    overwrite: bool = False
    batch_id: str | None = None


@dataclass(frozen=True)
class SparkBatchResult:
    batch: BatchRecord
    rows: int
    seconds: float


def run_spark_batch(
    options: SparkBatchOptions,
    store: Store,
    store_uri: str,
    tracking_uri: str,
    spark: Any = None,
    on_progress: ProgressCallback | None = None,
) -> SparkBatchResult:
    """Runs the batch on `spark` (or on a session started for `options.master` and stopped
    at the end); SparkBatchError for what the user must fix, with the batch record failed
    when it had been created."""
    started = time.perf_counter()
    reference = parse_reference(options.model)
    batch_input = resolve_input(options.input_path, options.input_format)
    _check_output(options.output_path, options.overwrite)
    if options.sample_rows < 0:
        raise SparkBatchError("--log-sample", f"must be >= 0; got {options.sample_rows}")
    with tempfile.TemporaryDirectory(prefix="mlp-spark-model-") as model_folder:
        model = download_model(reference, tracking_uri, Path(model_folder))
        if batch_input.columns is not None:
            check_columns(
                model.input_schema, batch_input.columns, options.id_column, batch_input.path
            )
        if spark is None:
            java_executable()  # before the record: no Java is a setup error, not a failed batch
        batch_id = options.batch_id or uuid.uuid4().hex
        created = store.create_batch(
            BatchRecord(
                batch_id=batch_id,
                model_name=model.name,
                model_version=model.version,
                part_count=1,
                status=BatchStatus.RUNNING,
                engine="spark",
                input_uri=_shown_path(options.input_path),
                output_uri=_shown_path(options.output_path),
            )
        )
        if not created.created:
            raise SparkBatchError("--id", f"batch {batch_id!r} exists already")
        owns_session = spark is None
        try:
            if owns_session:
                spark = start_session(options.master, options.conf, f"mlp-batch-{batch_id[:12]}")
            with StageProgress(spark.sparkContext, on_progress or _no_progress) as progress:
                rows, summary, logged = _score(
                    spark, options, batch_input, model, store, store_uri, batch_id, progress
                )
        except BaseException as error:
            message = str(error) if isinstance(error, SparkBatchError) else _short(error)
            store.update_batch(
                batch_id,
                status=BatchStatus.FAILED,
                error=message,
                duration_seconds=time.perf_counter() - started,
            )
            if isinstance(error, SparkBatchError | KeyboardInterrupt):
                raise
            raise SparkBatchError("spark", message) from error
        finally:
            if owns_session and spark is not None:
                spark.stop()
    store.update_batch(
        batch_id,
        rows_total=rows,
        duration_seconds=time.perf_counter() - started,
        rows_logged=logged,
        prediction_summary=summary,
    )
    record = store.mark_batch_part_done(batch_id, 0, rows)
    return SparkBatchResult(record, rows, time.perf_counter() - started)


def _score(
    spark: Any,
    options: SparkBatchOptions,
    batch_input: BatchInput,
    model: ModelForSpark,
    store: Store,
    store_uri: str,
    batch_id: str,
    progress: StageProgress,
) -> tuple[int, dict[str, Any], int]:
    """Reads, scores, writes; returns (rows, prediction summary, rows logged)."""
    from pyspark.sql import functions

    from mlplatform.spark import prediction_log

    progress.phase = "reading the schema"
    rows = _read(spark, batch_input)
    check_columns(model.input_schema, tuple(rows.columns), options.id_column, batch_input.path)
    check_kinds(
        model.input_schema,
        {item.name: spark_kind(item.dataType) for item in rows.schema.fields},
    )
    input_columns = [spec.name for spec in model.input_schema]
    indexed = rows.withColumn(ROW_INDEX_COLUMN, functions.monotonically_increasing_id())
    scored = scored_frame(spark, indexed, model, options.with_probabilities)
    if options.log_predictions:
        # Scored once, read twice (output and log): kept on the executors, not the driver.
        scored = scored.persist()
    progress.phase = "scoring"
    scored.select(*output_columns(model, options.id_column, options.with_probabilities)).write.mode(
        "overwrite" if options.overwrite else "errorifexists"
    ).parquet(options.output_path)
    progress.phase = "summarising"
    output = spark.read.parquet(options.output_path)
    summary = prediction_log.prediction_summary(output, model)
    row_count = int(summary["rows"])
    logged = 0
    if options.log_predictions:
        progress.phase = "logging every row"
        logged = prediction_log.log_every_row(
            scored, store_uri, batch_id, model, input_columns, options.id_column
        )
        scored.unpersist()
    elif options.sample_rows and row_count:
        progress.phase = "logging a sample"
        # Sampled before scoring (the row index is given first, so it matches the output's),
        # so only the sampled rows are scored a second time; a little more than asked for is
        # drawn and cut on the driver, which is one Spark job where `limit` can be several.
        fraction = min(1.0, 1.2 * options.sample_rows / row_count)
        sampled = indexed.where(functions.rand(_SAMPLE_SEED) < fraction)
        sample = scored_frame(spark, sampled, model, options.with_probabilities).toPandas()
        logged = prediction_log.log_sample(
            store,
            sample.head(options.sample_rows),
            batch_id,
            model,
            input_columns,
            options.id_column,
        )
    return row_count, summary, logged


def _read(spark: Any, batch_input: BatchInput) -> Any:
    reader = spark.read
    if batch_input.format == "csv":
        # Types inferred as pandas would for the queue path; CSV is the small-data format.
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        return reader.format(batch_input.format).load(batch_input.path)
    except Exception as error:  # AnalysisException: path not found, unreadable files
        raise SparkBatchError("--input", f"{batch_input.path}: {_short(error)}") from None


def _check_output(path: str, overwrite: bool) -> None:
    if is_remote(path):
        return
    local = Path(path.removeprefix("file://"))
    if local.exists() and not overwrite:
        raise SparkBatchError("--output", f"{path} exists; pass --overwrite to replace it")
    if local.exists() and local.is_file():
        raise SparkBatchError("--output", f"{path} is a file; Spark writes a directory")
    if not local.parent.exists():
        raise SparkBatchError("--output", f"{local.parent}: no such directory")


def _shown_path(path: str) -> str:
    """A local path made absolute (the record outlives the working folder); URIs as given."""
    return path if is_remote(path) else str(Path(path.removeprefix("file://")).absolute())


def _short(error: BaseException) -> str:
    """What went wrong in one line, without the JVM's or Python worker's stack trace: the
    last `SomeError: message` line of a traceback, else the first plain line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    raised = [match[1] for line in lines if (match := _RAISED.match(line))]
    if raised:
        return raised[-1][:500]
    for line in lines:
        if not line.startswith(("Traceback", "File ", "at ", "An error occurred while")):
            return line.removeprefix(": ")[:500]
    return "the Spark job failed"


def _no_progress(done: int, known: int, phase: str) -> None:
    return None
