"""The inferer's chunk writers: a real child process writing to a real SQLite store."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from mlplatform.common.store import BatchPredictions, InvalidRecordError, open_store
from mlplatform.inferer.chunk_writers import ProcessChunkWriter, is_broken_error
from tests.trainer.workers import wait_until


def chunk(batch_id: str, row_offset: int, rows: int = 3) -> BatchPredictions:
    inputs = pd.DataFrame({"x": np.arange(rows, dtype=float) + 0.1, "label": ["a"] * rows})
    return BatchPredictions(
        model_name="m",
        model_version="1",
        batch_id=batch_id,
        row_offset=row_offset,
        inputs=inputs,
        predictions=np.arange(rows),
    )


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def writer(store_uri: str) -> Iterator[ProcessChunkWriter]:
    started = ProcessChunkWriter(store_uri)
    started.warm_up()
    yield started
    started.close()


def test_rows_written_by_the_child_are_in_the_store(
    writer: ProcessChunkWriter, store_uri: str
) -> None:
    assert writer.submit(chunk("b-1", 0)).result(timeout=60) == 3
    assert writer.submit(chunk("b-1", 0)).result(timeout=60) == 0  # redelivered: no duplicate
    assert writer.submit(chunk("b-1", 3)).result(timeout=60) == 3
    with open_store(store_uri) as store:
        stored = store.query_predictions(batch_id="b-1")
    assert [record.row_index for record in stored] == list(range(6))
    assert stored[4].input_row == {"x": 1.1, "label": "a"} and stored[4].prediction == 1


def test_a_refused_chunk_comes_back_as_the_stores_error(writer: ProcessChunkWriter) -> None:
    bad = chunk("b-2", 0)
    object.__setattr__(bad, "predictions", np.array([object(), object(), object()]))
    with pytest.raises(InvalidRecordError) as caught:
        writer.submit(bad).result(timeout=60)
    assert caught.value.field == "prediction"
    assert writer.submit(chunk("b-2", 0)).result(timeout=60) == 3  # the child goes on


def test_a_dead_child_is_replaced(writer: ProcessChunkWriter, store_uri: str) -> None:
    child = psutil.Process(writer.warm_up())
    assert child.ppid() == os.getpid()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    def written_again() -> bool:
        try:
            return writer.submit(chunk("b-3", 0)).result(timeout=60) == 3
        except BrokenProcessPool as error:  # the in-flight write of a dying child
            assert is_broken_error(error)
            return False

    wait_until(written_again, 60, "a new writer process to write")
    with open_store(store_uri) as store:
        assert store.count_predictions(batch_id="b-3") == 3
