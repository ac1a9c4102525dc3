"""The adaptive batcher, driven directly (no server) with a stand-in estimator.

`RecordingEstimator` is a stand-in, not a real model: it predicts each row's `x` (so a caller can
see exactly which rows it got back), records the size of every model call, and can run a hook
inside its next call: the model runs on the event loop's thread, so whatever the hook schedules
arrives while the model is busy and queues once the call ends, as calls that reach the server
during a model call do. That makes "requests queue while the model is busy" deterministic.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from mlplatform.common.input_schema import (
    CheckedRows,
    ColumnKind,
    Columns,
    ColumnSpec,
    DoublesRows,
    ProblemType,
    as_frame,
)
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.batching import AdaptiveBatcher, BatcherClosedError
from mlplatform.predictor.model_call import concat_rows

T = TypeVar("T")


class RecordingEstimator:
    """Stand-in estimator: prediction = x; probabilities = [1 - x/1000, x/1000]."""

    def __init__(self) -> None:
        self.call_sizes: list[int] = []
        #: Runs (once) inside the next model call.
        self.during_next_call: Callable[[], None] | None = None

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self.call_sizes.append(len(features))
        hook, self.during_next_call = self.during_next_call, None
        if hook is not None:
            hook()
        values = features["x"].to_numpy()
        if (values < 0).any():
            raise ValueError("negative x")
        return values.copy()

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        share = features["x"].to_numpy() / 1000.0
        return np.column_stack([1 - share, share])


def stand_in_model(estimator: RecordingEstimator, version: str = "1") -> LoadedModel:
    return LoadedModel(
        name="stand_in",
        version=version,
        alias="production",
        estimator=estimator,
        input_schema=(ColumnSpec("x", ColumnKind.DOUBLE),),
        problem_type=ProblemType.CLASSIFICATION,
        classes=(0, 1),
    )


def rows(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"x": np.array(values, dtype=np.float64)})


def checked_doubles(model: LoadedModel, *values: float) -> DoublesRows:
    """Rows as the predictor's check hands them on when decoded from the wire."""
    checked = model.check_rows(Columns({"x": np.array(values, dtype=np.float64)}, len(values)))
    assert isinstance(checked, DoublesRows)
    return checked


def sleeping_model(seconds: float) -> tuple[RecordingEstimator, LoadedModel]:
    """A stand-in whose predict first sleeps `seconds`, holding the loop's thread as a model
    does."""
    estimator = RecordingEstimator()
    plain_predict = estimator.predict

    def predict_after_sleeping(features: pd.DataFrame) -> np.ndarray:
        time.sleep(seconds)
        return plain_predict(features)

    estimator.predict = predict_after_sleeping  # type: ignore[method-assign]
    return estimator, stand_in_model(estimator)


async def in_lockstep(
    batcher: AdaptiveBatcher, model: LoadedModel, callers: int, calls: int
) -> None:
    """`callers` callers, each sending its next call as soon as its last one is answered."""

    async def caller(number: int) -> None:
        for call in range(calls):
            await batcher.predict(model, rows(float(number * 100 + call)), False)

    await asyncio.gather(*(caller(number) for number in range(callers)))


#: What `two_groups` callers get back: each exactly its own rows, in order.
TWO_GROUPS_ANSWERS = [
    [10.0, 11.0, 12.0, 13.0, 14.0],
    [20.0, 21.0, 22.0, 23.0, 24.0],
    [30.0, 31.0, 32.0, 33.0],
    [40.0, 41.0, 42.0, 43.0],
]


async def two_groups(
    batcher: AdaptiveBatcher, model: LoadedModel, second_group_after_s: float, round_trip_s: float
) -> list[list[float]]:
    """Callers 1 and 2 (5 calls each) start at once, 3 and 4 (4 calls each) after
    `second_group_after_s`; each caller sends its next call `round_trip_s` after its answer."""

    async def caller(number: int, calls: int, start_after_s: float) -> list[float]:
        await asyncio.sleep(start_after_s)
        answers = []
        for call in range(calls):
            output = await batcher.predict(model, rows(number * 10.0 + call), False)
            answers.append(float(output.predictions[0]))
            if round_trip_s:
                await asyncio.sleep(round_trip_s)
        return answers

    return list(
        await asyncio.gather(
            caller(1, 5, 0.0),
            caller(2, 5, 0.0),
            caller(3, 4, second_group_after_s),
            caller(4, 4, second_group_after_s),
        )
    )


async def during_a_model_call(
    estimator: RecordingEstimator,
    blocker: Callable[[], Awaitable[object]],
    calls: Callable[[], list[Awaitable[T]]],
) -> list[T | BaseException]:
    """Start `calls` while the model predicts `blocker`'s call; their results once answered."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Future[T]] = []
    estimator.during_next_call = lambda: tasks.extend(loop.create_task(c) for c in calls())  # type: ignore[arg-type]
    await blocker()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def hold_model_then_submit(
    batcher: AdaptiveBatcher,
    estimator: RecordingEstimator,
    model: LoadedModel,
    requests: list[tuple[CheckedRows, bool]],
) -> list[object]:
    """Occupy the model with one call and submit `requests` meanwhile."""
    return await during_a_model_call(
        estimator,
        lambda: batcher.predict(model, rows(0.0), False),
        lambda: [batcher.predict(model, frame, flag) for frame, flag in requests],
    )


def run(scenario: Callable[[AdaptiveBatcher], Awaitable[T]], **options: Any) -> T:
    """Run `scenario` against a fresh batcher on a fresh event loop."""

    async def main() -> T:
        batcher = AdaptiveBatcher(**options)
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_queued_callers_share_one_call_and_each_gets_exactly_its_rows() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    requests = [(rows(*range(base, base + size)), base % 2 == 0) for base, size in
                [(10, 1), (20, 3), (30, 2), (40, 1), (50, 4)]]  # fmt: skip

    results = run(
        lambda batcher: hold_model_then_submit(batcher, estimator, model, requests),
        max_batch_size=64,
    )
    assert estimator.call_sizes == [1, 11]  # the blocker, then all queued rows in one call
    for (frame, wants_probabilities), output in zip(requests, results, strict=True):
        assert output.predictions.tolist() == frame["x"].tolist()
        if wants_probabilities:
            np.testing.assert_allclose(output.probabilities[:, 1], frame["x"] / 1000.0)
        else:
            assert output.probabilities is None


def test_checked_all_double_rows_reach_the_model_as_one_frame_per_batch() -> None:
    """The predictor's usual input: rows the check kept as a matrix (`DoublesRows`) are stacked
    into one DataFrame for the batch's model call, and each caller still gets its own rows."""
    estimator = RecordingEstimator()
    frames_seen: list[pd.DataFrame] = []
    plain_predict = estimator.predict

    def predict_recording_frames(features: pd.DataFrame) -> np.ndarray:
        frames_seen.append(features)
        return plain_predict(features)

    estimator.predict = predict_recording_frames  # type: ignore[method-assign]
    model = stand_in_model(estimator)
    requests = [
        (checked_doubles(model, *range(base, base + size)), False)
        for base, size in [(10, 1), (20, 3), (30, 2)]
    ]

    results = run(
        lambda batcher: hold_model_then_submit(batcher, estimator, model, requests),
        max_batch_size=64,
    )
    assert estimator.call_sizes == [1, 6]
    batch_frame = frames_seen[1]
    assert isinstance(batch_frame, pd.DataFrame)
    assert list(batch_frame.columns) == ["x"]
    assert batch_frame.index.equals(pd.RangeIndex(6))
    assert [output.predictions.tolist() for output in results] == [
        [10.0],
        [20.0, 21.0, 22.0],
        [30.0, 31.0],
    ]


class StandInCompiled:
    """Stand-in for a compiled model's ONNX Runtime form: answers from the checked matrix and
    records each call's rows, as `LoadedModel.predict` calls `compiled.predict_output`."""

    def __init__(self) -> None:
        self.call_sizes: list[int] = []

    def predict_output(
        self, features: CheckedRows, with_probabilities: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        assert isinstance(features, DoublesRows)
        self.call_sizes.append(len(features))
        values = features.matrix[:, 0].copy()
        share = values / 1000.0
        return values, np.column_stack([1 - share, share]) if with_probabilities else None


class RecordingObserver:
    def __init__(self) -> None:
        self.model_calls: list[tuple[int, int]] = []

    def model_called(self, model: LoadedModel, rows: int, requests: int, seconds: float) -> None:
        self.model_calls.append((rows, requests))

    def queue_waited(self, seconds: float) -> None:
        pass


def test_a_compiled_model_predicts_each_request_in_its_callers_task() -> None:
    """A compiled model's call costs microseconds, so its requests skip the batcher's queue:
    concurrent callers get one model call each, in their own task (the batcher's worker never
    sees them), and each gets its own rows and only the probabilities it asked for."""
    compiled = StandInCompiled()
    model = stand_in_model(RecordingEstimator())
    model.compiled = compiled
    observer = RecordingObserver()

    async def scenario(batcher: AdaptiveBatcher) -> list[Any]:
        requests = [checked_doubles(model, *range(base, base + 3)) for base in (10, 20, 30)]
        return list(
            await asyncio.gather(
                *(batcher.predict(model, rows, index == 1) for index, rows in enumerate(requests))
            )
        )

    outputs = run(scenario, max_batch_size=64, observer=observer)
    assert compiled.call_sizes == [3, 3, 3]
    assert observer.model_calls == [(3, 1), (3, 1), (3, 1)]
    assert [output.predictions.tolist() for output in outputs] == [
        [10.0, 11.0, 12.0],
        [20.0, 21.0, 22.0],
        [30.0, 31.0, 32.0],
    ]
    assert outputs[0].probabilities is None and outputs[2].probabilities is None
    np.testing.assert_allclose(outputs[1].probabilities[:, 1], [0.020, 0.021, 0.022])


def test_rows_kept_as_a_matrix_stack_with_frames_in_order() -> None:
    """A batch may mix both kinds (an all-double schema, one request sent as integers takes
    the general path): the stacked frame holds every row in order, with a fresh index."""
    model = stand_in_model(RecordingEstimator())
    matrix_rows = checked_doubles(model, 1.0, 2.0)
    frame_rows = model.check(rows(3.0))
    for parts in ([matrix_rows, frame_rows], [matrix_rows, matrix_rows]):
        stacked = as_frame(concat_rows(parts))
        assert stacked["x"].tolist() == [
            value for part in parts for value in part.to_numpy()[:, 0].tolist()
        ]
        assert stacked.index.equals(pd.RangeIndex(len(stacked)))
    assert concat_rows([matrix_rows]) is matrix_rows


def test_a_batch_never_exceeds_the_limit_and_overflow_waits_for_the_next_call() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    requests = [(rows(*range(base, base + 3)), False) for base in (100, 200, 300)]
    results = run(
        lambda batcher: hold_model_then_submit(batcher, estimator, model, requests),
        max_batch_size=4,
    )
    assert max(estimator.call_sizes) <= 4
    assert estimator.call_sizes == [1, 3, 3, 3]
    assert [output.predictions.tolist() for output in results] == [
        frame["x"].tolist() for frame, _ in requests
    ]


def test_a_request_larger_than_the_limit_is_predicted_alone_in_chunks() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    large = rows(*range(500, 510))
    small = rows(1.0, 2.0)
    results = run(
        lambda batcher: hold_model_then_submit(
            batcher, estimator, model, [(small, False), (large, True), (small, True)]
        ),
        max_batch_size=4,
    )
    # blocker; the first small request (the large one does not fit beside it); the large one
    # alone in chunks of 4, 4, 2; then the second small request.
    assert estimator.call_sizes == [1, 2, 4, 4, 2, 2]
    assert results[1].predictions.tolist() == large["x"].tolist()
    assert results[1].probabilities.shape == (10, 2)
    assert results[0].probabilities is None
    assert results[2].probabilities.shape == (2, 2)


def test_one_failing_request_fails_alone() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    requests = [(rows(1.0), False), (rows(-1.0), False), (rows(3.0), True)]
    results = run(
        lambda batcher: hold_model_then_submit(batcher, estimator, model, requests),
        max_batch_size=64,
    )
    assert results[0].predictions.tolist() == [1.0]
    assert isinstance(results[1], ValueError)
    assert results[2].predictions.tolist() == [3.0]


def test_requests_checked_against_different_models_are_not_mixed() -> None:
    estimator = RecordingEstimator()
    old_model, new_model = stand_in_model(estimator, "1"), stand_in_model(estimator, "2")

    async def scenario(batcher: AdaptiveBatcher) -> list[object]:
        return await during_a_model_call(
            estimator,
            lambda: batcher.predict(old_model, rows(0.0), False),
            lambda: [
                batcher.predict(model, rows(value), False)
                for model, value in ((old_model, 1.0), (new_model, 2.0), (new_model, 3.0))
            ],
        )

    results = run(scenario, max_batch_size=64)
    assert estimator.call_sizes == [1, 1, 2]
    assert [output.predictions.tolist() for output in results] == [[1.0], [2.0], [3.0]]


def test_a_lone_caller_never_waits_for_a_batch_to_fill() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)

    async def scenario(batcher: AdaptiveBatcher) -> float:
        started = time.perf_counter()
        for value in range(5):
            await batcher.predict(model, rows(float(value)), False)
        return time.perf_counter() - started

    elapsed = run(scenario, max_batch_size=64, max_wait_s=2.0)
    assert elapsed < 1.0  # five sequential calls, none waited the 2 s batch window
    assert estimator.call_sizes == [1, 1, 1, 1, 1]


def test_closing_finishes_queued_requests_then_refuses_new_ones() -> None:
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)

    async def scenario() -> tuple[list[object], AdaptiveBatcher]:
        batcher = AdaptiveBatcher(max_batch_size=64)
        batcher.start()
        first: list[object] = []

        async def predict_first() -> None:
            first.append(await batcher.predict(model, rows(1.0), False))

        # Request 2 is queued, then the batcher closed, while request 1 is being predicted.
        queued, _closed = await during_a_model_call(
            estimator,
            predict_first,
            lambda: [batcher.predict(model, rows(2.0), False), batcher.close()],
        )
        return [*first, queued], batcher

    results, batcher = asyncio.run(scenario())
    assert [output.predictions.tolist() for output in results] == [[1.0], [2.0]]
    assert estimator.call_sizes == [1, 1]
    with pytest.raises(BatcherClosedError):
        asyncio.run(batcher.predict(model, rows(1.0), False))


@pytest.mark.parametrize("rounds_apart", [0, 1])
def test_on_the_loop_thread_calls_arriving_during_a_model_call_share_the_next_one(
    rounds_apart: int,
) -> None:
    """With the model on the event loop's thread nothing else runs while it predicts. Calls
    that arrive meanwhile (here started by the first model call itself, each taking a few loop
    rounds to reach the batcher, as a decoded gRPC call does) must share the next model call.
    The model computes for a millisecond, as a scikit-learn model does (a call shorter than the
    arrival window is a compiled model's: see the test after this one)."""
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    plain_predict = estimator.predict

    async def scenario(batcher: AdaptiveBatcher) -> list[object]:
        loop = asyncio.get_running_loop()
        arrived: list[asyncio.Task[object]] = []

        async def call(value: float, rounds: int) -> object:
            for _ in range(rounds):
                await asyncio.sleep(0)
            return await batcher.predict(model, rows(value, value + 1), False)

        def predict_while_calls_arrive(features: pd.DataFrame) -> np.ndarray:
            if not arrived:
                arrived.extend(
                    loop.create_task(call(base, 1 + number * rounds_apart))
                    for number, base in enumerate((10.0, 20.0, 30.0))
                )
            spin(0.001)
            return plain_predict(features)

        estimator.predict = predict_while_calls_arrive  # type: ignore[method-assign]
        await batcher.predict(model, rows(0.0), False)
        return list(await asyncio.gather(*arrived))

    outputs = run(scenario, max_batch_size=64)
    assert estimator.call_sizes == [1, 6]
    assert [output.predictions.tolist() for output in outputs] == [  # type: ignore[attr-defined]
        [10.0, 11.0],
        [20.0, 21.0],
        [30.0, 31.0],
    ]


def spin(seconds: float) -> None:
    """Compute (holding the GIL) for `seconds`, as a GIL-bound model does."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


class HandsOverWhenTheLoopSleeps(selectors.DefaultSelector):
    """A selector that, like gRPC's poller thread on a busy CPU, hands over waiting calls only
    once the event loop blocks (a select with a timeout), never on a loop round that merely
    checks for ready events."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting_calls: list[Callable[[], None]] = []

    def select(self, timeout: float | None = None) -> list[Any]:
        if (timeout is None or timeout > 0) and self.waiting_calls:
            calls, self.waiting_calls = self.waiting_calls, []
            for call in calls:
                call()
            timeout = 0  # the calls just scheduled are ready to run
        return super().select(timeout)


def test_on_the_loop_thread_calls_handed_over_late_are_found_by_a_probe() -> None:
    """Calls that reached gRPC during a model call are handed over only once the loop sleeps.
    Here B arrives at once and C and D that way: the probe's arrival window makes B, C and D
    share one model call (without it: B alone, then C and D)."""
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    plain_predict = estimator.predict
    selector = HandsOverWhenTheLoopSleeps()

    async def scenario() -> list[object]:
        batcher = AdaptiveBatcher(max_batch_size=64)
        batcher.start()
        arrived: list[asyncio.Future[object]] = []
        all_arrived = asyncio.Event()

        def arrive(value: float) -> None:
            arrived.append(asyncio.ensure_future(batcher.predict(model, rows(value), False)))
            if len(arrived) == 3:
                all_arrived.set()

        def predict_while_calls_arrive(features: pd.DataFrame) -> np.ndarray:
            if not arrived:
                arrive(10.0)
                selector.waiting_calls += [lambda: arrive(20.0), lambda: arrive(30.0)]
            spin(0.001)  # long enough for the batcher to think calls may have piled up
            return plain_predict(features)

        estimator.predict = predict_while_calls_arrive  # type: ignore[method-assign]
        try:
            await batcher.predict(model, rows(0.0), False)
            await all_arrived.wait()
            return list(await asyncio.gather(*arrived))
        finally:
            await batcher.close()

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        outputs = runner.run(scenario())
    assert estimator.call_sizes == [1, 3]
    assert [output.predictions.tolist() for output in outputs] == [  # type: ignore[attr-defined]
        [10.0],
        [20.0],
        [30.0],
    ]


def test_on_the_loop_thread_a_lone_caller_is_rarely_probed() -> None:
    """A lone sequential caller finds nobody in the arrival window, so probes back off: 100
    calls pay for 6 of them (after calls 2, 4, 8, 16, 32 and 64), not 100."""
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)
    plain_predict = estimator.predict

    def predict_for_half_a_millisecond(features: pd.DataFrame) -> np.ndarray:
        spin(0.0005)
        return plain_predict(features)

    estimator.predict = predict_for_half_a_millisecond  # type: ignore[method-assign]

    async def scenario(batcher: AdaptiveBatcher) -> int:
        for value in range(100):
            await batcher.predict(model, rows(float(value)), False)
        return batcher.policy.probes_made

    assert run(scenario, max_batch_size=64) == 6
    assert estimator.call_sizes == [1] * 100


def test_in_lockstep_a_batch_stops_waiting_once_every_recent_caller_is_in() -> None:
    """8 callers that each send their next call when answered: once a batch held all 8, the
    next batch is cut as soon as the 8 are back, not after the whole batch window."""
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)

    async def scenario(batcher: AdaptiveBatcher) -> float:
        started = time.perf_counter()
        await in_lockstep(batcher, model, callers=8, calls=5)
        return time.perf_counter() - started

    elapsed = run(scenario, max_batch_size=64, max_wait_s=2.0)
    assert estimator.call_sizes == [8] * 5
    assert elapsed < 2.0  # no batch waited out the 2 s window


def test_a_concurrent_batch_waits_no_longer_than_the_last_model_call() -> None:
    """Two callers share a 5 ms model call, then one of them stops: the other's next batches
    expect two calls, but wait at most one model call (5 ms) for the second, not the 2 s
    window: waiting longer than the call it would share costs more than it saves."""
    estimator, model = sleeping_model(0.005)

    async def scenario(batcher: AdaptiveBatcher) -> float:
        await asyncio.gather(
            batcher.predict(model, rows(1.0), False), batcher.predict(model, rows(2.0), False)
        )
        started = time.perf_counter()
        for call in range(3):
            await batcher.predict(model, rows(10.0 + call), False)
        return time.perf_counter() - started

    elapsed = run(scenario, max_batch_size=64, max_wait_s=2.0)
    assert estimator.call_sizes == [2, 1, 1, 1]
    assert elapsed < 1.0  # the first lone call waited ~5 ms, not the 2 s window


def test_on_the_loop_thread_two_groups_taking_turns_merge_when_a_batch_stretches() -> None:
    """On the loop's thread a call that arrives during a model call queues only after it, like
    the answered callers' next calls: the batcher cannot tell the two groups apart, so callers
    3 and 4, starting during 1 and 2's call, would take turns with them (2, 2, 2, ...). A
    batch that waits out its whole window (one 20 ms model call) now and then finds the other
    group coming back a 3 ms round trip later, and from then on all four share every call."""
    estimator, model = sleeping_model(0.02)

    async def scenario(batcher: AdaptiveBatcher) -> list[list[float]]:
        return await two_groups(batcher, model, second_group_after_s=0.01, round_trip_s=0.003)

    answers = run(scenario, max_batch_size=64, max_wait_s=1.0)
    assert answers == TWO_GROUPS_ANSWERS
    assert estimator.call_sizes == [2, 4, 4, 4, 4]


def test_in_lockstep_stretched_batches_back_off_when_they_find_nobody_more() -> None:
    """8 callers in lockstep, 40 calls each: every batch holds all 8, and a batch waits out
    its whole window only at batches 2, 4, 8, 16 and 32 (each finds nobody new, so the
    interval doubles), not on every batch."""
    estimator = RecordingEstimator()
    model = stand_in_model(estimator)

    async def scenario(batcher: AdaptiveBatcher) -> int:
        await in_lockstep(batcher, model, callers=8, calls=40)
        return batcher.policy.stretches_made

    assert run(scenario, max_batch_size=64, max_wait_s=2.0) == 5
    assert estimator.call_sizes == [8] * 40
