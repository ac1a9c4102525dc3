"""The `mlplatform.v1.Predictor` gRPC service: decode (native_codec), predict (the prediction
core), encode."""

from __future__ import annotations

import asyncio

import grpc

from mlplatform.common.store import Store
from mlplatform.predictor import native_codec
from mlplatform.predictor.grpc_errors import abort_with
from mlplatform.predictor.outcome_messages import record_outcomes
from mlplatform.predictor.prediction_service import PredictionService, new_request_id
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    """gRPC transport of the Predictor service."""

    def __init__(self, service: PredictionService, store: Store | None = None) -> None:
        self.service = service
        #: Where RecordOutcomes writes: the store the predictions are logged in.
        self.store = store

    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        request_id = request.request_id or new_request_id()
        async with self.service.call("Predict", request_id, context) as call:
            model = call.model(request.model_name)
            rows = native_codec.decode_frame(request.inputs)
            result = await call.predict(
                model, rows, request.include_probabilities, request.key_column
            )
            return native_codec.encode_response(result)

    async def GetModelInfo(
        self, request: predictor_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.GetModelInfoResponse:
        try:
            model = self.service.model_for(request.model_name)
        except Exception as error:
            await abort_with(context, error, new_request_id())
        return native_codec.encode_model_info(model)

    async def RecordOutcomes(
        self, request: predictor_pb2.RecordOutcomesRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.RecordOutcomesResponse:
        try:
            if self.store is None:
                raise RuntimeError("this predictor was started without a store")
            # The store is synchronous: off the event loop, so predictions keep flowing.
            return await asyncio.to_thread(record_outcomes, self.store, request)
        except Exception as error:
            await abort_with(context, error, new_request_id())
