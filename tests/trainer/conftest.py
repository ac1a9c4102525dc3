"""Trainer fixtures: a real MLflow store (SQLite), a real store, the real RabbitMQ with
queues of the test's own, and small data shaped like the example's."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplatform.client import messaging
from mlplatform.common.store import Store, open_store
from tests.support.queues import temporary_work_queue

REPO = Path(__file__).resolve().parents[2]


def _sample_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_credit_fraud_sample", REPO / "examples" / "make_credit_fraud_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fraud_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 rows like examples/data/credit_fraud_sample.csv (36 frauds): quick to train."""
    path = tmp_path_factory.mktemp("data") / "fraud.csv"
    _sample_module().make_sample(1200).to_csv(path, index=False)
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def work_queue() -> Iterator[messaging.WorkQueue]:
    """Queues of this test only (deleted afterwards), with a short wait for deferrals."""
    with temporary_work_queue("pipelines") as queue:
        yield queue


def classification_pipeline(
    data_path: Path,
    *,
    estimators: tuple[str, ...] = ("dt", "lr"),
    ensemble: bool = False,
    register: dict[str, Any] | None = None,
    model_name: str = "fraud",
    extra_features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The example's shape with small settings (fold 2, cheap estimators)."""
    steps: list[dict[str, Any]] = [
        {"load_data_from_file": {"path": str(data_path)}},
        {"validate_data": {}},
        {
            "train_model": {
                "feature_engineering_params": {"session_id": 7, **(extra_features or {})},
                "modeling_params": {
                    "estimator_list": list(estimators),
                    "fold": 2,
                    "n_select": 2 if ensemble else 1,
                    "ensemble": ensemble,
                },
            }
        },
    ]
    if register is not None:
        steps.append({"register_model": register})
    return {
        "pipeline": [{"MLSteps": steps}],
        "experiment_config": {
            "experiment_name": f"test-{model_name}",
            "model_name": model_name,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
