"""`mlp train` and `mlp submit` as a user runs them (the installed console script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlplatform.client import messaging
from mlplatform.common.store import RunStatus, Store, open_store
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline, fraud_csv, work_queue
from tests.trainer.workers import running_worker

__all__ = ["fraud_csv", "work_queue"]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def run_mlp(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    return subprocess.run(
        [mlp, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **environment}
    )


def write_pipeline(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_train_runs_in_process_with_tuning(tmp_path: Path, fraud_csv: Path) -> None:
    document = classification_pipeline(fraud_csv, estimators=("dt", "lr"), register={})
    modeling = document["pipeline"][0]["MLSteps"][2]["train_model"]["modeling_params"]
    modeling.update(tune=True, tune_n_iter=2)
    environment = {
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    result = run_mlp(
        "train", str(write_pipeline(tmp_path / "p.json", document)), "--id", "cli-train-1",
        environment=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running pipeline cli-train-1" in result.stdout
    assert "train_model done in" in result.stdout
    assert "compare: model 2 of 2" in result.stdout and "tune: model 1 " in result.stdout
    assert "succeeded; best model" in result.stdout and "registered fraud v1" in result.stdout
    with open_store(environment["MLP_STORE_URI"]) as store:
        run = store.get_run("cli-train-1")
    assert run.status == RunStatus.SUCCEEDED
    train = run.step("train_model")
    assert train is not None and train.findings["evaluated_models"] >= 3  # compared + tuned


def test_train_of_a_failing_pipeline_exits_1(tmp_path: Path, fraud_csv: Path) -> None:
    document = classification_pipeline(fraud_csv)
    document["experiment_config"]["target"] = "NoSuchColumn"
    result = run_mlp(
        "train", str(write_pipeline(tmp_path / "p.json", document)),
        environment={
            "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        },
    )  # fmt: skip
    assert result.returncode == 1
    assert "target column 'NoSuchColumn' is not in the data" in result.stdout


def test_submit_wait_follows_the_run_to_its_outcome(
    tmp_path: Path, fraud_csv: Path, work_queue: messaging.WorkQueue
) -> None:
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    document = classification_pipeline(fraud_csv, estimators=("dt",), register={})
    environment = {
        "MLP_BROKER_URL": BROKER_URL,
        "MLP_PIPELINES_QUEUE": work_queue.name,
        "MLP_QUEUE_WAIT_MS": str(work_queue.wait_ms),
    }
    store: Store = open_store(store_uri)
    try:
        with running_worker(work_queue, store, tracking_uri, BROKER_URL):
            result = run_mlp(
                "submit", str(write_pipeline(tmp_path / "p.json", document)), "--wait",
                "--id", "cli-submit-1", environment=environment,
            )  # fmt: skip
    finally:
        store.close()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "submitted pipeline cli-submit-1"
    assert any("train_model started" in line for line in lines)
    # Piped: one plain line per event, each model's score as it finishes, no escape codes.
    assert any("compare: model 1 of 1 Decision Tree Classifier: F1 " in line for line in lines)
    assert "\x1b[" not in result.stdout
    assert "registered fraud v1 @production" in lines[-1] and "MLflow experiment" in lines[-1]


def test_submit_of_an_invalid_file_publishes_nothing(
    tmp_path: Path, fraud_csv: Path, work_queue: messaging.WorkQueue
) -> None:
    document = classification_pipeline(fraud_csv)
    document["pipeline"][0]["MLSteps"][2]["train_model"]["modeling_params"]["fold"] = 1
    result = run_mlp(
        "submit", str(write_pipeline(tmp_path / "bad.json", document)),
        environment={"MLP_BROKER_URL": BROKER_URL, "MLP_PIPELINES_QUEUE": work_queue.name,
                     "MLP_QUEUE_WAIT_MS": str(work_queue.wait_ms)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "modeling_params.fold: must be at least 2" in result.stderr
    with messaging.open_channel(BROKER_URL) as (channel, version):
        messaging.declare_work_queue(channel, work_queue, version)
        assert channel.queue_declare(work_queue.name, passive=True).method.message_count == 0


def test_submit_without_a_broker_says_so(tmp_path: Path, fraud_csv: Path) -> None:
    document = classification_pipeline(fraud_csv)
    result = run_mlp(
        "submit", str(write_pipeline(tmp_path / "p.json", document)),
        environment={"MLP_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach RabbitMQ at amqp://guest:guest@127.0.0.1:1/%2F" in result.stderr
