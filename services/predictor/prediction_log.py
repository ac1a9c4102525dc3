"""Logs every prediction to the store, off the request path.

A request hands over its rows in O(1) (a deque append under a lock) once its reply is sent; a
background thread turns them into `PredictionRecord`s and writes them in batches. The buffer is
bounded in rows: when the store is slow or down, new rows are dropped and counted instead of
growing memory or slowing predictions. A failed write drops that batch (counted and logged); it
is not retried, so an outage cannot build a backlog that would then compete with live traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.common.store import PredictionRecord, PredictionSource, Store

if TYPE_CHECKING:  # the core imports this module
    from mlplatform.predictor.prediction_service import PredictionResult

logger = logging.getLogger(__name__)

#: Most one warning about dropped rows per this many seconds.
_WARN_INTERVAL_S = 30.0


def _plain(value: Any) -> Any:
    """A cell as JSON knows it: missing values (NaN, None, pd.NA) as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def to_records(result: PredictionResult) -> list[PredictionRecord]:
    """One PredictionRecord per row of `result`."""
    # Not DataFrame.to_dict("records"): it costs tens of times more per row than plain lists.
    names = [str(name) for name in result.features.columns]
    input_rows = [dict(zip(names, row, strict=True)) for row in result.features.to_numpy().tolist()]
    predictions = result.predictions.tolist()
    probability_rows = None if result.probabilities is None else result.probabilities.tolist()
    keys, model = result.prediction_keys, result.model
    records = []
    for row_index, (input_row, prediction) in enumerate(zip(input_rows, predictions, strict=True)):
        probabilities = None
        if probability_rows is not None:
            probabilities = dict(zip(model.class_names, probability_rows[row_index], strict=True))
        records.append(
            PredictionRecord(
                model_name=model.name,
                model_version=model.version,
                input_row={name: _plain(value) for name, value in input_row.items()},
                prediction=_plain(prediction),
                probabilities=probabilities,
                source=PredictionSource.ONLINE,
                request_id=result.request_id,
                row_index=row_index,
                prediction_key=None if keys is None else keys[row_index],
                latency_ms=result.latency_s * 1000.0,
                created_at=result.created_at,
            )
        )
    return records


class PredictionLog:
    """Bounded buffer + background writer of prediction records."""

    def __init__(
        self,
        store: Store,
        max_buffered_rows: int,
        flush_rows: int,
        flush_interval_s: float,
        on_dropped: Callable[[int], None],
        on_written: Callable[[int], None],
    ) -> None:
        self._store = store
        self._max_buffered_rows = max_buffered_rows
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._pending: deque[PredictionResult] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="mlp-prediction-log", daemon=True)
        self._last_warning = 0.0
        self.dropped_rows = 0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, result: PredictionResult) -> bool:
        """Queue `result`'s rows for writing; False (and counted) when the buffer is full."""
        rows = len(result.predictions)
        with self._lock:
            if self._closing or self._pending_rows + rows > self._max_buffered_rows:
                accepted = False
            else:
                self._pending.append(result)
                self._pending_rows += rows
                accepted = True
                full_enough = self._pending_rows >= self._flush_rows
        if not accepted:
            self._dropped(rows, "the prediction log buffer is full")
        elif full_enough:
            self._wake.set()
        return accepted

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is buffered (for at most `timeout_s`), then stop the writer thread."""
        with self._lock:
            self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("prediction log still writing after %.0f s; giving up", timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            self._flush()
            with self._lock:
                if self._closing and not self._pending:
                    return

    def _take(self) -> list[PredictionResult]:
        """Up to about `flush_rows` rows of whole requests from the buffer."""
        taken: list[PredictionResult] = []
        rows = 0
        with self._lock:
            while self._pending and rows < self._flush_rows:
                result = self._pending.popleft()
                taken.append(result)
                rows += len(result.predictions)
            self._pending_rows -= rows
        return taken

    def _flush(self) -> None:
        while batch := self._take():
            rows = sum(len(result.predictions) for result in batch)
            try:
                records = [record for result in batch for record in to_records(result)]
                self._store.append_predictions(records)
            except Exception as error:  # any store failure: count, warn, keep serving
                self._dropped(rows, f"writing to the store failed: {error!r}")
            else:
                self._on_written(rows)

    def _dropped(self, rows: int, reason: str) -> None:
        with self._lock:  # the request path and the writer thread both drop
            self.dropped_rows += rows
        self._on_dropped(rows)
        now = time.monotonic()
        if now - self._last_warning >= _WARN_INTERVAL_S:
            self._last_warning = now
            logger.warning(
                "dropped %d prediction rows (%d so far): %s", rows, self.dropped_rows, reason
            )
