"""Predicting one part of a batch: plain functions, no transport.

Rows are checked against the model's input schema, predicted in chunks (a PyCaret pipeline
is much faster per row on hundreds of rows than on one, and chunks bound the memory of a
large part), and turned into one store record per row keyed by (batch_id, row index).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from mlplatform.client.frames import frame_to_dataframe
from mlplatform.common.model_loading import LoadedModel, ModelOutput
from mlplatform.common.store import PredictionRecord, PredictionSource, utc_now
from mlplatform.v1 import messages_pb2

DEFAULT_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class PartResult:
    """The records of one part and what it cost."""

    records: list[PredictionRecord]
    predict_seconds: float


def predict_part(
    request: messages_pb2.BatchPredictionRequest,
    model: LoadedModel,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> PartResult:
    """Predicts every row of a part; raises FrameError or InvalidInputError for bad rows."""
    rows = frame_to_dataframe(request.rows)
    checked = model.check(rows)
    records: list[PredictionRecord] = []
    predict_seconds = 0.0
    created_at = utc_now()
    for start in range(0, len(checked), chunk_rows):
        chunk = checked.iloc[start : start + chunk_rows]
        began = time.perf_counter()
        output = model.predict(chunk, with_probabilities=request.include_probabilities)
        elapsed = time.perf_counter() - began
        predict_seconds += elapsed
        records.extend(
            _records(
                request,
                model,
                rows.iloc[start : start + chunk_rows],
                output,
                start,
                elapsed,
                created_at,
            )
        )
    return PartResult(records, predict_seconds)


def _records(
    request: messages_pb2.BatchPredictionRequest,
    model: LoadedModel,
    inputs: pd.DataFrame,
    output: ModelOutput,
    first_position: int,
    elapsed: float,
    created_at: datetime,
) -> list[PredictionRecord]:
    predictions = output.predictions
    probabilities = output.probabilities
    latency_ms = elapsed * 1000 / max(len(inputs), 1)
    class_names = model.class_names
    input_rows = inputs.astype(object).where(inputs.notna(), None).to_dict("records")
    return [
        PredictionRecord(
            model_name=model.name,
            model_version=model.version,
            input_row=input_row,
            prediction=_plain(predictions[position]),
            probabilities=(
                None
                if probabilities is None
                else dict(zip(class_names, map(float, probabilities[position]), strict=True))
            ),
            source=PredictionSource.BATCH,
            batch_id=request.batch_id,
            row_index=request.row_offset + first_position + position,
            latency_ms=latency_ms,
            created_at=created_at,
        )
        for position, input_row in enumerate(input_rows)
    ]


def _plain(value: object) -> object:
    """numpy scalars as the Python values JSON stores hold."""
    return value.item() if isinstance(value, np.generic) else value
