"""The gateway's channel to a predictor that requires mutual TLS (`--predictor-tls-ca`,
`--predictor-tls-cert/--predictor-tls-key`), and the gateway serving HTTPS itself
(`--tls-cert/--tls-key`). Real gateway processes, a real predictor, a throwaway CA."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_data import credit_fraud_features
from gateway_harness import running_gateway
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor

from mlplatform.client.tls import TlsFiles
from tests.support.certificates import Pki


@pytest.fixture(scope="module")
def mtls_predictor(
    gateway_loop: BackgroundLoop, gateway_registry: str, pki: Pki
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        gateway_loop,
        "credit_fraud",
        gateway_registry,
        log_predictions=False,
        metrics_port=-1,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca),
        client_tls=TlsFiles(ca=str(pki.ca), cert=str(pki.client.cert), key=str(pki.client.key)),
    )
    yield predictor
    predictor.stop()


def _body() -> dict[str, object]:
    return {"records": credit_fraud_features().head(2).to_dict(orient="records")}


def test_the_gateway_reaches_an_mtls_predictor_with_its_certificate(
    mtls_predictor: PredictorUnderTest, gateway_logs: Path, pki: Pki
) -> None:
    options = ["--predictor-tls-ca", str(pki.ca), "--predictor-tls-cert", str(pki.client.cert)]
    options += ["--predictor-tls-key", str(pki.client.key)]
    with running_gateway(mtls_predictor.address, gateway_logs, *options) as gateway:
        assert gateway.client.get("/readyz").status_code == 200
        response = gateway.client.post("/predict", json=_body())
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2
        assert "over TLS" in gateway.log()


@pytest.mark.parametrize("setup", ["plain text", "TLS without a client certificate"])
def test_the_gateway_without_the_right_credentials_is_refused(
    mtls_predictor: PredictorUnderTest, gateway_logs: Path, pki: Pki, setup: str
) -> None:
    options = [] if setup == "plain text" else ["--predictor-tls-ca", str(pki.ca)]
    with running_gateway(mtls_predictor.address, gateway_logs, *options) as gateway:
        assert gateway.client.get("/readyz").status_code == 503
        response = gateway.client.post("/predict", json=_body())
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "UNAVAILABLE"


def test_the_gateway_serves_https(
    mtls_predictor: PredictorUnderTest, gateway_logs: Path, pki: Pki
) -> None:
    options = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    options += ["--predictor-tls-ca", str(pki.ca), "--predictor-tls-cert", str(pki.client.cert)]
    options += ["--predictor-tls-key", str(pki.client.key)]
    with running_gateway(
        mtls_predictor.address, gateway_logs, *options, https_ca=pki.ca
    ) as gateway:
        assert gateway.url.startswith("https://")
        response = gateway.client.post("/predict", json=_body())
        assert response.status_code == 200, response.text
        with pytest.raises(httpx.TransportError):
            httpx.get(gateway.url.replace("https://", "http://") + "/healthz", timeout=5)


def test_an_unusable_tls_file_stops_the_gateway_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    done = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "gateway", "--predictor-tls-ca", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"CA: cannot read {missing}" in done.stderr
