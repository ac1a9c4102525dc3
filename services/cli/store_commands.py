"""`mlp runs`: the pipeline runs in the store, one run step by step, or followed live."""

from __future__ import annotations

from collections.abc import Sequence

import typer
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
from mlplatform.cli.store_output import (
    EXIT_FAILURE,
    FORMAT_OPTION,
    STORE_OPTION,
    WIDE_TERMINAL,
    OutputFormat,
    compact,
    format_duration,
    format_time,
    new_console,
    opened_store,
    status_text,
    text_row,
    write_csv,
    write_json,
)
from mlplatform.common.store import PipelineRun, RunStatus

RUN_CSV_FIELDS = (
    "pipeline_id", "status", "experiment_name", "model_name", "submitted_by", "created_at",
    "started_at", "finished_at", "attempts", "best_model", "main_metric", "main_metric_value",
    "registered_model_name", "registered_version", "alias", "error",
)  # fmt: skip
STEP_CSV_FIELDS = (
    "name", "status", "started_at", "finished_at", "elapsed_seconds", "findings", "message",
)  # fmt: skip


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
            status_text(run.status.value),
            format_time(run.created_at),
            run.model_name or "",
        ]
        if wide:
            finished_steps = sum(step.status in ("succeeded", "skipped") for step in run.steps)
            cells += [
                format_duration(run.started_at, run.finished_at),
                f"{finished_steps}/{len(run.steps)}",
            ]
        cells.append(metric)
        if wide:
            registered = ""
            if run.registered_model_name:
                registered = f"{run.registered_model_name} v{run.registered_version}"
                registered += f" @{run.alias}" if run.alias else ""
            cells.append(registered)
        table.add_row(*text_row(*cells))
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
        ("created", format_time(run.created_at)),
        ("started", format_time(run.started_at)),
        ("finished", format_time(run.finished_at)),
        ("took", format_duration(run.started_at, run.finished_at)),
        ("attempts", str(run.attempts)),
        ("mlflow", mlflow),
        ("best model", run.best_model),
        ("main metric", main_metric),
        ("registered", registered),
    ]


def _print_run(run: PipelineRun) -> None:
    console = new_console()
    console.print(
        Text.assemble(
            ("Pipeline run ", "bold"),
            (run.pipeline_id, "bold"),
            "  ",
            status_text(run.status.value),
        )
    )
    details = Table.grid(padding=(0, 2))
    details.add_column(style="dim")
    details.add_column(overflow="fold")
    for label, value in _run_details(run):
        if value:
            details.add_row(*text_row(label, value))
    console.print(details)

    steps = Table(title="Steps", title_justify="left")
    for header in ("#", "step", "status", "started (UTC)", "took", "findings", "message"):
        steps.add_column(header, overflow="fold")
    for number, step in enumerate(run.steps, start=1):
        took = "" if step.elapsed_seconds is None else f"{step.elapsed_seconds:.1f}s"
        findings = ", ".join(
            f"{key}={compact(value)}"
            for key, value in step.findings.items()
            if key not in BULKY_FINDINGS
        )
        steps.add_row(
            *text_row(
                str(number),
                step.name,
                status_text(step.status.value),
                format_time(step.started_at),
                took or format_duration(step.started_at, step.finished_at),
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
    with opened_store(store_uri) as store:
        if pipeline_id is None:
            recent_runs = store.list_runs(limit=limit, status=status)
            if output_format is OutputFormat.JSON:
                write_json([run.model_dump(mode="json") for run in recent_runs])
            elif output_format is OutputFormat.CSV:
                write_csv(RUN_CSV_FIELDS, [run.model_dump(mode="json") for run in recent_runs])
            else:
                console = new_console()
                console.print(_runs_table(recent_runs, console.width))
            return
        run = store.get_run(pipeline_id)
    if output_format is OutputFormat.JSON:
        write_json(run.model_dump(mode="json"))
    elif output_format is OutputFormat.CSV:
        write_csv(STEP_CSV_FIELDS, [step.model_dump(mode="json") for step in run.steps])
    else:
        _print_run(run)


def _watch(pipeline_id: str, timeout: float, store_uri: str | None) -> None:
    from mlplatform.cli.live_progress import EventDisplay

    with opened_store(store_uri) as store, EventDisplay() as display:
        try:
            final = watch_run(store, pipeline_id, display.show, timeout)
        except WatchTimeout as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(EXIT_FAILURE) from None
    if final.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Adds the store-reading commands to the `mlp` app."""
    from mlplatform.cli.prediction_commands import predictions

    app.command("runs")(runs)
    app.command("predictions")(predictions)
