"""One batch submission is one trace, publish to every part's processing (real RabbitMQ, a
real inferer worker), and the inferer's JSON log lines carry the batch id, the model version
and the trace id."""

from __future__ import annotations

from opentelemetry import trace

from mlplatform.client import messaging
from mlplatform.client.batches import submit_batch
from mlplatform.common.store import BatchStatus, Store
from tests.inferer.conftest import Registry, running_inferer
from tests.support.json_log import json_log
from tests.support.queues import BROKER_URL
from tests.support.tracing import memory_spans, wait_for_spans
from tests.trainer.workers import wait_until


def test_one_batch_is_one_trace_and_its_log_lines_carry_the_ids(
    registry: Registry, store: Store, batch_queue: messaging.WorkQueue
) -> None:
    spans = memory_spans()
    rows = registry.features.head(30)
    with json_log("inferer") as log, running_inferer(batch_queue, store, registry.tracking_uri):
        submission = submit_batch(
            rows, "cancer@production", broker_url=BROKER_URL, rows_per_message=10, queue=batch_queue
        )
        wait_until(
            lambda: store.get_batch(submission.batch_id).status == BatchStatus.SUCCEEDED,
            60,
            "the batch to finish",
        )
    process_name = f"{batch_queue.name} process"
    finished = wait_for_spans(
        spans, lambda found: sum(span.name == process_name for span in found) == 3
    )
    [root] = [span for span in finished if span.name == "submit batch"]
    publishes = [span for span in finished if span.name == f"{batch_queue.name} publish"]
    processes = [span for span in finished if span.name == process_name]
    assert len(publishes) == 3
    trace_id = root.context.trace_id
    for span in publishes + processes:
        assert span.context.trace_id == trace_id, f"{span.name} is in another trace"
    assert {span.parent.span_id for span in publishes} == {root.context.span_id}
    assert {span.parent.span_id for span in processes} == {s.context.span_id for s in publishes}
    assert all(span.kind is trace.SpanKind.CONSUMER for span in processes)
    assert {span.attributes["mlp.batch_id"] for span in processes} == {submission.batch_id}

    lines = log.records()
    parts = [line for line in lines if " part " in line["message"]]
    assert len(parts) == 3, lines
    for line in parts:
        assert line["service"] == "inferer"
        assert line["level"] == "INFO"
        assert line["batch_id"] == submission.batch_id
        assert line["model_name"] == "cancer"
        assert line["model_version"] == "1"
        assert line["trace_id"] == format(trace_id, "032x")
