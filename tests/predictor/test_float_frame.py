"""Float frames built through pandas internals answer like the public constructor's."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from mlplatform.common.float_frame import BUILT_DIRECTLY, _public_frame, float_frame

COLUMNS = pd.Index([f"V{index}" for index in range(30)])


def test_the_pinned_pandas_takes_the_direct_route() -> None:
    # If this fails after a pandas upgrade, frames still come out right (the public constructor
    # takes over) but the predictor lost the measured speed-up: see float_frame's doc.
    assert BUILT_DIRECTLY


@pytest.mark.parametrize(
    "matrix",
    [
        np.random.default_rng(0).random((1, 30)),
        np.random.default_rng(1).random((8, 30)),
        # the decoder's matrix is a transposed (columns, rows) array: Fortran-ordered
        np.ascontiguousarray(np.random.default_rng(2).random((30, 3))).T,
        np.empty((0, 30)),
    ],
    ids=["one row", "eight rows", "transposed view", "no rows"],
)
def test_frames_equal_the_public_constructors_and_share_the_matrix(matrix: np.ndarray) -> None:
    frame = float_frame(matrix, COLUMNS)
    pd.testing.assert_frame_equal(frame, _public_frame(matrix, COLUMNS))
    assert isinstance(frame.index, pd.RangeIndex)
    if matrix.size:
        assert np.shares_memory(frame.to_numpy(), matrix)


def test_other_dtypes_go_through_the_public_constructor() -> None:
    matrix = np.arange(6, dtype=np.int64).reshape(2, 3)
    frame = float_frame(matrix, pd.Index(["a", "b", "c"]))
    assert list(frame.dtypes) == [np.int64] * 3
    assert frame["c"].tolist() == [2, 5]


def test_a_model_fitted_on_named_columns_takes_the_frame_without_complaint() -> None:
    training = _public_frame(np.random.default_rng(3).random((20, 30)), COLUMNS)
    scaler = StandardScaler().fit(training)
    matrix = training.to_numpy()[:4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names" would raise
        scaled = scaler.transform(float_frame(matrix, COLUMNS))
    np.testing.assert_allclose(scaled, scaler.transform(training.iloc[:4]))
    frame = float_frame(matrix, COLUMNS)
    frame["V0"] = 0.0  # a model that sets a column of its input can (a block split)
    assert frame["V0"].tolist() == [0.0] * 4
    assert frame["V1"].tolist() == matrix[:, 1].tolist()
