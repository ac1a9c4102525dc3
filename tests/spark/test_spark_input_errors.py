"""Bad input to `mlp batch spark` gets a clear error before any Spark session starts: the
command runs in this process with no session fixture, against a real registry and store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.common.store import Store
from tests.spark.conftest import MODEL_NAME, Registry, make_rows


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.parquet"
    make_rows(10, seed=9).drop(columns="label").to_parquet(path)
    return path


def spark_batch(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["batch", "spark", *arguments])
    return result.exit_code, result.output


def test_missing_columns_are_named(
    tmp_path: Path, registry: Registry, store: Store, cli_settings: None
) -> None:
    make_rows(10, seed=9).drop(columns=["label", "tenure", "support_calls"]).to_parquet(
        tmp_path / "partial.parquet"
    )
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(tmp_path / "partial.parquet"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2
    assert "lacks the model's input columns: tenure, support_calls" in output
    assert store.list_batches() == []  # nothing was started, so nothing is recorded


def test_an_unreadable_input_is_reported_as_such(
    tmp_path: Path, registry: Registry, cli_settings: None
) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(tmp_path / "broken.parquet"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "broken.parquet: not readable as parquet" in output
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(tmp_path / "nowhere" / "*.parquet"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "no file matches" in output
    (tmp_path / "notes.txt").write_text("hello")
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(tmp_path / "notes.txt"),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "expected .parquet or .csv files" in output


def test_an_unknown_model_or_alias_is_named(
    tmp_path: Path, rows_file: Path, registry: Registry, cli_settings: None
) -> None:
    for reference in ("no-such-model", f"{MODEL_NAME}@staging", f"{MODEL_NAME}/7"):
        code, output = spark_batch(
            "--model", reference, "--input", str(rows_file), "--output", str(tmp_path / "out")
        )
        assert code == 2, output
        assert output.startswith("--model: ") and reference.split("@")[0].split("/")[0] in output
        assert "Traceback" not in output


def test_no_java_is_said_plainly(
    tmp_path: Path, rows_file: Path, registry: Registry, store: Store, cli_settings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # a folder without bin/java
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(rows_file), "--output", str(tmp_path / "out")
    )
    assert code == 1 and "JAVA_HOME" in output and "no bin/java" in output
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(rows_file), "--output", str(tmp_path / "out")
    )
    assert code == 1 and "Spark needs Java" in output
    assert store.list_batches() == []


def test_an_existing_output_a_bad_conf_and_a_missing_id_column_are_refused(
    tmp_path: Path, rows_file: Path, registry: Registry, cli_settings: None
) -> None:
    (tmp_path / "out").mkdir()
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(rows_file), "--output", str(tmp_path / "out")
    )
    assert code == 2 and "--output" in output and "--overwrite" in output
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(rows_file), "--output", str(tmp_path / "new"),
        "--conf", "spark.executor.memory",
    )  # fmt: skip
    assert code == 2 and "--conf: expected key=value" in output
    code, output = spark_batch(
        "--model", MODEL_NAME, "--input", str(rows_file), "--output", str(tmp_path / "new"),
        "--id-column", "account",
    )  # fmt: skip
    assert code == 2 and "--id-column" in output and "'account'" in output
