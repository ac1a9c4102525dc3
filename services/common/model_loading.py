"""Loading a registered model from the MLflow registry, ready to serve predictions.

Shared by the online predictor and the batch inferer. What it does beyond `mlflow.pyfunc`:

- Loads through the scikit-learn flavor, because the pyfunc wrapper has no `predict_proba`, and
  keeps the signature's input schema so input is still checked before the model sees it
  (`mlplatform.common.input_schema`).
- Sets every `n_jobs` in the loaded pipeline to 1. PyCaret saves estimators with `n_jobs=-1`;
  one row then pays for a thread pool (measured 22 ms vs 5.6 ms p50 on a LightGBM + KNN stack).
  Serving gets its parallelism from batching rows, not from threads inside the model.
- Reads the problem type and the class labels. PyCaret label-encodes the target inside its
  pipeline, so the final estimator's `classes_` are codes; the labels come back through the
  pipeline's `inverse_transform`.
- With `--compile auto|onnx`, compiles the model and checks it before it is returned (the
  logic lives in compiled_serving; `LoadedModel.predict` then asks the compiled form).

Longer than ~300 lines on purpose: everything between a registry reference and a model ready
to serve (resolution, tag checks, flavor loading, thread limits, class labels) is one job
shared by the predictor and the inferer.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.common.compiled_serving import (
    GRAPH_FILE,
    ONNXRUNTIME,
    SKLEARN,
    CompileMode,
    CompileOptions,
    CompileRefusedError,
    baseline_features,
    compile_loaded,
    file_digest,
)
from mlplatform.common.input_schema import (
    CheckedRows,
    ColumnKind,
    Columns,
    ColumnSpec,
    DoublesLayout,
    DoublesRows,
    ProblemType,
    as_frame,
    check_input,
    check_input_rows,
)
from mlplatform.common.model_tags import ModelTagRequirement

logger = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"

# MLflow column types -> the Frame kinds that carry them.
_KIND_BY_MLFLOW_TYPE = {
    "double": ColumnKind.DOUBLE,
    "float": ColumnKind.DOUBLE,
    "long": ColumnKind.INT64,
    "integer": ColumnKind.INT64,
    "string": ColumnKind.STRING,
    "boolean": ColumnKind.BOOL,
}
_REFERENCE_PATTERN = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")


class ModelLoadError(Exception):
    """A model that cannot be resolved, loaded or served; names the reference and why."""

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"{reference}: {reason}")

    def __reduce__(self) -> tuple[type[ModelLoadError], tuple[str, str]]:
        return (type(self), (self.reference, self.reason))


@dataclass(frozen=True)
class ModelReference:
    """Which registered model to serve: `NAME@ALIAS`, `NAME/VERSION`, or `NAME` (default alias)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str, default_alias: str = DEFAULT_ALIAS) -> ModelReference:
        """Parse `NAME[@ALIAS]` or `NAME/VERSION`; ValueError on anything else."""
        match = _REFERENCE_PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"model {text!r}: expected NAME, NAME@ALIAS or NAME/VERSION")
        if match["version"]:
            return cls(match["name"], version=match["version"])
        return cls(match["name"], alias=match["alias"] or default_alias)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ModelOutput:
    """What one model call produced: a prediction per row, and probabilities when asked for."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass(eq=False)
class LoadedModel:
    """A registered model version in memory, with what serving needs to know about it."""

    name: str
    version: str
    alias: str | None
    estimator: Any
    input_schema: tuple[ColumnSpec, ...]
    problem_type: ProblemType
    classes: tuple[Any, ...] = ()
    input_example: pd.DataFrame | None = None
    loaded_at: float = field(default_factory=time.time)
    #: The ONNX Runtime form that answers `predict` when the model compiled exactly (see
    #: compiled_serving); None when scikit-learn answers, for `compile_reason`.
    compiled: Any = None
    compile_reason: str = ""
    #: What the check found (rows, mismatches, largest difference), when it ran.
    compile_check: dict[str, Any] | None = None
    #: The schema's all-double layout, worked out once (see input_schema.DoublesLayout).
    doubles_layout: DoublesLayout | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.doubles_layout = DoublesLayout.of(self.input_schema)

    @property
    def backend(self) -> str:
        """What answers predictions: "onnxruntime" or "sklearn"."""
        return SKLEARN if self.compiled is None else ONNXRUNTIME

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class labels as text: the names of the probability columns."""
        return tuple(str(label) for label in self.classes)

    def check(
        self, features: pd.DataFrame | Columns | DoublesRows, max_rows: int | None = None
    ) -> pd.DataFrame:
        """`features` checked against this model's input schema (see input_schema.check_input)."""
        return check_input(features, self.input_schema, max_rows, self.doubles_layout)

    def check_rows(
        self, features: pd.DataFrame | Columns | DoublesRows, max_rows: int | None = None
    ) -> CheckedRows:
        """`check`, but all-double rows stay a matrix (see input_schema.DoublesRows)."""
        return check_input_rows(features, self.input_schema, max_rows, self.doubles_layout)

    def predict(self, features: CheckedRows, with_probabilities: bool = False) -> ModelOutput:
        """Predict already-checked rows; probabilities only for classifiers that were asked.

        A compiled model takes all-double rows as their matrix; scikit-learn gets a DataFrame.
        """
        estimator = self.estimator
        want_probabilities = with_probabilities and self.problem_type is ProblemType.CLASSIFICATION
        if self.compiled is not None:
            predictions, probabilities = self.compiled.predict_output(features, want_probabilities)
            return ModelOutput(predictions=predictions, probabilities=probabilities)
        features = as_frame(features)
        if want_probabilities and _is_plain_sklearn_pipeline(estimator):
            # Transform once and ask the final step for both outputs: half the preprocessing.
            transformed = estimator[:-1].transform(features)
            final_step = estimator.steps[-1][1]
            return ModelOutput(
                predictions=_one_per_row(final_step.predict(transformed)),
                probabilities=np.asarray(final_step.predict_proba(transformed), dtype=np.float64),
            )
        predictions = _one_per_row(estimator.predict(features))
        probabilities = None
        if want_probabilities:
            probabilities = np.asarray(estimator.predict_proba(features), dtype=np.float64)
        return ModelOutput(predictions=predictions, probabilities=probabilities)


def _one_per_row(predictions: Any) -> np.ndarray:
    """Predictions as a 1-d array (some regressors return a single column of shape (n, 1))."""
    array = np.asarray(predictions)
    return array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array


def _is_plain_sklearn_pipeline(estimator: Any) -> bool:
    from sklearn.pipeline import Pipeline

    # Exactly sklearn's Pipeline: subclasses (PyCaret's, imblearn's) change predict().
    return type(estimator) is Pipeline and len(estimator.steps) > 1


# --- n_jobs -----------------------------------------------------------------------------------


def _nested_objects(value: Any) -> Iterator[Any]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _nested_objects(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _nested_objects(item)
    elif hasattr(value, "get_params"):
        yield value


def limit_threads(estimator: Any) -> int:
    """Set `n_jobs` to 1 on every estimator inside `estimator`; return how many were changed.

    Walks parameters and fitted attributes alike (a fitted StackingClassifier keeps its fitted
    clones in `estimators_`, not in the `estimators` parameter), through lists, tuples (pipeline
    steps) and dicts, visiting each object once.
    """
    changed = 0
    seen: set[int] = set()
    pending = [estimator]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # None means 1 outside a joblib backend context; set it anyway, it costs nothing.
        if getattr(current, "n_jobs", 1) != 1:
            current.n_jobs = 1
            changed += 1
        for attribute in getattr(current, "__dict__", {}).values():
            pending.extend(_nested_objects(attribute))
    return changed


# --- schema, problem type, classes ------------------------------------------------------------


def schema_from_signature(signature: Any, reference: str) -> tuple[ColumnSpec, ...]:
    """The input columns of an MLflow signature; ModelLoadError for what a Frame cannot carry."""
    if signature is None or signature.inputs is None:
        raise ModelLoadError(reference, "the model has no input signature; log it with one")
    if signature.inputs.is_tensor_spec():
        raise ModelLoadError(reference, "tensor signatures are not supported; expected columns")
    columns: list[ColumnSpec] = []
    for column in signature.inputs.inputs:
        type_name = getattr(column.type, "name", str(column.type))
        kind = _KIND_BY_MLFLOW_TYPE.get(type_name)
        if column.name is None or kind is None:
            raise ModelLoadError(
                reference,
                f"input column {column.name!r} has type {type_name}; expected one of "
                f"{', '.join(sorted(_KIND_BY_MLFLOW_TYPE))}",
            )
        columns.append(ColumnSpec(column.name, kind, required=bool(column.required)))
    return tuple(columns)


def _final_estimator(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return _final_estimator(steps[-1][1]) if steps else estimator


def problem_type_and_classes(estimator: Any) -> tuple[ProblemType, tuple[Any, ...]]:
    """Classification (with class labels in probability-column order) or regression."""
    final = _final_estimator(estimator)
    encoded_classes = getattr(final, "classes_", None)
    if encoded_classes is None or not hasattr(estimator, "predict_proba"):
        return ProblemType.REGRESSION, ()
    labels = np.asarray(encoded_classes)
    if type(estimator).__module__.startswith("pycaret"):
        # PyCaret's pipeline label-encodes the target; its inverse_transform decodes labels.
        labels = np.asarray(estimator.inverse_transform(pd.Series(labels)))
    return ProblemType.CLASSIFICATION, tuple(
        label.item() if hasattr(label, "item") else label for label in labels
    )


# --- registry ---------------------------------------------------------------------------------


def resolve_version(client: Any, reference: ModelReference) -> str:
    """The version `reference` points at now (an alias moves; a version does not)."""
    from mlflow.exceptions import MlflowException

    if reference.version:
        return reference.version
    try:
        return str(client.get_model_version_by_alias(reference.name, reference.alias).version)
    except MlflowException as error:
        raise ModelLoadError(str(reference), f"cannot resolve the alias: {error.message}") from None


def registry_client(tracking_uri: str | None) -> Any:
    """An MlflowClient on `tracking_uri` (its registry too), or on MLflow's default."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def load_model(
    reference: ModelReference,
    tracking_uri: str | None = None,
    version: str | None = None,
    client: Any = None,
    required_tag: ModelTagRequirement | None = None,
    compile_options: CompileOptions | None = None,
) -> LoadedModel:
    """Load `reference` (at `version` when given, else where it points now) from the registry.

    With `required_tag`, a version without that tag is refused (ModelLoadError) before
    anything of it is downloaded. With `compile_options` (not `off`), the model is compiled
    and checked before it is returned (see compiled_serving); in `onnx` mode a model that
    does not compile is a ModelLoadError.
    """
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    client = client or registry_client(tracking_uri)
    version = version or resolve_version(client, reference)
    shown = f"{reference} (version {version})"
    started = time.perf_counter()
    if required_tag is not None:
        check_required_tag(client, reference, version, required_tag)
    try:
        download_uri = client.get_model_version_download_uri(reference.name, version)
        with tempfile.TemporaryDirectory(prefix="mlp-model-") as local_dir:
            # Download once; read the MLmodel metadata and the pickle from the same copy.
            local_path = mlflow.artifacts.download_artifacts(
                artifact_uri=download_uri, dst_path=local_dir, tracking_uri=tracking_uri
            )
            metadata = Model.load(local_path)
            if "sklearn" not in metadata.flavors:
                raise ModelLoadError(shown, "the model has no scikit-learn flavor")
            estimator = mlflow.sklearn.load_model(local_path)
            input_example = _input_example(metadata, local_path)
            input_schema = schema_from_signature(metadata.signature, shown)
            threads_limited = limit_threads(estimator)
            problem_type, classes = problem_type_and_classes(estimator)
            model = LoadedModel(
                name=reference.name,
                version=str(version),
                alias=reference.alias,
                estimator=estimator,
                input_schema=input_schema,
                problem_type=problem_type,
                classes=classes,
                input_example=input_example,
            )
            if compile_options is not None and compile_options.mode is not CompileMode.OFF:
                _compile_into(model, compile_options, Path(local_path), metadata, client)
            else:
                model.compile_reason = "compiling is off (--compile off)"
    except MlflowException as error:
        raise ModelLoadError(shown, error.message) from None
    logger.info(
        "loaded %s in %.1f s: %s, %d inputs, n_jobs set to 1 on %d estimators, served by %s",
        shown,
        time.perf_counter() - started,
        problem_type,
        len(input_schema),
        threads_limited,
        model.backend,
    )
    return model


def _compile_into(
    model: LoadedModel, options: CompileOptions, local_path: Path, metadata: Any, client: Any
) -> None:
    """Compile `model` in place (its `compiled`, or its `compile_reason`)."""
    pickled = local_path / metadata.flavors["sklearn"].get("pickled_model", "model.pkl")
    digest = file_digest(pickled) if pickled.is_file() else None
    known_rows = baseline_features(client, model.name, model.version)
    try:
        outcome = compile_loaded(model, options, local_path, digest, known_rows)
    except CompileRefusedError as error:
        raise ModelLoadError(
            f"{model.name} (version {model.version})", f"--compile onnx: {error}"
        ) from None
    model.compiled, model.compile_reason = outcome.compiled, outcome.reason
    if outcome.check is not None:
        graph_from = GRAPH_FILE if outcome.from_artifact else "compiled at load"
        model.compile_check = {**outcome.check, "graph_from": graph_from}


def check_required_tag(
    client: Any, reference: ModelReference, version: str, required_tag: ModelTagRequirement
) -> None:
    """Returns when the version carries `required_tag`; ModelLoadError naming the tag, the
    model and the version otherwise."""
    from mlflow.exceptions import MlflowException

    shown = f"{reference} (version {version})"
    try:
        tags = client.get_model_version(reference.name, version).tags or {}
    except MlflowException as error:
        raise ModelLoadError(shown, error.message) from None
    reason = required_tag.refusal(tags)
    if reason is not None:
        raise ModelLoadError(shown, reason)


def _input_example(metadata: Any, local_path: str) -> pd.DataFrame | None:
    """The input example logged with the model, when it is a table (used to warm it up)."""
    try:
        example = metadata.load_input_example(local_path)
    except Exception:  # a missing or unreadable example only costs the warm-up
        logger.debug("no usable input example in %s", local_path, exc_info=True)
        return None
    return example if isinstance(example, pd.DataFrame) and len(example) else None


def warm_up_rows(model: LoadedModel) -> pd.DataFrame:
    """One row to warm a model with: its input example's first row, else a synthetic row."""
    if model.input_example is not None:
        return model.input_example.head(1)
    synthetic = {
        ColumnKind.DOUBLE: 0.0,
        ColumnKind.INT64: 0,
        ColumnKind.STRING: "",
        ColumnKind.BOOL: False,
    }
    return pd.DataFrame({spec.name: [synthetic[spec.kind]] for spec in model.input_schema})
