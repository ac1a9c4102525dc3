"""The baseline of a model the trainer registers, stored beside it for monitoring.

Reference features are a seeded sample of the training data; the hold-out is the one PyCaret
kept aside at setup, scored by the registered pipeline (the served model, so its predictions
are the right reference for prediction drift); the hold-out metrics are PyCaret's, measured
before the model was refitted on all the data. A failure here is logged and reported in the
step's findings, not raised: the model is registered already, and `mlp monitor baseline`
can store its baseline later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlplatform.common.monitoring import quality
from mlplatform.common.monitoring.baseline import build_baseline, log_baseline, pycaret_metrics
from mlplatform.v1 import pipeline_pb2

if TYPE_CHECKING:  # steps import this module: a runtime import would be circular
    from mlplatform.trainer.steps.base import PipelineContext

logger = logging.getLogger(__name__)


def store_baseline(context: PipelineContext) -> str:
    """Log the registered model's baseline on the pipeline's MLflow run; returns what
    happened, for the step's findings."""
    training, config = context.training, context.config
    run_id = context.tracking.parent_run_id
    if training is None or context.data is None or run_id is None:
        return "skipped: no training data or run"
    try:
        holdout_features, holdout_labels = training.session.holdout_features_and_target()
        regression = config.problem_type == pipeline_pb2.PROBLEM_TYPE_REGRESSION
        baseline = build_baseline(
            quality.REGRESSION if regression else quality.CLASSIFICATION,
            config.target,
            context.data.drop(columns=[config.target]),
            holdout_features,
            holdout_labels,
            training.pipeline.predict,
            holdout_metrics=pycaret_metrics(training.holdout_metrics),
        )
        log_baseline(context.tracking.client, run_id, baseline)
    except Exception as error:
        logger.exception("pipeline %s: storing the model's baseline failed", context.pipeline_id)
        return f"failed ({type(error).__name__}); store it with mlp monitor baseline"
    return f"stored ({len(baseline.features)} sample rows, {len(baseline.holdout)} hold-out rows)"
