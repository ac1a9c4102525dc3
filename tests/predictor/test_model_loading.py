"""Loading registered models from a real MLflow registry (SQLite store, local artifacts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from predictor_registry import Registry, cancer_frame
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.common.input_schema import ColumnKind, ColumnSpec, ProblemType
from mlplatform.common.model_loading import (
    ModelLoadError,
    ModelReference,
    limit_threads,
    load_model,
)
from tests.support.mlflow_experiments import experiment_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ModelReference("churn", alias="production")),
        ("churn@staging", ModelReference("churn", alias="staging")),
        ("churn/3", ModelReference("churn", version="3")),
    ],
)
def test_model_reference_parses(text: str, expected: ModelReference) -> None:
    assert ModelReference.parse(text) == expected


@pytest.mark.parametrize("text", ["", "a@b@c", "a/b", "a/1@x"])
def test_bad_model_reference_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected NAME"):
        ModelReference.parse(text)


def test_limit_threads_reaches_fitted_estimators_inside_a_stack() -> None:
    features, target = cancer_frame()
    stack = StackingClassifier(
        [("forest", RandomForestClassifier(n_estimators=3, n_jobs=-1))],
        final_estimator=LogisticRegression(max_iter=200),
        n_jobs=-1,
    )
    pipeline = make_pipeline(StandardScaler(), stack).fit(features.head(100), target.head(100))
    assert limit_threads(pipeline) >= 3  # the stack, its forest parameter, its fitted forest
    fitted_forest = pipeline[-1].estimators_[0]
    assert fitted_forest.n_jobs == 1
    assert pipeline[-1].n_jobs == 1
    assert limit_threads(pipeline) == 0


def test_plain_pipeline_loads_with_schema_classes_and_one_thread(registry: Registry) -> None:
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    assert (model.name, model.version, model.alias) == ("cancer_rf", "1", "production")
    assert model.problem_type is ProblemType.CLASSIFICATION
    assert model.classes == (0, 1)
    assert model.input_schema[0] == ColumnSpec("mean_radius", ColumnKind.DOUBLE, True)
    assert len(model.input_schema) == 30
    assert model.estimator[-1].n_jobs == 1  # saved with n_jobs=-1
    output = model.predict(model.check(registry.cancer_features.head(5)), with_probabilities=True)
    expected = model.estimator.predict_proba(registry.cancer_features.head(5))
    np.testing.assert_allclose(output.probabilities, expected)


def test_pycaret_pipeline_loads_with_decoded_labels(registry: Registry) -> None:
    model = load_model(ModelReference.parse("pycaret_lr"), registry.tracking_uri)
    assert model.classes == ("benign", "malignant")
    kinds = {spec.name: (spec.kind, spec.required) for spec in model.input_schema}
    assert kinds["visits"] == (ColumnKind.INT64, False)  # had gaps in training: optional
    assert kinds["segment"] == (ColumnKind.STRING, True)
    rows = registry.pycaret_features.head(8)
    output = model.predict(model.check(rows), with_probabilities=True)
    assert set(output.predictions) <= {"benign", "malignant"}
    # Probability columns follow `classes`: the predicted label has the larger probability.
    best = np.array(model.classes)[output.probabilities.argmax(axis=1)]
    assert best.tolist() == output.predictions.tolist()


def test_regression_model_has_no_classes(registry: Registry) -> None:
    model = load_model(ModelReference.parse("diabetes_ridge"), registry.tracking_uri)
    assert model.problem_type is ProblemType.REGRESSION
    assert model.classes == ()
    output = model.predict(model.check(registry.diabetes_features.head(3)), with_probabilities=True)
    assert output.probabilities is None
    assert output.predictions.shape == (3,)


def test_unknown_alias_is_a_load_error(registry: Registry) -> None:
    with pytest.raises(ModelLoadError, match="cancer_rf@nowhere"):
        load_model(ModelReference.parse("cancer_rf@nowhere"), registry.tracking_uri)


def test_model_without_signature_is_refused(registry: Registry) -> None:
    import mlflow
    import mlflow.sklearn

    features, target = cancer_frame()
    forest = RandomForestClassifier(n_estimators=2).fit(features, target)
    mlflow.set_tracking_uri(registry.tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id(registry.tracking_uri, "predictor-tests")):
        mlflow.sklearn.log_model(
            forest,
            name="model",
            serialization_format="cloudpickle",
            registered_model_name="unsigned",
            pip_requirements=["scikit-learn"],
        )
    with pytest.raises(ModelLoadError, match="no input signature"):
        load_model(ModelReference("unsigned", version="1"), registry.tracking_uri)


def test_nullable_integers_reach_the_pycaret_pipeline(registry: Registry) -> None:
    model = load_model(ModelReference.parse("pycaret_lr"), registry.tracking_uri)
    rows = registry.pycaret_features.head(3).copy()
    rows["visits"] = pd.array([None, 4, None], dtype="Int64")
    output = model.predict(model.check(rows))
    assert len(output.predictions) == 3
