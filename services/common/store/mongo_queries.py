"""What the MongoDB store sends to the server: indexes, filters, sorts and documents.

Pure functions and data, so unit tests check them without a server (none runs on the
development machines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from mlplatform.common.extras import missing_extra

try:
    from pymongo import ASCENDING, DESCENDING, IndexModel
    from pymongo.errors import BulkWriteError
except ImportError as error:
    raise missing_extra("mongo", error) from error

from mlplatform.common.store.base import StoreError
from mlplatform.common.store.batch_predictions import BatchPredictions
from mlplatform.common.store.json_values import without_non_finite
from mlplatform.common.store.records import (
    BatchRecord,
    PipelineRun,
    PredictionRecord,
    PredictionSource,
)
from mlplatform.common.store.transitions import store_time_or_none, validated

DUPLICATE_KEY = 11000

ModelT = TypeVar("ModelT", bound=BaseModel)

_ONLY_STRINGS = {"$type": "string"}
INDEXES: dict[str, list[IndexModel]] = {
    "predictions": [
        IndexModel(
            [("batch_id", ASCENDING), ("row_index", ASCENDING)],
            name="predictions_by_batch_row",
            unique=True,
            partialFilterExpression={"batch_id": _ONLY_STRINGS},
        ),
        IndexModel(
            [("request_id", ASCENDING), ("row_index", ASCENDING)],
            name="predictions_by_request_row",
            unique=True,
            partialFilterExpression={"request_id": _ONLY_STRINGS},
        ),
        IndexModel(
            [
                ("model_name", ASCENDING),
                ("model_version", ASCENDING),
                ("created_at", ASCENDING),
                ("row_index", ASCENDING),
            ],
            name="predictions_by_model_version_time",
        ),
        IndexModel(
            [("model_name", ASCENDING), ("created_at", ASCENDING), ("row_index", ASCENDING)],
            name="predictions_by_model_time",
        ),
        IndexModel(
            [("created_at", ASCENDING), ("row_index", ASCENDING)], name="predictions_by_time"
        ),
        # Outcomes by prediction key, with or without the model. New in a release that kept
        # schema version 1: documents without the field need no change (older releases ignore
        # it), and the index is created at open like the others.
        IndexModel(
            [("prediction_key", ASCENDING), ("model_name", ASCENDING)],
            name="predictions_by_key_model",
            partialFilterExpression={"prediction_key": _ONLY_STRINGS},
        ),
    ],
    "pipeline_runs": [
        IndexModel([("created_at", DESCENDING)], name="pipeline_runs_by_time"),
        IndexModel(
            [("status", ASCENDING), ("created_at", DESCENDING)], name="pipeline_runs_by_status_time"
        ),
    ],
    "batches": [
        IndexModel([("created_at", DESCENDING)], name="batches_by_time"),
        IndexModel(
            [("status", ASCENDING), ("created_at", DESCENDING)], name="batches_by_status_time"
        ),
    ],
    "dead_letters": [
        IndexModel([("recorded_at", DESCENDING)], name="dead_letters_by_time"),
        IndexModel(
            [("queue", ASCENDING), ("recorded_at", DESCENDING)], name="dead_letters_by_queue_time"
        ),
    ],
    "serving_history": [
        IndexModel(
            [("model_name", ASCENDING), ("started_at", DESCENDING)],
            name="serving_history_by_model_time",
        ),
        # At most one open span per model and alias, even when two replicas start at once.
        IndexModel(
            [("model_name", ASCENDING), ("alias", ASCENDING)],
            name="serving_history_one_open_span",
            unique=True,
            partialFilterExpression={"open": True},
        ),
    ],
}


def build_prediction_query(
    model_name: str | None = None,
    model_version: str | int | None = None,
    batch_id: str | None = None,
    request_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The MongoDB filter for these prediction filters: `since` inclusive, `until` exclusive."""
    query: dict[str, Any] = {}
    if model_name is not None:
        query["model_name"] = model_name
    if model_version is not None:
        query["model_version"] = str(model_version)
    if batch_id is not None:
        query["batch_id"] = batch_id
    if request_id is not None:
        query["request_id"] = request_id
    time_range: dict[str, datetime] = {}
    if (since := store_time_or_none(since)) is not None:
        time_range["$gte"] = since
    if (until := store_time_or_none(until)) is not None:
        time_range["$lt"] = until
    if time_range:
        query["created_at"] = time_range
    return query


def build_prediction_sort(newest_first: bool = False) -> list[tuple[str, int]]:
    """Time, then row index, then insertion order (`_id`) as the tie-breaker."""
    direction = DESCENDING if newest_first else ASCENDING
    return [("created_at", direction), ("row_index", direction), ("_id", direction)]


def inserted_count(error: BulkWriteError) -> int:
    """Rows an unordered insert_many wrote; re-raises when a failure was not a duplicate."""
    details = error.details
    others = [
        failure
        for failure in details.get("writeErrors", [])
        if failure.get("code") != DUPLICATE_KEY
    ]
    if others or details.get("writeConcernErrors"):
        raise StoreError(
            f"MongoDB refused prediction rows: {others or details['writeConcernErrors']}"
        )
    return int(details.get("nInserted", 0))


def record_document(record: PipelineRun | BatchRecord) -> dict[str, Any]:
    """A record as the document stored for it (datetimes stay BSON dates)."""
    return record.model_dump()


def prediction_document(record: PredictionRecord) -> dict[str, Any]:
    """A prediction as stored: NaN and infinities in its free-form values become null, as in
    the SQLite backend (JSON has no NaN; a missing feature is what they mean in a row)."""
    document = record.model_dump()
    document["input_row"] = without_non_finite(document["input_row"])
    document["prediction"] = without_non_finite(document["prediction"])
    return document


def batch_prediction_documents(batch: BatchPredictions) -> list[dict[str, Any]]:
    """The documents `prediction_document` would make from `batch.records()`, built from the
    columns: same fields in the same order, NaN and infinities as null."""
    probability_rows = batch.probability_rows()
    keys = batch.prediction_keys or (None,) * len(batch)
    predictions = batch.prediction_values()
    if batch.predictions.dtype.kind not in "iub":  # integers and booleans cannot be NaN
        predictions = [without_non_finite(value) for value in predictions]
    return [
        {
            "model_name": batch.model_name,
            "model_version": batch.model_version,
            "input_row": input_row,
            "prediction": prediction,
            "probabilities": None if probability_rows is None else probability_rows[position],
            "source": PredictionSource.BATCH.value,
            "request_id": None,
            "batch_id": batch.batch_id,
            "row_index": row_index,
            "latency_ms": batch.latency_ms,
            "created_at": batch.created_at,
            "prediction_key": key,
        }
        for position, (row_index, input_row, prediction, key) in enumerate(
            zip(
                batch.row_indexes,
                batch.input_rows(finite_only=True),
                predictions,
                keys,
                strict=True,
            )
        )
    ]


def from_document(model_type: type[ModelT], document: Mapping[str, Any]) -> ModelT:
    """The record in a stored document, without MongoDB's own bookkeeping fields."""
    fields = {key: value for key, value in document.items() if key in model_type.model_fields}
    return validated(model_type, fields)


def redacted_uri(uri: str) -> str:
    """`uri` without its password, for messages and logs."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", uri)


def plain_bson_value(value: Any) -> Any:
    """numpy scalars and arrays (what models return) as values BSON can encode."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value
