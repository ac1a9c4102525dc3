"""`mlp monitor NAME`: how a model's versions do on live traffic; `mlp monitor baseline`:
store the reference of a version registered before the trainer stored one itself.

`mlp monitor NAME` reads the prediction store (MLP_STORE_URI) and the registry
(MLFLOW_TRACKING_URI); `--json` prints the summary scripts and alerts read.
"""

from __future__ import annotations

import errno
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from mlplatform.cli.service_startup import log_format_option, start_logging
from mlplatform.cli.store_output import EXIT_FAILURE, STORE_OPTION, opened_store, parse_time

DURATION = re.compile(r"^(\d+)([mhdw])$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TRACKING_OPTION = typer.Option(
    None,
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking server or store (default: the local one).",
)


class _ReportByDefault(TyperGroup):
    """`mlp monitor NAME ...` runs the hidden `report` command; `mlp monitor baseline ...`
    the subcommand of that name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["report", *args]
        return super().parse_args(ctx, args)


monitor_app = typer.Typer(
    cls=_ReportByDefault,
    help="Live quality and drift of a model's versions against their training baseline.",
    no_args_is_help=True,
)


def parse_since(value: str | None) -> datetime | None:
    """`7d`, `12h`, `30m`, `2w` before now, or an ISO 8601 time."""
    if value is None:
        return None
    match = DURATION.match(value.strip())
    if match:
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(**{DURATION_UNITS[unit]: int(amount)})
    try:
        return parse_time(value, "--since")
    except typer.BadParameter:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 time",
            param_hint="--since",
        ) from None


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    from mlplatform.common.settings import get_settings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri or get_settings().resolved_mlflow_tracking_uri)


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"model {summary['model']}")
    if not summary["versions"]:
        typer.echo("  no predictions in this window")
    for entry in summary["versions"]:
        share = entry["labelled"] / entry["predictions"] if entry["predictions"] else 0.0
        typer.echo(
            f"  version {entry['version']}: {entry['predictions']} predictions, "
            f"{entry['labelled']} labelled ({share:.0%})"
        )
        baseline = entry["baseline"] or {}
        for name, value in entry["quality"].items():
            typer.echo(
                f"    {name:<9} live {_figure(value):>8}   baseline {_figure(baseline.get(name))}"
            )
        drift = entry["drift"]
        if drift is None:
            typer.echo("    drift: no baseline (mlp monitor baseline NAME VERSION --data FILE)")
            continue
        drifted = [name for name, column in drift["features"].items() if column["drifted"]]
        typer.echo(
            f"    drift: {drift['share']:.0%} of features drifted"
            + (f" ({', '.join(drifted)})" if drifted else "")
        )
        prediction = entry["prediction_drift"]
        if prediction is not None:
            state = "drifted" if prediction["drifted"] else "stable"
            typer.echo(
                f"    predictions: {state} ({prediction['method']} {prediction['score']:.4g})"
            )


@monitor_app.command("report", hidden=True)
def report(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str | None = typer.Option(None, "--version", help="Only this version."),
    since: str | None = typer.Option(
        None, "--since", help="Only predictions since: 30m, 12h, 7d, 2w, or an ISO 8601 time."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    html: Path | None = typer.Option(
        None, "--html", dir_okay=False, help="Also write Evidently's HTML report here."
    ),
    store_uri: str | None = STORE_OPTION,
    tracking_uri: str | None = TRACKING_OPTION,
) -> None:
    """Per version: predictions served, how many are labelled, live quality beside the
    baseline's, drift per feature and of the predictions (newest version first)."""
    from mlflow.exceptions import MlflowException

    from mlplatform.common.monitoring.summary import monitor_summary

    start = parse_since(since)
    client = _client(tracking_uri)
    try:
        with opened_store(store_uri) as store:
            summary, data = monitor_summary(store, client, name, version, start)
    except MlflowException as error:
        typer.echo(f"registry error: {error.message}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    if html is not None:
        _write_html(html, data)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


def _write_html(path: Path, data: list[Any]) -> None:
    """Evidently's report of the newest version that has a baseline."""
    from mlplatform.common.monitoring.drift import save_html_report

    for version in data:
        if version.baseline is None or version.current_inputs.empty:
            continue
        reference_pairs = version.baseline.holdout_pairs()
        current_pairs = version.labelled[["prediction", "target"]]
        save_html_report(
            path,
            version.baseline.problem_type,
            version.baseline.features,
            version.current_inputs,
            reference_pairs,
            current_pairs,
        )
        typer.echo(f"wrote {path} (version {version.version})", err=True)
        return
    typer.echo("no version with a baseline and predictions: no HTML report written", err=True)


@monitor_app.command("baseline")
def baseline(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Registered model version."),
    data: Path = typer.Option(
        ..., "--data", exists=True, dir_okay=False, help="Training data: .csv or .parquet."
    ),
    target: str = typer.Option(..., "--target", help="The target column of --data."),
    tracking_uri: str | None = TRACKING_OPTION,
) -> None:
    """Store a baseline for a version registered before baselines existed: a sample of
    --data's features, and the model's predictions and metrics on --data."""
    from mlflow.exceptions import MlflowException

    from mlplatform.common.monitoring.backfill import backfill_baseline

    client = _client(tracking_uri)
    try:
        stored = backfill_baseline(client, name, version, data, target)
    except (MlflowException, ValueError, OSError) as error:
        message = error.message if isinstance(error, MlflowException) else str(error)
        typer.echo(f"cannot store the baseline of {name} version {version}: {message}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(
        f"stored the baseline of {name} version {version}: {len(stored.features)} sample rows, "
        f"hold-out metrics {json.dumps(stored.holdout_metrics)}"
    )


@monitor_app.command("exporter")
def exporter(
    models: list[str] = typer.Option(
        [], "--model", help="A model to watch (repeatable; default: every registered model)."
    ),
    since: str = typer.Option("7d", "--since", help="The window: 30m, 12h, 7d, 2w."),
    interval_s: float = typer.Option(
        300.0, "--monitor-interval", min=0.1, help="Seconds between refreshes."
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address to bind."),
    metrics_port: int = typer.Option(9097, "--metrics-port", help="Port of /metrics."),
    store_uri: str | None = STORE_OPTION,
    tracking_uri: str | None = TRACKING_OPTION,
    log_format: str | None = log_format_option(),
) -> None:
    """Serve the monitoring figures as Prometheus gauges, refreshed every --monitor-interval
    seconds: live quality, baseline quality, drift share and drifted features per version."""
    import signal

    from mlplatform.common.monitoring.exporter import MonitorExporter

    match = DURATION.match(since.strip())
    if match is None:
        raise typer.BadParameter(
            f"{since!r} is not a duration (30m, 12h, 7d, 2w)", param_hint="--since"
        )
    amount, unit = match.groups()
    window = timedelta(**{DURATION_UNITS[unit]: int(amount)})
    start_logging("monitor", "INFO", log_format)
    client = _client(tracking_uri)
    with opened_store(store_uri) as store:
        running = MonitorExporter(store, client, models, window, interval_s)
        try:
            port = running.serve(metrics_host, metrics_port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            typer.echo(
                f"mlp monitor exporter: metrics port {metrics_port} on {metrics_host} is taken; "
                "choose another with --metrics-port (0 picks a free one)",
                err=True,
            )
            raise typer.Exit(2) from None
        typer.echo(f"monitoring gauges on http://{metrics_host}:{port}/metrics", err=True)
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda _number, _frame: running.stop())
        running.run()
    typer.echo("monitoring exporter stopped", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
