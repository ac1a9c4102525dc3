"""A gRPC server that answers every `Predictor/Predict` with one fixed prediction: what a unary
call on grpc.aio costs with no model and none of the predictor's code. bench_predictor.py serves
it beside the predictors, so the compiled rows read against what the transport alone takes.

    python bench/trivial_server.py    # prints its port, serves until terminated
"""

from __future__ import annotations

import asyncio

import grpc

from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc


class TrivialPredictor(predictor_pb2_grpc.PredictorServicer):
    def __init__(self) -> None:
        self.response = predictor_pb2.PredictResponse(model_name="trivial", model_version="1")
        self.response.predictions.name = "prediction"
        self.response.predictions.int64_values.values.append(0)

    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        return self.response


async def serve() -> None:
    server = grpc.aio.server()
    predictor_pb2_grpc.add_PredictorServicer_to_server(TrivialPredictor(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
