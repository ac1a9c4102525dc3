"""The batch inferer: predicts `BatchPredictionRequest` parts from RabbitMQ into the store."""
