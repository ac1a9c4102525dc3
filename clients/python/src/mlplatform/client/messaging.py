"""RabbitMQ topology and publishing shared by the CLI, the client and the workers.

Queues are durable (quorum where the server has them), messages persistent, every
publish confirmed by the broker. A message's properties say what it is:
`content_type=application/protobuf`, `type=<full proto message name>`,
`message_id=<the sender's id>`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from pika.adapters.blocking_connection import BlockingChannel

from mlplatform.client.broker_access import BrokerPermissionError, connect, requiring
from mlplatform.client.tls import TlsError, TlsFiles

_tracer = trace.get_tracer("mlplatform.client")

CONTENT_TYPE = "application/protobuf"
#: Consumers also accept the older name of the same format.
ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/x-protobuf"})
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: PEM files of an `amqps://` connection: the CA that signed the broker's certificate, and the
#: client certificate and key for a broker that requires one.
BROKER_TLS_CA_ENV = "MLP_BROKER_TLS_CA"
BROKER_TLS_CERT_ENV = "MLP_BROKER_TLS_CERT"
BROKER_TLS_KEY_ENV = "MLP_BROKER_TLS_KEY"
#: Topic exchange for progress events (`pipeline.<pipeline_id>`, `batch.<batch_id>`).
EVENTS_EXCHANGE = "mlp.events"
#: Direct exchange that jobs are submitted through: each work queue is bound to it under its
#: own name. Submitters publish here, so their write permission can be this exchange alone
#: (the default exchange would let them publish into any queue of the vhost).
SUBMIT_EXCHANGE = "mlp.submit"
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


def broker_tls_from_environment() -> TlsFiles:
    """The TLS files of `amqps://` connections, from `MLP_BROKER_TLS_*` (each optional)."""
    return TlsFiles(
        ca=os.environ.get(BROKER_TLS_CA_ENV) or None,
        cert=os.environ.get(BROKER_TLS_CERT_ENV) or None,
        key=os.environ.get(BROKER_TLS_KEY_ENV) or None,
    )


def connection_parameters(
    broker_url: str | None = None, tls: TlsFiles | None = None
) -> pika.URLParameters:
    """Connection parameters with a heartbeat, so a dead peer is noticed.

    An `amqps://` URL connects over TLS, verifying the broker's certificate against `tls.ca`
    (default: `MLP_BROKER_TLS_CA`, else the system's CAs) and its host name, and presenting
    `tls.cert` (default: `MLP_BROKER_TLS_CERT`/`_KEY`) to a broker that asks for one.
    """
    url = broker_url or DEFAULT_BROKER_URL
    parameters = pika.URLParameters(url)
    files = tls or broker_tls_from_environment()
    if url.lower().startswith("amqps://"):
        parameters.ssl_options = pika.SSLOptions(
            files.ssl_context(), server_hostname=files.server_name or parameters.host
        )
    elif files != TlsFiles():
        # TLS files with a plain-text URL: the user expects encryption, so say so rather
        # than connect in the clear.
        raise TlsError(
            f"{BROKER_TLS_CA_ENV}/_CERT/_KEY are set but the broker URL is not amqps:// "
            "(plain text): use an amqps:// URL (port 5671 by default)"
        )
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
    """Declares the queue, its dead-letter queue and its wait queue (idempotent).

    Needs configure permission on the three queues and the two exchanges; because the work and
    wait queues dead-letter through the default exchange, write permission on `amq.default`
    and (checked by newer brokers when a dead-letter target is set) read permission on them;
    and, to bind the work queue to the submit exchange, write on the queue and read on it.
    """
    quorum = version >= (3, 8)
    durable_args: dict[str, Any] = {"x-queue-type": "quorum"} if quorum else {}
    with requiring(channel, "configure", f"queue '{queue.dead_letter}'"):
        channel.queue_declare(queue.dead_letter, durable=True, arguments=dict(durable_args))
    work_args = {
        **durable_args,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue.dead_letter,
    }
    if quorum:
        work_args["x-delivery-limit"] = queue.delivery_limit
    dead_lettering = "(dead-lettering needs read on it and write on exchange 'amq.default')"
    # The message names both because brokers differ in whether they check them here.
    with requiring(channel, "configure", f"queue '{queue.name}' {dead_lettering}"):
        channel.queue_declare(queue.name, durable=True, arguments=work_args)
    # Classic queue: per-queue message TTL dead-letters parked messages back into the work queue.
    with requiring(channel, "configure", f"queue '{queue.wait}' {dead_lettering}"):
        channel.queue_declare(
            queue.wait,
            durable=True,
            arguments={
                "x-message-ttl": queue.wait_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue.name,
            },
        )
    with requiring(channel, "configure", f"exchange '{EVENTS_EXCHANGE}'"):
        channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    with requiring(channel, "configure", f"exchange '{SUBMIT_EXCHANGE}'"):
        channel.exchange_declare(SUBMIT_EXCHANGE, exchange_type="direct", durable=True)
    with requiring(
        channel, "write", f"queue '{queue.name}' (and read on exchange '{SUBMIT_EXCHANGE}')"
    ):
        channel.queue_bind(queue.name, SUBMIT_EXCHANGE, routing_key=queue.name)


def submit_job(
    channel: BlockingChannel, queue: WorkQueue, message: Message, message_id: str
) -> None:
    """Publishes a job into `queue` through the submit exchange (confirmed; mandatory, so a
    queue that is not bound is an error rather than a lost job), in a PRODUCER span whose
    context the message's headers carry to the worker."""
    with _tracer.start_as_current_span(
        f"{queue.name} publish",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "publish",
            "messaging.destination.name": queue.name,
            "messaging.message.id": message_id,
        },
    ):
        publish(channel, queue.name, message, message_id, exchange=SUBMIT_EXCHANGE)


def ensure_work_queue(
    channel: BlockingChannel, queue: WorkQueue, version: tuple[int, ...]
) -> BlockingChannel:
    """Declares the queue as `declare_work_queue` does or, for a user without configure
    permission (a submitter under least privilege), checks that the workers have declared it.

    Returns the channel to go on with: a refused declaration closes the channel, so the check
    runs on a new one.
    """
    try:
        declare_work_queue(channel, queue, version)
        return channel
    except BrokerPermissionError as refused:
        connection = channel.connection
        fresh = connection.channel()
        fresh.confirm_delivery()
        try:
            fresh.queue_declare(queue.name, passive=True)
            fresh.exchange_declare(SUBMIT_EXCHANGE, passive=True)
        except pika.exceptions.ChannelClosedByBroker as missing:
            raise BrokerPermissionError(
                f"{refused}; and queue '{queue.name}' does not exist yet ({missing.reply_text}):"
                " start a worker of this queue first, or grant configure permission"
            ) from None
        return fresh


def message_properties(
    message: Message, message_id: str, headers: dict[str, Any] | None = None
) -> pika.BasicProperties:
    """Properties every platform message carries, the caller's trace context among the
    headers when OpenTelemetry is recording (W3C `traceparent`; nothing otherwise)."""
    headers = dict(headers or {})
    propagate.inject(headers)
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        type=message.DESCRIPTOR.full_name,
        message_id=message_id,
        # Seconds since the epoch (AMQP's resolution): consumers measure their lag from it.
        timestamp=int(time.time()),
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=headers,
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

    Raises pika's UnroutableError / NackError when the broker refuses it, and
    BrokerPermissionError when the user may not write to the exchange.
    """
    with requiring(channel, "write", f"exchange '{exchange or 'amq.default'}'"):
        channel.basic_publish(
            exchange=exchange,
            routing_key=routing_key,
            body=message.SerializeToString(),
            properties=message_properties(message, message_id, headers),
            mandatory=mandatory,
        )


@contextlib.contextmanager
def open_channel(
    broker_url: str | None = None, tls: TlsFiles | None = None
) -> Iterator[tuple[BlockingChannel, tuple[int, ...]]]:
    """A connection and a channel with publisher confirms, closed on exit (`tls`: as for
    `connection_parameters`)."""
    connection = connect(connection_parameters(broker_url, tls))
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
