"""What else the predictor's port and metrics port serve: health, reflection, Prometheus."""

from __future__ import annotations

import gc
import urllib.request

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from predictor_harness import PredictorUnderTest
from predictor_registry import Registry
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc


def test_health_reports_serving_for_the_server_and_each_service(
    cancer_predictor: PredictorUnderTest,
) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "mlplatform.v1.Predictor", "inference.GRPCInferenceService"):
        assert cancer_predictor.health(service) == serving


def test_the_served_model_is_frozen_out_of_garbage_collection(
    cancer_predictor: PredictorUnderTest,
) -> None:
    """Full collections skip the served model (see mlplatform.common.heap): it is in none of
    the generations the collector walks."""
    model = cancer_predictor.running.slot.require()
    assert gc.get_freeze_count() > 0
    assert not any(item is model.estimator for item in gc.get_objects())


def test_reflection_lists_every_service(cancer_predictor: PredictorUnderTest) -> None:
    database = ProtoReflectionDescriptorDatabase(cancer_predictor.channel)
    assert set(database.get_services()) == {
        "mlplatform.v1.Predictor",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    predict = database.FindFileContainingSymbol("mlplatform.v1.Predictor")
    assert predict.name == "mlplatform/v1/predictor.proto"


def test_metrics_are_scraped_over_http_with_model_version_and_status_labels(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    stub = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(registry.cancer_features.head(2))
    )
    stub.Predict(request, timeout=10)
    refused = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]})))
    with pytest.raises(grpc.RpcError):
        stub.Predict(refused, timeout=10)
    port = cancer_predictor.running.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    model = {"model_name": "cancer_rf", "model_version": "1"}
    ok = {"api": "Predict", "status": "OK", **model}
    invalid = {"api": "Predict", "status": "INVALID_ARGUMENT", **model}
    assert value("mlp_predictor_requests_total", **ok) >= 1
    assert value("mlp_predictor_requests_total", **invalid) >= 1
    assert value("mlp_predictor_request_latency_seconds_count", **ok) >= 1
    assert value("mlp_predictor_request_latency_seconds_bucket", le="+Inf", **ok) >= 1
    assert value("mlp_predictor_batch_rows_bucket", le="2.0", **model) >= 1
    assert value("mlp_predictor_batch_requests_count", **model) >= 1
    assert value("mlp_predictor_queue_wait_seconds_count") >= 1
    assert value("mlp_predictor_log_dropped_rows_total") is not None
    # cancer_rf (a scaler and a forest) compiles: ONNX Runtime serves it.
    assert value("mlp_predictor_model_loaded", backend="onnxruntime", **model) == 1.0


def test_metrics_keep_one_child_per_label_set_and_count_each_call() -> None:
    """PredictorMetrics alone, in its own registry (no server needed for its arithmetic)."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from mlplatform.predictor.metrics import PredictorMetrics

    registry = CollectorRegistry()
    metrics = PredictorMetrics(registry)
    for seconds in (0.004, 0.006):
        metrics.request_answered("Predict", "m", "1", "OK", seconds)
    metrics.request_answered("Predict", "m", "1", "INVALID_ARGUMENT", 0.001)
    metrics.request_answered("Predict", "m", "2", "OK", 0.002)
    for version, rows in (("1", 3), ("1", 5), ("2", 8)):
        metrics.model_called(SimpleNamespace(name="m", version=version), rows, 2, 0.003)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    ok_1 = {"api": "Predict", "model_name": "m", "model_version": "1", "status": "OK"}
    assert sample("mlp_predictor_requests_total", **ok_1) == 2
    assert sample("mlp_predictor_request_latency_seconds_sum", **ok_1) == pytest.approx(0.010)
    assert sample("mlp_predictor_requests_total", **{**ok_1, "status": "INVALID_ARGUMENT"}) == 1
    assert sample("mlp_predictor_requests_total", **{**ok_1, "model_version": "2"}) == 1
    assert sample("mlp_predictor_batch_rows_sum", model_name="m", model_version="1") == 8
    assert sample("mlp_predictor_batch_rows_count", model_name="m", model_version="2") == 1
    assert sample("mlp_predictor_batch_requests_sum", model_name="m", model_version="1") == 4
    assert sample("mlp_predictor_model_seconds_count", model_name="m", model_version="1") == 2
