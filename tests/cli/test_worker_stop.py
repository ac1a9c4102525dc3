"""SIGTERM on an idle `mlp trainer` and `mlp inferer` (real subprocesses, the real broker):
a requested stop exits 0 and logs one INFO line, never an ERROR or a traceback, even when
the broker has already dropped a connection the worker holds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.store import RunStatus, open_store
from tests.support.queues import BROKER_URL, temporary_work_queue
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import wait_until

#: A short heartbeat, so the broker drops an idle connection within seconds.
HEARTBEAT_S = 2
STOPPING = re.compile(r" INFO .*stopping: SIGTERM received; finishing the job in progress")


def broker_url_with_heartbeat(seconds: int) -> str:
    separator = "&" if "?" in BROKER_URL else "?"
    return f"{BROKER_URL}{separator}heartbeat={seconds}"


@pytest.fixture
def pipelines_queue() -> Iterator[messaging.WorkQueue]:
    with temporary_work_queue("pipelines") as queue:
        yield queue


@pytest.fixture
def batches_queue() -> Iterator[messaging.WorkQueue]:
    with temporary_work_queue("batches") as queue:
        yield queue


def start_worker(command: str, environment: dict[str, str], log_path: Path) -> subprocess.Popen:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    log = log_path.open("wb")
    return subprocess.Popen(
        [mlp, command], env={**os.environ, **environment}, stdout=log, stderr=log
    )


def stop_and_read(process: subprocess.Popen, log_path: Path) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        exit_code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = log_path.read_text()
    assert exit_code == 0, text
    return text


def assert_one_clean_stop_line(text: str) -> None:
    assert "Traceback" not in text, text
    assert not [line for line in text.splitlines() if " ERROR " in line], text
    assert len([line for line in text.splitlines() if STOPPING.search(line)]) == 1, text


def test_sigterm_of_an_idle_trainer_logs_one_info_line(
    pipelines_queue: messaging.WorkQueue, tmp_path: Path
) -> None:
    """The trainer has run a job (so it holds an events connection), then idles long enough
    for the broker to drop that connection for missed heartbeats; SIGTERM then."""
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    broker_url = broker_url_with_heartbeat(HEARTBEAT_S)
    log_path = tmp_path / "trainer.log"
    process = start_worker(
        "trainer",
        {
            "MLP_PIPELINES_QUEUE": pipelines_queue.name,
            "MLP_QUEUE_WAIT_MS": str(pipelines_queue.wait_ms),
            "MLP_STORE_URI": store_uri,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "MLP_BROKER_URL": broker_url,
        },
        log_path,
    )
    try:
        wait_until(lambda: "consuming" in log_path.read_text(), 120, "the trainer to consume")
        # A data file that does not exist: the run fails at its first step, after events.
        definition = parse_pipeline(classification_pipeline(tmp_path / "missing.csv"))
        submit_pipeline(
            definition, broker_url=BROKER_URL, pipeline_id="stop-1", queue=pipelines_queue
        )
        with open_store(store_uri) as store:

            def failed() -> bool:
                try:
                    return store.get_run("stop-1").status == RunStatus.FAILED
                except KeyError:
                    return False

            wait_until(failed, 120, "the run to fail at its load step")
        # The broker drops the idle events connection after two missed heartbeats; nothing
        # outside the broker shows when, so this waits out three.
        time.sleep(3 * HEARTBEAT_S)
    except BaseException:
        process.kill()
        raise
    assert_one_clean_stop_line(stop_and_read(process, log_path))


def test_sigterm_of_an_idle_inferer_logs_one_info_line(
    batches_queue: messaging.WorkQueue, tmp_path: Path
) -> None:
    log_path = tmp_path / "inferer.log"
    process = start_worker(
        "inferer",
        {
            "MLP_BATCHES_QUEUE": batches_queue.name,
            "MLP_QUEUE_WAIT_MS": str(batches_queue.wait_ms),
            "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "MLP_BROKER_URL": broker_url_with_heartbeat(HEARTBEAT_S),
        },
        log_path,
    )
    try:
        wait_until(lambda: "consuming" in log_path.read_text(), 120, "the inferer to consume")
    except BaseException:
        process.kill()
        raise
    assert_one_clean_stop_line(stop_and_read(process, log_path))
