"""`mlp predictor` (serve a registered model) and `mlp predict` (ask a running predictor)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mlplatform.cli.service_startup import (
    log_format_option,
    log_level_option,
    start_logging,
    start_tracing,
)

#: Exit codes: bad input (as `mlp validate` uses), anything else the predictor refused.
EXIT_INVALID = 2
EXIT_FAILED = 1


def predictor(
    model: str = typer.Option(
        None,
        "--model",
        envvar="MLP_PREDICTOR_MODEL",
        help="NAME, NAME@ALIAS (default alias: production) or NAME/VERSION.",
    ),
    port: int = typer.Option(
        None, "--port", envvar="MLP_PREDICTOR_PORT", help="gRPC port (default 50051; 0 picks one)."
    ),
    host: str = typer.Option(
        None, "--host", envvar="MLP_PREDICTOR_HOST", help="Interface to bind (default 0.0.0.0)."
    ),
    metrics_port: int = typer.Option(
        None,
        "--metrics-port",
        envvar="MLP_PREDICTOR_METRICS_PORT",
        help="Prometheus port (default 9095; 0 picks one, -1 disables).",
    ),
    max_batch_size: int = typer.Option(
        None,
        "--max-batch-size",
        envvar="MLP_PREDICTOR_MAX_BATCH_SIZE",
        help="Most rows per model call.",
    ),
    max_batch_wait_ms: float = typer.Option(
        None,
        "--max-batch-wait-ms",
        envvar="MLP_PREDICTOR_MAX_BATCH_WAIT_MS",
        help="Longest wait to fill a batch under concurrent load.",
    ),
    batching: bool = typer.Option(
        None, "--batching/--no-batching", envvar="MLP_PREDICTOR_BATCHING", help="Adaptive batching."
    ),
    max_request_rows: int = typer.Option(
        None,
        "--max-request-rows",
        envvar="MLP_PREDICTOR_MAX_REQUEST_ROWS",
        help="Most rows a request.",
    ),
    reload_interval: float = typer.Option(
        None,
        "--reload-interval",
        envvar="MLP_PREDICTOR_RELOAD_INTERVAL_S",
        help="Seconds between registry alias checks.",
    ),
    log_predictions: bool = typer.Option(
        None,
        "--log-predictions/--no-log-predictions",
        envvar="MLP_PREDICTOR_LOG_PREDICTIONS",
        help="Write predictions to the store.",
    ),
    drain_delay: float = typer.Option(
        None,
        "--drain-delay",
        envvar="MLP_PREDICTOR_DRAIN_DELAY_S",
        help="On SIGTERM, seconds NOT_SERVING before refusing calls.",
    ),
    shutdown_grace: float = typer.Option(
        None,
        "--shutdown-grace",
        envvar="MLP_PREDICTOR_SHUTDOWN_GRACE_S",
        help="On SIGTERM, seconds in-flight calls may take.",
    ),
    require_model_tag: str = typer.Option(
        None,
        "--require-model-tag",
        envvar="MLP_PREDICTOR_REQUIRE_MODEL_TAG",
        help="KEY[=VALUE]: serve only versions with this registry tag "
        "(mlp.pipeline_id: only what the platform's trainer registered).",
    ),
    tls_cert: str = typer.Option(
        None,
        "--tls-cert",
        envvar="MLP_PREDICTOR_TLS_CERT",
        help="PEM certificate of the gRPC port (with --tls-key: TLS).",
    ),
    tls_key: str = typer.Option(
        None, "--tls-key", envvar="MLP_PREDICTOR_TLS_KEY", help="PEM private key of --tls-cert."
    ),
    tls_client_ca: str = typer.Option(
        None,
        "--tls-client-ca",
        envvar="MLP_PREDICTOR_TLS_CLIENT_CA",
        help="PEM CA: clients must present a certificate it signed (mutual TLS).",
    ),
    compile_mode: str = typer.Option(
        None,
        "--compile",
        envvar="MLP_PREDICTOR_COMPILE",
        help="auto (default): serve the model compiled by ONNX Runtime when it gives the same "
        "answers, else scikit-learn; onnx: compiled or not at all; off: never compile.",
    ),
    compile_tolerance: float = typer.Option(
        None,
        "--compile-tolerance",
        envvar="MLP_PREDICTOR_COMPILE_TOLERANCE",
        help="Largest probability difference allowed (1e-6).",
    ),
    log_level: str = log_level_option(),
    log_format: str | None = log_format_option(),
) -> None:
    """Serve a registered model over gRPC (Predictor, KServe V2, health, reflection).

    Every option can also be set by the environment variable its help names.
    The registry is MLFLOW_TRACKING_URI; the prediction log is MLP_STORE_URI.
    """
    import asyncio

    from pydantic import ValidationError

    from mlplatform.client.tls import TlsError
    from mlplatform.common.keys_file import KeysFileError
    from mlplatform.common.metrics_endpoint import MetricsPortTaken
    from mlplatform.common.settings import get_settings
    from mlplatform.predictor.grpc_services import PortTakenError
    from mlplatform.predictor.server import serve
    from mlplatform.predictor.settings import PredictorSettings

    overrides: dict[str, Any] = {
        "model": model,
        "port": port,
        "host": host,
        "metrics_port": metrics_port,
        "max_batch_size": max_batch_size,
        "max_batch_wait_ms": max_batch_wait_ms,
        "batching": batching,
        "max_request_rows": max_request_rows,
        "reload_interval_s": reload_interval,
        "log_predictions": log_predictions,
        "drain_delay_s": drain_delay,
        "shutdown_grace_s": shutdown_grace,
        "require_model_tag": require_model_tag,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": tls_client_ca,
        "compile": compile_mode,
        "compile_tolerance": compile_tolerance,
    }
    try:
        settings = PredictorSettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(map(str, problem["loc"]))
            message = problem["msg"].removeprefix("Value error, ")
            typer.echo(f"mlp predictor: {where + ': ' if where else ''}{message}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if not settings.model:
        typer.echo("mlp predictor: --model (or MLP_PREDICTOR_MODEL) is required", err=True)
        raise typer.Exit(EXIT_INVALID)
    start_logging("predictor", log_level, log_format)
    if start_tracing("predictor"):
        from mlplatform.common.tracing import instrument_grpc_server

        instrument_grpc_server()
    common = get_settings()
    try:
        asyncio.run(serve(settings, common.resolved_mlflow_tracking_uri, common.resolved_store_uri))
    except (TlsError, KeysFileError) as error:
        typer.echo(f"mlp predictor: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except (PortTakenError, MetricsPortTaken) as error:
        typer.echo(f"mlp predictor: {error}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _read_rows(rows_file: Path | None, json_text: str | None) -> Any:
    import pandas as pd

    if (rows_file is None) == (json_text is None):
        typer.echo("mlp predict: give either ROWS.csv or --json, not both", err=True)
        raise typer.Exit(EXIT_INVALID)
    if rows_file is not None:
        return pd.read_csv(rows_file)
    try:
        document = json.loads(json_text or "")
        records = document["records"]
    except (ValueError, KeyError, TypeError) as error:
        typer.echo(f'mlp predict: --json must be {{"records": [{{...}}, ...]}} ({error})', err=True)
        raise typer.Exit(EXIT_INVALID) from None
    return pd.DataFrame.from_records(records)


def predict(
    rows_file: Path = typer.Argument(None, help="CSV file of rows to predict.", exists=True),
    model: str = typer.Option("", "--model", help="Model name the predictor must be serving."),
    address: str = typer.Option("127.0.0.1:50051", "--address", help="Predictor HOST:PORT."),
    json_rows: str = typer.Option(None, "--json", help='Rows as {"records": [{...}, ...]}.'),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also print class probabilities."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the answer."),
    key_column: str = typer.Option(
        "",
        "--key-column",
        help="Column holding your own key per row: not a model input; logged with each "
        "prediction, for outcomes by prediction_key.",
    ),
    api_key: str = typer.Option(
        "", "--api-key", envvar="MLP_API_KEY", help="Key for a predictor with API keys set."
    ),
    tls: bool = typer.Option(
        False, "--tls", help="Connect over TLS, trusting the system CAs (implied by --tls-ca)."
    ),
    tls_ca: str = typer.Option("", "--tls-ca", help="PEM CA that signed the predictor's cert."),
    tls_cert: str = typer.Option(
        "", "--tls-cert", help="PEM client certificate, for a predictor requiring mutual TLS."
    ),
    tls_key: str = typer.Option("", "--tls-key", help="PEM private key of --tls-cert."),
    tls_server_name: str = typer.Option(
        "", "--tls-server-name", help="Name the predictor's certificate must carry, if not HOST."
    ),
) -> None:
    """Predict rows with a running predictor and print them as a table."""
    from rich.console import Console
    from rich.table import Table

    from mlplatform.client.frames import FrameError
    from mlplatform.client.predictor_client import PredictorClient, PredictorError
    from mlplatform.client.tls import TlsError, TlsFiles

    rows = _read_rows(rows_file, json_rows)
    try:
        tls_files = None
        if tls or tls_ca or tls_cert or tls_key or tls_server_name:
            tls_files = TlsFiles(
                tls_ca or None, tls_cert or None, tls_key or None, tls_server_name or None
            )
        with PredictorClient(
            address, model_name=model, timeout=timeout, api_key=api_key or None, tls=tls_files
        ) as client:
            result = client.predict(
                rows, include_probabilities=probabilities, key_column=key_column
            )
    except TlsError as error:
        typer.echo(f"mlp predict: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except FrameError as error:
        typer.echo(f"mlp predict: cannot send the rows: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except PredictorError as error:
        typer.echo(f"mlp predict: {error}", err=True)
        for field, problem in error.field_violations:
            typer.echo(f"  {field}: {problem}", err=True)
        exit_code = EXIT_INVALID if error.code.name == "INVALID_ARGUMENT" else EXIT_FAILED
        raise typer.Exit(exit_code) from None
    table = Table(
        title=f"{result.model_name} version {result.model_version} (request {result.request_id})"
    )
    answer = result.to_dataframe()
    table.add_column("row", justify="right")
    for name in answer.columns:
        table.add_column(str(name), justify="right")
    for index, values in enumerate(answer.itertuples(index=False)):
        table.add_row(str(index), *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Adds `mlp predictor` and `mlp predict` to the `mlp` app."""
    app.command("predictor")(predictor)
    app.command("predict")(predict)
