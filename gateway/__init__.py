"""The REST gateway: a FastAPI app that forwards JSON requests to the Predictor over gRPC.

Transport at the edge, one job per module: `settings` (configuration), `app` (the app factory),
`routes` (HTTP endpoints), `json_frames` and `mlflow_formats` (JSON <-> Frame codecs),
`status_mapping` (gRPC status -> HTTP status and error bodies), `auth` (API keys),
`predictor_backend` (the shared gRPC channel), `middleware` (request ids, body size limit),
`openapi` (documented request bodies and examples). `envoy/` holds the Envoy gRPC-JSON
transcoding configuration, the other way to reach the same service over REST.
"""
