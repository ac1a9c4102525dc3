"""What `mlp runs show` and `mlp runs watch` add to a run's record: its leaderboard, its
promotion decision, and its progress events followed live from the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2
from rich.table import Table
from rich.text import Text

from mlplatform.common.store import PipelineRun, RunEvent, RunStatus, Store
from mlplatform.v1 import messages_pb2

#: Findings shown in their own tables, not squeezed into the steps table's findings cell.
BULKY_FINDINGS = frozenset({"leaderboard", "plots", "plots_skipped", "promotion"})
_KIND_NUMBERS = {
    "run": messages_pb2.PIPELINE_EVENT_KIND_RUN,
    "step_started": messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED,
    "step_finished": messages_pb2.PIPELINE_EVENT_KIND_STEP_FINISHED,
    "model_evaluated": messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED,
    "phase": messages_pb2.PIPELINE_EVENT_KIND_PHASE,
}
_STATUS_NUMBERS = {
    RunStatus.QUEUED: messages_pb2.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: messages_pb2.RUN_STATUS_RUNNING,
    RunStatus.SUCCEEDED: messages_pb2.RUN_STATUS_SUCCEEDED,
    RunStatus.FAILED: messages_pb2.RUN_STATUS_FAILED,
}


class WatchTimeout(Exception):
    """The run did not end within the time the watcher was given."""


def leaderboard(run: PipelineRun) -> list[dict[str, Any]]:
    """The compare grid the train step recorded, best first; empty when there is none."""
    step = run.step("train_model")
    rows = step.findings.get("leaderboard") if step is not None else None
    return rows if isinstance(rows, list) else []


def leaderboard_table(rows: list[dict[str, Any]]) -> Table:
    """Every estimator PyCaret compared, with every metric, as PyCaret ranked them."""
    table = Table(title="Leaderboard (cross-validated means)", title_justify="left")
    columns = list(rows[0]) if rows else []
    for column in columns:
        numeric = any(isinstance(row.get(column), int | float) for row in rows)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*[Text(_cell(row.get(column))) for column in columns])
    return table


def promotion_text(run: PipelineRun) -> Text | None:
    """The champion/challenger decision in one line, if `register_model` made one."""
    decision = run.promotion
    if not decision:
        return None
    moved = decision.get("promote")
    alias = decision.get("alias") or "?"
    verdict = f"@{alias} -> v{decision.get('version')}" if moved else f"@{alias} unchanged"
    return Text.assemble(
        ("promotion ", "bold"),
        (verdict, "green" if moved else "yellow"),
        f" ({decision.get('policy')}): {decision.get('reason')}",
    )


def pipeline_event(run: PipelineRun, event: RunEvent) -> messages_pb2.PipelineEvent:
    """A stored event in the form the broker carries, so one display shows both."""
    occurred_at = timestamp_pb2.Timestamp()
    occurred_at.FromDatetime(event.occurred_at)
    model = None
    if event.model:
        model = messages_pb2.ModelProgress(
            stage=str(event.model.get("stage") or ""),
            model_name=str(event.model.get("model_name") or ""),
            estimator_id=str(event.model.get("estimator_id") or ""),
            index=int(event.model.get("index") or 0),
            total=int(event.model.get("total") or 0),
            metric=str(event.model.get("metric") or ""),
            score=event.model.get("score"),
        )
    return messages_pb2.PipelineEvent(
        pipeline_id=run.pipeline_id,
        status=_STATUS_NUMBERS[event.status],
        step=event.step or "",
        message=event.message,
        occurred_at=occurred_at,
        elapsed_seconds=event.elapsed_seconds,
        kind=_KIND_NUMBERS.get(event.kind, messages_pb2.PIPELINE_EVENT_KIND_RUN),
        model=model,
        phase=event.phase or "",
    )


def watch_run(
    store: Store,
    pipeline_id: str,
    show: Callable[[messages_pb2.PipelineEvent], None],
    timeout: float,
    interval: float = 0.5,
) -> PipelineRun:
    """Shows the run's stored events from the first, then each new one, until the run ends.

    The store is polled: it is the record every trainer writes, reachable without the broker.
    """
    deadline = time.monotonic() + timeout
    shown = 0
    while True:
        run = store.get_run(pipeline_id)
        for event in run.events[shown:]:
            show(pipeline_event(run, event))
        shown = len(run.events)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return run
        if time.monotonic() >= deadline:
            raise WatchTimeout(f"run {pipeline_id} did not end within {timeout:.0f}s")
        time.sleep(interval)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
