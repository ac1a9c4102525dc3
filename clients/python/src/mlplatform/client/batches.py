"""Submitting batch predictions: a table split into `BatchPredictionRequest` messages.

Each part carries its rows' offset in the batch, so every row has a stable key
(batch_id, row index) however often its message is delivered. With a key column, each row
also carries the caller's own key (its prediction key), which outcomes may name instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from opentelemetry import trace

from mlplatform.client import messaging
from mlplatform.client.frames import dataframe_to_frame
from mlplatform.client.tls import TlsFiles
from mlplatform.v1 import messages_pb2

_tracer = trace.get_tracer("mlplatform.client")

DEFAULT_ROWS_PER_MESSAGE = 5000


@dataclass(frozen=True)
class BatchSubmission:
    """What was published."""

    batch_id: str
    part_count: int
    row_count: int


def batch_parts(
    rows: pd.DataFrame,
    model: str,
    batch_id: str,
    rows_per_message: int = DEFAULT_ROWS_PER_MESSAGE,
    include_probabilities: bool = False,
    key_column: str | None = None,
) -> list[messages_pb2.BatchPredictionRequest]:
    """The messages of a batch, in order; `key_column` names the column of `rows` holding
    each row's prediction key (not a model input: the inferer takes it off)."""
    if rows_per_message < 1:
        raise ValueError(f"rows_per_message must be at least 1; got {rows_per_message}")
    if rows.empty:
        raise ValueError("the batch holds no rows")
    if key_column is not None and key_column not in rows.columns:
        raise ValueError(f"key column {key_column!r} is not a column of the rows")
    offsets = range(0, len(rows), rows_per_message)
    return [
        messages_pb2.BatchPredictionRequest(
            request_id=f"{batch_id}:{part_index}",
            batch_id=batch_id,
            model=model,
            rows=dataframe_to_frame(rows.iloc[offset : offset + rows_per_message]),
            row_offset=offset,
            part_index=part_index,
            part_count=len(offsets),
            include_probabilities=include_probabilities,
            key_column=key_column or "",
        )
        for part_index, offset in enumerate(offsets)
    ]


def submit_batch(
    rows: pd.DataFrame,
    model: str,
    *,
    broker_url: str | None = None,
    broker_tls: TlsFiles | None = None,
    batch_id: str | None = None,
    rows_per_message: int = DEFAULT_ROWS_PER_MESSAGE,
    include_probabilities: bool = False,
    key_column: str | None = None,
    queue: messaging.WorkQueue = messaging.BATCHES,
    on_part: Callable[[int, int], None] | None = None,
) -> BatchSubmission:
    """Publishes a batch with publisher confirms; `on_part(done, total)` reports progress.

    `model` is `NAME@ALIAS` or `NAME/VERSION`; `broker_tls`: the TLS files of an `amqps://`
    URL (default: `MLP_BROKER_TLS_*`); `key_column`: see `batch_parts`. Raises FrameError
    for a column that cannot travel (its message names it) and ValueError for an empty table
    or a key column the rows do not have.
    """
    batch_id = batch_id or messaging.new_id()
    parts = batch_parts(rows, model, batch_id, rows_per_message, include_probabilities, key_column)
    # One span for the batch: its parts' publish spans, and the inferers' work on each part,
    # belong to one trace.
    span_attributes = {"mlp.batch_id": batch_id, "mlp.batch.parts": len(parts)}
    with (
        _tracer.start_as_current_span("submit batch", attributes=span_attributes),
        messaging.open_channel(broker_url, broker_tls) as (opened, version),
    ):
        channel = messaging.ensure_work_queue(opened, queue, version)
        for done, part in enumerate(parts, start=1):
            messaging.submit_job(channel, queue, part, part.request_id)
            if on_part is not None:
                on_part(done, len(parts))
    return BatchSubmission(batch_id, len(parts), len(rows))
