"""Process settings, read from `MLP_*` environment variables (and `MLFLOW_TRACKING_URI`).

Defaults make the local stack work with no configuration: a RabbitMQ on localhost,
an embedded SQLite store and an MLflow store under the local data folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.client.data_roots import KAGGLE_PREFIX, DataRoots
from mlplatform.client.messaging import WorkQueue

DEFAULT_DATA_DIR = Path.home() / ".mlplatform"
#: The project's examples, as the demo names them: under the working directory (a checkout,
#: or /app in the image).
EXAMPLES_DIR = Path("examples")


class Settings(BaseSettings):
    """Settings shared by every service and the CLI."""

    model_config = SettingsConfigDict(env_prefix="MLP_", extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Local data folder.")
    broker_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/%2F", description="RabbitMQ URL."
    )
    store_uri: str = Field(
        default="",
        description="Prediction and run store: sqlite:///PATH or mongodb://...; "
        "default: store.db in the data folder.",
    )
    pipelines_queue: str = Field(default="mlp.pipelines", description="Work queue of the trainers.")
    batches_queue: str = Field(default="mlp.batches", description="Work queue of the inferers.")
    queue_wait_ms: int = Field(
        default=10_000,
        ge=100,
        description="How long a deferred or retried message waits before it comes back.",
    )
    data_roots: str = Field(
        default="",
        description="Comma-separated directories and URI prefixes pipelines may read; "
        "default: the data folder, ./examples and kaggle:. '*' allows everything.",
    )
    max_data_bytes: int = Field(
        default=2 * 1024**3,
        ge=1,
        description="Largest data file a pipeline may load (and largest zip member, unpacked).",
    )
    max_zip_ratio: float = Field(
        default=100.0,
        gt=1,
        description="Largest unpacked-to-packed size ratio of a zip member (zip bombs).",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLP_MLFLOW_TRACKING_URI"),
        description="MLflow tracking server or store; default: mlflow.db (SQLite) in the data "
        "folder.",
    )

    @property
    def resolved_store_uri(self) -> str:
        """The store URI, defaulting to a SQLite file in the data folder."""
        return self.store_uri or f"sqlite:///{self.data_dir / 'store.db'}"

    @property
    def resolved_data_roots(self) -> DataRoots:
        """The roots pipelines may read: MLP_DATA_ROOTS, else the data folder, the project's
        examples and Kaggle."""
        if self.data_roots.strip():
            return DataRoots.parse(self.data_roots)
        return DataRoots.of([self.data_dir, EXAMPLES_DIR, KAGGLE_PREFIX])

    @property
    def pipelines_work_queue(self) -> WorkQueue:
        """The trainers' queue (with its dead-letter and wait queues)."""
        return WorkQueue(self.pipelines_queue, wait_ms=self.queue_wait_ms)

    @property
    def batches_work_queue(self) -> WorkQueue:
        """The inferers' queue (with its dead-letter and wait queues)."""
        return WorkQueue(self.batches_queue, wait_ms=self.queue_wait_ms)

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to a SQLite store in the data folder."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
