"""The predictor over TLS and mutual TLS (`--tls-cert/--tls-key`, `--tls-client-ca`), with
certificates from a throwaway CA made at run time: TLS calls work from the Python client (sync
and asyncio) and `mlp predict`, a plain-text call to the TLS port fails, and under mTLS a
client without a certificate, or with one from another CA, is refused."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry

from mlplatform.client.predictor_client import (
    AsyncPredictorClient,
    PredictorClient,
    PredictorError,
)
from mlplatform.client.tls import TlsError, TlsFiles
from mlplatform.common.store import Store
from tests.support.certificates import Pki


@pytest.fixture(scope="module")
def tls_predictor(
    background_loop: BackgroundLoop, registry: Registry, session_store: Store, pki: Pki
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop,
        "cancer_rf",
        registry.tracking_uri,
        store=session_store,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        client_tls=TlsFiles(ca=str(pki.ca)),
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="module")
def mtls_predictor(
    background_loop: BackgroundLoop, registry: Registry, session_store: Store, pki: Pki
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop,
        "cancer_rf",
        registry.tracking_uri,
        store=session_store,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca),
        client_tls=TlsFiles(ca=str(pki.ca), cert=str(pki.client.cert), key=str(pki.client.key)),
    )
    yield predictor
    predictor.stop()


def _refused(address: str, rows: object, tls: TlsFiles | None) -> PredictorError:
    with (
        PredictorClient(address, tls=tls, timeout=5) as client,
        pytest.raises(PredictorError) as refused,
    ):
        client.predict(rows)  # type: ignore[arg-type]
    return refused.value


def test_tls_calls_work(tls_predictor: PredictorUnderTest, registry: Registry, pki: Pki) -> None:
    rows = registry.cancer_features.head(3)
    with PredictorClient(tls_predictor.address, tls=TlsFiles(ca=str(pki.ca))) as client:
        assert len(client.predict(rows).predictions) == 3
        assert client.model_info().model_name == "cancer_rf"

    async def predict_async() -> int:
        async with AsyncPredictorClient(
            f"localhost:{tls_predictor.running.port}", tls=TlsFiles(ca=str(pki.ca))
        ) as client:
            return len((await client.predict(rows)).predictions)

    assert asyncio.run(predict_async()) == 3


def test_a_plain_text_call_to_the_tls_port_fails(
    tls_predictor: PredictorUnderTest, registry: Registry
) -> None:
    error = _refused(tls_predictor.address, registry.cancer_features.head(1), None)
    assert error.code == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_trust_the_servers_ca_fails(
    tls_predictor: PredictorUnderTest, registry: Registry, pki: Pki
) -> None:
    rows = registry.cancer_features.head(1)
    error = _refused(tls_predictor.address, rows, TlsFiles(ca=str(pki.other_ca)))
    assert error.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_serves_a_client_with_a_certificate_of_the_ca(
    mtls_predictor: PredictorUnderTest, registry: Registry, pki: Pki
) -> None:
    tls = TlsFiles(ca=str(pki.ca), cert=str(pki.client.cert), key=str(pki.client.key))
    with PredictorClient(mtls_predictor.address, tls=tls) as client:
        assert len(client.predict(registry.cancer_features.head(2)).predictions) == 2


@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate"])
def test_mtls_refuses_a_client_without_the_right_certificate(
    mtls_predictor: PredictorUnderTest, registry: Registry, pki: Pki, client: str
) -> None:
    if client == "no certificate":
        tls = TlsFiles(ca=str(pki.ca))
    else:
        tls = TlsFiles(ca=str(pki.ca), cert=str(pki.stranger.cert), key=str(pki.stranger.key))
    error = _refused(mtls_predictor.address, registry.cancer_features.head(1), tls)
    assert error.code == grpc.StatusCode.UNAVAILABLE


def test_mlp_predict_speaks_mtls(
    mtls_predictor: PredictorUnderTest, registry: Registry, pki: Pki, tmp_path: Path
) -> None:
    rows_file = tmp_path / "rows.csv"
    registry.cancer_features.head(2).to_csv(rows_file, index=False)
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    base = [mlp, "predict", str(rows_file), "--address", mtls_predictor.address, "--timeout", "5"]
    tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client.cert)]
    served = subprocess.run(
        [*base, *tls, "--tls-key", str(pki.client.key)], capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr
    assert "cancer_rf version" in served.stdout
    refused = subprocess.run([*base, "--tls-ca", str(pki.ca)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "UNAVAILABLE" in refused.stderr
    half = subprocess.run([*base, *tls], capture_output=True, text=True)
    assert half.returncode == 2
    assert "needs its key" in half.stderr


def test_unusable_tls_files_are_named(pki: Pki, tmp_path: Path) -> None:
    not_pem = tmp_path / "cert.txt"
    not_pem.write_text("hello")
    with pytest.raises(TlsError, match=r"CA: .*cert.txt is not a PEM file"):
        TlsFiles(ca=str(not_pem)).grpc_credentials()
    with pytest.raises(TlsError, match=r"client key: cannot read .*missing.pem"):
        TlsFiles(cert=str(pki.client.cert), key=str(tmp_path / "missing.pem")).grpc_credentials()


def test_the_predictor_refuses_to_start_with_half_a_key_pair(pki: Pki) -> None:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    done = subprocess.run(
        [mlp, "predictor", "--model", "any", "--port", "0", "--tls-cert", str(pki.server.cert)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "MLP_PREDICTOR_TLS_CERT and MLP_PREDICTOR_TLS_KEY go together" in done.stderr


def test_the_dev_certificates_of_the_compose_override_serve_mtls(
    background_loop: BackgroundLoop, registry: Registry, session_store: Store, tmp_path: Path
) -> None:
    """deploy/tls/make-dev-certs.sh makes what deploy/tls/compose.tls.yml mounts: the predictor
    serves with its certificate, the gateway's certificate is its client, and the name checked
    is the compose service name (`predictor`), as the gateway dials it there."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "tls" / "make-dev-certs.sh"
    subprocess.run(["sh", str(script), str(tmp_path)], check=True, capture_output=True)
    predictor = start_test_predictor(
        background_loop,
        "cancer_rf",
        registry.tracking_uri,
        store=session_store,
        log_predictions=False,
        tls_cert=str(tmp_path / "predictor.pem"),
        tls_key=str(tmp_path / "predictor-key.pem"),
        tls_client_ca=str(tmp_path / "ca.pem"),
        client_tls=TlsFiles(
            ca=str(tmp_path / "ca.pem"),
            cert=str(tmp_path / "client.pem"),
            key=str(tmp_path / "client-key.pem"),
        ),
    )
    try:
        gateway_tls = TlsFiles(
            ca=str(tmp_path / "ca.pem"),
            cert=str(tmp_path / "gateway.pem"),
            key=str(tmp_path / "gateway-key.pem"),
            server_name="predictor",
        )
        with PredictorClient(predictor.address, tls=gateway_tls) as client:
            assert len(client.predict(registry.cancer_features.head(1)).predictions) == 1
    finally:
        predictor.stop()
