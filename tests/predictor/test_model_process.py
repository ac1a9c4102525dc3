"""The model process (`mlp predictor --model-process`), driven directly: a real spawned child
predicting a real scikit-learn pipeline (`threshold_model`, which raises on x == 666)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from predictor_harness import wait_until
from predictor_model_behaviours import MARKER_FAIL
from predictor_registry import threshold_model

from mlplatform.common.input_schema import (
    CheckedRows,
    ColumnKind,
    Columns,
    ColumnSpec,
    DoublesRows,
    ProblemType,
)
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.model_call import predict_together
from mlplatform.predictor.model_process import ModelProcess, ModelProcessError
from mlplatform.predictor.settings import PredictorSettings


def threshold(version: str = "1") -> LoadedModel:
    return LoadedModel(
        name="threshold",
        version=version,
        alias="production",
        estimator=threshold_model(),
        input_schema=(ColumnSpec("x", ColumnKind.DOUBLE),),
        problem_type=ProblemType.CLASSIFICATION,
        classes=("high", "low"),
    )


def rows(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"x": np.array(values, dtype=np.float64)})


@pytest.fixture(scope="module")
def model_process() -> Iterator[ModelProcess]:
    process = ModelProcess()
    process.start()
    yield process
    process.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("as_matrix", [False, True], ids=["frames", "checked matrices"])
def test_the_child_predicts_exactly_what_the_model_does_in_process(
    model_process: ModelProcess, as_matrix: bool
) -> None:
    """Parts travel as DataFrames or, as the predictor's check hands them on, as DoublesRows."""
    model = threshold()
    values = [(10.0, 70.0), (55.0,), (1.0, 2.0, 3.0)]
    parts: list[CheckedRows] = [rows(*part) for part in values]
    if as_matrix:
        parts = [model.check_rows(Columns({"x": np.array(part)}, len(part))) for part in values]
        assert all(isinstance(part, DoublesRows) for part in parts)
    flags = [True, False, True]
    outputs, calls = asyncio.run(model_process.predict_together(model, parts, flags, 4))
    expected = predict_together(model, parts, flags, 4)
    assert len(outputs) == 3
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(got.predictions, want.predictions)
        if want.probabilities is None:
            assert got.probabilities is None
        else:
            np.testing.assert_allclose(got.probabilities, want.probabilities)
    assert [rows for rows, _ in calls] == [4, 2]  # 6 rows in calls of at most 4
    assert all(seconds > 0 for _, seconds in calls)


def test_a_model_that_raises_fails_the_call_and_the_child_keeps_serving(
    model_process: ModelProcess,
) -> None:
    model = threshold()
    pid = model_process.pid

    async def scenario() -> list[str]:
        with pytest.raises(ModelProcessError, match="refuses the marker value") as caught:
            await model_process.predict_together(model, [rows(MARKER_FAIL)], [False], 8)
        assert "Traceback" in str(caught.value)  # for the predictor's log, never the caller
        outputs, _ = await model_process.predict_together(model, [rows(80.0)], [False], 8)
        return outputs[0].predictions.tolist()

    assert asyncio.run(scenario()) == ["high"]
    assert model_process.pid == pid


def test_a_killed_child_fails_the_call_in_progress_and_the_next_call_starts_a_new_one() -> None:
    process = ModelProcess()
    first_pid = process.start()
    model = threshold()

    async def scenario() -> tuple[BaseException | None, list[str]]:
        await process.load(model)
        sleeping = asyncio.ensure_future(
            process.predict_together(model, [rows(-5.0)], [False], 8)  # sleeps 5 s
        )
        await asyncio.sleep(0.5)
        os.kill(first_pid, signal.SIGKILL)
        failure = None
        try:
            await asyncio.wait_for(sleeping, 30)
        except ModelProcessError as error:
            failure = error
        outputs, _ = await process.predict_together(model, [rows(20.0)], [False], 8)
        return failure, outputs[0].predictions.tolist()

    try:
        failure, predictions = asyncio.run(scenario())
    finally:
        process.close()
    assert isinstance(failure, ModelProcessError)
    assert "died" in str(failure)
    assert predictions == ["low"]
    assert process.pid is None  # closed
    assert not alive(first_pid)


def test_close_stops_the_child() -> None:
    process = ModelProcess()
    pid = process.start()
    asyncio.run(process.load(threshold()))
    process.close()
    wait_until(lambda: not alive(pid), timeout=10, what="the model process to exit")


# A predictor process that starts a model process, says its pid, then waits to be killed.
PARENT = """
import sys, time
from mlplatform.predictor.model_process import ModelProcess

process = ModelProcess()
print(process.start(), flush=True)
time.sleep(120)
"""


def test_the_child_exits_when_the_predictor_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not alive(child), timeout=20, what="the orphaned model process to exit")
    finally:
        parent.kill()
        parent.wait(10)


def test_the_model_runs_in_one_place_only() -> None:
    with pytest.raises(ValueError, match="choose one place for the model"):
        PredictorSettings(model="m", model_thread=True, model_process=True)
