"""The `mlp` command: user commands and service entry points, one typer app."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mlp",
    help="mlplatform: train, register, serve and log ML models from a pipeline definition.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_commands() -> None:
    """Command groups live in their own modules; each adds its commands here."""
    from mlplatform.cli import (
        gateway_commands,
        inferer_commands,
        monitor_commands,
        outcome_commands,
        pipeline_commands,
        predictor_commands,
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
        store_commands,
        outcome_commands,
        monitor_commands,
        stack_commands,
    ):
        module.register(app)


_register_commands()
