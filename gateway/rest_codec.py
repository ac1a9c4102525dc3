"""REST bodies <-> Predictor messages: `/predict` and `/models/{name}` in our JSON shape,
`/invocations` in MLflow's.

Bodies are parsed with orjson and read by hand rather than validated by pydantic models: for a
one-row request, model validation would cost about as much as the gRPC call. The pydantic models
in `openapi.py` describe the same shapes for the docs.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from mlplatform.gateway.json_frames import (
    column_to_json,
    frame_from_records,
    frame_from_split,
    probabilities_as_rows,
    probabilities_by_class,
)
from mlplatform.gateway.status_mapping import invalid_argument
from mlplatform.v1 import frame_pb2, pipeline_pb2, predictor_pb2

PREDICT_FIELDS = frozenset({"records", "columns", "data", "model_name", "include_probabilities"})
_PROBLEM_TYPES = {
    pipeline_pb2.PROBLEM_TYPE_CLASSIFICATION: "classification",
    pipeline_pb2.PROBLEM_TYPE_REGRESSION: "regression",
}
_COLUMN_TYPES = {
    frame_pb2.COLUMN_TYPE_DOUBLE: "double",
    frame_pb2.COLUMN_TYPE_INT64: "int64",
    frame_pb2.COLUMN_TYPE_STRING: "string",
    frame_pb2.COLUMN_TYPE_BOOL: "bool",
}


def parse_json(body: bytes) -> Any:
    """The JSON document of a request body; INVALID_ARGUMENT (field `body`) when malformed.

    orjson first (fast); the standard module as a fallback reads what orjson refuses but
    Python and MLflow clients send: NaN and Infinity (json.dumps writes them), integers beyond
    64 bits (refused later, naming their column).
    """
    if not body:
        raise invalid_argument("body", "the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        try:
            return json.loads(body)
        except RecursionError:
            raise invalid_argument("body", "malformed JSON: nested too deeply") from None
        except ValueError as stdlib_error:
            reason = stdlib_error if not isinstance(stdlib_error, UnicodeError) else error
            raise invalid_argument("body", f"malformed JSON: {reason}") from None


def _optional_string(document: dict[str, Any], field: str) -> str:
    value = document.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_argument(field, "expected a string")
    return value


def _optional_bool(document: dict[str, Any], field: str) -> bool:
    value = document.get(field, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_argument(field, "expected true or false")
    return value


def predict_request(document: Any, request_id: str) -> predictor_pb2.PredictRequest:
    """The PredictRequest of a `/predict` body (records, or columns and data)."""
    if not isinstance(document, dict):
        raise invalid_argument(
            "body", "expected a JSON object with `records`, or `columns` and `data`"
        )
    unknown = [key for key in document if key not in PREDICT_FIELDS]
    if unknown:
        raise invalid_argument(
            str(unknown[0]), f"unknown field; expected {', '.join(sorted(PREDICT_FIELDS))}"
        )
    has_records = "records" in document
    has_split = "columns" in document or "data" in document
    if has_records == has_split:
        raise invalid_argument(
            "body",
            "send the rows either as `records` or as `columns` and `data`, not both"
            if has_records
            else "no rows: expected `records`, or `columns` and `data`",
        )
    request = predictor_pb2.PredictRequest(
        include_probabilities=_optional_bool(document, "include_probabilities"),
        request_id=request_id,
    )
    try:
        request.model_name = _optional_string(document, "model_name")
    except ValueError:
        raise invalid_argument("model_name", "not valid Unicode text") from None
    # The rows are written into the request's own Frame: assigning a finished Frame would copy
    # every value once more.
    if has_records:
        frame_from_records(document["records"], into=request.inputs)
    else:
        for field in ("columns", "data"):
            if field not in document:
                raise invalid_argument(field, "required with the column-split form")
        frame_from_split(document["columns"], document["data"], into=request.inputs)
    return request


def predict_result(response: predictor_pb2.PredictResponse) -> dict[str, Any]:
    """The `/predict` answer."""
    result: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "request_id": response.request_id,
        "predictions": column_to_json(response.predictions),
    }
    if response.HasField("probabilities"):
        result["probabilities"] = probabilities_by_class(response.probabilities)
        _check_row_counts(result["predictions"], result["probabilities"])
    return result


def _check_row_counts(predictions: list[Any], probabilities: list[Any]) -> None:
    """A predictor answer whose parts disagree on the row count is a fault, not an answer."""
    if len(probabilities) != len(predictions):
        raise ValueError(
            f"the predictor answered {len(predictions)} predictions but "
            f"{len(probabilities)} rows of probabilities"
        )


def invocation_result(
    response: predictor_pb2.PredictResponse, wants_probabilities: bool
) -> dict[str, Any]:
    """The `/invocations` answer, in MLflow's shape: `{"predictions": [...]}`, with one list of
    class probabilities per row for `predict_proba`."""
    predictions = column_to_json(response.predictions)
    if wants_probabilities:
        probabilities = probabilities_as_rows(response.probabilities)
        _check_row_counts(predictions, probabilities)
        return {"predictions": probabilities}
    return {"predictions": predictions}


def model_info_result(response: predictor_pb2.GetModelInfoResponse) -> dict[str, Any]:
    """The `/models/{name}` answer."""
    return {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "alias": response.alias,
        "problem_type": _PROBLEM_TYPES.get(response.problem_type, "unspecified"),
        "classes": list(response.classes),
        "input_schema": [
            {
                "name": column.name,
                "type": _COLUMN_TYPES.get(column.type, "unspecified"),
                "required": column.required,
            }
            for column in response.input_schema
        ],
        "backend": response.backend,
        "compile_reason": response.compile_reason,
    }
