"""Errors that list names of the data (columns, zip members) stay short and bounded."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.summaries import summarise_names
from mlplatform.trainer.steps import PipelineContext, StepFailure
from mlplatform.trainer.steps.validate_data import check_training_data
from tests.trainer.conftest import classification_pipeline


def test_summarise_names_caps_count_and_width() -> None:
    assert summarise_names([]) == ""
    assert summarise_names(["a", "b"]) == "a, b"
    names = [f"c{index}" for index in range(25)]
    assert summarise_names(names) == ", ".join(names[:20]) + " and 5 more"
    assert summarise_names(names, limit=2) == "c0, c1 and 23 more"
    long = "y" * 100
    assert summarise_names([long]) == "y" * 63 + "…"
    assert summarise_names([long], width=10) == "y" * 9 + "…"
    assert summarise_names(["z" * 64]) == "z" * 64
    assert summarise_names(range(3)) == "0, 1, 2"


class _NoTracking:
    """A context's MLflow side; check_training_data never touches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"tracking.{name} used")


def test_missing_target_lists_at_most_20_columns_each_cut(tmp_path: Any) -> None:
    columns = {f"{'col' * 30}{index}": [1.0, 2.0] for index in range(1000)}
    context = PipelineContext(
        pipeline_id="p",
        definition=parse_pipeline(classification_pipeline(tmp_path / "d.csv")),
        tracking=_NoTracking(),  # type: ignore[arg-type]
        data=pd.DataFrame(columns),
    )
    with pytest.raises(StepFailure) as failure:
        check_training_data(context, min_rows=1, fold=2)
    message = str(failure.value)
    assert message.startswith("target column 'Class' is not in the data; columns: ")
    assert message.endswith(" and 980 more")
    assert message.count("…") == 20
    assert len(message) < 20 * 66 + 100
