"""`BatchPredictions`: the columnar chunk the batch inferer hands the store, checked once."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplatform.common.store import BatchPredictions, InvalidRecordError
from mlplatform.common.store.sqlite import SQLiteStore

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def chunk(**overrides: Any) -> BatchPredictions:
    fields: dict[str, Any] = {
        "model_name": "churn",
        "model_version": "1",
        "batch_id": "batch-1",
        "row_offset": 0,
        "inputs": pd.DataFrame({"x": [1.0, 2.0], "plan": ["basic", None]}),
        "predictions": np.array([0, 1]),
        "probabilities": np.array([[0.75, 0.25], [0.5, 0.5]]),
        "class_names": ("0", "1"),
        "latency_ms": 0.5,
        "created_at": T0,
    }
    fields.update(overrides)
    return BatchPredictions(**fields)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model_name": ""}, "model_name"),
        ({"model_version": ""}, "model_version"),
        ({"batch_id": ""}, "batch_id"),
        ({"batch_id": None}, "batch_id"),
        ({"row_offset": -1}, "row_offset"),
        ({"row_offset": True}, "row_offset"),
        ({"inputs": [{"x": 1.0}]}, "inputs"),
        ({"inputs": pd.DataFrame({0: [1.0, 2.0]})}, "inputs"),
        ({"inputs": pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], columns=["x", "x"])}, "inputs"),
        ({"predictions": np.array([0, 1, 1])}, "predictions"),
        ({"predictions": np.array(1)}, "predictions"),
        ({"probabilities": np.array([[0.5, 0.5]])}, "probabilities"),
        ({"probabilities": np.array([[0.5, 0.5], [math.nan, 0.5]])}, "probabilities"),
        ({"probabilities": np.array([[0.5, 0.5], [math.inf, 0.5]])}, "probabilities"),
        ({"class_names": ("0",)}, "probabilities"),
        ({"class_names": (0, 1)}, "class_names"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"latency_ms": math.nan}, "latency_ms"),
        ({"created_at": datetime(2024, 5, 1)}, "created_at"),  # naive: no timezone
    ],
)
def test_invalid_chunks_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        chunk(**overrides)
    assert caught.value.field == field


def test_values_are_normalised_as_records_normalise_them() -> None:
    made = chunk(
        model_version=4,
        created_at=datetime(2024, 5, 1, 14, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2))),
        predictions=[0, 1],
    )
    assert made.model_version == "4"
    assert made.created_at == datetime(2024, 5, 1, 12, 0, 0, 987000, tzinfo=UTC)
    assert made.created_at.utcoffset() == timedelta(0)
    assert isinstance(made.predictions, np.ndarray)
    assert len(made) == 2 and made.row_indexes == range(0, 2)
    assert [record.model_dump() for record in made.records()] == [
        {
            "model_name": "churn",
            "model_version": "4",
            "input_row": {"x": 1.0, "plan": "basic"},
            "prediction": 0,
            "probabilities": {"0": 0.75, "1": 0.25},
            "source": "batch",
            "request_id": None,
            "batch_id": "batch-1",
            "row_index": 0,
            "latency_ms": 0.5,
            "created_at": made.created_at,
            "prediction_key": None,
        },
        {
            "model_name": "churn",
            "model_version": "4",
            "input_row": {"x": 2.0, "plan": None},
            "prediction": 1,
            "probabilities": {"0": 0.5, "1": 0.5},
            "source": "batch",
            "request_id": None,
            "batch_id": "batch-1",
            "row_index": 1,
            "latency_ms": 0.5,
            "created_at": made.created_at,
            "prediction_key": None,
        },
    ]


def test_input_rows_match_pandas_own_conversion_for_every_dtype() -> None:
    inputs = pd.DataFrame(
        {
            "f64": [1.5, math.nan, -math.inf],
            "f32": np.array([0.1, math.nan, 2.0], dtype=np.float32),
            "i8": np.array([1, -2, 3], dtype=np.int8),
            "u64": np.array([2**64 - 1, 0, 1], dtype=np.uint64),
            "flag": [True, False, True],
            "text": ["a", None, "ü"],
            "Int64": pd.array([1, None, 3], dtype="Int64"),
            "boolean": pd.array([None, True, False], dtype="boolean"),
            "string": pd.array(["x", None, "z"], dtype="string"),
            "when": pd.to_datetime(["2024-05-01", None, "2024-05-03"]),
            "objects": [np.int64(3), 1.5, None],
        }
    )
    made = chunk(inputs=inputs, predictions=np.zeros(3), probabilities=None)
    expected = inputs.astype(object).where(inputs.notna(), None).to_dict("records")
    assert made.input_rows() == expected
    assert [list(map(type, row.values())) for row in made.input_rows()] == [
        list(map(type, row.values())) for row in expected
    ]
    finite = made.input_rows(finite_only=True)
    assert finite[2]["f64"] is None and finite[0]["f64"] == 1.5


def test_a_frame_without_columns_gives_empty_rows() -> None:
    made = chunk(inputs=pd.DataFrame(index=range(2)), probabilities=None)
    assert made.input_rows() == [{}, {}]


def test_sqlite_refuses_an_unencodable_input_and_writes_nothing(tmp_path: Path) -> None:
    inputs = pd.DataFrame({"x": [1.0, 2.0], "blob": [object(), "fine"]})
    with SQLiteStore(tmp_path / "store.db") as store:
        with pytest.raises(InvalidRecordError) as caught:
            store.append_batch_predictions(chunk(inputs=inputs))
        assert caught.value.field == "input_row"
        assert store.count_predictions() == 0
