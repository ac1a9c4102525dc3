"""A typed client of the predictor's `mlplatform.v1.Predictor` gRPC service, sync and asyncio.

DataFrames in, DataFrames out: rows are encoded with `mlplatform.client.frames`, predictions come
back as a Series named `prediction` and probabilities as a DataFrame with one column per class.
A refused call raises `PredictorError` with the gRPC status, the server's message, the request id,
and (for invalid input) each offending field, read from the standard rich error details.

Over 300 lines because the sync and asyncio clients stand side by side over one set of request,
response and error helpers: a change to what a call sends or returns is made to both at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
import pandas as pd
from google.rpc import error_details_pb2, status_pb2

from mlplatform.client.frames import column_to_series, dataframe_to_frame, frame_to_dataframe
from mlplatform.client.tls import TlsFiles, secure_aio_channel, secure_channel
from mlplatform.v1 import frame_pb2, pipeline_pb2, predictor_pb2, predictor_pb2_grpc

__all__ = [
    "AsyncPredictorClient",
    "ColumnInfo",
    "ModelInfo",
    "PredictionResult",
    "PredictorClient",
    "PredictorError",
    "TlsFiles",
]

DEFAULT_TIMEOUT_S = 30.0
_REQUEST_ID_KEY = "x-request-id"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
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


@dataclass(frozen=True)
class PredictionResult:
    """A Predict answer: one prediction per input row, in input order."""

    predictions: pd.Series
    probabilities: pd.DataFrame | None
    model_name: str
    model_version: str
    request_id: str

    def to_dataframe(self) -> pd.DataFrame:
        """Predictions and (when present) probability columns side by side."""
        if self.probabilities is None:
            return self.predictions.to_frame()
        return pd.concat([self.predictions, self.probabilities], axis=1)


@dataclass(frozen=True)
class ColumnInfo:
    """One input column of the served model."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class ModelInfo:
    """What the predictor serves."""

    model_name: str
    model_version: str
    alias: str
    problem_type: str
    classes: tuple[str, ...]
    input_schema: tuple[ColumnInfo, ...]
    #: What answers predictions: "onnxruntime" (compiled) or "sklearn"; empty from a predictor
    #: that predates compiled serving.
    backend: str = ""
    #: Why the model is not served compiled ("" when it is).
    compile_reason: str = ""


class PredictorError(Exception):
    """A call the predictor refused or failed; `field_violations` lists (field, problem)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        request_id: str | None = None,
        field_violations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.field_violations = field_violations
        super().__init__(f"{code.name}: {message}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The offending fields (input column names, or a request field such as `inputs`)."""
        return tuple(field for field, _ in self.field_violations)


def _error_from(error: grpc.RpcError, trailing: Any) -> PredictorError:
    metadata = dict(trailing or ())
    violations: list[tuple[str, str]] = []
    details_bytes = metadata.get(_STATUS_DETAILS_KEY)
    if details_bytes:
        status = status_pb2.Status.FromString(details_bytes)
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
    request_id = metadata.get(_REQUEST_ID_KEY)
    return PredictorError(
        error.code(),
        error.details() or "",
        request_id if isinstance(request_id, str) else None,
        tuple(violations),
    )


def _predict_request(
    model_name: str,
    rows: pd.DataFrame,
    include_probabilities: bool,
    request_id: str | None,
    key_column: str,
) -> predictor_pb2.PredictRequest:
    return predictor_pb2.PredictRequest(
        model_name=model_name,
        inputs=dataframe_to_frame(rows),
        include_probabilities=include_probabilities,
        request_id=request_id or "",
        key_column=key_column,
    )


def _prediction_result(response: predictor_pb2.PredictResponse, row_count: int) -> PredictionResult:
    probabilities = None
    if response.HasField("probabilities"):
        probabilities = frame_to_dataframe(response.probabilities)
    return PredictionResult(
        predictions=column_to_series(response.predictions, row_count),
        probabilities=probabilities,
        model_name=response.model_name,
        model_version=response.model_version,
        request_id=response.request_id,
    )


def _model_info(response: predictor_pb2.GetModelInfoResponse) -> ModelInfo:
    return ModelInfo(
        model_name=response.model_name,
        model_version=response.model_version,
        alias=response.alias,
        problem_type=_PROBLEM_TYPES.get(response.problem_type, "unspecified"),
        classes=tuple(response.classes),
        input_schema=tuple(
            ColumnInfo(column.name, _COLUMN_TYPES.get(column.type, "unspecified"), column.required)
            for column in response.input_schema
        ),
        backend=response.backend,
        compile_reason=response.compile_reason,
    )


def _credentials(api_key: str | None) -> tuple[tuple[str, str], ...] | None:
    """Call metadata presenting `api_key` (the predictor's `MLP_API_KEYS`), if any."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else None


class PredictorClient:
    """Blocking client. `model_name` empty means "whatever the predictor serves"; `tls`
    encrypts the channel (and, with a client certificate, answers a predictor's mTLS)."""

    def __init__(
        self,
        address: str,
        model_name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        channel_options: list[tuple[str, Any]] | None = None,
        api_key: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.address = address
        self.model_name = model_name
        self.timeout = timeout
        self._metadata = _credentials(api_key)
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=channel_options or [])
        else:
            self._channel = secure_channel(address, tls, channel_options)
        self._stub = predictor_pb2_grpc.PredictorStub(self._channel)

    def predict(
        self,
        rows: pd.DataFrame,
        include_probabilities: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
        key_column: str = "",
    ) -> PredictionResult:
        """Predict every row of `rows`. `key_column` names a column of `rows` holding your own
        key for each row: not sent to the model, logged with each row's prediction."""
        request = _predict_request(
            self.model_name, rows, include_probabilities, request_id, key_column
        )
        try:
            response = self._stub.Predict(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error_from(error, error.trailing_metadata()) from None  # type: ignore[attr-defined]
        return _prediction_result(response, len(rows))

    def model_info(self, timeout: float | None = None) -> ModelInfo:
        """Name, version, alias, problem type, classes and input schema of the served model."""
        request = predictor_pb2.GetModelInfoRequest(model_name=self.model_name)
        try:
            response = self._stub.GetModelInfo(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error_from(error, error.trailing_metadata()) from None  # type: ignore[attr-defined]
        return _model_info(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPredictorClient:
    """asyncio client; create and use it inside one running event loop. Options as for
    `PredictorClient`."""

    def __init__(
        self,
        address: str,
        model_name: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        channel_options: list[tuple[str, Any]] | None = None,
        api_key: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.address = address
        self.model_name = model_name
        self.timeout = timeout
        self._metadata = _credentials(api_key)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address, options=channel_options or [])
        else:
            self._channel = secure_aio_channel(address, tls, channel_options)
        self._stub = predictor_pb2_grpc.PredictorStub(self._channel)

    async def predict(
        self,
        rows: pd.DataFrame,
        include_probabilities: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
        key_column: str = "",
    ) -> PredictionResult:
        """Predict every row of `rows`. `key_column` names a column of `rows` holding your own
        key for each row: not sent to the model, logged with each row's prediction."""
        request = _predict_request(
            self.model_name, rows, include_probabilities, request_id, key_column
        )
        try:
            response = await self._stub.Predict(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            raise _error_from(error, error.trailing_metadata()) from None
        return _prediction_result(response, len(rows))

    async def model_info(self, timeout: float | None = None) -> ModelInfo:
        """Name, version, alias, problem type, classes and input schema of the served model."""
        request = predictor_pb2.GetModelInfoRequest(model_name=self.model_name)
        try:
            response = await self._stub.GetModelInfo(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            raise _error_from(error, error.trailing_metadata()) from None
        return _model_info(response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
