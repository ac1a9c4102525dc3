"""Closing a RabbitMQ connection on purpose (a requested stop, a stale connection reopened)
without pika's ERROR tracebacks for a peer that already went away."""

from __future__ import annotations

import logging
import threading

import pika

logger = logging.getLogger(__name__)


class _ClosingOnPurpose(logging.Filter):
    """Drops pika's records from a thread while it closes a connection on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.closing, "active", False)


_CLOSING_ON_PURPOSE = _ClosingOnPurpose()


def close_connection(connection: pika.BlockingConnection | None) -> None:
    """Closes `connection` on purpose: a broker that already dropped it (missed heartbeats on
    an idle connection, a broker restart) is no error then. pika logs the peer's reset at
    ERROR with a traceback while closing; those records, from this thread during the close
    only, are dropped (a pika connection does its I/O on the thread that calls it)."""
    if connection is None or not connection.is_open:
        return
    # A logger's filters see only its own records, so each pika module's logger gets it.
    for name, pika_logger in list(logging.root.manager.loggerDict.items()):
        if (
            name.startswith("pika")
            and isinstance(pika_logger, logging.Logger)
            and _CLOSING_ON_PURPOSE not in pika_logger.filters
        ):
            pika_logger.addFilter(_CLOSING_ON_PURPOSE)
    _CLOSING_ON_PURPOSE.closing.active = True
    try:
        connection.close()
    except Exception as error:  # closing anyway; what went wrong matters to nobody
        logger.debug("closing a broker connection: %r", error)
    finally:
        _CLOSING_ON_PURPOSE.closing.active = False
