"""A failing model, and adaptive batching under concurrent callers, over a real server.

The `identity` model predicts each row's `x`, so a response shows exactly whose rows it holds;
`threshold` is a classifier with probabilities. Both fail on x == 666 and sleep on negative x
(predictor_model_behaviours), which lets a test hold the model busy while callers queue: the
model sleeps on the event loop's thread, and the calls that reach gRPC meanwhile queue once it
ends. A model that computes holding the GIL is tested too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pandas as pd
import pytest
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_model_behaviours import MARKER_FAIL, SPIN_BASE
from predictor_registry import Registry, threshold_model

from mlplatform.client.frames import column_to_series, dataframe_to_frame, frame_to_dataframe
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

MAX_BATCH = 8


def predict_x(
    predictor: PredictorUnderTest, xs: list[float], include_probabilities: bool = False
) -> predictor_pb2.PredictResponse:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(pd.DataFrame({"x": np.array(xs, dtype=np.float64)})),
        include_probabilities=include_probabilities,
    )
    return stub.Predict(request, timeout=30)


@pytest.fixture(scope="module")
def identity_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop, "identity", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="module")
def threshold_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop,
        "threshold",
        registry.tracking_uri,
        log_predictions=False,
        max_batch_size=MAX_BATCH,
        max_batch_wait_ms=0,
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="module")
def loop_thread_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    """The identity model with the default settings: the model on the event loop's thread."""
    predictor = start_test_predictor(
        background_loop, "identity", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


def test_a_failing_model_gives_internal_with_the_request_id_and_keeps_serving(
    identity_predictor: PredictorUnderTest,
) -> None:
    stub = predictor_pb2_grpc.PredictorStub(identity_predictor.channel)
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(pd.DataFrame({"x": [MARKER_FAIL]})), request_id="req-boom"
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=30)
    error = caught.value
    assert error.code() is grpc.StatusCode.INTERNAL
    assert "request id req-boom" in error.details()
    assert "Traceback" not in error.details() and "marker" not in error.details()
    assert dict(error.trailing_metadata())["x-request-id"] == "req-boom"
    assert column_to_series(predict_x(identity_predictor, [5.0]).predictions, 1).tolist() == [
        pytest.approx(5.0)
    ]


def hold_model_busy(predictor: PredictorUnderTest, seconds: float) -> threading.Thread:
    """Start a request that keeps the model busy for `seconds`; returns once it is running."""
    thread = threading.Thread(target=predict_x, args=(predictor, [-seconds]), daemon=True)
    registry = predictor.running.metrics.registry
    thread.start()
    wait_until(
        lambda: registry.get_sample_value("mlp_predictor_requests_in_flight") >= 1,
        what="the blocking request to be in flight",
    )
    return thread


def batch_requests_seen(predictor: PredictorUnderTest) -> list[tuple[float, float]]:
    """(bucket upper bound, cumulative count) of the requests-per-model-call histogram."""
    samples = predictor.running.metrics.batch_requests.collect()[0].samples
    return [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]


def test_concurrent_callers_each_get_exactly_their_rows_and_their_own_outputs(
    threshold_predictor: PredictorUnderTest,
) -> None:
    model = threshold_model()  # the same fit as the registered one, for expected values
    callers = [
        ([float(10 * caller + offset) for offset in range(1 + caller % 3)], caller % 2 == 0)
        for caller in range(12)
    ]
    blocker = hold_model_busy(threshold_predictor, 0.5)
    with ThreadPoolExecutor(len(callers)) as pool:
        futures = [pool.submit(predict_x, threshold_predictor, xs, flag) for xs, flag in callers]
        responses = [future.result(30) for future in futures]
    blocker.join(30)
    for (xs, wants_probabilities), response in zip(callers, responses, strict=True):
        frame = pd.DataFrame({"x": xs})
        predictions = column_to_series(response.predictions, len(xs)).tolist()
        assert predictions == model.predict(frame).tolist()
        if wants_probabilities:
            probabilities = frame_to_dataframe(response.probabilities)
            assert list(probabilities.columns) == ["high", "low"]
            np.testing.assert_allclose(probabilities.to_numpy(), model.predict_proba(frame))
        else:
            assert not response.HasField("probabilities")
    # The callers queued behind the blocker were predicted together (several per model call).
    counts = dict(batch_requests_seen(threshold_predictor))
    assert counts[1.0] < counts[float("inf")], "no model call held more than one request"


def test_a_request_larger_than_the_batch_limit_is_chunked_and_never_overflows_others(
    threshold_predictor: PredictorUnderTest,
) -> None:
    large = [float(x) for x in range(30)]  # > MAX_BATCH rows in one request
    blocker = hold_model_busy(threshold_predictor, 0.3)
    with ThreadPoolExecutor(4) as pool:
        small_futures = [
            pool.submit(predict_x, threshold_predictor, [60.0 + i], True) for i in range(3)
        ]
        large_future = pool.submit(predict_x, threshold_predictor, large, True)
        small = [future.result(30) for future in small_futures]
        large_response = large_future.result(30)
    blocker.join(30)
    assert (
        column_to_series(large_response.predictions, 30).tolist()
        == threshold_model().predict(pd.DataFrame({"x": large})).tolist()
    )
    assert frame_to_dataframe(large_response.probabilities).shape == (30, 2)
    for index, response in enumerate(small):
        assert response.predictions.string_values.values == ["high"], index
    rows_samples = threshold_predictor.running.metrics.batch_rows.collect()[0].samples
    buckets = {float(s.labels["le"]): s.value for s in rows_samples if s.name.endswith("_bucket")}
    assert buckets[float(MAX_BATCH)] == buckets[float("inf")], "a model call exceeded the limit"


def test_one_failing_request_in_a_batch_fails_alone(
    threshold_predictor: PredictorUnderTest,
) -> None:
    blocker = hold_model_busy(threshold_predictor, 0.3)
    with ThreadPoolExecutor(3) as pool:
        good_before = pool.submit(predict_x, threshold_predictor, [1.0])
        bad = pool.submit(predict_x, threshold_predictor, [MARKER_FAIL])
        good_after = pool.submit(predict_x, threshold_predictor, [99.0])
        assert good_before.result(30).predictions.string_values.values == ["low"]
        assert good_after.result(30).predictions.string_values.values == ["high"]
        with pytest.raises(grpc.RpcError) as caught:
            bad.result(30)
    blocker.join(30)
    assert caught.value.code() is grpc.StatusCode.INTERNAL


# The callers run in a process of their own: in this one they would share the server's GIL,
# and a model computing with the GIL held would keep them from even sending their next calls.
CONCURRENT_CALLERS = """
import json, sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pandas as pd

from mlplatform.client.frames import column_to_series, dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

address, base = sys.argv[1], float(sys.argv[2])


def caller(number):
    answers = []
    with grpc.insecure_channel(address) as channel:
        stub = predictor_pb2_grpc.PredictorStub(channel)
        for call in range(12):
            x = base + (number * 12 + call) / 1000  # unique per call
            frame = dataframe_to_frame(pd.DataFrame({"x": np.array([x])}))
            response = stub.Predict(predictor_pb2.PredictRequest(inputs=frame), timeout=30)
            answers.append((column_to_series(response.predictions, 1).tolist()[0], x))
    return answers


with ThreadPoolExecutor(8) as pool:
    print(json.dumps([pair for pairs in pool.map(caller, range(8)) for pair in pairs]))
"""


def test_on_the_loop_thread_concurrent_callers_are_batched_and_get_their_own_rows(
    loop_thread_predictor: PredictorUnderTest,
) -> None:
    """8 callers against a model that computes for 5 ms holding the GIL: model calls hold
    several requests, and every caller gets back exactly the row it sent."""
    spin_5_ms = str(SPIN_BASE + 5)
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_CALLERS, loop_thread_predictor.address, spin_5_ms],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers = json.loads(done.stdout)
    assert len(answers) == 96
    for answer, sent in answers:
        assert answer == pytest.approx(sent, abs=1e-6)
    counts = dict(batch_requests_seen(loop_thread_predictor))
    assert counts[1.0] < counts[float("inf")], "no model call held more than one request"
