"""MLflow records of a pipeline run: a parent run, a nested run per evaluated model,
the winning pipeline logged and registered.

Logged from our side rather than by PyCaret: on MLflow 3, PyCaret's
`setup(log_experiment=True)` fails (it treats MLflow's thread-local active-run stack as a
list), its model logging trips over MLflow 3's default `skops` format, it leaves a run
active behind it and splits preprocessing and model into separate runs (pycaret#3805).
Runs are addressed by id through `MlflowClient`, so nothing here depends on the fluent
API's per-thread "active run", except `log_model`, which is wrapped in its own run scope.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mlplatform.common import transformers
from mlplatform.trainer.pycaret_adapter import EvaluatedModel

PIPELINE_ID_TAG = "mlp.pipeline_id"
#: Why a parent run was ended by someone other than the attempt that opened it.
TERMINATED_REASON_TAG = "mlp.terminated_reason"
#: On a retried pipeline's parent run: the parent run of the attempt before it.
PREVIOUS_ATTEMPT_TAG = "mlp.previous_attempt_run_id"
#: On a parent run: the worker that ran the attempt.
WORKER_TAG = "mlp.worker_id"
ALIAS_ATTEMPTS = 5
#: What a saved pipeline needs to load: the libraries PyCaret pipelines pickle, all published
#: packages, so `pip install -r requirements.txt` (or spark_udf's virtualenv) works anywhere.
#: Stated, not inferred: MLflow's inference re-imports the model in a subprocess, seconds per
#: logged model (measured 2.6 s for a small forest). Our own code is not a requirement: it
#: travels inside the model (see PICKLED_BY_VALUE).
MODEL_REQUIREMENTS = (
    "pycaret", "scikit-learn", "imbalanced-learn", "lightgbm", "xgboost", "catboost",
    "pandas", "numpy", "scipy", "cloudpickle",
)  # fmt: skip
#: Our modules whose classes a saved pipeline holds. cloudpickle stores them by value (their
#: code inside the pickle), so a model loads where mlplatform is not installed, as on a
#: Spark cluster. Not `code_paths`: a copied `mlplatform` folder on sys.path would shadow an
#: installed mlplatform in the predictor's own process.
PICKLED_BY_VALUE = (transformers,)
_METRIC_NAME = re.compile(r"[^\w\-. /]")


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version the registry now holds."""

    name: str
    version: str
    alias: str | None
    model_uri: str


def model_requirements() -> list[str]:
    """`MODEL_REQUIREMENTS` that are installed, pinned to their installed versions."""
    pinned = []
    for package in MODEL_REQUIREMENTS:
        try:
            pinned.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pinned


def pickle_our_code_by_value() -> None:
    """Registers PICKLED_BY_VALUE with cloudpickle (what MLflow pickles the model with).

    Process-wide and never undone: registering again is harmless, and undoing it while
    another thread logs a model would make that model need mlplatform to load.
    """
    import cloudpickle

    for module in PICKLED_BY_VALUE:
        if module.__name__ not in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.register_pickle_by_value(module)


def metric_key(name: str) -> str:
    """An MLflow-legal metric name ("TT (Sec)" -> "TT_Sec")."""
    return _METRIC_NAME.sub("", name.replace(" (", "_").replace(")", "")).strip() or "metric"


class PipelineTracking:
    """The MLflow side of one pipeline run."""

    def __init__(self, tracking_uri: str, experiment_name: str, pipeline_id: str) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.pipeline_id = pipeline_id
        experiment = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(experiment_name)
        )
        self.parent_run_id: str | None = None

    def start(
        self,
        definition: dict[str, Any],
        worker_id: str = "",
        previous_attempt_run_id: str | None = None,
    ) -> str:
        """Opens the parent run and stores the pipeline definition as an artifact."""
        tags = {PIPELINE_ID_TAG: self.pipeline_id, "mlp.kind": "pipeline"}
        if worker_id:
            tags[WORKER_TAG] = worker_id
        if previous_attempt_run_id:
            tags[PREVIOUS_ATTEMPT_TAG] = previous_attempt_run_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"pipeline-{self.pipeline_id[:12]}", tags=tags
        )
        self.parent_run_id = run.info.run_id
        self.client.log_dict(self.parent_run_id, definition, "pipeline.json")
        return self.parent_run_id

    def log_evaluated(self, evaluated: EvaluatedModel) -> str:
        """One nested run per model PyCaret evaluated: its parameters and CV scores."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=evaluated.name,
            tags={
                "mlflow.parentRunId": self._parent(),
                PIPELINE_ID_TAG: self.pipeline_id,
                "mlp.stage": evaluated.stage,
                "mlp.estimator_id": evaluated.estimator_id or "",
                "mlp.kind": "evaluated_model",
            },
        )
        self.client.log_batch(
            run.info.run_id,
            metrics=[
                Metric(f"cv_{metric_key(name)}", value, 0, 0)
                for name, value in evaluated.cv_metrics.items()
            ],
            params=[Param(name, value) for name, value in evaluated.params.items()],
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def log_summary(self, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """The parent run's own parameters (setup keywords) and the winner's scores."""
        self.client.log_batch(
            self._parent(),
            metrics=[Metric(metric_key(name), value, 0, 0) for name, value in metrics.items()],
            params=[Param(name, str(value)[:500]) for name, value in params.items()],
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self._parent(), tags=[RunTag(k, v) for k, v in tags.items()])

    def log_pipeline_model(self, pipeline: Any, input_example: pd.DataFrame) -> str:
        """Logs the whole sklearn pipeline with an input signature; returns its model URI.

        `cloudpickle`, not MLflow 3's default `skops`: skops refuses PyCaret's,
        imbalanced-learn's and LightGBM's types, and the registry is our trusted store.
        """
        pickle_our_code_by_value()
        predictions = pipeline.predict(input_example)
        signature = infer_signature(input_example, predictions)
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self._parent()):
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),
            )
        return info.model_uri

    def register(
        self, model_uri: str, model_name: str, alias: str | None, tags: dict[str, str]
    ) -> RegisteredVersion:
        """Registers a logged model under `model_name` and points `alias` at it.

        Idempotent per pipeline: a run that is redone after its worker died between
        registering and recording success reuses the version it registered.
        """
        version = self.registered_for_pipeline(model_name)
        if version is None:
            try:
                self.client.create_registered_model(model_name)
            except mlflow.exceptions.MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # A tracking server wants the logged model's id beside a models:/ source.
            logged_model_id = (
                model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
            )
            version = self.client.create_model_version(
                model_name, model_uri, run_id=self._parent(), tags=tags, model_id=logged_model_id
            )
        if alias:
            self._set_alias(model_name, alias, str(version.version))
        return RegisteredVersion(model_name, str(version.version), alias, model_uri)

    def _set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Points `alias` at `version`. MLflow's SQL store sets an alias by looking it up and
        then inserting or updating it, so two workers registering the same model at once can
        both insert and one fails on the unique key (seen in CI); the retry finds the alias
        and updates it. The last registration to set it wins, as with any two releases."""
        for attempt in range(1, ALIAS_ATTEMPTS + 1):
            try:
                self.client.set_registered_model_alias(model_name, alias, version)
                return
            except mlflow.exceptions.MlflowException as error:
                if attempt == ALIAS_ATTEMPTS or not _is_concurrent_insert(error):
                    raise
                time.sleep(0.05 * attempt)

    def registered_for_pipeline(self, model_name: str) -> Any | None:
        """The version this pipeline already registered under `model_name`, if any."""
        versions = self.client.search_model_versions(
            f"name = '{model_name}' and tags.`{PIPELINE_ID_TAG}` = '{self.pipeline_id}'"
        )
        return versions[0] if versions else None

    def end_abandoned_attempt(
        self, run_id: str, worker_id: str, recorded_worker_id: str | None = None
    ) -> str | None:
        """Marks an earlier attempt's parent run FAILED, if it is still RUNNING, with the
        reason in `TERMINATED_REASON_TAG`; returns the reason, or None if it had ended.

        An attempt whose worker died never ends its own run; the attempt that takes the
        pipeline over (`worker_id`) does, so MLflow shows no run RUNNING forever. The dead
        attempt's worker is the run's own tag, else `recorded_worker_id`.
        """
        try:
            run = self.client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            return None  # deleted meanwhile, or never written
        if run.info.status != "RUNNING":
            return None
        previous = run.data.tags.get(WORKER_TAG) or recorded_worker_id
        taker = worker_id or "an unnamed worker"
        if previous and previous != worker_id:
            # Another worker only trains a run whose lease has expired (see trainer.worker).
            reason = (
                f"worker lease expired; the run was taken over by worker {taker} "
                f"(the attempt ran on {previous})"
            )
        else:
            reason = f"the attempt ended without an outcome; the run was retried by {taker}"
        self.client.set_tag(run_id, TERMINATED_REASON_TAG, reason)
        self.client.set_terminated(run_id, "FAILED")
        return reason

    def finish(self, succeeded: bool) -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, "FINISHED" if succeeded else "FAILED")

    def _parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("the pipeline's MLflow run has not been started")
        return self.parent_run_id


def _is_concurrent_insert(error: Exception) -> bool:
    """A unique-key clash from two writers inserting the same row (SQLite, PostgreSQL, MySQL)."""
    text = str(error)
    return any(
        marker in text
        for marker in ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")
    )
