"""Compiled serving against a real MLflow registry and real predictors: pipelines that compile
are answered by ONNX Runtime with scikit-learn's labels and probabilities within the tolerance;
those that do not are answered by scikit-learn, and GetModelInfo says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry, cancer_frame, log_and_register
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.client.frames import column_to_series, dataframe_to_frame, frame_to_dataframe
from mlplatform.common.compiled_serving import CompileMode, CompileOptions
from mlplatform.common.model_loading import ModelLoadError, ModelReference, load_model
from mlplatform.common.onnx_translation import UntranslatableError, translate
from mlplatform.trainer.compiled_graph import log_compiled_graph
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

TOLERANCE = 1e-6
TRAINING_ROWS = 300


def pycaret_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (8 numeric columns and the target) and held-out feature rows."""
    features, target = cancer_frame()
    frame = features.iloc[:, :8].copy()
    frame["target"] = target
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    return shuffled.iloc[:TRAINING_ROWS], shuffled.iloc[TRAINING_ROWS:].drop(columns="target")


@pytest.fixture(scope="module")
def pycaret_models(registry: Registry) -> pd.DataFrame:
    """PyCaret `rf` and `lightgbm` pipelines registered as pycaret_rf and pycaret_lightgbm;
    returns the held-out rows."""
    from pycaret.classification import ClassificationExperiment

    training, held_out = pycaret_frames()
    experiment = ClassificationExperiment()
    experiment.setup(
        training, target="target", session_id=0, n_jobs=1, fold=2, verbose=False, html=False
    )
    for estimator in ("rf", "lightgbm"):
        created = experiment.create_model(estimator, fold=2, n_estimators=20, verbose=False)
        pipeline = experiment.finalize_model(created)
        features = training.drop(columns="target")
        log_and_register(registry.tracking_uri, pipeline, features, f"pycaret_{estimator}")
    return held_out


def model_info(predictor: PredictorUnderTest) -> predictor_pb2.GetModelInfoResponse:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    return stub.GetModelInfo(predictor_pb2.GetModelInfoRequest(), timeout=30)


def served(predictor: PredictorUnderTest, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(rows), include_probabilities=True
    )
    response = stub.Predict(request, timeout=30)
    labels = column_to_series(response.predictions, len(rows)).to_numpy()
    return labels, frame_to_dataframe(response.probabilities).to_numpy()


@pytest.fixture
def predictor_of(background_loop: BackgroundLoop, registry: Registry) -> Iterator[object]:
    started: list[PredictorUnderTest] = []

    def start(model: str, **settings: object) -> PredictorUnderTest:
        predictor = start_test_predictor(
            background_loop, model, registry.tracking_uri, log_predictions=False, **settings
        )
        started.append(predictor)
        return predictor

    yield start
    for predictor in started:
        predictor.stop()


def assert_served_like_sklearn(
    predictor: PredictorUnderTest, registry: Registry, name: str, rows: pd.DataFrame
) -> None:
    info = model_info(predictor)
    assert (info.backend, info.compile_reason) == ("onnxruntime", "")
    labels, probabilities = served(predictor, rows)
    original = load_model(ModelReference.parse(name), registry.tracking_uri).estimator
    assert labels.tolist() == original.predict(rows).tolist()
    np.testing.assert_allclose(probabilities, original.predict_proba(rows), rtol=0, atol=TOLERANCE)


def test_a_plain_pipeline_is_served_compiled(predictor_of, registry: Registry) -> None:
    features, _ = cancer_frame()
    held_out = features.sample(60, random_state=3)
    predictor = predictor_of("cancer_rf")
    assert_served_like_sklearn(predictor, registry, "cancer_rf", held_out)


@pytest.mark.parametrize("estimator", ["rf", "lightgbm"])
def test_pycaret_pipelines_are_served_compiled(
    predictor_of, registry: Registry, pycaret_models: pd.DataFrame, estimator: str
) -> None:
    predictor = predictor_of(f"pycaret_{estimator}", compile="onnx")
    assert_served_like_sklearn(predictor, registry, f"pycaret_{estimator}", pycaret_models)


def test_a_custom_step_is_served_by_sklearn_with_the_reason(predictor_of) -> None:
    # `threshold`: a FunctionTransformer of test code, then a logistic regression.
    info = model_info(predictor_of("threshold"))
    assert info.backend == "sklearn"
    assert "FunctionTransformer" in info.compile_reason


def test_text_columns_are_served_by_sklearn_with_the_reason(predictor_of) -> None:
    info = model_info(predictor_of("pycaret_lr"))
    assert info.backend == "sklearn"
    assert (
        info.compile_reason
        == "column 'segment' is text; compiled serving takes numeric columns only"
    )


def test_compile_off_is_shown_too(predictor_of) -> None:
    info = model_info(predictor_of("cancer_rf", compile="off"))
    assert (info.backend, info.compile_reason) == ("sklearn", "compiling is off (--compile off)")


def test_a_pycaret_wrapper_over_some_columns_names_itself() -> None:
    from pycaret.internal.preprocess.transformers import TransformerWrapper

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    pipeline = Pipeline(
        [
            ("scale_a", TransformerWrapper(StandardScaler(), include=["a"])),
            ("forest", RandomForestClassifier(n_estimators=3, random_state=0)),
        ]
    ).fit(frame, [0, 1, 0, 1])
    with pytest.raises(UntranslatableError, match="'scale_a' applies StandardScaler to 1 of 2"):
        translate(pipeline, ["a", "b"])


def test_a_float32_graph_that_moves_a_label_is_caught_by_the_check(registry: Registry) -> None:
    """An imputer of -1 (not NaN) stays ai.onnx.ml's Imputer, which ONNX Runtime runs in float32
    only: values 1 and 1 + 1e-9 differ in double and not in float32, so the scaled values the
    classifier separates collapse into one in the graph."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression

    xs = np.repeat([1.0, 1.0 + 1e-9], 20)
    features = pd.DataFrame({"x": xs})
    labels = (xs > 1.0).astype(int)
    pipeline = Pipeline(
        [
            ("impute", SimpleImputer(missing_values=-1.0)),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression()),
        ]
    ).fit(features, labels)
    assert pipeline.predict(features).tolist() == labels.tolist()
    log_and_register(
        registry.tracking_uri, pipeline, features, "float32_trap", input_example=features
    )
    reference = ModelReference.parse("float32_trap")
    model = load_model(reference, registry.tracking_uri, compile_options=CompileOptions())
    assert model.backend == "sklearn"
    assert "labels differ (float32 graph)" in model.compile_reason
    with pytest.raises(ModelLoadError, match="--compile onnx: the check failed"):
        load_model(
            reference, registry.tracking_uri, compile_options=CompileOptions(CompileMode.ONNX)
        )


def test_the_trainers_graph_is_used_only_for_the_pickle_it_came_from(
    registry: Registry, tmp_path: Path
) -> None:
    features, target = cancer_frame()
    forest = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=5))]
    ).fit(features, target)
    version = log_and_register(registry.tracking_uri, forest, features, "graph_logged", alias=None)
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    finding = log_compiled_graph(client, registry.tracking_uri, "graph_logged", version)
    assert finding.startswith("model.onnx logged (double graph, checked on")
    reference = ModelReference("graph_logged", version=version)
    loaded = load_model(reference, registry.tracking_uri, compile_options=CompileOptions())
    assert loaded.backend == "onnxruntime"
    assert loaded.compile_check["graph_from"] == "model.onnx"
    # A graph whose record names another pickle is ignored, and the model compiled afresh.
    model_id = client.get_model_version("graph_logged", version).source.removeprefix("models:/")
    record = tmp_path / "model.onnx.json"
    record.write_text('{"model_sha256": "another pickle", "double": true}')
    client.log_model_artifact(model_id, str(record))
    reloaded = load_model(reference, registry.tracking_uri, compile_options=CompileOptions())
    assert reloaded.backend == "onnxruntime"
    assert reloaded.compile_check["graph_from"] == "compiled at load"


def test_a_regressor_is_served_compiled(predictor_of, registry: Registry) -> None:
    rows = registry.diabetes_features.sample(40, random_state=4)
    predictor = predictor_of("diabetes_ridge", compile="onnx")
    assert model_info(predictor).backend == "onnxruntime"
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    response = stub.Predict(predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows)))
    served_values = column_to_series(response.predictions, len(rows)).to_numpy()
    original = load_model(ModelReference.parse("diabetes_ridge"), registry.tracking_uri)
    np.testing.assert_allclose(served_values, original.estimator.predict(rows), rtol=TOLERANCE)
