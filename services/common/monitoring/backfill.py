"""A baseline for a model version registered before the trainer stored one: the version's
own model scores the given data, which stands in for both the training sample and the
hold-out (`mlp monitor baseline NAME VERSION --data FILE --target COLUMN`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from mlplatform.common.monitoring import quality
from mlplatform.common.monitoring.baseline import Baseline, build_baseline, log_baseline

PROBLEM_TYPE_TAG = "mlp.problem_type"


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"{path.name}: expected a .csv or .parquet file")


def problem_type_of(tags: dict[str, str], labels: pd.Series) -> str:
    """The version's problem type tag (the trainer sets it), else a guess from the labels:
    fractional numbers are a regression target."""
    tagged = tags.get(PROBLEM_TYPE_TAG, "").lower()
    if "regression" in tagged:
        return quality.REGRESSION
    if "classification" in tagged:
        return quality.CLASSIFICATION
    fractional = pd.api.types.is_float_dtype(labels) and not (labels.dropna() % 1 == 0).all()
    return quality.REGRESSION if fractional else quality.CLASSIFICATION


def _scorers(model: Any) -> tuple[Any, Any]:
    predict_proba = None
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):

        def predict_proba(frame: pd.DataFrame) -> tuple[list[Any], Any]:
            return list(model.classes_), model.predict_proba(frame)

    return model.predict, predict_proba


def backfill_baseline(
    client: MlflowClient, model_name: str, version: str, data_path: Path, target: str
) -> Baseline:
    import mlflow.sklearn

    table = read_table(data_path)
    if target not in table.columns:
        raise ValueError(f"--target {target!r} is not a column of {data_path.name}")
    model_version = client.get_model_version(model_name, version)
    if not model_version.run_id:
        raise ValueError(f"{model_name} version {version} has no MLflow run to store it on")
    features, labels = table.drop(columns=[target]), table[target]
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
    predict, predict_proba = _scorers(model)
    baseline = build_baseline(
        problem_type_of(dict(model_version.tags), labels),
        target,
        features,
        features,
        labels,
        predict,
        predict_proba,
    )
    log_baseline(client, model_version.run_id, baseline)
    return baseline
