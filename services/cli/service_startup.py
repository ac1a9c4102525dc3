"""What every service command shares at start: the `--log-format` and `--log-level` options,
the one logging setup (mlplatform.common.log_setup), and tracing when OTEL_* configures it."""

from __future__ import annotations

import typer

from mlplatform.common.log_setup import LOG_FORMAT_ENV, LogFormatError, configure_logging


def log_format_option() -> typer.models.OptionInfo:
    return typer.Option(
        None,
        "--log-format",
        envvar=LOG_FORMAT_ENV,
        help="Log lines as text or json (one object a line, with the ids in scope).",
    )


def log_level_option() -> typer.models.OptionInfo:
    return typer.Option("INFO", "--log-level", envvar="MLP_LOG_LEVEL", help="Logging level.")


def start_logging(service: str, level: str, log_format: str | None) -> None:
    """Configures logging for `service`; a bad format or level ends the command (exit 2)."""
    try:
        configure_logging(service, level, log_format)
    except (LogFormatError, ValueError) as error:
        typer.echo(f"mlp {service}: {error}", err=True)
        raise typer.Exit(2) from None


def start_tracing(service: str) -> bool:
    """Tracing as the OTEL_* variables configure it (mlplatform.common.tracing); True when on.
    A missing `tracing` extra or an unknown exporter ends the command with one line (exit 2)."""
    from mlplatform.common.extras import MissingExtraError
    from mlplatform.common.tracing import setup_tracing

    try:
        return setup_tracing(service)
    except (MissingExtraError, ValueError) as error:
        typer.echo(f"mlp {service}: {error}", err=True)
        raise typer.Exit(2) from None
