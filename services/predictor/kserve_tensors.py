"""KServe V2 tensor data <-> numpy arrays: datatypes, raw and typed contents, BYTES elements.

Raw data is little-endian and row-major; BYTES elements travel as a 4-byte little-endian length
then the bytes. Outputs always go back raw: tritonclient's `as_numpy` reads only raw outputs
(and `bytes_contents`).
"""

from __future__ import annotations

import struct

import numpy as np
from inference import grpc_predict_v2_pb2 as v2

from mlplatform.client.frames import FrameError, repeated_to_array
from mlplatform.common.input_schema import ColumnKind

# V2 datatype -> (numpy dtype of its raw bytes, InferTensorContents field holding it typed).
_DATATYPES: dict[str, tuple[str, str | None]] = {
    "BOOL": ("|b1", "bool_contents"),
    "INT8": ("<i1", "int_contents"),
    "INT16": ("<i2", "int_contents"),
    "INT32": ("<i4", "int_contents"),
    "INT64": ("<i8", "int64_contents"),
    "UINT8": ("<u1", "uint_contents"),
    "UINT16": ("<u2", "uint_contents"),
    "UINT32": ("<u4", "uint_contents"),
    "UINT64": ("<u8", "uint64_contents"),
    "FP16": ("<f2", None),  # raw only: InferTensorContents has no 16-bit field
    "FP32": ("<f4", "fp32_contents"),
    "FP64": ("<f8", "fp64_contents"),
    "BYTES": ("object", "bytes_contents"),
}
DATATYPE_BY_KIND = {
    ColumnKind.DOUBLE: "FP64",
    ColumnKind.INT64: "INT64",
    ColumnKind.STRING: "BYTES",
    ColumnKind.BOOL: "BOOL",
}
_LENGTH = struct.Struct("<I")


def tensor_rows(tensor: v2.ModelInferRequest.InferInputTensor) -> int:
    shape = list(tensor.shape)
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return int(shape[0])
    raise FrameError(
        f"shape {shape}; expected [rows] or [rows, 1] (one tensor per column)", tensor.name
    )


def decode_bytes_elements(raw: bytes, column: str) -> list[bytes]:
    elements = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise FrameError("raw BYTES data ends inside an element's length", column)
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise FrameError("raw BYTES data ends inside an element", column)
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def encode_bytes_elements(values: list[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(value)) + value for value in values)


def _as_text(elements: list[bytes], column: str) -> np.ndarray:
    try:
        return np.array([element.decode("utf-8") for element in elements], dtype=object)
    except UnicodeDecodeError as error:
        raise FrameError(f"BYTES element is not UTF-8 text ({error.reason})", column) from None


def tensor_values(tensor: v2.ModelInferRequest.InferInputTensor, raw: bytes | None) -> np.ndarray:
    datatype = tensor.datatype
    if datatype not in _DATATYPES:
        raise FrameError(
            f"datatype {datatype!r}; expected one of {', '.join(_DATATYPES)}", tensor.name
        )
    numpy_dtype, contents_field = _DATATYPES[datatype]
    if raw is not None:
        if datatype == "BYTES":
            return _as_text(decode_bytes_elements(raw, tensor.name), tensor.name)
        itemsize = np.dtype(numpy_dtype).itemsize
        if len(raw) % itemsize:
            raise FrameError(
                f"raw data of {len(raw)} bytes is not a whole number of {datatype}", tensor.name
            )
        return np.frombuffer(raw, dtype=numpy_dtype)
    if contents_field is None:
        raise FrameError(f"{datatype} data must be sent as raw_input_contents", tensor.name)
    values = getattr(tensor.contents, contents_field)
    if datatype == "BYTES":
        return _as_text(list(values), tensor.name)
    return repeated_to_array(values, numpy_dtype)


def output_datatype(values: np.ndarray) -> str:
    """The V2 datatype a 1-d output array travels as."""
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def encode_output(
    name: str, values: np.ndarray
) -> tuple[v2.ModelInferResponse.InferOutputTensor, bytes]:
    """An output tensor's metadata and raw bytes; `values` is 1-d or 2-d (rows first)."""
    datatype = output_datatype(values) if values.ndim == 1 else "FP64"
    if datatype == "BYTES":
        raw = encode_bytes_elements([str(value).encode("utf-8") for value in values.tolist()])
    else:
        numpy_dtype = _DATATYPES[datatype][0]
        raw = np.ascontiguousarray(values, dtype=numpy_dtype).tobytes()
    tensor = v2.ModelInferResponse.InferOutputTensor(
        name=name, datatype=datatype, shape=list(values.shape)
    )
    return tensor, raw
