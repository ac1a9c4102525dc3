"""`mlp up` (the whole local stack) and `mlp demo` (the stack plus a guided first run)."""

from __future__ import annotations

import importlib.util
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer

from mlplatform.common.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PIPELINE = Path("examples/credit_fraud_from_file.json")


def _stack_config(
    data_dir: Path | None,
    model: str,
    host: str,
    mlflow_port: int,
    predictor_port: int,
    metrics_port: int,
    gateway_port: int,
    trainers: int,
    inferers: int,
    with_exporter: bool = True,
) -> Any:
    from mlplatform.stack.local_stack import StackConfig

    settings = get_settings()
    return StackConfig(
        data_dir=data_dir or settings.data_dir / "stack",
        broker_url=settings.broker_url,
        model=model,
        host=host,
        mlflow_port=mlflow_port,
        predictor_port=predictor_port,
        metrics_port=metrics_port,
        gateway_port=gateway_port,
        trainers=trainers,
        inferers=inferers,
        with_exporter=with_exporter,
    )


def _raise_on_sigterm() -> None:
    """SIGTERM stops the stack the way Ctrl-C does: through the context managers."""

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _print_where(config: Any) -> None:
    typer.secho("the stack is up:", bold=True)
    typer.echo(f"  MLflow UI          {config.tracking_uri}")
    typer.echo(f"  gRPC predictor     {config.predictor_address} (serving {config.model})")
    if config.with_gateway:
        typer.echo(f"  REST gateway       {config.gateway_url}   docs: {config.gateway_url}/docs")
    if config.with_exporter:
        typer.echo(f"  monitoring gauges  {config.metrics_url('exporter')}")
    ports = ", ".join(
        f"{name} :{port}"
        for name, port in config.metrics_ports.items()
        if name != "exporter" and (name != "gateway" or config.with_gateway)
    )
    typer.echo(f"  Prometheus metrics /metrics on {config.host}: {ports}")
    typer.echo(f"  run and prediction log   MLP_STORE_URI={config.store_uri}")
    typer.echo(
        f"  use it from another shell:  export MLFLOW_TRACKING_URI={config.tracking_uri} "
        f"MLP_STORE_URI={config.store_uri}"
    )
    typer.echo(
        "  then: mlp submit PIPELINE.json --wait; mlp runs; mlp predictions; Ctrl-C stops all"
    )
    typer.echo(f"  service logs       {config.log_dir}/  (mlp logs [SERVICE] [-f])")


def _watch(processes: list[Any]) -> None:
    """Blocks until Ctrl-C/SIGTERM; a child that dies stops the stack with its log tail."""
    while True:
        for process in processes:
            if not process.alive:
                code = process.process.returncode
                message = f"{process.spec.name} exited ({code}); stopping the stack"
                typer.secho(message, fg="red", err=True)
                typer.echo(process.tail(10), err=True, nl=False)
                typer.echo(f"(the whole log: {process.log_path})", err=True)
                raise typer.Exit(1)
        time.sleep(0.5)


def up(
    data_dir: Path | None = typer.Option(None, help="Where MLflow and the store keep data."),
    model: str = typer.Option("credit_fraud@production", help="What the predictor serves."),
    host: str = typer.Option("127.0.0.1", help="Interface every service binds."),
    mlflow_port: int = typer.Option(5000, help="MLflow tracking server and UI."),
    predictor_port: int = typer.Option(50051, help="gRPC predictor."),
    metrics_port: int = typer.Option(
        9095,
        help="First of the Prometheus ports, one each in this order: predictor, gateway, "
        "monitoring exporter, trainers, inferers.",
    ),
    gateway_port: int = typer.Option(8000, help="REST gateway."),
    trainers: int = typer.Option(1, min=1, help="Trainer workers."),
    inferers: int = typer.Option(1, min=1, help="Batch inferer workers."),
    exporter: bool = typer.Option(
        True, "--exporter/--no-exporter", help="Run the monitoring exporter (mlp monitor)."
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Also stream every service's log here, prefixed."
    ),
) -> None:
    """Start the local stack: MLflow, trainers, inferers, predictor, the monitoring exporter
    and the gateway.

    Each starts once the one before answers. Each service logs to its own file under
    DATA_DIR/logs (`mlp logs` shows them; --follow streams them here too). Ctrl-C or
    SIGTERM stops them all. Uses the RabbitMQ at MLP_BROKER_URL.
    """
    from mlplatform.stack.local_stack import BrokerUnavailable, ProcessFailed, local_stack

    if exporter and importlib.util.find_spec("evidently") is None:
        typer.echo(
            "not running the monitoring exporter: it needs pip install 'mlplatform[monitor]'",
            err=True,
        )
        exporter = False
    config = _stack_config(
        data_dir, model, host, mlflow_port, predictor_port, metrics_port, gateway_port,
        trainers, inferers, exporter,
    )  # fmt: skip
    _raise_on_sigterm()
    try:
        with local_stack(config, sink=sys.stdout if follow else None) as processes:
            _print_where(config)
            _watch(processes)
    except BrokerUnavailable as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    except ProcessFailed as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped")


def demo(
    data_dir: Path | None = typer.Option(None, help="Where MLflow and the store keep data."),
    pipeline_file: Path = typer.Option(EXAMPLE_PIPELINE, "--pipeline", help="Pipeline to train."),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the stack up afterwards, until Ctrl-C."
    ),
    mlflow_port: int = typer.Option(5000),
    predictor_port: int = typer.Option(50051),
    metrics_port: int = typer.Option(9095),
    gateway_port: int = typer.Option(8000),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Also stream every service's log (to stderr), prefixed."
    ),
) -> None:
    """Start the stack, train the example pipeline, predict over gRPC and REST, run a batch.

    Prints each result and where to look; the services' logs go to DATA_DIR/logs
    (`mlp logs`). Exits non-zero when any step fails.
    """
    import pandas as pd

    from mlplatform.client.pipelines import PipelineError, load_pipeline_file
    from mlplatform.common.store import open_store
    from mlplatform.stack import scenario
    from mlplatform.stack.local_stack import BrokerUnavailable, ProcessFailed, local_stack

    try:
        definition = load_pipeline_file(pipeline_file)
    except PipelineError as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(2) from None
    data_step = definition.pipeline[0].ml_steps[0]
    if data_step.HasField("load_data_from_file"):  # workers run elsewhere: absolute path
        data_step.load_data_from_file.path = str(Path(data_step.load_data_from_file.path).resolve())
    model_name = definition.experiment_config.model_name
    config = _stack_config(
        data_dir, f"{model_name}@production", "127.0.0.1", mlflow_port, predictor_port,
        metrics_port, gateway_port, 1, 1, with_exporter=False,
    )  # fmt: skip
    settings = get_settings().model_copy(
        update={"store_uri": config.store_uri, "mlflow_tracking_uri": config.tracking_uri}
    )
    _raise_on_sigterm()
    try:
        with local_stack(config, sink=sys.stderr if follow else None) as processes:
            _print_where(config)
            typer.secho(f"\n1. training {pipeline_file} through RabbitMQ", bold=True)
            outcome = scenario.train(
                definition,
                settings,
                on_event=lambda event: typer.echo(
                    f"   [{event.elapsed_seconds:6.1f}s] {event.message}"
                ),
            )
            if not outcome.succeeded:
                typer.secho(
                    f"training failed; the trainer's log: {config.log_dir / 'trainer.log'}",
                    fg="red",
                    err=True,
                )
                raise typer.Exit(1)
            typer.secho("\n2. waiting for the predictor to serve the new version", bold=True)
            version = scenario.wait_until_serving(config.predictor_address)
            typer.echo(f"   serving {model_name} version {version}")
            data_path = Path(data_step.load_data_from_file.path)
            target = definition.experiment_config.target
            data = pd.read_csv(data_path)
            rows = data.drop(columns=[target])
            # Two rows of the majority class and one of the rarest, to see both answers.
            rarest = data[target].value_counts().idxmin()
            shown = pd.concat([rows.head(2), rows[data[target] == rarest].head(1)])
            typer.secho("\n3. a prediction over gRPC (Predictor.Predict)", bold=True)
            result = scenario.predict_grpc(config.predictor_address, shown)
            typer.echo(result.to_dataframe().to_string(index=False))
            typer.secho("\n4. the same rows over REST (POST /predict)", bold=True)
            typer.echo(f"   {scenario.predict_rest(config.gateway_url, shown)}")
            typer.secho("\n5. a batch of 1,000 rows through the inferer", bold=True)
            with open_store(config.store_uri) as store:
                batch = scenario.run_batch(rows.head(1000), config.model, settings, store)
                typer.echo(
                    f"   batch {batch.batch_id}: {batch.status.value}, {batch.rows_done} rows "
                    f"by version {batch.model_version}"
                )
            typer.secho("\nwhere to look", bold=True)
            typer.echo(
                f"   MLflow UI: {config.tracking_uri}   REST docs: {config.gateway_url}/docs"
            )
            typer.echo(f"   export MLP_STORE_URI={config.store_uri}")
            typer.echo(
                f"   mlp runs {outcome.pipeline_id}; mlp predictions --batch {batch.batch_id}"
            )
            if keep_running:
                typer.echo("\nthe stack stays up; Ctrl-C stops it")
                _watch(processes)
    except (BrokerUnavailable, ProcessFailed) as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped")


def register(app: typer.Typer) -> None:
    """Adds the stack commands to the `mlp` app."""
    app.command("up")(up)
    app.command("demo")(demo)
