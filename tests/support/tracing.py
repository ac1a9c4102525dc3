"""The OpenTelemetry SDK's in-memory exporter as the process's tracer provider, for tests of
traces: installed once (a process has one global provider), emptied for each test."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def memory_spans() -> InMemorySpanExporter:
    """The in-memory exporter every finished span goes to, emptied."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider, "another tracer provider was set first"
    _exporter.clear()
    return _exporter


def wait_for_spans(
    exporter: InMemorySpanExporter,
    done: Callable[[Sequence[ReadableSpan]], bool],
    timeout: float = 30.0,
) -> Sequence[ReadableSpan]:
    """The finished spans once `done(spans)` holds; AssertionError with them after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        spans = exporter.get_finished_spans()
        if done(spans):
            return spans
        if time.monotonic() > deadline:
            names = [span.name for span in spans]
            raise AssertionError(f"spans not complete after {timeout:.0f}s: {names}")
        time.sleep(0.05)
