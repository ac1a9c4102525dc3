"""Pipelines run in-process (`PipelineRunner`, what `mlp train` and the workers call)
against a real MLflow tracking store and registry (SQLite) and a real run store."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_diabetes

from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.monitoring.baseline import load_baseline
from mlplatform.common.store import PipelineRun, RunStatus, StepStatus, open_store
from mlplatform.trainer.runner import PipelineRunner, new_run_record
from mlplatform.v1 import messages_pb2
from tests.trainer.conftest import classification_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def run(
    document: dict[str, Any], store: Any, tracking_uri: str, pipeline_id: str, **runner_args: Any
) -> PipelineRun:
    submission = messages_pb2.SubmitPipeline(
        pipeline_id=pipeline_id, definition=parse_pipeline(document)
    )
    return PipelineRunner(store, tracking_uri, **runner_args).run(submission, worker_id="test")


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory, fraud_csv: Path) -> dict[str, Any]:
    """The example's recipe (SMOTE, PCA, trigonometry features, blend + stack), run once."""
    folder = tmp_path_factory.mktemp("example")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    store = open_store(f"sqlite:///{folder / 'store.db'}")
    document = classification_pipeline(
        fraud_csv,
        estimators=("dt", "lr"),
        ensemble=True,
        register={},
        extra_features={"fix_imbalance": True, "pca": True, "trigonometry_features": True},
    )
    record = run(document, store, tracking_uri, "example-1")
    return {"record": record, "store": store, "tracking_uri": tracking_uri, "doc": document}


def test_example_pipeline_succeeds_step_by_step(example_run: dict[str, Any]) -> None:
    record: PipelineRun = example_run["record"]
    assert record.status == RunStatus.SUCCEEDED, record.error
    assert [step.name for step in record.steps] == [
        "load_data_from_file",
        "validate_data",
        "train_model",
        "register_model",
    ]
    assert all(step.status == StepStatus.SUCCEEDED for step in record.steps)
    assert all(step.elapsed_seconds is not None for step in record.steps)
    train = record.step("train_model")
    assert train is not None
    candidates = train.findings["candidates"]
    assert set(candidates) == {
        "Decision Tree Classifier",
        "Logistic Regression",
        "Voting Classifier",
        "Stacking Classifier",
    }
    assert record.best_model in candidates
    best_score = max(score for score in candidates.values() if score is not None)
    assert record.main_metric == "F1" and record.main_metric_value == best_score
    assert (record.registered_model_name, record.registered_version, record.alias) == (
        "fraud",
        "1",
        "production",
    )
    assert record.worker_id == "test" and record.attempts == 1


def test_every_evaluated_model_has_a_nested_mlflow_run(example_run: dict[str, Any]) -> None:
    record: PipelineRun = example_run["record"]
    client = MlflowClient(example_run["tracking_uri"])
    parent = client.get_run(record.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlp.pipeline_id"] == "example-1"
    artifacts = [item.path for item in client.list_artifacts(record.mlflow_run_id)]
    assert "pipeline.json" in artifacts
    children = client.search_runs(
        [record.mlflow_experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{record.mlflow_run_id}'",
    )
    train = record.step("train_model")
    assert train is not None
    assert len(children) == train.findings["evaluated_models"] == 4
    assert sorted(child.data.tags["mlp.stage"] for child in children) == [
        "blend",
        "compare",
        "compare",
        "stack",
    ]
    for child in children:
        assert "cv_F1" in child.data.metrics and "cv_Accuracy" in child.data.metrics
        assert child.data.params, child.info.run_name
    assert "holdout_F1" in parent.data.metrics


def test_registered_version_is_tagged_and_aliased(example_run: dict[str, Any]) -> None:
    client = MlflowClient(example_run["tracking_uri"])
    version = client.get_model_version_by_alias("fraud", "production")
    assert str(version.version) == "1"
    assert version.tags["mlp.pipeline_id"] == "example-1"
    assert version.tags["mlp.mlflow_run_id"] == example_run["record"].mlflow_run_id
    assert version.tags["mlp.data_digest"].startswith("sha256:")


def test_registered_pipeline_holds_preprocessing_and_predicts_raw_rows(
    example_run: dict[str, Any], fraud_csv: Path
) -> None:
    mlflow.set_tracking_uri(example_run["tracking_uri"])
    model = mlflow.sklearn.load_model("models:/fraud@production")
    step_names = [name for name, _ in model.steps]
    # Trigonometry features see imputed columns and come before SMOTE and PCA.
    assert step_names.index("trigonometry_features") > step_names.index("numerical_imputer")
    assert step_names.index("trigonometry_features") < step_names.index("balance")
    assert step_names.index("balance") < step_names.index("pca")
    rows = pd.read_csv(fraud_csv).drop(columns=["Class"]).head(20)
    assert set(model.predict(rows)) <= {0, 1}


def test_registered_model_loads_in_a_fresh_process(
    example_run: dict[str, Any], fraud_csv: Path
) -> None:
    """The pickled pipeline refers to our transformer by module path; a new process (like
    the predictor's) must import it to load the model."""
    script = (
        "import mlflow, pandas as pd, sys\n"
        f"mlflow.set_tracking_uri({example_run['tracking_uri']!r})\n"
        "model = mlflow.pyfunc.load_model('models:/fraud@production')\n"
        f"rows = pd.read_csv({str(fraud_csv)!r}).drop(columns=['Class']).head(3)\n"
        "print(list(model.predict(rows)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("[")


def test_succeeded_pipeline_is_not_trained_again(example_run: dict[str, Any]) -> None:
    again = run(example_run["doc"], example_run["store"], example_run["tracking_uri"], "example-1")
    assert again.status == RunStatus.SUCCEEDED and again.attempts == 1
    versions = MlflowClient(example_run["tracking_uri"]).search_model_versions("name = 'fraud'")
    assert len(versions) == 1


def test_regression_pipeline_with_finalize(tmp_path: Path, store: Any, tracking_uri: str) -> None:
    data_path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(data_path, index=False)
    document = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(data_path)}},
                    {
                        "train_model": {
                            "feature_engineering_params": {"normalize": True},
                            "modeling_params": {"estimator_list": ["lr", "dt"], "fold": 2},
                            "finalize": True,
                        }
                    },
                    {"register_model": {"alias": "staging"}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "diabetes",
            "model_name": "diabetes",
            "main_metric": "RMSE",
            "problem_type": "regression",
            "target": "target",
        },
    }
    record = run(document, store, tracking_uri, "regression-1")
    assert record.status == RunStatus.SUCCEEDED, record.error
    assert record.best_model in ("Linear Regression", "Decision Tree Regressor")
    assert record.alias == "staging" and record.main_metric == "RMSE"
    train = record.step("train_model")
    assert train is not None and train.findings["finalized"] is True
    # RMSE: lower is better, so the winner has the smallest score.
    scores = [s for s in train.findings["candidates"].values() if s is not None]
    assert record.main_metric_value == min(scores)
    version = MlflowClient(tracking_uri).get_model_version_by_alias("diabetes", "staging")
    assert str(version.version) == "1"


def test_missing_target_fails_the_run_at_its_step(
    fraud_csv: Path, store: Any, tracking_uri: str
) -> None:
    document = classification_pipeline(fraud_csv)
    document["experiment_config"]["target"] = "IsFraud"
    record = run(document, store, tracking_uri, "bad-target")
    assert record.status == RunStatus.FAILED
    assert record.error is not None and record.error.step == "validate_data"
    assert "target column 'IsFraud' is not in the data" in record.error.message
    failed = record.step("validate_data")
    assert failed is not None and failed.status == StepStatus.FAILED
    assert record.step("train_model") is None
    parent = MlflowClient(tracking_uri).get_run(record.mlflow_run_id)
    assert parent.info.status == "FAILED"


def test_taking_over_ends_the_dead_attempts_mlflow_run(
    fraud_csv: Path, store: Any, tracking_uri: str
) -> None:
    """A run left RUNNING by a worker that died: the next attempt marks its parent run FAILED
    with the reason, and points at it from its own parent run."""
    document = classification_pipeline(fraud_csv)
    document["experiment_config"]["target"] = "IsFraud"  # fails at once: no training needed
    submission = messages_pb2.SubmitPipeline(
        pipeline_id="taken-over", definition=parse_pipeline(document)
    )
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("test-fraud")
    dead_run = client.create_run(
        experiment_id, tags={"mlp.pipeline_id": "taken-over", "mlp.worker_id": "trainer@dead:1"}
    )
    store.create_run(new_run_record(submission))
    # As the taking-over worker's lease heartbeat leaves it: its own id on the record.
    store.update_run(
        "taken-over",
        status=RunStatus.RUNNING,
        attempts=1,
        mlflow_run_id=dead_run.info.run_id,
        worker_id="trainer@alive:2",
    )
    record = PipelineRunner(store, tracking_uri).run(submission, worker_id="trainer@alive:2")
    assert record.attempts == 2 and record.mlflow_run_id != dead_run.info.run_id
    ended = client.get_run(dead_run.info.run_id)
    assert ended.info.status == "FAILED"
    assert ended.data.tags["mlp.terminated_reason"] == (
        "worker lease expired; the run was taken over by worker trainer@alive:2 "
        "(the attempt ran on trainer@dead:1)"
    )
    replacement = client.get_run(record.mlflow_run_id)
    assert replacement.data.tags["mlp.previous_attempt_run_id"] == dead_run.info.run_id
    assert replacement.data.tags["mlp.worker_id"] == "trainer@alive:2"


def test_model_below_min_metric_is_not_registered(
    fraud_csv: Path, store: Any, tracking_uri: str
) -> None:
    document = classification_pipeline(
        fraud_csv, estimators=("dt",), register={"min_metric": 0.9999}
    )
    record = run(document, store, tracking_uri, "below-bar")
    assert record.status == RunStatus.FAILED
    assert record.error is not None and record.error.step == "register_model"
    assert "is below min_metric 0.9999; the model was not registered" in record.error.message
    assert MlflowClient(tracking_uri).search_model_versions("name = 'fraud'") == []


def test_kaggle_step_reads_what_the_downloader_fetched(
    fraud_csv: Path, store: Any, tracking_uri: str
) -> None:
    """The Kaggle API needs the internet: a fake downloader stands in at the seam."""
    calls: list[tuple[str, str]] = []

    def fake_download(dataset: str, file_name: str, target_dir: str) -> str:
        calls.append((dataset, file_name))
        archive = Path(target_dir) / f"{file_name}.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.write(fraud_csv, arcname=file_name)
        return str(archive)

    document = classification_pipeline(fraud_csv)
    document["pipeline"][0]["MLSteps"][0] = {
        "load_data_from_kaggle": {
            "kaggle_dataset_name": "mlg-ulb/creditcardfraud",
            "training_file_name": "creditcard.csv",
        }
    }
    document["pipeline"][0]["MLSteps"] = document["pipeline"][0]["MLSteps"][:2]
    record = run(document, store, tracking_uri, "kaggle-1", kaggle_downloader=fake_download)
    assert record.status == RunStatus.SUCCEEDED, record.error
    assert calls == [("mlg-ulb/creditcardfraud", "creditcard.csv")]
    load = record.step("load_data_from_kaggle")
    assert load is not None and load.findings["rows"] == 1200


def test_kaggle_without_credentials_is_a_clear_failure(
    fraud_csv: Path,
    store: Any,
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    document = json.loads(json.dumps(classification_pipeline(fraud_csv)))
    document["pipeline"][0]["MLSteps"] = [
        {
            "load_data_from_kaggle": {
                "kaggle_dataset_name": "mlg-ulb/creditcardfraud",
                "training_file_name": "creditcard.csv",
            }
        }
    ]
    record = run(document, store, tracking_uri, "kaggle-no-credentials")
    assert record.status == RunStatus.FAILED
    assert record.error is not None
    assert record.error.message.startswith("Kaggle credentials not found: set KAGGLE_USERNAME")


def test_registered_version_has_its_monitoring_baseline(
    example_run: dict[str, Any], fraud_csv: Path
) -> None:
    record: PipelineRun = example_run["record"]
    register = record.step("register_model")
    assert register is not None and register.findings["baseline"].startswith("stored"), register
    client = MlflowClient(example_run["tracking_uri"])
    version = client.get_model_version("fraud", "1")
    baseline = load_baseline(client, version.run_id)
    assert baseline is not None
    training = pd.read_csv(fraud_csv)
    assert baseline.problem_type == "classification" and baseline.target == "Class"
    assert list(baseline.features.columns) == [c for c in training.columns if c != "Class"]
    assert len(baseline.features) == len(training)  # under the 10,000-row sample cap
    # PyCaret keeps 30 % of the rows aside; the baseline scores exactly those.
    assert len(baseline.holdout) == round(0.3 * len(training))
    assert set(baseline.holdout_predictions) <= {0, 1}
    assert set(baseline.holdout_metrics) >= {"accuracy", "f1", "auc"}
    parent = client.get_run(record.mlflow_run_id)
    assert baseline.holdout_metrics["f1"] == pytest.approx(parent.data.metrics["holdout_F1"])


def test_registering_says_whether_the_model_compiles(example_run: dict[str, Any]) -> None:
    register = example_run["record"].step("register_model")
    assert register is not None
    # The example's pipeline holds our trigonometry transformer, which has no ONNX converter:
    # registered all the same, and predictors serve it by scikit-learn.
    assert register.findings["compiled"].startswith("not compiled (served by scikit-learn): ")
    assert "TrigonometryFeatures" in register.findings["compiled"]
