"""The inferer's queue side: decode a `BatchPredictionRequest`, predict it, record it, settle.

Idempotent: rows are stored under (batch_id, row index), so a redelivered part adds no
rows, and a part is counted done once. Rows that do not fit the model, an unknown model
or a body that is not a request go to the dead-letter queue with the reason recorded,
and the batch is marked failed; an unreachable store or MLflow is retried, boundedly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

from google.protobuf.message import DecodeError

from mlplatform.client.frames import FrameError
from mlplatform.common.consumer import (
    Defer,
    Delivery,
    Done,
    Outcome,
    Reject,
    properties_problem,
)
from mlplatform.common.faults import is_transient
from mlplatform.common.input_schema import InvalidInputError
from mlplatform.common.model_loading import LoadedModel, ModelLoadError, ModelReference
from mlplatform.common.store import (
    BatchPredictions,
    BatchRecord,
    BatchStatus,
    InvalidRecordError,
    NotFoundError,
    Store,
)
from mlplatform.inferer.batch_job import DEFAULT_CHUNK_ROWS, PartResult, predict_part
from mlplatform.inferer.model_cache import ModelCache
from mlplatform.v1 import messages_pb2

logger = logging.getLogger(__name__)

REQUEST_TYPE = messages_pb2.BatchPredictionRequest.DESCRIPTOR.full_name


def decode_request(delivery: Delivery) -> messages_pb2.BatchPredictionRequest | str:
    """The request, or the reason it cannot be one (naming the field)."""
    problem = properties_problem(delivery.properties, REQUEST_TYPE)
    if problem is not None:
        return problem
    try:
        request = messages_pb2.BatchPredictionRequest.FromString(delivery.body)
    except DecodeError as error:
        return f"body is not a valid {REQUEST_TYPE}: {error}"
    if not request.batch_id:
        return "batch_id is empty; the sender must choose one"
    if not request.model:
        return "model is empty; expected NAME@ALIAS or NAME/VERSION"
    if request.part_count < 1:
        return f"part_count must be at least 1; got {request.part_count}"
    if not 0 <= request.part_index < request.part_count:
        return f"part_index {request.part_index} is outside 0..{request.part_count - 1}"
    if request.row_offset < 0:
        return f"row_offset must not be negative; got {request.row_offset}"
    if request.rows.row_count < 1:
        return "rows holds no row"
    return request


class InfererHandler:
    """Turns one delivery into one outcome for the queue worker.

    A part's chunks are stored by a writer thread while the next chunk is predicted: the
    model and SQLite both spend most of their time outside the GIL, so on two cores the
    store's cost mostly hides behind the model's. The part is acked only once every chunk
    is stored.
    """

    def __init__(
        self,
        models: ModelCache,
        store: Store,
        max_attempts: int = 3,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.models = models
        self.store = store
        self.max_attempts = max_attempts
        self.chunk_rows = chunk_rows
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferer-store")

    def close(self) -> None:
        """Waits for any write in flight and stops the writer thread."""
        self._writer.shutdown(wait=True)

    def _store_part(
        self, request: messages_pb2.BatchPredictionRequest, model: LoadedModel
    ) -> tuple[PartResult, float]:
        """Predicts the part, storing each chunk as the next is predicted; returns the result
        and how long the writes ran on after the last prediction. Raises what predicting or
        storing raised, and only once no write is in flight."""
        writes: list[Future[int]] = []

        def store(chunk: BatchPredictions) -> None:
            writes.append(self._writer.submit(self.store.append_batch_predictions, chunk))

        try:
            result = predict_part(request, model, self.chunk_rows, on_chunk=store)
        finally:
            predicted = time.perf_counter()
            wait(writes)
        for write in writes:
            write.result()  # raises the first failed write's error
        return result, time.perf_counter() - predicted

    def __call__(self, delivery: Delivery) -> Outcome:
        request_or_reason = decode_request(delivery)
        if isinstance(request_or_reason, str):
            return Reject(request_or_reason)
        request = request_or_reason
        try:
            return self._handle(request)
        except Exception as error:
            if not is_transient(error):
                raise
            attempt = delivery.attempt + 1
            if attempt >= self.max_attempts:
                return self._refuse(request, f"gave up after {attempt} attempts: {error}")
            logger.warning("batch %s part %d: %s", request.batch_id, request.part_index, error)
            return Defer(str(error), count_attempt=True)

    def _handle(self, request: messages_pb2.BatchPredictionRequest) -> Outcome:
        try:
            reference = ModelReference.parse(request.model)
        except ValueError as error:
            return self._refuse(request, str(error))
        batch = self.store.create_batch(
            BatchRecord(
                batch_id=request.batch_id, model_name=reference.name, part_count=request.part_count
            )
        ).record
        if batch.status == BatchStatus.FAILED:
            return Reject(f"batch {request.batch_id} has already failed: {batch.error}")
        try:
            model = self.models.get(reference)
        except ModelLoadError as error:
            if is_transient(error):
                raise
            return self._refuse(request, f"model {error.reference}: {error.reason}")
        began = time.perf_counter()
        try:
            result, store_wait = self._store_part(request, model)
        except (FrameError, InvalidInputError) as error:
            return self._refuse(
                request, f"rows do not fit model {model.name} v{model.version}: {error}"
            )
        except InvalidRecordError as error:  # e.g. NaN probabilities: no retry can store them
            return self._refuse(
                request,
                f"model {model.name} v{model.version} gave predictions the store refuses: {error}",
            )
        predicted_and_written = time.perf_counter()
        self.store.mark_batch_part_done(request.batch_id, request.part_index, result.row_count)
        if batch.model_version is None:
            self.store.update_batch(request.batch_id, model_version=model.version)
        stored = time.perf_counter()
        # The three timings are what bench/bench_inferer.py reports: the model calls, the rest
        # of predicting (decoding, checking, building chunks), and the store time that did not
        # overlap the model (writes still running after the last chunk, then counting the part).
        logger.info(
            "batch %s part %d/%d: %d rows by %s v%s (predict %.3fs, prepare %.3fs, store %.3fs)",
            request.batch_id,
            request.part_index + 1,
            request.part_count,
            result.row_count,
            model.name,
            model.version,
            result.predict_seconds,
            predicted_and_written - began - store_wait - result.predict_seconds,
            store_wait + stored - predicted_and_written,
        )
        return Done()

    def _refuse(self, request: messages_pb2.BatchPredictionRequest, reason: str) -> Reject:
        """The part can never succeed: the batch fails with the reason, the message is dead."""
        full_reason = f"part {request.part_index}: {reason}"
        with contextlib.suppress(NotFoundError):  # a malformed part may name no known batch
            self.store.update_batch(request.batch_id, status=BatchStatus.FAILED, error=full_reason)
        return Reject(full_reason)
