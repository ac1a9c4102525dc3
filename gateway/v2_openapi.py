"""What `/docs` shows for the KServe V2 routes: the protocol's JSON shapes, and an example
request for the project's example model (`credit_fraud`: one FP64 tensor per column)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Datatype = Literal[
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
Parameters = dict[str, bool | int | float | str]


class V2InputTensor(BaseModel):
    name: str = Field(description="The column's name (one tensor per column).")
    shape: list[int] = Field(description="[rows] or [rows, 1].")
    datatype: Datatype
    parameters: Parameters | None = Field(
        default=None, description="`binary_data_size`: the tensor's bytes follow the JSON."
    )
    data: list[Any] | None = Field(
        default=None, description="The values, flat or nested, row-major (absent when binary)."
    )


class V2RequestedOutput(BaseModel):
    name: str = Field(description="`prediction` or `probabilities`.")
    parameters: Parameters | None = Field(
        default=None, description="`binary_data`: answer this output as binary data."
    )


class V2InferBody(BaseModel):
    """A V2 inference request (KServe Open Inference Protocol)."""

    id: str | None = Field(
        default=None, description="Echoed in the answer; default the request id."
    )
    parameters: Parameters | None = Field(
        default=None, description="`binary_data_output`: every output as binary data."
    )
    inputs: list[V2InputTensor]
    outputs: list[V2RequestedOutput] | None = Field(
        default=None, description="The outputs wanted; absent: all."
    )


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2InferResult(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[V2OutputTensor]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Status(BaseModel):
    live: bool | None = None
    ready: bool | None = None


class V2ErrorBody(BaseModel):
    """V2's error body (the `X-Request-ID` header carries the request id)."""

    error: str


V2_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": V2ErrorBody, "description": description}
    for status, description in (
        (400, "Malformed body, or tensors that do not fit the model (named); not ready"),
        (401, "Missing or invalid API key"),
        (403, "The key lacks the `predict` scope"),
        (404, "Another model (or version) is served"),
        (413, "The body is larger than the limit"),
        (415, "Neither JSON nor binary tensor data"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL: the request id to quote"),
        (503, "The predictor is down or has no model yet"),
        (504, "The predictor did not answer within the deadline"),
    )
}


def infer_examples(row: dict[str, Any]) -> dict[str, Any]:
    """`/docs` examples of an infer request for one row (column -> value)."""
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in row.items()
    ]
    return {
        "columns": {"summary": "One FP64 tensor per column", "value": {"inputs": inputs}},
        "probabilities": {
            "summary": "Only the probabilities",
            "value": {"inputs": inputs, "outputs": [{"name": "probabilities"}]},
        },
    }
