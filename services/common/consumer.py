"""A RabbitMQ work-queue consumer that never loses a message and never blocks heartbeats.

The job runs on a worker thread; the connection's I/O thread keeps serving heartbeats
and only touches the channel (ack, publish) through callbacks it runs itself, since
pika's connections are not thread-safe. The message is acked only once the handler's
outcome is durable. A handler says what to do with each delivery:

- `Done`: ack.
- `Reject(reason)`: publish the body to the queue's dead-letter queue (confirmed),
  record the reason in the store, then ack. The worker keeps consuming.
- `Defer(reason)`: park a copy in the queue's wait queue (its TTL brings it back), ack.
- `Later(future)`: the handler is done with the delivery but its work goes on in the
  background; settle with the future's outcome once it completes. With `prefetch` above 1
  the next delivery's job starts meanwhile: the batch inferer checks one part while the
  model predicts the one before it and the one before that is still being stored.

With prefetch 1, a delivery that arrives while a job runs (our own message, redelivered
after the broker closed the channel for a consumer timeout) is deferred at once; with more,
deliveries queue for the job thread in order. The connection is re-opened with capped
exponential backoff when the broker goes away.

Longer than ~300 lines on purpose: it is the one module that knows pika's threading rules
(what may run on the I/O thread and what may not); splitting it would spread them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pika
import pika.exceptions
from google.protobuf.message import DecodeError, Message
from pika.adapters.blocking_connection import BlockingChannel

from mlplatform.client import messaging
from mlplatform.client.broker_access import connect, requiring
from mlplatform.common.broker_close import close_connection
from mlplatform.common.metrics_endpoint import QueueMetrics
from mlplatform.common.store import DeadLetter, Store
from mlplatform.common.tracing import consumer_span

logger = logging.getLogger(__name__)

#: Longest pause between reconnection attempts, in seconds.
MAX_BACKOFF_SECONDS = 30.0
#: How often a worker with metrics asks the broker how many messages wait in its queue.
BACKLOG_PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Delivery:
    """One message as the handler sees it."""

    body: bytes
    properties: pika.BasicProperties
    redelivered: bool

    @property
    def attempt(self) -> int:
        """How often the platform has already deferred or retried this message."""
        headers = self.properties.headers or {}
        return int(headers.get(messaging.ATTEMPT_HEADER, 0))


@dataclass(frozen=True)
class Done:
    """The work is durable: ack."""


@dataclass(frozen=True)
class Reject:
    """The message can never succeed: dead-letter it with its reason."""

    reason: str


@dataclass(frozen=True)
class Defer:
    """Look at the message again later (after the wait queue's TTL)."""

    reason: str
    #: Count this as a retry (bounded by the handler) rather than a wait.
    count_attempt: bool = False


Outcome = Done | Reject | Defer


@dataclass(frozen=True)
class Later:
    """The work goes on in the background: settle with `future`'s outcome when it is done
    (a future that raises is a handler bug, like a handler that raises)."""

    future: Future[Outcome]


Handler = Callable[[Delivery], Outcome | Later]
MessageT = TypeVar("MessageT", bound=Message)


def properties_problem(properties: pika.BasicProperties, expected_type: str) -> str | None:
    """Why a message's content type or type is not a protobuf `expected_type`, or None."""
    content_type = properties.content_type
    if content_type and content_type not in messaging.ACCEPTED_CONTENT_TYPES:
        accepted = " or ".join(sorted(messaging.ACCEPTED_CONTENT_TYPES))
        return f"content_type '{content_type}' is not {accepted}"
    if properties.type and properties.type != expected_type:
        return f"message type '{properties.type}' is not {expected_type}"
    return None


def decode_message(delivery: Delivery, message_type: type[MessageT]) -> MessageT | str:
    """The delivery's body as a `message_type`, or why it cannot be one."""
    full_name = message_type.DESCRIPTOR.full_name
    problem = properties_problem(delivery.properties, full_name)
    if problem is not None:
        return problem
    try:
        return message_type.FromString(delivery.body)
    except DecodeError as error:
        return f"body is not a valid {full_name}: {error}"


def worker_name(prefix: str) -> str:
    """A name that tells workers apart in logs and run records."""
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}"


@dataclass
class QueueWorker:
    """Consumes one work queue; several workers share it round-robin. `prefetch` is how many
    deliveries may be unsettled at once: 1 (one job at a time) unless the handler returns
    `Later` and wants the next job to start while the last one finishes."""

    queue: messaging.WorkQueue
    handler: Handler
    store: Store
    broker_url: str
    name: str = field(default_factory=lambda: worker_name("worker"))
    #: Called with the open channel after connecting (e.g. to declare more).
    on_connected: Callable[[BlockingChannel], None] | None = None
    prefetch: int = 1
    #: Dead letters and the queue's backlog, when the worker serves metrics.
    metrics: QueueMetrics | None = None
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    # Jobs handed to the handler whose outcome is not yet settled, on any connection: the
    # count outlives a reconnect, so our own redelivered message is seen as in progress.
    _jobs: int = field(default=0, init=False)
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _connection: pika.BlockingConnection | None = field(default=None, init=False)
    _channel: BlockingChannel | None = field(default=None, init=False)
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="job"),
        init=False,
    )
    consuming: threading.Event = field(default_factory=threading.Event, init=False)
    #: Connections opened so far: more than one means the worker reconnected.
    connections_opened: int = field(default=0, init=False)

    def run(self) -> None:
        """Consumes until `stop()`; reconnects with backoff whenever the broker goes away."""
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._consume()
                backoff = 1.0
            except (pika.exceptions.AMQPError, OSError) as error:
                self.consuming.clear()
                if self._stop.is_set():
                    break
                logger.warning(
                    "%s: broker connection lost (%r); retrying in %.0fs", self.name, error, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                self._close()
        self._executor.shutdown(wait=True)

    def stop(self) -> None:
        """Stops consuming after the job in progress; safe from any thread or signal handler."""
        self._stop.set()
        connection = self._connection
        if connection is not None and connection.is_open:
            # A failure here means the connection is closing anyway.
            with contextlib.suppress(Exception):
                connection.add_callback_threadsafe(self._stop_consuming)

    def _stop_consuming(self) -> None:
        if self._channel is not None and self._channel.is_open and not self._jobs:
            self._channel.stop_consuming()

    def _consume(self) -> None:
        connection = connect(messaging.connection_parameters(self.broker_url))
        self._connection = connection
        self.connections_opened += 1
        channel = connection.channel()
        self._channel = channel
        channel.confirm_delivery()
        messaging.declare_work_queue(channel, self.queue, messaging.server_version(connection))
        if self.on_connected is not None:
            self.on_connected(channel)
        channel.basic_qos(prefetch_count=self.prefetch)
        with requiring(channel, "read", f"queue '{self.queue.name}'"):
            channel.basic_consume(self.queue.name, self._on_message)
        self.consuming.set()
        logger.info("%s consuming %s", self.name, self.queue.name)
        next_probe = time.monotonic()
        while not self._stop.is_set() or self._jobs:
            if self.metrics is not None and time.monotonic() >= next_probe:
                declared = channel.queue_declare(self.queue.name, passive=True)
                self.metrics.backlog(self.queue.name, declared.method.message_count)
                next_probe = time.monotonic() + BACKLOG_PROBE_SECONDS
            connection.process_data_events(time_limit=1)
            if not channel.is_open:
                # pika reports a channel the broker closed (e.g. for a delivery left unacked
                # past the consumer timeout) only on the next channel call: notice it here.
                raise pika.exceptions.ChannelClosed(0, "channel closed by the broker")
        channel.stop_consuming()

    def _on_message(
        self,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        delivery = Delivery(body, properties, bool(method.redelivered))
        if self.prefetch == 1 and self._jobs:
            self._settle(channel, method.delivery_tag, delivery, Defer("a job is in progress here"))
            return
        self._count_job(+1)
        connection = self._connection
        assert connection is not None

        def finished(done: Future[Outcome | Later]) -> None:
            if done.exception() is None:
                outcome = done.result()
                if isinstance(outcome, Later):
                    outcome.future.add_done_callback(finished)
                    return
            try:
                connection.add_callback_threadsafe(
                    lambda: self._after_job(channel, method.delivery_tag, delivery, done)
                )
            except Exception:
                # The connection this delivery came on is gone (broker restart, consumer
                # timeout): the broker redelivers the message, and the handler will find
                # the job's outcome already recorded.
                self._count_job(-1)
                logger.warning("%s: finished a job whose connection is gone", self.name)

        self._executor.submit(self._handle, delivery).add_done_callback(finished)

    def _handle(self, delivery: Delivery) -> Outcome | Later:
        """The handler, in a CONSUMER span continuing the publisher's trace."""
        properties = delivery.properties
        with consumer_span(self.queue.name, properties.headers, properties.message_id):
            return self.handler(delivery)

    def _after_job(
        self,
        channel: BlockingChannel,
        tag: int,
        delivery: Delivery,
        done: Future[Outcome] | Future[Outcome | Later],
    ) -> None:
        self._count_job(-1)
        error = done.exception()
        if error is not None:  # a handler bug: leave the message to the broker's delivery limit
            logger.error("%s: handler raised; message requeued", self.name, exc_info=error)
            if channel.is_open:
                channel.basic_nack(tag, requeue=True)
            return
        outcome = done.result()
        assert not isinstance(outcome, Later)
        self._settle(channel, tag, delivery, outcome)
        if self._stop.is_set() and not self._jobs and channel.is_open:
            channel.stop_consuming()

    def _count_job(self, change: int) -> None:
        with self._jobs_lock:
            self._jobs += change

    def _settle(
        self, channel: BlockingChannel, tag: int, delivery: Delivery, outcome: Outcome
    ) -> None:
        """Carries out an outcome; the ack comes last, after what it depends on is durable."""
        if not channel.is_open:  # closed under us (consumer timeout); redelivery will follow
            logger.warning(
                "%s: channel closed before settling; the broker will redeliver", self.name
            )
            return
        if isinstance(outcome, Reject):
            self._dead_letter(channel, delivery, outcome.reason)
        elif isinstance(outcome, Defer):
            headers = dict(delivery.properties.headers or {})
            if outcome.count_attempt:
                headers[messaging.ATTEMPT_HEADER] = delivery.attempt + 1
            headers["x-mlp-deferred-because"] = outcome.reason[:500]
            with requiring(channel, "write", "exchange 'amq.default'"):
                channel.basic_publish(
                    "",
                    self.queue.wait,
                    delivery.body,
                    properties=_with_headers(delivery.properties, headers),
                    mandatory=True,
                )
        channel.basic_ack(tag)

    def _dead_letter(self, channel: BlockingChannel, delivery: Delivery, reason: str) -> None:
        logger.warning(
            "%s: dead-lettering %s: %s", self.name, delivery.properties.message_id, reason
        )
        headers = dict(delivery.properties.headers or {})
        headers["x-mlp-dead-letter-reason"] = reason[:1000]
        with requiring(channel, "write", "exchange 'amq.default'"):
            channel.basic_publish(
                "",
                self.queue.dead_letter,
                delivery.body,
                properties=_with_headers(delivery.properties, headers),
                mandatory=True,
            )
        if self.metrics is not None:
            self.metrics.dead_lettered(self.queue.name)
        try:
            self.store.record_dead_letter(
                DeadLetter(
                    queue=self.queue.name,
                    message_id=delivery.properties.message_id,
                    message_type=delivery.properties.type,
                    reason=reason,
                    body=delivery.body,
                )
            )
        except Exception:  # the message itself is safe in the dead-letter queue
            logger.exception("%s: could not record the dead letter in the store", self.name)

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_connection(connection)


def _with_headers(
    properties: pika.BasicProperties, headers: dict[str, Any]
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=properties.content_type,
        type=properties.type,
        message_id=properties.message_id,
        # The publication time travels with the message: the inferer's lag is measured from it.
        timestamp=properties.timestamp,
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=headers,
    )
