"""The whole platform, started by the same code as `mlp up`, used the way a user uses it.

Real everything: the MLflow tracking server, trainer and inferer workers on RabbitMQ, the
gRPC predictor and the REST gateway as child processes on free loopback ports, a SQLite
store. Submit a pipeline through the broker, wait for the registered version, predict over
gRPC and REST (same answer), run a batch and read its rows back, then register a second
version and watch the predictor switch to it without one failed request.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlplatform.client.messaging import DEFAULT_BROKER_URL
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.predictor_client import PredictorClient
from mlplatform.common.settings import Settings
from mlplatform.common.store import BatchStatus, open_store
from mlplatform.stack import scenario
from mlplatform.stack.local_stack import StackConfig, local_stack
from tests.support.ports import stack_ports
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline, fraud_csv
from tests.trainer.workers import wait_until

__all__ = ["fraud_csv"]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def health_status(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(), timeout=5)
            .status
        )


def test_platform_end_to_end(tmp_path: Path, fraud_csv: Path) -> None:
    mlflow_port, predictor_port, metrics_port, gateway_port = stack_ports()
    suffix = uuid.uuid4().hex[:8]
    queues = {
        "MLP_PIPELINES_QUEUE": f"e2e.{suffix}.pipelines",
        "MLP_BATCHES_QUEUE": f"e2e.{suffix}.batches",
        "MLP_QUEUE_WAIT_MS": "300",
    }
    config = StackConfig(
        data_dir=tmp_path / "stack",
        broker_url=BROKER_URL or DEFAULT_BROKER_URL,
        model="e2e_fraud@production",
        mlflow_port=mlflow_port,
        predictor_port=predictor_port,
        metrics_port=metrics_port,
        gateway_port=gateway_port,
        reload_interval=0.5,
        environment=queues,
    )
    settings = Settings(
        broker_url=config.broker_url,
        store_uri=config.store_uri,
        mlflow_tracking_uri=config.tracking_uri,
        pipelines_queue=queues["MLP_PIPELINES_QUEUE"],
        batches_queue=queues["MLP_BATCHES_QUEUE"],
        queue_wait_ms=300,
    )
    definition = parse_pipeline(
        classification_pipeline(
            # `always`: the retrain below scores as the champion does, and the scenario is a
            # new version taking over while callers call, not the promotion gate.
            fraud_csv,
            estimators=("dt", "lr"),
            register={"promote": "always"},
            model_name="e2e_fraud",
        )
    )
    rows = pd.read_csv(fraud_csv).drop(columns=["Class"])
    with (tmp_path / "stack.log").open("w") as log, local_stack(config, sink=log):
        # Up before any model exists: the predictor answers, NOT_SERVING.
        assert health_status(config.predictor_address) == health_pb2.HealthCheckResponse.NOT_SERVING

        first = scenario.train(definition, settings, timeout=600)
        assert first.succeeded, [event.message for event in first.events]
        assert "registered e2e_fraud v1 @production" in first.events[-1].message
        assert scenario.wait_until_serving(config.predictor_address, "1", timeout=120) == "1"
        assert health_status(config.predictor_address) == health_pb2.HealthCheckResponse.SERVING

        over_grpc = scenario.predict_grpc(config.predictor_address, rows.head(5))
        over_rest = scenario.predict_rest(config.gateway_url, rows.head(5))
        assert over_grpc.model_version == str(over_rest["model_version"]) == "1"
        assert over_grpc.predictions.tolist() == over_rest["predictions"]

        with open_store(config.store_uri) as store:
            batch = scenario.run_batch(rows.head(200), config.model, settings, store, timeout=120)
            assert batch.status == BatchStatus.SUCCEEDED and batch.rows_done == 200
            stored = store.query_predictions(batch_id=batch.batch_id, limit=500)
            assert sorted(record.row_index for record in stored) == list(range(200))
            assert {record.model_version for record in stored} == {"1"}

        # A second version while callers keep calling: none of their requests may fail.
        served_versions: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()

        def keep_calling() -> None:
            with PredictorClient(config.predictor_address) as client:
                while not stop.is_set():
                    try:
                        served_versions[client.predict(rows.head(2)).model_version] += 1
                    except Exception as error:  # every failure counts
                        failures.append(repr(error))

        callers = [threading.Thread(target=keep_calling) for _ in range(4)]
        for caller in callers:
            caller.start()
        try:
            second = scenario.train(definition, settings, timeout=600)
            assert second.succeeded
            assert scenario.wait_until_serving(config.predictor_address, "2", timeout=120) == "2"
            before = served_versions["2"]
            wait_until(lambda: served_versions["2"] >= before + 20, 60, "calls served by v2")
        finally:
            stop.set()
            for caller in callers:
                caller.join(timeout=30)
        assert failures == []
        assert served_versions["1"] > 0 and served_versions["2"] > 0
