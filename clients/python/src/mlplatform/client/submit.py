"""Submitting pipelines to the trainers and following them, over RabbitMQ only.

`submit_pipeline` publishes a `SubmitPipeline` with publisher confirms; with
`follow=True` it first binds a private queue to the run's events, so not one event is
missed, and returns an iterator over them that ends with the run.
"""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import timestamp_pb2
from pika.adapters.blocking_connection import BlockingChannel

from mlplatform.client import messaging
from mlplatform.client.broker_access import requiring
from mlplatform.client.data_roots import DataRoots
from mlplatform.client.pipelines import check_pipeline
from mlplatform.client.tls import TlsFiles
from mlplatform.v1 import messages_pb2, pipeline_pb2

FINAL_STATUSES = frozenset({messages_pb2.RUN_STATUS_SUCCEEDED, messages_pb2.RUN_STATUS_FAILED})


class FollowTimeout(TimeoutError):
    """The run did not end within the time the caller was willing to wait."""


@dataclass
class Submission:
    """A published pipeline: its id, and its events when the caller asked to follow it."""

    pipeline_id: str
    events: Iterator[messages_pb2.PipelineEvent] | None = None


def submit_pipeline(
    definition: pipeline_pb2.PipelineDefinition,
    *,
    broker_url: str | None = None,
    broker_tls: TlsFiles | None = None,
    pipeline_id: str | None = None,
    submitted_by: str | None = None,
    follow: bool = False,
    timeout: float | None = None,
    queue: messaging.WorkQueue = messaging.PIPELINES,
    data_roots: DataRoots | None = None,
) -> Submission:
    """Validates and publishes a pipeline; returns once the broker has it.

    `pipeline_id` is the idempotency key: resubmitting an id that already succeeded
    does not train again. `broker_tls`: the TLS files of an `amqps://` URL (default:
    `MLP_BROKER_TLS_*`). Raises PipelineError for an invalid definition, including a
    data source outside `data_roots` (default: `MLP_DATA_ROOTS` when it is set here;
    the trainers check their own roots in any case).
    """
    check_pipeline(definition, data_roots=data_roots or DataRoots.from_environment())
    pipeline_id = pipeline_id or messaging.new_id()
    submitted_at = timestamp_pb2.Timestamp()
    submitted_at.GetCurrentTime()
    message = messages_pb2.SubmitPipeline(
        pipeline_id=pipeline_id,
        definition=definition,
        submitted_at=submitted_at,
        submitted_by=submitted_by or getpass.getuser(),
    )
    if not follow:
        with messaging.open_channel(broker_url, broker_tls) as (opened, version):
            channel = messaging.ensure_work_queue(opened, queue, version)
            messaging.submit_job(channel, queue, message, pipeline_id)
        return Submission(pipeline_id)
    return Submission(
        pipeline_id, _publish_and_follow(message, broker_url, broker_tls, timeout, queue)
    )


def _publish_and_follow(
    message: messages_pb2.SubmitPipeline,
    broker_url: str | None,
    broker_tls: TlsFiles | None,
    timeout: float | None,
    queue: messaging.WorkQueue,
) -> Iterator[messages_pb2.PipelineEvent]:
    resources = contextlib.ExitStack()
    opened, version = resources.enter_context(messaging.open_channel(broker_url, broker_tls))
    try:
        channel = messaging.ensure_work_queue(opened, queue, version)
        with requiring(channel, "configure", "a server-named queue 'amq.gen-*'"):
            declared = channel.queue_declare("", exclusive=True, auto_delete=True)
        events_queue = declared.method.queue
        with requiring(
            channel,
            "read",
            f"exchange '{messaging.EVENTS_EXCHANGE}' (and write on queue '{events_queue}')",
        ):
            channel.queue_bind(
                events_queue,
                messaging.EVENTS_EXCHANGE,
                routing_key=f"pipeline.{message.pipeline_id}",
            )
        messaging.submit_job(channel, queue, message, message.pipeline_id)
    except BaseException:
        resources.close()
        raise
    return _events(resources, channel, events_queue, timeout)


def _events(
    resources: contextlib.ExitStack,
    channel: BlockingChannel,
    events_queue: str,
    timeout: float | None,
) -> Iterator[messages_pb2.PipelineEvent]:
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for method, _properties, body in channel.consume(
            events_queue, auto_ack=True, inactivity_timeout=1.0
        ):
            if deadline is not None and time.monotonic() > deadline:
                raise FollowTimeout(f"the run did not end within {timeout:.0f}s")
            if method is None:
                continue
            event = messages_pb2.PipelineEvent.FromString(body)
            yield event
            if event.status in FINAL_STATUSES:
                return
    finally:
        resources.close()
