"""The scored DataFrame: input rows in, one row out per input row with its id, prediction,
class probabilities when asked for, and the model's name and version.

Predictions come from `mlflow.pyfunc.spark_udf` with `env_manager="local"`: the executors'
Python must hold the model's requirements (the model's requirements.txt, all published
packages); it need not hold mlplatform, because whatever of ours a pipeline uses travels
pickled by value inside the model. The pyfunc flavor has no `predict_proba`, so
probabilities come from a second pandas UDF that loads the same model copy through MLflow's
`SparkModelCache` (once per Python worker) and asks the scikit-learn pipeline underneath.
Its function is defined inside `probability_udf`, so Spark pickles it by value: the
executors do not import this module either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlplatform.common.input_schema import ColumnKind, ColumnSpec, ProblemType

ROW_INDEX_COLUMN = "row_index"
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
MODEL_NAME_COLUMN = "model_name"
MODEL_VERSION_COLUMN = "model_version"
_SPARK_TYPES = {
    ColumnKind.DOUBLE: "double",
    ColumnKind.INT64: "bigint",
    ColumnKind.STRING: "string",
    ColumnKind.BOOL: "boolean",
}


@dataclass(frozen=True)
class ModelForSpark:
    """A registered model version downloaded for a Spark job: where its copy is and what the
    job needs to know about it."""

    name: str
    version: str
    local_path: str
    input_schema: tuple[ColumnSpec, ...]
    problem_type: ProblemType
    #: Class labels as the model predicts them, in its probability-column order.
    classes: tuple[Any, ...] = ()

    @property
    def prediction_type(self) -> str:
        """The Spark type of a prediction: a regressor's number, or the type every class label
        shares (text when they differ). Stated, because a signature inferred from text labels
        holds an object tensor, which spark_udf cannot map to a column type."""
        if self.problem_type is ProblemType.REGRESSION:
            return "double"
        if all(isinstance(label, bool) for label in self.classes):
            return "boolean"
        if all(isinstance(label, int) and not isinstance(label, bool) for label in self.classes):
            return "long"
        if all(isinstance(label, int | float) for label in self.classes):
            return "double"
        return "string"

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(label) for label in self.classes)

    @property
    def probability_columns(self) -> list[str]:
        return [f"{PROBABILITY_PREFIX}{name}" for name in self.class_names]


def spark_kind(data_type: Any) -> ColumnKind | None:
    """The Frame kind a Spark column type carries, None for one no Frame carries."""
    from pyspark.sql import types

    if isinstance(data_type, types.DoubleType | types.FloatType | types.DecimalType):
        return ColumnKind.DOUBLE
    if isinstance(data_type, types.LongType | types.IntegerType | types.ShortType | types.ByteType):
        return ColumnKind.INT64
    if isinstance(data_type, types.StringType):
        return ColumnKind.STRING
    if isinstance(data_type, types.BooleanType):
        return ColumnKind.BOOL
    return None


def scored_frame(spark: Any, rows: Any, model: ModelForSpark, with_probabilities: bool) -> Any:
    """`rows` (with their ROW_INDEX_COLUMN) and, after their own columns, the prediction, the
    class probabilities when asked for (classifiers only), and the model's name and version.
    Lazy: nothing runs until the result is written or read."""
    import mlflow.pyfunc
    from pyspark.sql import functions

    # The model's types exactly, as the in-process path checks them (an integer column of a
    # double feature becomes doubles here rather than inside every Python worker).
    features = functions.struct(
        *[
            functions.col(f"`{spec.name}`").cast(_SPARK_TYPES[spec.kind]).alias(spec.name)
            for spec in model.input_schema
        ]
    )
    predict = mlflow.pyfunc.spark_udf(
        spark, model.local_path, result_type=model.prediction_type, env_manager="local"
    )
    columns = [functions.col("*"), predict(features).alias(PREDICTION_COLUMN)]
    if with_probabilities and model.problem_type is ProblemType.CLASSIFICATION:
        matrix = probability_udf(spark, model.local_path)(features)
        columns.extend(
            matrix.getItem(position).alias(name)
            for position, name in enumerate(model.probability_columns)
        )
    columns.extend(
        [
            functions.lit(model.name).alias(MODEL_NAME_COLUMN),
            functions.lit(model.version).alias(MODEL_VERSION_COLUMN),
        ]
    )
    return rows.select(*columns)


def output_columns(
    model: ModelForSpark, id_column: str | None, with_probabilities: bool
) -> list[str]:
    """What the output keeps of a scored frame: the id column (or the row index), the
    prediction, any probabilities, the model's name and version; quoted for Spark."""
    kept = [id_column or ROW_INDEX_COLUMN, PREDICTION_COLUMN]
    if with_probabilities and model.problem_type is ProblemType.CLASSIFICATION:
        kept += model.probability_columns
    kept += [MODEL_NAME_COLUMN, MODEL_VERSION_COLUMN]
    return [f"`{name}`" for name in dict.fromkeys(kept)]


def probability_udf(spark: Any, local_model_path: str) -> Any:
    """A pandas UDF: a struct of the model's input columns in, the class probabilities out
    (an array in the model's class order)."""
    from mlflow.pyfunc.spark_model_cache import SparkModelCache
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, DoubleType

    archive_path = SparkModelCache.add_local_model(spark, local_model_path)

    @pandas_udf(ArrayType(DoubleType()))  # type: ignore[call-overload]
    def class_probabilities(features: pd.DataFrame) -> pd.Series:
        import numpy as np
        from mlflow.pyfunc.spark_model_cache import SparkModelCache

        loaded, _ = SparkModelCache.get_or_load(archive_path)
        matrix = np.asarray(loaded.get_raw_model().predict_proba(features), dtype=np.float64)
        return pd.Series(list(matrix))

    return class_probabilities
