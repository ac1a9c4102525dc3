"""The progress display on a terminal (rich bars) and piped (plain lines), fed the events a
trainer publishes. The event stream itself is tested against a real trainer in
tests/trainer/test_training_record.py; this checks the two renderings of it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mlplatform.cli.live_progress import EventDisplay
from mlplatform.common.store import RunStatus
from mlplatform.trainer.progress import pipeline_event
from mlplatform.v1 import messages_pb2


def _events() -> list[messages_pb2.PipelineEvent]:
    kinds = messages_pb2
    events = [
        pipeline_event("p", RunStatus.RUNNING, "train_model", "train_model started", 0.1,
                       kind=kinds.PIPELINE_EVENT_KIND_STEP_STARTED),
        pipeline_event("p", RunStatus.RUNNING, "train_model", "comparing", 0.2,
                       kind=kinds.PIPELINE_EVENT_KIND_PHASE, phase="comparing"),
    ]  # fmt: skip
    for index, (stage, total) in enumerate([("compare", 2), ("compare", 2), ("tune", 0)]):
        model = messages_pb2.ModelProgress(
            stage=stage, model_name="Logistic Regression", estimator_id="lr",
            index=index % 2 + 1, total=total, metric="F1", score=0.5 + index / 10,
        )  # fmt: skip
        events.append(
            pipeline_event("p", RunStatus.RUNNING, "train_model", f"{stage}: model", 1.0 + index,
                           kind=kinds.PIPELINE_EVENT_KIND_MODEL_EVALUATED, model=model)
        )  # fmt: skip
    events.append(pipeline_event("p", RunStatus.SUCCEEDED, "", "succeeded; best model lr", 9.0))
    return events


def test_piped_display_prints_one_plain_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    with EventDisplay(live=False) as display:
        for event in _events():
            display.show(event)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(_events())
    assert lines[0] == "[     0.1s] running   train_model started"
    assert lines[-1] == "[     9.0s] succeeded succeeded; best model lr"


def test_terminal_display_draws_bars_and_keeps_every_line() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with EventDisplay(console, live=True) as display:
        for event in _events():
            display.show(event)
    output = screen.getvalue()
    assert "train_model started" in output and "succeeded; best model lr" in output
    assert "\x1b[" in output  # drawn for a terminal
