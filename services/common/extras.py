"""Optional parts of the platform (pip extras) and the error a missing one raises.

`pip install mlplatform` gives every service on the SQLite store; drivers for other backends
come as extras, so a process that never talks to MongoDB never needs pymongo. A module that
needs an extra imports it at its top and turns the ImportError into `MissingExtraError`,
whose message names the install command.
"""

from __future__ import annotations

#: Extra name -> what it enables (the `[project.optional-dependencies]` of pyproject.toml).
EXTRAS = {
    "mongo": "the mongodb:// prediction and run store (pymongo)",
    "postgres": "MLflow's backend store on PostgreSQL (psycopg2)",
    "s3": "MLflow's S3 artifact store (boto3)",
    "kaggle": "the load_data_from_kaggle step (the Kaggle client)",
    "spark": "mlp batch spark (pyspark)",
    "monitor": "mlp monitor's drift statistics and reports (Evidently)",
    "tracing": "OpenTelemetry tracing (the SDK, OTLP exporters, FastAPI and gRPC instrumentation)",
    "compiled": "compiled serving, --compile onnx (skl2onnx, onnxmltools, ONNX Runtime)",
}


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, extra: str, missing_module: str | None) -> None:
        self.extra = extra
        self.missing_module = missing_module
        super().__init__(
            f"{EXTRAS[extra]} needs the {extra!r} extra: pip install 'mlplatform[{extra}]'",
            name=missing_module,
        )


def missing_extra(extra: str, error: ImportError) -> MissingExtraError:
    """The error to raise (`from error`) when importing a module of `extra` failed."""
    return MissingExtraError(extra, error.name)
