"""The prediction and pipeline-run store every service writes through.

`open_store()` picks the backend from `MLP_STORE_URI`: `sqlite:///PATH` (the embedded default,
SQLAlchemy's convention: `sqlite:///relative.db`, `sqlite:////absolute/path.db`) or
`mongodb://...` (what compose runs). Services see only the `Store` interface.
"""

from __future__ import annotations

from pathlib import Path

from mlplatform.common.extras import MissingExtraError
from mlplatform.common.store.base import (
    DEFAULT_QUERY_LIMIT,
    InvalidRecordError,
    NotFoundError,
    SchemaVersionError,
    Store,
    StoreError,
    UnsupportedStoreURIError,
)
from mlplatform.common.store.batch_predictions import BatchPredictions
from mlplatform.common.store.outcomes import (
    DuplicateOutcomeError,
    LabelledPrediction,
    Outcome,
    OutcomeKey,
    OutcomeKind,
    OutcomeReport,
)
from mlplatform.common.store.records import (
    BatchRecord,
    BatchStatus,
    Created,
    DeadLetter,
    PipelineRun,
    PredictionRecord,
    PredictionSource,
    RunError,
    RunEvent,
    RunStatus,
    ServingRecord,
    StepRecord,
    StepStatus,
    utc_now,
)

ACCEPTED_SCHEMES = ("sqlite", "mongodb", "mongodb+srv")

__all__ = [
    "ACCEPTED_SCHEMES",
    "DEFAULT_QUERY_LIMIT",
    "BatchPredictions",
    "BatchRecord",
    "BatchStatus",
    "Created",
    "DeadLetter",
    "DuplicateOutcomeError",
    "InvalidRecordError",
    "LabelledPrediction",
    "NotFoundError",
    "Outcome",
    "OutcomeKey",
    "OutcomeKind",
    "OutcomeReport",
    "PipelineRun",
    "PredictionRecord",
    "PredictionSource",
    "RunError",
    "RunEvent",
    "RunStatus",
    "SchemaVersionError",
    "ServingRecord",
    "StepRecord",
    "StepStatus",
    "Store",
    "StoreError",
    "UnsupportedStoreURIError",
    "open_store",
    "sqlite_path",
    "utc_now",
]


def sqlite_path(uri: str) -> Path:
    """The file a `sqlite:///...` URI names.

    In-memory databases are refused: each thread has its own connection, so each would see an
    empty database of its own.
    """
    path_text = uri.split("://", 1)[1].removeprefix("/")
    if not path_text or path_text == ":memory:" or path_text.startswith("file:"):
        raise StoreError(
            f"store URI {uri!r} names no database file; use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    return Path(path_text)


def open_store(uri: str | None = None) -> Store:
    """The store at `uri`, or at the configured `MLP_STORE_URI` when `uri` is None."""
    if uri is None:
        from mlplatform.common.settings import get_settings

        uri = get_settings().resolved_store_uri
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        from mlplatform.common.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(uri))
    if scheme in ("mongodb", "mongodb+srv"):
        # Imported here so processes on the SQLite default never load (or need) the driver.
        try:
            from mlplatform.common.store.mongo import MongoStore
        except MissingExtraError as error:
            raise StoreError(f"store URI {scheme}://...: {error}") from error

        return MongoStore(uri)
    raise UnsupportedStoreURIError(uri, scheme, ACCEPTED_SCHEMES)
