"""`mlp trainer --metrics-port`: pipelines by outcome, step and model durations, runs in
progress and dead letters, scraped over HTTP from a real trainer process on the real broker
(a real MLflow store, a small real training)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from tests.gateway.gateway_harness import free_port
from tests.support.prometheus_scrape import scrape, total, value
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import publish_raw, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def test_trainer_counts_outcomes_steps_models_and_dead_letters(
    work_queue: messaging.WorkQueue, tracking_uri: str, fraud_csv: Path, tmp_path: Path
) -> None:
    metrics_port = free_port()
    environment = {
        **os.environ,
        "MLP_PIPELINES_QUEUE": work_queue.name,
        "MLP_QUEUE_WAIT_MS": str(work_queue.wait_ms),
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLP_BROKER_URL": BROKER_URL,
    }
    argv = [sys.executable, "-m", "mlplatform.cli", "trainer"]
    argv += ["--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)]
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    log_path = tmp_path / "trainer.log"
    with log_path.open("wb") as log:
        trainer = subprocess.Popen(argv, env=environment, stdout=log, stderr=log)
    try:
        wait_until(lambda: "consuming" in log_path.read_text(), 120, "the trainer to consume")
        assert value(scrape(url), "mlp_trainer_pipelines_in_progress") == 0
        publish_raw(
            BROKER_URL,
            work_queue,
            b"not a protobuf",
            pika.BasicProperties(content_type="application/protobuf", message_id="poison"),
        )
        missing = parse_pipeline(classification_pipeline(tmp_path / "missing.csv"))
        submit_pipeline(missing, broker_url=BROKER_URL, pipeline_id="m-fail", queue=work_queue)
        trained = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",)))
        submit_pipeline(trained, broker_url=BROKER_URL, pipeline_id="m-ok", queue=work_queue)
        samples = wait_until(
            lambda: (
                (found := scrape(url))
                and value(found, "mlp_trainer_pipelines_total", outcome="succeeded") == 1
                and found
            ),
            300,
            "the training to succeed",
        )
    finally:
        trainer.terminate()
        trainer.wait(60)

    def outcome(name: str) -> float:
        return value(samples, "mlp_trainer_pipelines_total", outcome=name)

    assert (outcome("rejected"), outcome("failed"), outcome("succeeded")) == (1, 1, 1)
    assert value(samples, "mlp_dead_letters_total", queue=work_queue.name) == 1
    assert value(samples, "mlp_trainer_pipeline_seconds_count", outcome="succeeded") == 1
    assert value(samples, "mlp_trainer_pipelines_in_progress") == 0

    def step_count(step: str, result: str) -> float:
        return value(samples, "mlp_trainer_step_seconds_count", step=step, outcome=result)

    assert step_count("load_data_from_file", "failed") == 1
    assert step_count("load_data_from_file", "succeeded") == 1
    assert step_count("train_model", "succeeded") == 1
    training = value(
        samples, "mlp_trainer_step_seconds_sum", step="train_model", outcome="succeeded"
    )
    assert training > 0
    # One model cross-validated (compare, `dt`), timed within the training step.
    dt = {"stage": "compare", "estimator": "dt"}
    assert value(samples, "mlp_trainer_model_seconds_count", **dt) == 1
    assert 0 < value(samples, "mlp_trainer_model_seconds_sum", **dt) <= training
    assert total(samples, "mlp_trainer_model_seconds_count") == 1
