"""`mlp predictions`: logged predictions by model, version, batch, request or time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from rich.table import Table

from mlplatform.cli.store_output import (
    FORMAT_OPTION,
    STORE_OPTION,
    WIDE_TERMINAL,
    OutputFormat,
    format_time,
    new_console,
    opened_store,
    parse_time,
    preview,
    text_row,
    write_csv,
    write_json,
)
from mlplatform.common.store import PredictionRecord

PREDICTION_CSV_FIELDS = (
    "created_at", "model_name", "model_version", "source", "request_id", "batch_id",
    "row_index", "prediction", "probabilities", "latency_ms", "input_row",
)  # fmt: skip


# -- mlp predictions -----------------------------------------------------------------------------


def _predictions_table(records: Sequence[PredictionRecord], matching: int, width: int) -> Table:
    """Predictions, one per row; a narrow terminal gets no probabilities or latency column."""
    wide = width >= WIDE_TERMINAL
    table = Table(
        title="Predictions",
        title_justify="left",
        caption=f"{len(records):,} shown of {matching:,} matching",
        caption_justify="left",
    )
    table.add_column("time (UTC)")
    table.add_column("model", overflow="fold")
    table.add_column("source", overflow="fold")
    table.add_column("row", no_wrap=True, justify="right")
    table.add_column("prediction", overflow="fold")
    if wide:
        table.add_column("probabilities", overflow="fold")
        table.add_column("ms", no_wrap=True, justify="right")
    table.add_column("input", overflow="fold", ratio=1)
    for record in records:
        cells = [
            format_time(record.created_at),
            f"{record.model_name} v{record.model_version}",
            f"{record.source.value} {record.batch_id or record.request_id or ''}",
            str(record.row_index),
            preview(record.prediction, 30),
        ]
        if wide:
            latency = "" if record.latency_ms is None else f"{record.latency_ms:.1f}"
            cells += [preview(record.probabilities, 40), latency]
        cells.append(preview(record.input_row))
        table.add_row(*text_row(*cells))
    return table


def predictions(
    model: str | None = typer.Option(None, "--model", help="Model name."),
    version: str | None = typer.Option(None, "--version", help="Model version."),
    batch: str | None = typer.Option(None, "--batch", help="Batch id."),
    request: str | None = typer.Option(None, "--request", help="Online request id."),
    since: str | None = typer.Option(
        None, "--since", help="From this time, included (ISO 8601; UTC if no zone)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Up to this time, excluded (ISO 8601; UTC if no zone)."
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=0, help="At most this many rows."),
    newest: bool = typer.Option(False, "--newest", help="Newest first (default: oldest first)."),
    output_format: OutputFormat = FORMAT_OPTION,
    store_uri: str | None = STORE_OPTION,
) -> None:
    """Logged predictions by model, version, batch or time.

    Oldest first (--newest for the latest). Times are UTC.

    --since is included and --until excluded: consecutive windows never overlap.
    """
    filters: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "batch_id": batch,
        "request_id": request,
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
    }
    with opened_store(store_uri) as store:
        records = store.query_predictions(**filters, limit=limit, newest_first=newest)
        counted = output_format is OutputFormat.TABLE or len(records) >= limit
        matching = store.count_predictions(**filters) if counted else len(records)
    if matching > len(records):  # on stderr: CSV and JSON on stdout stay whole
        typer.echo(f"showing {len(records):,} of {matching:,}; --limit N for more", err=True)
    if output_format is OutputFormat.JSON:
        write_json([record.model_dump(mode="json") for record in records])
    elif output_format is OutputFormat.CSV:
        write_csv(PREDICTION_CSV_FIELDS, [record.model_dump(mode="json") for record in records])
    else:
        console = new_console()
        console.print(_predictions_table(records, matching, console.width))
