"""The store in MongoDB, as the compose stack runs it.

Indexes are created at open (idempotent on the server). Appends are idempotent through unique
partial indexes on (batch_id, row_index) and (request_id, row_index): `insert_many(ordered=False)`
writes every new row and the duplicate-key errors of the others are counted, not raised.
Runs and batches carry a `revision` so a read-modify-write is a compare-and-swap: two workers
updating one run never lose each other's change. What is sent to the server (indexes,
filters, documents) is built by the pure functions of `mongo_queries`, re-exported here.

Longer than ~300 lines on purpose: one method per operation of the store interface
(`base.Store`); query building and outcomes already live in `mongo_queries` and
`mongo_outcomes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from mlplatform.common.extras import missing_extra

try:
    from bson.codec_options import TypeRegistry
    from pymongo import DESCENDING, MongoClient
    from pymongo.collection import Collection
    from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
except ImportError as error:
    raise missing_extra("mongo", error) from error

from mlplatform.common.store import mongo_outcomes
from mlplatform.common.store.base import (
    DEFAULT_QUERY_LIMIT,
    NotFoundError,
    SchemaVersionError,
    Store,
    StoreError,
)
from mlplatform.common.store.batch_predictions import BatchPredictions
from mlplatform.common.store.mongo_queries import (
    INDEXES,
    batch_prediction_documents,
    build_prediction_query,
    build_prediction_sort,
    from_document,
    inserted_count,
    plain_bson_value,
    prediction_document,
    record_document,
    redacted_uri,
)
from mlplatform.common.store.mongo_schema import check_schema_version
from mlplatform.common.store.outcomes import LabelledPrediction, Outcome, OutcomeReport
from mlplatform.common.store.records import (
    BatchRecord,
    BatchStatus,
    Created,
    DeadLetter,
    PipelineRun,
    PredictionRecord,
    RunEvent,
    RunStatus,
    ServingRecord,
    StepRecord,
    utc_now,
)
from mlplatform.common.store.transitions import (
    BATCH_KEY_FIELDS,
    RUN_KEY_FIELDS,
    apply_changes,
    check_limit,
    new_serving_span,
    status_value,
    with_event,
    with_part_done,
    with_step,
)

__all__ = ["MongoStore", "build_prediction_query", "build_prediction_sort"]

DEFAULT_DATABASE = "mlplatform"
SERVER_SELECTION_TIMEOUT_MS = 5000
MAX_SWAP_ATTEMPTS = 50

ParamsT = ParamSpec("ParamsT")
ResultT = TypeVar("ResultT")
RecordT = TypeVar("RecordT", PipelineRun, BatchRecord)


def _translated(method: Callable[ParamsT, ResultT]) -> Callable[ParamsT, ResultT]:
    """Driver errors surface as StoreError, the one error type services catch."""

    @functools.wraps(method)
    def wrapper(*args: ParamsT.args, **kwargs: ParamsT.kwargs) -> ResultT:
        try:
            return method(*args, **kwargs)
        except PyMongoError as error:
            raise StoreError(f"MongoDB store: {error}") from error

    return wrapper


class MongoStore(Store):
    """The store in one MongoDB database (the URI's database, else `mlplatform`)."""

    def __init__(self, uri: str, database: str | None = None) -> None:
        self.uri = redacted_uri(uri)
        try:
            self.client: MongoClient[dict[str, Any]] = MongoClient(
                uri,
                tz_aware=True,
                serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
                type_registry=TypeRegistry(fallback_encoder=plain_bson_value),
                appname="mlplatform",
            )
            self.database = (
                self.client[database]
                if database
                else self.client.get_default_database(DEFAULT_DATABASE)
            )
            check_schema_version(self.database)
            for collection_name, indexes in INDEXES.items():
                self.database[collection_name].create_indexes(indexes)
        except PyMongoError as error:
            raise StoreError(f"cannot open MongoDB store {self.uri}: {error}") from error
        except SchemaVersionError:
            self.client.close()
            raise
        self._runs = self.database["pipeline_runs"]
        self._predictions = self.database["predictions"]
        self._batches = self.database["batches"]
        self._dead_letters = self.database["dead_letters"]
        self._serving = self.database["serving_history"]

    def __repr__(self) -> str:
        return f"MongoStore({self.uri!r}, database={self.database.name!r})"

    def close(self) -> None:
        self.client.close()

    # -- documents with revisions (runs and batches) -------------------------------------------

    def _create(
        self, collection: Collection, key: str, kind: str, record: RecordT
    ) -> Created[RecordT]:
        try:
            collection.insert_one({**record_document(record), "_id": key, "revision": 0})
        except DuplicateKeyError:
            return Created(self._get(collection, key, kind, type(record)), False)
        return Created(record, True)

    def _get(
        self, collection: Collection, key: str, kind: str, model_type: type[RecordT]
    ) -> RecordT:
        document = collection.find_one({"_id": key})
        if document is None:
            raise NotFoundError(kind, key)
        return from_document(model_type, document)

    def _swap(
        self,
        collection: Collection,
        key: str,
        kind: str,
        model_type: type[RecordT],
        change: Callable[[RecordT], RecordT | None],
    ) -> RecordT:
        """Apply `change` to the stored record, retrying if another writer got there first."""
        for _attempt in range(MAX_SWAP_ATTEMPTS):
            document = collection.find_one({"_id": key})
            if document is None:
                raise NotFoundError(kind, key)
            current = from_document(model_type, document)
            changed = change(current)
            if changed is None:
                return current
            revision = document.get("revision", 0)
            replaced = collection.replace_one(
                {"_id": key, "revision": revision},
                {**record_document(changed), "_id": key, "revision": revision + 1},
            )
            if replaced.matched_count == 1:
                return changed
        raise StoreError(f"{kind} {key!r} kept changing under concurrent writers; gave up")

    # -- pipeline runs -------------------------------------------------------------------------

    @_translated
    def create_run(self, run: PipelineRun) -> Created[PipelineRun]:
        return self._create(self._runs, run.pipeline_id, "pipeline run", run)

    @_translated
    def get_run(self, pipeline_id: str) -> PipelineRun:
        return self._get(self._runs, pipeline_id, "pipeline run", PipelineRun)

    @_translated
    def update_run(self, pipeline_id: str, /, **changes: Any) -> PipelineRun:
        return self._swap(
            self._runs,
            pipeline_id,
            "pipeline run",
            PipelineRun,
            lambda run: apply_changes(run, changes, RUN_KEY_FIELDS),
        )

    @_translated
    def upsert_step(self, pipeline_id: str, step: StepRecord) -> PipelineRun:
        return self._swap(
            self._runs, pipeline_id, "pipeline run", PipelineRun, lambda run: with_step(run, step)
        )

    @_translated
    def append_event(self, pipeline_id: str, event: RunEvent) -> None:
        self._swap(
            self._runs, pipeline_id, "pipeline run", PipelineRun, lambda run: with_event(run, event)
        )

    @_translated
    def list_runs(
        self, limit: int = 50, status: RunStatus | str | None = None
    ) -> list[PipelineRun]:
        if check_limit(limit) == 0:
            return []  # MongoDB reads limit 0 as "no limit"
        cursor = (
            self._runs.find({} if status is None else {"status": status_value(status, RunStatus)})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [from_document(PipelineRun, document) for document in cursor]

    # -- predictions ---------------------------------------------------------------------------

    @_translated
    def append_predictions(self, records: Iterable[PredictionRecord]) -> int:
        return self._insert_predictions([prediction_document(record) for record in records])

    @_translated
    def append_batch_predictions(self, batch: BatchPredictions) -> int:
        return self._insert_predictions(batch_prediction_documents(batch))

    def _insert_predictions(self, documents: list[dict[str, Any]]) -> int:
        """Inserts every document whose key is new; duplicates are counted out, not raised."""
        if not documents:
            return 0
        try:
            return len(self._predictions.insert_many(documents, ordered=False).inserted_ids)
        except BulkWriteError as error:
            return inserted_count(error)

    @_translated
    def query_predictions(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
        newest_first: bool = False,
    ) -> list[PredictionRecord]:
        if check_limit(limit) == 0:
            return []
        query = build_prediction_query(
            model_name, model_version, batch_id, request_id, since, until
        )
        cursor = (
            self._predictions.find(query).sort(build_prediction_sort(newest_first)).limit(limit)
        )
        return [from_document(PredictionRecord, document) for document in cursor]

    @_translated
    def count_predictions(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        query = build_prediction_query(
            model_name, model_version, batch_id, request_id, since, until
        )
        return self._predictions.count_documents(query)

    # -- outcomes ------------------------------------------------------------------------------

    @_translated
    def record_outcomes(self, outcomes: Sequence[Outcome]) -> OutcomeReport:
        return mongo_outcomes.record_outcomes(self._predictions, outcomes)

    @_translated
    def count_labelled(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        query = mongo_outcomes.labelled_query(model_name, model_version, since, until)
        return self._predictions.count_documents(query)

    @_translated
    def labelled_predictions(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
    ) -> list[LabelledPrediction]:
        if check_limit(limit) == 0:
            return []
        query = mongo_outcomes.labelled_query(model_name, model_version, since, until)
        return mongo_outcomes.labelled_predictions(self._predictions, query, limit)

    # -- batches -------------------------------------------------------------------------------

    @_translated
    def create_batch(self, batch: BatchRecord) -> Created[BatchRecord]:
        return self._create(self._batches, batch.batch_id, "batch", batch)

    @_translated
    def get_batch(self, batch_id: str) -> BatchRecord:
        return self._get(self._batches, batch_id, "batch", BatchRecord)

    @_translated
    def mark_batch_part_done(self, batch_id: str, part_index: int, rows: int) -> BatchRecord:
        return self._swap(
            self._batches,
            batch_id,
            "batch",
            BatchRecord,
            lambda batch: with_part_done(batch, part_index, rows, utc_now()),
        )

    @_translated
    def update_batch(self, batch_id: str, /, **changes: Any) -> BatchRecord:
        changes.setdefault("updated_at", utc_now())
        return self._swap(
            self._batches,
            batch_id,
            "batch",
            BatchRecord,
            lambda batch: apply_changes(batch, changes, BATCH_KEY_FIELDS),
        )

    @_translated
    def list_batches(
        self, limit: int = 50, status: BatchStatus | str | None = None
    ) -> list[BatchRecord]:
        if check_limit(limit) == 0:
            return []
        cursor = (
            self._batches.find(
                {} if status is None else {"status": status_value(status, BatchStatus)}
            )
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [from_document(BatchRecord, document) for document in cursor]

    # -- dead letters --------------------------------------------------------------------------

    @_translated
    def record_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        self._dead_letters.insert_one(letter.model_dump())
        return letter

    @_translated
    def list_dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        if check_limit(limit) == 0:
            return []
        cursor = (
            self._dead_letters.find({} if queue is None else {"queue": queue})
            .sort([("recorded_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [from_document(DeadLetter, document) for document in cursor]

    # -- model serving history -----------------------------------------------------------------

    @_translated
    def record_serving(
        self,
        model_name: str,
        version: str,
        alias: str | None = None,
        started_at: datetime | None = None,
    ) -> ServingRecord:
        span = new_serving_span(model_name, version, alias, started_at)
        open_span = {"model_name": span.model_name, "alias": span.alias, "open": True}
        for _attempt in range(MAX_SWAP_ATTEMPTS):
            current = self._serving.find_one(open_span)
            if current is not None and current["version"] == span.version:
                return from_document(ServingRecord, current)
            self._serving.update_many(
                open_span, {"$set": {"ended_at": span.started_at}, "$unset": {"open": ""}}
            )
            try:
                self._serving.insert_one({**span.model_dump(), "open": True})
            except DuplicateKeyError:
                continue  # another replica opened a span meanwhile: look again
            return span
        raise StoreError(f"serving history of {model_name!r} kept changing; gave up")

    @_translated
    def list_serving(self, model_name: str, limit: int = 100) -> list[ServingRecord]:
        if check_limit(limit) == 0:
            return []
        cursor = (
            self._serving.find({"model_name": model_name})
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [from_document(ServingRecord, document) for document in cursor]
