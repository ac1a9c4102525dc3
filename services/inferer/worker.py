"""The inferer's queue side: decode a `BatchPredictionRequest`, predict it, record it, settle.

Idempotent: rows are stored under (batch_id, row index), so a redelivered part adds no
rows, and a part is counted done once. Rows that do not fit the model, an unknown model
or a body that is not a request go to the dead-letter queue with the reason recorded,
and the batch is marked failed; an unreachable store or MLflow is retried, boundedly.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from mlplatform.client.frames import FrameError
from mlplatform.common.consumer import (
    Defer,
    Delivery,
    Done,
    Later,
    Outcome,
    Reject,
)
from mlplatform.common.faults import is_transient
from mlplatform.common.input_schema import InvalidInputError
from mlplatform.common.log_setup import add_ids, log_ids
from mlplatform.common.model_loading import LoadedModel, ModelLoadError, ModelReference
from mlplatform.common.store import (
    BatchPredictions,
    BatchRecord,
    BatchStatus,
    InvalidRecordError,
    NotFoundError,
    Store,
)
from mlplatform.inferer.batch_job import (
    DEFAULT_CHUNK_ROWS,
    PreparedPart,
    decode_request,
    predict_part,
    prepare_part,
)
from mlplatform.inferer.chunk_writers import ChunkWriter, ThreadChunkWriter, is_broken_error
from mlplatform.inferer.metrics import InfererMetrics
from mlplatform.inferer.model_cache import ModelCache
from mlplatform.v1 import messages_pb2

logger = logging.getLogger(__name__)


def _resolve(outcome: Future[Outcome], work: Callable[[], Outcome]) -> None:
    """Settles `outcome` with what `work` returns, or raises (a raise is a bug the queue
    worker logs, as when a handler raises)."""
    try:
        outcome.set_result(work())
    except BaseException as error:
        outcome.set_exception(error)


@dataclass
class _Part:
    """A part on its way from the job thread to the model thread to the finisher."""

    request: messages_pb2.BatchPredictionRequest
    delivery: Delivery
    model: LoadedModel
    batch: BatchRecord
    prepared: PreparedPart
    prepare_seconds: float
    outcome: Future[Outcome] = field(default_factory=Future)


class InfererHandler:
    """Turns one delivery into one outcome for the queue worker.

    Three stages, each on a thread of its own, so that parts flow through them one behind
    the other (the queue worker needs a prefetch of 3 for that):

    - the queue worker's job thread decodes and checks a part's rows, then answers `Later`
      and goes on to the next delivery;
    - the model thread predicts the part's chunks in order, handing each to `writer` (see
      `chunk_writers`; a thread writing to `store` by default), which stores it while the
      next is predicted; the model's own call releases the GIL, so the job thread's Python
      work runs beside it;
    - the finisher thread waits for the part's writes, counts the part done and settles it.

    A part is acked only once every row of it is stored and it is counted.
    """

    def __init__(
        self,
        models: ModelCache,
        store: Store,
        max_attempts: int = 3,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        writer: ChunkWriter | None = None,
        metrics: InfererMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.models = models
        self.store = store
        self.max_attempts = max_attempts
        self.chunk_rows = chunk_rows
        self.writer = writer if writer is not None else ThreadChunkWriter(store)
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferer-model")
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferer-finish")

    def close(self) -> None:
        """Waits for the parts in flight to be predicted and stored, then stops the writer."""
        self._model_thread.shutdown(wait=True)
        self._finisher.shutdown(wait=True)
        self.writer.close()

    def __call__(self, delivery: Delivery) -> Outcome | Later:
        outcome = self._settle(delivery)
        metrics = self.metrics
        if metrics is None:
            return outcome
        if isinstance(outcome, Later):

            def settled(done: Future[Outcome]) -> None:
                if done.exception() is None:  # a raising future is a bug the worker logs
                    metrics.part_settled(done.result())

            outcome.future.add_done_callback(settled)
        else:
            metrics.part_settled(outcome)
        return outcome

    def _settle(self, delivery: Delivery) -> Outcome | Later:
        request_or_reason = decode_request(delivery)
        if isinstance(request_or_reason, str):
            return Reject(request_or_reason)
        request = request_or_reason
        with log_ids(batch_id=request.batch_id):
            try:
                return self._handle(request, delivery)
            except Exception as error:
                return self._after_error(request, delivery, error)

    def _after_error(
        self, request: messages_pb2.BatchPredictionRequest, delivery: Delivery, error: Exception
    ) -> Outcome:
        """A transient failure is retried, boundedly; anything else is a bug and raises."""
        if not (is_transient(error) or is_broken_error(error)):
            raise error
        attempt = delivery.attempt + 1
        if attempt >= self.max_attempts:
            return self._refuse(request, f"gave up after {attempt} attempts: {error}")
        logger.warning("batch %s part %d: %s", request.batch_id, request.part_index, error)
        return Defer(str(error), count_attempt=True)

    def _handle(
        self, request: messages_pb2.BatchPredictionRequest, delivery: Delivery
    ) -> Outcome | Later:
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
        add_ids(model_name=model.name, model_version=model.version)
        began = time.perf_counter()
        try:
            prepared = prepare_part(request, model)
        except (FrameError, InvalidInputError) as error:
            return self._refuse_rows(request, model, error)
        part = _Part(request, delivery, model, batch, prepared, time.perf_counter() - began)
        # In this part's context: the other threads' log lines carry its ids and trace.
        self._model_thread.submit(contextvars.copy_context().run, self._predict, part)
        return Later(part.outcome)

    def _predict(self, part: _Part) -> None:
        """Runs on the model thread: predicts the part, then leaves its outcome to the finisher
        (or settles it here when the part ends now)."""
        request, model, outcome = part.request, part.model, part.outcome
        began = time.perf_counter()
        writes: list[Future[int]] = []

        def store(chunk: BatchPredictions) -> None:
            writes.append(self.writer.submit(chunk))

        try:
            result = predict_part(request, model, self.chunk_rows, store, part.prepared)
        except Exception as error:
            wait(writes)  # settle nothing while a write of the part is in flight
            if isinstance(error, FrameError | InvalidInputError | InvalidRecordError):
                _resolve(outcome, functools.partial(self._refuse_rows, request, model, error))
            else:
                _resolve(
                    outcome, functools.partial(self._after_error, request, part.delivery, error)
                )
            return
        predicted = time.perf_counter()
        other_seconds = part.prepare_seconds + predicted - began - result.predict_seconds
        timings = (result.predict_seconds, other_seconds, predicted)
        finish = functools.partial(self._finish, part, result.row_count, writes, timings)
        self._finisher.submit(contextvars.copy_context().run, _resolve, outcome, finish)

    def _finish(
        self,
        part: _Part,
        row_count: int,
        writes: list[Future[int]],
        timings: tuple[float, float, float],
    ) -> Outcome:
        """Runs on the finisher thread: the part's outcome once its writes are done."""
        request, model, delivery = part.request, part.model, part.delivery
        try:
            wait(writes)
            for write in writes:
                write.result()  # raises the first failed write's error
            # The version first: a batch whose last part is counted reads as finished, and a
            # reader must then find the version that predicted it.
            if part.batch.model_version is None:
                self.store.update_batch(request.batch_id, model_version=model.version)
            self.store.mark_batch_part_done(request.batch_id, request.part_index, row_count)
        except InvalidRecordError as error:
            return self._refuse_rows(request, model, error)
        except Exception as error:
            return self._after_error(request, delivery, error)
        predict_seconds, prepare_seconds, predicted = timings
        if self.metrics is not None:
            self.metrics.part_stored(
                model.name,
                model.version,
                row_count,
                predict_seconds,
                delivery.properties.timestamp,
            )
        # The three timings are what bench/bench_inferer.py reports: the model calls, the rest
        # of predicting (decoding, checking, building chunks), and the time from the last
        # prediction until the part was stored and counted (which overlaps the next part).
        logger.info(
            "batch %s part %d/%d: %d rows by %s v%s (predict %.3fs, prepare %.3fs, store %.3fs)",
            request.batch_id,
            request.part_index + 1,
            request.part_count,
            row_count,
            model.name,
            model.version,
            predict_seconds,
            prepare_seconds,
            time.perf_counter() - predicted,
        )
        return Done()

    def _refuse_rows(
        self, request: messages_pb2.BatchPredictionRequest, model: LoadedModel, error: Exception
    ) -> Reject:
        if isinstance(error, InvalidRecordError):  # e.g. NaN probabilities: no retry helps
            return self._refuse(
                request,
                f"model {model.name} v{model.version} gave predictions the store refuses: {error}",
            )
        return self._refuse(
            request, f"rows do not fit model {model.name} v{model.version}: {error}"
        )

    def _refuse(self, request: messages_pb2.BatchPredictionRequest, reason: str) -> Reject:
        """The part can never succeed: the batch fails with the reason, the message is dead."""
        full_reason = f"part {request.part_index}: {reason}"
        with contextlib.suppress(NotFoundError):  # a malformed part may name no known batch
            self.store.update_batch(request.batch_id, status=BatchStatus.FAILED, error=full_reason)
        return Reject(full_reason)
