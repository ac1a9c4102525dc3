"""`mlp monitor baseline` for a version registered without one, and `mlp monitor`'s options."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from monitoring_model import FEATURES, MODEL, MonitoredModel, draw_rows, true_labels
from predictor_registry import log_and_register
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.cli.monitor_commands import parse_since
from mlplatform.common.monitoring.baseline import load_baseline


def test_baseline_is_stored_for_a_version_registered_without_one(
    monitored: MonitoredModel, tmp_path: Path
) -> None:
    features = draw_rows(300, seed=21)
    labels = true_labels(features, seed=22)
    model = LogisticRegression().fit(features, labels)
    # No alias: the predictor keeps serving version 1.
    version = log_and_register(monitored.tracking_uri, model, features, MODEL, alias=None)
    data = tmp_path / "train.csv"
    features.assign(churned=labels).to_csv(data, index=False)
    runner = CliRunner()
    common = ["--tracking-uri", monitored.tracking_uri]
    result = runner.invoke(
        app,
        [
            "monitor",
            "baseline",
            MODEL,
            version,
            "--data",
            str(data),
            "--target",
            "churned",
            *common,
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"stored the baseline of {MODEL} version {version}: 300 sample rows" in result.output

    client = MlflowClient(monitored.tracking_uri)
    baseline = load_baseline(client, client.get_model_version(MODEL, version).run_id)
    assert baseline is not None and list(baseline.features.columns) == FEATURES
    expected = accuracy_score(labels, model.predict(features))
    assert baseline.holdout_metrics["accuracy"] == pytest.approx(expected)

    result = runner.invoke(
        app,
        ["monitor", MODEL, "--version", version, "--json", "--store", monitored.store_uri, *common],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    [entry] = json.loads(result.stdout)["versions"]
    assert (entry["version"], entry["predictions"], entry["labelled"]) == (version, 0, 0)
    assert entry["baseline"]["accuracy"] == pytest.approx(expected)
    assert entry["quality"] == {} and entry["drift"] is None


def test_baseline_needs_the_target_column(monitored: MonitoredModel, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    draw_rows(10, seed=1).to_csv(data, index=False)
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "baseline",
            MODEL,
            "1",
            "--data",
            str(data),
            "--target",
            "churned",
            "--tracking-uri",
            monitored.tracking_uri,
        ],
    )
    assert result.exit_code == 1
    assert "--target 'churned' is not a column of train.csv" in result.output


def test_an_unknown_version_is_a_registry_error(monitored: MonitoredModel) -> None:
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            MODEL,
            "--version",
            "99",
            "--store",
            monitored.store_uri,
            "--tracking-uri",
            monitored.tracking_uri,
        ],
    )
    assert result.exit_code == 1
    assert "registry error" in result.output and "99" in result.output


def test_since_takes_durations_and_times() -> None:
    before = datetime.now(UTC)
    assert before - timedelta(days=7, seconds=5) < parse_since("7d") <= before  # type: ignore[operator]
    assert parse_since("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since(None) is None
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["monitor", MODEL, "--since", "7 days"])
    assert result.exit_code == 2
    assert "neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 time" in result.output
