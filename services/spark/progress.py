"""Spark's stage progress as one number pair (tasks done, tasks known), polled off the
driver's status tracker, for the CLI's progress bar.

A job runs several Spark jobs (read the schema, score and write, count, sample); each adds its
stages' tasks to the total, so the bar fills once per phase rather than jumping backwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: (tasks done, tasks known, what runs now)
ProgressCallback = Callable[[int, int, str], None]


class StageProgress:
    """Polls `spark_context.statusTracker()` every `interval` seconds in a daemon thread and
    reports the tasks of every stage seen so far to `on_progress`."""

    def __init__(
        self, spark_context: Any, on_progress: ProgressCallback, interval: float = 0.25
    ) -> None:
        self._tracker = spark_context.statusTracker()
        self._on_progress = on_progress
        self._interval = interval
        self._stages: dict[int, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spark-progress", daemon=True)
        self.phase = "starting"

    def __enter__(self) -> StageProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()

    def poll(self) -> None:
        """Reads the active stages once and reports the totals."""
        try:
            # Stages seen before are read again: one may finish between two polls.
            for stage_id in {*self._tracker.getActiveStageIds(), *self._stages}:
                info = self._tracker.getStageInfo(stage_id)
                if info is not None:
                    self._stages[stage_id] = (info.numCompletedTasks, info.numTasks)
        except Exception:  # the context is stopping; the last totals stand
            return
        done = sum(completed for completed, _ in self._stages.values())
        known = sum(total for _, total in self._stages.values())
        self._on_progress(done, known, self.phase)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()
