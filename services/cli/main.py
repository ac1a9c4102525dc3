"""The `mlp` command: user commands and service entry points, one typer app."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mlp",
    help="mlplatform: train, register, serve and log ML models from a pipeline definition.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("mlplatform")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"mlp (mlplatform) {version}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """mlplatform: train, register, serve and log ML models from a pipeline definition."""


def _register_commands() -> None:
    """Command groups live in their own modules; each adds its commands here."""
    from mlplatform.cli import (
        gateway_commands,
        inferer_commands,
        keys_commands,
        log_commands,
        model_commands,
        monitor_commands,
        outcome_commands,
        pipeline_commands,
        predictor_commands,
        spark_commands,
        stack_commands,
        store_commands,
        trainer_commands,
    )

    for module in (
        pipeline_commands,
        trainer_commands,
        predictor_commands,
        gateway_commands,
        inferer_commands,
        keys_commands,
        spark_commands,
        store_commands,
        model_commands,
        outcome_commands,
        monitor_commands,
        stack_commands,
        log_commands,
    ):
        module.register(app)


_register_commands()


def main() -> None:
    """The `mlp` entry point: a broker's refusal or an unusable TLS file ends any command with
    one line saying what is missing, not a traceback."""
    from mlplatform.client.broker_access import BrokerPermissionError
    from mlplatform.client.tls import TlsError

    try:
        app()
    except BrokerPermissionError as error:
        typer.echo(f"mlp: {error}", err=True)
        raise SystemExit(1) from None
    except TlsError as error:
        typer.echo(f"mlp: {error}", err=True)
        raise SystemExit(2) from None
