"""The gateway's /metrics, on its own port: requests by route template, method and status,
and their latency, read over HTTP from a real gateway in front of a real predictor."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
from gateway_data import credit_fraud_features
from gateway_harness import free_port, running_gateway
from predictor_harness import PredictorUnderTest

from tests.support.prometheus_scrape import names, scrape, value

LATENCY_COUNT = "mlp_gateway_request_latency_seconds_count"


def test_requests_are_counted_by_route_template_and_status(
    credit_predictor: PredictorUnderTest, gateway_logs: Path
) -> None:
    metrics_port = free_port()
    records = credit_fraud_features().head(2).to_dict(orient="records")
    with running_gateway(
        credit_predictor.address, gateway_logs, "--metrics-port", str(metrics_port)
    ) as gateway:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        before = scrape(url)
        assert {"mlp_gateway_requests_in_flight"} <= names(before)
        for _ in range(3):
            assert gateway.client.post("/predict", json={"records": records}).status_code == 200
        assert gateway.client.post("/predict", json={"rows": []}).status_code == 400
        assert gateway.client.get("/models/credit_fraud").status_code == 200
        assert gateway.client.get("/models/someone_else").status_code == 404
        assert gateway.client.get("/no/such/route").status_code == 404
        # The scrape is on its own port: the REST port has no /metrics.
        assert httpx.get(f"{gateway.url}/metrics").status_code == 404
        after = scrape(url)

    def moved(route: str, method: str, status: str) -> float:
        labels = {"route": route, "method": method, "status": status}
        return value(after, "mlp_gateway_requests_total", **labels) - value(
            before, "mlp_gateway_requests_total", **labels
        )

    assert moved("/predict", "POST", "200") == 3
    assert moved("/predict", "POST", "400") == 1
    # Labelled by the template, not by the name asked for.
    assert moved("/models/{name}", "GET", "200") == 1
    assert moved("/models/{name}", "GET", "404") == 1
    assert moved("unmatched", "GET", "404") == 2  # /no/such/route and /metrics
    latency = {"route": "/predict", "method": "POST", "status": "200"}
    assert value(after, LATENCY_COUNT, **latency) == 3
    assert value(after, "mlp_gateway_request_latency_seconds_sum", **latency) > 0
    assert value(after, "mlp_gateway_requests_in_flight") == 0


def test_a_taken_metrics_port_is_one_line_naming_it(
    credit_predictor: PredictorUnderTest, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "mlplatform.cli", "gateway", "--host", "127.0.0.1"]
        argv += ["--port", str(free_port()), "--predictor", credit_predictor.address]
        argv += ["--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"metrics port {port} on 127.0.0.1 is taken" in result.stderr
    assert "Traceback" not in result.stderr
