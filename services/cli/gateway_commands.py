"""`mlp gateway`: the REST gateway (FastAPI under uvicorn) in front of a running predictor."""

from __future__ import annotations

from typing import Any

import typer

from mlplatform.cli.service_startup import (
    log_format_option,
    log_level_option,
    start_logging,
    start_tracing,
)


def gateway(
    host: str = typer.Option(
        None, "--host", envvar="MLP_GATEWAY_HOST", help="Interface to bind (default 0.0.0.0)."
    ),
    port: int = typer.Option(
        None, "--port", envvar="MLP_GATEWAY_PORT", help="HTTP port (default 8000; 0 picks one)."
    ),
    predictor: str = typer.Option(
        None,
        "--predictor",
        envvar="MLP_GATEWAY_PREDICTOR",
        help="The predictor's HOST:PORT (default 127.0.0.1:50051).",
    ),
    metrics_host: str = typer.Option(
        None, "--metrics-host", help="Interface of the metrics endpoint (default 0.0.0.0)."
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Prometheus port (default 9096; 0 picks one, -1 disables)."
    ),
    request_timeout: float = typer.Option(
        None,
        "--request-timeout",
        envvar="MLP_GATEWAY_REQUEST_TIMEOUT_S",
        help="Seconds each predictor call may take (default 30).",
    ),
    max_body_bytes: int = typer.Option(
        None,
        "--max-body-bytes",
        envvar="MLP_GATEWAY_MAX_BODY_BYTES",
        help="Largest request body; larger gets 413 (default 16 MiB).",
    ),
    monitor_url: str = typer.Option(
        None,
        "--monitor-url",
        envvar="MLP_GATEWAY_MONITOR_URL",
        help="An mlp monitor exporter's http://HOST:PORT, for /monitor.",
    ),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log requests."),
    predictor_tls: bool = typer.Option(
        None,
        "--predictor-tls/--no-predictor-tls",
        envvar="MLP_GATEWAY_PREDICTOR_TLS",
        help="TLS to the predictor (system CAs).",
    ),
    predictor_tls_ca: str = typer.Option(
        None,
        "--predictor-tls-ca",
        envvar="MLP_GATEWAY_PREDICTOR_TLS_CA",
        help="PEM CA of the predictor's certificate (implies TLS).",
    ),
    predictor_tls_cert: str = typer.Option(
        None,
        "--predictor-tls-cert",
        envvar="MLP_GATEWAY_PREDICTOR_TLS_CERT",
        help="PEM client certificate for a predictor with mTLS.",
    ),
    predictor_tls_key: str = typer.Option(
        None,
        "--predictor-tls-key",
        envvar="MLP_GATEWAY_PREDICTOR_TLS_KEY",
        help="PEM private key of --predictor-tls-cert.",
    ),
    predictor_tls_server_name: str = typer.Option(
        None,
        "--predictor-tls-server-name",
        envvar="MLP_GATEWAY_PREDICTOR_TLS_SERVER_NAME",
        help="Name the predictor's certificate carries.",
    ),
    tls_cert: str = typer.Option(
        None, "--tls-cert", envvar="MLP_GATEWAY_TLS_CERT", help="PEM certificate: serve HTTPS."
    ),
    tls_key: str = typer.Option(
        None, "--tls-key", envvar="MLP_GATEWAY_TLS_KEY", help="PEM private key of --tls-cert."
    ),
    log_level: str = log_level_option(),
    log_format: str | None = log_format_option(),
) -> None:
    """Serve the REST gateway: POST /predict, POST /invocations (MLflow), GET /models/NAME,
    /healthz, /readyz, and the OpenAPI docs at /docs.

    Every option can also be set by the environment variable its help names. With
    MLP_API_KEYS or MLP_API_KEYS_FILE set, every route but health and docs needs a key.
    """
    from mlplatform.client.tls import TlsError
    from mlplatform.common.keys_file import KeysFileError
    from mlplatform.common.metrics_endpoint import MetricsPortTaken
    from mlplatform.gateway.server import PortTakenError, serve
    from mlplatform.gateway.settings import GatewaySettings

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "predictor": predictor,
        "metrics_host": metrics_host,
        "metrics_port": metrics_port,
        "request_timeout_s": request_timeout,
        "max_body_bytes": max_body_bytes,
        "predictor_tls": predictor_tls,
        "predictor_tls_ca": predictor_tls_ca,
        "predictor_tls_cert": predictor_tls_cert,
        "predictor_tls_key": predictor_tls_key,
        "predictor_tls_server_name": predictor_tls_server_name,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "monitor_url": monitor_url,
    }
    try:
        settings = GatewaySettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
        settings.check_files()
    except (TlsError, KeysFileError) as error:
        typer.echo(f"mlp gateway: {error}", err=True)
        raise typer.Exit(2) from None
    except ValueError as error:  # pydantic's ValidationError: one line per bad setting
        typer.echo(f"mlp gateway: invalid settings:\n{error}", err=True)
        raise typer.Exit(2) from None
    start_logging("gateway", log_level, log_format)
    start_tracing("gateway")
    try:
        serve(settings, access_log=access_log, log_level=log_level.lower())
    except PortTakenError as error:
        typer.echo(f"mlp gateway: {error}", err=True)
        raise typer.Exit(1) from None
    except MetricsPortTaken as error:
        typer.echo(f"mlp gateway: {error}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Adds `mlp gateway` to the `mlp` app."""
    app.command("gateway")(gateway)
