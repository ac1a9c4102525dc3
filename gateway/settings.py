"""Gateway settings, from `MLP_GATEWAY_*` environment variables (and `mlp gateway` options).

API keys come from `MLP_API_KEYS` and `MLP_API_KEYS_FILE`, the names the gateway and the
predictor share, so one setting protects the REST and the gRPC surfaces together.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.client.tls import TlsError, TlsFiles, read_pem
from mlplatform.common.api_keys import API_KEYS_ENV, API_KEYS_FILE_ENV, ApiKeys, parse_api_keys

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class GatewaySettings(BaseSettings):
    """Where the gateway listens, which predictor it forwards to, and its limits."""

    # populate_by_name: `GatewaySettings(api_keys=...)` works although the environment name is
    # the shared MLP_API_KEYS.
    model_config = SettingsConfigDict(
        env_prefix="MLP_GATEWAY_", extra="ignore", populate_by_name=True
    )

    host: str = Field(default="0.0.0.0", description="Interface the HTTP server binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    predictor: str = Field(default="127.0.0.1:50051", description="The predictor's HOST:PORT.")
    metrics_host: str = Field(default="0.0.0.0", description="Interface of the metrics endpoint.")
    metrics_port: int = Field(
        default=9096, ge=-1, le=65535, description="Prometheus port; 0 picks one, -1 disables."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of each call to the predictor (gRPC deadline)."
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1,
        description="Largest request body accepted; larger ones get 413 before they are parsed.",
    )
    monitor_url: str = Field(
        default="",
        description="An `mlp monitor exporter`'s URL (http://HOST:PORT); empty: no /monitor pages.",
    )
    api_keys: str = Field(
        default="",
        validation_alias=API_KEYS_ENV,
        description="Accepted API keys, comma-separated, each with every scope.",
    )
    api_keys_file: str = Field(
        default="",
        validation_alias=API_KEYS_FILE_ENV,
        description="YAML/JSON file of named keys (SHA-256 digests) and their scopes.",
    )
    predictor_tls: bool = Field(
        default=False, description="TLS to the predictor (implied by any predictor_tls_* file)."
    )
    predictor_tls_ca: str = Field(default="", description="PEM CA of the predictor's cert.")
    predictor_tls_cert: str = Field(default="", description="PEM client certificate (mTLS).")
    predictor_tls_key: str = Field(default="", description="PEM key of predictor_tls_cert.")
    predictor_tls_server_name: str = Field(
        default="", description="Name the predictor's certificate carries, if not its host."
    )
    tls_cert: str = Field(default="", description="PEM certificate: the gateway serves HTTPS.")
    tls_key: str = Field(default="", description="PEM private key of tls_cert.")

    @property
    def keys(self) -> tuple[str, ...]:
        """The plain API keys of `MLP_API_KEYS`."""
        return parse_api_keys(self.api_keys)

    def api_key_store(self) -> ApiKeys:
        """Every accepted key (plain and from the keys file); raises KeysFileError."""
        return ApiKeys(self.keys, self.api_keys_file or None)

    @property
    def predictor_tls_files(self) -> TlsFiles | None:
        """The TLS of the channel to the predictor; None for plain text."""
        files = (self.predictor_tls_ca, self.predictor_tls_cert, self.predictor_tls_key)
        if not (self.predictor_tls or any(files) or self.predictor_tls_server_name):
            return None
        return TlsFiles(
            self.predictor_tls_ca or None,
            self.predictor_tls_cert or None,
            self.predictor_tls_key or None,
            self.predictor_tls_server_name or None,
        )

    def check_files(self) -> None:
        """Fail at start, with the setting's name, on a TLS or keys file that cannot be used."""
        tls = self.predictor_tls_files
        if tls is not None:
            tls.grpc_credentials()
        if bool(self.tls_cert) != bool(self.tls_key):
            raise TlsError("MLP_GATEWAY_TLS_CERT and MLP_GATEWAY_TLS_KEY go together")
        if self.tls_cert:
            read_pem(self.tls_cert, "MLP_GATEWAY_TLS_CERT")
            read_pem(self.tls_key, "MLP_GATEWAY_TLS_KEY")
        self.api_key_store()
