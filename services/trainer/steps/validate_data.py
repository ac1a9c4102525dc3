"""`validate_data`: checks the loaded data can be trained on, before minutes go into it."""

from __future__ import annotations

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.common.summaries import summarise_names
from mlplatform.trainer.steps.base import Findings, PipelineContext, StepFailure, step
from mlplatform.v1 import pipeline_pb2

DEFAULT_MIN_ROWS = 50


def check_training_data(context: PipelineContext, min_rows: int, fold: int) -> Findings:
    """Target present and usable, enough rows, enough members of each class for `fold`."""
    frame = context.data
    if frame is None:
        raise StepFailure("no data has been loaded")
    target = context.config.target
    if target not in frame.columns:
        raise StepFailure(
            f"target column '{target}' is not in the data; columns: "
            f"{summarise_names(frame.columns)}"
        )
    labels = frame[target]
    missing_targets = int(labels.isna().sum())
    with_missing = [str(column) for column in frame.columns if frame[column].isna().any()]
    findings: Findings = {
        "rows": len(frame),
        "features": len(frame.columns) - 1,
        "missing_target_values": missing_targets,
        "columns_with_missing_values": summarise_names(with_missing),
    }
    if missing_targets:
        raise StepFailure(f"target column '{target}' has {missing_targets} missing values")
    if len(frame) < min_rows:
        raise StepFailure(f"the data has {len(frame)} rows; at least {min_rows} are needed")
    if context.config.problem_type == catalog.CLASSIFICATION:
        counts = labels.value_counts()
        findings["class_counts"] = {str(label): int(count) for label, count in counts.items()}
        if len(counts) < 2:
            raise StepFailure(f"target column '{target}' has a single class; need at least two")
        # PyCaret keeps 30% for hold-out by default; each fold needs every class.
        smallest = str(counts.idxmin())
        if counts.min() < fold:
            raise StepFailure(
                f"class {smallest!r} of '{target}' has {int(counts.min())} rows; "
                f"{fold}-fold cross-validation needs at least {fold}"
            )
    elif labels.dtype.kind not in "iuf":
        raise StepFailure(f"regression target '{target}' must be numeric; it is {labels.dtype}")
    return findings


def pipeline_fold(definition: pipeline_pb2.PipelineDefinition) -> int:
    """The fold count of the pipeline's first train_model step (PyCaret's default 10)."""
    for stage in definition.pipeline:
        for item in stage.ml_steps:
            if item.HasField("train_model"):
                return item.train_model.modeling_params.fold or 10
    return 10


@step("validate_data")
def validate_data(spec: pipeline_pb2.ValidateData, context: PipelineContext) -> Findings:
    return check_training_data(
        context, spec.min_rows or DEFAULT_MIN_ROWS, pipeline_fold(context.definition)
    )
