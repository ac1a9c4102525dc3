"""Predicting one part of a batch: plain functions, no transport.

A part's message is decoded and its rows checked against the model's input schema apart from
being predicted, so the inferer can prepare the next part while the model predicts this one.
Rows are predicted in chunks (a PyCaret pipeline is much faster per row on hundreds of rows
than on one, and chunks bound the memory of a large part). Each chunk's results stay columns
(`BatchPredictions`), which the store writes as rows keyed by (batch_id, row index) without
building a record object per row. Each chunk goes to `on_chunk` as soon as it is predicted, so
the caller can store it while the next one is predicted. A part sent with a key column has
that column taken off before the schema check; each row's key is stored with its prediction
(see `prediction_keys`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from mlplatform.client.frames import frame_to_dataframe
from mlplatform.common.consumer import Delivery, decode_message
from mlplatform.common.model_loading import LoadedModel
from mlplatform.common.prediction_keys import split_key_column
from mlplatform.common.store import BatchPredictions, utc_now
from mlplatform.v1 import messages_pb2

DEFAULT_CHUNK_ROWS = 2048


def decode_request(delivery: Delivery) -> messages_pb2.BatchPredictionRequest | str:
    """The request, or the reason it cannot be one (naming the field)."""
    request = decode_message(delivery, messages_pb2.BatchPredictionRequest)
    if isinstance(request, str):
        return request
    if not request.batch_id:
        return "batch_id is empty; the sender must choose one"
    if not request.model:
        return "model is empty; expected NAME@ALIAS or NAME/VERSION"
    if request.part_count < 1:
        return f"part_count must be at least 1; got {request.part_count}"
    if not 0 <= request.part_index < request.part_count:
        return f"part_index {request.part_index} is outside 0..{request.part_count - 1}"
    if request.row_offset < 0:
        return f"row_offset must not be negative; got {request.row_offset}"
    if request.rows.row_count < 1:
        return "rows holds no row"
    return request


@dataclass(frozen=True)
class PartResult:
    """What predicting one part did: rows predicted, what the model calls cost, and the
    chunks themselves when no `on_chunk` took them."""

    row_count: int
    predict_seconds: float
    chunks: list[BatchPredictions] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedPart:
    """A part's rows as sent (what is stored), as checked (what is predicted), and each row's
    key when the part has a key column."""

    rows: pd.DataFrame
    checked: pd.DataFrame
    keys: list[str | None] | None


def prepare_part(request: messages_pb2.BatchPredictionRequest, model: LoadedModel) -> PreparedPart:
    """The part's rows decoded and checked; raises FrameError or InvalidInputError for bad
    rows."""
    rows = frame_to_dataframe(request.rows)
    keys: list[str | None] | None = None
    if request.key_column:
        rows, keys = split_key_column(rows, request.key_column)
    return PreparedPart(rows, model.check(rows), keys)


def predict_part(
    request: messages_pb2.BatchPredictionRequest,
    model: LoadedModel,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Callable[[BatchPredictions], object] | None = None,
    prepared: PreparedPart | None = None,
) -> PartResult:
    """Predicts every row of a part (prepared here unless `prepared` is given), handing each
    chunk to `on_chunk` (or keeping them in the result); raises FrameError or
    InvalidInputError for bad rows, and InvalidRecordError for model output the store cannot
    keep (e.g. NaN probabilities)."""
    part = prepared or prepare_part(request, model)
    rows, checked, keys = part.rows, part.checked, part.keys
    kept: list[BatchPredictions] = []
    take = kept.append if on_chunk is None else on_chunk
    predict_seconds = 0.0
    created_at = utc_now()
    for start in range(0, len(checked), chunk_rows):
        began = time.perf_counter()
        output = model.predict(
            checked.iloc[start : start + chunk_rows],
            with_probabilities=request.include_probabilities,
        )
        elapsed = time.perf_counter() - began
        predict_seconds += elapsed
        # The rows as sent (not as checked, which may have converted them) are what is kept.
        inputs = rows.iloc[start : start + chunk_rows]
        take(
            BatchPredictions(
                model_name=model.name,
                model_version=model.version,
                batch_id=request.batch_id,
                row_offset=request.row_offset + start,
                inputs=inputs,
                predictions=output.predictions,
                probabilities=output.probabilities,
                class_names=model.class_names if output.probabilities is not None else (),
                latency_ms=elapsed * 1000 / max(len(inputs), 1),
                created_at=created_at,
                prediction_keys=None if keys is None else tuple(keys[start : start + chunk_rows]),
            )
        )
    return PartResult(len(checked), predict_seconds, kept)
