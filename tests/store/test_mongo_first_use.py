"""What the MongoDB store sets up on first use: its indexes and the schema-version mark.

Runs against the server MLP_TEST_MONGODB_URI names (the CI's `mongo:7` service) and against
the in-memory stand-in for pymongo; on a machine without a server the real half is skipped
with the reason the store suite gives.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from mlplatform.common.store import SchemaVersionError
from mlplatform.common.store.mongo_queries import INDEXES
from mlplatform.common.store.mongo_schema import (
    META_COLLECTION,
    SCHEMA_DOCUMENT_ID,
    SCHEMA_VERSION,
)
from tests.store.conftest import MONGODB_SKIP_REASON, MONGODB_URI_VARIABLE


@pytest.fixture(params=["mongodb", "mongo-store-on-fake-pymongo"])
def open_mongo_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], object]]:
    """Opens a MongoStore on one fresh database, as often as a test asks."""
    from mlplatform.common.store import mongo

    database = f"mlp_test_{uuid.uuid4().hex[:12]}"
    if request.param == "mongo-store-on-fake-pymongo":
        from fake_pymongo import FakeMongoClient

        shared_client = FakeMongoClient("mongodb://stand-in:27017")
        monkeypatch.setattr(mongo, "MongoClient", lambda *args, **kwargs: shared_client)
        uri = "mongodb://stand-in:27017"
    else:
        uri = os.environ.get(MONGODB_URI_VARIABLE, "")
        if not uri:
            pytest.skip(MONGODB_SKIP_REASON)
    opened: list[mongo.MongoStore] = []

    def open_one() -> mongo.MongoStore:
        store = mongo.MongoStore(uri, database=database)
        opened.append(store)
        return store

    yield open_one
    if opened:
        opened[0].client.drop_database(database)
    for store in opened:
        store.close()


def test_first_open_creates_every_index(open_mongo_store: Callable[[], object]) -> None:
    store = open_mongo_store()
    for collection_name, indexes in INDEXES.items():
        present = set(store.database[collection_name].index_information())  # type: ignore[attr-defined]
        expected = {index.document["name"] for index in indexes}
        assert expected <= present, f"{collection_name} lacks {sorted(expected - present)}"


def test_first_open_marks_the_schema_version_and_reopening_keeps_it(
    open_mongo_store: Callable[[], object],
) -> None:
    first = open_mongo_store()
    meta = first.database[META_COLLECTION]  # type: ignore[attr-defined]
    assert meta.find_one({"_id": SCHEMA_DOCUMENT_ID})["version"] == SCHEMA_VERSION
    open_mongo_store()
    assert meta.count_documents({}) == 1


def test_a_database_of_a_newer_release_is_refused(open_mongo_store: Callable[[], object]) -> None:
    first = open_mongo_store()
    first.database[META_COLLECTION].update_one(  # type: ignore[attr-defined]
        {"_id": SCHEMA_DOCUMENT_ID}, {"$set": {"version": SCHEMA_VERSION + 1}}
    )
    with pytest.raises(SchemaVersionError) as caught:
        open_mongo_store()
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "upgrade mlplatform" in str(caught.value)
