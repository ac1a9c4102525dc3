"""`mlp batch submit --wait` against a real inferer, broker, registry and store: piped, it
prints one plain progress line per change, then the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client import messaging
from mlplatform.common.store import Store
from tests.inferer.conftest import Registry, running_inferer

pytestmark = [pytest.mark.filterwarnings("ignore")]


def test_batch_submit_wait_prints_progress_lines_when_piped(
    registry: Registry,
    batch_queue: messaging.WorkQueue,
    cli_settings: str,
    tmp_path: Path,
) -> None:
    from mlplatform.common.store import open_store

    rows_file = tmp_path / "rows.csv"
    registry.features.head(120).to_csv(rows_file, index=False)
    store: Store
    with (
        open_store(cli_settings) as store,
        running_inferer(batch_queue, store, registry.tracking_uri),
    ):
        result = CliRunner().invoke(
            app,
            [
                "batch",
                "submit",
                str(rows_file),
                "--model",
                "cancer@production",
                "--rows-per-message",
                "40",
                "--wait",
                "--timeout",
                "120",
            ],
        )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("submitted batch ") and "120 rows in 3 messages" in lines[0]
    progress = [line for line in lines if line.startswith("parts ")]
    assert progress and progress[-1] == "parts 3/3; rows 120"
    assert "\x1b[" not in result.output  # no terminal escape codes when piped
    assert "succeeded; parts 3/3; rows 120/120" in lines[-1]
