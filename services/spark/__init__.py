"""`mlp batch spark`: a registered model scored on Spark through `mlflow.pyfunc.spark_udf`.

pyspark is the optional `mlplatform[spark]` extra: nothing here imports it at module level
except `session`, `scoring` and `job`, which the CLI imports only when the command runs.
"""
