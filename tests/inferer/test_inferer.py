"""The batch inferer on the real RabbitMQ, with a model from a real MLflow registry."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pika
import psutil
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.client import messaging
from mlplatform.client.batches import batch_parts, submit_batch
from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.compiled_serving import CompileOptions
from mlplatform.common.model_loading import ModelReference
from mlplatform.common.model_tags import TRAINER_TAG, ModelTagRequirement
from mlplatform.common.store import BatchStatus, Store
from mlplatform.inferer.model_cache import ModelCache
from mlplatform.v1 import messages_pb2
from tests.inferer.conftest import Registry, register, running_inferer
from tests.support.queues import BROKER_URL
from tests.trainer.workers import drain, publish_raw, wait_until

pytestmark = pytest.mark.filterwarnings("ignore")


def batch_done(store: Store, batch_id: str) -> object:
    try:
        batch = store.get_batch(batch_id)
    except KeyError:
        return None
    return batch if batch.status in (BatchStatus.SUCCEEDED, BatchStatus.FAILED) else None


def rows_of(registry: Registry, count: int) -> object:
    """`count` rows cycled from the training frame (569 rows)."""
    positions = np.arange(count) % len(registry.features)
    return registry.features.iloc[positions].reset_index(drop=True)


def test_batch_rows_are_predicted_once_each_with_probabilities(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    rows = rows_of(registry, 1000)
    with running_inferer(batch_queue, store, registry.tracking_uri):
        submission = submit_batch(
            rows,
            "cancer@production",
            broker_url=BROKER_URL,
            rows_per_message=300,
            include_probabilities=True,
            queue=batch_queue,
        )
        batch = wait_until(lambda: batch_done(store, submission.batch_id), 60, "the batch")
    assert submission.part_count == 4
    assert batch.status == BatchStatus.SUCCEEDED
    assert batch.parts_done == frozenset(range(4)) and batch.rows_done == 1000
    assert batch.model_version == "1"
    records = store.query_predictions(batch_id=submission.batch_id, limit=2000)
    assert sorted(record.row_index for record in records) == list(range(1000))
    by_row = {record.row_index: record for record in records}
    expected = registry.model.predict(rows)
    assert len(set(expected.tolist())) == 2  # rows of both classes: a row-mixup shows
    # Every row, not a sample: each record holds its own row's inputs, prediction and
    # probabilities, which are the model's own to 1e-9.
    assert [by_row[i].prediction for i in range(1000)] == expected.tolist()
    logged_probabilities = np.array(
        [[by_row[i].probabilities[name] for name in ("0", "1")] for i in range(1000)]
    )
    np.testing.assert_allclose(
        logged_probabilities, registry.model.predict_proba(rows), rtol=0, atol=1e-9
    )
    logged_inputs = pd.DataFrame([by_row[i].input_row for i in range(1000)])
    pd.testing.assert_frame_equal(logged_inputs, rows, check_exact=True)
    assert {record.model_version for record in records} == {"1"}


def test_a_compiled_model_predicts_the_batch_as_the_pipeline_does(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    rows = rows_of(registry, 300)
    models = ModelCache(registry.tracking_uri, compile_options=CompileOptions())
    with running_inferer(batch_queue, store, registry.tracking_uri, models=models):
        submission = submit_batch(
            rows,
            "cancer@production",
            broker_url=BROKER_URL,
            rows_per_message=300,
            include_probabilities=True,
            queue=batch_queue,
        )
        batch = wait_until(lambda: batch_done(store, submission.batch_id), 60, "the batch")
    assert batch.status == BatchStatus.SUCCEEDED
    # A scaler and a logistic regression compile to a double graph: ONNX Runtime predicted.
    assert models.get(ModelReference.parse("cancer@production")).backend == "onnxruntime"
    by_row = {
        record.row_index: record
        for record in store.query_predictions(batch_id=submission.batch_id, limit=1000)
    }
    assert [by_row[i].prediction for i in range(300)] == registry.model.predict(rows).tolist()
    logged_probabilities = np.array(
        [[by_row[i].probabilities[name] for name in ("0", "1")] for i in range(300)]
    )
    np.testing.assert_allclose(
        logged_probabilities, registry.model.predict_proba(rows), rtol=0, atol=1e-6
    )


def test_redelivered_part_writes_no_duplicate_rows(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    [part] = batch_parts(rows_of(registry, 50), "cancer@production", "dup-1", rows_per_message=50)
    with running_inferer(batch_queue, store, registry.tracking_uri):
        for _ in range(3):  # the same message, as a broker redelivers it
            publish_raw(
                BROKER_URL,
                batch_queue,
                part.SerializeToString(),
                messaging.message_properties(part, part.request_id),
            )
        wait_until(lambda: batch_done(store, "dup-1"), 60, "the batch")

        def all_handled() -> bool:
            with messaging.open_channel(BROKER_URL) as (channel, _version):
                return (
                    channel.queue_declare(batch_queue.name, passive=True).method.message_count == 0
                )

        wait_until(all_handled, 30, "the copies to be consumed")
    assert store.count_predictions(batch_id="dup-1") == 50
    assert store.get_batch("dup-1").rows_done == 50


def test_bad_parts_are_dead_lettered_and_the_worker_goes_on(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    missing_column = rows_of(registry, 10).drop(columns=["mean_area"])
    [no_column] = batch_parts(missing_column, "cancer@production", "bad-rows")
    [no_model] = batch_parts(rows_of(registry, 10), "nosuchmodel@production", "bad-model")
    with running_inferer(batch_queue, store, registry.tracking_uri):
        publish_raw(
            BROKER_URL,
            batch_queue,
            b"garbage",
            pika.BasicProperties(content_type=messaging.CONTENT_TYPE, message_id="garbage-1"),
        )
        for part in (no_column, no_model):
            publish_raw(
                BROKER_URL,
                batch_queue,
                part.SerializeToString(),
                messaging.message_properties(part, part.request_id),
            )
        good = submit_batch(
            rows_of(registry, 20), "cancer@production", broker_url=BROKER_URL, queue=batch_queue
        )
        assert wait_until(lambda: batch_done(store, good.batch_id), 60, "good batch").status == (
            BatchStatus.SUCCEEDED
        )
        failed_rows = wait_until(lambda: batch_done(store, "bad-rows"), 60, "bad-rows")
        failed_model = wait_until(lambda: batch_done(store, "bad-model"), 60, "bad-model")
    assert failed_rows.status == BatchStatus.FAILED
    assert "rows do not fit model cancer v1" in failed_rows.error
    assert "column 'mean_area': missing; expected a double column" in failed_rows.error
    assert failed_model.status == BatchStatus.FAILED and "nosuchmodel" in failed_model.error
    dead = {
        props.message_id: props.headers["x-mlp-dead-letter-reason"]
        for props, _ in drain(BROKER_URL, batch_queue.dead_letter)
    }
    assert set(dead) == {"garbage-1", "bad-rows:0", "bad-model:0"}
    assert dead["garbage-1"].startswith("body is not a valid mlplatform.v1.BatchPredictionRequest")
    assert {letter.message_id for letter in store.list_dead_letters()} == set(dead)
    assert store.count_predictions(batch_id="bad-rows") == 0


def no_rows(part: messages_pb2.BatchPredictionRequest) -> None:
    part.rows.CopyFrom(dataframe_to_frame(pd.DataFrame({"mean_radius": []}, dtype="float64")))


#: Parts that can never be predicted, each made from a good part by one change, and what the
#: dead-letter reason says about it.
MALFORMED_PARTS: dict[str, tuple[Callable[[messages_pb2.BatchPredictionRequest], None], str]] = {
    "empty rows": (no_rows, "rows holds no row"),
    "part index past the last part": (
        lambda part: setattr(part, "part_index", 3),
        "part_index 3 is outside 0..2",
    ),
    "negative part index": (
        lambda part: setattr(part, "part_index", -1),
        "part_index -1 is outside 0..2",
    ),
    "no part count": (
        lambda part: setattr(part, "part_count", 0),
        "part_count must be at least 1; got 0",
    ),
    "empty batch id": (
        lambda part: setattr(part, "batch_id", ""),
        "batch_id is empty; the sender must choose one",
    ),
    "empty model": (
        lambda part: setattr(part, "model", ""),
        "model is empty; expected NAME@ALIAS or NAME/VERSION",
    ),
    "unknown model form": (
        lambda part: setattr(part, "model", "cancer/latest"),
        "part 1: model 'cancer/latest': expected NAME, NAME@ALIAS or NAME/VERSION",
    ),
    "negative row offset": (
        lambda part: setattr(part, "row_offset", -10),
        "row_offset must not be negative; got -10",
    ),
}


@pytest.mark.parametrize("case", MALFORMED_PARTS)
def test_a_malformed_part_is_dead_lettered_with_its_reason_and_nothing_is_written(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue, case: str
) -> None:
    break_part, reason = MALFORMED_PARTS[case]
    parts = batch_parts(rows_of(registry, 30), "cancer@production", "malformed", 10)
    part = parts[1]
    break_part(part)
    body = part.SerializeToString()
    with running_inferer(batch_queue, store, registry.tracking_uri):
        publish_raw(
            BROKER_URL, batch_queue, body, messaging.message_properties(part, part.request_id)
        )
        dead: list[tuple[pika.BasicProperties, bytes]] = []

        def dead_lettered() -> bool:
            dead.extend(drain(BROKER_URL, batch_queue.dead_letter))
            return bool(dead)

        wait_until(dead_lettered, 60, f"the {case} part to be dead-lettered")
        [letter] = wait_until(store.list_dead_letters, 30, "the dead letter in the store")
    [(properties, dead_body)] = dead
    assert (properties.message_id, dead_body) == ("malformed:1", body)
    assert properties.headers["x-mlp-dead-letter-reason"] == reason
    assert (letter.message_id, letter.reason, letter.body) == ("malformed:1", reason, body)
    assert letter.queue == batch_queue.name
    assert store.count_predictions() == 0
    assert [batch.status for batch in store.list_batches()] in ([], [BatchStatus.FAILED])


def test_two_workers_share_the_parts(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    handled: list[str] = []
    with (
        running_inferer(batch_queue, store, registry.tracking_uri, "inferer-a", handled),
        running_inferer(batch_queue, store, registry.tracking_uri, "inferer-b", handled),
    ):
        submission = submit_batch(
            rows_of(registry, 8000),
            "cancer@production",
            broker_url=BROKER_URL,
            rows_per_message=500,
            queue=batch_queue,
        )
        batch = wait_until(lambda: batch_done(store, submission.batch_id), 120, "the batch")
    assert batch.status == BatchStatus.SUCCEEDED
    assert store.count_predictions(batch_id=submission.batch_id) == 8000
    assert len(handled) == 16 and set(handled) == {"inferer-a", "inferer-b"}


def test_models_follow_their_alias_to_a_new_version(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    with running_inferer(batch_queue, store, registry.tracking_uri):
        first = submit_batch(
            rows_of(registry, 10), "cancer@production", broker_url=BROKER_URL, queue=batch_queue
        )
        assert (
            wait_until(lambda: batch_done(store, first.batch_id), 60, "v1 batch").model_version
            == "1"
        )
        retrained = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=500))
        retrained.fit(registry.features, registry.model.predict(registry.features))
        new_version = register(registry.tracking_uri, retrained, registry.features, "cancer")
        second = submit_batch(
            rows_of(registry, 10), "cancer@production", broker_url=BROKER_URL, queue=batch_queue
        )
        batch = wait_until(lambda: batch_done(store, second.batch_id), 60, "v2 batch")
        pinned = submit_batch(
            rows_of(registry, 10), "cancer/1", broker_url=BROKER_URL, queue=batch_queue
        )
        pinned_batch = wait_until(lambda: batch_done(store, pinned.batch_id), 60, "pinned batch")
    assert batch.model_version == new_version == "2"
    assert pinned_batch.model_version == "1"


def test_inferer_killed_mid_batch_loses_and_duplicates_nothing(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue, tmp_path: Path
) -> None:
    """`mlp inferer` is SIGKILLed after some parts; another worker finishes the batch."""
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    store_path = tmp_path / "store.db"
    environment = {
        **os.environ,
        "MLP_BATCHES_QUEUE": batch_queue.name,
        "MLP_QUEUE_WAIT_MS": str(batch_queue.wait_ms),
        "MLP_STORE_URI": f"sqlite:///{store_path}",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLP_BROKER_URL": BROKER_URL,
    }
    log = (tmp_path / "inferer.log").open("wb")
    doomed = subprocess.Popen(
        [mlp, "inferer", "--chunk-rows", "50"], env=environment, stdout=log, stderr=log
    )
    from mlplatform.common.store import open_store

    with open_store(f"sqlite:///{store_path}") as shared_store:
        try:
            submission = submit_batch(
                rows_of(registry, 20000),
                "cancer@production",
                broker_url=BROKER_URL,
                rows_per_message=1000,
                queue=batch_queue,
            )

            def some_parts_done() -> bool:
                try:
                    return len(shared_store.get_batch(submission.batch_id).parts_done) >= 2
                except KeyError:
                    return False

            wait_until(some_parts_done, 120, "the first parts")
            children = psutil.Process(doomed.pid).children(recursive=True)
            assert children, "mlp inferer runs no store writer process"
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
            # Its store writer (and multiprocessing's resource tracker) go with it.
            wait_until(
                lambda: (
                    not any(child.is_running() and child.status() != "zombie" for child in children)
                ),
                60,
                "the killed inferer's child processes to exit",
            )
        finally:
            if doomed.poll() is None:
                doomed.kill()
        assert batch_done(shared_store, submission.batch_id) is None, "killed too late"
        with running_inferer(batch_queue, shared_store, registry.tracking_uri, "inferer-b"):
            batch = wait_until(lambda: batch_done(shared_store, submission.batch_id), 180, "batch")
        assert batch.status == BatchStatus.SUCCEEDED
        assert shared_store.count_predictions(batch_id=submission.batch_id) == 20000
        indexes = {
            r.row_index
            for r in shared_store.query_predictions(batch_id=submission.batch_id, limit=30000)
        }
        assert indexes == set(range(20000))


def test_a_part_with_thousands_of_unknown_columns_gets_a_short_reason(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    rows = rows_of(registry, 3).drop(columns=["mean_area"])
    extra = pd.DataFrame({f"{'unknown_' * 12}{index}": [0.0] * 3 for index in range(2000)})
    [part] = batch_parts(pd.concat([rows, extra], axis=1), "cancer/1", "wide-rows")
    with running_inferer(batch_queue, store, registry.tracking_uri):
        publish_raw(
            BROKER_URL,
            batch_queue,
            part.SerializeToString(),
            messaging.message_properties(part, part.request_id),
        )
        failed = wait_until(lambda: batch_done(store, "wide-rows"), 60, "wide-rows")
    [(_props, _body)] = dead = drain(BROKER_URL, batch_queue.dead_letter)
    reason = dead[0][0].headers["x-mlp-dead-letter-reason"]
    assert failed.error.startswith(reason)  # the header keeps the first 1000 characters
    assert "rows do not fit model cancer v1: " in reason
    assert "…' and 1980 more: not an input of the model" in failed.error
    assert failed.error.count("…") == 20 and len(failed.error) < 2000


def test_required_model_tag_dead_letters_parts_for_an_untagged_version(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    version = register(registry.tracking_uri, registry.model, registry.features, "cancer_tags")
    requirement = ModelTagRequirement(TRAINER_TAG)
    rows = rows_of(registry, 10)
    with running_inferer(batch_queue, store, registry.tracking_uri, required_tag=requirement):
        refused = submit_batch(
            rows, "cancer_tags@production", broker_url=BROKER_URL, queue=batch_queue
        )
        failed = wait_until(lambda: batch_done(store, refused.batch_id), 60, "refused batch")
        MlflowClient(registry.tracking_uri).set_model_version_tag(
            "cancer_tags", version, TRAINER_TAG, "pipeline-1"
        )
        accepted = submit_batch(
            rows, "cancer_tags@production", broker_url=BROKER_URL, queue=batch_queue
        )
        served = wait_until(lambda: batch_done(store, accepted.batch_id), 60, "accepted batch")
    assert failed.status == BatchStatus.FAILED
    expected = (
        f"model cancer_tags@production (version {version}): the version has no tag "
        f"'{TRAINER_TAG}', which --require-model-tag {TRAINER_TAG} requires"
    )
    assert expected in failed.error
    [(properties, _body)] = drain(BROKER_URL, batch_queue.dead_letter)
    assert expected in properties.headers["x-mlp-dead-letter-reason"]
    assert served.status == BatchStatus.SUCCEEDED
    records = store.query_predictions(batch_id=accepted.batch_id, limit=20)
    assert len(records) == 10 and {record.model_version for record in records} == {version}
