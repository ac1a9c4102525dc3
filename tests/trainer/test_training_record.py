"""What a trained run leaves for a data scientist, trained through the real RabbitMQ into a real
MLflow store: PyCaret's plots, the leaderboard, the dataset input and its profile on the
registered model's run, and the live progress events (one per evaluated model, with its score)
that `mlp submit --wait` and `mlp runs watch` show.

One classification and one regression run are trained once for the module and shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_diabetes
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client import messaging
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.client.submit import submit_pipeline
from mlplatform.common.store import RunStatus, Store, open_store
from mlplatform.v1 import messages_pb2
from tests.support.queues import BROKER_URL, temporary_work_queue
from tests.trainer.conftest import classification_pipeline
from tests.trainer.workers import running_worker

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

PLOT_FILES = {"auc", "confusion_matrix", "pr", "class_report", "feature", "calibration"}


def _regression_pipeline(data_path: Path) -> dict[str, Any]:
    return {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(data_path)}},
                    {
                        "train_model": {
                            "feature_engineering_params": {"session_id": 7},
                            "modeling_params": {
                                "estimator_list": ["lr", "dt"],
                                "fold": 2,
                                "n_select": 2,
                            },
                        }
                    },
                    {"register_model": {}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "test-diabetes",
            "model_name": "diabetes",
            "main_metric": "R2",
            "problem_type": "regression",
            "target": "target",
            # The object form: these plots, for the runner-up too.
            "log_plots": {"plots": ["residuals", "error", "feature"], "all_selected": True},
        },
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, fraud_csv: Path) -> Iterator[dict[str, Any]]:
    """A classification and a regression pipeline, each submitted and followed through the
    broker as `mlp submit --wait` does, on one worker."""
    folder = tmp_path_factory.mktemp("record")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    store_uri = f"sqlite:///{folder / 'store.db'}"
    diabetes = folder / "diabetes.csv"
    load_diabetes(as_frame=True).frame.head(200).to_csv(diabetes, index=False)
    documents = {
        "classification": classification_pipeline(fraud_csv, register={}),
        "regression": _regression_pipeline(diabetes),
    }
    results: dict[str, Any] = {"tracking_uri": tracking_uri, "store_uri": store_uri}
    with (
        temporary_work_queue("pipelines") as queue,
        open_store(store_uri) as store,
        running_worker(queue, store, tracking_uri, BROKER_URL),
    ):
        for kind, document in documents.items():
            results[kind] = _submit_and_follow(parse_pipeline(document), queue, store)
        yield results


def _submit_and_follow(definition: Any, queue: messaging.WorkQueue, store: Store) -> dict[str, Any]:
    submission = submit_pipeline(
        definition, broker_url=BROKER_URL, follow=True, timeout=600, queue=queue
    )
    assert submission.events is not None
    events = list(submission.events)
    record = store.get_run(submission.pipeline_id)
    assert record.status == RunStatus.SUCCEEDED, record.error
    return {"events": events, "record": record}


def _artifact_paths(client: MlflowClient, run_id: str, folder: str = "") -> set[str]:
    paths: set[str] = set()
    for item in client.list_artifacts(run_id, folder or None):
        if item.is_dir:
            paths |= _artifact_paths(client, run_id, item.path)
        else:
            paths.add(item.path)
    return paths


def _registered_run_id(client: MlflowClient, model_name: str) -> str:
    version = client.get_model_version_by_alias(model_name, "production")
    assert version.run_id
    return version.run_id


def test_classification_plots_are_artifacts_of_the_registered_models_run(
    trained: dict[str, Any],
) -> None:
    client = MlflowClient(trained["tracking_uri"])
    run_id = _registered_run_id(client, "fraud")
    paths = _artifact_paths(client, run_id)
    plots = {Path(path).stem for path in paths if path.startswith("plots/")}
    run = client.get_run(run_id)
    skipped = {
        key.removeprefix("mlp.plot_skipped."): value
        for key, value in run.data.tags.items()
        if key.startswith("mlp.plot_skipped.")
    }
    # Every default plot is either an image or skipped with its reason; none fails the run.
    assert plots | set(skipped) == PLOT_FILES
    assert {"auc", "confusion_matrix", "pr", "class_report"} <= plots
    assert all(reason for reason in skipped.values())
    local = client.download_artifacts(run_id, "plots/auc.png")
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression_plots_of_the_winner_and_the_runner_up(trained: dict[str, Any]) -> None:
    client = MlflowClient(trained["tracking_uri"])
    paths = _artifact_paths(client, _registered_run_id(client, "diabetes"))
    plots = {path for path in paths if path.startswith("plots/")}
    winner = {"plots/residuals.png", "plots/error.png", "plots/feature.png"}
    board = trained["regression"]["record"].step("train_model").findings["leaderboard"]
    runner_up = board[1]["estimator_id"]
    assert plots == winner | {
        f"plots/selected-2-{runner_up}/{name}.png" for name in ("residuals", "error", "feature")
    }


@pytest.mark.parametrize(
    "kind,model_name", [("classification", "fraud"), ("regression", "diabetes")]
)
def test_leaderboard_is_a_csv_and_a_table_of_every_estimator_and_metric(
    trained: dict[str, Any], kind: str, model_name: str
) -> None:
    client = MlflowClient(trained["tracking_uri"])
    run_id = _registered_run_id(client, model_name)
    paths = _artifact_paths(client, run_id)
    assert {"leaderboard/leaderboard.csv", "leaderboard/leaderboard.json"} <= paths
    csv_text = Path(client.download_artifacts(run_id, "leaderboard/leaderboard.csv")).read_text()
    header, *rows = csv_text.strip().splitlines()
    metric = "F1" if kind == "classification" else "R2"
    assert header.startswith("estimator_id,Model,") and metric in header.split(",")
    assert sorted(row.split(",")[0] for row in rows) == ["dt", "lr"]
    record = trained[kind]["record"]
    train = record.step("train_model")
    assert [row["estimator_id"] for row in train.findings["leaderboard"]] == [
        row.split(",")[0] for row in rows
    ]


@pytest.mark.parametrize(
    "kind,model_name", [("classification", "fraud"), ("regression", "diabetes")]
)
def test_dataset_is_an_mlflow_input_with_a_profile(
    trained: dict[str, Any], kind: str, model_name: str
) -> None:
    client = MlflowClient(trained["tracking_uri"])
    run_id = _registered_run_id(client, model_name)
    run = client.get_run(run_id)
    record = trained[kind]["record"]
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    load = record.steps[0]
    assert load.findings["digest"].removeprefix("sha256:").startswith(dataset.digest)
    assert len(dataset.digest) == 36
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags == {"mlflow.data.context": "training", "mlp.data_digest": load.findings["digest"]}
    assert dataset.source_type == "local" and json.loads(dataset.source)["uri"].endswith(".csv")
    assert json.loads(dataset.profile)["num_rows"] == load.findings["rows"]
    schema_columns = {column["name"] for column in json.loads(dataset.schema)["mlflow_colspec"]}
    profile = json.loads(Path(client.download_artifacts(run_id, "data/profile.json")).read_text())
    assert profile["rows"] == load.findings["rows"]
    assert set(profile["columns"]) == schema_columns
    target = "Class" if kind == "classification" else "target"
    assert profile["columns"][target]["missing"] == 0
    assert {"min", "max"} <= set(profile["columns"][target])


def test_each_model_score_is_an_event_as_it_finishes(trained: dict[str, Any]) -> None:
    """What `mlp submit --wait` shows: the event stream, one event per cross-validated model
    with its score, between the train step's start and end."""
    events: list[messages_pb2.PipelineEvent] = trained["classification"]["events"]
    kinds = [event.kind for event in events]
    started = kinds.index(messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED, 0)
    assert started >= 0
    models = [
        event for event in events if event.kind == messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED
    ]
    assert [(m.model.stage, m.model.index, m.model.total) for m in models] == [
        ("compare", 1, 2),
        ("compare", 2, 2),
    ]
    assert {m.model.estimator_id for m in models} == {"dt", "lr"}
    assert all(m.model.metric == "F1" and m.model.HasField("score") for m in models)
    train = trained["classification"]["record"].step("train_model")
    # The streamed scores are the leaderboard's.
    board = {row["estimator_id"]: row["F1"] for row in train.findings["leaderboard"]}
    for m in models:
        assert m.model.score == pytest.approx(board[m.model.estimator_id], abs=1e-4)
    phases = [
        event.phase for event in events if event.kind == messages_pb2.PIPELINE_EVENT_KIND_PHASE
    ]
    assert phases[:2] == ["setup", "comparing"] and "plotting" in phases
    assert "registering" in phases
    train_start = next(
        i for i, e in enumerate(events) if e.step == "train_model" and e.kind == kinds[started]
    )
    train_end = next(
        i
        for i, e in enumerate(events)
        if e.step == "train_model" and e.kind == messages_pb2.PIPELINE_EVENT_KIND_STEP_FINISHED
    )
    assert all(train_start < events.index(m) < train_end for m in models)


def test_events_are_kept_on_the_pipeline_record(trained: dict[str, Any]) -> None:
    published = trained["classification"]["events"]
    record = trained["classification"]["record"]
    assert [event.message for event in record.events] == [event.message for event in published]
    model_events = [event for event in record.events if event.kind == "model_evaluated"]
    assert [event.model["estimator_id"] for event in model_events] == [
        m.model.estimator_id
        for m in published
        if m.kind == messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED
    ]


def test_runs_watch_replays_the_stored_events_as_lines_when_piped(
    trained: dict[str, Any],
) -> None:
    record = trained["classification"]["record"]
    result = CliRunner().invoke(
        app, ["runs", "watch", record.pipeline_id, "--store", trained["store_uri"]]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(record.events)
    assert any("compare: model 1 of 2" in line and "F1 0." in line for line in lines)
    assert "succeeded" in lines[-1]


def test_runs_show_prints_the_leaderboard(trained: dict[str, Any]) -> None:
    record = trained["regression"]["record"]
    result = CliRunner().invoke(
        app,
        ["runs", "show", record.pipeline_id, "--store", trained["store_uri"]],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Leaderboard" in result.output
    assert "Linear Regression" in result.output and "Decision Tree Regressor" in result.output
    assert "promotion" in result.output and "no version holds @production" in result.output
