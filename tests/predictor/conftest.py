"""Fixtures of the predictor tests: a real MLflow registry with registered models, a background
event loop for in-process grpc.aio servers, and a shared predictor of `cancer_rf`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry, build_registry

from mlplatform.common.store import Store, open_store


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build_registry(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def cancer_predictor(
    background_loop: BackgroundLoop, registry: Registry, session_store: Store
) -> Iterator[PredictorUnderTest]:
    """One predictor of `cancer_rf` shared by the tests that only read from it."""
    predictor = start_test_predictor(
        background_loop,
        "cancer_rf",
        registry.tracking_uri,
        store=session_store,
        max_request_rows=50,
    )
    yield predictor
    predictor.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()
