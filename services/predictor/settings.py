"""Predictor settings, from `MLP_PREDICTOR_*` environment variables (and `mlp predictor` options).

The store and the MLflow registry come from the shared settings (`MLP_STORE_URI`,
`MLFLOW_TRACKING_URI`); everything here is the predictor's own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.common.compiled_serving import DEFAULT_TOLERANCE, CompileMode, CompileOptions
from mlplatform.common.model_tags import ModelTagRequirement


class PredictorSettings(BaseSettings):
    """How the predictor serves: which model, where, how it batches, reloads and logs."""

    model_config = SettingsConfigDict(env_prefix="MLP_PREDICTOR_", extra="ignore")

    model: str = Field(default="", description="NAME[@ALIAS] or NAME/VERSION to serve.")
    default_alias: str = Field(default="production", description="Alias when only NAME is given.")
    host: str = Field(default="0.0.0.0", description="Interface the gRPC server binds.")
    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_host: str = Field(default="0.0.0.0", description="Interface of the metrics endpoint.")
    metrics_port: int = Field(
        default=9095, ge=-1, le=65535, description="Prometheus port; 0 picks one, -1 disables."
    )
    batching: bool = Field(default=True, description="Predict concurrent requests together.")
    max_batch_size: int = Field(default=64, ge=1, description="Most rows in one model call.")
    max_batch_wait_ms: float = Field(
        default=10.0,
        ge=0,
        description="Longest a batch waits for more requests, only while requests are "
        "arriving concurrently, and never longer than the last model call took; a lone caller "
        "never waits.",
    )
    max_request_rows: int = Field(default=10_000, ge=1, description="Most rows in one request.")
    reload_interval_s: float = Field(
        default=10.0, gt=0, description="How often the registry alias is checked."
    )
    log_predictions: bool = Field(default=True, description="Write every prediction to the store.")
    log_buffer_rows: int = Field(
        default=100_000, ge=1, description="Rows waiting to be written; beyond it rows are dropped."
    )
    log_flush_rows: int = Field(default=2_000, ge=1, description="Rows written per store call.")
    log_flush_interval_s: float = Field(
        default=0.5, gt=0, description="Longest a logged row waits before it is written."
    )
    drain_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="On SIGTERM, time between health going NOT_SERVING and refusing new calls, "
        "so load balancers stop routing here first.",
    )
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long in-flight requests may take."
    )
    max_message_mb: int = Field(default=64, ge=1, description="Largest gRPC message accepted.")
    require_model_tag: str = Field(
        default="",
        description="KEY or KEY=VALUE: serve only versions whose registry tags have it "
        "(mlp.pipeline_id: only what the platform's trainer registered).",
    )
    tls_cert: str = Field(
        default="", description="PEM certificate (chain) of the gRPC port; with tls_key, TLS."
    )
    tls_key: str = Field(default="", description="PEM private key of tls_cert.")
    tls_client_ca: str = Field(
        default="",
        description="PEM CA bundle: clients must present a certificate it signed (mutual TLS).",
    )

    compile: Literal["auto", "onnx", "off"] = Field(
        default="auto",
        description="Serve the model compiled by ONNX Runtime when it gives the same answers "
        "(auto: else scikit-learn, saying why), only compiled (onnx), or never (off).",
    )
    compile_tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        ge=0,
        description="Largest difference of a probability (or value) the compile check allows.",
    )

    @property
    def compile_options(self) -> CompileOptions:
        """How loaded models are compiled."""
        return CompileOptions(CompileMode(self.compile), self.compile_tolerance)

    @model_validator(mode="after")
    def _parse_required_tag(self) -> PredictorSettings:
        self.required_tag  # noqa: B018 - parsed here so a bad value fails at start
        return self

    @property
    def required_tag(self) -> ModelTagRequirement | None:
        """The registry tag a version must carry to be served, if any."""
        text = self.require_model_tag.strip()
        return ModelTagRequirement.parse(text) if text else None
