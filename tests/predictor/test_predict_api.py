"""Predictor.Predict and GetModelInfo over a real gRPC server, against registered models."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pandas as pd
import pytest
from google.rpc import error_details_pb2, status_pb2
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry

from mlplatform.client.frames import column_to_series, dataframe_to_frame, frame_to_dataframe
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.v1 import frame_pb2, pipeline_pb2, predictor_pb2, predictor_pb2_grpc


def call_predict(
    predictor: PredictorUnderTest,
    rows: pd.DataFrame,
    model_name: str = "",
    include_probabilities: bool = False,
    request_id: str = "",
) -> predictor_pb2.PredictResponse:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(
        model_name=model_name,
        inputs=dataframe_to_frame(rows),
        include_probabilities=include_probabilities,
        request_id=request_id,
    )
    return stub.Predict(request, timeout=30)


def refused(predictor: PredictorUnderTest, rows: pd.DataFrame, **options: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call_predict(predictor, rows, **options)  # type: ignore[arg-type]
    return caught.value


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried by a refused call."""
    metadata = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return {v.field: v.description for v in bad_request.field_violations}


@pytest.fixture(scope="module")
def pycaret_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop, "pycaret_lr", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="module")
def regression_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop, "diabetes_ridge", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


def test_predictions_match_the_model_in_process(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.iloc[40:47]
    response = call_predict(cancer_predictor, rows, model_name="cancer_rf")
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    assert (response.model_name, response.model_version) == ("cancer_rf", "1")
    assert response.predictions.name == "prediction"
    assert (
        column_to_series(response.predictions, 7).tolist() == model.estimator.predict(rows).tolist()
    )
    assert not response.HasField("probabilities")
    assert len(response.request_id) == 32  # generated when the caller sends none


def test_probabilities_are_chosen_per_request(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.iloc[:4]
    with_probabilities = call_predict(cancer_predictor, rows, include_probabilities=True)
    without = call_predict(cancer_predictor, rows)
    probabilities = frame_to_dataframe(with_probabilities.probabilities)
    assert list(probabilities.columns) == ["0", "1"]
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    np.testing.assert_allclose(probabilities.to_numpy(), model.estimator.predict_proba(rows))
    assert not without.HasField("probabilities")


def test_the_callers_request_id_is_echoed(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    response = call_predict(cancer_predictor, registry.cancer_features.head(1), request_id="abc-1")
    assert response.request_id == "abc-1"


def test_missing_unknown_and_wrongly_typed_columns_are_named(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.head(2).drop(columns=["mean_radius"])
    rows = rows.assign(colour=["red", "blue"], mean_texture=["soft", "hard"])
    error = refused(cancer_predictor, rows)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    for text in (
        "'mean_radius': missing",
        "'colour': not an input",
        "'mean_texture': expected double, got string",
    ):
        assert text in error.details()
    assert set(field_violations(error)) == {"mean_radius", "colour", "mean_texture"}
    assert dict(error.trailing_metadata())["x-request-id"]


def test_empty_frame_and_too_many_rows_are_invalid_arguments(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    empty = refused(cancer_predictor, registry.cancer_features.head(0))
    assert empty.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "no rows" in empty.details()
    too_many = refused(cancer_predictor, registry.cancer_features.head(51))  # limit is 50
    assert too_many.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "51 rows; the limit is 50" in too_many.details()


def test_a_malformed_frame_is_an_invalid_argument_naming_the_column(
    cancer_predictor: PredictorUnderTest,
) -> None:
    frame = frame_pb2.Frame(row_count=2)
    column = frame.columns.add(name="mean_radius")
    column.double_values.values.extend([1.0])  # one value for two rows
    stub = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(predictor_pb2.PredictRequest(inputs=frame), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "mean_radius": "double_values holds 1 values; expected 2 (row_count)"
    }


def test_another_models_name_is_not_found(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    error = refused(cancer_predictor, registry.cancer_features.head(1), model_name="churn")
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'churn' is not served here" in error.details()


def test_model_info_describes_the_served_model(cancer_predictor: PredictorUnderTest) -> None:
    stub = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    info = stub.GetModelInfo(predictor_pb2.GetModelInfoRequest(model_name="cancer_rf"), timeout=10)
    assert (info.model_name, info.model_version, info.alias) == ("cancer_rf", "1", "production")
    assert info.problem_type == pipeline_pb2.PROBLEM_TYPE_CLASSIFICATION
    assert list(info.classes) == ["0", "1"]
    assert info.input_schema[0] == frame_pb2.ColumnSchema(
        name="mean_radius", type=frame_pb2.COLUMN_TYPE_DOUBLE, required=True
    )


def test_pycaret_pipeline_serves_labels_and_nullable_integers(
    pycaret_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.pycaret_features.iloc[:6].copy()
    rows["visits"] = pd.array([None, 3, None, 7, 1, None], dtype="Int64")
    response = call_predict(pycaret_predictor, rows, include_probabilities=True)
    model = load_model(ModelReference.parse("pycaret_lr"), registry.tracking_uri)
    expected = model.estimator.predict(rows.astype({"visits": "float64"}))
    assert column_to_series(response.predictions, 6).tolist() == list(expected)
    probabilities = frame_to_dataframe(response.probabilities)
    assert list(probabilities.columns) == ["benign", "malignant"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_pycaret_optional_column_must_still_be_present(
    pycaret_predictor: PredictorUnderTest, registry: Registry
) -> None:
    # PyCaret raises KeyError on a missing "optional" column; the predictor refuses it first.
    error = refused(pycaret_predictor, registry.pycaret_features.head(2).drop(columns="visits"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"visits": "missing; expected a int64 column"}


def test_regression_predictions_and_no_probabilities(
    regression_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.diabetes_features.head(3)
    response = call_predict(regression_predictor, rows)
    model = load_model(ModelReference.parse("diabetes_ridge"), registry.tracking_uri)
    np.testing.assert_allclose(
        column_to_series(response.predictions, 3), model.estimator.predict(rows)
    )
    error = refused(regression_predictor, rows, include_probabilities=True)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"include_probabilities"}
