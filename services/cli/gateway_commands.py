"""`mlp gateway`: the REST gateway (FastAPI under uvicorn) in front of a running predictor."""

from __future__ import annotations

import logging
from typing import Any

import typer


def gateway(
    host: str = typer.Option(None, "--host", help="Interface to bind (default 0.0.0.0)."),
    port: int = typer.Option(None, "--port", help="HTTP port (default 8000; 0 picks one)."),
    predictor: str = typer.Option(
        None, "--predictor", help="The predictor's HOST:PORT (default 127.0.0.1:50051)."
    ),
    metrics_host: str = typer.Option(
        None, "--metrics-host", help="Interface of the metrics endpoint (default 0.0.0.0)."
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Prometheus port (default 9096; 0 picks one, -1 disables)."
    ),
    request_timeout: float = typer.Option(
        None, "--request-timeout", help="Seconds each predictor call may take (default 30)."
    ),
    max_body_bytes: int = typer.Option(
        None, "--max-body-bytes", help="Largest request body; larger gets 413 (default 16 MiB)."
    ),
    monitor_url: str = typer.Option(
        None, "--monitor-url", help="An mlp monitor exporter's http://HOST:PORT, for /monitor."
    ),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log requests."),
    predictor_tls: bool = typer.Option(
        None, "--predictor-tls/--no-predictor-tls", help="TLS to the predictor (system CAs)."
    ),
    predictor_tls_ca: str = typer.Option(
        None, "--predictor-tls-ca", help="PEM CA of the predictor's certificate (implies TLS)."
    ),
    predictor_tls_cert: str = typer.Option(
        None, "--predictor-tls-cert", help="PEM client certificate for a predictor with mTLS."
    ),
    predictor_tls_key: str = typer.Option(
        None, "--predictor-tls-key", help="PEM private key of --predictor-tls-cert."
    ),
    predictor_tls_server_name: str = typer.Option(
        None, "--predictor-tls-server-name", help="Name the predictor's certificate carries."
    ),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS."),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
) -> None:
    """Serve the REST gateway: POST /predict, POST /invocations (MLflow), GET /models/NAME,
    /healthz, /readyz, and the OpenAPI docs at /docs.

    Every option can also be set as MLP_GATEWAY_<NAME> (MLP_GATEWAY_PORT, ...). With
    MLP_API_KEYS or MLP_API_KEYS_FILE set, every route but health and docs needs a key.
    """
    from mlplatform.client.tls import TlsError
    from mlplatform.common.keys_file import KeysFileError
    from mlplatform.common.metrics_endpoint import MetricsPortTaken
    from mlplatform.gateway.server import serve
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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(settings, access_log=access_log)
    except MetricsPortTaken as error:
        typer.echo(f"mlp gateway: {error}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Adds `mlp gateway` to the `mlp` app."""
    app.command("gateway")(gateway)
