"""The online predictor: serves a registered model over gRPC (mlplatform.v1.Predictor and the
KServe V2 protocol), with adaptive batching, hot reload and prediction logging."""
