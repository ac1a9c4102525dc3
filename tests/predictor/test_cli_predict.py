"""`mlp predict` as a user runs it (the installed console script) against a running predictor."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from predictor_harness import PredictorUnderTest
from predictor_registry import Registry


def run_mlp(*arguments: str) -> subprocess.CompletedProcess[str]:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    return subprocess.run([mlp, *arguments], capture_output=True, text=True, timeout=120)


def test_predict_prints_a_table_from_csv_rows(
    cancer_predictor: PredictorUnderTest, registry: Registry, tmp_path: Path
) -> None:
    rows_file = tmp_path / "rows.csv"
    registry.cancer_features.head(3).to_csv(rows_file, index=False)
    result = run_mlp(
        "predict", str(rows_file), "--model", "cancer_rf",
        "--address", cancer_predictor.address, "--probabilities",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cancer_rf version 1" in result.stdout
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "prediction" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == ["row", "prediction", "0", "1"]
    table_rows = [line for line in lines if line.startswith("│")]
    assert len(table_rows) == 3
    assert [cell.strip() for cell in table_rows[0].split("│")[1:3]] == ["0", "0"]


def test_predict_with_invalid_json_rows_exits_2_naming_the_columns(
    cancer_predictor: PredictorUnderTest,
) -> None:
    rows = json.dumps({"records": [{"mean_radius": "big"}]})
    result = run_mlp("predict", "--json", rows, "--address", cancer_predictor.address)
    assert result.returncode == 2
    assert "INVALID_ARGUMENT" in result.stderr
    assert "mean_radius: expected double, got string" in result.stderr
    assert "Traceback" not in result.stderr
