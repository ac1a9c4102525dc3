"""Champion/challenger on a real MLflow registry (SQLite): the alias moves to a new version only
when it beats the alias's version on the same hold-out set, and `mlp models promote` moves it
by hand. Cheap pipelines: a `dummy` classifier (always the majority class, F1 0) and `lr`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_diabetes
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.store import PipelineRun, RunStatus, open_store
from mlplatform.trainer.runner import PipelineRunner
from mlplatform.v1 import messages_pb2
from tests.trainer.conftest import classification_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def _document(data_path: Path, estimator: str, promote: str | None = None) -> dict[str, Any]:
    register = {} if promote is None else {"promote": promote}
    document = classification_pipeline(data_path, estimators=(estimator,), register=register)
    document["experiment_config"]["log_plots"] = False
    return document


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("promotion")
    store_uri = f"sqlite:///{folder / 'store.db'}"
    return {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "store_uri": store_uri,
        "store": open_store(store_uri),
        "folder": folder,
    }


def _train(registry: dict[str, Any], document: dict[str, Any], pipeline_id: str) -> PipelineRun:
    submission = messages_pb2.SubmitPipeline(
        pipeline_id=pipeline_id, definition=parse_pipeline(document)
    )
    record = PipelineRunner(registry["store"], registry["tracking_uri"]).run(submission, "test")
    assert record.status == RunStatus.SUCCEEDED, record.error
    return record


def _alias_version(registry: dict[str, Any]) -> str:
    client = MlflowClient(registry["tracking_uri"])
    return str(client.get_model_version_by_alias("fraud", "production").version)


def test_first_version_takes_the_alias_when_none_holds_it(
    registry: dict[str, Any], fraud_csv: Path
) -> None:
    record = _train(registry, _document(fraud_csv, "dummy"), "weak-1")
    assert record.registered_version == "1" and record.alias == "production"
    assert record.promotion is not None and record.promotion["promote"] is True
    assert "no version holds @production" in record.promotion["reason"]
    assert _alias_version(registry) == "1"


def test_a_better_model_moves_the_alias(registry: dict[str, Any], fraud_csv: Path) -> None:
    record = _train(registry, _document(fraud_csv, "lr"), "good-2")
    promotion = record.promotion
    assert promotion is not None and promotion["promote"] is True
    assert promotion["champion_version"] == "1"
    assert promotion["challenger_score"] > promotion["champion_score"]
    assert record.registered_version == "2" and record.alias == "production"
    assert _alias_version(registry) == "2"


def test_a_worse_model_is_registered_but_the_alias_does_not_move(
    registry: dict[str, Any], fraud_csv: Path
) -> None:
    record = _train(registry, _document(fraud_csv, "dummy"), "weak-3")
    promotion = record.promotion
    assert promotion is not None and promotion["promote"] is False
    assert promotion["policy"] == "if_better" and promotion["champion_version"] == "2"
    assert promotion["challenger_score"] < promotion["champion_score"]
    assert promotion["reason"].startswith("not better: F1")
    assert record.registered_version == "3" and record.alias is None
    assert _alias_version(registry) == "2"
    client = MlflowClient(registry["tracking_uri"])
    # Both scores and the decision are on the run and on the new version.
    tags = client.get_run(record.mlflow_run_id).data.tags
    assert tags["mlp.promotion.decision"] == "kept_champion"
    assert float(tags["mlp.promotion.champion_score"]) == pytest.approx(
        promotion["champion_score"], rel=1e-5
    )
    version = client.get_model_version("fraud", "3")
    assert version.tags["mlp.promotion.decision"] == "kept_champion"
    assert "production" not in version.aliases


def test_promote_always_moves_the_alias_to_a_worse_model(
    registry: dict[str, Any], fraud_csv: Path
) -> None:
    record = _train(registry, _document(fraud_csv, "dummy", promote="always"), "weak-4")
    assert record.promotion is not None and record.promotion["promote"] is True
    assert record.promotion["reason"] == "promote is 'always'"
    assert _alias_version(registry) == "4"


def test_models_promote_moves_the_alias_by_hand(registry: dict[str, Any]) -> None:
    result = CliRunner().invoke(
        app, ["models", "promote", "fraud", "2", "--tracking-uri", registry["tracking_uri"]]
    )
    assert result.exit_code == 0, result.output
    assert "fraud @production -> v2 (was v4)" in result.output
    assert _alias_version(registry) == "2"
    missing = CliRunner().invoke(
        app, ["models", "promote", "fraud", "99", "--tracking-uri", registry["tracking_uri"]]
    )
    assert missing.exit_code == 1 and "cannot promote fraud v99" in missing.output
    assert _alias_version(registry) == "2"


def test_a_champion_that_cannot_score_the_hold_out_loses(
    registry: dict[str, Any], fraud_csv: Path
) -> None:
    """A regression model on other columns holds the alias: it cannot score this hold-out, so
    that is recorded and the challenger takes the alias."""
    diabetes = registry["folder"] / "diabetes.csv"
    load_diabetes(as_frame=True).frame.head(150).to_csv(diabetes, index=False)
    other = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(diabetes)}},
                    {
                        "train_model": {
                            "modeling_params": {"estimator_list": ["lr"], "fold": 2},
                        }
                    },
                    {"register_model": {"promote": "always"}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "test-other-columns",
            "model_name": "fraud",
            "problem_type": "regression",
            "target": "target",
            "log_plots": False,
        },
    }
    assert _train(registry, other, "other-5").registered_version == "5"
    record = _train(registry, _document(fraud_csv, "dummy"), "weak-6")
    promotion = record.promotion
    assert promotion is not None and promotion["promote"] is True
    assert promotion["champion_version"] == "5" and promotion["champion_score"] is None
    assert promotion["reason"].startswith("champion v5 cannot score the hold-out set")
    assert _alias_version(registry) == "6"
