"""Gateway settings, from `MLP_GATEWAY_*` environment variables (and `mlp gateway` options).

API keys come from `MLP_API_KEYS`, the one name the gateway and the predictor share, so a single
setting protects the REST and the gRPC surfaces together.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.common.api_keys import API_KEYS_ENV, parse_api_keys

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
        description="Accepted API keys, comma-separated; empty turns auth off.",
    )

    @property
    def keys(self) -> tuple[str, ...]:
        """The accepted API keys (empty: auth is off)."""
        return parse_api_keys(self.api_keys)
