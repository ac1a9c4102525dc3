"""`mlp models promote`: point a registered model's alias at a version by hand.

`register_model` keeps the alias on the champion when a new version does not beat it
(`promote: if_better`); the new version is registered all the same, and this command is how
a person promotes it anyway (or rolls the alias back to an older version).
"""

from __future__ import annotations

import typer

from mlplatform.common.settings import get_settings

models_app = typer.Typer(
    help="Registered models in the MLflow Model Registry.", no_args_is_help=True
)

DEFAULT_ALIAS = "production"


@models_app.command("promote")
def promote(
    model_name: str = typer.Argument(..., metavar="NAME", help="Registered model name."),
    version: str = typer.Argument(..., metavar="VERSION", help="The version to promote."),
    alias: str = typer.Option(DEFAULT_ALIAS, "--alias", help="The alias to move."),
    tracking_uri: str = typer.Option("", help="MLflow tracking URI; default: MLFLOW_TRACKING_URI."),
) -> None:
    """Point ALIAS (default production) of NAME at VERSION; predictors follow the alias."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlplatform.trainer.promotion import champion_version

    client = MlflowClient(tracking_uri=tracking_uri or get_settings().resolved_mlflow_tracking_uri)
    try:
        client.get_model_version(model_name, version)
        previous = champion_version(client, model_name, alias)
        client.set_registered_model_alias(model_name, alias, version)
        client.set_model_version_tag(
            model_name, version, "mlp.promotion.decision", "promoted_by_hand"
        )
    except mlflow.exceptions.MlflowException as error:
        typer.echo(f"cannot promote {model_name} v{version}: {error.message}", err=True)
        raise typer.Exit(1) from None
    before = f" (was v{previous})" if previous and previous != version else ""
    typer.echo(f"{model_name} @{alias} -> v{version}{before}")


def register(app: typer.Typer) -> None:
    """Adds the model-registry commands to the `mlp` app."""
    app.add_typer(models_app, name="models")
