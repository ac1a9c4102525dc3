"""Loading and hot reload: health before the first load, alias moves under concurrent load,
a version refused for failing its warm-up, and the serving history recorded in the store."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_model_behaviours import MARKER_FAIL
from predictor_registry import Registry, register_identity, set_alias

from mlplatform.client.frames import column_to_series, dataframe_to_frame
from mlplatform.common.store import Store
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_is_not_serving_until_the_alias_resolves_and_the_model_loads(
    background_loop: BackgroundLoop, registry: Registry
) -> None:
    predictor = start_test_predictor(
        background_loop, "late_model", registry.tracking_uri, wait=False, log_predictions=False
    )
    try:
        assert predictor.health() == NOT_SERVING
        assert predictor.health("mlplatform.v1.Predictor") == NOT_SERVING
        v2_stub = v2_grpc.GRPCInferenceServiceStub(predictor.channel)
        assert not v2_stub.ServerReady(v2.ServerReadyRequest(), timeout=5).ready
        stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
        request = predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]}))
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "not loaded yet" in caught.value.details()

        register_identity(registry.tracking_uri, "late_model")  # the alias now resolves
        predictor.wait_until_serving()
        assert column_to_series(stub.Predict(request, timeout=10).predictions, 1)[0] == (
            pytest.approx(1.0)
        )
        assert v2_stub.ServerReady(v2.ServerReadyRequest(), timeout=5).ready
    finally:
        predictor.stop()


def test_alias_move_swaps_versions_without_failing_a_request(
    background_loop: BackgroundLoop, registry: Registry, store: Store
) -> None:
    first = register_identity(registry.tracking_uri, "reloading", offset=0.0)
    predictor = start_test_predictor(
        background_loop, "reloading", registry.tracking_uri, store=store, reload_interval_s=0.1
    )
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]})))
    answers: list[tuple[str, float]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            try:
                response = stub.Predict(request, timeout=10)
            except grpc.RpcError as error:
                failures.append(error)
            else:
                answers.append(
                    (response.model_version, response.predictions.double_values.values[0])
                )

    callers = [threading.Thread(target=keep_calling, daemon=True) for _ in range(4)]
    try:
        for caller in callers:
            caller.start()
        wait_until(lambda: len(answers) >= 20, what="answers from version 1")
        second = register_identity(registry.tracking_uri, "reloading", offset=1000.0, alias=None)
        set_alias(registry.tracking_uri, "reloading", second)
        wait_until(
            lambda: sum(version == second for version, _ in answers) >= 20,
            what="answers from version 2",
        )
    finally:
        stop.set()
        for caller in callers:
            caller.join(10)
        predictor.stop()
    assert failures == []
    expected = {first: 1.0, second: 1001.0}
    for version, prediction in answers:
        assert prediction == pytest.approx(expected[version])  # each answer from one version
    seen = Counter(version for version, _ in answers)
    assert set(seen) == {first, second}
    # Once version 2 answered, version 1 never answered again: the swap is one-way and atomic.
    first_new = next(i for i, (version, _) in enumerate(answers) if version == second)
    late_old = [i for i, (version, _) in enumerate(answers[first_new:]) if version == first]
    assert len(late_old) <= len(callers)  # at most the calls already in flight at the swap
    history = store.list_serving("reloading")
    assert [span.version for span in history] == [second, first]
    assert history[0].ended_at is None and history[1].ended_at is not None
    assert history[1].alias == "production"


def failed_loads(predictor: PredictorUnderTest) -> float:
    registry = predictor.running.metrics.registry
    sample = registry.get_sample_value("mlp_predictor_model_loads_total", {"outcome": "failed"})
    return sample or 0.0


def test_a_version_that_fails_its_warm_up_is_refused_and_a_later_good_one_is_served(
    background_loop: BackgroundLoop,
    registry: Registry,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The alias moves to a version that raises on its own input example: the old version keeps
    answering, the refusal is logged and counted, and the next good version is picked up."""
    caplog.set_level(logging.WARNING, logger="mlplatform.predictor.reload")
    first = register_identity(registry.tracking_uri, "warm_up_fails", offset=0.0)
    predictor = start_test_predictor(
        background_loop, "warm_up_fails", registry.tracking_uri, store=store, reload_interval_s=0.1
    )
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]})))

    def answer() -> tuple[str, float]:
        response = stub.Predict(request, timeout=10)
        return response.model_version, response.predictions.double_values.values[0]

    try:
        assert answer() == (first, pytest.approx(1.0))
        assert failed_loads(predictor) == 0
        # The marker value makes the model raise: this version fails on its own example.
        broken = register_identity(
            registry.tracking_uri,
            "warm_up_fails",
            offset=1000.0,
            alias=None,
            input_example=pd.DataFrame({"x": [MARKER_FAIL]}),
        )
        set_alias(registry.tracking_uri, "warm_up_fails", broken)
        wait_until(lambda: failed_loads(predictor) >= 1, what="the refused load to be counted")
        assert answer() == (first, pytest.approx(1.0))
        assert predictor.running.slot.require().version == first
        assert predictor.health("mlplatform.v1.Predictor") == SERVING
        refusals = [
            record.getMessage()
            for record in caplog.records
            if record.getMessage().startswith("model not (re)loaded")
        ]
        assert refusals, "the refused version is not logged"
        assert f"(version {broken})" in refusals[0]
        assert "fails on its own input example" in refusals[0]

        good = register_identity(registry.tracking_uri, "warm_up_fails", offset=2000.0, alias=None)
        set_alias(registry.tracking_uri, "warm_up_fails", good)
        wait_until(lambda: answer()[0] == good, what="the later good version to be served")
        assert answer() == (good, pytest.approx(2001.0))
    finally:
        predictor.stop()
    # Warm-up failures are deterministic: the broken version was tried once, not at every poll.
    assert failed_loads(predictor) == 1
    assert [span.version for span in store.list_serving("warm_up_fails")] == [good, first]
