"""`mlp outcomes FILE`: attach true labels to logged predictions, from a CSV or Parquet file."""

from __future__ import annotations

from pathlib import Path

import typer

from mlplatform.cli.store_output import EXIT_FAILURE, STORE_OPTION, opened_store
from mlplatform.common import outcome_intake
from mlplatform.common.input_problems import InvalidInputError


def outcomes(
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A .csv or .parquet file of outcomes."
    ),
    store_uri: str | None = STORE_OPTION,
) -> None:
    """Attach true labels to logged predictions.

    Columns: request_id,row,label for online predictions (the request id is in every
    response), batch_id,row,label for batch ones, or prediction_key,label (and optionally
    model) for predictions sent with a key column; every prediction with that key (of that
    model, when given) gets the outcome. All or nothing: when a row is invalid or names no
    logged prediction, nothing is stored and the error says which. A second outcome for a
    prediction replaces the first. See docs/outcomes.md.
    """
    try:
        table = outcome_intake.read_outcome_file(path)
    except InvalidInputError as error:
        typer.echo(f"{error}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except (OSError, ValueError) as error:  # unreadable file, malformed CSV or Parquet
        typer.echo(f"{path.name}: cannot read outcomes: {error}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    try:
        recorded = outcome_intake.outcomes_from_table(table)
        with opened_store(store_uri) as store:
            report = outcome_intake.record(store, recorded)
    except InvalidInputError as error:
        typer.echo(f"{path.name}: {error}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(outcome_intake.describe_report(report))


def register(app: typer.Typer) -> None:
    app.command("outcomes")(outcomes)
