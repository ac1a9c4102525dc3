"""One logging setup for every service: text or JSON lines carrying the ids in scope.

A service calls `configure_logging(service, level, log_format)` once at start; code that works
on one request, pipeline or batch wraps that work in `log_ids(request_id=...)` (a contextvar,
so concurrent asyncio tasks and worker threads each see their own). Every record then carries
those ids, and the trace id of the current OpenTelemetry span when tracing is on:

- text: `2026-12-07 01:02:03,456 INFO mlplatform.trainer.runner: message [pipeline_id=...]`
- json: one object a line: time, level, service, logger, message, the ids, and `exception`
  (the formatted traceback) when there is one.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import orjson
from opentelemetry import trace

#: Environment variable for the format when no `--log-format` is given.
LOG_FORMAT_ENV = "MLP_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]
#: The ids a record can carry, in the order text lines show them.
ID_NAMES = ("request_id", "pipeline_id", "batch_id", "model_name", "model_version", "trace_id")
#: MLflow's switches for its own log handler, run-URL prints and download progress bars.
MLFLOW_QUIET = {
    "MLFLOW_CONFIGURE_LOGGING": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
#: Libraries that install a handler of their own on import.
OWN_HANDLER_LOGGERS = ("mlflow",)
#: Libraries whose INFO lines are chatter in a service log.
QUIET_LOGGERS = ("pika", "urllib3", "alembic", "botocore", "httpx")

#: The ids in scope; each scope is a new dict (never mutated), so tasks and threads that
#: copied the context keep theirs. The default is the empty mapping.
_ids_in_scope: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "mlp_log_ids", default=MappingProxyType({})
)


class LogFormatError(ValueError):
    """An unknown log format (from the option or MLP_LOG_FORMAT)."""


def push_ids(**ids: object) -> contextvars.Token[Mapping[str, str]]:
    """Opens a scope of ids (outer ids stay unless overridden; empty values are left out);
    close it with `pop_ids(token)`. `log_ids` is the same as a `with` block. The current
    span (when tracing) gets them as `mlp.<name>` attributes, so traces and logs match."""
    # On every prediction call: kept to a few dict operations.
    given = {
        key: value if type(value) is str else str(value) for key, value in ids.items() if value
    }
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"mlp.{key}": value for key, value in given.items()})
    outer = _ids_in_scope.get()
    return _ids_in_scope.set({**outer, **given} if outer else given)


def pop_ids(token: contextvars.Token[Mapping[str, str]]) -> None:
    _ids_in_scope.reset(token)


def add_ids(**ids: object) -> None:
    """Adds ids learnt on the way (a model version once resolved) to the scope in force:
    `pop_ids` of the enclosing scope drops them too (a reset restores the value before it)."""
    push_ids(**ids)


@contextmanager
def log_ids(**ids: object) -> Iterator[None]:
    """Every record logged inside the block (by this task or thread) carries `ids`."""
    token = push_ids(**ids)
    try:
        yield
    finally:
        pop_ids(token)


def current_ids() -> dict[str, str]:
    """The ids in scope here, with the current span's trace id when one is recording."""
    ids = dict(_ids_in_scope.get())
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        ids["trace_id"] = format(span_context.trace_id, "032x")
    return ids


class _IdsFilter(logging.Filter):
    """Puts the ids in scope on every record (as `record.mlp_ids`), for both formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.mlp_ids = current_ids()
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the ids in scope appended in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids: dict[str, str] = getattr(record, "mlp_ids", {})
        if not ids:
            return line
        shown = " ".join(f"{name}={ids[name]}" for name in ID_NAMES if name in ids)
        first, newline, rest = line.partition("\n")  # the ids belong to the message line
        return f"{first} [{shown}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "mlp_ids", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return orjson.dumps(document, default=str).decode()


class RepeatedMessages:
    """Logs a message the first time, then the same message at most once every `every_s`
    (a service waiting for something logs that once, not at every poll); a different
    message is logged at once."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last_text: str | None = None
        self._last_at = 0.0

    def warning(self, message: str, *args: object) -> None:
        text = message % args if args else message
        now = time.monotonic()
        if text == self._last_text and now - self._last_at < self.every_s:
            return
        self._last_text, self._last_at = text, now
        self.logger.warning("%s", text)


def resolve_log_format(log_format: str | None = None) -> LogFormat:
    """`log_format`, else MLP_LOG_FORMAT, else text; LogFormatError names the choices."""
    chosen = (log_format or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        source = "--log-format" if log_format else LOG_FORMAT_ENV
        raise LogFormatError(f"{source}: {chosen!r} is not one of {', '.join(LOG_FORMATS)}")
    return chosen  # type: ignore[return-value]


def log_handler(service: str, log_format: LogFormat, stream: Any = None) -> logging.Handler:
    """A handler writing `service`'s records to `stream` (default stderr) in `log_format`,
    each with the ids in scope."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(TextFormatter() if log_format == "text" else JsonFormatter(service))
    handler.addFilter(_IdsFilter())
    return handler


def configure_logging(
    service: str,
    level: str = "INFO",
    log_format: str | None = None,
    stream: Any = None,
) -> LogFormat:
    """Sends every logger's records (ours, the libraries', uvicorn's) to one handler on
    stderr in the chosen format; returns the format. Replaces handlers set before."""
    chosen = resolve_log_format(log_format)
    # MLflow (imported later, where a service needs it) would install its own handler, print
    # run URLs to stdout and draw download progress bars into the log: its records go through
    # this handler instead, in this format, and it prints nothing of its own.
    for name, value in MLFLOW_QUIET.items():
        os.environ.setdefault(name, value)
    handler = log_handler(service, chosen, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in OWN_HANDLER_LOGGERS:  # when imported before this ran
        library_logger = logging.getLogger(name)
        for old in list(library_logger.handlers):
            library_logger.removeHandler(old)
        library_logger.propagate = True
    logging.captureWarnings(True)
    return chosen


__all__ = [
    "ID_NAMES",
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "JsonFormatter",
    "LogFormatError",
    "RepeatedMessages",
    "TextFormatter",
    "add_ids",
    "configure_logging",
    "current_ids",
    "log_handler",
    "log_ids",
    "pop_ids",
    "push_ids",
    "resolve_log_format",
]
