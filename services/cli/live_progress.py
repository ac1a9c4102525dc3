"""How every long CLI task shows progress: rich's progress bars on a terminal, plain lines
when the output is piped or redirected (logs and scripts get one line per change, no escape
codes). `mlp submit --wait`, `mlp runs watch` and `mlp batch submit --wait` all use it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mlplatform.v1 import messages_pb2

STATUS_WORDS = {
    messages_pb2.RUN_STATUS_QUEUED: "queued",
    messages_pb2.RUN_STATUS_RUNNING: "running",
    messages_pb2.RUN_STATUS_SUCCEEDED: "succeeded",
    messages_pb2.RUN_STATUS_FAILED: "failed",
}
FINAL_STATUSES = (messages_pb2.RUN_STATUS_SUCCEEDED, messages_pb2.RUN_STATUS_FAILED)


def event_line(event: messages_pb2.PipelineEvent) -> str:
    """One event as one line of text."""
    status = STATUS_WORDS.get(event.status, "?")
    return f"[{event.elapsed_seconds:8.1f}s] {status:<9} {event.message}"


def is_terminal(console: Console | None = None) -> bool:
    return (console or Console()).is_terminal and sys.stdout.isatty()


def new_progress(console: Console | None = None) -> Progress:
    """A progress display with a spinner, a bar, done/total and the elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class EventDisplay:
    """Shows a run's `PipelineEvent`s as they come.

    On a terminal: each event as a line above two bars, the current step and the models of
    the current stage (model N of M). Piped: the lines alone.
    """

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console()
        self.live = is_terminal(self.console) if live is None else live
        self._progress: Progress | None = None
        self._step_task: TaskID | None = None
        self._model_task: TaskID | None = None
        self._model_stage = ""

    def __enter__(self) -> Self:
        if self.live:
            self._progress = new_progress(self.console)
            self._progress.start()
            self._step_task = self._progress.add_task("waiting for a trainer", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def show(self, event: messages_pb2.PipelineEvent) -> None:
        line = event_line(event)
        if self._progress is None:
            print(line, flush=True)
            return
        self._progress.console.print(Text(line))
        self._update_bars(event)

    def _update_bars(self, event: messages_pb2.PipelineEvent) -> None:
        progress = self._progress
        assert progress is not None and self._step_task is not None
        kind = event.kind
        if kind == messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED:
            progress.update(self._step_task, description=f"step {event.step}")
            self._drop_model_bar()
        elif kind == messages_pb2.PIPELINE_EVENT_KIND_PHASE:
            progress.update(self._step_task, description=f"{event.step}: {event.phase}")
        elif kind == messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED:
            model = event.model
            total = model.total or None
            if self._model_task is not None and model.stage != self._model_stage:
                self._drop_model_bar()
            if self._model_task is None:
                self._model_task = progress.add_task(model.stage, total=total)
                self._model_stage = model.stage
            progress.update(
                self._model_task,
                description=f"{model.stage}: {model.model_name}",
                completed=model.index,
                total=total,
            )
        elif event.status in FINAL_STATUSES:
            self._drop_model_bar()

    def _drop_model_bar(self) -> None:
        if self._progress is not None and self._model_task is not None:
            self._progress.remove_task(self._model_task)
            self._model_task = None
