"""`mlp runs` and `mlp predictions`: read the pipeline-run and prediction store.

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
from rich.table import Table
from rich.text import Text

from mlplatform.cli.run_views import (
    BULKY_FINDINGS,
    WatchTimeout,
    leaderboard,
    leaderboard_table,
    promotion_text,
    watch_run,
)
from mlplatform.common.store import (
    NotFoundError,
    PipelineRun,
    PredictionRecord,
    RunStatus,
    Store,
    StoreError,
    open_store,
)

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
RUN_CSV_FIELDS = (
    "pipeline_id", "status", "experiment_name", "model_name", "submitted_by", "created_at",
    "started_at", "finished_at", "attempts", "best_model", "main_metric", "main_metric_value",
    "registered_model_name", "registered_version", "alias", "error",
)  # fmt: skip
STEP_CSV_FIELDS = (
    "name", "status", "started_at", "finished_at", "elapsed_seconds", "findings", "message",
)  # fmt: skip
PREDICTION_CSV_FIELDS = (
    "created_at", "model_name", "model_version", "source", "request_id", "batch_id",
    "row_index", "prediction", "probabilities", "latency_ms", "input_row",
)  # fmt: skip


class OutputFormat(StrEnum):
    """How a command prints what it read."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


STORE_OPTION = typer.Option(
    None, "--store", help="Store URI (sqlite:///PATH or mongodb://...); default: MLP_STORE_URI."
)
FORMAT_OPTION = typer.Option(OutputFormat.TABLE, "--format", help="Output format.")


# -- shared helpers ------------------------------------------------------------------------------


@contextmanager
def _opened_store(uri: str | None) -> Iterator[Store]:
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


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(started_at: datetime | None, finished_at: datetime | None) -> str:
    if started_at is None or finished_at is None:
        return ""
    return f"{(finished_at - started_at).total_seconds():.1f}s"


def _status(value: str) -> Text:
    return Text(value, style=STATUS_STYLES.get(value, ""))


def _row(*cells: str | Text) -> list[Text]:
    """Table cells as plain text: ids, findings and messages may hold `[...]`, which rich
    would otherwise read as markup and drop."""
    return [cell if isinstance(cell, Text) else Text(cell) for cell in cells]


def _compact(value: Any) -> str:
    """A value in one cell: text as is, anything else as compact JSON, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _preview(value: Any, width: int = INPUT_PREVIEW_CHARS) -> str:
    text = _compact(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_csv(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({field: _compact(row.get(field)) for field in fields})


def _write_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _console() -> Console:
    # Created per call so output goes to the stdout in force (a test runner swaps it).
    return Console(highlight=False, soft_wrap=False)


# -- mlp runs ------------------------------------------------------------------------------------


def _runs_table(runs: Sequence[PipelineRun], width: int) -> Table:
    """Recent runs; a terminal narrower than WIDE_TERMINAL gets the essential columns only,
    rather than every column folded into unreadable slivers."""
    wide = width >= WIDE_TERMINAL
    table = Table(title="Pipeline runs (newest first)", title_justify="left")
    table.add_column("pipeline id", overflow="fold", min_width=12)
    table.add_column("status", no_wrap=True)
    table.add_column("created (UTC)")
    table.add_column("model", overflow="fold")
    if wide:
        table.add_column("took", no_wrap=True)
        table.add_column("steps", no_wrap=True)
    table.add_column("metric", overflow="fold")
    if wide:
        table.add_column("registered", overflow="fold")
    for run in runs:
        metric = (
            f"{run.main_metric}={run.main_metric_value:.4g}"
            if run.main_metric and run.main_metric_value is not None
            else ""
        )
        cells: list[str | Text] = [
            run.pipeline_id,
            _status(run.status.value),
            _time(run.created_at),
            run.model_name or "",
        ]
        if wide:
            finished_steps = sum(step.status in ("succeeded", "skipped") for step in run.steps)
            cells += [
                _duration(run.started_at, run.finished_at),
                f"{finished_steps}/{len(run.steps)}",
            ]
        cells.append(metric)
        if wide:
            registered = ""
            if run.registered_model_name:
                registered = f"{run.registered_model_name} v{run.registered_version}"
                registered += f" @{run.alias}" if run.alias else ""
            cells.append(registered)
        table.add_row(*_row(*cells))
    return table


def _run_details(run: PipelineRun) -> list[tuple[str, str | None]]:
    """The run's labelled facts, in reading order; empty ones are left out when shown."""
    mlflow = (
        f"experiment {run.mlflow_experiment_id}, run {run.mlflow_run_id}"
        if run.mlflow_run_id
        else None
    )
    main_metric = run.main_metric
    if main_metric and run.main_metric_value is not None:
        main_metric = f"{main_metric} = {run.main_metric_value}"
    registered = None
    if run.registered_model_name:
        registered = f"{run.registered_model_name} version {run.registered_version}"
        if run.alias:
            registered += f" (alias {run.alias})"
    return [
        ("experiment", run.experiment_name),
        ("model", run.model_name),
        ("submitted by", run.submitted_by),
        ("created", _time(run.created_at)),
        ("started", _time(run.started_at)),
        ("finished", _time(run.finished_at)),
        ("took", _duration(run.started_at, run.finished_at)),
        ("attempts", str(run.attempts)),
        ("mlflow", mlflow),
        ("best model", run.best_model),
        ("main metric", main_metric),
        ("registered", registered),
    ]


def _print_run(run: PipelineRun) -> None:
    console = _console()
    console.print(
        Text.assemble(
            ("Pipeline run ", "bold"), (run.pipeline_id, "bold"), "  ", _status(run.status.value)
        )
    )
    details = Table.grid(padding=(0, 2))
    details.add_column(style="dim")
    details.add_column(overflow="fold")
    for label, value in _run_details(run):
        if value:
            details.add_row(*_row(label, value))
    console.print(details)

    steps = Table(title="Steps", title_justify="left")
    for header in ("#", "step", "status", "started (UTC)", "took", "findings", "message"):
        steps.add_column(header, overflow="fold")
    for number, step in enumerate(run.steps, start=1):
        took = "" if step.elapsed_seconds is None else f"{step.elapsed_seconds:.1f}s"
        findings = ", ".join(
            f"{key}={_compact(value)}"
            for key, value in step.findings.items()
            if key not in BULKY_FINDINGS
        )
        steps.add_row(
            *_row(
                str(number),
                step.name,
                _status(step.status.value),
                _time(step.started_at),
                took or _duration(step.started_at, step.finished_at),
                findings,
                step.message or "",
            )
        )
    console.print(steps if run.steps else Text("no steps recorded yet", style="dim"))
    rows = leaderboard(run)
    if rows:
        console.print(leaderboard_table(rows))
    promotion = promotion_text(run)
    if promotion is not None:
        console.print(promotion)
    if run.error is not None:
        where = f" in step {run.error.step}" if run.error.step else ""
        console.print(
            Text(f"failed{where}: {run.error.error_type}: {run.error.message}", style="red")
        )


RUN_ACTIONS = ("show", "watch")


def runs(
    pipeline_id: str | None = typer.Argument(
        None,
        metavar="show|watch|PIPELINE_ID",
        help="`show ID` (or just ID): the run step by step; `watch ID`: follow it live; "
        "nothing: list recent runs.",
    ),
    watched_id: str | None = typer.Argument(
        None, metavar="PIPELINE_ID", help="The run, after show or watch.", show_default=False
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs to list."),
    status: RunStatus | None = typer.Option(None, "--status", help="Only runs with this status."),
    output_format: OutputFormat = FORMAT_OPTION,
    timeout: float = typer.Option(
        3600.0, "--timeout", help="With watch: give up after this many seconds."
    ),
    store_uri: str | None = STORE_OPTION,
) -> None:
    """Recent pipeline runs, or one run step by step, or one run followed live.

    mlp runs: the most recent runs, newest first.

    mlp runs show ID (or mlp runs ID): the run's steps, timings and findings, the
    leaderboard of every compared model, the promotion decision, its error if it failed.

    mlp runs watch ID: every progress event so far, then each new one as the trainer
    records it, until the run ends (exit 1 when it failed).
    """
    action = "show"
    if pipeline_id in RUN_ACTIONS:
        action, pipeline_id = pipeline_id, watched_id
        if pipeline_id is None:
            raise typer.BadParameter(f"mlp runs {action} needs a PIPELINE_ID")
    elif watched_id is not None:
        raise typer.BadParameter(f"unexpected '{watched_id}'; use mlp runs [show|watch] ID")
    if action == "watch":
        assert pipeline_id is not None
        _watch(pipeline_id, timeout, store_uri)
        return
    with _opened_store(store_uri) as store:
        if pipeline_id is None:
            recent_runs = store.list_runs(limit=limit, status=status)
            if output_format is OutputFormat.JSON:
                _write_json([run.model_dump(mode="json") for run in recent_runs])
            elif output_format is OutputFormat.CSV:
                _write_csv(RUN_CSV_FIELDS, [run.model_dump(mode="json") for run in recent_runs])
            else:
                console = _console()
                console.print(_runs_table(recent_runs, console.width))
            return
        run = store.get_run(pipeline_id)
    if output_format is OutputFormat.JSON:
        _write_json(run.model_dump(mode="json"))
    elif output_format is OutputFormat.CSV:
        _write_csv(STEP_CSV_FIELDS, [step.model_dump(mode="json") for step in run.steps])
    else:
        _print_run(run)


def _watch(pipeline_id: str, timeout: float, store_uri: str | None) -> None:
    from mlplatform.cli.live_progress import EventDisplay

    with _opened_store(store_uri) as store, EventDisplay() as display:
        try:
            final = watch_run(store, pipeline_id, display.show, timeout)
        except WatchTimeout as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(EXIT_FAILURE) from None
    if final.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILURE)


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
            _time(record.created_at),
            f"{record.model_name} v{record.model_version}",
            f"{record.source.value} {record.batch_id or record.request_id or ''}",
            str(record.row_index),
            _preview(record.prediction, 30),
        ]
        if wide:
            latency = "" if record.latency_ms is None else f"{record.latency_ms:.1f}"
            cells += [_preview(record.probabilities, 40), latency]
        cells.append(_preview(record.input_row))
        table.add_row(*_row(*cells))
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
    with _opened_store(store_uri) as store:
        records = store.query_predictions(**filters, limit=limit, newest_first=newest)
        matching = store.count_predictions(**filters) if output_format is OutputFormat.TABLE else 0
    if output_format is OutputFormat.JSON:
        _write_json([record.model_dump(mode="json") for record in records])
    elif output_format is OutputFormat.CSV:
        _write_csv(PREDICTION_CSV_FIELDS, [record.model_dump(mode="json") for record in records])
    else:
        console = _console()
        console.print(_predictions_table(records, matching, console.width))


def register(app: typer.Typer) -> None:
    """Adds the store-reading commands to the `mlp` app."""
    app.command("runs")(runs)
    app.command("predictions")(predictions)
