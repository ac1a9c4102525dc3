"""MongoStore under a concurrent writer, on the in-memory pymongo stand-in (no server here).

The compare-and-swap on `revision` must retry rather than overwrite another worker's change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_pymongo import FakeMongoClient

from mlplatform.common.store import BatchRecord, PipelineRun, RunStatus
from mlplatform.common.store import mongo as mongo_module
from mlplatform.common.store.mongo import MongoStore


@pytest.fixture
def mongo_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[MongoStore]:
    monkeypatch.setattr(mongo_module, "MongoClient", FakeMongoClient)
    store = MongoStore("mongodb://stand-in:27017/mlplatform_test")
    yield store
    store.close()


def interleave_once(collection: Any, competing_write: Any) -> None:
    """Make `competing_write` happen between the store's read and its first replace."""
    original_replace = collection.replace_one
    state = {"interfered": False}

    def replace_after_a_competitor(query: dict[str, Any], replacement: dict[str, Any]) -> Any:
        if not state["interfered"]:
            state["interfered"] = True
            competing_write()
        return original_replace(query, replacement)

    collection.replace_one = replace_after_a_competitor


def test_update_run_retries_instead_of_losing_a_concurrent_change(mongo_store: MongoStore) -> None:
    mongo_store.create_run(PipelineRun(pipeline_id="run-1"))
    interleave_once(
        mongo_store._runs, lambda: mongo_store.update_run("run-1", attempts=5, model_name="churn")
    )
    updated = mongo_store.update_run("run-1", status=RunStatus.RUNNING)
    assert (updated.status, updated.attempts, updated.model_name) == (
        RunStatus.RUNNING,
        5,
        "churn",
    )
    assert mongo_store.get_run("run-1") == updated
    assert mongo_store._runs.find_one({"_id": "run-1"})["revision"] == 2


def test_a_part_counted_by_another_worker_is_not_counted_twice(mongo_store: MongoStore) -> None:
    mongo_store.create_batch(BatchRecord(batch_id="batch-1", model_name="churn", part_count=2))
    interleave_once(
        mongo_store._batches, lambda: mongo_store.mark_batch_part_done("batch-1", 0, rows=10)
    )
    batch = mongo_store.mark_batch_part_done("batch-1", 0, rows=10)
    assert (batch.parts_done, batch.rows_done) == ({0}, 10)
