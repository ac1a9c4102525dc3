"""A chunk of batch-inferer predictions held as columns, for `Store.append_batch_predictions`.

The batch inferer predicts thousands of rows at a time. A pydantic `PredictionRecord` per row
costs about 45 µs to build, more than a fast model spends predicting the row, so the inferer
hands the store the chunk as it has it (the input DataFrame, the prediction array, the
probability matrix) and the backends write rows straight from the columns. Everything a record
would check is checked here once per chunk, and the rows read back exactly as the per-row path
stores them: `records()` is that per-row form, and the contract tests compare the two.

numpy and pandas are imported where used: the store package is also loaded by commands that
never see a DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlplatform.common.store.base import InvalidRecordError
from mlplatform.common.store.json_values import without_non_finite
from mlplatform.common.store.records import (
    PredictionRecord,
    PredictionSource,
    to_store_time,
    utc_now,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: numpy dtype kinds whose `tolist()` already gives the plain Python values the per-row path
#: stores (float, signed and unsigned integer, bool); other columns go through pandas.
_PLAIN_KINDS = frozenset("fiub")


@dataclass(frozen=True, eq=False)
class BatchPredictions:
    """Predictions for consecutive rows of one batch, as columns.

    Row `i` of `inputs` is the batch's row `row_offset + i`; `predictions[i]` is its prediction
    and `probabilities[i]` (when asked for) its class probabilities, column `j` being the class
    `class_names[j]`. Every row shares `latency_ms` (the chunk's model time per row) and
    `created_at`. `prediction_keys[i]`, when the rows came with a key column, is row `i`'s
    prediction key (None for a row without one). Invalid values raise InvalidRecordError naming
    the field.
    """

    model_name: str
    model_version: str
    batch_id: str
    row_offset: int
    inputs: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    latency_ms: float | None = None
    created_at: datetime = field(default_factory=utc_now)
    prediction_keys: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        import numpy as np
        import pandas as pd

        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if isinstance(self.model_version, int) and not isinstance(self.model_version, bool):
            fix("model_version", str(self.model_version))
        for name in ("model_name", "model_version", "batch_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidRecordError(name, f"must be non-empty text; got {value!r}")
        if not isinstance(self.row_offset, int) or isinstance(self.row_offset, bool):
            raise InvalidRecordError("row_offset", f"must be an integer; got {self.row_offset!r}")
        if self.row_offset < 0:
            raise InvalidRecordError("row_offset", f"must be >= 0; got {self.row_offset}")
        if not isinstance(self.inputs, pd.DataFrame):
            raise InvalidRecordError("inputs", f"must be a DataFrame; got {type(self.inputs)}")
        names = list(self.inputs.columns)
        if not all(isinstance(name, str) for name in names):
            raise InvalidRecordError("inputs", f"column names must be text; got {names!r}")
        if len(set(names)) != len(names):
            raise InvalidRecordError("inputs", f"column names must be unique; got {names!r}")
        row_count = len(self.inputs)
        predictions = np.asarray(self.predictions)
        if predictions.ndim == 0 or len(predictions) != row_count:
            raise InvalidRecordError(
                "predictions",
                f"must hold one value per input row ({row_count}); got shape {predictions.shape}",
            )
        fix("predictions", predictions)
        self._check_probabilities(row_count)
        if self.prediction_keys is not None:
            keys = tuple(self.prediction_keys)
            if len(keys) != row_count or not all(
                key is None or (isinstance(key, str) and key) for key in keys
            ):
                raise InvalidRecordError(
                    "prediction_keys",
                    f"must hold one non-empty text or None per input row ({row_count})",
                )
            fix("prediction_keys", keys)
        if self.latency_ms is not None and not (
            isinstance(self.latency_ms, int | float)
            and math.isfinite(self.latency_ms)
            and self.latency_ms >= 0
        ):
            raise InvalidRecordError(
                "latency_ms", f"must be a finite number >= 0; got {self.latency_ms!r}"
            )
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None:
            raise InvalidRecordError(
                "created_at", f"must be a timezone-aware datetime; got {self.created_at!r}"
            )
        fix("created_at", to_store_time(self.created_at))

    def _check_probabilities(self, row_count: int) -> None:
        import numpy as np

        class_names = tuple(self.class_names)
        if not all(isinstance(name, str) for name in class_names):
            raise InvalidRecordError("class_names", f"must be text; got {class_names!r}")
        object.__setattr__(self, "class_names", class_names)
        if self.probabilities is None:
            return
        try:
            probabilities = np.asarray(self.probabilities, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidRecordError("probabilities", f"must be numbers: {error}") from None
        expected = (row_count, len(class_names))
        if probabilities.shape != expected or not class_names:
            raise InvalidRecordError(
                "probabilities",
                f"must have one row per input row and one column per class name, {expected}; "
                f"got {probabilities.shape}",
            )
        if not np.isfinite(probabilities).all():
            raise InvalidRecordError("probabilities", "must be finite; found NaN or infinity")
        object.__setattr__(self, "probabilities", probabilities)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def row_indexes(self) -> range:
        """The batch row index of every row, in order."""
        return range(self.row_offset, self.row_offset + len(self))

    def input_columns(self, finite_only: bool = False) -> dict[str, list[Any]]:
        """The input values column by column, as the per-row path stores them: plain Python
        values, missing values (NaN, NA, NaT, None) as None; with `finite_only`, infinities
        become None too (MongoDB keeps them; JSON text turns them into null by itself)."""
        import numpy as np

        columns: dict[str, list[Any]] = {}
        others: list[str] = []
        for name, series in self.inputs.items():
            dtype = series.dtype
            if not (isinstance(dtype, np.dtype) and dtype.kind in _PLAIN_KINDS):
                others.append(name)
                continue
            values = series.to_numpy()
            if dtype.kind == "f":
                gaps = ~np.isfinite(values) if finite_only else np.isnan(values)
                if gaps.any():
                    boxed = values.astype(object)
                    boxed[gaps] = None
                    columns[name] = boxed.tolist()
                    continue
            columns[name] = values.tolist()
        if others:
            # Extension, object, string and datetime columns: exactly the per-row conversion
            # (pandas boxes each value as to_dict("records") does).
            subset = self.inputs[others]
            converted = subset.astype(object).where(subset.notna(), None).to_dict("list")
            if finite_only:  # an object column may hold a float infinity, or a list with one
                converted = {
                    name: [without_non_finite(value) for value in values]
                    for name, values in converted.items()
                }
            columns.update(converted)
        return {name: columns[name] for name in self.inputs.columns}

    def input_rows(self, finite_only: bool = False) -> list[dict[str, Any]]:
        """One dict per row, keys in column order (see `input_columns`)."""
        columns = self.input_columns(finite_only)
        if not columns:
            return [{} for _ in range(len(self))]
        names = list(columns)
        return [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]

    def prediction_values(self) -> list[Any]:
        """The predictions as plain Python values (lists for multi-output rows)."""
        import numpy as np

        values = self.predictions.tolist()
        if self.predictions.dtype.kind == "O":  # labels kept as objects may be numpy scalars
            values = [value.item() if isinstance(value, np.generic) else value for value in values]
        return values

    def probability_rows(self) -> list[dict[str, float]] | None:
        """Per row, {class name: probability}; None when no probabilities were asked for."""
        if self.probabilities is None:
            return None
        names = self.class_names
        return [dict(zip(names, row, strict=True)) for row in self.probabilities.tolist()]

    def records(self) -> list[PredictionRecord]:
        """The same rows as one PredictionRecord each: what `append_predictions` takes."""
        probability_rows = self.probability_rows()
        return [
            PredictionRecord(
                model_name=self.model_name,
                model_version=self.model_version,
                input_row=input_row,
                prediction=prediction,
                probabilities=None if probability_rows is None else probability_rows[position],
                source=PredictionSource.BATCH,
                batch_id=self.batch_id,
                row_index=self.row_offset + position,
                latency_ms=self.latency_ms,
                created_at=self.created_at,
                prediction_key=None
                if self.prediction_keys is None
                else self.prediction_keys[position],
            )
            for position, (input_row, prediction) in enumerate(
                zip(self.input_rows(), self.prediction_values(), strict=True)
            )
        ]
