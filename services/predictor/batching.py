"""Adaptive batching: concurrent requests are predicted together in one model call.

Why: a forest or a PyCaret pipeline predicts 8 rows for about the cost of one (measured on a
PyCaret stack: 27-30 rows/s one at a time, 190-240 rows/s in batches of 8), so under concurrent
load batching is what multiplies throughput.

How:
- Requests queue on the event loop; one worker task takes everything queued (up to
  `max_batch_size` rows) and calls the model once. Requests that arrive during a model call
  form the next batch by themselves: no timer is needed for that.
- Where the model runs: by default on the event loop's own thread. Most models are Python
  holding the GIL (a forest walks its trees one Python call at a time, a PyCaret pipeline is
  Python steps), so a model thread bought no parallelism, only two thread hand-offs per call
  and the loop waiting up to the interpreter's 5 ms switch interval for the GIL while the
  model held it: measured here, 8 concurrent callers got 1.5 times more rows/s and a lone
  caller 0.3-2 ms less latency without the thread. With `model_thread`, the model runs in one
  worker thread instead, which pays for models whose predict releases the GIL for most of its
  time (native boosters, large numpy work), letting the loop decode calls meanwhile.
- `max_wait_s` is an extra wait to fill a batch, applied only while load is concurrent (the last
  batch held several requests). A lone sequential caller never waits, so its latency stays at
  the model's own cost.
- Each caller gets exactly its own rows back (split by offsets) and probabilities only when it
  asked for them; the model is asked for probabilities when any caller in the batch wants them.
- A request never shares a model call that would exceed `max_batch_size` rows: it waits for the
  next batch. A request larger than `max_batch_size` is predicted alone, in chunks of
  `max_batch_size` rows.
- A batch only holds requests checked against the same model object, so requests queued before a
  hot swap are predicted by the model that checked them.
- When a batch of several requests fails, each request is retried alone, so one bad request fails
  only itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from mlplatform.common.model_loading import LoadedModel, ModelOutput

logger = logging.getLogger(__name__)


class BatcherClosedError(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


class BatchObserver(Protocol):
    """Receives batching figures (the metrics module implements it)."""

    def model_called(
        self, model: LoadedModel, rows: int, requests: int, seconds: float
    ) -> None: ...

    def queue_waited(self, seconds: float) -> None: ...


@dataclass(eq=False)
class _Pending:
    model: LoadedModel
    features: pd.DataFrame
    with_probabilities: bool
    future: asyncio.Future[ModelOutput]
    enqueued_at: float = field(default_factory=time.perf_counter)

    @property
    def rows(self) -> int:
        return len(self.features)


_STOP = object()
#: Most event-loop rounds the batcher yields for calls that have already arrived.
_SETTLE_ROUNDS = 8
#: After an on-thread model call at least this long, how long the batcher lets the event loop
#: wait for calls that arrived meanwhile before it cuts the next batch (see `_collect`).
_ARRIVAL_WINDOW_S = 0.0003


def concat_rows(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack checked frames (same columns, same order) row-wise.

    With numpy: `pd.concat` costs more than the model on small batches. Frames of one dtype
    (the usual all-numeric input) stack as whole 2-d blocks; others column by column.
    """
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    index = pd.RangeIndex(sum(len(part) for part in parts))
    if first.dtypes.nunique() == 1 and first.dtypes.iloc[0].kind != "O":
        matrix = np.concatenate([part.to_numpy() for part in parts])
        return pd.DataFrame(matrix, columns=first.columns, index=index, copy=False)
    columns = {
        name: np.concatenate([part[name].to_numpy() for part in parts]) for name in first.columns
    }
    return pd.DataFrame(columns, index=index, copy=False)


def split_output(
    output: ModelOutput, row_counts: Sequence[int], with_probabilities: Sequence[bool]
) -> list[ModelOutput]:
    """Cut one model call's output back into each request's rows and requested outputs."""
    total = sum(row_counts)
    if len(output.predictions) != total:
        raise RuntimeError(
            f"the model returned {len(output.predictions)} predictions for {total} rows"
        )
    results = []
    start = 0
    for rows, wants_probabilities in zip(row_counts, with_probabilities, strict=True):
        stop = start + rows
        probabilities = None
        if wants_probabilities and output.probabilities is not None:
            probabilities = output.probabilities[start:stop]
        results.append(ModelOutput(output.predictions[start:stop], probabilities))
        start = stop
    return results


ModelCallListener = Callable[[int, float], None]


def predict_together(
    model: LoadedModel,
    parts: Sequence[pd.DataFrame],
    with_probabilities: Sequence[bool],
    max_batch_size: int,
    on_model_call: ModelCallListener | None = None,
) -> list[ModelOutput]:
    """One model call for every part (chunked by `max_batch_size`), split back per part.

    Runs in the worker thread: concatenating and splitting stay off the event loop too.
    `on_model_call(rows, seconds)` hears about each model call.
    """
    features = concat_rows(parts)
    wants_probabilities = any(with_probabilities)
    outputs = []
    for start in range(0, len(features), max_batch_size):
        chunk = (
            features
            if len(features) <= max_batch_size
            else features.iloc[start : start + max_batch_size]
        )
        started = time.perf_counter()
        outputs.append(model.predict(chunk, wants_probabilities))
        if on_model_call is not None:
            on_model_call(len(chunk), time.perf_counter() - started)
    if len(outputs) == 1:
        output = outputs[0]
    else:
        probabilities = None
        if wants_probabilities and outputs[0].probabilities is not None:
            probabilities = np.concatenate([chunk.probabilities for chunk in outputs])
        output = ModelOutput(
            np.concatenate([chunk.predictions for chunk in outputs]), probabilities
        )
    return split_output(output, [len(part) for part in parts], with_probabilities)


class AdaptiveBatcher:
    """Queues prediction requests and runs them, batched, in one worker thread."""

    def __init__(
        self,
        max_batch_size: int = 128,
        max_wait_s: float = 0.002,
        enabled: bool = True,
        observer: BatchObserver | None = None,
        model_thread: bool = False,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.enabled = enabled
        self._observer = observer
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlp-model")
            if model_thread
            else None
        )
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._load_is_concurrent = False
        self._last_call_s = 0.0

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="mlp-batcher")

    async def predict(
        self, model: LoadedModel, features: pd.DataFrame, with_probabilities: bool
    ) -> ModelOutput:
        """Predict checked `features` with `model`, batched with whatever else is queued."""
        if self._closing or self._worker is None:
            raise BatcherClosedError("the predictor is shutting down")
        future: asyncio.Future[ModelOutput] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(model, features, with_probabilities, future))
        return await future

    async def close(self) -> None:
        """Predict everything already queued, then stop the worker and its thread."""
        if self._closing:
            return
        self._closing = True
        if self._worker is not None:
            self._queue.put_nowait(_STOP)
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        carried: _Pending | object | None = None
        while True:
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            batch, carried = await self._collect(first)
            self._load_is_concurrent = len(batch) > 1 or carried is not None
            try:
                await self._predict_batch(batch)
            except Exception as error:  # a bug here must not strand callers on their futures
                logger.exception("batch of %d requests failed outside the model", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)

    async def _collect(self, first: _Pending) -> tuple[list[_Pending], _Pending | object | None]:
        """`first` plus queued requests that fit; returns the batch and a request for the next."""
        batch = [first]
        rows = first.rows
        if not self.enabled or rows >= self.max_batch_size:
            return batch, None
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        settled = self._executor is not None
        while rows < self.max_batch_size:
            if self._queue.empty() and not settled:
                # The model runs on this thread and nothing else runs while it does: first let
                # the calls that have already arrived (queued behind a long model call, say)
                # reach the queue, so they share this model call instead of each their own.
                settled = not await self._let_arrived_calls_queue()
                if settled and self._last_call_s >= _ARRIVAL_WINDOW_S:
                    # Calls that reached the server during the last model call are still in
                    # gRPC's hands: its poller thread needs the GIL to hand them over, which
                    # it gets once the loop sleeps rather than spins. Without this wait the
                    # batcher cut every batch at one call under concurrent load on a busy CPU.
                    await asyncio.sleep(_ARRIVAL_WINDOW_S)
                    settled = self._queue.empty()
            if not self._queue.empty():
                item = self._queue.get_nowait()
            elif self._load_is_concurrent and self.max_wait_s > 0:
                deadline = deadline or loop.time() + self.max_wait_s
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
                item is _STOP
                or not isinstance(item, _Pending)
                or item.model is not first.model
                or rows + item.rows > self.max_batch_size
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

    async def _predict_batch(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if self._observer is not None:
            for pending in batch:
                self._observer.queue_waited(started - pending.enqueued_at)
        live = [pending for pending in batch if not pending.future.done()]  # callers gone: skip
        if not live:
            return
        model = live[0].model
        try:
            outputs = await self._in_worker(model, live)
        except Exception as error:
            if len(live) == 1:
                _settle(live[0], error=error)
            else:
                await self._predict_one_by_one(live)
            return
        for pending, output in zip(live, outputs, strict=True):
            _settle(pending, output=output)

    async def _in_worker(self, model: LoadedModel, batch: list[_Pending]) -> list[ModelOutput]:
        """predict_together for `batch`: here, or in the model thread when there is one."""
        listener = None
        if self._observer is not None:
            observer, requests = self._observer, len(batch)

            def listener(rows: int, seconds: float) -> None:
                observer.model_called(model, rows, requests, seconds)

        arguments = (
            model,
            [pending.features for pending in batch],
            [pending.with_probabilities for pending in batch],
            self.max_batch_size,
            listener,
        )
        if self._executor is None:
            started = time.perf_counter()
            try:
                return predict_together(*arguments)
            finally:
                self._last_call_s = time.perf_counter() - started
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, predict_together, *arguments
        )

    async def _predict_one_by_one(self, batch: list[_Pending]) -> None:
        """After a failed batch: each request alone, so only the bad one fails."""
        for pending in batch:
            try:
                [output] = await self._in_worker(pending.model, [pending])
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
