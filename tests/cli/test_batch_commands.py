"""`mlp batch submit` records a queue batch and `mlp batches` lists it, against the real
RabbitMQ (a queue of this test's own) and a real SQLite store; no inferer runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.common.settings import get_settings
from mlplatform.common.store import open_store
from tests.support.queues import temporary_work_queue


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with temporary_work_queue("batches") as queue:
        monkeypatch.setenv("MLP_STORE_URI", uri)
        monkeypatch.setenv("MLP_BATCHES_QUEUE", queue.name)
        get_settings.cache_clear()
        yield uri
    get_settings.cache_clear()


def test_a_submitted_batch_is_recorded_as_a_queue_batch_and_listed(
    tmp_path: Path, store_uri: str
) -> None:
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "rows.csv", index=False)

    submitted = CliRunner().invoke(
        app, ["batch", "submit", str(tmp_path / "rows.csv"), "--model", "m@production",
              "--id", "queued-1", "--rows-per-message", "2"],
    )  # fmt: skip
    listed = CliRunner().invoke(app, ["batches", "--status", "pending"])
    refused = CliRunner().invoke(app, ["batches", "--status", "done"])

    assert submitted.exit_code == 0, submitted.output
    with open_store(store_uri) as store:
        batch = store.get_batch("queued-1")
    assert (batch.engine, batch.input_uri, batch.part_count) == (
        "queue", str(tmp_path / "rows.csv"), 2,
    )  # fmt: skip
    assert listed.exit_code == 0 and "queued-1" in listed.output and "queue" in listed.output
    assert refused.exit_code == 2 and "--status: expected one of" in refused.output
