"""The store interface every service writes through, and the errors it raises.

Services depend on `Store` only; the backend (SQLite file or MongoDB) is picked by URI in
`open_store`, so a service runs the same against the embedded default and the compose stack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

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
)

if TYPE_CHECKING:
    from mlplatform.common.store.batch_predictions import BatchPredictions
    from mlplatform.common.store.outcomes import LabelledPrediction, Outcome, OutcomeReport

DEFAULT_QUERY_LIMIT = 1000


class StoreError(Exception):
    """Any failure of the prediction and pipeline-run store."""


class NotFoundError(StoreError, KeyError):
    """No record has this id. A KeyError too, so `except KeyError` callers keep working."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(kind, key)
        self.kind = kind
        self.key = key

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r} not found"


class InvalidRecordError(StoreError, ValueError):
    """A write would store an invalid record; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class UnsupportedStoreURIError(StoreError, ValueError):
    """The store URI names a scheme no backend handles."""

    def __init__(self, uri: str, scheme: str, accepted: tuple[str, ...]) -> None:
        super().__init__(uri, scheme, accepted)
        self.uri = uri
        self.scheme = scheme
        self.accepted = accepted

    def __str__(self) -> str:
        shown_scheme = f"{self.scheme!r}" if self.scheme else "no scheme"
        return (
            f"unsupported store URI scheme {shown_scheme} in {self.uri!r}; "
            f"accepted: {', '.join(f'{scheme}://' for scheme in self.accepted)}"
        )


class SchemaVersionError(StoreError):
    """The database was written by a newer release than this one understands."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(found, supported)
        self.found = found
        self.supported = supported

    def __str__(self) -> str:
        return (
            f"store schema version {self.found} is newer than this release supports "
            f"({self.supported}); upgrade mlplatform"
        )


class Store(ABC):
    """Pipeline runs, predictions, batches, dead letters and model serving history.

    Every method is safe to call from several threads; writes from several processes are safe
    too (SQLite serialises them, MongoDB is a server). Records are immutable pydantic models:
    change one with the update methods, which validate the result before storing it.
    """

    # -- pipeline runs -------------------------------------------------------------------------

    @abstractmethod
    def create_run(self, run: PipelineRun) -> Created[PipelineRun]:
        """Store `run` unless its pipeline_id exists; either way return the stored run and
        whether this call created it (a resubmission never overwrites an earlier run)."""

    @abstractmethod
    def get_run(self, pipeline_id: str) -> PipelineRun:
        """The run with this id; NotFoundError if there is none."""

    @abstractmethod
    def update_run(self, pipeline_id: str, /, **changes: Any) -> PipelineRun:
        """Set only the given fields of a run and return the result.

        Unknown fields, `pipeline_id` itself and invalid values raise InvalidRecordError
        naming the field; an unknown id raises NotFoundError.
        """

    @abstractmethod
    def upsert_step(self, pipeline_id: str, step: StepRecord) -> PipelineRun:
        """Replace the run's step of the same name, or append it if the run has none."""

    @abstractmethod
    def append_event(self, pipeline_id: str, event: RunEvent) -> None:
        """Add a progress event to the run's record (the oldest go past a bound)."""

    @abstractmethod
    def list_runs(
        self, limit: int = 50, status: RunStatus | str | None = None
    ) -> list[PipelineRun]:
        """The most recent runs first, optionally only those with `status`."""

    # -- predictions ---------------------------------------------------------------------------

    @abstractmethod
    def append_predictions(self, records: Iterable[PredictionRecord]) -> int:
        """Store the records; rows whose (batch_id, row_index) or (request_id, row_index) is
        already stored are skipped. Returns how many rows this call inserted."""

    def append_batch_predictions(self, batch: BatchPredictions) -> int:
        """Store a chunk of batch-inferer predictions given as columns; return how many rows
        this call inserted.

        The rows are exactly those `append_predictions(batch.records())` stores, keyed by
        (batch_id, row index) and skipped alike when already stored, so a redelivered part
        inserts none. This default does just that; the backends override it with a write
        straight from the columns, which builds no record per row.
        """
        return self.append_predictions(batch.records())

    @abstractmethod
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
        """Predictions matching every given filter, ordered by created_at then row_index.

        `since` is inclusive and `until` exclusive, so consecutive windows never overlap.
        """

    @abstractmethod
    def count_predictions(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many predictions match the filters (same meaning as query_predictions)."""

    # -- outcomes ------------------------------------------------------------------------------

    @abstractmethod
    def record_outcomes(self, outcomes: Sequence[Outcome]) -> OutcomeReport:
        """Attach each outcome to the logged prediction its key names.

        All or nothing: when any key names no logged prediction, nothing is stored and the
        report lists those keys. An outcome for a prediction that has one replaces it and is
        counted in `replaced`. A key given twice in one call raises DuplicateOutcomeError.
        """

    @abstractmethod
    def count_labelled(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many predictions matching the filters have an outcome (times are the
        predictions' own, as in query_predictions)."""

    @abstractmethod
    def labelled_predictions(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
    ) -> list[LabelledPrediction]:
        """Up to `limit` of the newest labelled predictions matching the filters, each with
        its outcome."""

    # -- batches -------------------------------------------------------------------------------

    @abstractmethod
    def create_batch(self, batch: BatchRecord) -> Created[BatchRecord]:
        """Store `batch` unless its batch_id exists; return the stored one and whether it is new."""

    @abstractmethod
    def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with this id; NotFoundError if there is none."""

    @abstractmethod
    def mark_batch_part_done(self, batch_id: str, part_index: int, rows: int) -> BatchRecord:
        """Atomically count part `part_index` (holding `rows` rows) as done, once only.

        The batch moves to running on its first part and to succeeded when every part is done;
        a part already counted changes nothing, so a redelivered part is not counted twice.
        """

    @abstractmethod
    def update_batch(self, batch_id: str, /, **changes: Any) -> BatchRecord:
        """Set only the given fields (status, error, model_version...) of a batch."""

    @abstractmethod
    def list_batches(
        self, limit: int = 50, status: BatchStatus | str | None = None
    ) -> list[BatchRecord]:
        """The most recent batches first, optionally only those with `status`."""

    # -- dead letters --------------------------------------------------------------------------

    @abstractmethod
    def record_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        """Keep a refused message and the reason it was refused."""

    @abstractmethod
    def list_dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first, optionally from one queue only."""

    # -- model serving history -----------------------------------------------------------------

    @abstractmethod
    def record_serving(
        self,
        model_name: str,
        version: str,
        alias: str | None = None,
        started_at: datetime | None = None,
    ) -> ServingRecord:
        """Record that `version` of `model_name` is served under `alias` from `started_at`.

        The open span of the same model and alias is closed at `started_at`. Recording the
        version already open returns that span unchanged, so predictor restarts and replicas
        do not split one span into many.
        """

    @abstractmethod
    def list_serving(self, model_name: str, limit: int = 100) -> list[ServingRecord]:
        """Serving spans of a model, the most recent first."""

    # -- lifecycle -----------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
