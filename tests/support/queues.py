"""Work queues of one test only, on the real broker, deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika

from mlplatform.client import messaging

BROKER_URL = os.environ.get("MLP_BROKER_URL", messaging.DEFAULT_BROKER_URL)


@contextmanager
def temporary_work_queue(kind: str, wait_ms: int = 300) -> Iterator[messaging.WorkQueue]:
    """A uniquely named work queue (with its dead-letter and wait queues); short waits."""
    queue = messaging.WorkQueue(f"test.{uuid.uuid4().hex[:10]}.{kind}", wait_ms=wait_ms)
    try:
        yield queue
    finally:
        connection = pika.BlockingConnection(messaging.connection_parameters(BROKER_URL))
        channel = connection.channel()
        for name in (queue.name, queue.dead_letter, queue.wait):
            channel.queue_delete(name)
        connection.close()
