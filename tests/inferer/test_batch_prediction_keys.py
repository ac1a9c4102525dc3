"""Batch predictions keyed by the caller's own column, end to end: `mlp batch submit
--key-column` through the real RabbitMQ and a real inferer, outcomes by prediction key with
`mlp outcomes`, and `mlp monitor --json` counting them as labelled."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client import messaging
from mlplatform.common.store import Store, open_store
from tests.inferer.conftest import Registry, running_inferer

pytestmark = [pytest.mark.filterwarnings("ignore")]

ROWS = 90
LABELLED = 70


def test_outcomes_by_prediction_key_label_a_batch_submitted_with_a_key_column(
    registry: Registry, batch_queue: messaging.WorkQueue, cli_settings: str, tmp_path: Path
) -> None:
    features = registry.features.head(ROWS)
    keys = [f"order-{number:04d}" for number in range(ROWS)]
    rows_file = tmp_path / "rows.csv"
    features.assign(order_id=keys).to_csv(rows_file, index=False)
    runner = CliRunner()
    store: Store
    with (
        open_store(cli_settings) as store,
        running_inferer(batch_queue, store, registry.tracking_uri),
    ):
        options = "--key-column order_id --rows-per-message 40 --wait --timeout 120"
        submitted = runner.invoke(
            app,
            ["batch", "submit", str(rows_file), "--model", "cancer@production", *options.split()],
        )
        assert submitted.exit_code == 0, submitted.output
        logged = store.query_predictions(model_name="cancer", limit=ROWS + 1)
    assert sorted(record.prediction_key for record in logged) == keys
    # The key column is no model input: it is neither predicted on nor kept with the inputs.
    assert all("order_id" not in record.input_row for record in logged)

    # Outcomes in another order than the batch's, named by key alone.
    truth = pd.DataFrame({"prediction_key": keys, "label": registry.model.predict(features)})
    truth["label"] = truth["label"].where(truth.index % 7 != 0, 1 - truth["label"])
    outcomes = truth.head(LABELLED).sample(frac=1.0, random_state=3)
    outcome_file = tmp_path / "outcomes.csv"
    outcomes.to_csv(outcome_file, index=False)
    recorded = runner.invoke(app, ["outcomes", str(outcome_file), "--store", cli_settings])
    assert recorded.exit_code == 0, recorded.output
    assert f"matched {LABELLED} outcomes to logged predictions: {LABELLED} predictions" in (
        recorded.output
    )

    monitored = runner.invoke(
        app,
        ["monitor", "cancer", "--json", "--store", cli_settings],
        env={"MLFLOW_TRACKING_URI": registry.tracking_uri},
    )
    assert monitored.exit_code == 0, monitored.output
    [version] = json.loads(monitored.output)["versions"]
    assert (version["predictions"], version["labelled"]) == (ROWS, LABELLED)
    by_key = {record.prediction_key: record.prediction for record in logged}
    expected = accuracy_score(
        outcomes["label"], [by_key[key] for key in outcomes["prediction_key"]]
    )
    assert version["quality"]["accuracy"] == pytest.approx(expected)
    assert expected < 1.0  # some labels were flipped, so the figure is not trivially 1


def test_a_missing_key_column_fails_the_batch_naming_it(
    registry: Registry, batch_queue: messaging.WorkQueue, store: Store
) -> None:
    """A part whose rows lack the key column they name is dead-lettered with the column named."""
    from mlplatform.client.batches import batch_parts
    from mlplatform.common.store import BatchRecord, BatchStatus
    from tests.support.queues import BROKER_URL
    from tests.trainer.workers import wait_until

    [part] = batch_parts(registry.features.head(5), "cancer@production", "batch-no-key")
    part.key_column = "order_id"
    store.create_batch(BatchRecord(batch_id="batch-no-key", model_name="cancer", part_count=1))
    with running_inferer(batch_queue, store, registry.tracking_uri):
        with messaging.open_channel(BROKER_URL) as (channel, version):
            opened = messaging.ensure_work_queue(channel, batch_queue, version)
            messaging.submit_job(opened, batch_queue, part, part.request_id)
        wait_until(
            lambda: store.get_batch("batch-no-key").status is BatchStatus.FAILED,
            60,
            "the batch to fail",
        )
    error = store.get_batch("batch-no-key").error or ""
    assert "order_id" in error and "key column" in error
    assert store.count_predictions(batch_id="batch-no-key") == 0
