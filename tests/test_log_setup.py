"""The one logging setup of every service: JSON lines that parse and carry the ids in scope
(per asyncio task and per thread), text lines that show them, the format from the option or
MLP_LOG_FORMAT, and a repeated warning logged once a minute at most."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

import pytest

from mlplatform.common.log_setup import (
    LogFormatError,
    RepeatedMessages,
    add_ids,
    log_handler,
    log_ids,
    resolve_log_format,
)


def _logger_to(stream: io.StringIO, log_format: str) -> logging.Logger:
    logger = logging.getLogger(f"test.log_setup.{log_format}.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log_handler("trainer", log_format, stream))  # type: ignore[arg-type]
    return logger


def _records(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_service_level_message_and_the_ids_in_scope() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream, "json")
    logger.info("outside")
    with log_ids(pipeline_id="p-1"):
        with log_ids(request_id="r-1", batch_id=""):
            add_ids(model_name="fraud", model_version=3)
            logger.warning("inside %s", "both")
        logger.info("outer only")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    outside, inside, outer, failed = _records(stream)
    assert outside["service"] == "trainer"
    assert outside["message"] == "outside"
    assert "pipeline_id" not in outside
    assert inside["level"] == "WARNING"
    assert inside["message"] == "inside both"
    assert {key: inside[key] for key in ("pipeline_id", "request_id", "model_version")} == {
        "pipeline_id": "p-1",
        "request_id": "r-1",
        "model_version": "3",
    }
    assert "batch_id" not in inside  # empty ids are left out
    assert outer["pipeline_id"] == "p-1"
    assert "request_id" not in outer and "model_name" not in outer
    assert "ValueError: boom" in failed["exception"]


def test_ids_belong_to_their_own_task_and_thread() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream, "json")

    async def call(request_id: str) -> None:
        with log_ids(request_id=request_id):
            await asyncio.sleep(0.01)
            logger.info("answered %s", request_id)

    async def many() -> None:
        await asyncio.gather(*(call(f"r{n}") for n in range(5)))

    asyncio.run(many())
    worker = threading.Thread(target=lambda: logger.info("from a thread"))
    with log_ids(batch_id="b-1"):
        worker.start()
        worker.join()
    records = _records(stream)
    assert all(record["message"] == f"answered {record['request_id']}" for record in records[:5])
    assert "batch_id" not in records[5]  # a thread starts with no ids of another's


def test_text_lines_show_the_ids() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream, "text")
    with log_ids(batch_id="b-7", model_version="2"):
        logger.info("part done")
    expected = f" INFO {logger.name}: part done [batch_id=b-7 model_version=2]"
    assert stream.getvalue().rstrip().endswith(expected)


def test_the_format_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLP_LOG_FORMAT", raising=False)
    assert resolve_log_format() == "text"
    monkeypatch.setenv("MLP_LOG_FORMAT", "JSON")
    assert resolve_log_format() == "json"
    assert resolve_log_format("text") == "text"
    monkeypatch.setenv("MLP_LOG_FORMAT", "xml")
    with pytest.raises(LogFormatError, match="MLP_LOG_FORMAT: 'xml' is not one of text, json"):
        resolve_log_format()


def test_a_repeated_warning_is_logged_once_a_minute_at_most(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repeats = RepeatedMessages(logging.getLogger("test.repeats"), every_s=60)
    with caplog.at_level(logging.WARNING, "test.repeats"):
        for _ in range(3):
            repeats.warning("model not loaded: %s", "no version yet")
        repeats.warning("model not loaded: %s", "version 2 fails")
        repeats._last_at -= 61  # a minute later
        repeats.warning("model not loaded: %s", "version 2 fails")
    assert [record.getMessage() for record in caplog.records] == [
        "model not loaded: no version yet",
        "model not loaded: version 2 fails",
        "model not loaded: version 2 fails",
    ]
