"""Several processes appending to one SQLite file at once lose no row and hit no error.

The inferer runs N workers on one machine against the default SQLite store; each must be able
to write while the others do, waiting its turn rather than failing with "database is locked".
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlplatform.common.store import PredictionRecord, open_store

PROCESS_COUNT = 4
RECORDS_PER_PROCESS = 2000
BATCH_SIZE = 100
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def append_from_one_process(uri: str, worker: int, start_together: Any, race_open: bool) -> int:
    """A worker process: open the store and append in batches, all workers starting together
    (at the open when `race_open`, else at the first append)."""
    if race_open:
        start_together.wait(timeout=60)
    with open_store(uri) as store:
        if not race_open:
            start_together.wait(timeout=60)
        inserted = 0
        for first in range(0, RECORDS_PER_PROCESS, BATCH_SIZE):
            inserted += store.append_predictions(
                PredictionRecord(
                    model_name="churn",
                    model_version=str(worker),
                    input_row={"worker": worker, "row": row, "feature": row * 0.5},
                    prediction=row % 2,
                    source="batch",
                    batch_id=f"worker-{worker}",
                    row_index=row,
                    created_at=T0 + timedelta(milliseconds=row),
                )
                for row in range(first, first + BATCH_SIZE)
            )
        return inserted


def test_processes_appending_at_once_lose_no_row(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(uri).close()  # the schema exists before the race: only appends compete
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start_together = manager.Barrier(PROCESS_COUNT)
        with context.Pool(PROCESS_COUNT) as pool:
            inserted_per_process = pool.starmap(
                append_from_one_process,
                [(uri, worker, start_together, False) for worker in range(PROCESS_COUNT)],
            )
    assert inserted_per_process == [RECORDS_PER_PROCESS] * PROCESS_COUNT
    with open_store(uri) as store:
        assert store.count_predictions() == PROCESS_COUNT * RECORDS_PER_PROCESS
        for worker in range(PROCESS_COUNT):
            assert store.count_predictions(batch_id=f"worker-{worker}") == RECORDS_PER_PROCESS


def test_processes_opening_a_new_file_at_once_create_one_schema(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start_together = manager.Barrier(PROCESS_COUNT)
        with context.Pool(PROCESS_COUNT) as pool:
            inserted_per_process = pool.starmap(
                append_from_one_process,
                [(uri, worker, start_together, True) for worker in range(PROCESS_COUNT)],
            )
    assert sum(inserted_per_process) == PROCESS_COUNT * RECORDS_PER_PROCESS
    with open_store(uri) as store:
        assert store.count_predictions() == PROCESS_COUNT * RECORDS_PER_PROCESS
