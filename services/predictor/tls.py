"""The predictor's TLS: server credentials from `MLP_PREDICTOR_TLS_*` PEM files.

`tls_cert` + `tls_key` encrypt the port; `tls_client_ca` adds mutual TLS: a client must then
present a certificate signed by that CA, or the handshake fails before any RPC (health checks
included, so probes need a client certificate too).
"""

from __future__ import annotations

import grpc

from mlplatform.client.tls import TlsError, read_pem
from mlplatform.predictor.settings import PredictorSettings


def server_credentials(settings: PredictorSettings) -> grpc.ServerCredentials | None:
    """Credentials for `add_secure_port`, or None when the port is plain text."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise TlsError("MLP_PREDICTOR_TLS_CLIENT_CA needs MLP_PREDICTOR_TLS_CERT and _KEY")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise TlsError("MLP_PREDICTOR_TLS_CERT and MLP_PREDICTOR_TLS_KEY go together")
    key_pair = (
        read_pem(settings.tls_key, "MLP_PREDICTOR_TLS_KEY"),
        read_pem(settings.tls_cert, "MLP_PREDICTOR_TLS_CERT"),
    )
    client_ca = (
        read_pem(settings.tls_client_ca, "MLP_PREDICTOR_TLS_CLIENT_CA")
        if settings.tls_client_ca
        else None
    )
    return grpc.ssl_server_credentials(
        [key_pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
