"""Pointing an alias at a new version while another worker does the same, against a real
MLflow registry (SQLite). The clash is injected: a real race between two workers is too rare
to reproduce on demand, but the error is the one CI saw from MLflow's store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlplatform.trainer.tracking import PipelineTracking

CLASH = (
    "(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.workspace, "
    "registered_model_aliases.name, registered_model_aliases.alias"
)


class ClashingFirst:
    """Wraps the real client: the first `failures` alias writes fail with `error`."""

    def __init__(self, client: MlflowClient, failures: int, error: str) -> None:
        self._client = client
        self.failures = failures
        self.error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise mlflow.exceptions.MlflowException(self.error)
        self._client.set_registered_model_alias(name, alias, version)


@pytest.fixture
def tracking(tmp_path: Path) -> PipelineTracking:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model("fraud")
    run_id = client.create_run(client.create_experiment("alias")).info.run_id
    client.create_model_version("fraud", f"runs:/{run_id}/model", run_id=run_id)
    return PipelineTracking(uri, "alias-test", "pipeline-1")


def test_a_concurrent_alias_insert_is_retried_and_the_alias_set(
    tracking: PipelineTracking,
) -> None:
    real = tracking.client
    clashing = ClashingFirst(real, failures=2, error=CLASH)
    tracking.client = clashing  # type: ignore[assignment]
    tracking._set_alias("fraud", "production", "1")
    assert clashing.calls == 3
    assert str(real.get_model_version_by_alias("fraud", "production").version) == "1"


def test_other_registry_errors_are_not_retried(tracking: PipelineTracking) -> None:
    clashing = ClashingFirst(tracking.client, failures=1, error="permission denied")
    tracking.client = clashing  # type: ignore[assignment]
    with pytest.raises(mlflow.exceptions.MlflowException, match="permission denied"):
        tracking._set_alias("fraud", "production", "1")
    assert clashing.calls == 1
