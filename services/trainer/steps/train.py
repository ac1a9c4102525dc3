"""`train_model`: PyCaret setup, compare, optional tune and ensembles, pick the best, log it."""

from __future__ import annotations

from typing import Any

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.trainer.pycaret_adapter import TrainingSession
from mlplatform.trainer.steps.base import (
    Findings,
    PipelineContext,
    StepFailure,
    TrainingOutcome,
    step,
)
from mlplatform.trainer.steps.validate_data import check_training_data
from mlplatform.v1 import pipeline_pb2

#: Rows of training data kept as the logged model's input example.
INPUT_EXAMPLE_ROWS = 5


def main_metric(config: pipeline_pb2.ExperimentConfig) -> catalog.Metric:
    """The metric that ranks models (PyCaret's default when the pipeline names none)."""
    name = config.main_metric or catalog.DEFAULT_METRIC[config.problem_type]
    metric = catalog.find_metric(config.problem_type, name)
    if metric is None:  # validation rejects this before a run starts
        raise StepFailure(f"'{name}' is not a metric for this problem type")
    return metric


def _best(
    candidates: list[tuple[str, Any, float | None]], metric: catalog.Metric
) -> tuple[str, Any, float | None]:
    scored = [candidate for candidate in candidates if candidate[2] is not None]
    if not scored:
        return candidates[0]
    pick = max if metric.greater_is_better else min
    return pick(scored, key=lambda candidate: candidate[2])


@step("train_model")
def train_model(spec: pipeline_pb2.TrainModel, context: PipelineContext) -> Findings:
    config = context.config
    modeling = spec.modeling_params
    fold = modeling.fold or 10
    check_training_data(context, min_rows=2 * fold, fold=fold)
    assert context.data is not None
    metric = main_metric(config)
    session = TrainingSession(config.problem_type)
    setup_params = session.setup(context.data, config.target, spec.feature_engineering_params, fold)
    evaluated_count = 0

    def record(stage: str) -> None:
        nonlocal evaluated_count
        for evaluated in session.drain_evaluated(stage):
            context.tracking.log_evaluated(evaluated)
            evaluated_count += 1

    selected = session.compare(
        list(modeling.estimator_list), modeling.n_select or 1, metric.display_name
    )
    record("compare")
    if modeling.tune:
        selected = [
            session.tune(model, modeling.tune_n_iter, metric.display_name) for model in selected
        ]
        record("tune")
    candidates = [
        (session.model_name(model), model, session.cv_score(model, metric.display_name))
        for model in selected
    ]
    if modeling.ensemble and len(selected) >= 2:
        for stage, build in (("blend", session.blend), ("stack", session.stack)):
            ensemble = build(selected, metric.display_name)
            record(stage)
            candidates.append(
                (
                    session.model_name(ensemble),
                    ensemble,
                    session.cv_score(ensemble, metric.display_name),
                )
            )
    best_name, best_model, best_score = _best(candidates, metric)
    holdout = session.holdout_metrics(best_model)
    final_model = session.finalize(best_model) if spec.finalize else best_model
    pipeline = session.export_pipeline(final_model)
    input_example = context.data.drop(columns=[config.target]).head(INPUT_EXAMPLE_ROWS)
    summary_metrics = {f"holdout_{name}": value for name, value in holdout.items()}
    if best_score is not None:
        summary_metrics[f"cv_{metric.display_name}"] = best_score
    context.tracking.log_summary(
        {**setup_params, "fold": fold, "estimator_list": ",".join(modeling.estimator_list)},
        summary_metrics,
    )
    context.tracking.set_tags({"mlp.best_model": best_name})
    model_uri = context.tracking.log_pipeline_model(pipeline, input_example)
    context.training = TrainingOutcome(
        session=session,
        best_model=final_model,
        best_model_name=best_name,
        metric_name=metric.name,
        metric_value=best_score,
        pipeline=pipeline,
        input_example=input_example,
        holdout_metrics=holdout,
        model_uri=model_uri,
    )
    return {
        "evaluated_models": evaluated_count,
        "candidates": {name: score for name, _, score in candidates},
        "best_model": best_name,
        "metric": metric.name,
        "cv_score": best_score,
        "holdout": holdout,
        "finalized": spec.finalize,
        "model_uri": model_uri,
    }
