"""The KServe Open Inference Protocol (V2) <-> the prediction core's rows and results.

A table travels in one of two forms:
- one input tensor per column, named after the column, shape `[rows]` (or `[rows, 1]`), by
  MLServer's pandas-codec convention;
- one FP64 tensor of shape `[rows, columns]`, any name, its columns in the order of the model's
  inputs (ModelMetadata's `inputs`, GetModelInfo's `input_schema`).
The caller's key column, when the `key_column` parameter names one, is one more tensor of shape
`[rows]` beside the others in either form. Raw FP64 data is read into `DoublesRows` in one numpy
operation; everything else into `Columns` (so is a matrix with a key tensor beside it: keys may
be text). Errors are `FrameError`s naming the tensor. The outputs (`prediction`, and
`probabilities` for classifiers) are described in docs/v2-protocol.md.
"""

from __future__ import annotations

import json

import numpy as np
from inference import grpc_predict_v2_pb2 as v2

from mlplatform.client.frames import FrameError
from mlplatform.common.input_schema import Columns, DoublesRows, ProblemType
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.errors import UnknownOutputError
from mlplatform.predictor.kserve_tensors import (
    DATATYPE_BY_KIND,
    encode_output,
    output_datatype,
    tensor_rows,
    tensor_values,
)
from mlplatform.predictor.prediction_service import PredictionResult

PREDICTION_OUTPUT = "prediction"
PROBABILITIES_OUTPUT = "probabilities"
PLATFORM = "mlflow_sklearn"
#: The request parameter naming the input tensor that holds the caller's key for each row.
KEY_COLUMN_PARAMETER = "key_column"


def request_to_columns(request: v2.ModelInferRequest) -> Columns:
    """The table a ModelInfer request carries as one tensor per column, each tensor read as
    its datatype says (the general path: any datatype, typed or raw)."""
    columns: dict[str, np.ndarray] = {}
    row_count: int | None = None
    for index, tensor in enumerate(request.inputs):
        if tensor.name in columns:
            raise FrameError(
                "input tensor appears twice; expected one tensor per column", tensor.name
            )
        rows = tensor_rows(tensor)
        values = tensor_values(tensor, _raw_of(request, index))
        if len(values) != rows:
            raise FrameError(f"holds {len(values)} values; its shape says {rows}", tensor.name)
        if row_count is not None and rows != row_count:
            raise FrameError(f"has {rows} rows; earlier inputs have {row_count}", tensor.name)
        row_count = rows
        columns[tensor.name] = values
    return Columns(columns, row_count or 0)


def _raw_doubles(request: v2.ModelInferRequest) -> DoublesRows | None:
    """Raw FP64 tensors, one per column, as one matrix in one numpy operation; None for
    anything else (other datatypes, typed contents, shapes or sizes that disagree), which the
    general path reads and, where it is wrong, names."""
    raw_contents = request.raw_input_contents
    if not raw_contents or len(raw_contents) != len(request.inputs):
        return None
    names = []
    row_count = -1
    for tensor in request.inputs:
        shape = tensor.shape
        if tensor.datatype != "FP64" or not (
            len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        ):
            return None
        if row_count != shape[0]:
            if row_count != -1:
                return None
            row_count = shape[0]
        names.append(tensor.name)
    size = 8 * row_count
    if row_count <= 0 or any(len(raw) != size for raw in raw_contents):
        return None
    if len(set(names)) != len(names):
        return None
    by_column = np.frombuffer(b"".join(raw_contents), "<f8").reshape(len(names), row_count)
    return DoublesRows(by_column.T, tuple(names))


def _is_matrix_tensor(tensor: v2.ModelInferRequest.InferInputTensor, model: LoadedModel) -> bool:
    """Whether `tensor` is a [rows, columns] matrix rather than one column."""
    shape = tensor.shape
    return len(shape) == 2 and (
        shape[1] != 1 or all(spec.name != tensor.name for spec in model.input_schema)
    )


def _matrix_rows(
    tensor: v2.ModelInferRequest.InferInputTensor, raw: bytes | None, model: LoadedModel
) -> DoublesRows:
    """The [rows, columns] FP64 tensor as rows, its columns named after the model's inputs."""
    rows, width = tensor.shape
    names = tuple(spec.name for spec in model.input_schema)
    if tensor.datatype != "FP64":
        raise FrameError(
            f"datatype {tensor.datatype!r}; a [rows, columns] tensor must be FP64 (or send "
            "one tensor per column)",
            tensor.name,
        )
    if width != len(names) or rows < 0:
        raise FrameError(
            f"shape {list(tensor.shape)}; expected [rows, {len(names)}]: one column per model "
            "input, in the order of the model's metadata",
            tensor.name,
        )
    values = tensor_values(tensor, raw)
    if len(values) != rows * width:
        raise FrameError(f"holds {len(values)} values; its shape says {rows * width}", tensor.name)
    return DoublesRows(values.reshape(rows, width), names)


def _raw_of(request: v2.ModelInferRequest, index: int) -> bytes | None:
    """Input `index`'s raw contents; None when the request sends typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise FrameError(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; "
            "expected one per input"
        )
    return raw[index] if raw else None


def _matrix_form(
    request: v2.ModelInferRequest, model: LoadedModel, key_column: str
) -> DoublesRows | Columns | None:
    """The rows of a [rows, columns] tensor (with the key column's tensor beside it when the
    request names one); None for one tensor per column."""
    inputs = request.inputs
    names = [tensor.name for tensor in inputs]
    if len(inputs) == 1 and _is_matrix_tensor(inputs[0], model):
        return _matrix_rows(inputs[0], _raw_of(request, 0), model)
    if len(inputs) != 2 or not key_column or key_column not in names:
        return None
    key_index = names.index(key_column)
    matrix_index = 1 - key_index
    if not _is_matrix_tensor(inputs[matrix_index], model):
        return None
    matrix = _matrix_rows(inputs[matrix_index], _raw_of(request, matrix_index), model)
    key_tensor = inputs[key_index]
    rows = tensor_rows(key_tensor)
    keys = tensor_values(key_tensor, _raw_of(request, key_index))
    if rows != len(matrix) or len(keys) != rows:
        raise FrameError(f"holds {len(keys)} keys; the matrix has {len(matrix)} rows", key_column)
    # Columns, not DoublesRows: the keys may be text. The input check stacks the model's
    # columns back into one matrix once the key column is off.
    columns = dict(zip(matrix.names, matrix.matrix.T, strict=True))
    columns[key_column] = keys
    return Columns(columns, len(matrix))


def requested_outputs(request: v2.ModelInferRequest, model: LoadedModel) -> tuple[str, ...]:
    """The outputs to return: those named (each checked), or all the model has when none is."""
    known: tuple[str, ...] = (PREDICTION_OUTPUT,)
    if model.problem_type is ProblemType.CLASSIFICATION:
        known += (PROBABILITIES_OUTPUT,)
    named = tuple(output.name for output in request.outputs)
    for name in named:
        if name not in known:
            raise UnknownOutputError(name, known)
    return named or known


def key_column(request: v2.ModelInferRequest) -> str:
    """The key column the request's `key_column` parameter names; empty when it names none."""
    if KEY_COLUMN_PARAMETER not in request.parameters:
        return ""
    parameter = request.parameters[KEY_COLUMN_PARAMETER]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise FrameError(
            "expected a string parameter: the name of the input tensor holding each row's key",
            KEY_COLUMN_PARAMETER,
        )
    return parameter.string_param


def decode_request(
    request: v2.ModelInferRequest, model: LoadedModel, key_column: str = ""
) -> tuple[DoublesRows | Columns, tuple[str, ...]]:
    """The rows a ModelInfer request carries for `model` (the key column's tensor among them
    when `key_column` names one), and the outputs it wants."""
    wanted = requested_outputs(request, model)
    matrix_rows = _matrix_form(request, model, key_column)
    if matrix_rows is not None:
        return matrix_rows, wanted
    rows = _raw_doubles(request)
    return (rows if rows is not None else request_to_columns(request)), wanted


def encode_response(result: PredictionResult, wanted: tuple[str, ...]) -> v2.ModelInferResponse:
    """The ModelInfer response: the `wanted` outputs, raw; probabilities carry the class labels
    as a JSON list in their `classes` parameter."""
    model = result.model
    response = v2.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=result.request_id
    )
    for name in wanted:
        values = result.predictions if name == PREDICTION_OUTPUT else result.probabilities
        if values is None:
            continue
        tensor, raw = encode_output(name, values)
        if name == PROBABILITIES_OUTPUT:
            tensor.parameters["classes"].string_param = json.dumps(model.class_names)
        response.outputs.append(tensor)
        response.raw_output_contents.append(raw)
    return response


def model_metadata(model: LoadedModel) -> v2.ModelMetadataResponse:
    """Name, version, platform and tensors of `model`."""
    tensor = v2.ModelMetadataResponse.TensorMetadata
    classifier = model.problem_type is ProblemType.CLASSIFICATION
    outputs = [
        tensor(
            name=PREDICTION_OUTPUT,
            # A classifier's `prediction` holds its class labels.
            datatype=output_datatype(np.asarray(model.classes))
            if classifier and model.classes
            else "FP64",
            shape=[-1],
        )
    ]
    if classifier:
        outputs.append(
            tensor(name=PROBABILITIES_OUTPUT, datatype="FP64", shape=[-1, len(model.classes)])
        )
    return v2.ModelMetadataResponse(
        parameters={
            "backend": v2.InferParameter(string_param=model.backend),
            "compile_reason": v2.InferParameter(string_param=model.compile_reason),
        },
        name=model.name,
        versions=[model.version],
        platform=PLATFORM,
        inputs=[
            tensor(name=spec.name, datatype=DATATYPE_BY_KIND[spec.kind], shape=[-1])
            for spec in model.input_schema
        ],
        outputs=outputs,
    )
