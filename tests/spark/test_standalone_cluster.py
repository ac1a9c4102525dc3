"""`mlp batch spark --master spark://...` against a real standalone cluster: a master and a
worker started from the pyspark package on loopback, the command run as a user runs it (its
own process, its own driver), the output compared with the in-process predictions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyspark

from mlplatform.common.store import BatchStatus, Store
from tests.spark.conftest import MODEL_NAME, Registry, in_process, make_rows
from tests.trainer.workers import wait_until

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive_workers(web_ui_port: int) -> int:
    """How many workers the master counts as alive (its web UI's JSON view)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_ui_port}/json/", timeout=2) as reply:
            return int(json.load(reply).get("aliveworkers", 0))
    except OSError:
        return 0


@contextmanager
def spark_daemon(arguments: list[str], log: Path, environment: dict[str, str]) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SPARK_CLASS), *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its JVM and shell wrapper stop together
        )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def standalone_cluster(folder: Path) -> Iterator[str]:
    """A master and one worker (1 core, 1 GiB) on loopback; yields the master URL once the
    worker has registered."""
    folder.mkdir(parents=True)
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    environment = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(folder / "work"),
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_MASTER_OPTS": "-Dspark.deploy.defaultCores=1",
    }
    master_url = f"spark://127.0.0.1:{master_port}"
    with spark_daemon(
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(master_port), "--webui-port", str(master_ui)],
        folder / "master.log",
        environment,
    ), spark_daemon(
        ["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
         "--webui-port", str(worker_ui), "--cores", "1", "--memory", "1g",
         "--work-dir", str(folder / "work")],
        folder / "worker.log",
        environment,
    ):  # fmt: skip
        try:
            wait_until(lambda: alive_workers(master_ui) >= 1, 120, "the worker to register")
        except AssertionError as error:
            logs = "".join(
                f"\n--- {name}:\n{(folder / name).read_text(errors='replace')[-2000:]}"
                for name in ("master.log", "worker.log")
            )
            raise AssertionError(f"{error}{logs}") from None
        yield master_url


def test_mlp_batch_spark_on_a_standalone_cluster_gives_the_in_process_predictions(
    tmp_path: Path, registry: Registry, store: Store, store_uri: str
) -> None:
    rows = make_rows(20_000, seed=11).drop(columns="label")
    rows.to_parquet(tmp_path / "customers.parquet")
    environment = {
        **os.environ,
        "MLP_STORE_URI": store_uri,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }

    with standalone_cluster(tmp_path / "cluster") as master_url:
        finished = subprocess.run(
            [sys.executable, "-m", "mlplatform.cli", "batch", "spark",
             "--model", f"{MODEL_NAME}@production", "--master", master_url,
             "--input", str(tmp_path / "customers.parquet"), "--output", str(tmp_path / "out"),
             "--id-column", "customer_id", "--probabilities", "--id", "on-the-cluster",
             "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "scored 20000 rows" in finished.stdout
    output = pd.read_parquet(tmp_path / "out").set_index("customer_id").loc[rows["customer_id"]]
    predictions, probabilities = in_process(registry.model, rows)
    np.testing.assert_array_equal(output["prediction"].to_numpy(), predictions)
    np.testing.assert_array_equal(
        output[["probability_churn", "probability_stay"]].to_numpy(), probabilities
    )
    batch = store.get_batch("on-the-cluster")
    assert batch.status is BatchStatus.SUCCEEDED and batch.model_version == "1"
    assert batch.rows_total == 20_000 and batch.engine == "spark"
