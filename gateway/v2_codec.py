"""KServe V2 (Open Inference Protocol) REST bodies <-> the predictor's V2 gRPC messages.

The gateway only translates: a JSON (or binary) request becomes a `ModelInferRequest` whose
every input travels as `raw_input_contents` (little-endian, row-major; BYTES elements as a
4-byte little-endian length then the bytes), the form the predictor's V2 decoder reads fastest;
the predictor checks the tensors against the model and names the offending one. The answer's
raw outputs become JSON `data` (flat, row-major) or stay binary when asked.

Binary tensor data is Triton's extension, which tritonclient.http uses by default: the body is
the JSON header (its length in the `Inference-Header-Content-Length` request header) followed
by each binary input's bytes, in input order, each input saying its size in its
`binary_data_size` parameter. Outputs go binary when the output's `binary_data` parameter, or
else the request's `binary_data_output` parameter, is true; the answer is then laid out the same
way (its header length in the `Inference-Header-Content-Length` response header). Request
bodies may come gzip- or deflate-compressed (tritonclient's `request_compression_algorithm`).

Over 300 lines because both directions live here: they share the datatype table and the binary
layout, and a change to either must be made on both sides at once.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from inference import grpc_predict_v2_pb2 as v2

from mlplatform.gateway.middleware import body_too_large
from mlplatform.gateway.responses import dumps
from mlplatform.gateway.status_mapping import ApiError, invalid_argument

HEADER_LENGTH = "inference-header-content-length"
BINARY_SIZE = "binary_data_size"
#: The request parameter naming the caller's key column, passed on to the predictor.
KEY_COLUMN = "key_column"
_DATATYPES: dict[str, str] = {
    "BOOL": "|b1",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "object",
}
#: Which numpy kinds JSON data of each datatype family may hold (ints fit a float tensor).
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_LENGTH = struct.Struct("<I")
#: zlib window bits of each Content-Encoding: gzip's header, zlib's ("deflate" in HTTP).
_WBITS = {"gzip": 31, "deflate": 15}


@dataclass(frozen=True)
class InferCall:
    """A decoded infer request: the gRPC message, and how each output is to be encoded."""

    request: v2.ModelInferRequest
    binary_outputs: dict[str, bool]
    binary_by_default: bool


def _tensor_error(name: str, description: str) -> ApiError:
    return invalid_argument(name, description, f"input tensor {name!r}: {description}")


def _field_error(field: str, description: str) -> ApiError:
    return invalid_argument(field, description)


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _field_error(field, "expected a JSON object")
    return value


def _flag(parameters: dict[str, Any], name: str, field: str) -> bool | None:
    value = parameters.get(name)
    if value is not None and not isinstance(value, bool):
        raise _field_error(f"{field}.{name}", "expected true or false")
    return value


def decompressed(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent before compression (tritonclient's `request_compression_algorithm`:
    gzip or deflate), at most `limit` bytes (413 beyond, as for any body); 415 for other
    encodings."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"unsupported Content-Encoding {encoding!r:.40}; send gzip, deflate or none",
            http_status=415,
        )
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise _field_error("body", f"not valid {encoding} data ({error})") from None
    if len(plain) > limit:
        raise body_too_large(limit)
    return plain


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tail of a body (all header without the length header)."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise _field_error(
            "Inference-Header-Content-Length",
            f"{header_length!r:.40} is not a length within the body's {len(body)} bytes",
        )
    length = int(header_length)
    return body[:length], body[length:]


def _json_to_raw(name: str, datatype: str, data: object) -> bytes:
    """The raw bytes of a tensor's JSON `data` (flat or nested lists, row-major)."""
    if datatype == "BYTES":
        elements = data if isinstance(data, list) else [data]
        flat = np.asarray(elements, dtype=object).ravel().tolist()
        if not all(isinstance(element, str) for element in flat):
            raise _tensor_error(name, "BYTES data must be strings")
        encoded = [element.encode("utf-8", "surrogatepass") for element in flat]
        return b"".join(_LENGTH.pack(len(element)) + element for element in encoded)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):  # ragged nesting
        raise _tensor_error(name, "data is not a rectangular array of values") from None
    numpy_dtype = np.dtype(_DATATYPES[datatype])
    if values.size and values.dtype.kind not in _ACCEPTED_KINDS[numpy_dtype.kind]:
        expected = {"b": "true or false", "i": "integers", "u": "integers", "f": "numbers"}
        raise _tensor_error(
            name, f"{datatype} data must hold {expected[numpy_dtype.kind]} (got {values.dtype})"
        )
    with np.errstate(over="ignore"):
        converted = values.astype(numpy_dtype)
    if numpy_dtype.kind in "iu" and values.size and not np.array_equal(converted, values):
        raise _tensor_error(name, f"a value is out of range for {datatype}")
    return converted.tobytes()


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        type(size) is int and 0 <= size < 2**63 for size in shape
    ):
        raise _tensor_error(name, "shape must be an array of sizes (integers >= 0)")
    return shape


def _add_input(
    request: v2.ModelInferRequest, index: int, tensor_json: object, tail: memoryview, offset: int
) -> int:
    """Append input `index` to `request`; returns the offset of the next binary input."""
    tensor = _object(tensor_json, f"inputs[{index}]")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise _field_error(f"inputs[{index}].name", "expected the tensor's name (a string)")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in _DATATYPES:
        raise _tensor_error(
            name, f"datatype {datatype!r:.20}; expected one of {', '.join(_DATATYPES)}"
        )
    shape = _shape(tensor, name)
    parameters = _object(tensor.get("parameters", {}), f"inputs[{index}].parameters")
    size = parameters.get(BINARY_SIZE)
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(tail):
            raise _tensor_error(
                name, f"{BINARY_SIZE} {size!r:.20} does not fit the body's binary data"
            )
        if "data" in tensor:
            raise _tensor_error(name, f"holds both data and {BINARY_SIZE}; send one")
        raw = bytes(tail[offset : offset + size])
        offset += size
    elif "data" in tensor:
        raw = _json_to_raw(name, datatype, tensor["data"])
    else:
        raise _tensor_error(name, f"no data: expected data or the {BINARY_SIZE} parameter")
    try:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    except ValueError:
        raise _field_error(f"inputs[{index}].name", "not valid Unicode text") from None
    request.raw_input_contents.append(raw)
    return offset


def infer_call(
    document: object, tail: bytes, model_name: str, model_version: str, request_id: str
) -> InferCall:
    """The ModelInfer call of a V2 infer body (`tail`: its binary part, empty for JSON)."""
    body = _object(document, "body")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _field_error("inputs", "expected a non-empty array of input tensors")
    identifier = body.get("id", request_id)
    if not isinstance(identifier, str):
        raise _field_error("id", "expected a string")
    parameters = _object(body.get("parameters", {}), "parameters")
    binary_by_default = bool(_flag(parameters, "binary_data_output", "parameters"))
    try:
        request = v2.ModelInferRequest(
            model_name=model_name, model_version=model_version, id=identifier or request_id
        )
    except ValueError:  # lone surrogates: protobuf strings are UTF-8
        raise _field_error("id", "not valid Unicode text") from None
    if KEY_COLUMN in parameters:
        _set_key_column(request, parameters[KEY_COLUMN])
    offset = 0
    view = memoryview(tail)
    for index, tensor in enumerate(inputs):
        offset = _add_input(request, index, tensor, view, offset)
    if offset != len(tail):
        raise _field_error("body", f"{len(tail) - offset} bytes of binary data belong to no input")
    binary_outputs: dict[str, bool] = {}
    for index, output_json in enumerate(_list(body.get("outputs", []), "outputs")):
        output = _object(output_json, f"outputs[{index}]")
        name = output.get("name")
        if not isinstance(name, str) or not name:
            raise _field_error(f"outputs[{index}].name", "expected the output's name")
        output_parameters = _object(output.get("parameters", {}), f"outputs[{index}].parameters")
        if output_parameters.get("classification"):
            raise _field_error(
                f"outputs[{index}].parameters.classification",
                "the classification extension is not supported; ask for `probabilities`",
            )
        binary = _flag(output_parameters, "binary_data", f"outputs[{index}].parameters")
        binary_outputs[name] = binary_by_default if binary is None else binary
        try:
            request.outputs.add(name=name)
        except ValueError:
            raise _field_error(f"outputs[{index}].name", "not valid Unicode text") from None
    return InferCall(request, binary_outputs, binary_by_default)


def _set_key_column(request: v2.ModelInferRequest, key_column: object) -> None:
    """Passes the `key_column` request parameter on (the predictor takes that column off)."""
    field = f"parameters.{KEY_COLUMN}"
    if not isinstance(key_column, str):
        raise _field_error(field, "expected a string: the input holding each row's key")
    try:
        request.parameters[KEY_COLUMN].string_param = key_column
    except ValueError:
        raise _field_error(field, "not valid Unicode text") from None


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _field_error(field, "expected an array")
    return value


def _parameters(parameters: Any) -> dict[str, Any]:
    """InferParameter map -> JSON values (a parameter with no value set is left out)."""
    values = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(parameter, choice)
    return values


def _raw_to_json(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        elements = []
        offset = 0
        while offset < len(raw):
            (length,) = _LENGTH.unpack_from(raw, offset)
            elements.append(raw[offset + 4 : offset + 4 + length].decode("utf-8", "replace"))
            offset += 4 + length
        return elements
    # NaN and infinities need no pass here: orjson writes them as null (JSON has neither).
    return np.frombuffer(raw, dtype=_DATATYPES[datatype]).tolist()


def infer_result(response: v2.ModelInferResponse, call: InferCall) -> tuple[bytes, int | None]:
    """The answer body, and its JSON header's length when binary outputs follow it."""
    outputs = []
    binary_parts = []
    for index, tensor in enumerate(response.outputs):
        raw = (
            response.raw_output_contents[index]
            if index < len(response.raw_output_contents)
            else b""
        )
        output: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = _parameters(tensor.parameters)
        if call.binary_outputs.get(tensor.name, call.binary_by_default):
            parameters[BINARY_SIZE] = len(raw)
            binary_parts.append(raw)
        else:
            output["data"] = _raw_to_json(tensor.datatype, raw)
        if parameters:
            output["parameters"] = parameters
        outputs.append(output)
    result: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": outputs,
    }
    if response.parameters:
        result["parameters"] = _parameters(response.parameters)
    header = dumps(result)
    if not binary_parts:
        return header, None
    return header + b"".join(binary_parts), len(header)


def _tensors(tensors: Any) -> list[dict[str, Any]]:
    return [
        {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        for tensor in tensors
    ]


def model_metadata_result(response: v2.ModelMetadataResponse) -> dict[str, Any]:
    """The `GET /v2/models/{name}` answer."""
    return {
        "name": response.name,
        "versions": list(response.versions),
        "platform": response.platform,
        "inputs": _tensors(response.inputs),
        "outputs": _tensors(response.outputs),
    }
