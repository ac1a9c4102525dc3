"""`mlp submit`, `mlp train` and `mlp trainer`: running pipelines through the queue or here."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mlplatform.cli.pipeline_commands import EXIT_INVALID
from mlplatform.cli.service_startup import (
    log_format_option,
    log_level_option,
    start_logging,
    start_tracing,
)
from mlplatform.client.data_roots import DataRoots
from mlplatform.client.pipelines import PipelineError, check_pipeline, load_pipeline_file
from mlplatform.common.settings import get_settings
from mlplatform.v1 import messages_pb2, pipeline_pb2

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from mlplatform.common.metrics_endpoint import MetricsEndpoint, WorkerMetricsSettings


METRICS_HOST_OPTION = typer.Option(
    None, "--metrics-host", help="Interface of the metrics endpoint (default 0.0.0.0)."
)
METRICS_PORT_OPTION = typer.Option(
    None,
    "--metrics-port",
    help="Prometheus port (default: none, -1; 0 picks one). Give each worker its own.",
)


def _load_or_exit(
    pipeline_file: Path, data_roots: DataRoots | None = None
) -> pipeline_pb2.PipelineDefinition:
    """The checked definition (data sources against `data_roots` when known), or exit 2."""
    try:
        definition = load_pipeline_file(pipeline_file)
        if data_roots is not None:
            check_pipeline(definition, str(pipeline_file), data_roots)
        return definition
    except PipelineError as error:
        typer.echo(f"{pipeline_file}: invalid pipeline", err=True)
        for field_error in error.errors:
            typer.echo(f"  {field_error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def submit(
    pipeline_file: Path = typer.Argument(..., help="Pipeline definition (.json, .yaml)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run until it ends."),
    timeout: float = typer.Option(3600.0, help="With --wait: give up after this many seconds."),
    pipeline_id: str = typer.Option("", "--id", help="Run id (idempotency key); default: new."),
    broker_url: str = typer.Option("", help="RabbitMQ URL; default: MLP_BROKER_URL."),
) -> None:
    """Validate a pipeline and publish it to the trainers; print its id.

    With --wait, show the run as it goes: each step, each model's cross-validated score
    as it finishes, tuning, ensembling, plotting and registering, with progress bars on a
    terminal (plain lines when piped), then the outcome (exit 1 when the run failed).
    Nothing is published when the file is invalid (exit 2).
    """
    import pika.exceptions

    from mlplatform.cli.live_progress import EventDisplay
    from mlplatform.client.submit import FollowTimeout, submit_pipeline

    # The trainers' roots are known here only when MLP_DATA_ROOTS is set; they check anyway.
    definition = _load_or_exit(pipeline_file, DataRoots.from_environment())
    start_tracing("submit")  # the trace of this submission starts at its publish
    settings = get_settings()
    url = broker_url or settings.broker_url
    try:
        submission = submit_pipeline(
            definition,
            broker_url=url,
            pipeline_id=pipeline_id or None,
            follow=wait,
            timeout=timeout,
            queue=settings.pipelines_work_queue,
        )
    except pika.exceptions.AMQPConnectionError:
        typer.echo(
            f"cannot reach RabbitMQ at {url}; is it running? (rabbitmq-server -detached)", err=True
        )
        raise typer.Exit(1) from None
    typer.echo(f"submitted pipeline {submission.pipeline_id}")
    if submission.events is None:
        return
    final: messages_pb2.PipelineEvent | None = None
    try:
        with EventDisplay() as display:
            for event in submission.events:
                display.show(event)
                final = event
    except FollowTimeout as error:
        typer.echo(f"{error}; the run goes on: mlp runs {submission.pipeline_id}", err=True)
        raise typer.Exit(1) from None
    if final is None or final.status != messages_pb2.RUN_STATUS_SUCCEEDED:
        raise typer.Exit(1)


def train(
    pipeline_file: Path = typer.Argument(..., help="Pipeline definition (.json, .yaml)."),
    pipeline_id: str = typer.Option("", "--id", help="Run id; default: new."),
) -> None:
    """Run a pipeline here, in this process, with no broker (notebooks, quick tries).

    Records the run in the store (MLP_STORE_URI) and MLflow (MLFLOW_TRACKING_URI) like
    a trainer would. Exits 1 when the run fails.
    """
    from mlplatform.cli.live_progress import EventDisplay
    from mlplatform.client.messaging import new_id
    from mlplatform.common.store import RunStatus, open_store
    from mlplatform.trainer.runner import PipelineRunner
    from mlplatform.trainer.steps.base import DataLimits

    settings = get_settings()
    definition = _load_or_exit(pipeline_file, settings.resolved_data_roots)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    submission = messages_pb2.SubmitPipeline(
        pipeline_id=pipeline_id or new_id(), definition=definition, submitted_by="mlp train"
    )
    typer.echo(f"running pipeline {submission.pipeline_id}")
    with open_store(settings.resolved_store_uri) as store, EventDisplay() as display:

        class ShowEvents:
            def publish(self, event: messages_pb2.PipelineEvent) -> None:
                display.show(event)

        runner = PipelineRunner(
            store,
            settings.resolved_mlflow_tracking_uri,
            ShowEvents(),
            data_roots=settings.resolved_data_roots,
            data_limits=DataLimits(settings.max_data_bytes, settings.max_zip_ratio),
        )
        record = runner.run(submission, worker_id="mlp-train")
    if record.status != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


def trainer(
    broker_url: str = typer.Option("", help="RabbitMQ URL; default: MLP_BROKER_URL."),
    max_attempts: int = typer.Option(3, help="Tries of a job that fails for transient reasons."),
    lease_seconds: float = typer.Option(
        60.0, help="A run whose worker has not reported for this long is taken over."
    ),
    log_level: str = log_level_option(),
    log_format: str | None = log_format_option(),
    metrics_host: str = METRICS_HOST_OPTION,
    metrics_port: int = METRICS_PORT_OPTION,
) -> None:
    """Start a trainer worker: consume pipelines from RabbitMQ until SIGTERM or Ctrl-C.

    Start several to share the queue round-robin (each with its own --metrics-port).
    MLP_TRAINER_METRICS_HOST and MLP_TRAINER_METRICS_PORT set the metrics endpoint too.
    """
    from mlplatform.common.consumer import QueueWorker, worker_name
    from mlplatform.common.metrics_endpoint import TrainerMetricsSettings
    from mlplatform.common.store import open_store
    from mlplatform.trainer.metrics import ObservedEvents, TrainerMetrics
    from mlplatform.trainer.runner import PipelineRunner
    from mlplatform.trainer.steps.base import DataLimits
    from mlplatform.trainer.worker import BrokerEvents, TrainerHandler

    start_logging("trainer", log_level, log_format)
    start_tracing("trainer")
    metrics = TrainerMetrics()
    endpoint = serve_worker_metrics(
        "mlp trainer", TrainerMetricsSettings, metrics_host, metrics_port, metrics.registry
    )
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = broker_url or settings.broker_url
    store = open_store(settings.resolved_store_uri)
    events = BrokerEvents(url)
    name = worker_name("trainer")
    runner = PipelineRunner(
        store,
        settings.resolved_mlflow_tracking_uri,
        ObservedEvents(events, metrics),
        data_roots=settings.resolved_data_roots,
        data_limits=DataLimits(settings.max_data_bytes, settings.max_zip_ratio),
    )
    logging.getLogger(__name__).info("pipelines may read: %s", runner.data_roots.describe())
    handler = TrainerHandler(runner, store, name, max_attempts, lease_seconds, metrics)
    worker = QueueWorker(
        settings.pipelines_work_queue, handler, store, url, name=name, metrics=metrics.queue
    )
    stop_on_signals(worker)
    try:
        worker.run()
    finally:
        events.close()
        store.close()
        if endpoint is not None:
            endpoint.stop()


def serve_worker_metrics(
    command: str,
    settings_class: type[WorkerMetricsSettings],
    host: str | None,
    port: int | None,
    registry: CollectorRegistry,
) -> MetricsEndpoint | None:
    """A worker's metrics endpoint, from its options and environment; exits 2, naming the
    setting, when it cannot be served."""
    from pydantic import ValidationError

    from mlplatform.common.metrics_endpoint import MetricsPortTaken, serve_metrics

    overrides = {"metrics_host": host, "metrics_port": port}
    try:
        settings = settings_class(
            **{key: value for key, value in overrides.items() if value is not None}
        )
        return serve_metrics(registry, settings.metrics_host, settings.metrics_port)
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(map(str, problem["loc"]))
            typer.echo(f"{command}: {where}: {problem['msg']}", err=True)
        raise typer.Exit(2) from None
    except MetricsPortTaken as error:
        typer.echo(f"{command}: {error}", err=True)
        raise typer.Exit(2) from None


def stop_on_signals(worker: Any) -> None:
    """SIGTERM and SIGINT stop `worker` after its job in progress, with one INFO line."""

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger("mlplatform.cli").info(
            "stopping: %s received; finishing the job in progress, then exiting",
            signal.Signals(signum).name,
        )
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def register(app: typer.Typer) -> None:
    """Adds the pipeline-running commands to the `mlp` app."""
    app.command("submit")(submit)
    app.command("train")(train)
    app.command("trainer")(trainer)
