"""The queue worker's `Later` outcome with prefetch 2: the next delivery's job starts while
the last one's work goes on, as the inferer's parts do. Real RabbitMQ; the handler is the
test's own."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pika

from mlplatform.common.consumer import Delivery, Done, Later, Outcome, QueueWorker, Reject
from mlplatform.common.store import open_store
from tests.support.queues import BROKER_URL, temporary_work_queue
from tests.trainer.workers import drain, publish_raw, wait_until


def test_the_next_job_starts_before_the_last_settles_and_each_settles_by_its_future(
    tmp_path: Path,
) -> None:
    calls: list[tuple[bytes, bool]] = []
    pending: dict[bytes, Future[Outcome]] = {}

    def handler(delivery: Delivery) -> Later:
        future: Future[Outcome] = Future()
        calls.append((delivery.body, delivery.redelivered))
        pending[delivery.body] = future
        return Later(future)

    with (
        temporary_work_queue("later") as queue,
        open_store(f"sqlite:///{tmp_path / 'store.db'}") as store,
    ):
        worker = QueueWorker(queue, handler, store, BROKER_URL, name="later", prefetch=2)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            wait_until(worker.consuming.is_set, 30, "the worker to consume")
            for body in (b"first", b"second"):
                publish_raw(BROKER_URL, queue, body, pika.BasicProperties(delivery_mode=2))
            # Both jobs ran although neither has settled: the second did not wait.
            wait_until(lambda: len(calls) == 2, 30, "both deliveries to reach the handler")
            assert drain(BROKER_URL, queue.dead_letter) == []

            pending[b"first"].set_result(Reject("refused by the test"))
            dead = wait_until(lambda: drain(BROKER_URL, queue.dead_letter), 30, "a dead letter")
            assert [body for _properties, body in dead] == [b"first"]

            # A future that raises is a handler bug: the message goes back to the queue.
            pending[b"second"].set_exception(RuntimeError("bug"))
            wait_until(lambda: len(calls) == 3, 30, "the requeued message")
            assert calls[2] == (b"second", True)
            pending[b"second"].set_result(Done())
            worker.stop()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the worker did not stop"
        finally:
            worker.stop()
        # Settled with Done, the requeued message was acked: nothing is left.
        assert drain(BROKER_URL, queue.name) == []
