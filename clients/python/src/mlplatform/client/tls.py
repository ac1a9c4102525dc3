"""TLS settings of a connection, as PEM file paths, and the credentials built from them.

One shape for every hop that can be encrypted: a client of the predictor (this package's
`PredictorClient`, `mlp predict`, the gateway) and a client of RabbitMQ (`amqps://`). `ca`
verifies the server (default: the system's trust store); `cert` and `key` identify the client
to a server that asks for a certificate (mutual TLS). `server_name` checks the server's
certificate against another name than the one dialled (a certificate issued for `predictor`
reached through `127.0.0.1:50051`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TlsError", "TlsFiles", "read_pem"]


class TlsError(ValueError):
    """A TLS file is missing, unreadable or not PEM; names the setting and the path."""


def read_pem(path: str | Path, setting: str) -> bytes:
    """The bytes of the PEM file `path`; TlsError naming `setting` when it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TlsError(f"{setting}: cannot read {path} ({error.strerror})") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{setting}: {path} is not a PEM file (no -----BEGIN line)")
    return data


@dataclass(frozen=True)
class TlsFiles:
    """Client-side TLS: which CA to trust and, for mutual TLS, the client's certificate."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise TlsError("a client certificate needs its key, and a key its certificate")

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials for grpc.secure_channel / grpc.aio.secure_channel."""
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "CA") if self.ca else None,
            private_key=read_pem(self.key, "client key") if self.key else None,
            certificate_chain=read_pem(self.cert, "client certificate") if self.cert else None,
        )

    def grpc_options(self) -> list[tuple[str, str]]:
        """Channel options the credentials need (the name to check the certificate against)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSLContext verifying the server (and presenting the client certificate)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca:
            try:
                context.load_verify_locations(cafile=self.ca)
            except (OSError, ssl.SSLError) as error:
                raise TlsError(f"CA: cannot load {self.ca} ({error})") from None
        if self.cert:
            try:
                context.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as error:
                raise TlsError(
                    f"client certificate: cannot load {self.cert} with {self.key} ({error})"
                ) from None
        return context


def secure_channel(
    address: str, tls: TlsFiles, options: list[tuple[str, object]] | None = None
) -> grpc.Channel:
    """A blocking channel over TLS."""
    return grpc.secure_channel(
        address, tls.grpc_credentials(), options=[*(options or []), *tls.grpc_options()]
    )


def secure_aio_channel(
    address: str, tls: TlsFiles, options: list[tuple[str, object]] | None = None
) -> grpc.aio.Channel:
    """An asyncio channel over TLS."""
    return grpc.aio.secure_channel(
        address, tls.grpc_credentials(), options=[*(options or []), *tls.grpc_options()]
    )
