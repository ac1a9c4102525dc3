"""What a new user does with the stack, as functions: train, wait for serving, predict
over gRPC and REST, run a batch. `mlp demo` prints them; the end-to-end test asserts them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd

from mlplatform.client.batches import submit_batch
from mlplatform.client.predictor_client import PredictionResult, PredictorClient, PredictorError
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.settings import Settings
from mlplatform.common.store import BatchRecord, BatchStatus, Store
from mlplatform.v1 import messages_pb2, pipeline_pb2


@dataclass(frozen=True)
class TrainingOutcome:
    pipeline_id: str
    events: list[messages_pb2.PipelineEvent]

    @property
    def succeeded(self) -> bool:
        return bool(self.events) and self.events[-1].status == messages_pb2.RUN_STATUS_SUCCEEDED


def train(
    definition: pipeline_pb2.PipelineDefinition,
    settings: Settings,
    timeout: float = 1800,
    on_event: Any = None,
) -> TrainingOutcome:
    """Submits a pipeline through RabbitMQ and follows it to its end."""
    submission = submit_pipeline(
        definition,
        broker_url=settings.broker_url,
        follow=True,
        timeout=timeout,
        queue=settings.pipelines_work_queue,
    )
    assert submission.events is not None
    events = []
    for event in submission.events:
        events.append(event)
        if on_event is not None:
            on_event(event)
    return TrainingOutcome(submission.pipeline_id, events)


def wait_until_serving(address: str, version: str | None = None, timeout: float = 120) -> str:
    """Waits until the predictor serves a model (at `version`, when given); returns its version."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    with PredictorClient(address, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                info = client.model_info()
                if version is None or info.model_version == version:
                    return info.model_version
                last_problem = f"serving version {info.model_version}, waiting for {version}"
            except PredictorError as error:
                last_problem = str(error)
            time.sleep(0.5)
    raise TimeoutError(
        f"the predictor at {address} did not serve in {timeout:.0f}s: {last_problem}"
    )


def predict_grpc(address: str, rows: pd.DataFrame) -> PredictionResult:
    with PredictorClient(address) as client:
        return client.predict(rows, include_probabilities=True)


def predict_rest(gateway_url: str, rows: pd.DataFrame) -> dict[str, Any]:
    """POST /predict with the rows as records; returns the JSON answer."""
    records = json.loads(rows.to_json(orient="records"))
    response = httpx.post(
        f"{gateway_url}/predict",
        json={"records": records, "include_probabilities": True},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def run_batch(
    rows: pd.DataFrame, model: str, settings: Settings, store: Store, timeout: float = 300
) -> BatchRecord:
    """Publishes rows as a batch and waits until the inferers are done with it."""
    submission = submit_batch(
        rows,
        model,
        broker_url=settings.broker_url,
        rows_per_message=max(1, len(rows) // 4),
        queue=settings.batches_work_queue,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            batch = store.get_batch(submission.batch_id)
            if batch.status in (BatchStatus.SUCCEEDED, BatchStatus.FAILED):
                return batch
        except KeyError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"batch {submission.batch_id} did not finish within {timeout:.0f}s")
