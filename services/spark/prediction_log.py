"""A Spark batch's rows in the prediction log: every row, written by the executors, or a
sample, written by the driver; and a summary of the predictions for the batch record.

Every row: each Python worker opens the store itself and appends its Arrow batches as
`BatchPredictions` (columns, no record per row), so no row travels to the driver. The
executors then need mlplatform installed and the store reachable (a MongoDB URI on a cluster;
a SQLite file only where every executor shares the driver's disk, as in local mode). Rows are
keyed by (batch id, row index), so a retried task writes none twice. With `--id-column`, each
logged row also carries that column's value as its prediction key, so outcomes can name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.common.prediction_keys import key_text, key_texts
from mlplatform.common.store import BatchPredictions, PredictionRecord, PredictionSource, Store
from mlplatform.spark.scoring import PREDICTION_COLUMN, ROW_INDEX_COLUMN, ModelForSpark

LOGGED_COLUMN = "rows_logged"


def log_every_row(
    scored: Any,
    store_uri: str,
    batch_id: str,
    model: ModelForSpark,
    input_columns: list[str],
    key_column: str | None = None,
) -> int:
    """Writes every row of `scored` (inputs and outputs, and `key_column` as each row's
    prediction key) from the executors; returns how many rows were written."""
    from pyspark.sql import functions

    write = partial(
        _write_partition,
        store_uri=store_uri,
        batch_id=batch_id,
        model_name=model.name,
        model_version=model.version,
        class_names=model.class_names,
        input_columns=input_columns,
        key_column=key_column,
    )
    counts = scored.mapInPandas(write, schema=f"{LOGGED_COLUMN} long")
    total = counts.agg(functions.sum(LOGGED_COLUMN)).first()[0]
    return int(total or 0)


def _write_partition(
    batches: Iterator[pd.DataFrame],
    *,
    store_uri: str,
    batch_id: str,
    model_name: str,
    model_version: str,
    class_names: tuple[str, ...],
    input_columns: list[str],
    key_column: str | None,
) -> Iterator[pd.DataFrame]:
    from mlplatform.common.store import open_store

    with open_store(store_uri) as store:
        for frame in batches:
            written = sum(
                store.append_batch_predictions(chunk)
                for chunk in logged_chunks(
                    frame,
                    batch_id,
                    model_name,
                    model_version,
                    class_names,
                    input_columns,
                    key_column,
                )
            )
            yield pd.DataFrame({LOGGED_COLUMN: [written]})


def logged_chunks(
    frame: pd.DataFrame,
    batch_id: str,
    model_name: str,
    model_version: str,
    class_names: tuple[str, ...],
    input_columns: list[str],
    key_column: str | None = None,
) -> Iterator[BatchPredictions]:
    """`frame` cut where its row indexes stop being consecutive (a chunk's rows are
    `row_offset + i`); within one Spark partition they are consecutive throughout."""
    if frame.empty:
        return
    indexes = frame[ROW_INDEX_COLUMN].to_numpy()
    breaks = np.flatnonzero(np.diff(indexes) != 1) + 1
    probability_columns = [f"probability_{name}" for name in class_names]
    has_probabilities = bool(class_names) and all(c in frame.columns for c in probability_columns)
    for start, stop in zip([0, *breaks], [*breaks, len(frame)], strict=True):
        part = frame.iloc[start:stop]
        yield BatchPredictions(
            model_name=model_name,
            model_version=model_version,
            batch_id=batch_id,
            row_offset=int(indexes[start]),
            inputs=part[input_columns].reset_index(drop=True),
            predictions=part[PREDICTION_COLUMN].to_numpy(),
            probabilities=part[probability_columns].to_numpy() if has_probabilities else None,
            class_names=class_names if has_probabilities else (),
            prediction_keys=None if key_column is None else tuple(key_texts(part[key_column])),
        )


def log_sample(
    store: Store,
    sample: pd.DataFrame,
    batch_id: str,
    model: ModelForSpark,
    input_columns: list[str],
    key_column: str | None = None,
) -> int:
    """Writes the sampled rows (already on the driver) one record each, `key_column` as each
    row's prediction key; returns how many."""
    probability_columns = model.probability_columns
    has_probabilities = bool(probability_columns) and all(
        name in sample.columns for name in probability_columns
    )
    inputs = sample[input_columns].astype(object).where(sample[input_columns].notna(), None)
    records = [
        PredictionRecord(
            model_name=model.name,
            model_version=model.version,
            input_row=input_row,
            prediction=_plain(prediction),
            probabilities=(
                dict(zip(model.class_names, (float(p) for p in probabilities), strict=True))
                if has_probabilities
                else None
            ),
            source=PredictionSource.BATCH,
            batch_id=batch_id,
            row_index=int(row_index),
            prediction_key=None if key_column is None else key_text(key),
        )
        for input_row, prediction, probabilities, row_index, key in zip(
            inputs.to_dict("records"),
            sample[PREDICTION_COLUMN].tolist(),
            sample[probability_columns].to_numpy() if has_probabilities else [None] * len(sample),
            sample[ROW_INDEX_COLUMN].tolist(),
            sample[key_column].tolist() if key_column is not None else [None] * len(sample),
            strict=True,
        )
    ]
    return store.append_predictions(records)


def prediction_summary(output: Any, model: ModelForSpark) -> dict[str, Any]:
    """`rows`, and counts per predicted class or a regressor's mean, min, quartiles and max,
    computed by Spark over the written output (one pass; the row count comes with it)."""
    from pyspark.sql import functions

    if model.classes:
        counts = {
            str(row[PREDICTION_COLUMN]): int(row["count"])
            for row in output.groupBy(PREDICTION_COLUMN).count().collect()
        }
        return {"rows": sum(counts.values()), "counts": counts}
    column = functions.col(PREDICTION_COLUMN)
    stats = output.agg(
        functions.count(functions.lit(1)).alias("rows"),
        functions.mean(column).alias("mean"),
        functions.min(column).alias("min"),
        functions.percentile_approx(column, [0.25, 0.5, 0.75], 1000).alias("quartiles"),
        functions.max(column).alias("max"),
    ).first()
    summary = {name: _plain(stats[name]) for name in ("rows", "mean", "min", "max")}
    summary.update(zip(("p25", "p50", "p75"), stats["quartiles"] or (), strict=False))
    return summary


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
