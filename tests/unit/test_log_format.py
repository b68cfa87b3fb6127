"""Log lines (app.logs): `auto` is text on a terminal and JSON elsewhere; a text line shows the time, level and
process, a request's method, path, status, duration and id, the message, the other fields and a traceback."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator

import pytest
from loguru import logger

from app.logs import configure_logging, correlation_id, resolve_format

REQUEST = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} INFO    api    POST /api/v1/transfers 201 12\.3 ms req=3f2a9c  "
                     r"request completed  trace=abc$")


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    yield
    correlation_id.set(None)
    logger.remove()


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert resolve_format("auto", terminal) == "text"
    os.close(leader)
    assert resolve_format("auto", io.StringIO()) == "json"  # a pipe or a file: a machine reads it
    closed = io.StringIO()
    closed.close()
    assert resolve_format("auto", closed) == "json"
    assert resolve_format("json", io.StringIO()) == "json"
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert resolve_format("json", terminal) == "json"  # explicit wins over the terminal
        assert resolve_format("text", io.StringIO()) == "text"
    os.close(leader)


def test_a_request_line_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "text", process="api")
    correlation_id.set("3f2a9c")
    logger.bind(method="POST", path="/api/v1/transfers", status=201, duration_ms=12.34,
                trace="abc").info("request completed")
    (line,) = capsys.readouterr().err.splitlines()
    assert REQUEST.match(line), line


def test_other_fields_are_key_value_quoted_when_needed_and_exceptions_carry_their_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "text", process="worker")
    logger.bind(kind="payment", error='timed out, "twice"', empty="").warning("work {} retried", "p1")
    try:
        raise ZeroDivisionError("nothing to divide")
    except ZeroDivisionError:
        logger.exception("unhandled error")
    logger.debug("below the level")
    lines = capsys.readouterr().err.splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} WARNING worker  work p1 retried  kind=payment "
                    r"error=\"timed out, \\\"twice\\\"\" empty=\"\"$", lines[0]), lines[0]
    assert "req=" not in lines[0]  # no request: no request id
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} ERROR   worker  unhandled error$", lines[1]), lines[1]
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: nothing to divide"
    assert not any("below the level" in line for line in lines)


def test_json_lines_keep_their_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", process="api")
    correlation_id.set("req-1")
    logger.bind(method="GET", path="/health", status=200, duration_ms=1.5).info("request completed")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert set(record) == {"time", "level", "message", "logger", "process", "correlation_id", "method", "path",
                           "status", "duration_ms"}
    assert (record["level"], record["message"], record["correlation_id"], record["status"]) == (
        "info", "request completed", "req-1", 200)


def test_auto_under_pytest_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", process="api")  # the default format: auto; captured stderr is no terminal
    logger.info("hello")
    assert json.loads(capsys.readouterr().err)["message"] == "hello"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'xml'"):
        configure_logging("info", "xml")
