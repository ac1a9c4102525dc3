"""One model call for a batch of checked requests: stack their rows, predict, split the output.

The batcher calls it on the event loop's thread. "The model" is any object with
`predict(frame, with_probabilities) -> ModelOutput`, as `LoadedModel` has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mlplatform.common.input_schema import CheckedRows, DoublesRows, as_frame
from mlplatform.common.model_loading import LoadedModel, ModelOutput, warm_up_rows

logger = logging.getLogger(__name__)

#: Hears about each model call: its rows and its seconds.
ModelCallListener = Callable[[int, float], None]


def concat_rows(parts: Sequence[CheckedRows]) -> CheckedRows:
    """Stack checked rows (same columns, same order) row-wise into one model call's rows.

    All-double rows (the usual input) stack into one matrix, which a compiled model takes as it
    is and scikit-learn as one DataFrame per batch (`LoadedModel.predict`); other frames stack
    column by column (`pd.concat` costs more than the model on small batches).
    """
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, DoublesRows) and all(
        isinstance(part, DoublesRows) and part.names == first.names for part in parts
    ):
        return DoublesRows(np.concatenate([part.matrix for part in parts]), first.names)
    frames = [as_frame(part) for part in parts]
    columns = {
        name: np.concatenate([frame[name].to_numpy() for frame in frames])
        for name in frames[0].columns
    }
    index = pd.RangeIndex(sum(len(frame) for frame in frames))
    return pd.DataFrame(columns, index=index, copy=False)


def split_output(
    output: ModelOutput, row_counts: Sequence[int], with_probabilities: Sequence[bool]
) -> list[ModelOutput]:
    """Cut one model call's output back into each request's rows and requested outputs."""
    total = sum(row_counts)
    if len(output.predictions) != total:
        raise RuntimeError(
            f"the model returned {len(output.predictions)} predictions for {total} rows"
        )
    results = []
    start = 0
    for rows, wants_probabilities in zip(row_counts, with_probabilities, strict=True):
        stop = start + rows
        probabilities = None
        if wants_probabilities and output.probabilities is not None:
            probabilities = output.probabilities[start:stop]
        results.append(ModelOutput(output.predictions[start:stop], probabilities))
        start = stop
    return results


def predict_together(
    model: LoadedModel,
    parts: Sequence[CheckedRows],
    with_probabilities: Sequence[bool],
    max_batch_size: int,
    on_model_call: ModelCallListener | None = None,
) -> list[ModelOutput]:
    """One model call for every part (chunked by `max_batch_size`), split back per part."""
    features = concat_rows(parts)
    wants_probabilities = any(with_probabilities)
    outputs = []
    for start in range(0, len(features), max_batch_size):
        chunk = (
            features
            if len(features) <= max_batch_size
            else _rows_between(features, start, start + max_batch_size)
        )
        started = time.perf_counter()
        outputs.append(model.predict(chunk, wants_probabilities))
        if on_model_call is not None:
            on_model_call(len(chunk), time.perf_counter() - started)
    if len(outputs) == 1:
        output = outputs[0]
    else:
        probabilities = None
        if wants_probabilities and outputs[0].probabilities is not None:
            probabilities = np.concatenate([chunk.probabilities for chunk in outputs])
        output = ModelOutput(
            np.concatenate([chunk.predictions for chunk in outputs]), probabilities
        )
    return split_output(output, [len(part) for part in parts], with_probabilities)


def _rows_between(rows: CheckedRows, start: int, stop: int) -> CheckedRows:
    if isinstance(rows, DoublesRows):
        return DoublesRows(rows.matrix[start:stop], rows.names)
    return rows.iloc[start:stop]


def warm_up(model: LoadedModel) -> None:
    """Predict one row so the first real request does not pay for lazy initialisation.

    Raises when the model fails on its own input example (it would fail real requests too);
    a failure on a synthetic row (no example was logged) is only logged.
    """
    rows = warm_up_rows(model)
    try:
        model.predict(model.check(rows), with_probabilities=True)
    except Exception:
        if model.input_example is not None:
            raise
        logger.warning(
            "warm-up of %s version %s on a synthetic row failed; serving it anyway",
            model.name,
            model.version,
            exc_info=True,
        )
