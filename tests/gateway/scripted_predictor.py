"""A fake Predictor whose answers are scripted by the request's `model_name`, for the status
codes a real predictor does not produce on demand (RESOURCE_EXHAUSTED, PERMISSION_DENIED, ...)
and for failures inside the gateway itself:

- the name of a gRPC status code (`RESOURCE_EXHAUSTED`, ...): the call ends with that status;
- `crash`: the servicer raises, so gRPC answers UNKNOWN with the exception's text;
- `bad_output`: an answer whose probabilities have fewer rows than its predictions, which the
  gateway's encoder cannot turn into rows (a 500 raised inside the gateway);
- anything else: one prediction.
"""

from __future__ import annotations

import grpc
from predictor_harness import BackgroundLoop

from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

SECRET = "secret-path /srv/models/model.pkl"


class ScriptedPredictor(predictor_pb2_grpc.PredictorServicer):
    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        name = request.model_name
        if name == "crash":
            raise RuntimeError(f"model exploded at {SECRET}")
        response = predictor_pb2.PredictResponse(
            model_name=name, model_version="7", request_id=request.request_id
        )
        response.predictions.name = "prediction"
        response.predictions.int64_values.values.extend([1, 0])
        if name == "bad_output":
            column = response.probabilities.columns.add(name="1")
            column.double_values.values.append(0.5)
            return response
        if name in grpc.StatusCode.__members__ and name != "OK":
            await context.abort(
                grpc.StatusCode[name],
                f"scripted {name}",
                trailing_metadata=(("x-request-id", request.request_id),),
            )
        return response

    async def GetModelInfo(
        self, request: predictor_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> predictor_pb2.GetModelInfoResponse:
        return predictor_pb2.GetModelInfoResponse(model_name=request.model_name or "scripted")


def start_scripted_predictor(loop: BackgroundLoop) -> tuple[grpc.aio.Server, str]:
    async def start() -> tuple[grpc.aio.Server, str]:
        server = grpc.aio.server()
        predictor_pb2_grpc.add_PredictorServicer_to_server(ScriptedPredictor(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"127.0.0.1:{port}"

    return loop.run(start())
