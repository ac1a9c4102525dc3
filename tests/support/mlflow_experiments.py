"""MLflow experiments for tests that log models with MLflow's fluent API.

`mlflow.set_experiment` sets a process-wide active experiment that outlives the test: a later
`mlflow.start_run(run_id=...)` (the trainer's) into another experiment is then refused. Tests
pass the experiment's id to `start_run` instead, leaving no global state behind.
"""

from __future__ import annotations

from mlflow import MlflowClient


def experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment `name` in the store at `tracking_uri`, created when missing."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)
