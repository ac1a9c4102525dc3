"""`mlp inferer --metrics-port`: rows, parts by outcome, lag, dead letters and the queue's
backlog, scraped over HTTP from a real inferer process on the real broker with a model from
a real MLflow registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from mlplatform.client import messaging
from mlplatform.client.batches import submit_batch
from mlplatform.common.store import BatchStatus, open_store
from tests.gateway.gateway_harness import free_port
from tests.inferer.conftest import Registry
from tests.support.prometheus_scrape import names, scrape, total, value
from tests.support.queues import BROKER_URL
from tests.trainer.workers import publish_raw, wait_until

pytestmark = pytest.mark.filterwarnings("ignore")


def test_inferer_counts_rows_parts_lag_and_dead_letters(
    registry: Registry, batch_queue: messaging.WorkQueue, tmp_path: Path
) -> None:
    metrics_port = free_port()
    environment = {
        **os.environ,
        "MLP_BATCHES_QUEUE": batch_queue.name,
        "MLP_QUEUE_WAIT_MS": str(batch_queue.wait_ms),
        "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLP_BROKER_URL": BROKER_URL,
        # The port comes from the environment, as compose sets it.
        "MLP_INFERER_METRICS_PORT": str(metrics_port),
        "MLP_INFERER_METRICS_HOST": "127.0.0.1",
    }
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    log_path = tmp_path / "inferer.log"
    with log_path.open("wb") as log:
        inferer = subprocess.Popen(
            [sys.executable, "-m", "mlplatform.cli", "inferer"],
            env=environment,
            stdout=log,
            stderr=log,
        )
    try:
        wait_until(lambda: "consuming" in log_path.read_text(), 120, "the inferer to consume")
        rows = registry.features.head(300)
        submission = submit_batch(
            rows, "cancer@production", broker_url=BROKER_URL, rows_per_message=100,
            queue=batch_queue,
        )  # fmt: skip
        publish_raw(
            BROKER_URL,
            batch_queue,
            b"not a protobuf",
            pika.BasicProperties(content_type="application/protobuf", message_id="poison"),
        )
        samples = wait_until(
            lambda: (
                (found := scrape(url))
                and value(found, "mlp_inferer_parts_total", outcome="done") == 3
                and value(found, "mlp_dead_letters_total", queue=batch_queue.name) == 1
                and found
            ),
            120,
            "three parts done and one dead letter",
        )
        # The backlog is read from the broker every few seconds: empty once all is done.
        wait_until(
            lambda: value(scrape(url), "mlp_queue_messages_ready", queue=batch_queue.name) == 0,
            30,
            "the backlog to read 0",
        )
    finally:
        inferer.terminate()
        inferer.wait(60)
    with open_store(environment["MLP_STORE_URI"]) as written:
        assert written.get_batch(submission.batch_id).status == BatchStatus.SUCCEEDED
    model = {"model_name": "cancer", "model_version": "1"}
    assert value(samples, "mlp_inferer_rows_total", **model) == 300
    assert value(samples, "mlp_inferer_predict_seconds_count", **model) == 3
    assert value(samples, "mlp_inferer_parts_total", outcome="rejected") == 1
    # Lag: from each part's publication (whole seconds) to its rows being stored.
    assert value(samples, "mlp_inferer_part_lag_seconds_count") == 3
    assert value(samples, "mlp_inferer_part_lag_seconds_bucket", le="+Inf") == 3
    assert total(samples, "mlp_inferer_part_lag_seconds_sum") < 120
    assert {"mlp_queue_messages_ready"} <= names(samples)
