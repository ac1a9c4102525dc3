"""The registered model a Spark batch scores with: resolved, downloaded once into the job's
folder, and read on the driver for its input schema and classes (which also proves it loads
before a Spark session is started for it)."""

from __future__ import annotations

from pathlib import Path

from mlplatform.common.model_loading import (
    ModelLoadError,
    ModelReference,
    problem_type_and_classes,
    registry_client,
    resolve_version,
    schema_from_signature,
)
from mlplatform.spark.errors import SparkBatchError
from mlplatform.spark.scoring import ModelForSpark


def parse_reference(text: str) -> ModelReference:
    """`NAME`, `NAME@ALIAS` or `NAME/VERSION`; SparkBatchError('--model', ...) otherwise."""
    try:
        return ModelReference.parse(text)
    except ValueError as error:
        raise SparkBatchError("--model", str(error)) from None


def download_model(reference: ModelReference, tracking_uri: str, folder: Path) -> ModelForSpark:
    """The version `reference` points at now, copied under `folder`; SparkBatchError
    ('--model', ...) for a model, alias or version the registry does not have."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    client = registry_client(tracking_uri)
    try:
        version = resolve_version(client, reference)
        shown = f"{reference} (version {version})"
        download_uri = client.get_model_version_download_uri(reference.name, version)
        local_path = mlflow.artifacts.download_artifacts(
            artifact_uri=download_uri, dst_path=str(folder), tracking_uri=tracking_uri
        )
        metadata = Model.load(local_path)
        if "sklearn" not in metadata.flavors:
            raise ModelLoadError(shown, "the model has no scikit-learn flavor")
        input_schema = schema_from_signature(metadata.signature, shown)
        problem_type, classes = problem_type_and_classes(mlflow.sklearn.load_model(local_path))
    except ModelLoadError as error:
        raise SparkBatchError("--model", str(error)) from None
    except MlflowException as error:
        raise SparkBatchError("--model", f"{reference}: {error.message}") from None
    return ModelForSpark(
        name=reference.name,
        version=str(version),
        local_path=str(local_path),
        input_schema=input_schema,
        problem_type=problem_type,
        classes=classes,
    )
