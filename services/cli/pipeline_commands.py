"""`mlp validate`: check a pipeline file before anything runs."""

from __future__ import annotations

from pathlib import Path

import typer
from google.protobuf import json_format

from mlplatform.client.data_roots import DataRoots
from mlplatform.client.pipelines import PipelineError, check_pipeline, load_pipeline_file

#: Exit code for a pipeline file that cannot be used (bad input, as argparse uses).
EXIT_INVALID = 2


def validate(
    pipeline_file: Path = typer.Argument(..., help="Pipeline definition (.json, .yaml or .yml)."),
    print_json: bool = typer.Option(
        False, "--print-json", help="Print the parsed definition as canonical JSON."
    ),
) -> None:
    """Check a pipeline file: syntax, keys, step order, PyCaret estimators and metrics.

    Exits 0 when the pipeline can run, 2 with one line per problem (each naming the
    path of the offending field) when it cannot. With MLP_DATA_ROOTS set, data sources
    outside those roots are problems too.
    """
    data_roots = DataRoots.from_environment()
    try:
        definition = load_pipeline_file(pipeline_file)
        if data_roots is not None:
            check_pipeline(definition, str(pipeline_file), data_roots)
    except PipelineError as error:
        typer.echo(f"{pipeline_file}: invalid pipeline", err=True)
        for field_error in error.errors:
            typer.echo(f"  {field_error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if print_json:
        typer.echo(json_format.MessageToJson(definition, indent=2))
        return
    steps = [step.WhichOneof("step") for stage in definition.pipeline for step in stage.ml_steps]
    config = definition.experiment_config
    typer.echo(
        f"{pipeline_file}: valid pipeline ({len(steps)} steps: {', '.join(steps)}; "
        f"experiment '{config.experiment_name}', target '{config.target}')"
    )


def register(app: typer.Typer) -> None:
    """Adds the pipeline-file commands to the `mlp` app."""
    app.command("validate")(validate)
