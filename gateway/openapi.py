"""What `/docs` and `/openapi.json` show: request and response shapes, with working examples.

The routes read bodies by hand (see `rest_codec`), so FastAPI cannot see the request shapes;
the models here describe them and `install_openapi` puts them into the schema. Examples are a
row of the project's example model (`credit_fraud`, trained by
`examples/credit_fraud_from_file.json`), so "Try it out" works against the local stack.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from mlplatform.gateway.auth import SECURITY_SCHEMES
from mlplatform.gateway.v2_openapi import V2InferBody, infer_examples

Scalar = float | int | str | bool | None

_EXAMPLE_COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount"]
_EXAMPLE_VALUES: list[Scalar] = [
    18.0, -1.118397, 0.454381, 1.087619, -0.293594, -0.046238, -0.161888, 0.683135, -1.779481,
    0.630378, 1.924818, -0.365532, 1.568729, 0.998838, 0.028066, -2.091961, 0.289873, 0.394662,
    -0.297914, 0.159196, -1.176874, -0.412471, 0.977769, -0.16112, 0.44525, 0.483905, 0.366653,
    -1.595182, 0.548773, 74.08,
]  # fmt: skip
EXAMPLE_ROW: dict[str, Scalar] = dict(zip(_EXAMPLE_COLUMNS, _EXAMPLE_VALUES, strict=True))


class PredictRecords(BaseModel):
    """Rows as objects, one per row."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Scalar]] = Field(
        description="One object per row: column name -> value (null or absent: missing)."
    )
    model_name: str = Field(
        default="", description="The model the caller expects; empty: whatever is served."
    )
    include_probabilities: bool = Field(
        default=False, description="Also return class probabilities (classifiers only)."
    )


class PredictColumns(BaseModel):
    """Rows as arrays of values, in the order of `columns` (pandas' `split` orientation)."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(description="Column names, unique.")
    data: list[list[Scalar]] = Field(description="One array per row, one value per column.")
    model_name: str = Field(default="", description="As for the records form.")
    include_probabilities: bool = Field(default=False, description="As for the records form.")


class PredictResult(BaseModel):
    """Predictions, one per input row, in input order."""

    model_name: str
    model_version: str
    request_id: str
    predictions: list[Scalar]
    probabilities: list[dict[str, float | None]] | None = Field(
        default=None, description="With include_probabilities: one {class: p} object per row."
    )


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="double, int64, string or bool.")
    required: bool = Field(description="False when values may be missing.")


class ModelInfoResult(BaseModel):
    """The served model."""

    model_name: str
    model_version: str
    alias: str
    problem_type: str = Field(description="classification or regression.")
    classes: list[str]
    input_schema: list[ColumnInfo]
    backend: str = Field(description="onnxruntime (compiled) or sklearn.")
    compile_reason: str = Field(description="Why the model is not served compiled, if it is not.")


class DataFrameSplit(BaseModel):
    columns: list[str] | None = None
    data: list[list[Scalar]]
    index: list[Any] | None = None


class InvocationsSplit(BaseModel):
    """MLflow `dataframe_split`."""

    dataframe_split: DataFrameSplit
    params: dict[str, Any] | None = None


class InvocationsRecords(BaseModel):
    """MLflow `dataframe_records`."""

    dataframe_records: list[dict[str, Scalar]]
    params: dict[str, Any] | None = None


class InvocationsInstances(BaseModel):
    """MLflow `instances` (TF-serving rows)."""

    instances: list[dict[str, Scalar]] | list[list[Scalar]] | dict[str, list[Scalar]]
    params: dict[str, Any] | None = None


class InvocationsInputs(BaseModel):
    """MLflow `inputs` (TF-serving columns or rows)."""

    inputs: dict[str, list[Scalar]] | list[dict[str, Scalar]] | list[list[Scalar]]
    params: dict[str, Any] | None = None


class InvocationsResult(BaseModel):
    """MLflow's scoring-server answer."""

    predictions: list[Any]


class ErrorBody(BaseModel):
    """Every error: a google.rpc.Status in JSON (as grpc-gateway writes it), the status name and
    the request id."""

    code: int = Field(description="gRPC status code (google/rpc/code.proto).")
    status: str = Field(description="Its name, e.g. INVALID_ARGUMENT.")
    message: str
    details: list[dict[str, Any]] = Field(
        description="google.rpc.BadRequest with fieldViolations naming each offending field."
    )
    request_id: str


class HealthResult(BaseModel):
    status: str
    predictor: str | None = None


class OutcomeItem(BaseModel):
    """The true label of logged predictions, named by exactly one of: request_id (online) or
    batch_id (batch), each with row; or prediction_key (the caller's key column), optionally
    with model."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, description="An online call's request id.")
    batch_id: str | None = Field(default=None, description="A batch job's id.")
    prediction_key: str | None = Field(
        default=None,
        description="The caller's key of a prediction; every prediction with it is labelled.",
    )
    row: int | None = Field(
        default=None, ge=0, description="With request_id or batch_id: the row, from 0."
    )
    model: str | None = Field(
        default=None, description="With prediction_key: only this registered model's."
    )
    label: str | int | float | bool = Field(description="The true label or value.")


class OutcomesBody(BaseModel):
    """Outcomes to attach, all or nothing."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeItem] = Field(min_length=1)


OUTCOMES_EXAMPLES: dict[str, Any] = {
    "online": {
        "summary": "Labels of an online call's rows",
        "value": {"outcomes": [{"request_id": "demo-1", "row": 0, "label": 1}]},
    },
    "prediction_key": {
        "summary": "Labels by the caller's own key column",
        "value": {"outcomes": [{"prediction_key": "order-1001", "model": "churn", "label": 1}]},
    },
}
PREDICT_EXAMPLES: dict[str, Any] = {
    "records": {
        "summary": "Rows as objects",
        "value": {"records": [EXAMPLE_ROW], "include_probabilities": True},
    },
    "columns": {
        "summary": "Column-split rows",
        "value": {"columns": _EXAMPLE_COLUMNS, "data": [_EXAMPLE_VALUES]},
    },
}
INVOCATIONS_EXAMPLES: dict[str, Any] = {
    "dataframe_split": {
        "summary": "dataframe_split",
        "value": {"dataframe_split": {"columns": _EXAMPLE_COLUMNS, "data": [_EXAMPLE_VALUES]}},
    },
    "dataframe_records": {
        "summary": "dataframe_records",
        "value": {"dataframe_records": [EXAMPLE_ROW]},
    },
    "instances": {"summary": "instances", "value": {"instances": [EXAMPLE_ROW]}},
    "inputs": {
        "summary": "inputs (columns), probabilities",
        "value": {
            "inputs": {name: [value] for name, value in EXAMPLE_ROW.items()},
            "params": {"predict_method": "predict_proba"},
        },
    },
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "INVALID_ARGUMENT: malformed JSON, wrong types, rows that do not fit the model"),
        (401, "UNAUTHENTICATED: missing or invalid API key"),
        (404, "NOT_FOUND: another model is served"),
        (413, "The body is larger than the limit (refused before parsing)"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL: the request id to quote, no details"),
        (503, "UNAVAILABLE: the predictor is down or has no model yet"),
        (504, "DEADLINE_EXCEEDED: the predictor did not answer within the deadline"),
    )
}

#: The error answers of the routes that read a body: those of every route, and 415.
BODY_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    415: {
        "model": ErrorBody,
        "description": "The Content-Type is not one the route reads (JSON; CSV on /invocations)",
    },
}

PredictBody = PredictRecords | PredictColumns
InvocationsBody = InvocationsSplit | InvocationsRecords | InvocationsInstances | InvocationsInputs

#: (path, method) -> (body type, examples) of the routes whose bodies are read by hand.
REQUEST_BODIES: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {
    ("/predict", "post"): (PredictBody, PREDICT_EXAMPLES),
    ("/invocations", "post"): (InvocationsBody, INVOCATIONS_EXAMPLES),
    ("/outcomes", "post"): (OutcomesBody, OUTCOMES_EXAMPLES),
    ("/v2/models/{name}/infer", "post"): (V2InferBody, infer_examples(EXAMPLE_ROW)),
    ("/v2/models/{name}/versions/{version}/infer", "post"): (
        V2InferBody,
        infer_examples(EXAMPLE_ROW),
    ),
}
_REF_TEMPLATE = "#/components/schemas/{model}"


def _with_request_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for (path, method), (body_type, examples) in REQUEST_BODIES.items():
        body_schema = TypeAdapter(body_type).json_schema(ref_template=_REF_TEMPLATE)
        components.update(body_schema.pop("$defs", {}))
        operation = schema["paths"][path][method]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema, "examples": examples}},
        }
    invocations = schema["paths"]["/invocations"]["post"]["requestBody"]["content"]
    invocations["text/csv"] = {
        "schema": {"type": "string"},
        "example": ",".join(_EXAMPLE_COLUMNS) + "\n" + ",".join(map(str, _EXAMPLE_VALUES)),
    }
    outcomes = schema["paths"]["/outcomes"]["post"]["requestBody"]["content"]
    outcomes["text/csv"] = {
        "schema": {"type": "string"},
        "example": "request_id,row,label\ndemo-1,0,1",
    }
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` include the hand-read request bodies (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = _with_request_bodies(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
