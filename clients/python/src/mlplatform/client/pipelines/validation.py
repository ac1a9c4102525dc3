"""Checks of a parsed pipeline that the message types cannot express.

Everything a worker would otherwise discover minutes into a run is checked here,
before the pipeline is published: step order, estimator ids and metric names for
the problem type, fold and selection counts, `setup()` keywords. Given the data roots
the trainers use (`MLP_DATA_ROOTS`), data sources outside them too: the trainers check
again in any case, since only they know their own roots for certain.

Longer than ~300 lines on purpose: every check a definition passes before it is published
lives here, so one place says what a valid pipeline is.
"""

from __future__ import annotations

import math
import re

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.client.data_roots import DataAccessRefused, DataRoots, kaggle_uri
from mlplatform.client.pipelines.errors import FieldError, PipelineError, join_path
from mlplatform.v1 import pipeline_pb2

_LOAD_STEPS = ("load_data_from_file", "load_data_from_kaggle")
_FILE_FORMATS = ("", "csv", "parquet", "zip")
_KAGGLE_DATASET = re.compile(r"^[\w.-]+/[\w.-]+$")
# MLflow's rules for aliases: letters, digits, '_' and '-'; 'latest' and 'v<digits>' are taken.
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_TYPED_SETUP_FIELDS = frozenset(
    field.name
    for field in pipeline_pb2.FeatureEngineeringParams.DESCRIPTOR.fields
    if field.name != "setup_kwargs"
)


def validate_pipeline(
    definition: pipeline_pb2.PipelineDefinition, data_roots: DataRoots | None = None
) -> list[FieldError]:
    """Every problem in a parsed definition; an empty list means it can run.

    With `data_roots`, a data source outside them is a problem too (nothing is read).
    """
    errors: list[FieldError] = []
    problem_type = _check_experiment_config(definition, errors)
    if not definition.pipeline:
        errors.append(FieldError("pipeline", "a pipeline needs at least one stage"))
    loaded_data = False
    trained = False
    for stage_index, stage in enumerate(definition.pipeline):
        stage_path = f"pipeline[{stage_index}].MLSteps"
        if not stage.ml_steps:
            errors.append(FieldError(stage_path, "a stage needs at least one step"))
        for step_index, step in enumerate(stage.ml_steps):
            kind = step.WhichOneof("step")
            step_path = join_path(f"{stage_path}[{step_index}]", kind or "")
            if kind is None:
                errors.append(FieldError(step_path, "empty step; it must name one step kind"))
                continue
            if kind in _LOAD_STEPS:
                loaded_data = True
            elif not loaded_data:
                errors.append(FieldError(step_path, f"{kind} comes before any load_data step"))
            if kind == "train_model":
                trained = True
            elif kind == "register_model" and not trained:
                errors.append(FieldError(step_path, "register_model comes before any train_model"))
            _STEP_CHECKS[kind](getattr(step, kind), problem_type, step_path, errors)
            if data_roots is not None:
                _check_data_source(step, kind, step_path, data_roots, errors)
    return errors


def check_pipeline(
    definition: pipeline_pb2.PipelineDefinition,
    source: str | None = None,
    data_roots: DataRoots | None = None,
) -> None:
    """Raises PipelineError with every problem, or returns when the definition can run."""
    errors = validate_pipeline(definition, data_roots)
    if errors:
        raise PipelineError(errors, source)


def _check_experiment_config(
    definition: pipeline_pb2.PipelineDefinition, errors: list[FieldError]
) -> int:
    path = "experiment_config"
    if not definition.HasField("experiment_config"):
        errors.append(FieldError(path, "missing; it names the experiment, model and target"))
        return pipeline_pb2.PROBLEM_TYPE_UNSPECIFIED
    config = definition.experiment_config
    for name in ("experiment_name", "target"):
        if not getattr(config, name).strip():
            errors.append(FieldError(join_path(path, name), "must not be empty"))
    registers = any(
        step.HasField("register_model") for stage in definition.pipeline for step in stage.ml_steps
    )
    if registers and not config.model_name.strip():
        errors.append(FieldError(join_path(path, "model_name"), "must not be empty"))
    problem_type = config.problem_type
    if problem_type == pipeline_pb2.PROBLEM_TYPE_UNSPECIFIED:
        errors.append(
            FieldError(join_path(path, "problem_type"), "missing; classification or regression")
        )
        return problem_type
    if config.main_metric and catalog.find_metric(problem_type, config.main_metric) is None:
        kind = catalog.PROBLEM_TYPE_NAMES[problem_type]
        known = ", ".join(metric.name for metric in catalog.METRICS[problem_type])
        errors.append(
            FieldError(
                join_path(path, "main_metric"),
                f"'{config.main_metric}' is not a PyCaret {kind} metric; known: {known}",
            )
        )
    _check_plots(config.log_plots, problem_type, join_path(path, "log_plots"), errors)
    return problem_type


def _check_plots(
    selection: pipeline_pb2.PlotSelection, problem_type: int, path: str, errors: list[FieldError]
) -> None:
    known = catalog.PLOTS.get(problem_type, {})
    seen: set[str] = set()
    for index, plot in enumerate(selection.plots):
        if plot not in known:
            kind = catalog.PROBLEM_TYPE_NAMES[problem_type]
            errors.append(
                FieldError(
                    f"{path}[{index}]",
                    f"'{plot}' is not a PyCaret {kind} plot; known: {', '.join(known)}",
                )
            )
        elif plot in seen:
            errors.append(FieldError(f"{path}[{index}]", f"'{plot}' is listed twice"))
        seen.add(plot)


def _check_file(
    step: pipeline_pb2.LoadDataFromFile, _problem: int, path: str, errors: list[FieldError]
) -> None:
    if not step.path.strip():
        errors.append(FieldError(join_path(path, "path"), "must not be empty"))
    if step.format.lower() not in _FILE_FORMATS:
        errors.append(
            FieldError(join_path(path, "format"), f"'{step.format}' is not csv, parquet or zip")
        )


def _check_data_source(
    step: pipeline_pb2.MLStep,
    kind: str,
    path: str,
    data_roots: DataRoots,
    errors: list[FieldError],
) -> None:
    """A load step's source against the roots: resolved and compared, never opened."""
    try:
        if kind == "load_data_from_file" and step.load_data_from_file.path.strip():
            data_roots.check_path(step.load_data_from_file.path)
        elif kind == "load_data_from_kaggle":
            spec = step.load_data_from_kaggle
            data_roots.check_uri(kaggle_uri(spec.kaggle_dataset_name, spec.training_file_name))
    except DataAccessRefused as refusal:
        field = "path" if kind == "load_data_from_file" else "kaggle_dataset_name"
        errors.append(FieldError(join_path(path, field), str(refusal)))


def _check_kaggle(
    step: pipeline_pb2.LoadDataFromKaggle, _problem: int, path: str, errors: list[FieldError]
) -> None:
    if not _KAGGLE_DATASET.match(step.kaggle_dataset_name):
        errors.append(
            FieldError(
                join_path(path, "kaggle_dataset_name"),
                f"'{step.kaggle_dataset_name}' is not OWNER/DATASET (e.g. mlg-ulb/creditcardfraud)",
            )
        )
    if not step.training_file_name.strip():
        errors.append(FieldError(join_path(path, "training_file_name"), "must not be empty"))


def _check_validate_data(
    step: pipeline_pb2.ValidateData, _problem: int, path: str, errors: list[FieldError]
) -> None:
    if step.min_rows < 0:
        errors.append(FieldError(join_path(path, "min_rows"), "must be 0 (default) or more"))


def _check_register(
    step: pipeline_pb2.RegisterModel, _problem: int, path: str, errors: list[FieldError]
) -> None:
    if step.alias and (not _ALIAS.match(step.alias) or _RESERVED_ALIAS.match(step.alias)):
        errors.append(
            FieldError(
                join_path(path, "alias"),
                f"'{step.alias}' is not a valid MLflow alias (letters, digits, '_', '-'; "
                "not 'latest' or 'v<number>')",
            )
        )
    if step.HasField("min_metric") and not math.isfinite(step.min_metric):
        errors.append(FieldError(join_path(path, "min_metric"), "must be a finite number"))


def _check_train(
    step: pipeline_pb2.TrainModel, problem_type: int, path: str, errors: list[FieldError]
) -> None:
    _check_modeling(step.modeling_params, problem_type, join_path(path, "modeling_params"), errors)
    _check_setup(
        step.feature_engineering_params,
        problem_type,
        join_path(path, "feature_engineering_params"),
        errors,
    )


def _check_modeling(
    params: pipeline_pb2.ModelingParams, problem_type: int, path: str, errors: list[FieldError]
) -> None:
    known = catalog.ESTIMATORS.get(problem_type)
    seen: set[str] = set()
    for index, estimator_id in enumerate(params.estimator_list):
        item_path = f"{join_path(path, 'estimator_list')}[{index}]"
        if known is not None and estimator_id not in known:
            kind = catalog.PROBLEM_TYPE_NAMES[problem_type]
            errors.append(
                FieldError(
                    item_path,
                    f"'{estimator_id}' is not a PyCaret {kind} estimator; "
                    f"known: {', '.join(known)}",
                )
            )
        elif known is None and not _in_any_catalog(estimator_id):
            # Without a problem type the catalog is unknown; an id in neither is wrong anyway.
            errors.append(FieldError(item_path, _unknown_in_both_catalogs(estimator_id)))
        elif estimator_id in seen:
            errors.append(FieldError(item_path, f"'{estimator_id}' is listed twice"))
        seen.add(estimator_id)
    if params.fold != 0 and params.fold < 2:
        errors.append(
            FieldError(
                join_path(path, "fold"), f"must be at least 2 (or 0 for 10); got {params.fold}"
            )
        )
    candidates = len(params.estimator_list) or len(known or ())
    n_select = params.n_select or 1
    if not 1 <= n_select <= max(candidates, 1):
        errors.append(
            FieldError(
                join_path(path, "n_select"),
                f"must be between 1 and {candidates} (the number of estimators); got {n_select}",
            )
        )
    if params.ensemble and n_select < 2:
        errors.append(
            FieldError(join_path(path, "ensemble"), "blending and stacking need n_select >= 2")
        )
    if params.tune_n_iter < 0:
        errors.append(FieldError(join_path(path, "tune_n_iter"), "must be 0 (default) or more"))


def _in_any_catalog(estimator_id: str) -> bool:
    return any(estimator_id in known for known in catalog.ESTIMATORS.values())


def _unknown_in_both_catalogs(estimator_id: str) -> str:
    catalogs = "; ".join(
        f"{catalog.PROBLEM_TYPE_NAMES[problem_type]}: {', '.join(known)}"
        for problem_type, known in catalog.ESTIMATORS.items()
    )
    return (
        f"'{estimator_id}' is not a PyCaret estimator of either problem type "
        f"(experiment_config.problem_type is missing); known {catalogs}"
    )


def _check_setup(
    params: pipeline_pb2.FeatureEngineeringParams,
    problem_type: int,
    path: str,
    errors: list[FieldError],
) -> None:
    keywords = catalog.SETUP_KEYWORDS.get(problem_type, frozenset())
    if params.HasField("fix_imbalance") and problem_type == catalog.REGRESSION:
        errors.append(
            FieldError(join_path(path, "fix_imbalance"), "applies to classification only")
        )
    if params.HasField("normalize_method") and params.normalize_method not in (
        catalog.NORMALIZE_METHODS
    ):
        errors.append(
            FieldError(
                join_path(path, "normalize_method"),
                f"'{params.normalize_method}' is not one of {', '.join(catalog.NORMALIZE_METHODS)}",
            )
        )
    if params.HasField("pca_components") and params.pca_components <= 0:
        errors.append(FieldError(join_path(path, "pca_components"), "must be greater than 0"))
    if params.HasField("train_size") and not 0 < params.train_size < 1:
        errors.append(FieldError(join_path(path, "train_size"), "must be between 0 and 1"))
    for keyword in params.setup_kwargs:
        keyword_path = join_path(join_path(path, "setup_kwargs"), keyword)
        if keyword in _TYPED_SETUP_FIELDS:
            errors.append(
                FieldError(keyword_path, f"set '{keyword}' with the typed field of that name")
            )
        elif keyword in catalog.RESERVED_SETUP_KEYWORDS:
            errors.append(FieldError(keyword_path, f"'{keyword}' is set by the platform"))
        elif keywords and keyword not in keywords:
            kind = catalog.PROBLEM_TYPE_NAMES[problem_type]
            errors.append(
                FieldError(
                    keyword_path, f"'{keyword}' is not a keyword of PyCaret's {kind} setup()"
                )
            )


_STEP_CHECKS = {
    "load_data_from_file": _check_file,
    "load_data_from_kaggle": _check_kaggle,
    "validate_data": _check_validate_data,
    "train_model": _check_train,
    "register_model": _check_register,
}
