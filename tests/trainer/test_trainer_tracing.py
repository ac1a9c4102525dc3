"""One submission is one trace (real RabbitMQ, a real trainer worker, a small training): the
submitter's publish span, and the trainer's CONSUMER span of that message with the pipeline
id, up to the run's end; the trainer's JSON log lines inside it carry the pipeline id and
the trace id."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace

from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.store import RunStatus, Store
from tests.support.json_log import json_log
from tests.support.queues import BROKER_URL
from tests.support.tracing import memory_spans, wait_for_spans
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import running_worker, wait_until

pytestmark = pytest.mark.slow


def test_one_submission_is_one_trace_from_publish_to_done(
    fraud_csv: Path, store: Store, tracking_uri: str, work_queue: messaging.WorkQueue
) -> None:
    spans = memory_spans()
    with json_log("trainer") as log, running_worker(work_queue, store, tracking_uri, BROKER_URL):
        definition = parse_pipeline(classification_pipeline(fraud_csv, estimators=("dt",)))
        submission = submit_pipeline(
            definition, broker_url=BROKER_URL, pipeline_id="traced-1", queue=work_queue
        )

        def ended() -> bool:
            try:
                return store.get_run(submission.pipeline_id).status == RunStatus.SUCCEEDED
            except KeyError:
                return False

        wait_until(ended, 300, "the run to succeed")
    process_name = f"{work_queue.name} process"
    finished = wait_for_spans(spans, lambda found: any(s.name == process_name for s in found))
    [publish] = [span for span in finished if span.name == f"{work_queue.name} publish"]
    [process] = [span for span in finished if span.name == process_name]
    assert publish.kind is trace.SpanKind.PRODUCER
    assert process.kind is trace.SpanKind.CONSUMER
    assert process.context.trace_id == publish.context.trace_id
    assert process.parent.span_id == publish.context.span_id
    assert process.attributes["mlp.pipeline_id"] == "traced-1"
    assert process.end_time >= store.get_run("traced-1").finished_at.timestamp() * 1e9

    trace_id = format(publish.context.trace_id, "032x")
    lines = log.records()
    ours = [line for line in lines if line.get("pipeline_id") == "traced-1"]
    assert ours, lines
    assert {line["trace_id"] for line in ours} == {trace_id}
    assert {line["service"] for line in ours} == {"trainer"}
