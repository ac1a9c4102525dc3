"""`mlp validate` as a user runs it: the installed console script, exit codes, messages."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_mlp(*args: str) -> subprocess.CompletedProcess[str]:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    return subprocess.run([mlp, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize(
    "name", ["credit_fraud_kaggle.json", "credit_fraud_from_file.json", "credit_fraud_quick.json"]
)
def test_examples_are_valid(name: str) -> None:
    result = run_mlp("validate", f"examples/{name}")
    assert result.returncode == 0, result.stderr
    assert "valid pipeline (3 steps" in result.stdout


def test_invalid_pipeline_exits_2_with_field_paths(tmp_path: Path) -> None:
    document = json.loads((REPO / "examples" / "credit_fraud_from_file.json").read_text())
    params = document["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]
    params["estimator_list"][2] = "xgboostt"
    params["fold"] = 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    result = run_mlp("validate", str(path))
    assert result.returncode == 2
    assert (
        "pipeline[0].MLSteps[1].train_model.modeling_params.estimator_list[2]: 'xgboostt' "
        "is not a PyCaret classification estimator; known:" in result.stderr
    )
    assert "pipeline[0].MLSteps[1].train_model.modeling_params.fold: must be at least 2" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_unknown_estimator_without_problem_type_exits_2_naming_it(tmp_path: Path) -> None:
    document = json.loads((REPO / "examples" / "credit_fraud_from_file.json").read_text())
    del document["experiment_config"]["problem_type"]
    params = document["pipeline"][0]["MLSteps"][1]["train_model"]["modeling_params"]
    params["estimator_list"][2] = "xgboostt"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    result = run_mlp("validate", str(path))
    assert result.returncode == 2
    assert "experiment_config.problem_type: missing" in result.stderr
    assert (
        "pipeline[0].MLSteps[1].train_model.modeling_params.estimator_list[2]: 'xgboostt' "
        "is not a PyCaret estimator of either problem type" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_malformed_json_exits_2_with_line_and_column() -> None:
    result = run_mlp("validate", "tests/data/seed_second_example_trailing_commas.json")
    assert result.returncode == 2
    assert "malformed JSON at line 11 column 17" in result.stderr


def test_print_json_emits_canonical_definition() -> None:
    result = run_mlp("validate", "examples/credit_fraud_kaggle.json", "--print-json")
    assert result.returncode == 0
    printed = json.loads(result.stdout)
    assert printed["experimentConfig"]["problemType"] == "PROBLEM_TYPE_CLASSIFICATION"
    assert printed["pipeline"][0]["MLSteps"][0]["loadDataFromKaggle"]["trainingFileName"] == (
        "creditcard.csv"
    )


def test_every_command_has_help() -> None:
    import typer.main
    from typer.testing import CliRunner

    from mlplatform.cli.main import app

    top = run_mlp("--help")
    assert top.returncode == 0 and "Usage:" in top.stdout
    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert "validate" in commands
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output


def test_validate_checks_data_sources_against_mlp_data_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLP_DATA_ROOTS", f"{tmp_path},kaggle:")
    refused = run_mlp("validate", "examples/credit_fraud_from_file.json")
    assert refused.returncode == 2
    assert "load_data_from_file.path: 'examples/data/credit_fraud_sample.csv' is outside" in (
        refused.stderr
    )
    assert f"allowed: {tmp_path}, kaggle:" in refused.stderr
    assert run_mlp("validate", "examples/credit_fraud_kaggle.json").returncode == 0
    monkeypatch.setenv("MLP_DATA_ROOTS", f"{REPO / 'examples'}")
    assert run_mlp("validate", "examples/credit_fraud_from_file.json").returncode == 0
