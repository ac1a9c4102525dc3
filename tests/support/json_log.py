"""Captures what this process logs, as a service's JSON lines, for tests of log contents."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlplatform.common.log_setup import log_handler


class CapturedLog:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def records(self) -> list[dict[str, Any]]:
        """Every line, parsed (a line that is not JSON fails the test here)."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@contextmanager
def json_log(service: str) -> Iterator[CapturedLog]:
    """Records at INFO and above, from every logger, written as `service`'s JSON lines."""
    captured = CapturedLog()
    handler = log_handler(service, "json", captured.stream)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
