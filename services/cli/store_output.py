"""What the store-reading commands share: opening the store, reading times from the command
line, and printing records as tables, CSV or JSON.

Tables are for people; `--format csv` and `--format json` are for spreadsheets and scripts, so
they carry every field and no decoration. Times are shown and accepted in UTC.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from mlplatform.common.store import NotFoundError, Store, StoreError, open_store

EXIT_FAILURE = 1
INPUT_PREVIEW_CHARS = 60
WIDE_TERMINAL = 110  # columns; below it, tables keep their essential columns only
STATUS_STYLES = {
    "queued": "yellow",
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
}


class OutputFormat(StrEnum):
    """How a command prints what it read."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


STORE_OPTION = typer.Option(
    None, "--store", help="Store URI (sqlite:///PATH or mongodb://...); default: MLP_STORE_URI."
)
FORMAT_OPTION = typer.Option(OutputFormat.TABLE, "--format", help="Output format.")


@contextmanager
def opened_store(uri: str | None) -> Iterator[Store]:
    """The store, with store failures reported as one line on stderr and exit code 1."""
    try:
        with open_store(uri) as store:
            yield store
    except NotFoundError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except StoreError as error:
        typer.echo(f"store error: {error}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line; one without a timezone is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time (for example 2024-05-01 or 2024-05-01T12:00:00Z)",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(started_at: datetime | None, finished_at: datetime | None) -> str:
    if started_at is None or finished_at is None:
        return ""
    return f"{(finished_at - started_at).total_seconds():.1f}s"


def status_text(value: str) -> Text:
    return Text(value, style=STATUS_STYLES.get(value, ""))


def text_row(*cells: str | Text) -> list[Text]:
    """Table cells as plain text: ids, findings and messages may hold `[...]`, which rich
    would otherwise read as markup and drop."""
    return [cell if isinstance(cell, Text) else Text(cell) for cell in cells]


def compact(value: Any) -> str:
    """A value in one cell: text as is, anything else as compact JSON, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def preview(value: Any, width: int = INPUT_PREVIEW_CHARS) -> str:
    text = compact(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def write_csv(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({field: compact(row.get(field)) for field in fields})


def write_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def new_console() -> Console:
    # Created per call so output goes to the stdout in force (a test runner swaps it).
    return Console(highlight=False, soft_wrap=False)
