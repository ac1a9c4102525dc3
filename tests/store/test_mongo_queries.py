"""What the MongoDB backend sends to the server, checked without a server."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from mlplatform.common.store import PredictionRecord, StoreError, open_store
from mlplatform.common.store import mongo as mongo_module
from mlplatform.common.store.mongo import MongoStore, build_prediction_query, build_prediction_sort
from mlplatform.common.store.mongo_queries import (
    INDEXES,
    from_document,
    inserted_count,
    prediction_document,
    redacted_uri,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_no_filters_is_an_empty_query() -> None:
    assert build_prediction_query() == {}


def test_equality_filters() -> None:
    assert build_prediction_query(
        model_name="churn", model_version=3, batch_id="b1", request_id="r1"
    ) == {"model_name": "churn", "model_version": "3", "batch_id": "b1", "request_id": "r1"}


def test_time_range_is_since_inclusive_until_exclusive() -> None:
    until = datetime(2024, 5, 2, tzinfo=UTC)
    assert build_prediction_query(since=T0, until=until) == {
        "created_at": {"$gte": T0, "$lt": until}
    }
    assert build_prediction_query(since=T0) == {"created_at": {"$gte": T0}}
    assert build_prediction_query(until=until) == {"created_at": {"$lt": until}}


def test_time_bounds_are_utc_milliseconds() -> None:
    naive = datetime(2024, 5, 1, 12, 0, 0, 123456)
    query = build_prediction_query(model_name="churn", since=naive)
    assert query == {
        "model_name": "churn",
        "created_at": {"$gte": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)},
    }


def test_sort_is_time_then_row_then_insertion() -> None:
    assert build_prediction_sort() == [
        ("created_at", ASCENDING),
        ("row_index", ASCENDING),
        ("_id", ASCENDING),
    ]
    assert [direction for _, direction in build_prediction_sort(newest_first=True)] == [
        DESCENDING
    ] * 3


def test_idempotency_indexes_are_unique_and_partial() -> None:
    indexes = {index.document["name"]: index.document for index in INDEXES["predictions"]}
    for name, id_field in (
        ("predictions_by_batch_row", "batch_id"),
        ("predictions_by_request_row", "request_id"),
    ):
        document = indexes[name]
        assert list(document["key"].items()) == [(id_field, ASCENDING), ("row_index", ASCENDING)]
        assert document["unique"] is True
        # Only rows that have the id: online rows have no batch id and must not collide on null.
        assert document["partialFilterExpression"] == {id_field: {"$type": "string"}}
    assert list(indexes["predictions_by_model_version_time"]["key"]) == [
        "model_name",
        "model_version",
        "created_at",
        "row_index",
    ]


def test_every_collection_has_indexes() -> None:
    assert set(INDEXES) == {
        "predictions",
        "pipeline_runs",
        "batches",
        "dead_letters",
        "serving_history",
    }
    open_span = next(
        index.document for index in INDEXES["serving_history"] if index.document.get("unique")
    )
    assert open_span["partialFilterExpression"] == {"open": True}


def test_duplicate_key_errors_count_as_skipped_rows() -> None:
    error = BulkWriteError(
        {
            "nInserted": 7,
            "writeErrors": [
                {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"},
                {"index": 3, "code": 11000, "errmsg": "E11000 duplicate key"},
            ],
            "writeConcernErrors": [],
        }
    )
    assert inserted_count(error) == 7


def test_other_write_errors_are_raised() -> None:
    error = BulkWriteError(
        {
            "nInserted": 1,
            "writeErrors": [{"index": 0, "code": 121, "errmsg": "Document failed validation"}],
            "writeConcernErrors": [],
        }
    )
    with pytest.raises(StoreError, match="Document failed validation"):
        inserted_count(error)


def test_prediction_document_is_plain_and_finite() -> None:
    record = PredictionRecord(
        model_name="churn",
        model_version=2,
        input_row={"x": math.nan, "nested": [math.inf, 1.0], "name": "Zoë"},
        prediction=math.nan,
        source="online",
        request_id="r1",
        row_index=0,
        created_at=T0,
    )
    document = prediction_document(record)
    assert document["input_row"] == {"x": None, "nested": [None, 1.0], "name": "Zoë"}
    assert document["prediction"] is None
    assert document["source"] == "online"
    assert document["model_version"] == "2"
    assert document["created_at"] == T0


def test_from_document_ignores_mongodb_bookkeeping() -> None:
    record = PredictionRecord(
        model_name="churn",
        model_version="1",
        input_row={},
        prediction=1,
        source="batch",
        batch_id="b1",
        row_index=4,
        created_at=T0,
    )
    stored = {**prediction_document(record), "_id": "66f0", "revision": 3, "open": True}
    assert from_document(PredictionRecord, stored) == record


def test_uri_password_is_redacted() -> None:
    assert (
        redacted_uri("mongodb://mlp:s3cret@mongo:27017/mlplatform?authSource=admin")
        == "mongodb://mlp:***@mongo:27017/mlplatform?authSource=admin"
    )
    assert redacted_uri("mongodb://mongo:27017") == "mongodb://mongo:27017"


def test_open_store_routes_mongodb_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(mongo_module, "MongoStore", lambda uri: opened.append(uri) or uri)
    open_store("mongodb://mongo:27017/mlplatform")
    open_store("mongodb+srv://cluster.example/mlplatform")
    assert opened == [
        "mongodb://mongo:27017/mlplatform",
        "mongodb+srv://cluster.example/mlplatform",
    ]


def test_unreachable_server_is_a_store_error_without_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongo_module, "SERVER_SELECTION_TIMEOUT_MS", 200)
    with pytest.raises(StoreError) as caught:
        MongoStore("mongodb://mlp:s3cret@127.0.0.1:9/mlplatform")
    assert "cannot open MongoDB store mongodb://mlp:***@127.0.0.1:9/mlplatform" in str(caught.value)
    assert "s3cret" not in str(caught.value)
