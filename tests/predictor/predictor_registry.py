"""Registers small real models into a real MLflow store (SQLite + local artifacts) for tests.

No trainer involved: each model is fitted here and logged the way the trainer logs
(`mlflow.sklearn.log_model`, cloudpickle, a signature inferred from the training frame).

- `cancer_rf`: StandardScaler + RandomForest (10 trees, n_jobs=-1 as PyCaret saves them).
- `diabetes_ridge`: a regression pipeline.
- `pycaret_lr`: a finalized PyCaret pipeline with a nullable integer column that has gaps, a
  text column and a text target (its probabilities are labelled with the decoded labels).
- `identity` models (`identity_model`): predict `x + offset` exactly, so a response shows whose
  rows it holds and which version made it; `threshold` models classify `x` into low/high. Both
  fail or sleep on the markers of predictor_model_behaviours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import predictor_model_behaviours
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tests.support.mlflow_experiments import experiment_id

ALIAS = "production"


@dataclass(frozen=True)
class Registry:
    """Where the test registry lives and the training frames of its models."""

    tracking_uri: str
    cancer_features: pd.DataFrame
    diabetes_features: pd.DataFrame
    pycaret_features: pd.DataFrame


def cancer_frame() -> tuple[pd.DataFrame, pd.Series]:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [name.replace(" ", "_") for name in features.columns]
    return features, target


def open_registry(root: Path) -> str:
    """A fresh MLflow store under `root`; returns its tracking URI."""
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.create_experiment("predictor-tests", artifact_location=(root / "artifacts").as_uri())
    return tracking_uri


def log_and_register(
    tracking_uri: str,
    estimator: object,
    features: pd.DataFrame,
    name: str,
    alias: str | None = ALIAS,
    input_example: pd.DataFrame | None = None,
) -> str:
    """Log `estimator` as the trainer does, register it under `name`; returns the version.

    The logged input example is `features`' first rows unless `input_example` is given."""
    # Set every time: other test modules may point MLflow at their own registry.
    mlflow.set_tracking_uri(tracking_uri)
    signature = infer_signature(features, estimator.predict(features.head(20)))
    with mlflow.start_run(experiment_id=experiment_id(tracking_uri, "predictor-tests")):
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=features.head(2) if input_example is None else input_example,
            serialization_format="cloudpickle",
            registered_model_name=name,
            # Skips MLflow's requirement inference (a subprocess, seconds per model).
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    if alias:
        set_alias(tracking_uri, name, version, alias)
    return version


def set_alias(tracking_uri: str, name: str, version: str, alias: str = ALIAS) -> None:
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, alias, version)


def register_plain_models(tracking_uri: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    cancer_features, cancer_target = cancer_frame()
    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=-1)
    )
    forest.fit(cancer_features, cancer_target)
    log_and_register(tracking_uri, forest, cancer_features, "cancer_rf")
    diabetes_features, diabetes_target = load_diabetes(return_X_y=True, as_frame=True)
    ridge = make_pipeline(StandardScaler(), Ridge()).fit(diabetes_features, diabetes_target)
    log_and_register(tracking_uri, ridge, diabetes_features, "diabetes_ridge")
    return cancer_features, diabetes_features


def pycaret_training_frame() -> pd.DataFrame:
    """Six numeric columns, a nullable integer column with gaps, a text column, a text target."""
    features, target = cancer_frame()
    frame = features.iloc[:, :6].copy()
    rng = np.random.default_rng(0)
    frame["visits"] = pd.array(rng.integers(0, 10, len(frame)), dtype="Int64")
    frame.loc[::7, "visits"] = pd.NA
    frame["segment"] = np.where(rng.random(len(frame)) > 0.5, "retail", "clinic")
    frame["diagnosis"] = np.where(target == 1, "benign", "malignant")
    return frame


def register_pycaret_model(tracking_uri: str) -> pd.DataFrame:
    """A finalized PyCaret logistic regression (seconds to train), as the trainer registers."""
    from pycaret.classification import ClassificationExperiment

    data = pycaret_training_frame()
    experiment = ClassificationExperiment()
    experiment.setup(data, target="diagnosis", session_id=0, n_jobs=1, verbose=False, html=False)
    pipeline = experiment.finalize_model(experiment.create_model("lr", fold=2, verbose=False))
    features = data.drop(columns="diagnosis")
    log_and_register(tracking_uri, pipeline, features, "pycaret_lr")
    return features


def _behaviour_step() -> FunctionTransformer:
    cloudpickle.register_pickle_by_value(predictor_model_behaviours)
    return FunctionTransformer(predictor_model_behaviours.fail_or_sleep)


def identity_model(offset: float = 0.0) -> Pipeline:
    """Predicts `x + offset` (a linear fit of exactly that line)."""
    xs = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    return make_pipeline(_behaviour_step(), LinearRegression()).fit(xs, xs["x"] + offset)


def threshold_model() -> Pipeline:
    """Classifies `x` as "low" (below 50) or "high", with probabilities."""
    xs = pd.DataFrame({"x": np.arange(0.0, 100.0)})
    labels = np.where(xs["x"] < 50, "low", "high")
    return make_pipeline(_behaviour_step(), LogisticRegression()).fit(xs, labels)


def register_identity(
    tracking_uri: str,
    name: str,
    offset: float = 0.0,
    alias: str | None = ALIAS,
    input_example: pd.DataFrame | None = None,
) -> str:
    xs = pd.DataFrame({"x": [0.0, 1.0]})
    return log_and_register(tracking_uri, identity_model(offset), xs, name, alias, input_example)


def build_registry(root: Path) -> Registry:
    tracking_uri = open_registry(root)
    cancer_features, diabetes_features = register_plain_models(tracking_uri)
    pycaret_features = register_pycaret_model(tracking_uri)
    register_identity(tracking_uri, "identity")
    log_and_register(tracking_uri, threshold_model(), pd.DataFrame({"x": [1.0, 80.0]}), "threshold")
    return Registry(tracking_uri, cancer_features, diabetes_features, pycaret_features)
