"""Adaptive batching, the mechanism: concurrent requests are predicted together in one model call.

Requests queue on the event loop; one worker task takes what is queued (as `batch_policy`
decides) and makes one model call (`model_call.predict_together`). Requests that arrive during
a model call form the next batch by themselves: no timer is needed for that. A compiled model
(ONNX Runtime) is not batched: each request is predicted in its caller's task.

The model runs on the event loop's own thread. Most models are Python holding the GIL, so a
model thread buys no parallelism, only two thread hand-offs per call and the loop waiting for the
GIL; a compiled model answers a row in microseconds, less than a hop to a thread or a process
costs (bench/PREDICTOR.md has the measurements).

Guarantees: each caller gets exactly its own rows back, and probabilities only when it asked;
a request never shares a model call that would exceed `max_batch_size` rows (a larger request
is predicted alone, in chunks); a batch only holds requests checked against the same model
object, so requests queued before a hot swap are predicted by the model that checked them;
when a batch of several requests fails, each is retried alone, so one bad request fails only
itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import trace

from mlplatform.common.input_schema import CheckedRows
from mlplatform.common.model_loading import LoadedModel, ModelOutput
from mlplatform.predictor.batch_policy import ARRIVAL_WINDOW_S, BatchPolicy
from mlplatform.predictor.errors import BatcherClosedError
from mlplatform.predictor.model_call import ModelCallListener, predict_together
from mlplatform.predictor.observability import note_batch

logger = logging.getLogger(__name__)

__all__ = ["AdaptiveBatcher", "BatchObserver", "BatcherClosedError"]


class BatchObserver(Protocol):
    """Receives batching figures (the metrics module implements it)."""

    def model_called(
        self, model: LoadedModel, rows: int, requests: int, seconds: float
    ) -> None: ...

    def queue_waited(self, seconds: float) -> None: ...


@dataclass(eq=False)
class _Pending:
    model: LoadedModel
    features: CheckedRows
    with_probabilities: bool
    future: asyncio.Future[ModelOutput]
    enqueued_at: float = field(default_factory=time.perf_counter)
    #: The caller's span (made in the caller's task): the batch it joins is noted there.
    span: trace.Span = field(default_factory=trace.get_current_span)

    @property
    def rows(self) -> int:
        return len(self.features)


_STOP = object()
#: Most event-loop rounds the batcher yields for calls that have already arrived.
_SETTLE_ROUNDS = 8


class AdaptiveBatcher:
    """Queues prediction requests and predicts them in batches (see the module doc)."""

    def __init__(
        self,
        max_batch_size: int = 128,
        max_wait_s: float = 0.010,
        enabled: bool = True,
        observer: BatchObserver | None = None,
    ) -> None:
        self.policy = BatchPolicy(max_batch_size, max_wait_s, enabled)
        self._observer = observer
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="mlp-batcher")

    async def predict(
        self, model: LoadedModel, features: CheckedRows, with_probabilities: bool
    ) -> ModelOutput:
        """Predict checked `features` with `model`, batched with whatever else is queued."""
        if self._closing or self._worker is None:
            raise BatcherClosedError("the predictor is shutting down")
        if model.compiled is not None:
            # A compiled model's fixed cost per call is microseconds: sharing its call saves
            # less than handing the request to the batcher's task costs (bench/PREDICTOR.md).
            if self._observer is not None:
                self._observer.queue_waited(0.0)
            [output] = self._call_model(model, [features], [with_probabilities])
            return output
        future: asyncio.Future[ModelOutput] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(model, features, with_probabilities, future))
        return await future

    async def close(self) -> None:
        """Predict everything already queued, then stop the worker."""
        if self._closing:
            return
        self._closing = True
        if self._worker is not None:
            self._queue.put_nowait(_STOP)
            await self._worker

    async def _run(self) -> None:
        carried: _Pending | object | None = None
        while True:
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            stretch = self.policy.stretch_is_due()
            batch, carried = await self._collect(first, stretch)
            self.policy.batch_cut(len(batch) + isinstance(carried, _Pending), stretch)
            try:
                self._predict_batch(batch)
            except Exception as error:  # a bug here must not strand callers on their futures
                logger.exception("batch of %d requests failed outside the model", len(batch))
                for pending in batch:
                    _settle(pending, error=error)

    async def _collect(
        self, first: _Pending, stretch: bool
    ) -> tuple[list[_Pending], _Pending | object | None]:
        """`first` plus queued requests that fit; returns the batch and a request for the next."""
        policy = self.policy
        batch = [first]
        rows = first.rows
        if not policy.takes_more(rows):
            return batch, None
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        queued_through_last = int(first.enqueued_at < policy.last_answered_at)
        settled = False
        while policy.takes_more(rows):
            expected = policy.expected_requests(queued_through_last)
            if self._queue.empty() and not settled:
                # The model runs on this thread and nothing else runs while it does: first let
                # the calls that have already arrived reach the queue, so they share this call.
                settled = not await self._let_arrived_calls_queue()
                if settled and expected == 1 and policy.probe_is_due():
                    await asyncio.sleep(ARRIVAL_WINDOW_S)
                    settled = self._queue.empty()
                    policy.probed(found_calls=not settled)
            if not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, _Pending) and item.enqueued_at < policy.last_answered_at:
                    queued_through_last += 1
            elif policy.keeps_waiting(len(batch), expected, stretch):
                deadline = deadline or loop.time() + policy.wait_s()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                break
            if (
                not isinstance(item, _Pending)
                or item.model is not first.model
                or not policy.fits(rows, item.rows)
            ):
                return batch, item
            batch.append(item)
            rows += item.rows
        return batch, None

    async def _let_arrived_calls_queue(self) -> bool:
        """Yields to the event loop until the queue has not grown for two rounds (a call takes
        a few loop rounds from its bytes to the queue; at most `_SETTLE_ROUNDS`); True if it
        grew. A lone caller pays two rounds, tens of microseconds."""
        grew = False
        quiet = 0
        for _ in range(_SETTLE_ROUNDS):
            before = self._queue.qsize()
            await asyncio.sleep(0)
            if self._queue.qsize() == before:
                quiet += 1
                if quiet == 2:
                    break
            else:
                grew, quiet = True, 0
        return grew

    def _predict_batch(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if self._observer is not None:
            for pending in batch:
                self._observer.queue_waited(started - pending.enqueued_at)
        live = [pending for pending in batch if not pending.future.done()]  # callers gone: skip
        if not live:
            return
        try:
            outputs = self._call_model(
                live[0].model,
                [pending.features for pending in live],
                [pending.with_probabilities for pending in live],
            )
        except Exception as error:
            if len(live) == 1:
                _settle(live[0], error=error)
            else:
                self._predict_one_by_one(live)
            return
        for pending, output in zip(live, outputs, strict=True):
            _settle(pending, output=output)
        note_batch(live)
        self.policy.last_answered_at = time.perf_counter()

    def _call_model(
        self, model: LoadedModel, parts: list[CheckedRows], flags: list[bool]
    ) -> list[ModelOutput]:
        """predict_together for one request's rows per part, timed for the batch policy."""
        listener: ModelCallListener | None = None
        if self._observer is not None:
            observer, requests = self._observer, len(parts)

            def listener(rows: int, seconds: float) -> None:
                observer.model_called(model, rows, requests, seconds)

        started = time.perf_counter()
        try:
            return predict_together(model, parts, flags, self.policy.max_batch_size, listener)
        finally:
            self.policy.last_call_s = time.perf_counter() - started

    def _predict_one_by_one(self, batch: list[_Pending]) -> None:
        """After a failed batch: each request alone, so only the bad one fails."""
        for pending in batch:
            try:
                [output] = self._call_model(
                    pending.model, [pending.features], [pending.with_probabilities]
                )
            except Exception as error:
                _settle(pending, error=error)
            else:
                _settle(pending, output=output)


def _settle(
    pending: _Pending, output: ModelOutput | None = None, error: BaseException | None = None
) -> None:
    if pending.future.done():  # the caller cancelled (deadline, disconnect)
        return
    if error is not None:
        pending.future.set_exception(error)
    else:
        pending.future.set_result(output)
