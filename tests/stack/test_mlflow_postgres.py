"""The MLflow server on PostgreSQL, as compose runs it, exercised for real against this
machine's PostgreSQL (a database the test creates and drops): a pipeline trains and
registers through the server, and the predictor's model loading reads the model back."""

from __future__ import annotations

import io
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.common.store import RunStatus, open_store
from mlplatform.stack.processes import ManagedProcess, ServiceSpec
from mlplatform.stack.readiness import http_ok
from mlplatform.trainer.runner import PipelineRunner
from mlplatform.v1 import messages_pb2
from tests.trainer.conftest import classification_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

POSTGRES_DSN = os.environ.get("MLP_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database; yields its URL and drops it afterwards."""
    name = f"mlp_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_DSN + " dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    params = dict(item.split("=", 1) for item in POSTGRES_DSN.split())
    yield (
        f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{name}"
    )
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_pipeline_registers_through_mlflow_server_on_postgres(
    postgres_database: str, tmp_path: Path, fraud_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql:// URL; we ship psycopg2.
    backend = postgres_database.replace("postgresql://", "postgresql+psycopg2://")
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", (tmp_path / "artifacts").as_uri(),
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = ManagedProcess(
        ServiceSpec(
            name="mlflow",
            argv=argv,
            ready=http_ok(f"http://127.0.0.1:{port}/health"),
            start_timeout=120,
        ),
        sink=io.StringIO(),
    )
    try:
        server.wait_ready()
        tracking_uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        document = classification_pipeline(fraud_csv, estimators=("dt",), register={})
        with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
            record = PipelineRunner(store, tracking_uri).run(
                messages_pb2.SubmitPipeline(pipeline_id="pg-1", definition=parse_pipeline(document))
            )
        assert record.status == RunStatus.SUCCEEDED, record.error
        model = load_model(ModelReference.parse("fraud@production"), tracking_uri)
        rows = pd.read_csv(fraud_csv).drop(columns=["Class"]).head(5)
        assert model.version == "1"
        assert len(model.predict(model.check(rows)).predictions) == 5
    finally:
        server.stop()
    # What the server wrote went to PostgreSQL.
    with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name FROM registered_models")
        assert cursor.fetchall() == [("fraud",)]
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] >= 2
