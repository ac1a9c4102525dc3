"""`mlp runs` and `mlp predictions` read the store: tables, CSV, JSON, and clear errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mlplatform.cli import store_commands
from mlplatform.common.store import (
    PipelineRun,
    PredictionRecord,
    RunError,
    StepRecord,
    open_store,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
WIDE = {"COLUMNS": "200"}  # rich folds cells to the terminal width; keep ids on one line


@pytest.fixture
def app() -> typer.Typer:
    """The store commands on an app of their own, as `mlp` registers them."""
    application = typer.Typer()
    store_commands.register(application)
    return application


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(uri) as store:
        store.create_run(
            PipelineRun(
                pipeline_id="run-ok",
                status="succeeded",
                model_name="churn",
                created_at=T0,
                started_at=T0,
                finished_at=T0 + timedelta(seconds=75),
                main_metric="AUC",
                main_metric_value=0.9123,
                registered_model_name="churn",
                registered_version="3",
                alias="production",
                steps=[
                    StepRecord(
                        name="load_data_from_file",
                        status="succeeded",
                        started_at=T0,
                        elapsed_seconds=1.25,
                        findings={"rows": 891},
                    ),
                    StepRecord(
                        name="train_model",
                        status="succeeded",
                        elapsed_seconds=70.5,
                        findings={"best_model": "lightgbm"},
                        message="compared [14] models",
                    ),
                ],
            )
        )
        store.create_run(
            PipelineRun(
                pipeline_id="run-failed",
                status="failed",
                model_name="fraud",
                created_at=T0 + timedelta(hours=1),
                steps=[StepRecord(name="train_model", status="failed")],
                error=RunError(
                    step="train_model", error_type="KeyError", message="['Class'] not in columns"
                ),
            )
        )
        store.append_predictions(
            PredictionRecord(
                model_name="churn",
                model_version=str(1 + row // 2),
                input_row={"age": 40 + row, "città": "Zürich", "note": None},
                prediction="stay" if row % 2 else "leave",
                probabilities={"stay": 0.25 * row, "leave": 1 - 0.25 * row},
                source="batch",
                batch_id="batch-1",
                row_index=row,
                latency_ms=2.5,
                created_at=T0 + timedelta(minutes=row),
            )
            for row in range(4)
        )
    return uri


def test_runs_lists_recent_runs_newest_first(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["runs", "--store", store_uri], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.stdout.index("run-failed") < result.stdout.index("run-ok")
    assert "AUC=0.9123" in result.stdout
    assert "churn v3 @production" in result.stdout


def test_runs_filters_by_status(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(
        app, ["runs", "--status", "failed", "--format", "csv", "--store", store_uri]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["pipeline_id"] for row in rows] == ["run-failed"]
    assert json.loads(rows[0]["error"])["error_type"] == "KeyError"


def test_run_detail_shows_steps_timings_findings(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["runs", "run-ok", "--store", store_uri], env=WIDE)
    assert result.exit_code == 0, result.output
    for expected in (
        "Pipeline run run-ok",
        "load_data_from_file",
        "1.2s",
        "rows=891",
        "train_model",
        "70.5s",
        "best_model=lightgbm",
        "compared [14] models",  # brackets shown as written, not read as markup
        "took",
        "75.0s",
        "churn version 3 (alias production)",
    ):
        assert expected in result.stdout, expected


def test_failed_run_detail_shows_the_error(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["runs", "run-failed", "--store", store_uri], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "failed in step train_model: KeyError: ['Class'] not in columns" in result.stdout


def test_run_detail_as_json(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["runs", "run-ok", "--format", "json", "--store", store_uri])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["pipeline_id"] == "run-ok"
    assert [step["name"] for step in document["steps"]] == ["load_data_from_file", "train_model"]


def test_unknown_run_exits_1_with_a_message(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(app, ["runs", "no-such-run", "--store", store_uri])
    assert result.exit_code == 1
    assert result.stderr.strip() == "pipeline run 'no-such-run' not found"
    assert result.stdout == ""


def test_predictions_csv_is_parseable(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("predictions", "--model", "churn", "--version", "2"),
            *("--format", "csv", "--store", store_uri),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["row_index"] for row in rows] == ["2", "3"]
    first = rows[0]
    assert first["created_at"] == "2024-05-01T12:02:00Z"
    assert (first["model_name"], first["model_version"], first["source"]) == ("churn", "2", "batch")
    assert first["batch_id"] == "batch-1"
    assert first["request_id"] == ""
    assert first["prediction"] == "leave"
    assert json.loads(first["probabilities"]) == {"stay": 0.5, "leave": 0.5}
    assert json.loads(first["input_row"]) == {"age": 42, "città": "Zürich", "note": None}
    assert float(first["latency_ms"]) == 2.5


def test_predictions_by_batch_and_time_as_json(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("predictions", "--batch", "batch-1"),
            *("--since", "2024-05-01T12:01:00Z", "--until", "2024-05-01 12:03"),
            *("--format", "json", "--store", store_uri),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [record["row_index"] for record in json.loads(result.stdout)] == [1, 2]


def test_predictions_table_says_how_many_match(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(
        app, ["predictions", "--limit", "1", "--newest", "--store", store_uri], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "1 shown of 4 matching" in result.stdout
    assert "12:03:00" in result.stdout
    assert "showing 1 of 4; --limit N for more" in result.stderr


def test_predictions_as_csv_say_on_stderr_when_cut_short(app: typer.Typer, store_uri: str) -> None:
    cut = CliRunner().invoke(
        app, ["predictions", "--limit", "2", "--format", "csv", "--store", store_uri]
    )
    assert cut.exit_code == 0, cut.output
    assert len(cut.stdout.splitlines()) == 3  # header and two rows, nothing else
    assert "showing 2 of 4; --limit N for more" in cut.stderr
    whole = CliRunner().invoke(app, ["predictions", "--format", "csv", "--store", store_uri])
    assert whole.exit_code == 0 and "showing" not in whole.stderr


def test_bad_since_names_the_option(app: typer.Typer, store_uri: str) -> None:
    result = CliRunner().invoke(
        app, ["predictions", "--since", "yesterday", "--store", store_uri], env=WIDE
    )
    assert result.exit_code == 2
    assert "--since" in result.stderr
    assert "'yesterday' is not an ISO 8601 time" in result.stderr


def test_unknown_store_scheme_is_a_clear_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["predictions", "--store", "redis://cache:6379"])
    assert result.exit_code == 1
    assert "unsupported store URI scheme 'redis'" in result.stderr
    assert "sqlite://" in result.stderr


def test_mlp_has_the_store_commands() -> None:
    from mlplatform.cli.main import app as mlp

    result = CliRunner().invoke(mlp, ["--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "runs" in result.stdout
    assert "predictions" in result.stdout
