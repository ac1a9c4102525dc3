"""RabbitMQ topology and publishing shared by the CLI, the client and the workers.

Queues are durable (quorum where the server has them), messages persistent, every
publish confirmed by the broker. A message's properties say what it is:
`content_type=application/protobuf`, `type=<full proto message name>`,
`message_id=<the sender's id>`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
from google.protobuf.message import Message
from pika.adapters.blocking_connection import BlockingChannel

CONTENT_TYPE = "application/protobuf"
#: Consumers also accept the older name of the same format.
ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/x-protobuf"})
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: Topic exchange for progress events (`pipeline.<pipeline_id>`, `batch.<batch_id>`).
EVENTS_EXCHANGE = "mlp.events"
#: Header counting how often a message was deferred or retried by the platform itself.
ATTEMPT_HEADER = "x-mlp-attempt"


@dataclass(frozen=True)
class WorkQueue:
    """A work queue with its dead-letter queue and its delay ("wait") queue.

    Messages that cannot be decoded or validated go to `dead_letter`. A message
    that must be looked at again later (a retry with backoff, a job still running
    elsewhere) is parked in `wait`, whose TTL dead-letters it back into `name`.
    """

    name: str
    #: Redeliveries after which the broker dead-letters a message that keeps killing
    #: its consumer (quorum queues only): bounded retries even for crash loops.
    delivery_limit: int = 5
    #: How long a parked message waits before it comes back, in milliseconds.
    wait_ms: int = 10_000

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dead"

    @property
    def wait(self) -> str:
        return f"{self.name}.wait"


PIPELINES = WorkQueue("mlp.pipelines")
BATCHES = WorkQueue("mlp.batches", wait_ms=2_000)


def connection_parameters(broker_url: str | None = None) -> pika.URLParameters:
    """Connection parameters with a heartbeat, so a dead peer is noticed."""
    parameters = pika.URLParameters(broker_url or DEFAULT_BROKER_URL)
    if parameters.heartbeat is None:
        parameters.heartbeat = 30
    parameters.blocked_connection_timeout = 60
    return parameters


def server_version(connection: pika.BlockingConnection) -> tuple[int, ...]:
    """The broker's version, e.g. (3, 10, 8); (0,) when it does not say."""
    properties = connection._impl.server_properties or {}  # pika has no public accessor
    raw = properties.get("version", b"0")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        return (0,)


def declare_work_queue(
    channel: BlockingChannel, queue: WorkQueue, version: tuple[int, ...]
) -> None:
    """Declares the queue, its dead-letter queue and its wait queue (idempotent)."""
    quorum = version >= (3, 8)
    durable_args: dict[str, Any] = {"x-queue-type": "quorum"} if quorum else {}
    channel.queue_declare(queue.dead_letter, durable=True, arguments=dict(durable_args))
    work_args = {
        **durable_args,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue.dead_letter,
    }
    if quorum:
        work_args["x-delivery-limit"] = queue.delivery_limit
    channel.queue_declare(queue.name, durable=True, arguments=work_args)
    # Classic queue: per-queue message TTL dead-letters parked messages back into the work queue.
    channel.queue_declare(
        queue.wait,
        durable=True,
        arguments={
            "x-message-ttl": queue.wait_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue.name,
        },
    )
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)


def message_properties(
    message: Message, message_id: str, headers: dict[str, Any] | None = None
) -> pika.BasicProperties:
    """Properties every platform message carries."""
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        type=message.DESCRIPTOR.full_name,
        message_id=message_id,
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=headers or {},
    )


def publish(
    channel: BlockingChannel,
    routing_key: str,
    message: Message,
    message_id: str,
    *,
    exchange: str = "",
    headers: dict[str, Any] | None = None,
    mandatory: bool = True,
) -> None:
    """Publishes one message; with confirms on, returns once the broker has it.

    Raises pika's UnroutableError / NackError when the broker refuses it.
    """
    channel.basic_publish(
        exchange=exchange,
        routing_key=routing_key,
        body=message.SerializeToString(),
        properties=message_properties(message, message_id, headers),
        mandatory=mandatory,
    )


@contextlib.contextmanager
def open_channel(
    broker_url: str | None = None,
) -> Iterator[tuple[BlockingChannel, tuple[int, ...]]]:
    """A connection and a channel with publisher confirms, closed on exit."""
    connection = pika.BlockingConnection(connection_parameters(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel, server_version(connection)
    finally:
        if connection.is_open:
            connection.close()


def new_id() -> str:
    """A fresh id for a pipeline run, batch or request."""
    return uuid.uuid4().hex
