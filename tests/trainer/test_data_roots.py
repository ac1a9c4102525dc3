"""A pipeline reads only under the trainers' data roots, and a secret never echoes.

As an outside tester would: a message published straight to the pipelines queue (no client
check on the way) names a file outside the roots that holds a secret. The real trainer
worker on the real RabbitMQ, with a real MLflow store, refuses it at validation; the
secret appears nowhere: not in the run record, the events, the worker's logs, the
dead-letter queue, the store's files or `mlp runs`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client import messaging
from mlplatform.client.data_roots import DataRoots
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.store import RunStatus, Store
from mlplatform.trainer.runner import PipelineRunner
from mlplatform.v1 import messages_pb2
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import drain, running_worker, wait_until

SECRET = "hunter2"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    private = tmp_path / "private"
    private.mkdir()
    path = private / "service.env"
    path.write_text(f"DB_PASSWORD={SECRET}\nDB_USER=admin\n")
    return path


@pytest.fixture
def data_dir(tmp_path: Path, secret_file: Path) -> Path:
    """The trainer's only root; it holds a symlink that points at the secret."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "linked.csv").symlink_to(secret_file)
    return folder


def _publish_and_collect_events(
    queue: messaging.WorkQueue, submissions: list[messages_pb2.SubmitPipeline]
) -> list[messages_pb2.PipelineEvent]:
    """Publishes as a submitter with queue access would (no client-side check), and
    returns every event of those runs up to each one's end."""
    events: list[messages_pb2.PipelineEvent] = []
    open_runs = {submission.pipeline_id for submission in submissions}
    with messaging.open_channel(BROKER_URL) as (channel, version):
        messaging.declare_work_queue(channel, queue, version)
        channel.exchange_declare(messaging.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
        events_queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for submission in submissions:
            channel.queue_bind(
                events_queue,
                messaging.EVENTS_EXCHANGE,
                routing_key=f"pipeline.{submission.pipeline_id}",
            )
            messaging.publish(channel, queue.name, submission, submission.pipeline_id)
        for method, _properties, body in channel.consume(
            events_queue, auto_ack=True, inactivity_timeout=60
        ):
            assert method is not None, "no event within 60 s"
            event = messages_pb2.PipelineEvent.FromString(body)
            events.append(event)
            if event.status == messages_pb2.RUN_STATUS_FAILED:
                open_runs.discard(event.pipeline_id)
            if not open_runs:
                break
        channel.cancel()
    return events


def test_secret_outside_the_roots_fails_validation_and_echoes_nowhere(
    work_queue: messaging.WorkQueue,
    store: Store,
    tracking_uri: str,
    tmp_path: Path,
    secret_file: Path,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    roots = DataRoots.of([data_dir, "kaggle:"])
    paths = {
        "direct": str(secret_file),
        "dotdot": f"{data_dir}/../private/{secret_file.name}",
        "symlink": str(data_dir / "linked.csv"),
    }
    submissions = [
        messages_pb2.SubmitPipeline(
            pipeline_id=f"secret-{name}",
            definition=parse_pipeline(classification_pipeline(Path(path))),
        )
        for name, path in paths.items()
    ]
    with running_worker(work_queue, store, tracking_uri, BROKER_URL, data_roots=roots):
        events = _publish_and_collect_events(work_queue, submissions)
        runs = {
            name: wait_until(
                lambda pid=f"secret-{name}": (
                    store.get_run(pid).status == RunStatus.FAILED and store.get_run(pid)
                ),
                30,
                f"run secret-{name} to fail",
            )
            for name in paths
        }
        for name, run in runs.items():
            assert SECRET not in run.model_dump_json(), f"the secret leaked into run {name}"
        dead = wait_until(
            lambda: (letters := drain(BROKER_URL, work_queue.dead_letter)) and letters,
            30,
            "the dead letters",
        )
        while len(dead) < len(paths):
            dead += wait_until(
                lambda: drain(BROKER_URL, work_queue.dead_letter), 30, "the dead letters"
            )

    for name, run in runs.items():
        assert run.error is not None
        assert run.error.error_type == "InvalidPipeline", name
        message = run.error.message
        assert "load_data_from_file.path" in message
        assert "is outside the data roots; allowed: " in message
        assert str(data_dir) in message and "kaggle:" in message
        assert run.steps == [], "no step may start: the file must not be opened"
        assert run.mlflow_run_id is None
    reasons = [properties.headers["x-mlp-dead-letter-reason"] for properties, _ in dead]
    assert len(reasons) == len(paths)
    assert all("outside the data roots" in reason for reason in reasons)

    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    cli = CliRunner().invoke(app, ["runs", "--store", store_uri], env={"COLUMNS": "200"})
    assert cli.exit_code == 0, cli.output
    detail = CliRunner().invoke(app, ["runs", "secret-symlink", "--store", store_uri])
    assert "outside the data roots" in detail.output

    everywhere = {
        "run records": json.dumps([run.model_dump(mode="json") for run in runs.values()]),
        "events": " ".join(event.message for event in events),
        "worker logs": caplog.text,
        "dead-letter headers": json.dumps([str(properties.headers) for properties, _ in dead]),
        "dead-letter bodies": b"".join(body for _, body in dead).decode(errors="replace"),
        "dead letters in the store": json.dumps(
            [letter.reason for letter in store.list_dead_letters()]
        ),
        "mlp runs": cli.output + detail.output,
        "store file": (tmp_path / "store.db").read_bytes().decode(errors="replace"),
        "mlflow file": (tmp_path / "mlflow.db").read_bytes().decode(errors="replace")
        if (tmp_path / "mlflow.db").exists()
        else "",
    }
    for where, text in everywhere.items():
        assert SECRET not in text, f"the secret leaked into the {where}"
        assert "DB_PASSWORD" not in text, f"the secret's key leaked into the {where}"
    assert any("outside the data roots" in event.message for event in events)


def test_the_load_step_checks_the_roots_itself(
    store: Store, tracking_uri: str, secret_file: Path, data_dir: Path
) -> None:
    """`mlp train` and any other caller of the runner meet the check in the step itself."""
    runner = PipelineRunner(store, tracking_uri, data_roots=DataRoots.of([data_dir]))
    definition = parse_pipeline(classification_pipeline(data_dir / "linked.csv"))
    record = runner.run(messages_pb2.SubmitPipeline(pipeline_id="in-step", definition=definition))
    assert record.status == RunStatus.FAILED and record.error is not None
    assert record.error.step == "load_data_from_file"
    assert "is outside the data roots; allowed: " in record.error.message
    assert SECRET not in record.model_dump_json()
