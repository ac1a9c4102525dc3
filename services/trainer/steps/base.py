"""What steps share: the pipeline context they read and fill, and the step registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from google.protobuf.message import Message

from mlplatform.client.data_roots import DataRoots
from mlplatform.trainer.progress import StepProgress
from mlplatform.trainer.pycaret_adapter import TrainingSession
from mlplatform.trainer.tracking import PipelineTracking, RegisteredVersion
from mlplatform.v1 import pipeline_pb2

#: A step's findings: what it learned or decided, recorded with the run.
Findings = dict[str, Any]
StepHandler = Callable[[Any, "PipelineContext"], Findings]

STEP_HANDLERS: dict[str, StepHandler] = {}


class StepFailure(Exception):
    """A step could not do its work for a reason the user must fix (bad data, a model
    below the bar...). The run is marked failed with this message; it is not retried."""


@dataclass(frozen=True)
class DataLimits:
    """How much a pipeline may load (`MLP_MAX_DATA_BYTES`, `MLP_MAX_ZIP_RATIO`)."""

    max_bytes: int = 2 * 1024**3
    max_zip_ratio: float = 100.0


@dataclass
class TrainingOutcome:
    """What `train_model` leaves for `register_model`."""

    session: TrainingSession
    best_model: Any
    best_model_name: str
    metric_name: str
    metric_value: float | None
    pipeline: Any
    input_example: pd.DataFrame
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    #: The winner's hold-out score on the main metric, from before finalizing (a finalized
    #: model has seen the hold-out); what a champion is compared with.
    holdout_score: float | None = None


@dataclass
class PipelineContext:
    """The state a pipeline's steps share while it runs."""

    pipeline_id: str
    definition: pipeline_pb2.PipelineDefinition
    tracking: PipelineTracking
    data: pd.DataFrame | None = None
    data_source: str | None = None
    data_digest: str | None = None
    training: TrainingOutcome | None = None
    registered: RegisteredVersion | None = None
    #: Where data may come from, and how much of it (MLP_DATA_ROOTS, MLP_MAX_DATA_BYTES).
    data_roots: DataRoots = field(default_factory=DataRoots)
    data_limits: DataLimits = field(default_factory=DataLimits)
    #: Injected for tests and other sources: `(dataset, file_name, target_dir) -> path`.
    kaggle_downloader: Callable[[str, str, str], str] | None = None
    #: Where steps report phases and evaluated models as they go.
    progress: StepProgress = field(default_factory=lambda: StepProgress("", lambda _: None, 0.0))
    #: The champion/challenger decision of `register_model`, for the run record.
    promotion: dict[str, Any] | None = None

    @property
    def config(self) -> pipeline_pb2.ExperimentConfig:
        return self.definition.experiment_config


def step(name: str) -> Callable[[StepHandler], StepHandler]:
    """Registers a handler for the `MLStep` oneof field called `name`."""

    def add(handler: StepHandler) -> StepHandler:
        if name not in pipeline_pb2.MLStep.DESCRIPTOR.fields_by_name:
            raise ValueError(f"'{name}' is not a step of the MLStep contract")
        STEP_HANDLERS[name] = handler
        return handler

    return add


def run_step(kind: str, spec: Message, context: PipelineContext) -> Findings:
    """Runs the handler registered for `kind`."""
    handler = STEP_HANDLERS.get(kind)
    if handler is None:
        raise StepFailure(f"no handler is registered for step '{kind}'")
    return handler(spec, context)
