"""`mlp demo` as a new user sees it (a small pipeline instead of the example's, for time): at
most 80 lines, ending with the trained model, the gRPC and REST predictions and a batch; the
services' logs stay in their files, none with a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.ports import stack_ports
from tests.support.queues import BROKER_URL
from tests.trainer.conftest import classification_pipeline

pytestmark = pytest.mark.slow


def test_demo_prints_the_tour_only(fraud_csv: Path, tmp_path: Path) -> None:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    pipeline = tmp_path / "pipeline.json"
    document = classification_pipeline(fraud_csv, estimators=("dt",), register={})
    pipeline.write_text(json.dumps(document))
    mlflow_port, predictor_port, metrics_port, gateway_port = stack_ports()
    suffix = uuid.uuid4().hex[:8]
    environment = {
        **os.environ,
        "MLP_BROKER_URL": BROKER_URL,
        "MLP_PIPELINES_QUEUE": f"demo.{suffix}.pipelines",
        "MLP_BATCHES_QUEUE": f"demo.{suffix}.batches",
    }
    data_dir = tmp_path / "stack"
    result = subprocess.run(
        [
            mlp, "demo", "--pipeline", str(pipeline), "--data-dir", str(data_dir),
            "--mlflow-port", str(mlflow_port), "--predictor-port", str(predictor_port),
            "--metrics-port", str(metrics_port), "--gateway-port", str(gateway_port),
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) <= 80, shown
    assert "serving fraud version 1" in shown
    grpc_part = shown.partition("a prediction over gRPC")[2]
    assert "prediction" in grpc_part.partition("the same rows over REST")[0]
    assert "'predictions': [" in shown
    assert "succeeded, 1000 rows by version 1" in shown
    assert f"{data_dir / 'logs'}/" in shown
    for name in ("trainer", "inferer", "predictor", "gateway"):
        log = (data_dir / "logs" / f"{name}.log").read_text()
        assert "Traceback" not in log, f"{name}:\n{log}"
