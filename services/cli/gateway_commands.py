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
) -> None:
    """Serve the REST gateway: POST /predict, POST /invocations (MLflow), GET /models/NAME,
    /healthz, /readyz, and the OpenAPI docs at /docs.

    Every option can also be set as MLP_GATEWAY_<NAME> (MLP_GATEWAY_PORT, ...). With
    MLP_API_KEYS set (comma-separated), /predict, /invocations and /models need a key.
    """
    from mlplatform.gateway.server import serve
    from mlplatform.gateway.settings import GatewaySettings

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "predictor": predictor,
        "request_timeout_s": request_timeout,
        "max_body_bytes": max_body_bytes,
        "monitor_url": monitor_url,
    }
    try:
        settings = GatewaySettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValueError as error:  # pydantic's ValidationError: one line per bad setting
        typer.echo(f"mlp gateway: invalid settings:\n{error}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(settings, access_log=access_log)


def register(app: typer.Typer) -> None:
    """Adds `mlp gateway` to the `mlp` app."""
    app.command("gateway")(gateway)
