"""The trainer worker on the real RabbitMQ: events, poison messages, retries, two workers."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import Any

import pika
import pytest
from mlflow.tracking import MlflowClient

from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.store import RunStatus, Store
from mlplatform.v1 import messages_pb2
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import drain, publish_raw, running_worker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def run_finished(store: Store, pipeline_id: str) -> Any:
    try:
        run = store.get_run(pipeline_id)
    except KeyError:
        return None
    return run if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None


def test_submitted_pipeline_is_trained_and_followed_by_events(
    work_queue: messaging.WorkQueue, store: Store, tracking_uri: str, fraud_csv: Path
) -> None:
    definition = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",), register={}))
    with running_worker(work_queue, store, tracking_uri, BROKER_URL):
        submission = submit_pipeline(
            definition, broker_url=BROKER_URL, follow=True, timeout=300, queue=work_queue
        )
        assert submission.events is not None
        events = list(submission.events)
    assert events[-1].status == messages_pb2.RUN_STATUS_SUCCEEDED
    assert "registered fraud v1 @production" in events[-1].message
    started = [event.message for event in events if event.message.endswith(" started")]
    assert started == [
        "load_data_from_file started",
        "validate_data started",
        "train_model started",
        "register_model started",
    ]
    assert all(a.elapsed_seconds <= b.elapsed_seconds for a, b in itertools.pairwise(events))
    run = store.get_run(submission.pipeline_id)
    assert run.status == RunStatus.SUCCEEDED and run.worker_id == "worker-a"


def test_poison_messages_are_dead_lettered_and_the_worker_keeps_consuming(
    work_queue: messaging.WorkQueue, store: Store, tracking_uri: str, fraud_csv: Path
) -> None:
    submit_type = messages_pb2.SubmitPipeline.DESCRIPTOR.full_name
    invalid = parse_pipeline(classification_pipeline(fraud_csv), validate=False)
    invalid.pipeline[0].ml_steps[2].train_model.modeling_params.fold = 1
    invalid_message = messages_pb2.SubmitPipeline(pipeline_id="invalid-1", definition=invalid)
    valid = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",)))
    with running_worker(work_queue, store, tracking_uri, BROKER_URL):
        publish_raw(
            BROKER_URL,
            work_queue,
            b"\xff\x00 not protobuf",
            pika.BasicProperties(
                content_type=messaging.CONTENT_TYPE, type=submit_type, message_id="garbage-1"
            ),
        )
        publish_raw(
            BROKER_URL,
            work_queue,
            b"{}",
            pika.BasicProperties(content_type="application/json", message_id="json-1"),
        )
        publish_raw(
            BROKER_URL,
            work_queue,
            invalid_message.SerializeToString(),
            messaging.message_properties(invalid_message, "invalid-1"),
        )
        submit_pipeline(valid, broker_url=BROKER_URL, pipeline_id="valid-after", queue=work_queue)
        finished = wait_until(lambda: run_finished(store, "valid-after"), 180, "the valid job")
    assert finished.status == RunStatus.SUCCEEDED
    dead = drain(BROKER_URL, work_queue.dead_letter)
    reasons = {props.message_id: props.headers["x-mlp-dead-letter-reason"] for props, _ in dead}
    assert set(reasons) == {"garbage-1", "json-1", "invalid-1"}
    assert reasons["garbage-1"].startswith(f"body is not a valid {submit_type}")
    assert reasons["json-1"].startswith("content_type 'application/json' is not")
    assert reasons["invalid-1"].startswith("invalid pipeline definition: ")
    assert "modeling_params.fold: must be at least 2" in reasons["invalid-1"]
    recorded = {letter.message_id: letter for letter in store.list_dead_letters()}
    assert set(recorded) == set(reasons)
    assert recorded["garbage-1"].body == b"\xff\x00 not protobuf"
    refused = store.get_run("invalid-1")
    assert refused.status == RunStatus.FAILED and refused.error is not None
    assert refused.error.error_type == "InvalidPipeline"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_transient_failures_are_retried_a_bounded_number_of_times(
    work_queue: messaging.WorkQueue,
    store: Store,
    fraud_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow's server is down (nothing listens on its port): the job is retried, then
    given up with its reason recorded, instead of failing on the first refusal."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    down = f"http://127.0.0.1:{_closed_port()}"
    definition = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",)))
    with running_worker(work_queue, store, down, BROKER_URL, max_attempts=2):
        submit_pipeline(definition, broker_url=BROKER_URL, pipeline_id="down-1", queue=work_queue)
        failed = wait_until(lambda: run_finished(store, "down-1"), 120, "the job to be given up")
    assert failed.status == RunStatus.FAILED and failed.error is not None
    assert failed.error.message.startswith("gave up after 2 attempts")
    [(properties, _body)] = drain(BROKER_URL, work_queue.dead_letter)
    assert properties.headers[messaging.ATTEMPT_HEADER] == 1
    assert properties.message_id == "down-1"


def test_two_workers_share_four_jobs(
    work_queue: messaging.WorkQueue, store: Store, tracking_uri: str, fraud_csv: Path
) -> None:
    definition = parse_pipeline(
        classification_pipeline(fraud_csv, estimators=("dt",), register={}, model_name="shared")
    )
    ids = [f"shared-{index}" for index in range(4)]
    with (
        running_worker(work_queue, store, tracking_uri, BROKER_URL, name="worker-a"),
        running_worker(work_queue, store, tracking_uri, BROKER_URL, name="worker-b"),
    ):
        for pipeline_id in ids:
            submit_pipeline(
                definition, broker_url=BROKER_URL, pipeline_id=pipeline_id, queue=work_queue
            )
        runs = [wait_until(lambda i=i: run_finished(store, i), 300, i) for i in ids]
    assert all(run.status == RunStatus.SUCCEEDED for run in runs)
    workers = [run.worker_id for run in runs]
    assert set(workers) == {"worker-a", "worker-b"}, workers
    versions = MlflowClient(tracking_uri).search_model_versions("name = 'shared'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
