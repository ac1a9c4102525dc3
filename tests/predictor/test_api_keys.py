"""`mlp predictor` with MLP_API_KEYS set: the real server refuses Predictor calls without a
key, serves the client that presents one, and keeps health checking open."""

from __future__ import annotations

import grpc
import pytest
from predictor_harness import BackgroundLoop, start_test_predictor
from predictor_registry import Registry

from mlplatform.client.predictor_client import PredictorClient, PredictorError
from mlplatform.common.store import Store


def test_predictor_with_keys_needs_one(
    background_loop: BackgroundLoop,
    registry: Registry,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLP_API_KEYS", "first-key, second-key")
    predictor = start_test_predictor(
        background_loop, "cancer_rf", registry.tracking_uri, store=store
    )  # waits on the health service, which needs no key
    rows = registry.cancer_features.head(2)
    try:
        with (
            PredictorClient(predictor.address) as anonymous,
            pytest.raises(PredictorError) as refused,
        ):
            anonymous.predict(rows)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
        with (
            PredictorClient(predictor.address, api_key="wrong") as wrong,
            pytest.raises(PredictorError) as refused_again,
        ):
            wrong.model_info()
        assert refused_again.value.code == grpc.StatusCode.UNAUTHENTICATED
        with PredictorClient(predictor.address, api_key="second-key") as client:
            assert len(client.predict(rows).predictions) == 2
            assert client.model_info().model_name == "cancer_rf"
    finally:
        predictor.stop()
