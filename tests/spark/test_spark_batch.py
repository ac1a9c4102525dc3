"""`run_spark_batch` on the shared local[2] session against a real MLflow registry and a real
SQLite store: the predictions equal the in-process path's, and the batch is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.common.input_schema import ProblemType
from mlplatform.common.store import BatchStatus, Store
from mlplatform.spark.errors import SparkBatchError
from mlplatform.spark.job import SparkBatchOptions, run_spark_batch
from mlplatform.spark.prediction_log import logged_chunks, prediction_summary
from mlplatform.spark.scoring import ModelForSpark
from tests.spark.conftest import MODEL_NAME, Registry, in_process, make_rows

BIG_ROWS = 200_000


def run(spark: Any, store: Store, store_uri: str, registry: Registry, **options: Any) -> Any:
    return run_spark_batch(
        SparkBatchOptions(model=f"{MODEL_NAME}@production", **options),
        store,
        store_uri,
        registry.tracking_uri,
        spark=spark,
    )


def test_200k_parquet_rows_get_exactly_the_in_process_predictions_and_a_batch_record(
    spark: Any, store: Store, store_uri: str, registry: Registry, tmp_path: Path
) -> None:
    rows = make_rows(BIG_ROWS, seed=2).drop(columns="label")
    rows.to_parquet(tmp_path / "customers.parquet", row_group_size=50_000)
    seen: list[tuple[int, int, str]] = []

    result = run_spark_batch(
        SparkBatchOptions(
            model=f"{MODEL_NAME}@production",
            input_path=str(tmp_path / "customers.parquet"),
            output_path=str(tmp_path / "scored"),
            id_column="customer_id",
            with_probabilities=True,
            batch_id="spark-200k",
        ),
        store,
        store_uri,
        registry.tracking_uri,
        spark=spark,
        on_progress=lambda *progress: seen.append(progress),
    )

    output = pd.read_parquet(tmp_path / "scored").set_index("customer_id").loc[rows["customer_id"]]
    predictions, probabilities = in_process(registry.model, rows)
    assert list(output.columns) == [
        "prediction", "probability_churn", "probability_stay", "model_name", "model_version",
    ]  # fmt: skip
    assert len(output) == BIG_ROWS
    np.testing.assert_array_equal(output["prediction"].to_numpy(), predictions)
    np.testing.assert_array_equal(
        output[["probability_churn", "probability_stay"]].to_numpy(), probabilities
    )
    assert set(output["model_name"]) == {MODEL_NAME} and set(output["model_version"]) == {"1"}

    batch = store.get_batch("spark-200k")
    assert result.batch == batch and result.rows == BIG_ROWS
    assert batch.status is BatchStatus.SUCCEEDED and batch.engine == "spark"
    assert (batch.model_name, batch.model_version) == (MODEL_NAME, "1")
    assert batch.rows_total == batch.rows_done == BIG_ROWS
    assert batch.input_uri == str(tmp_path / "customers.parquet")
    assert batch.output_uri == str(tmp_path / "scored")
    assert batch.duration_seconds is not None and batch.duration_seconds > 0
    counts = batch.prediction_summary["counts"]  # type: ignore[index]
    assert counts == pd.Series(predictions).value_counts().to_dict()
    # Summarised, not copied: a sample of 1,000 rows in the prediction log, each as scored.
    assert batch.rows_logged == store.count_predictions(batch_id="spark-200k") == 1000
    logged = store.query_predictions(batch_id="spark-200k", limit=1000)
    by_id = rows.set_index("customer_id")
    for record in logged[:50]:
        assert record.model_version == "1" and record.probabilities is not None
        customer = by_id.index[by_id["tenure"] == record.input_row["tenure"]][0]
        assert record.prediction == output.loc[customer, "prediction"]
        # The id column is the logged row's prediction key: outcomes can name it.
        assert record.prediction_key == customer
    assert seen and seen[-1][0] == seen[-1][1] > 0  # the bar ends full


def test_a_csv_folder_scored_row_by_row_into_the_log_and_shown_in_the_cli(
    spark: Any, store: Store, store_uri: str, registry: Registry, tmp_path: Path,
    cli_settings: None,
) -> None:  # fmt: skip
    rows = make_rows(600, seed=3).drop(columns=["label", "customer_id"])
    (tmp_path / "csv").mkdir()
    rows.to_csv(tmp_path / "csv" / "part-0.csv", index=False)

    run(
        spark, store, store_uri, registry,
        input_path=str(tmp_path / "csv"),
        output_path=str(tmp_path / "out"),
        log_predictions=True,
        batch_id="spark-every-row",
    )  # fmt: skip

    # No id column: the output is keyed by a row index, unique and in input order.
    output = pd.read_parquet(tmp_path / "out").sort_values("row_index")
    assert list(output.columns) == ["row_index", "prediction", "model_name", "model_version"]
    assert output["row_index"].is_unique
    predictions, _ = in_process(registry.model, rows)
    np.testing.assert_array_equal(output["prediction"].to_numpy(), predictions)
    # Every row is in the prediction log, keyed as in the output, with its inputs.
    batch = store.get_batch("spark-every-row")
    assert batch.rows_logged == store.count_predictions(batch_id="spark-every-row") == 600
    logged = sorted(
        store.query_predictions(batch_id="spark-every-row", limit=600), key=lambda r: r.row_index
    )
    assert [record.row_index for record in logged] == output["row_index"].tolist()
    assert [record.prediction for record in logged] == output["prediction"].tolist()
    assert [record.input_row["tenure"] for record in logged] == rows["tenure"].tolist()

    listed = CliRunner().invoke(app, ["batches"])
    status = CliRunner().invoke(app, ["batch", "status", "spark-every-row"])
    assert listed.exit_code == 0, listed.output
    assert "spark-every-row" in listed.output and "spark" in listed.output
    assert f"{MODEL_NAME} v1" in listed.output and "rows 600/600" in listed.output
    assert status.exit_code == 0, status.output
    assert "succeeded" in status.output and "engine: spark" in status.output
    assert f"output: {tmp_path / 'out'}" in status.output and "rows logged: 600" in status.output


def test_a_column_of_the_wrong_type_is_named_and_the_batch_fails_cleanly(
    spark: Any, store: Store, store_uri: str, registry: Registry, tmp_path: Path
) -> None:
    rows = make_rows(20, seed=5).drop(columns="label")
    rows["tenure"] = rows["tenure"].map(lambda value: f"{value:.1f} months")
    rows.to_parquet(tmp_path / "rows.parquet")

    with pytest.raises(SparkBatchError) as raised:
        run(
            spark, store, store_uri, registry,
            input_path=str(tmp_path / "rows.parquet"),
            output_path=str(tmp_path / "out"),
            batch_id="spark-bad-type",
        )  # fmt: skip

    assert "tenure (expected double, got string)" in str(raised.value)
    batch = store.get_batch("spark-bad-type")
    assert batch.status is BatchStatus.FAILED and "tenure" in (batch.error or "")
    assert not (tmp_path / "out").exists()


def test_a_regressors_predictions_are_summarised_by_quantiles(spark: Any) -> None:
    model = ModelForSpark("price", "3", "/unused", (), ProblemType.REGRESSION)
    output = spark.createDataFrame(pd.DataFrame({"prediction": np.arange(1.0, 101.0)}))

    summary = prediction_summary(output, model)

    assert summary["rows"] == 100 and summary["mean"] == 50.5
    assert (summary["min"], summary["max"]) == (1.0, 100.0)
    assert (summary["p25"], summary["p50"], summary["p75"]) == (25.0, 50.0, 75.0)


def test_every_row_logged_carries_the_id_column_as_its_prediction_key() -> None:
    """What each Spark Python worker logs with --id-column (the function runs without Spark)."""
    frame = pd.DataFrame(
        {
            "row_index": [10, 11, 12],
            "tenure": [1.0, 2.0, 3.0],
            "customer_id": ["c1", None, "c3"],
            "prediction": ["stay", "churn", "stay"],
        }
    )
    [chunk] = logged_chunks(frame, "b", MODEL_NAME, "1", (), ["tenure"], "customer_id")
    assert chunk.prediction_keys == ("c1", None, "c3")
    assert [record.prediction_key for record in chunk.records()] == ["c1", None, "c3"]
