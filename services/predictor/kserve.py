"""The KServe Open Inference Protocol (V2) gRPC service, on the predictor's port: decode
(kserve_codec), predict (the prediction core), encode.

So that standard clients (tritonclient, KServe's and MLServer's) work unchanged. The model is
named after its registered name; its version is the registered version. Outputs:
`prediction` (shape [rows]) and, for classifiers, `probabilities` (shape [rows, classes], FP64,
columns in the order of GetModelInfo's `classes`, also given as a JSON list in the tensor's
`classes` parameter). A request naming no outputs gets every output the model produces. The
request parameter `key_column` (a string) names an input tensor holding the caller's key for
each row: not a model input, it is logged with each row's prediction (docs/outcomes.md).
"""

from __future__ import annotations

import grpc
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc

from mlplatform.predictor import kserve_codec
from mlplatform.predictor.grpc_errors import abort_with
from mlplatform.predictor.kserve_codec import PROBABILITIES_OUTPUT
from mlplatform.predictor.prediction_service import PredictionService, new_request_id


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
        return kserve_codec.model_metadata(model)

    async def ModelInfer(
        self, request: v2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> v2.ModelInferResponse:
        request_id = request.id or new_request_id()
        async with self.service.call("ModelInfer", request_id, context) as call:
            model = call.model(request.model_name, request.model_version)
            key_column = kserve_codec.key_column(request)
            rows, wanted = kserve_codec.decode_request(request, model, key_column)
            result = await call.predict(model, rows, PROBABILITIES_OUTPUT in wanted, key_column)
            return kserve_codec.encode_response(result, wanted)
