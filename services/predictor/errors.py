"""The predictor's typed errors and the one gRPC status each maps to (`grpc_errors.abort_with`
ends a call with it). Input problems come from `common.input_schema` and the frame codecs."""

from __future__ import annotations

import grpc

from mlplatform.client.frames import FrameError
from mlplatform.common.input_schema import InvalidInputError


class BatcherClosedError(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


class ModelNotLoadedError(RuntimeError):
    """No model is loaded yet (the registry alias does not resolve, or loading failed)."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"model {reference} is not loaded yet; retry later")


class ModelNotFoundError(LookupError):
    """The caller asked for a model (or version) this predictor does not serve."""

    def __init__(self, requested: str, served: str) -> None:
        super().__init__(
            f"model {requested!r} is not served here; this predictor serves {served!r}"
        )


class ShuttingDownError(RuntimeError):
    """The predictor is stopping (SIGTERM, past its drain delay) and accepts no new call."""

    def __init__(self) -> None:
        super().__init__("the predictor is shutting down; retry on another replica")


class ProbabilitiesUnavailableError(ValueError):
    """Probabilities were asked of a regression model."""

    field = "include_probabilities"

    def __init__(self, model_name: str) -> None:
        super().__init__(
            f"include_probabilities: model {model_name!r} is a regression model; "
            "it has no class probabilities"
        )


class PredictionFailedError(RuntimeError):
    """The model raised. The caller sees only this message and the request id to quote; the
    cause is in the server log under that id."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"the model failed on this request (request id {request_id})")


class UnknownOutputError(ValueError):
    """A KServe V2 request asked for an output the model does not produce."""

    field = "outputs"

    def __init__(self, output_name: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"outputs: {output_name!r} is not an output of this model; expected one of "
            f"{', '.join(known)}"
        )


_STATUS_BY_ERROR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (FrameError, grpc.StatusCode.INVALID_ARGUMENT),
    (ProbabilitiesUnavailableError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownOutputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ModelNotLoadedError, grpc.StatusCode.UNAVAILABLE),
    (BatcherClosedError, grpc.StatusCode.UNAVAILABLE),
    (ShuttingDownError, grpc.StatusCode.UNAVAILABLE),
    (PredictionFailedError, grpc.StatusCode.INTERNAL),
)


def status_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status of a predictor error; INTERNAL for anything unexpected."""
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return grpc.StatusCode.INTERNAL
