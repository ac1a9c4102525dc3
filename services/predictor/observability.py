"""What the predictor tells its logs and traces about each call, kept out of the serving code:
the ids a call's log lines carry, the attributes of its span, and the batch it joined.

The span itself is the gRPC instrumentation's (one SERVER span per call, continuing the
caller's trace from the call's metadata; `mlp predictor` installs it when tracing is on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry import trace

from mlplatform.common.log_setup import add_ids
from mlplatform.common.model_loading import LoadedModel


class BatchedCall(Protocol):
    """A call in the batcher: its caller's span and its rows."""

    span: trace.Span

    @property
    def rows(self) -> int: ...


def note_prediction(model: LoadedModel, rows: int) -> None:
    """The model a call is answered by, in its log ids and span; the rows in its span."""
    add_ids(model_name=model.name, model_version=model.version)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("mlp.rows", rows)


def note_batch(calls: Sequence[BatchedCall]) -> None:
    """Each call predicted together in one model call gets an event saying with how many."""
    recording = [call.span for call in calls if call.span.is_recording()]
    if not recording:
        return
    attributes = {"mlp.batch.requests": len(calls), "mlp.batch.rows": sum(c.rows for c in calls)}
    for span in recording:
        span.add_event("predicted in a batch", attributes)
