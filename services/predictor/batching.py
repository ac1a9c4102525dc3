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
  time (native boosters, large numpy work), letting the loop decode calls meanwhile. With
  `model_process`, the model runs in a process of its own (see `model_process`): the loop
  and the model each get a core, and calls arriving during a model call queue at once.
- `max_wait_s` is an extra wait to fill a batch, applied only while load is concurrent (the last
  batch held several requests), and only until the batch holds as many requests as the last
  one: 8 callers in lockstep get batches of 8 without waiting out the window each time. A lone
  sequential caller never waits, so its latency stays at the model's own cost.
- The wait never exceeds the last model call's duration either. Merging two groups that would
  take turns pays while the wait is shorter than the model call it shares (k callers per call
  become 2k for one wait plus one call, instead of two calls), so a fast model never waits long
  and a slow one waits up to `max_wait_s`. The window has to cover the stragglers: measured
  here, 8 callers answered together come back over 5-6 ms (each call's trip through gRPC and
  its decoding takes about 0.6 ms of the loop's time in this VM's slow state, 0.14 ms in its
  fast one), so with a 2 ms window batches broke
  into groups of about 3 and 8 h2load streams reached 2.3x the sequential rows/s.
- Waiting only for as many calls as the last batch held keeps groups that take turns apart
  for good: measured here, 8 h2load streams sometimes settled into three groups (batches of
  3, 3, 2) for a whole run. So now and then a concurrent batch is *stretched*: it waits out
  its whole window, and the groups coming back meanwhile join it. A stretch that finds
  nobody more doubles the interval to the next one (up to every
  `_MOST_BATCHES_BETWEEN_PROBES` batches); load that turns concurrent starts it again at 1.
- With the model off the loop's thread (a model thread or process), 8 callers tend to split
  into two groups that take turns: one is predicted while the other's calls queue. Calls that
  were queued before the last batch was answered are from other callers than that batch's,
  whose next calls come a round trip later; so the batch then waits (up to `max_wait_s`) for
  as many calls as both groups hold, and the groups merge into one model call.
- With the model on the loop's thread, calls that reach the server during a model call are
  still in gRPC's hands when it ends: its poller thread needs the GIL to hand them over, which
  it gets only while the loop sleeps. Under concurrent load the batch wait gives it that time.
  When every recent batch held one request, the batcher cannot tell a lone caller from callers
  whose calls gRPC has not handed over yet (on a busy CPU that kept 8 callers at one request
  per batch), so now and then it probes: it sleeps a short arrival window before cutting the
  batch. A probe that finds nobody doubles the interval to the next one (up to every
  `_MOST_BATCHES_BETWEEN_PROBES` batches), so a lone caller almost never pays for it.
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
from opentelemetry import trace

from mlplatform.common.float_frame import float_frame
from mlplatform.common.input_schema import CheckedRows, DoublesRows, as_frame
from mlplatform.common.model_loading import LoadedModel, ModelOutput
from mlplatform.predictor.model_process import ModelProcess
from mlplatform.predictor.observability import note_batch

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
#: How long a probe lets the event loop wait for calls that arrived during an on-thread model
#: call (at least this long) before the next batch is cut. Asks 0.3 ms; epoll makes it ~1 ms.
_ARRIVAL_WINDOW_S = 0.0003
#: Most batches between two probes (or two stretches) once they keep finding nobody more.
_MOST_BATCHES_BETWEEN_PROBES = 64


def concat_rows(parts: Sequence[CheckedRows]) -> pd.DataFrame:
    """Stack checked rows (same columns, same order) row-wise into the model's one DataFrame.

    With numpy: `pd.concat` costs more than the model on small batches. All-double rows (the
    usual input) stack as matrices, so a batch builds one DataFrame, not one per request;
    frames of one dtype stack as whole 2-d blocks; others column by column.
    """
    if len(parts) == 1:
        return as_frame(parts[0])
    doubles = [part for part in parts if isinstance(part, DoublesRows)]
    if len(doubles) == len(parts) and all(
        part.layout.names == doubles[0].layout.names for part in doubles
    ):
        return doubles[0].layout.frame(np.concatenate([part.matrix for part in doubles]))
    frames = [as_frame(part) for part in parts]
    first = frames[0]
    if _one_numpy_block(first):
        return float_frame(np.concatenate([part.to_numpy() for part in frames]), first.columns)
    columns = {
        name: np.concatenate([part[name].to_numpy() for part in frames]) for name in first.columns
    }
    index = pd.RangeIndex(sum(len(part) for part in frames))
    return pd.DataFrame(columns, index=index, copy=False)


def _one_numpy_block(frame: pd.DataFrame) -> bool:
    """Whether every column shares one non-object numpy dtype (one 2-d block in pandas).

    Reads pandas' block list where it has one: `frame.dtypes` builds a Series, which cost
    more than stacking the rows.
    """
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    if blocks is not None:
        dtypes = [block.dtype for block in blocks]
    else:  # pragma: no cover - a pandas without block managers
        dtypes = list(dict.fromkeys(frame.dtypes))
    return len(dtypes) == 1 and isinstance(dtypes[0], np.dtype) and dtypes[0].kind != "O"


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
    parts: Sequence[CheckedRows],
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
    """Queues prediction requests and predicts them in batches (see the module doc)."""

    def __init__(
        self,
        max_batch_size: int = 128,
        max_wait_s: float = 0.010,
        enabled: bool = True,
        observer: BatchObserver | None = None,
        model_thread: bool = False,
        model_process: ModelProcess | None = None,
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
        self._model_process = model_process
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._last_batch_requests = 1
        self._last_answered_at = 0.0
        self._last_call_s = 0.0
        self._batches_between_probes = 1
        self._batches_since_probe = 0
        self._batches_between_stretches = 1
        self._batches_since_stretch = 0
        #: Arrival windows waited so far (see the module doc); tests and diagnostics read it.
        self.probes_made = 0
        #: Concurrent batches that waited out their whole window (see the module doc).
        self.stretches_made = 0

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="mlp-batcher")

    async def predict(
        self, model: LoadedModel, features: CheckedRows, with_probabilities: bool
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
        if self._model_process is not None:
            await asyncio.to_thread(self._model_process.close)

    async def _run(self) -> None:
        carried: _Pending | object | None = None
        while True:
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            stretch = self._stretch_is_due()
            batch, carried = await self._collect(first, stretch)
            requests = len(batch) + isinstance(carried, _Pending)
            if stretch:
                self._stretched(found_calls=requests > self._last_batch_requests)
            elif requests > 1 and self._last_batch_requests == 1:
                self._stretched(found_calls=True)  # load just became concurrent: look soon
            self._last_batch_requests = requests
            if self._last_batch_requests > 1:
                self._probed(found_calls=True)
            try:
                await self._predict_batch(batch)
            except Exception as error:  # a bug here must not strand callers on their futures
                logger.exception("batch of %d requests failed outside the model", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)

    async def _collect(
        self, first: _Pending, stretch: bool = False
    ) -> tuple[list[_Pending], _Pending | object | None]:
        """`first` plus queued requests that fit; returns the batch and a request for the next.

        `stretch`: wait out the whole window for calls beyond the expected ones (see the module
        doc).
        """
        batch = [first]
        rows = first.rows
        if not self.enabled or rows >= self.max_batch_size:
            return batch, None
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        # Calls queued before the last batch was answered come from other callers than its
        # own, who will be back within a round trip: expect both (see the module doc).
        waited_through_last = int(first.enqueued_at < self._last_answered_at)
        settled = self._executor is not None or self._model_process is not None
        while rows < self.max_batch_size:
            expected = self._last_batch_requests + waited_through_last
            concurrent = expected > 1
            if self._queue.empty() and not settled:
                # The model runs on this thread and nothing else runs while it does: first let
                # the calls that have already arrived (queued behind a long model call, say)
                # reach the queue, so they share this model call instead of each their own.
                settled = not await self._let_arrived_calls_queue()
                if settled and not concurrent and self._probe_is_due():
                    self.probes_made += 1
                    await asyncio.sleep(_ARRIVAL_WINDOW_S)
                    settled = self._queue.empty()
                    self._probed(found_calls=not settled)
            if not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, _Pending) and item.enqueued_at < self._last_answered_at:
                    waited_through_last += 1
            elif concurrent and self._wait_s() > 0 and (len(batch) < expected or stretch):
                deadline = deadline or loop.time() + self._wait_s()
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

    def _wait_s(self) -> float:
        """How long a concurrent batch may wait to fill: `max_wait_s`, at most one model call."""
        return min(self.max_wait_s, self._last_call_s)

    def _stretch_is_due(self) -> bool:
        """Whether this concurrent batch waits its whole window (see the module doc)."""
        if not self.enabled or self._last_batch_requests < 2 or self._wait_s() <= 0:
            return False
        self._batches_since_stretch += 1
        if self._batches_since_stretch < self._batches_between_stretches:
            return False
        self.stretches_made += 1
        return True

    def _stretched(self, found_calls: bool) -> None:
        self._batches_since_stretch = 0
        self._batches_between_stretches = (
            1
            if found_calls
            else min(2 * self._batches_between_stretches, _MOST_BATCHES_BETWEEN_PROBES)
        )

    def _probe_is_due(self) -> bool:
        """Whether this single-request batch waits the arrival window (see the module doc)."""
        if self._last_call_s < _ARRIVAL_WINDOW_S:
            return False  # a model call this short leaves no time for calls to pile up
        self._batches_since_probe += 1
        return self._batches_since_probe >= self._batches_between_probes

    def _probed(self, found_calls: bool) -> None:
        self._batches_since_probe = 0
        self._batches_between_probes = (
            1
            if found_calls
            else min(2 * self._batches_between_probes, _MOST_BATCHES_BETWEEN_PROBES)
        )

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
        note_batch(live)
        self._last_answered_at = time.perf_counter()

    async def _in_worker(self, model: LoadedModel, batch: list[_Pending]) -> list[ModelOutput]:
        """predict_together for `batch`: here, in the model thread or in the model process."""
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
        started = time.perf_counter()
        try:
            if self._model_process is not None:
                outputs, calls = await self._model_process.predict_together(*arguments[:4])
                if listener is not None:
                    for rows, seconds in calls:
                        listener(rows, seconds)
                return outputs
            if self._executor is None:
                return predict_together(*arguments)
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, predict_together, *arguments
            )
        finally:
            self._last_call_s = time.perf_counter() - started

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
