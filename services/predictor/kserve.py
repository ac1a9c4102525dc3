"""The KServe Open Inference Protocol (V2) gRPC service, on the predictor's port.

So that standard clients (tritonclient, KServe's and MLServer's) work unchanged. The model is
named after its registered name; its version is the registered version. Outputs:
`prediction` (shape [rows]) and, for classifiers, `probabilities` (shape [rows, classes], FP64,
columns in the order of GetModelInfo's `classes`, also given as a JSON list in the tensor's
`classes` parameter). A request naming no outputs gets every output the model produces.
"""

from __future__ import annotations

import json

import grpc
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

from mlplatform.common.input_schema import ProblemType
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.errors import UnknownOutputError
from mlplatform.predictor.grpc_errors import abort_with
from mlplatform.predictor.kserve_codec import (
    DATATYPE_BY_KIND,
    encode_output,
    labels_datatype,
    request_to_columns,
)
from mlplatform.predictor.prediction_service import PredictionService, new_request_id

PREDICTION_OUTPUT = "prediction"
PROBABILITIES_OUTPUT = "probabilities"
PLATFORM = "mlflow_sklearn"


def output_names(model: LoadedModel) -> tuple[str, ...]:
    """The outputs `model` produces."""
    if model.problem_type is ProblemType.CLASSIFICATION:
        return (PREDICTION_OUTPUT, PROBABILITIES_OUTPUT)
    return (PREDICTION_OUTPUT,)


def requested_outputs(request: v2.ModelInferRequest, model: LoadedModel) -> tuple[str, ...]:
    """The outputs to return: those named (each checked), or all when none is named."""
    known = output_names(model)
    named = tuple(output.name for output in request.outputs)
    for name in named:
        if name not in known:
            raise UnknownOutputError(name, known)
    return named or known


def model_metadata(model: LoadedModel) -> v2.ModelMetadataResponse:
    """Name, version, platform and tensors of `model`."""
    tensor = v2.ModelMetadataResponse.TensorMetadata
    outputs = [
        tensor(
            name=PREDICTION_OUTPUT,
            datatype=labels_datatype(model.classes)
            if model.problem_type is ProblemType.CLASSIFICATION
            else "FP64",
            shape=[-1],
        )
    ]
    if model.problem_type is ProblemType.CLASSIFICATION:
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


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    """gRPC transport of the V2 protocol over the same PredictionService."""

    def __init__(self, service: PredictionService, server_name: str, server_version: str) -> None:
        self.service = service
        self.server_name = server_name
        self.server_version = server_version

    async def ServerLive(
        self, request: v2.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: v2.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerReadyResponse:
        return v2.ServerReadyResponse(ready=self.service.slot.current is not None)

    async def ModelReady(
        self, request: v2.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelReadyResponse:
        try:
            self.service.model_for(request.name, request.version)
        except Exception:
            return v2.ModelReadyResponse(ready=False)
        return v2.ModelReadyResponse(ready=True)

    async def ServerMetadata(
        self, request: v2.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name=self.server_name, version=self.server_version)

    async def ModelMetadata(
        self, request: v2.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelMetadataResponse:
        try:
            model = self.service.model_for(request.name, request.version)
        except Exception as error:
            await abort_with(context, error, new_request_id())
        return model_metadata(model)

    async def ModelInfer(
        self, request: v2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelInferResponse:
        request_id = request.id or new_request_id()
        try:
            model = self.service.model_for(request.model_name, request.model_version)
            wanted = requested_outputs(request, model)
            result = await self.service.predict(
                lambda: request_to_columns(request),
                request_id,
                model_name=request.model_name,
                model_version=request.model_version,
                include_probabilities=PROBABILITIES_OUTPUT in wanted,
                api="ModelInfer",
            )
        except Exception as error:
            await abort_with(context, error, request_id)
        response = v2.ModelInferResponse(
            model_name=result.model.name, model_version=result.model.version, id=request_id
        )
        arrays = {PREDICTION_OUTPUT: result.predictions, PROBABILITIES_OUTPUT: result.probabilities}
        for name in wanted:
            values = arrays[name]
            if values is None:  # a swap to a regression model between the two look-ups
                continue
            tensor, raw = encode_output(name, values)
            if name == PROBABILITIES_OUTPUT:
                tensor.parameters["classes"].string_param = json.dumps(result.model.class_names)
            response.outputs.append(tensor)
            response.raw_output_contents.append(raw)
        context.add_done_callback(lambda _context: self.service.log(result))
        return response
