"""`train_model`: PyCaret setup, compare, optional tune and ensembles, pick the best, log it."""

from __future__ import annotations

import logging
import time
from typing import Any

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.trainer.plots import PLOTS_FOLDER, chosen_plots, log_model_plots
from mlplatform.trainer.progress import StepProgress
from mlplatform.trainer.pycaret_adapter import TrainingSession
from mlplatform.trainer.run_artifacts import log_dataset, log_leaderboard
from mlplatform.trainer.steps.base import (
    Findings,
    PipelineContext,
    StepFailure,
    TrainingOutcome,
    step,
)
from mlplatform.trainer.steps.validate_data import check_training_data
from mlplatform.v1 import pipeline_pb2

logger = logging.getLogger(__name__)

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


class _ModelCounter:
    """Turns PyCaret's "a model was cross-validated" into progress events, counted per stage."""

    def __init__(self, progress: StepProgress, session: TrainingSession, metric: catalog.Metric):
        self.progress = progress
        self.session = session
        self.metric = metric
        self.stage = "compare"
        self.index = 0
        self.total = 0

    def begin(self, stage: str, total: int = 0) -> None:
        self.stage, self.index, self.total = stage, 0, total

    def __call__(self, model: Any, scores: dict[str, float]) -> None:
        self.index += 1
        self.progress.model_evaluated(
            self.stage,
            self.session.model_name(model),
            self.session.model_id(model),
            self.index,
            max(self.total, self.index) if self.total else 0,
            self.metric.name,
            scores.get(self.metric.display_name),
        )


def _record_run_data(context: PipelineContext, session: TrainingSession) -> dict[str, Any]:
    """The leaderboard and the dataset input with its profile, on the parent run."""
    assert context.data is not None
    findings: dict[str, Any] = {}
    grid = session.leaderboard()
    if grid is not None:
        findings["leaderboard"] = log_leaderboard(context.tracking, grid)
    if context.data_source:
        context.tracking.set_tags({"mlp.data_source": context.data_source[:500]})
    try:
        log_dataset(
            context.tracking,
            context.data,
            context.config.target,
            context.data_source,
            context.data_digest,
            name=context.config.experiment_name,
        )
    except Exception as error:  # MLflow refusing a schema or source; the model still counts
        logger.warning("dataset input not logged", exc_info=True)
        reason = f"{type(error).__name__}: {error}"[:500]
        context.tracking.set_tags({"mlp.dataset_input_error": reason})
        findings["dataset_input_error"] = reason
    return findings


def _plot(
    context: PipelineContext,
    session: TrainingSession,
    best_model: Any,
    selected: list[Any],
) -> dict[str, Any]:
    """The registered model's plots, and the other selected models' when asked."""
    plots = chosen_plots(context.config)
    if not plots:
        return {"plots": [], "plots_skipped": {}}
    context.progress.phase("plotting", f"plotting {', '.join(plots)}")
    started = time.perf_counter()
    outcome = log_model_plots(session, best_model, plots, context.tracking)
    skipped = dict(outcome.skipped)
    if context.config.log_plots.all_selected:
        for rank, model in enumerate(selected, start=1):
            if model is best_model:
                continue
            folder = f"{PLOTS_FOLDER}/selected-{rank}-{session.model_id(model) or 'model'}"
            other = log_model_plots(session, model, plots, context.tracking, folder)
            outcome.logged.extend(other.logged)
            skipped.update({f"{folder}/{plot}": reason for plot, reason in other.skipped.items()})
    return {
        "plots": outcome.logged,
        "plots_skipped": skipped,
        "plots_seconds": round(time.perf_counter() - started, 3),
    }


@step("train_model")
def train_model(spec: pipeline_pb2.TrainModel, context: PipelineContext) -> Findings:
    config = context.config
    modeling = spec.modeling_params
    fold = modeling.fold or 10
    check_training_data(context, min_rows=2 * fold, fold=fold)
    assert context.data is not None
    metric = main_metric(config)
    session = TrainingSession(config.problem_type)
    progress = context.progress
    progress.phase("setup", f"PyCaret setup: {len(context.data)} rows, {fold} folds")
    setup_params = session.setup(context.data, config.target, spec.feature_engineering_params, fold)
    counter = _ModelCounter(progress, session, metric)
    session.on_evaluated(counter)
    evaluated_count = 0

    def record(stage: str) -> None:
        nonlocal evaluated_count
        for evaluated in session.drain_evaluated(stage):
            context.tracking.log_evaluated(evaluated)
            evaluated_count += 1

    estimators = list(modeling.estimator_list)
    counter.begin("compare", session.compare_count(estimators))
    progress.phase("comparing", f"cross-validating {counter.total} models on {metric.name}")
    selected = session.compare(estimators, modeling.n_select or 1, metric.display_name)
    record("compare")
    run_data = _record_run_data(context, session)
    if modeling.tune:
        counter.begin("tune")
        progress.phase(
            "tuning", f"tuning {len(selected)} model(s), {modeling.tune_n_iter or 10} iterations"
        )
        selected = [
            session.tune(model, modeling.tune_n_iter, metric.display_name) for model in selected
        ]
        record("tune")
    candidates = [
        (session.model_name(model), model, session.cv_score(model, metric.display_name))
        for model in selected
    ]
    if modeling.ensemble and len(selected) >= 2:
        progress.phase("ensembling", f"blending and stacking {len(selected)} models")
        for stage, build in (("blend", session.blend), ("stack", session.stack)):
            counter.begin(stage, 1)
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
    plotted = _plot(context, session, best_model, selected)
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
        holdout_score=holdout.get(metric.display_name),
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
        **plotted,
        **run_data,
    }
