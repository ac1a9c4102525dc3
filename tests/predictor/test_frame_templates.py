"""The all-double frame templates (plain functions): a frame they read gives the same rows as
decoding and checking it, and any frame the check would treat differently is left to it."""

from __future__ import annotations

import grpc
import numpy as np
import pandas as pd
import pytest
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.input_schema import (
    ColumnKind,
    ColumnSpec,
    DoublesLayout,
    DoublesRows,
    ProblemType,
    check_input_rows,
)
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.frame_templates import MOST_TEMPLATE_ROWS, FrameTemplates
from mlplatform.predictor.servicer import PredictorServicer, decode_columns
from mlplatform.v1 import frame_pb2, predictor_pb2, predictor_pb2_grpc

NAMES = ("amount", "age", "score")
SCHEMA = tuple(ColumnSpec(name, ColumnKind.DOUBLE, required=True) for name in NAMES)


def rows_of(count: int, names: tuple[str, ...] = NAMES) -> pd.DataFrame:
    values = np.arange(count * len(names), dtype=np.float64).reshape(count, len(names)) / 7 - 3
    return pd.DataFrame(values, columns=list(names))


def templates(schema: tuple[ColumnSpec, ...] = SCHEMA) -> FrameTemplates:
    layout = DoublesLayout.of(schema)
    assert layout is not None
    return FrameTemplates(layout)


def wire_round_trip(frame: frame_pb2.Frame, extra: bytes = b"") -> frame_pb2.Frame:
    """The frame as the server sees it: parsed from the bytes a client sent."""
    return frame_pb2.Frame.FromString(frame.SerializeToString() + extra)


@pytest.mark.parametrize("count", [1, 2, 5, MOST_TEMPLATE_ROWS])
def test_a_matching_frame_reads_as_decoding_and_checking_it_would(count: int) -> None:
    frame = wire_round_trip(dataframe_to_frame(rows_of(count)))
    read = templates().rows(frame)
    assert isinstance(read, DoublesRows)
    checked = check_input_rows(decode_columns(frame), SCHEMA)
    assert isinstance(checked, DoublesRows)
    np.testing.assert_array_equal(read.matrix, checked.matrix)
    np.testing.assert_array_equal(read.matrix, rows_of(count).to_numpy())
    pd.testing.assert_frame_equal(read.to_frame(), checked.to_frame())


def test_special_doubles_keep_their_values() -> None:
    rows = pd.DataFrame({"amount": [-0.0], "age": [np.finfo(np.float64).max], "score": [5e-324]})
    read = templates().rows(wire_round_trip(dataframe_to_frame(rows)))
    assert read is not None
    np.testing.assert_array_equal(read.matrix, rows.to_numpy())
    assert np.signbit(read.matrix[0, 0])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinity_is_left_to_the_check_even_where_values_may_be_missing(value: float) -> None:
    """The check names the column and row of an infinity; the templates do not read one."""
    frame = wire_round_trip(dataframe_to_frame(rows_of(2).assign(age=[1.0, value])))
    assert templates().rows(frame) is None
    all_optional = tuple(ColumnSpec(spec.name, spec.kind, required=False) for spec in SCHEMA)
    assert templates(all_optional).rows(frame) is None


def frame_with_missing_mask() -> frame_pb2.Frame:
    frame = dataframe_to_frame(rows_of(2))
    frame.columns[1].missing.extend([False, False])
    return frame


def frame_with_int_column() -> frame_pb2.Frame:
    frame = dataframe_to_frame(rows_of(1))
    frame.columns[2].int64_values.values.append(4)  # replaces the oneof's double values
    return frame


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(dataframe_to_frame(rows_of(2)[["age", "amount", "score"]]), id="reordered"),
        pytest.param(dataframe_to_frame(rows_of(2)[["amount", "age"]]), id="a-column-missing"),
        pytest.param(dataframe_to_frame(rows_of(2).assign(extra=1.0)), id="an-extra-column"),
        pytest.param(
            dataframe_to_frame(rows_of(2).rename(columns={"age": "agE"})), id="a-renamed-column"
        ),
        pytest.param(frame_with_missing_mask(), id="a-missing-mask"),
        pytest.param(frame_with_int_column(), id="an-int64-column"),
        pytest.param(dataframe_to_frame(rows_of(0)), id="no-rows"),
        pytest.param(dataframe_to_frame(rows_of(MOST_TEMPLATE_ROWS + 1)), id="too-many-rows"),
    ],
)
def test_frames_that_are_not_the_models_are_left_to_the_general_path(
    frame: frame_pb2.Frame,
) -> None:
    assert templates().rows(wire_round_trip(frame)) is None


def test_a_frame_with_fields_this_version_does_not_know_is_left_to_the_general_path() -> None:
    unknown_varint_field_15 = b"\x78\x01"
    frame = wire_round_trip(dataframe_to_frame(rows_of(1)), extra=unknown_varint_field_15)
    assert templates().rows(frame) is None


def test_row_count_disagreeing_with_the_values_is_left_to_the_general_path() -> None:
    frame = dataframe_to_frame(rows_of(2))
    frame.row_count = 1
    assert templates().rows(wire_round_trip(frame)) is None


def test_a_value_missing_where_the_model_needs_one_is_left_to_the_check() -> None:
    """NaN sent as a double (no missing mask) in a required column: the check names it."""
    rows = rows_of(2)
    rows.loc[1, "age"] = np.nan
    frame = frame_pb2.Frame(row_count=2)
    for name in NAMES:
        frame.columns.add(name=name).double_values.values.extend(rows[name].tolist())
    assert templates().rows(wire_round_trip(frame)) is None
    optional_age = tuple(
        ColumnSpec(spec.name, spec.kind, required=spec.name != "age") for spec in SCHEMA
    )
    read = templates(optional_age).rows(wire_round_trip(frame))
    assert read is not None and np.isnan(read.matrix[1, 1])


def test_over_grpc_a_nan_in_a_required_column_is_still_an_invalid_argument(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    """A frame that matches the template byte for byte but holds NaN goes through the check."""
    rows = registry.cancer_features.head(1)
    frame = frame_pb2.Frame(row_count=1)
    for name in rows.columns:
        value = np.nan if name == "mean_radius" else float(rows[name].iloc[0])
        frame.columns.add(name=name).double_values.values.append(value)
    stub = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(predictor_pb2.PredictRequest(inputs=frame), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'mean_radius': has missing values" in caught.value.details()


def test_over_grpc_matching_and_reordered_frames_get_the_same_predictions(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.iloc[10:13]
    stub = predictor_pb2_grpc.PredictorStub(cancer_predictor.channel)
    answers = [
        stub.Predict(
            predictor_pb2.PredictRequest(inputs=dataframe_to_frame(frame)), timeout=10
        ).predictions.int64_values.values[:]
        for frame in (rows, rows[list(reversed(rows.columns))])
    ]
    assert answers[0] == answers[1]
    assert len(answers[0]) == 3


def loaded(schema: tuple[ColumnSpec, ...]) -> LoadedModel:
    return LoadedModel("m", "1", None, None, schema, ProblemType.REGRESSION)


def test_the_servicer_reads_through_the_templates_of_the_model_it_is_given() -> None:
    """After a hot reload the next request meets the new model's templates, not the old's."""
    servicer = PredictorServicer(service=None)  # type: ignore[arg-type]  # the method needs none
    first, renamed = (
        loaded(SCHEMA),
        loaded(tuple(ColumnSpec(n.upper(), ColumnKind.DOUBLE) for n in NAMES)),
    )
    frame = wire_round_trip(dataframe_to_frame(rows_of(1)))
    assert servicer._template_rows(first, frame) is not None
    assert servicer._template_rows(renamed, frame) is None
    upper = wire_round_trip(dataframe_to_frame(rows_of(1, tuple(n.upper() for n in NAMES))))
    assert servicer._template_rows(renamed, upper) is not None
    assert servicer._template_rows(first, frame) is not None
    with_text = loaded((*SCHEMA, ColumnSpec("city", ColumnKind.STRING)))
    assert with_text.doubles_layout is None
    assert servicer._template_rows(with_text, frame) is None


def test_over_grpc_the_row_limit_holds_for_frames_the_templates_read(
    background_loop: BackgroundLoop, registry: Registry
) -> None:
    predictor = start_test_predictor(
        background_loop,
        "cancer_rf",
        registry.tracking_uri,
        log_predictions=False,
        max_request_rows=2,
    )
    try:
        stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
        rows = registry.cancer_features.head(3)
        request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "3 rows; the limit is 2" in caught.value.details()
        request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows.head(2)))
        assert len(stub.Predict(request, timeout=10).predictions.int64_values.values) == 2
    finally:
        predictor.stop()
