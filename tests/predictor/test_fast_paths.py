"""The all-double fast paths against the plain path, on random frames.

Plain path: the shared frame codec (`frame_to_dataframe`) or the V2 codec's tensor-by-tensor
reader (`request_to_columns`), then the general check. Fast paths: the native codec's one-pass
matrix, the V2 codec's one-operation matrix (one tensor per column, or one [rows, columns]
tensor), the check's pass-through of `DoublesRows`, the batcher's stacking, and a compiled
model taking the batch's matrix rather than a DataFrame. Both must give the same rows (and
answers) bit for bit (NaN, -0.0, the largest and smallest doubles), or refuse the same rows
naming the same columns. Then over gRPC: both V2 forms and the native frame get the same
predictions, and refusals are INVALID_ARGUMENT with the column in BadRequest.
"""

from __future__ import annotations

import grpc
import numpy as np
import pandas as pd
import pytest
from google.rpc import error_details_pb2, status_pb2
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.client.frames import dataframe_to_frame, frame_to_dataframe
from mlplatform.common.compiled_model import compile_pipeline
from mlplatform.common.input_schema import (
    ColumnKind,
    ColumnSpec,
    DoublesRows,
    InvalidInputError,
    ProblemType,
    as_frame,
)
from mlplatform.common.model_loading import LoadedModel, ModelReference, load_model
from mlplatform.common.store import Store
from mlplatform.predictor import kserve_codec
from mlplatform.predictor.model_call import concat_rows, predict_together
from mlplatform.predictor.native_codec import decode_frame
from mlplatform.v1 import frame_pb2, predictor_pb2, predictor_pb2_grpc

NAMES = ("amount", "age", "score", "ratio", "tiny")
SCHEMA = tuple(
    ColumnSpec(name, ColumnKind.DOUBLE, required=name in ("amount", "age")) for name in NAMES
)
SPECIAL = np.array([0.0, -0.0, np.nan, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324])
MODEL = LoadedModel("m", "1", None, None, SCHEMA, ProblemType.REGRESSION)


def random_rows(seed: int) -> pd.DataFrame:
    """1-64 rows of doubles: ordinary values over 600 orders of magnitude, with NaN, +-0,
    the largest and smallest doubles sprinkled in; now and then an infinity, or a NaN in a
    required column."""
    generator = np.random.default_rng(seed)
    count = int(generator.integers(1, 65))
    values = generator.normal(size=(count, len(NAMES))) * 10.0 ** generator.integers(
        -300, 300, size=(count, len(NAMES))
    )
    special = generator.random(values.shape) < 0.2
    values[special] = generator.choice(SPECIAL, size=int(special.sum()))
    if seed % 4 != 1:  # most frames keep their required columns whole, so the check takes them
        required = values[:, :2]
        required[np.isnan(required)] = -0.0
    if seed % 5 == 0:
        values[generator.integers(count), generator.integers(len(NAMES))] = np.inf
    return pd.DataFrame(values, columns=list(NAMES))


def bits(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame.to_numpy(np.float64)).view(np.uint64)


def assert_same_outcome(fast: object, plain: object) -> None:
    """The same frame bit for bit, or the same refusal."""
    outcomes = []
    for features in (fast, plain):
        try:
            outcomes.append(as_frame(MODEL.check_rows(features, 100)))
        except InvalidInputError as error:
            outcomes.append(error)
    fast_outcome, plain_outcome = outcomes
    if isinstance(plain_outcome, InvalidInputError):
        assert isinstance(fast_outcome, InvalidInputError)
        assert fast_outcome.problems == plain_outcome.problems
        return
    assert isinstance(fast_outcome, pd.DataFrame)
    assert list(fast_outcome.columns) == list(plain_outcome.columns)
    assert fast_outcome.index.equals(plain_outcome.index)
    np.testing.assert_array_equal(bits(fast_outcome), bits(plain_outcome))


def per_column_request(rows: pd.DataFrame) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="m")
    for name in rows.columns:
        request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
        request.raw_input_contents.append(rows[name].to_numpy(np.float64).tobytes())
    return v2.ModelInferRequest.FromString(request.SerializeToString())


def matrix_request(rows: pd.DataFrame) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="m")
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.to_numpy(np.float64).tobytes())
    return v2.ModelInferRequest.FromString(request.SerializeToString())


SEEDS = range(30)


def test_the_check_refuses_some_random_frames_and_accepts_most() -> None:
    """The random frames exercise both outcomes (else the comparisons below prove little)."""
    refused = 0
    for seed in SEEDS:
        try:
            MODEL.check_rows(frame_to_dataframe(dataframe_to_frame(random_rows(seed))), 100)
        except InvalidInputError:
            refused += 1
    assert 3 <= refused <= len(SEEDS) - 8


def unmasked_frame(rows: pd.DataFrame) -> frame_pb2.Frame:
    """The frame with NaN sent as a double, as clients other than ours may send it (the shared
    codec sends NaN as a missing value, which the one-pass matrix leaves to the columns)."""
    frame = frame_pb2.Frame(row_count=len(rows))
    for name in rows.columns:
        frame.columns.add(name=name).double_values.values.extend(rows[name].tolist())
    return frame_pb2.Frame.FromString(frame.SerializeToString())


@pytest.mark.parametrize("seed", SEEDS)
def test_the_native_matrix_equals_the_shared_codec(seed: int) -> None:
    rows = random_rows(seed)
    frame = unmasked_frame(rows)
    fast = decode_frame(frame)
    assert isinstance(fast, DoublesRows)
    assert_same_outcome(fast, frame_to_dataframe(frame))
    masked = frame_pb2.Frame.FromString(dataframe_to_frame(rows).SerializeToString())
    assert_same_outcome(decode_frame(masked), frame_to_dataframe(masked))


@pytest.mark.parametrize("seed", SEEDS)
def test_v2_tensors_read_as_one_matrix_equal_the_tensor_by_tensor_reader(seed: int) -> None:
    rows = random_rows(seed)
    request = per_column_request(rows)
    fast, wanted = kserve_codec.decode_request(request, MODEL)
    assert isinstance(fast, DoublesRows) and wanted == ("prediction",)
    assert_same_outcome(fast, kserve_codec.request_to_columns(request))
    matrix, _ = kserve_codec.decode_request(matrix_request(rows), MODEL)
    assert isinstance(matrix, DoublesRows)
    assert_same_outcome(matrix, kserve_codec.request_to_columns(request))


@pytest.mark.parametrize("seed", SEEDS)
def test_reordered_columns_take_the_general_path_with_the_same_outcome(seed: int) -> None:
    rows = random_rows(seed)[list(reversed(NAMES))]
    frame = unmasked_frame(rows)
    assert_same_outcome(decode_frame(frame), frame_to_dataframe(frame))
    request = per_column_request(rows)
    fast, _ = kserve_codec.decode_request(request, MODEL)
    assert_same_outcome(fast, kserve_codec.request_to_columns(request))


def test_stacked_matrices_equal_concatenated_frames() -> None:
    parts = []
    for seed in SEEDS:
        try:
            parts.append(MODEL.check_rows(decode_frame(unmasked_frame(random_rows(seed)))))
        except InvalidInputError:
            continue
    assert all(isinstance(part, DoublesRows) for part in parts)
    stacked = concat_rows(parts)
    assert isinstance(stacked, DoublesRows)
    stacked = stacked.to_frame()
    plain = pd.concat([as_frame(part) for part in parts], ignore_index=True)
    assert stacked.index.equals(plain.index) and list(stacked.columns) == list(plain.columns)
    np.testing.assert_array_equal(bits(stacked), bits(plain))


@pytest.fixture(scope="module")
def compiled_models() -> list[LoadedModel]:
    """A classifier and a regressor over SCHEMA, compiled by ONNX Runtime."""
    generator = np.random.default_rng(7)
    features = pd.DataFrame(generator.normal(size=(300, len(NAMES))), columns=list(NAMES))
    target = features["amount"] + features["score"] > 0
    models = []
    for problem_type, estimator, labels in (
        (ProblemType.CLASSIFICATION, RandomForestClassifier(8, max_depth=5), target),
        (ProblemType.REGRESSION, RandomForestRegressor(8, max_depth=5), features["age"] * 3),
    ):
        pipeline = Pipeline([("scale", StandardScaler()), ("model", estimator)]).fit(
            features, labels
        )
        classes = (False, True) if problem_type is ProblemType.CLASSIFICATION else ()
        compiled = compile_pipeline(pipeline, SCHEMA, problem_type)
        models.append(
            LoadedModel("m", "1", None, pipeline, SCHEMA, problem_type, classes, compiled=compiled)
        )
    return models


def test_a_compiled_model_answers_the_stacked_matrix_as_it_answers_the_frames(
    compiled_models: list[LoadedModel],
) -> None:
    """The fast path (a batch's all-double matrix straight to ONNX Runtime) against the plain
    one (each request's DataFrame): the same predictions and probabilities bit for bit, for
    one request at a time and for batches stacked and cut into chunks."""
    parts = []
    for seed in SEEDS:
        try:
            parts.append(MODEL.check_rows(decode_frame(unmasked_frame(random_rows(seed)))))
        except InvalidInputError:
            continue
    assert all(isinstance(part, DoublesRows) for part in parts) and len(parts) >= 8
    for model in compiled_models:
        plain = [model.predict(as_frame(part), with_probabilities=True) for part in parts]
        alone = [predict_together(model, [part], [True], 64)[0] for part in parts]
        together = predict_together(model, parts, [True] * len(parts), 16)
        for fast_outputs in (alone, together):
            for fast, expected in zip(fast_outputs, plain, strict=True):
                np.testing.assert_array_equal(fast.predictions, expected.predictions)
                if expected.probabilities is None:
                    assert fast.probabilities is None
                else:
                    np.testing.assert_array_equal(fast.probabilities, expected.probabilities)


def test_a_matrix_of_the_wrong_width_or_datatype_is_refused_naming_the_tensor() -> None:
    rows = random_rows(1).iloc[:, :4]
    with pytest.raises(Exception, match=r"expected \[rows, 5\]") as caught:
        kserve_codec.decode_request(matrix_request(rows), MODEL)
    assert caught.value.column == "input-0"
    request = matrix_request(random_rows(1))
    request.inputs[0].datatype = "FP32"
    with pytest.raises(Exception, match="must be FP64") as caught:
        kserve_codec.decode_request(request, MODEL)
    assert caught.value.column == "input-0"


# --- over gRPC ----------------------------------------------------------------------------------


def violations(error: grpc.RpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            bad_request = error_details_pb2.BadRequest()
            status.details[0].Unpack(bad_request)
            return {v.field: v.description for v in bad_request.field_violations}
    return {}


def v2_predictions(stub: v2_grpc.GRPCInferenceServiceStub, request: v2.ModelInferRequest) -> list:
    request.model_name = "cancer_rf"
    request.outputs.add(name="prediction")
    response = stub.ModelInfer(request, timeout=10)
    return np.frombuffer(response.raw_output_contents[0], "<i8").tolist()


def test_over_grpc_both_v2_forms_and_the_native_frame_get_the_models_predictions(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.iloc[20:27].reset_index(drop=True)
    model = load_model(ModelReference.parse("cancer_rf"), registry.tracking_uri)
    expected = model.estimator.predict(rows).tolist()
    v2_stub = v2_grpc.GRPCInferenceServiceStub(cancer_predictor.channel)
    native = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    assert v2_predictions(v2_stub, per_column_request(rows)) == expected
    assert v2_predictions(v2_stub, matrix_request(rows)) == expected
    reordered = rows[list(reversed(rows.columns))]
    assert v2_predictions(v2_stub, per_column_request(reordered)) == expected
    for frame in (rows, reordered):
        request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(frame))
        answer = native.Predict(request, timeout=10).predictions.int64_values.values[:]
        assert answer == expected


def refusals_on_every_path(channel: grpc.Channel, rows: pd.DataFrame) -> list[grpc.RpcError]:
    """What the native frame and both V2 forms of `rows` are refused with (each must be)."""
    v2_stub = v2_grpc.GRPCInferenceServiceStub(channel)
    native = predictor_pb2_grpc.PredictorStub(channel)
    calls = [
        lambda: native.Predict(
            predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows)), timeout=10
        ),
        lambda: v2_predictions(v2_stub, per_column_request(rows)),
        lambda: v2_predictions(v2_stub, matrix_request(rows)),
    ]
    errors = []
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        errors.append(caught.value)
    return errors


def test_over_grpc_a_nan_in_a_required_column_is_named_on_every_path(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.head(2).reset_index(drop=True)
    rows.loc[1, "mean_radius"] = np.nan
    for error in refusals_on_every_path(cancer_predictor.channel, rows):
        assert "'mean_radius': has missing values" in error.details()
        assert "has missing values" in violations(error)["mean_radius"]


def test_over_grpc_the_row_limit_holds_on_every_path(
    background_loop: BackgroundLoop, registry: Registry, store: Store
) -> None:
    predictor = start_test_predictor(
        background_loop, "cancer_rf", registry.tracking_uri, store=store, max_request_rows=2
    )
    try:
        rows = registry.cancer_features.head(3).reset_index(drop=True)
        for error in refusals_on_every_path(predictor.channel, rows):
            assert "3 rows; the limit is 2" in error.details()
        v2_stub = v2_grpc.GRPCInferenceServiceStub(predictor.channel)
        assert len(v2_predictions(v2_stub, matrix_request(rows.head(2)))) == 2
    finally:
        predictor.stop()
