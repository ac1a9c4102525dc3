"""`mlp inferer` (the batch worker), `mlp batch submit|status` and `mlp batches` (the user's
side). `mlp batch spark` lives in spark_commands.

Over 300 lines: the user's batch commands share how a batch is read, waited for and printed
(`_read_rows`, `_wait_for_batch`, `print_batch`), and `mlp inferer` is the consumer of what
`mlp batch submit` publishes. The worker command is the part to move out if this grows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlplatform.cli.service_startup import (
    log_format_option,
    log_level_option,
    start_logging,
    start_tracing,
)
from mlplatform.cli.trainer_commands import METRICS_HOST_OPTION, METRICS_PORT_OPTION
from mlplatform.common.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.common.store import BatchRecord, Store

batch_app = typer.Typer(
    help="Batch predictions: through RabbitMQ (submit) or on Spark (spark).", no_args_is_help=True
)

_FINAL = ("succeeded", "failed")


def _read_rows(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        typer.echo(f"{path}: no such file", err=True)
        raise typer.Exit(2)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    typer.echo(f"{path}: expected a .csv or .parquet file", err=True)
    raise typer.Exit(2)


def print_batch(batch: BatchRecord) -> None:
    """A batch as `mlp batch status` shows it: one line, then what else the record holds."""
    typer.echo(
        f"batch {batch.batch_id}: {batch.status.value}; "
        f"parts {len(batch.parts_done)}/{batch.part_count}; "
        f"rows {batch.rows_done}/{batch.rows_total or '?'}; "
        f"model {batch.model_name} v{batch.model_version or '?'}"
    )
    details = {
        "engine": batch.engine,
        "input": batch.input_uri,
        "output": batch.output_uri,
        "duration": None if batch.duration_seconds is None else f"{batch.duration_seconds:.1f} s",
        "rows logged": batch.rows_logged,
        "predictions": batch.prediction_summary,
        "error": batch.error,
    }
    for label, value in details.items():
        if value is not None:
            typer.echo(f"  {label}: {value}")


@batch_app.command("submit")
def batch_submit(
    rows_file: Path = typer.Argument(..., help="Rows to predict: .csv or .parquet."),
    model: str = typer.Option(..., "--model", help="NAME@ALIAS or NAME/VERSION."),
    rows_per_message: int = typer.Option(5000, min=1, help="Rows in each message."),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also keep class probabilities."
    ),
    batch_id: str = typer.Option("", "--id", help="Batch id (idempotency key); default: new."),
    key_column: str = typer.Option(
        "",
        "--key-column",
        help="A column holding your own key per row (not a model input): stored with each "
        "prediction, so `mlp outcomes` can name predictions by it (prediction_key).",
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until every part is done."),
    timeout: float = typer.Option(3600.0, help="With --wait: give up after this many seconds."),
    broker_url: str = typer.Option("", help="RabbitMQ URL; default: MLP_BROKER_URL."),
) -> None:
    """Split a file into messages and publish them to the inferers (publisher confirms)."""
    import pika.exceptions

    from mlplatform.cli.live_progress import is_terminal, new_progress
    from mlplatform.client.batches import submit_batch
    from mlplatform.client.frames import FrameError
    from mlplatform.common.model_loading import ModelReference
    from mlplatform.common.store import BatchRecord, open_store

    try:
        reference = ModelReference.parse(model)
    except ValueError as error:
        typer.echo(f"--model: {error}", err=True)
        raise typer.Exit(2) from None
    rows = _read_rows(rows_file)
    start_tracing("submit")  # the trace of this batch starts at its publish
    settings = get_settings()
    url = broker_url or settings.broker_url
    store = open_store(settings.resolved_store_uri)
    try:
        with new_progress() if is_terminal() else _NoProgress() as progress:
            task = progress.add_task("publishing", total=None)
            submission = submit_batch(
                rows,
                str(reference),
                broker_url=url,
                batch_id=batch_id or None,
                rows_per_message=rows_per_message,
                include_probabilities=probabilities,
                key_column=key_column or None,
                queue=settings.batches_work_queue,
                on_part=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (FrameError, ValueError) as error:
        typer.echo(f"{rows_file}: {error}", err=True)
        raise typer.Exit(2) from None
    except pika.exceptions.AMQPConnectionError:
        typer.echo(f"cannot reach RabbitMQ at {url}; is it running?", err=True)
        raise typer.Exit(1) from None
    created = store.create_batch(
        BatchRecord(
            batch_id=submission.batch_id,
            model_name=reference.name,
            part_count=submission.part_count,
            rows_total=submission.row_count,
            engine="queue",
            input_uri=str(rows_file),
        )
    )
    if not created.created and created.record.rows_total is None:
        store.update_batch(submission.batch_id, rows_total=submission.row_count)
    typer.echo(
        f"submitted batch {submission.batch_id}: {submission.row_count} rows "
        f"in {submission.part_count} messages"
    )
    if not wait:
        return
    final = _wait_for_batch(store, submission.batch_id, timeout)
    if final is None:
        typer.echo(f"batch {submission.batch_id} did not finish within {timeout:.0f}s", err=True)
        raise typer.Exit(1)
    print_batch(final)
    raise typer.Exit(0 if final.status.value == "succeeded" else 1)


def _wait_for_batch(store: Store, batch_id: str, timeout: float) -> BatchRecord | None:
    """Follows the batch's parts until it ends: a bar on a terminal, a line per change when
    piped. None when it did not end within `timeout`."""
    from mlplatform.cli.live_progress import is_terminal, new_progress

    live = is_terminal()
    deadline = time.monotonic() + timeout
    last_seen = (-1, -1)
    with new_progress() if live else _NoProgress() as progress:
        task = progress.add_task("predicting", total=None)
        while time.monotonic() < deadline:
            batch = store.get_batch(batch_id)
            done = (len(batch.parts_done), batch.rows_done)
            if done != last_seen:
                last_seen = done
                if live:
                    progress.update(task, completed=done[0], total=batch.part_count)
                else:
                    print(f"parts {done[0]}/{batch.part_count}; rows {done[1]}", flush=True)
            if batch.status.value in _FINAL:
                return batch
            time.sleep(0.5)
    return None


class _NoProgress:
    """What a piped `--wait` uses instead of bars: nothing (it prints lines itself)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, **fields: object) -> None:
        return None


@batch_app.command("status")
def batch_status(batch_id: str = typer.Argument(..., help="The batch id.")) -> None:
    """Show a batch: status, parts and rows done, model version, any error."""
    from mlplatform.common.store import NotFoundError, open_store

    with open_store(get_settings().resolved_store_uri) as store:
        try:
            batch = store.get_batch(batch_id)
        except NotFoundError:
            typer.echo(f"batch '{batch_id}' not found", err=True)
            raise typer.Exit(1) from None
    print_batch(batch)


def batches(
    limit: int = typer.Option(20, min=1, help="How many, the most recent first."),
    status: str = typer.Option("", help="Only batches in this state (pending, running, ...)."),
) -> None:
    """List recent batches, from the queue inferers and from Spark alike."""
    from mlplatform.common.store import BatchStatus, open_store

    if status and status not in {member.value for member in BatchStatus}:
        choices = ", ".join(member.value for member in BatchStatus)
        typer.echo(f"--status: expected one of {choices}; got {status!r}", err=True)
        raise typer.Exit(2)
    with open_store(get_settings().resolved_store_uri) as store:
        found = store.list_batches(limit=limit, status=status or None)
    if not found:
        typer.echo("no batches")
    for batch in found:
        duration = "" if batch.duration_seconds is None else f"{batch.duration_seconds:.1f}s"
        typer.echo(
            f"{batch.batch_id}  {batch.status.value:<9}  {batch.engine or 'queue':<5}  "
            f"{batch.model_name} v{batch.model_version or '?'}  "
            f"rows {batch.rows_done}/{batch.rows_total or '?'}  {duration}  "
            f"{batch.created_at:%Y-%m-%d %H:%M:%S}"
        )


def inferer(
    broker_url: str = typer.Option("", help="RabbitMQ URL; default: MLP_BROKER_URL."),
    chunk_rows: int = typer.Option(2048, min=1, help="Rows per model call."),
    max_attempts: int = typer.Option(3, help="Tries of a part that fails for transient reasons."),
    recheck_seconds: float = typer.Option(30.0, help="How often an alias is looked up again."),
    require_model_tag: str = typer.Option(
        "",
        "--require-model-tag",
        envvar="MLP_INFERER_REQUIRE_MODEL_TAG",
        help="KEY[=VALUE]: predict only with versions that have this registry tag "
        "(mlp.pipeline_id: only what the platform's trainer registered).",
    ),
    compile_mode: str = typer.Option(
        "auto",
        "--compile",
        envvar="MLP_INFERER_COMPILE",
        help="auto: predict with the model compiled by ONNX Runtime when it gives the same "
        "answers, else scikit-learn; onnx: compiled or not at all; off: never compile.",
    ),
    compile_tolerance: float = typer.Option(
        1e-6,
        "--compile-tolerance",
        envvar="MLP_INFERER_COMPILE_TOLERANCE",
        min=0,
        help="Largest probability difference the compile check allows.",
    ),
    log_level: str = log_level_option(),
    log_format: str | None = log_format_option(),
    metrics_host: str = METRICS_HOST_OPTION,
    metrics_port: int = METRICS_PORT_OPTION,
) -> None:
    """Start a batch inferer: consume prediction requests until SIGTERM or Ctrl-C.

    Start several to share the queue round-robin (each with its own --metrics-port).
    MLP_INFERER_METRICS_HOST and MLP_INFERER_METRICS_PORT set the metrics endpoint too.
    """
    from mlplatform.cli.trainer_commands import serve_worker_metrics, stop_on_signals
    from mlplatform.common.compiled_serving import CompileMode, CompileOptions
    from mlplatform.common.consumer import QueueWorker, worker_name
    from mlplatform.common.metrics_endpoint import InfererMetricsSettings
    from mlplatform.common.model_tags import ModelTagRequirement
    from mlplatform.common.store import open_store
    from mlplatform.inferer.chunk_writers import ProcessChunkWriter
    from mlplatform.inferer.metrics import InfererMetrics
    from mlplatform.inferer.model_cache import ModelCache
    from mlplatform.inferer.worker import InfererHandler

    modes = [mode.value for mode in CompileMode]
    if compile_mode not in modes:
        typer.echo(
            f"mlp inferer: --compile: expected one of {modes}; got {compile_mode!r}", err=True
        )
        raise typer.Exit(2)
    try:
        required_tag = ModelTagRequirement.parse(require_model_tag) if require_model_tag else None
        compile_options = CompileOptions(CompileMode(compile_mode), compile_tolerance)
    except ValueError as error:
        typer.echo(f"mlp inferer: {error}", err=True)
        raise typer.Exit(2) from None
    start_logging("inferer", log_level, log_format)
    start_tracing("inferer")
    metrics = InfererMetrics()
    endpoint = serve_worker_metrics(
        "mlp inferer", InfererMetricsSettings, metrics_host, metrics_port, metrics.registry
    )
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_uri)
    models = ModelCache(
        settings.resolved_mlflow_tracking_uri,
        recheck_seconds,
        required_tag=required_tag,
        compile_options=compile_options,
    )
    writer = ProcessChunkWriter(settings.resolved_store_uri)
    writer.warm_up()
    handler = InfererHandler(models, store, max_attempts, chunk_rows, writer, metrics)
    worker = QueueWorker(
        settings.batches_work_queue,
        handler,
        store,
        broker_url or settings.broker_url,
        name=worker_name("inferer"),
        prefetch=3,  # parts in flight: one checked, one predicted, one stored (the handler)
        metrics=metrics.queue,
    )
    stop_on_signals(worker)
    try:
        worker.run()
    finally:
        handler.close()
        store.close()
        if endpoint is not None:
            endpoint.stop()


def register(app: typer.Typer) -> None:
    """Adds the batch commands to the `mlp` app."""
    app.command("inferer")(inferer)
    app.command("batches")(batches)
    app.add_typer(batch_app, name="batch")
