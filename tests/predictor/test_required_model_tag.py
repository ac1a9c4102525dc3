"""`--require-model-tag`: the predictor serves only versions that carry the tag, from a real
MLflow registry; an untagged version is refused with a reason naming tag, model and version."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from grpc_health.v1 import health_pb2
from mlflow import MlflowClient
from predictor_harness import BackgroundLoop, start_test_predictor, wait_until
from predictor_registry import Registry, register_identity

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.model_loading import ModelLoadError, ModelReference, load_model
from mlplatform.common.model_tags import TRAINER_TAG, ModelTagRequirement
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _tag(tracking_uri: str, name: str, version: str, key: str, value: str) -> None:
    MlflowClient(tracking_uri=tracking_uri).set_model_version_tag(name, version, key, value)


def test_requirement_parses_key_and_key_value() -> None:
    assert ModelTagRequirement.parse("mlp.pipeline_id") == ModelTagRequirement("mlp.pipeline_id")
    assert ModelTagRequirement.parse(" a=b=c ") == ModelTagRequirement("a", "b=c")
    assert ModelTagRequirement.parse("a=") == ModelTagRequirement("a", "")
    with pytest.raises(ValueError, match="expected KEY or KEY=VALUE"):
        ModelTagRequirement.parse("=x")


def test_the_loader_refuses_an_untagged_version_before_downloading_it(registry: Registry) -> None:
    version = register_identity(registry.tracking_uri, "tag_loader", alias=None)
    reference = ModelReference("tag_loader", version=version)
    with pytest.raises(ModelLoadError) as refused:
        load_model(reference, registry.tracking_uri, required_tag=ModelTagRequirement(TRAINER_TAG))
    message = str(refused.value)
    assert message.startswith(f"tag_loader/{version} (version {version}): ")
    assert f"has no tag '{TRAINER_TAG}', which --require-model-tag {TRAINER_TAG}" in message
    _tag(registry.tracking_uri, "tag_loader", version, "source", "notebook")
    with pytest.raises(ModelLoadError, match=r"tag 'source' is 'notebook', not 'trainer'"):
        load_model(
            reference, registry.tracking_uri, required_tag=ModelTagRequirement("source", "trainer")
        )
    _tag(registry.tracking_uri, "tag_loader", version, TRAINER_TAG, "pipeline-1")
    loaded = load_model(
        reference, registry.tracking_uri, required_tag=ModelTagRequirement(TRAINER_TAG)
    )
    assert loaded.version == version


def test_predictor_is_not_serving_while_no_version_carries_the_tag(
    background_loop: BackgroundLoop, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlplatform.predictor.reload")
    register_identity(registry.tracking_uri, "tag_untagged")
    predictor = start_test_predictor(
        background_loop,
        "tag_untagged",
        registry.tracking_uri,
        wait=False,
        log_predictions=False,
        require_model_tag=TRAINER_TAG,
    )
    try:
        wait_until(
            lambda: "has no tag 'mlp.pipeline_id'" in caplog.text, 30, what="the refusal logged"
        )
        assert predictor.health() == NOT_SERVING
        assert predictor.running.slot.current is None
        assert "tag_untagged@production (version 1)" in caplog.text
    finally:
        predictor.stop()


def test_hot_reload_keeps_the_tagged_version_when_the_alias_moves_to_an_untagged_one(
    background_loop: BackgroundLoop, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlplatform.predictor.reload")
    first = register_identity(registry.tracking_uri, "tag_reload", offset=0.0)
    _tag(registry.tracking_uri, "tag_reload", first, TRAINER_TAG, "pipeline-1")
    predictor = start_test_predictor(
        background_loop,
        "tag_reload",
        registry.tracking_uri,
        log_predictions=False,
        require_model_tag=TRAINER_TAG,
    )
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(pd.DataFrame({"x": [1.0]})))
    try:
        assert stub.Predict(request, timeout=10).model_version == first
        untagged = register_identity(registry.tracking_uri, "tag_reload", offset=100.0)
        wait_until(
            lambda: f"tag_reload@production (version {untagged})" in caplog.text,
            30,
            what="the untagged version refused",
        )
        response = stub.Predict(request, timeout=10)
        assert response.model_version == first
        assert response.predictions.double_values.values[0] == pytest.approx(1.0)
        tagged = register_identity(registry.tracking_uri, "tag_reload", offset=200.0)
        _tag(registry.tracking_uri, "tag_reload", tagged, TRAINER_TAG, "pipeline-3")
        wait_until(
            lambda: stub.Predict(request, timeout=10).model_version == tagged,
            30,
            what="the next tagged version served",
        )
    finally:
        predictor.stop()


def test_a_malformed_requirement_stops_the_commands_with_exit_2() -> None:
    from typer.testing import CliRunner

    from mlplatform.cli.main import app

    for command in (["predictor", "--model", "m"], ["inferer"]):
        result = CliRunner().invoke(app, [*command, "--require-model-tag", "=x"])
        assert result.exit_code == 2, result.output
        assert "require-model-tag '=x': expected KEY or KEY=VALUE" in result.output
