"""`register_model`: the winner into the MLflow Model Registry, alias pointed at it."""

from __future__ import annotations

from mlplatform.trainer.baseline import store_baseline
from mlplatform.trainer.steps.base import Findings, PipelineContext, StepFailure, step
from mlplatform.trainer.steps.train import main_metric
from mlplatform.trainer.tracking import PIPELINE_ID_TAG
from mlplatform.v1 import pipeline_pb2

DEFAULT_ALIAS = "production"


@step("register_model")
def register_model(spec: pipeline_pb2.RegisterModel, context: PipelineContext) -> Findings:
    training = context.training
    if training is None or training.model_uri is None:
        raise StepFailure("register_model needs a train_model step before it")
    metric = main_metric(context.config)
    value = training.metric_value
    if spec.HasField("min_metric") and value is not None:
        # The bar is a floor for scores and a ceiling for errors (MAE, RMSE, ...).
        below_bar = value < spec.min_metric if metric.greater_is_better else value > spec.min_metric
        if below_bar:
            relation = "below" if metric.greater_is_better else "above"
            raise StepFailure(
                f"{metric.name} {value:.4f} of {training.best_model_name} is {relation} "
                f"min_metric {spec.min_metric}; the model was not registered"
            )
    tags = {
        PIPELINE_ID_TAG: context.pipeline_id,
        "mlp.mlflow_run_id": context.tracking.parent_run_id or "",
        "mlp.data_digest": context.data_digest or "",
        "mlp.best_model": training.best_model_name,
        "mlp.problem_type": pipeline_pb2.ProblemType.Name(context.config.problem_type),
        f"mlp.metric.{metric.name}": "" if value is None else f"{value:.6g}",
    }
    registered = context.tracking.register(
        training.model_uri, context.config.model_name, spec.alias or DEFAULT_ALIAS, tags
    )
    context.registered = registered
    return {
        "model_name": registered.name,
        "version": registered.version,
        "alias": registered.alias,
        "baseline": store_baseline(context),
    }
