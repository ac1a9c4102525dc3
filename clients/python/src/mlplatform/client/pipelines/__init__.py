"""Pipeline definitions from files: parse (JSON or YAML, the seed's format) and validate."""

from mlplatform.client.pipelines.errors import FieldError, PipelineError
from mlplatform.client.pipelines.parsing import (
    load_pipeline_file,
    load_pipeline_text,
    parse_pipeline,
)
from mlplatform.client.pipelines.validation import check_pipeline, validate_pipeline

__all__ = [
    "FieldError",
    "PipelineError",
    "check_pipeline",
    "load_pipeline_file",
    "load_pipeline_text",
    "parse_pipeline",
    "validate_pipeline",
]
