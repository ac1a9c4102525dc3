"""One REST /predict is one trace: the gateway's SERVER span, its gRPC call, and the
predictor's span of that call with the model version, the row count and the batch it joined.
A real gateway (uvicorn on a loopback port, in this process so that its spans reach the SDK's
in-memory exporter) in front of a real predictor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_registry import open_registry, register_identity

from mlplatform.common.tracing import (
    instrument_fastapi,
    instrument_grpc_client,
    instrument_grpc_server,
)
from mlplatform.gateway.app import create_app
from mlplatform.gateway.settings import GatewaySettings
from tests.support.tracing import memory_spans, wait_for_spans

PREDICT_METHOD = "/mlplatform.v1.Predictor/Predict"


@pytest.fixture
def traced_predictor(
    tmp_path: Path, background_loop: BackgroundLoop
) -> Iterator[PredictorUnderTest]:
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )

    memory_spans()
    instrument_grpc_server()
    instrument_grpc_client()
    tracking_uri = open_registry(tmp_path)
    register_identity(tracking_uri, "traced")
    predictor = start_test_predictor(background_loop, "traced", tracking_uri, log_predictions=False)
    yield predictor
    predictor.stop()
    # Later tests in this process get plain servers and channels again.
    GrpcAioInstrumentorServer().uninstrument()
    GrpcAioInstrumentorClient().uninstrument()


@pytest.fixture
def traced_gateway(traced_predictor: PredictorUnderTest) -> Iterator[str]:
    app = create_app(GatewaySettings(predictor=traced_predictor.address))
    instrument_fastapi(app)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started and server.servers, 30, what="the gateway to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def test_one_rest_predict_is_one_trace_through_gateway_and_predictor(traced_gateway: str) -> None:
    spans = memory_spans()
    response = httpx.post(
        f"{traced_gateway}/predict", json={"records": [{"x": 1.0}, {"x": 2.0}]}, timeout=30
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    def complete(found: object) -> bool:
        kinds = {(span.name, span.kind) for span in found}  # type: ignore[attr-defined]
        return (PREDICT_METHOD, trace.SpanKind.SERVER) in kinds and any(
            kind is trace.SpanKind.SERVER and name.startswith("POST") for name, kind in kinds
        )

    finished = wait_for_spans(spans, complete)
    [gateway_span] = [
        span for span in finished if span.kind is trace.SpanKind.SERVER and "POST" in span.name
    ]
    [predictor_span] = [
        span
        for span in finished
        if span.kind is trace.SpanKind.SERVER and span.name == PREDICT_METHOD
    ]
    [client_span] = [
        span
        for span in finished
        if span.kind is trace.SpanKind.CLIENT and span.name == PREDICT_METHOD
    ]
    trace_id = gateway_span.context.trace_id
    assert client_span.context.trace_id == trace_id
    assert predictor_span.context.trace_id == trace_id
    assert predictor_span.parent.span_id == client_span.context.span_id
    assert gateway_span.attributes["mlp.request_id"] == request_id
    assert predictor_span.attributes["mlp.request_id"] == request_id
    assert predictor_span.attributes["mlp.model_name"] == "traced"
    assert predictor_span.attributes["mlp.model_version"] == "1"
    assert predictor_span.attributes["mlp.rows"] == 2
    [batched] = [event for event in predictor_span.events if event.name == "predicted in a batch"]
    assert batched.attributes["mlp.batch.rows"] >= 2
