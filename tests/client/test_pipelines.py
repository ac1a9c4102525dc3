"""Pipeline files: the seed's format parses; every kind of bad input names its field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.client.pipelines import (
    PipelineError,
    load_pipeline_file,
    load_pipeline_text,
    parse_pipeline,
)
from mlplatform.client.pycaret_catalog import find_metric
from mlplatform.v1 import pipeline_pb2

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SEED_DOC = REPO.parent / "shared" / "seed" / "ml-engineer-challenge.md"
TRAIN = "pipeline[0].MLSteps[1].train_model"


@pytest.fixture
def example() -> dict[str, Any]:
    """The shared credit-fraud example as a dict, to break one field at a time."""
    return json.loads((EXAMPLES / "credit_fraud_from_file.json").read_text())


def problems(document: Any) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(document)
    return [str(error) for error in caught.value.errors]


def test_seed_first_example_parses_as_written() -> None:
    definition = load_pipeline_file(EXAMPLES / "credit_fraud_kaggle.json")
    config = definition.experiment_config
    assert config.problem_type == pipeline_pb2.PROBLEM_TYPE_CLASSIFICATION
    assert config.main_metric == "F1" and config.target == "Class"
    steps = definition.pipeline[0].ml_steps
    assert [step.WhichOneof("step") for step in steps] == [
        "load_data_from_kaggle",
        "train_model",
        "register_model",
    ]
    assert steps[0].load_data_from_kaggle.kaggle_dataset_name == "mlg-ulb/creditcardfraud"
    train = steps[1].train_model
    assert list(train.modeling_params.estimator_list) == ["rf", "lightgbm", "knn"]
    assert train.modeling_params.fold == 10 and train.modeling_params.n_select == 2
    assert train.feature_engineering_params.trigonometry_features is True
    assert train.feature_engineering_params.HasField("fix_imbalance")
    assert train.finalize is False


@pytest.mark.skipif(not SEED_DOC.exists(), reason="shared/seed is not beside this checkout")
def test_committed_seed_example_is_the_seed_verbatim() -> None:
    seed_text = SEED_DOC.read_text()
    first_block = seed_text.split("```json\n")[1].split("```")[0]
    assert (EXAMPLES / "credit_fraud_kaggle.json").read_text() == first_block


def test_shared_example_parses() -> None:
    definition = load_pipeline_file(EXAMPLES / "credit_fraud_from_file.json")
    step = definition.pipeline[0].ml_steps[0]
    assert step.load_data_from_file.path == "examples/data/credit_fraud_sample.csv"


def test_yaml_is_accepted(tmp_path: Path, example: dict[str, Any]) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(example))
    from_yaml = load_pipeline_file(path)
    assert from_yaml == load_pipeline_file(EXAMPLES / "credit_fraud_from_file.json")


def test_problem_type_accepts_full_enum_name(example: dict[str, Any]) -> None:
    example["experiment_config"]["problem_type"] = "PROBLEM_TYPE_REGRESSION"
    example["experiment_config"]["main_metric"] = "R2"
    example["pipeline"][0]["MLSteps"][1]["train_model"]["feature_engineering_params"].pop(
        "fix_imbalance"
    )
    definition = parse_pipeline(example)
    assert definition.experiment_config.problem_type == pipeline_pb2.PROBLEM_TYPE_REGRESSION


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline_file(REPO / "tests" / "data" / "seed_second_example_trailing_commas.json")
    assert "malformed JSON at line 11 column 17" in str(caught.value)


def test_malformed_yaml_names_line_and_column() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline_text("pipeline: [\n  {a: 1\nexperiment_config: {}\n", source="p.yaml")
    assert "malformed YAML at line 3" in str(caught.value)


def test_duplicate_json_key_is_rejected() -> None:
    with pytest.raises(PipelineError, match="duplicate key 'pipeline'"):
        load_pipeline_text('{"pipeline": [], "pipeline": []}')


def test_unknown_key_names_its_path(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["folds"] = 3
    [message] = problems(example)
    assert message.startswith(f"{TRAIN}.modeling_params.folds: unknown key 'folds'")
    assert "estimator_list" in message


def test_unknown_step_lists_known_steps(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"].insert(1, {"load_data_from_s3": {"path": "x"}})
    [message] = problems(example)
    assert message.startswith("pipeline[0].MLSteps[1].load_data_from_s3: unknown step")
    assert "load_data_from_file" in message and "train_model" in message


def test_step_with_two_kinds_is_rejected(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][2] = {"register_model": {}, "validate_data": {}}
    assert any("a step holds exactly one of" in m for m in problems(example))


def test_unknown_estimator_names_path_and_known_ids(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["estimator_list"] = [
        "rf",
        "lightgbm",
        "xgboostt",
    ]
    [message] = problems(example)
    assert message.startswith(
        f"{TRAIN}.modeling_params.estimator_list[2]: 'xgboostt' is not a PyCaret "
        "classification estimator; known: lr, knn"
    )


def test_estimator_of_the_other_problem_type_is_rejected(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["estimator_list"] = [
        "gbr",
        "rf",
    ]
    [message] = problems(example)
    assert "'gbr' is not a PyCaret classification estimator" in message


def test_unknown_estimator_without_problem_type_is_named(example: dict[str, Any]) -> None:
    del example["experiment_config"]["problem_type"]
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["estimator_list"] = [
        "rf",
        "gbr",
        "xgboostt",
    ]
    found = problems(example)
    assert "experiment_config.problem_type: missing; classification or regression" in found
    [estimator] = [message for message in found if "estimator_list" in message]
    # 'rf' and 'gbr' are each in one catalog, so only the id in neither is refused.
    assert estimator.startswith(
        f"{TRAIN}.modeling_params.estimator_list[2]: 'xgboostt' is not a PyCaret estimator "
        "of either problem type (experiment_config.problem_type is missing); "
        "known classification: lr, knn"
    )
    assert "; regression: lr, lasso" in estimator


def test_unknown_metric_for_problem_type(example: dict[str, Any]) -> None:
    example["experiment_config"]["main_metric"] = "RMSE"
    [message] = problems(example)
    assert message.startswith("experiment_config.main_metric: 'RMSE' is not a PyCaret")
    assert "F1" in message


@pytest.mark.parametrize(
    ("metric", "metric_id"),
    [("f1", "f1"), ("Prec.", "precision"), ("precision", "precision"), ("AUC", "auc"),
     ("kappa", "kappa"), (" Accuracy ", "acc")],
)  # fmt: skip
def test_metric_ids_and_display_names_are_accepted(
    example: dict[str, Any], metric: str, metric_id: str
) -> None:
    example["experiment_config"]["main_metric"] = metric
    config = parse_pipeline(example).experiment_config
    assert config.main_metric == metric  # recorded as the user wrote it
    resolved = find_metric(config.problem_type, config.main_metric)
    assert resolved is not None and resolved.metric_id == metric_id


@pytest.mark.parametrize("fold", [1, 0 - 3])
def test_fold_below_two_is_rejected(example: dict[str, Any], fold: int) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["fold"] = fold
    [message] = problems(example)
    assert message.startswith(f"{TRAIN}.modeling_params.fold: must be at least 2")


def test_n_select_above_estimator_count_is_rejected(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["n_select"] = 4
    [message] = problems(example)
    assert message == f"{TRAIN}.modeling_params.n_select: must be between 1 and 3 " + (
        "(the number of estimators); got 4"
    )


def test_negative_n_select_is_rejected(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["n_select"] = -1
    assert any("n_select: must be between 1 and 3" in m for m in problems(example))


def test_empty_target_is_rejected(example: dict[str, Any]) -> None:
    example["experiment_config"]["target"] = "  "
    assert problems(example) == ["experiment_config.target: must not be empty"]


def test_register_before_train_is_rejected(example: dict[str, Any]) -> None:
    steps = example["pipeline"][0]["MLSteps"]
    steps[1], steps[2] = steps[2], steps[1]
    [message] = problems(example)
    assert message == "pipeline[0].MLSteps[1].register_model: register_model comes before any " + (
        "train_model"
    )


def test_train_before_load_is_rejected(example: dict[str, Any]) -> None:
    steps = example["pipeline"][0]["MLSteps"]
    steps[0], steps[1] = steps[1], steps[0]
    assert "pipeline[0].MLSteps[0].train_model: train_model comes before any load_data step" in (
        problems(example)
    )


def test_wrong_value_type_names_field(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["fold"] = "three"
    example["pipeline"][0]["MLSteps"][1]["train_model"]["finalize"] = "no"
    found = problems(example)
    assert f"{TRAIN}.modeling_params.fold: expected a whole number, got a string 'three'" in found
    assert f"{TRAIN}.finalize: expected true or false, got a string 'no'" in found


def test_bad_problem_type_lists_choices(example: dict[str, Any]) -> None:
    example["experiment_config"]["problem_type"] = "clustering"
    [message] = problems(example)
    assert message == (
        "experiment_config.problem_type: 'clustering' is not a valid ProblemType; "
        "expected one of: classification, regression"
    )


def test_every_problem_is_reported_at_once(example: dict[str, Any]) -> None:
    broken = copy.deepcopy(example)
    broken["experiment_config"]["target"] = ""
    broken["experiment_config"]["main_metric"] = "Nope"
    broken["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["fold"] = 1
    assert len(problems(broken)) == 3


def test_setup_kwargs_are_checked_against_pycaret_setup(example: dict[str, Any]) -> None:
    params = example["pipeline"][0]["MLSteps"][1]["train_model"]["feature_engineering_params"]
    params["setup_kwargs"] = {
        "remove_multicollinearity": True,
        "multicolinearity": 0.9,
        "n_jobs": 4,
        "pca": True,
    }
    found = problems(example)
    kwargs_path = f"{TRAIN}.feature_engineering_params.setup_kwargs"
    assert sorted(found) == [
        f"{kwargs_path}.multicolinearity: 'multicolinearity' is not a keyword of PyCaret's "
        "classification setup()",
        f"{kwargs_path}.n_jobs: 'n_jobs' is set by the platform",
        f"{kwargs_path}.pca: set 'pca' with the typed field of that name",
    ]


def test_fix_imbalance_is_rejected_for_regression(example: dict[str, Any]) -> None:
    example["experiment_config"].update(problem_type="regression", main_metric="R2")
    example["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]["estimator_list"] = [
        "rf",
        "lightgbm",
    ]
    found = problems(example)
    assert found == [
        f"{TRAIN}.feature_engineering_params.fix_imbalance: applies to classification only"
    ]


def test_invalid_alias_is_rejected(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][2]["register_model"] = {"alias": "latest"}
    [message] = problems(example)
    assert message.startswith("pipeline[0].MLSteps[2].register_model.alias: 'latest' is not")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="cannot read file"):
        load_pipeline_file(tmp_path / "nope.json")


def test_document_that_is_not_an_object() -> None:
    assert problems([1, 2]) == ["expected an object for the document, got a list"]


@pytest.mark.parametrize(
    "written,enabled,plots",
    [
        (True, True, []),
        (False, False, []),
        (["auc", "confusion_matrix"], True, ["auc", "confusion_matrix"]),
        ({"plots": ["pr"], "all_selected": True}, None, ["pr"]),
    ],
)
def test_log_plots_accepts_a_boolean_a_list_or_an_object(
    example: dict[str, Any], written: Any, enabled: bool | None, plots: list[str]
) -> None:
    example["experiment_config"]["log_plots"] = written
    selection = parse_pipeline(example).experiment_config.log_plots
    assert (selection.enabled if selection.HasField("enabled") else None) == enabled
    assert list(selection.plots) == plots


def test_log_plots_without_it_keeps_the_old_definition_unchanged(example: dict[str, Any]) -> None:
    definition = parse_pipeline(example)
    assert not definition.experiment_config.HasField("log_plots")
    assert definition.pipeline[0].ml_steps[2].register_model.promote == 0


def test_unknown_plot_names_the_item_and_the_known_plots(example: dict[str, Any]) -> None:
    example["experiment_config"]["log_plots"] = ["auc", "residuals", "auc"]
    found = problems(example)
    assert found[0].startswith(
        "experiment_config.log_plots[1]: 'residuals' is not a PyCaret classification plot; "
        "known: pipeline, auc,"
    )
    assert found[1] == "experiment_config.log_plots[2]: 'auc' is listed twice"


def test_log_plots_of_another_type_is_rejected(example: dict[str, Any]) -> None:
    example["experiment_config"]["log_plots"] = "auc"
    [message] = problems(example)
    assert message == (
        "experiment_config.log_plots: expected true, false or a list of plot names, got a string"
    )


@pytest.mark.parametrize(
    "written,expected",
    [
        ("always", pipeline_pb2.PROMOTE_POLICY_ALWAYS),
        ("if_better", pipeline_pb2.PROMOTE_POLICY_IF_BETTER),
        ("PROMOTE_POLICY_ALWAYS", pipeline_pb2.PROMOTE_POLICY_ALWAYS),
    ],
)
def test_promote_accepts_always_and_if_better(
    example: dict[str, Any], written: str, expected: int
) -> None:
    example["pipeline"][0]["MLSteps"][2]["register_model"] = {"promote": written}
    definition = parse_pipeline(example)
    assert definition.pipeline[0].ml_steps[2].register_model.promote == expected


def test_unknown_promote_lists_the_choices(example: dict[str, Any]) -> None:
    example["pipeline"][0]["MLSteps"][2]["register_model"] = {"promote": "sometimes"}
    [message] = problems(example)
    assert message == (
        "pipeline[0].MLSteps[2].register_model.promote: 'sometimes' is not a valid "
        "PromotePolicy; expected one of: always, if_better"
    )
