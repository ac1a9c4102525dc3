"""`register_model`: the winner into the MLflow Model Registry; the alias moves to it when the
promotion policy says so (see promotion.py)."""

from __future__ import annotations

from mlplatform.trainer.baseline import store_baseline
from mlplatform.trainer.compiled_graph import log_compiled_graph
from mlplatform.trainer.promotion import decide
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
    model_name = context.config.model_name
    alias = spec.alias or DEFAULT_ALIAS
    tracking = context.tracking
    context.progress.phase("registering", f"scoring @{alias} of {model_name} against the new model")
    own = tracking.registered_for_pipeline(model_name)
    decision = decide(
        policy=spec.promote,
        client=tracking.client,
        model_name=model_name,
        alias=alias,
        metric=metric,
        challenger_score=training.holdout_score,
        session=training.session,
        own_version=None if own is None else str(own.version),
    )
    tags = {
        PIPELINE_ID_TAG: context.pipeline_id,
        "mlp.mlflow_run_id": tracking.parent_run_id or "",
        "mlp.data_digest": context.data_digest or "",
        "mlp.best_model": training.best_model_name,
        "mlp.problem_type": pipeline_pb2.ProblemType.Name(context.config.problem_type),
        f"mlp.metric.{metric.name}": "" if value is None else f"{value:.6g}",
        **decision.as_tags(),
    }
    registered = tracking.register(
        training.model_uri, model_name, alias if decision.promote else None, tags
    )
    tracking.set_tags(decision.as_tags())
    context.registered = registered
    context.promotion = {**decision.as_record(), "version": registered.version, "alias": alias}
    verdict = f"@{alias} -> v{registered.version}" if decision.promote else f"@{alias} unchanged"
    context.progress.phase(
        "registered", f"v{registered.version} registered; {verdict}: {decision.reason}"
    )
    return {
        "model_name": registered.name,
        "version": registered.version,
        "alias": registered.alias,
        "promotion": context.promotion,
        # After the baseline: the compile check runs on its sample.
        "baseline": store_baseline(context),
        "compiled": log_compiled_graph(
            tracking.client, tracking.tracking_uri, registered.name, registered.version
        ),
    }
