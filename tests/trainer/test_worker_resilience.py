"""Trainer workers against failure: SIGKILL mid-training, a consumer timeout shorter than
the training, a broker restart. Real RabbitMQ (the machine's, and a node of the test's own
with a consumer timeout of seconds), real MLflow and run stores."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.store import RunStatus, StepStatus, Store
from tests.support.queues import BROKER_URL
from tests.support.rabbitmq_node import rabbitmq_node
from tests.trainer.conftest import classification_pipeline
from tests.trainer.test_worker import run_finished
from tests.trainer.workers import running_worker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def test_worker_killed_mid_training_loses_nothing(
    work_queue: messaging.WorkQueue,
    store: Store,
    tracking_uri: str,
    fraud_csv: Path,
    tmp_path: Path,
) -> None:
    """`mlp trainer` is SIGKILLed while training; another worker takes the redelivered
    message over once the dead worker's lease expires, and the pipeline completes once."""
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    environment = {
        **os.environ,
        "MLP_PIPELINES_QUEUE": work_queue.name,
        "MLP_QUEUE_WAIT_MS": str(work_queue.wait_ms),
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLP_BROKER_URL": BROKER_URL,
    }
    definition = parse_pipeline(
        classification_pipeline(
            fraud_csv, estimators=("rf", "lr", "dt"), ensemble=True, register={}
        )
    )
    log = (tmp_path / "worker-a.log").open("wb")
    doomed = subprocess.Popen(
        [mlp, "trainer", "--lease-seconds", "4"], env=environment, stdout=log, stderr=log
    )
    try:
        submit_pipeline(definition, broker_url=BROKER_URL, pipeline_id="kill-1", queue=work_queue)

        def training() -> bool:
            try:
                step = store.get_run("kill-1").step("train_model")
            except KeyError:
                return False
            return step is not None and step.status == StepStatus.RUNNING

        wait_until(training, 120, "worker A to start training")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    dead_attempt = store.get_run("kill-1")
    assert dead_attempt.status == RunStatus.RUNNING
    assert dead_attempt.mlflow_run_id, "the attempt's MLflow run was not recorded when it started"
    mlflow_client = MlflowClient(tracking_uri)
    assert mlflow_client.get_run(dead_attempt.mlflow_run_id).info.status == "RUNNING"
    with running_worker(
        work_queue, store, tracking_uri, BROKER_URL, name="worker-b", lease_seconds=4
    ):
        finished = wait_until(lambda: run_finished(store, "kill-1"), 300, "worker B to finish")
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.worker_id == "worker-b" and finished.attempts == 2
    versions = mlflow_client.search_model_versions("name = 'fraud'")
    assert [str(v.version) for v in versions] == ["1"]
    # The dead attempt's parent run is ended by the worker that took the run over.
    abandoned = mlflow_client.get_run(dead_attempt.mlflow_run_id)
    assert abandoned.info.status == "FAILED"
    reason = abandoned.data.tags["mlp.terminated_reason"]
    assert reason.startswith("worker lease expired; the run was taken over by worker worker-b")
    assert dead_attempt.worker_id and dead_attempt.worker_id in reason
    replacement = mlflow_client.get_run(finished.mlflow_run_id)
    assert replacement.info.status == "FINISHED"
    assert replacement.data.tags["mlp.previous_attempt_run_id"] == dead_attempt.mlflow_run_id


@pytest.fixture(scope="module")
def short_timeout_broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with rabbitmq_node(tmp_path_factory.mktemp("rabbit"), consumer_timeout_ms=3000) as node:
        yield node


def test_training_longer_than_the_consumer_timeout_completes_once(
    short_timeout_broker: Any, store: Store, tracking_uri: str, fraud_csv: Path
) -> None:
    """The broker closes the channel of a delivery unacked for 3 s; training takes longer
    (the `before_step` hook holds train_model for 8 s, standing in for a long fit). The
    worker keeps training, reconnects, parks its own redelivered message while busy, and
    acks it as done once the run's outcome is recorded."""
    broker = short_timeout_broker.url
    queue = messaging.WorkQueue("timeout.pipelines", wait_ms=300)

    def slow_training(step: str, _context: object) -> None:
        if step == "train_model":
            time.sleep(8)

    definition = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",), register={}))
    with running_worker(queue, store, tracking_uri, broker, before_step=slow_training) as worker:
        submit_pipeline(definition, broker_url=broker, pipeline_id="long-1", queue=queue)
        finished = wait_until(lambda: run_finished(store, "long-1"), 120, "the long run")
        assert finished.status == RunStatus.SUCCEEDED and finished.attempts == 1
        assert worker.connections_opened >= 2, "the broker never closed the channel"

        def queue_empty() -> bool:
            with messaging.open_channel(broker) as (channel, _version):
                declared = channel.queue_declare(queue.name, passive=True)
                parked = channel.queue_declare(queue.wait, passive=True)
                return declared.method.message_count + parked.method.message_count == 0

        wait_until(queue_empty, 60, "the redelivered message to be acked")
        # ...and the worker still takes new work.
        submit_pipeline(definition, broker_url=broker, pipeline_id="long-2", queue=queue)
        second = wait_until(lambda: run_finished(store, "long-2"), 120, "the second run")
    assert second.status == RunStatus.SUCCEEDED
    versions = MlflowClient(tracking_uri).search_model_versions("name = 'fraud'")
    assert sorted(int(v.version) for v in versions) == [1, 2]


def test_worker_reconnects_after_a_broker_restart(
    short_timeout_broker: Any, store: Store, tracking_uri: str, fraud_csv: Path
) -> None:
    broker = short_timeout_broker.url
    queue = messaging.WorkQueue("restart.pipelines", wait_ms=300)
    definition = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",)))
    with running_worker(queue, store, tracking_uri, broker) as worker:
        short_timeout_broker.restart_app()
        submit_pipeline(definition, broker_url=broker, pipeline_id="after-restart", queue=queue)
        finished = wait_until(lambda: run_finished(store, "after-restart"), 120, "the job")
        assert worker.connections_opened >= 2
    assert finished.status == RunStatus.SUCCEEDED
