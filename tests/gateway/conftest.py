"""Fixtures of the gateway tests: a real MLflow registry, real predictors (in-process, on the
predictor tests' background loop) and real gateways (`mlp gateway` processes) on free loopback
ports.

Models: `credit_fraud` (a small random forest on examples/data/credit_fraud_sample.csv, so the
OpenAPI examples, written for that model, can be posted as they are) and `identity` (predicts
`x`; sleeps on negative `x`, fails on 666: see tests/predictor/predictor_model_behaviours.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# The predictor tests' helpers (a folder of plain modules, not a package).
sys.path.insert(0, str(TESTS / "predictor"))

from gateway_data import credit_fraud_frame  # noqa: E402
from gateway_harness import GatewayUnderTest, running_gateway  # noqa: E402
from predictor_harness import (  # noqa: E402
    BackgroundLoop,
    PredictorUnderTest,
    start_test_predictor,
)
from predictor_registry import log_and_register, open_registry, register_identity  # noqa: E402


@pytest.fixture(scope="session")
def gateway_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh MLflow store with `credit_fraud` and `identity` registered; its tracking URI."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tracking_uri = open_registry(tmp_path_factory.mktemp("gateway-mlflow"))
    data = credit_fraud_frame()
    features = data.drop(columns="Class")
    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1)
    ).fit(features, data["Class"])
    log_and_register(tracking_uri, forest, features, "credit_fraud")
    register_identity(tracking_uri, "identity")
    return tracking_uri


@pytest.fixture(scope="session")
def gateway_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def credit_predictor(
    gateway_loop: BackgroundLoop, gateway_registry: str
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        gateway_loop, "credit_fraud", gateway_registry, log_predictions=False, metrics_port=-1
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def identity_predictor(
    gateway_loop: BackgroundLoop, gateway_registry: str
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        gateway_loop, "identity", gateway_registry, log_predictions=False, metrics_port=-1
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def gateway_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-logs")


@pytest.fixture(scope="session")
def gateway(credit_predictor: PredictorUnderTest, gateway_logs: Path) -> Iterator[GatewayUnderTest]:
    """The gateway most tests use: in front of the `credit_fraud` predictor, auth off."""
    with running_gateway(credit_predictor.address, gateway_logs) as running:
        yield running


@pytest.fixture(scope="session")
def identity_gateway(
    identity_predictor: PredictorUnderTest, gateway_logs: Path
) -> Iterator[GatewayUnderTest]:
    """In front of the `identity` predictor with a 0.5 s request deadline."""
    with running_gateway(
        identity_predictor.address, gateway_logs, "--request-timeout", "0.5"
    ) as running:
        yield running
