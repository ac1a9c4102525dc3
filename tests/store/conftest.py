"""Fixtures for the store tests: one `store` per reachable backend, and record factories.

The contract suite runs on SQLite always and on MongoDB when MLP_TEST_MONGODB_URI names a
server. No MongoDB server runs on the development machines, so there the MongoDB half is
skipped with a reason saying so, and the run's summary repeats it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlplatform.common.store import PredictionRecord, Store
from mlplatform.common.store.sqlite import SQLiteStore

MONGODB_URI_VARIABLE = "MLP_TEST_MONGODB_URI"
MONGODB_SKIP_REASON = (
    "MongoDB backend not exercised: MLP_TEST_MONGODB_URI is not set and no MongoDB server "
    "runs on this machine"
)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def open_sqlite_store(folder: Path) -> SQLiteStore:
    return SQLiteStore(folder / "store.db")


@pytest.fixture(params=["sqlite", "mongodb", "mongo-store-on-fake-pymongo"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A fresh, empty store of each backend the machine can reach.

    `mongo-store-on-fake-pymongo` runs MongoStore's own code against an in-memory stand-in
    for pymongo (see fake_pymongo); it does not replace a run against a real server.
    """
    if request.param == "sqlite":
        sqlite_store = open_sqlite_store(tmp_path)
        yield sqlite_store
        sqlite_store.close()
        return
    if request.param == "mongo-store-on-fake-pymongo":
        from fake_pymongo import FakeMongoClient

        from mlplatform.common.store import mongo

        monkeypatch.setattr(mongo, "MongoClient", FakeMongoClient)
        fake_store = mongo.MongoStore("mongodb://stand-in:27017/mlplatform_test")
        yield fake_store
        fake_store.close()
        return
    uri = os.environ.get(MONGODB_URI_VARIABLE)
    if not uri:
        pytest.skip(MONGODB_SKIP_REASON)
    from mlplatform.common.store.mongo import MongoStore

    database = f"mlp_test_{uuid.uuid4().hex[:12]}"
    mongo_store = MongoStore(uri, database=database)
    yield mongo_store
    mongo_store.client.drop_database(database)
    mongo_store.close()


@pytest.fixture
def make_prediction() -> Callable[..., PredictionRecord]:
    """Build a valid prediction record; keyword arguments override its fields."""

    def build(**overrides: Any) -> PredictionRecord:
        fields: dict[str, Any] = {
            "model_name": "churn",
            "model_version": "1",
            "input_row": {"age": 42, "plan": "basic"},
            "prediction": "stay",
            "probabilities": {"stay": 0.8, "leave": 0.2},
            "source": "batch",
            "batch_id": "batch-1",
            "row_index": 0,
            "latency_ms": 1.5,
            "created_at": T0,
        }
        fields.update(overrides)
        if fields["source"] == "online":
            fields.setdefault("request_id", "request-1")
            if "batch_id" not in overrides:
                fields["batch_id"] = None
        return PredictionRecord(**fields)

    return build


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say in every run's output, -q included, when the MongoDB backend was not tested."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any(MONGODB_SKIP_REASON in str(report.longrepr) for report in skipped):
        terminalreporter.write_line(
            f"NOTE: {MONGODB_SKIP_REASON}. Its query building is unit-tested and MongoStore's "
            "own logic ran on an in-memory pymongo stand-in, not on a server."
        )
