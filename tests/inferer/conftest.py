"""Inferer fixtures: a real MLflow registry with a small model, the real RabbitMQ with queues
of the test's own, a real SQLite store, and inferer workers in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.client import messaging
from mlplatform.common.consumer import Delivery, Outcome, QueueWorker
from mlplatform.common.model_tags import ModelTagRequirement
from mlplatform.common.settings import get_settings
from mlplatform.common.store import Store, open_store
from mlplatform.inferer.model_cache import ModelCache
from mlplatform.inferer.worker import InfererHandler
from tests.support.mlflow_experiments import experiment_id
from tests.support.queues import BROKER_URL, temporary_work_queue
from tests.trainer.workers import wait_until


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    features: pd.DataFrame
    model: object


def register(tracking_uri: str, estimator: object, features: pd.DataFrame, name: str) -> str:
    """Logs and registers `estimator` the way the trainer does; points `production` at it."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id(tracking_uri, "inferer-tests")):
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=infer_signature(features, estimator.predict(features.head(5))),
            serialization_format="cloudpickle",
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, "production", version)
    return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("registry")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.create_experiment("inferer-tests", artifact_location=(root / "artifacts").as_uri())
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [name.replace(" ", "_") for name in features.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, target)
    register(tracking_uri, model, features, "cancer")
    return Registry(tracking_uri, features, model)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def batch_queue() -> Iterator[messaging.WorkQueue]:
    with temporary_work_queue("batches") as queue:
        yield queue


@pytest.fixture
def cli_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, batch_queue: messaging.WorkQueue
) -> Iterator[str]:
    """The CLI's settings pointed at this test's store and queue."""
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLP_STORE_URI", store_uri)
    monkeypatch.setenv("MLP_BATCHES_QUEUE", batch_queue.name)
    monkeypatch.setenv("MLP_QUEUE_WAIT_MS", str(batch_queue.wait_ms))
    monkeypatch.setenv("MLP_BROKER_URL", BROKER_URL)
    # The in-process inferer's model download would draw MLflow's own bar into the output.
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    get_settings.cache_clear()
    yield store_uri
    get_settings.cache_clear()


@contextmanager
def running_inferer(
    queue: messaging.WorkQueue,
    store: Store,
    tracking_uri: str,
    name: str = "inferer-a",
    handled: list[str] | None = None,
    chunk_rows: int = 256,
    required_tag: ModelTagRequirement | None = None,
    models: ModelCache | None = None,
) -> Iterator[QueueWorker]:
    """An inferer worker in a thread; `handled` collects the worker's name per message."""
    inferer = InfererHandler(
        models or ModelCache(tracking_uri, recheck_seconds=0.2, required_tag=required_tag),
        store,
        chunk_rows=chunk_rows,
    )
    handler: Callable[[Delivery], Outcome] = inferer
    if handled is not None:
        inner = handler

        def handler(delivery: Delivery) -> Outcome:
            handled.append(name)
            return inner(delivery)

    worker = QueueWorker(
        queue, handler, store, BROKER_URL, name=name, prefetch=3
    )  # as `mlp inferer`
    thread = threading.Thread(target=worker.run, name=name, daemon=True)
    thread.start()
    try:
        wait_until(worker.consuming.is_set, 30, f"{name} to start consuming")
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=60)
        inferer.close()
        assert not thread.is_alive(), f"{name} did not stop"
