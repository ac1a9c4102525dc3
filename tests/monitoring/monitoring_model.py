"""What the monitoring tests share: the served classifier, its data, and the running parts.

`churn_lr`: a logistic regression on six numeric features `f0`..`f5`, classes "churn" and
"stay". Its baseline is stored as the trainer stores one (common.monitoring.baseline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TESTS = Path(__file__).resolve().parents[1]
# The predictor's and gateway's test helpers (folders of plain modules, not packages).
sys.path.insert(0, str(TESTS / "predictor"))
sys.path.insert(0, str(TESTS / "gateway"))

from gateway_harness import GatewayUnderTest, free_port, running_gateway  # noqa: E402
from predictor_harness import (  # noqa: E402
    BackgroundLoop,
    PredictorUnderTest,
    start_test_predictor,
)
from predictor_registry import log_and_register, open_registry  # noqa: E402

from mlplatform.common.monitoring.baseline import build_baseline, log_baseline  # noqa: E402
from mlplatform.common.store import Store, open_store  # noqa: E402

__all__ = [
    "MODEL",
    "BackgroundLoop",
    "GatewayUnderTest",
    "MonitoredModel",
    "PredictorUnderTest",
    "build_baseline",
    "draw_rows",
    "log_and_register",
    "log_baseline",
    "open_registry",
    "open_store",
    "running_gateway",
    "start_test_predictor",
    "true_labels",
]

MODEL = "churn_lr"
FEATURES = [f"f{index}" for index in range(6)]


def draw_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows drawn the way the training data was."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


def true_labels(features: pd.DataFrame, seed: int) -> pd.Series:
    """The rule the model learns, with some noise so it is not always right."""
    rng = np.random.default_rng(seed)
    score = features["f0"] + 0.8 * features["f2"] - 0.5 * features["f3"]
    score = score + rng.normal(scale=0.7, size=len(features))
    return pd.Series(np.where(score > 0, "churn", "stay"), name="churned")


@dataclass(frozen=True)
class MonitoredModel:
    tracking_uri: str
    store_uri: str
    store: Store
    predictor: PredictorUnderTest
    gateway: GatewayUnderTest


@contextmanager
def running_exporter(
    monitored: MonitoredModel, log_dir: Path, interval_s: float = 0.5
) -> Iterator[tuple[str, Path]]:
    """An `mlp monitor exporter` process watching MODEL: its base URL and its log file.
    Stopped with SIGTERM when the block ends; it must exit 0."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLP_")}
    log_path = log_dir / f"exporter-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlplatform.cli", "monitor", "exporter", "--model", MODEL),
                *("--monitor-interval", str(interval_s), "--metrics-port", str(port)),
                *("--store", monitored.store_uri, "--tracking-uri", monitored.tracking_uri),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(30)
    assert exit_code == 0, log_path.read_text()
    assert "monitoring exporter stopped" in log_path.read_text()
