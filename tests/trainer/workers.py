"""Trainer workers running in threads of the test process, on the real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pika

from mlplatform.client import messaging
from mlplatform.client.data_roots import DataRoots
from mlplatform.common.consumer import QueueWorker
from mlplatform.common.store import Store
from mlplatform.trainer.runner import PipelineRunner
from mlplatform.trainer.worker import BrokerEvents, TrainerHandler


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def running_worker(
    queue: messaging.WorkQueue,
    store: Store,
    tracking_uri: str,
    broker_url: str,
    name: str = "worker-a",
    max_attempts: int = 3,
    lease_seconds: float = 60.0,
    before_step: Callable[[str, Any], None] | None = None,
    data_roots: DataRoots | None = None,
) -> Iterator[QueueWorker]:
    events = BrokerEvents(broker_url)
    runner = PipelineRunner(
        store, tracking_uri, events, before_step=before_step, data_roots=data_roots
    )
    handler = TrainerHandler(runner, store, name, max_attempts, lease_seconds)
    worker = QueueWorker(queue, handler, store, broker_url, name=name)
    thread = threading.Thread(target=worker.run, name=name, daemon=True)
    thread.start()
    try:
        wait_until(worker.consuming.is_set, 30, f"{name} to start consuming")
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=120)
        events.close()
        assert not thread.is_alive(), f"{name} did not stop"


def publish_raw(
    broker_url: str, queue: messaging.WorkQueue, body: bytes, properties: pika.BasicProperties
) -> None:
    """Publishes bytes as they are: how a misbehaving sender would."""
    with messaging.open_channel(broker_url) as (channel, version):
        messaging.declare_work_queue(channel, queue, version)
        channel.basic_publish("", queue.name, body, properties=properties, mandatory=True)


def drain(broker_url: str, queue_name: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Every message now in a queue (acked: removed)."""
    messages = []
    with messaging.open_channel(broker_url) as (channel, _version):
        while True:
            method, properties, body = channel.basic_get(queue_name, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, body))
