"""OpenTelemetry tracing: off unless the standard `OTEL_*` variables configure an exporter.

`setup_tracing(service)` runs once at a service's start. With no exporter configured it does
nothing, and every span call in the code stays the API's no-op. With one (OTEL_TRACES_EXPORTER
= otlp or console, or an OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT), it installs the SDK's tracer
provider (service.name: OTEL_SERVICE_NAME, else `mlp-<service>`), batching spans to the
exporter; the SDK reads the rest of the OTEL_* variables itself.

The AMQP path carries the W3C trace context in message headers: `mlplatform.client.messaging`
injects it at publish, `consumer_span` extracts it around each delivery, so one submission is
one trace from publish to done. The instrumentation libraries (FastAPI, gRPC) come with the
`tracing` extra; `instrument_*` raise MissingExtraError without it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace

from mlplatform.common.extras import missing_extra

#: The instrumentation scope of our own spans.
TRACER_NAME = "mlplatform"
_TRUE = ("1", "true", "yes", "on")


def exporter_configured(environment: Mapping[str, str] | None = None) -> bool:
    """True when the OTEL_* variables ask for spans to be exported somewhere."""
    env = os.environ if environment is None else environment
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_enabled() -> bool:
    """True once a real tracer provider is installed (by `setup_tracing`, or a test's)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def setup_tracing(service: str) -> bool:
    """Installs the SDK's tracer provider when an exporter is configured; True when it did."""
    if not exporter_configured() or tracing_enabled():
        return tracing_enabled()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as error:
        raise missing_extra("tracing", error) from error
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"mlp-{service}"}
    )
    provider = TracerProvider(resource=resource)
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    for name in (part.strip() for part in names.split(",")):
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not otlp, console or none")
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # the last batch of spans is sent on exit
    return True


def _otlp_exporter() -> Any:
    """OTLP over HTTP/protobuf, or gRPC when OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says grpc."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    try:
        if protocol.strip().lower() == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as error:
        raise missing_extra("tracing", error) from error
    return OTLPSpanExporter()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """Adds the current trace context (W3C traceparent) to AMQP message headers."""
    propagate.inject(headers)
    return headers


@contextmanager
def consumer_span(
    queue: str, headers: Mapping[str, Any] | None, message_id: str | None
) -> Iterator[trace.Span]:
    """A CONSUMER span for one delivery, child of the publisher's context from its headers."""
    carrier = {key: value for key, value in (headers or {}).items() if isinstance(value, str)}
    parent = propagate.extract(carrier)
    token = context.attach(parent)
    try:
        with tracer().start_as_current_span(
            f"{queue} process",
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": message_id or "",
            },
        ) as span:
            yield span
    finally:
        context.detach(token)


def instrument_grpc_server() -> None:
    """Every grpc.aio server created from now on opens a SERVER span per call, child of the
    caller's context from the call's metadata."""
    try:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer
    except ImportError as error:
        raise missing_extra("tracing", error) from error
    instrumentor = GrpcAioInstrumentorServer()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_grpc_client() -> None:
    """Every grpc.aio channel created from now on sends the trace context with each call."""
    try:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
    except ImportError as error:
        raise missing_extra("tracing", error) from error
    instrumentor = GrpcAioInstrumentorClient()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_fastapi(app: Any) -> None:
    """A SERVER span per request of `app` (health checks excluded)."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as error:
        raise missing_extra("tracing", error) from error
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
