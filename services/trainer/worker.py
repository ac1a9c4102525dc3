"""The trainer's queue side: decode and check `SubmitPipeline` messages, run them, settle.

Transport only: decoding, the run lease and retries live here; the pipeline itself runs
in `PipelineRunner`. A run being trained holds a lease in its store record (worker id and
a heartbeat refreshed while it trains); a redelivery of that pipeline to another worker
while the lease is fresh is deferred, not trained twice. A worker killed mid-training
stops refreshing its lease, so once the lease expires the redelivered message is trained
by whoever holds it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import timedelta

import pika
import pika.exceptions

from mlplatform.client import messaging
from mlplatform.client.broker_access import connect, requiring
from mlplatform.client.pipelines import validate_pipeline
from mlplatform.common.broker_close import close_connection
from mlplatform.common.consumer import (
    Defer,
    Delivery,
    Done,
    Outcome,
    Reject,
    decode_message,
)
from mlplatform.common.log_setup import log_ids
from mlplatform.common.store import NotFoundError, RunStatus, Store, utc_now
from mlplatform.trainer.metrics import TrainerMetrics, running
from mlplatform.trainer.runner import PipelineRunner, TransientFailure, new_run_record
from mlplatform.v1 import messages_pb2

logger = logging.getLogger(__name__)


class BrokerEvents:
    """Publishes `PipelineEvent`s to the events exchange (`pipeline.<id>`).

    Used from the job thread, so it has a connection of its own (pika connections are
    not thread-safe), opened on demand and re-opened once if the broker dropped it.
    pika sends heartbeats only while it is called, so the broker drops this connection
    after two heartbeat intervals without an event (between jobs, during a long fit): one
    idle for more than half an interval is closed and opened again instead of failing.
    """

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        heartbeat = messaging.connection_parameters(broker_url).heartbeat
        # No heartbeat (0) means the broker never drops it for idling.
        self._most_idle_s = (
            heartbeat / 2 if isinstance(heartbeat, int | float) and heartbeat > 0 else math.inf
        )
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._last_used = 0.0

    def publish(self, event: messages_pb2.PipelineEvent) -> None:
        for attempt in (1, 2):
            try:
                channel = self._open()
                messaging.publish(
                    channel,
                    f"pipeline.{event.pipeline_id}",
                    event,
                    event.pipeline_id,
                    exchange=messaging.EVENTS_EXCHANGE,
                    mandatory=False,
                )
                self._last_used = time.monotonic()
                return
            except (pika.exceptions.AMQPError, OSError):
                self.close()
                if attempt == 2:
                    raise

    def _open(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is not None and time.monotonic() - self._last_used > self._most_idle_s:
            self.close()  # the broker may have dropped it for missed heartbeats
        if self._channel is None or not self._channel.is_open:
            self._connection = connect(messaging.connection_parameters(self.broker_url))
            self._channel = self._connection.channel()
            with requiring(self._channel, "configure", f"exchange '{messaging.EVENTS_EXCHANGE}'"):
                self._channel.exchange_declare(
                    messaging.EVENTS_EXCHANGE, exchange_type="topic", durable=True
                )
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_connection(connection)


class TrainerHandler:
    """Turns one delivery into one outcome for the queue worker."""

    def __init__(
        self,
        runner: PipelineRunner,
        store: Store,
        worker_id: str,
        max_attempts: int = 3,
        lease_seconds: float = 60.0,
        metrics: TrainerMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.runner = runner
        self.store = store
        self.worker_id = worker_id
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds

    def __call__(self, delivery: Delivery) -> Outcome:
        started = time.monotonic()
        outcome, label = self._settle(delivery)
        if self.metrics is not None:
            self.metrics.pipeline_settled(label, time.monotonic() - started)
        return outcome

    def _settle(self, delivery: Delivery) -> tuple[Outcome, str]:
        """The outcome, and its name as the metrics count it (trainer/metrics.py OUTCOMES)."""
        submission_or_reason = decode_submission(delivery)
        if isinstance(submission_or_reason, str):
            return Reject(submission_or_reason), "rejected"
        with log_ids(pipeline_id=submission_or_reason.pipeline_id):
            return self._run(submission_or_reason, delivery)

    def _run(
        self, submission: messages_pb2.SubmitPipeline, delivery: Delivery
    ) -> tuple[Outcome, str]:
        # The data roots are checked here, before anything runs: a path outside them fails
        # the run as an invalid pipeline, and the file is never opened.
        problems = validate_pipeline(submission.definition, self.runner.data_roots)
        if problems:
            reason = "invalid pipeline definition: " + "; ".join(map(str, problems))
            self._record_refusal(submission, reason)
            return Reject(reason), "invalid"
        holder = self._lease_holder(submission.pipeline_id)
        if holder is not None:
            return Defer(f"pipeline {submission.pipeline_id} is running on {holder}"), "deferred"
        try:
            with self._heartbeat(submission.pipeline_id), running(self.metrics):
                record = self.runner.run(submission, self.worker_id)
        except TransientFailure as error:
            attempt = delivery.attempt + 1
            if attempt >= self.max_attempts:
                reason = f"gave up after {attempt} attempts: {error}"
                self.runner.mark_failed(submission.pipeline_id, "TransientFailure", reason)
                return Reject(reason), "gave_up"
            logger.warning(
                "pipeline %s: attempt %d failed: %s", submission.pipeline_id, attempt, error
            )
            return Defer(str(error), count_attempt=True), "retried"
        return Done(), "succeeded" if record.status == RunStatus.SUCCEEDED else "failed"

    def _lease_holder(self, pipeline_id: str) -> str | None:
        """The other worker training this pipeline right now, if any."""
        try:
            run = self.store.get_run(pipeline_id)
        except NotFoundError:
            return None
        if run.status != RunStatus.RUNNING or not run.worker_id or run.worker_id == self.worker_id:
            return None
        if run.heartbeat_at is None:
            return None
        if utc_now() - run.heartbeat_at > timedelta(seconds=self.lease_seconds):
            logger.warning(
                "pipeline %s: lease of %s expired; taking over", pipeline_id, run.worker_id
            )
            return None
        return run.worker_id

    def _heartbeat(self, pipeline_id: str) -> _Heartbeat:
        return _Heartbeat(self.store, pipeline_id, self.worker_id, self.lease_seconds / 3)

    def _record_refusal(self, submission: messages_pb2.SubmitPipeline, reason: str) -> None:
        """A refused submission still gets a failed run, so whoever waits on it learns why."""
        if not submission.pipeline_id:
            return
        try:
            created = self.store.create_run(new_run_record(submission))
            if created.record.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                self.runner.mark_failed(submission.pipeline_id, "InvalidPipeline", reason)
        except Exception:
            logger.exception("could not record the refusal of %s", submission.pipeline_id)


class _Heartbeat:
    """Keeps a run's lease fresh from a side thread while the job thread trains."""

    def __init__(self, store: Store, pipeline_id: str, worker_id: str, interval: float) -> None:
        self.store = store
        self.pipeline_id = pipeline_id
        self.worker_id = worker_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def _write(self) -> None:
        try:
            self.store.update_run(
                self.pipeline_id, worker_id=self.worker_id, heartbeat_at=utc_now()
            )
        except NotFoundError:
            pass  # the runner creates the record; the next beat finds it
        except Exception:
            logger.warning("could not refresh the lease of %s", self.pipeline_id, exc_info=True)


def decode_submission(delivery: Delivery) -> messages_pb2.SubmitPipeline | str:
    """The message, or the reason it cannot be one."""
    submission = decode_message(delivery, messages_pb2.SubmitPipeline)
    if isinstance(submission, str):
        return submission
    if not submission.pipeline_id:
        return "pipeline_id is empty; the sender must choose one"
    if not submission.HasField("definition"):
        return "definition is missing"
    return submission
