"""Loguru set-up: JSON lines or human-readable text (by default: text on a terminal, JSON otherwise), each
carrying the request's `correlation_id`."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from typing import Any, TextIO

from loguru import logger
from opentelemetry import trace

from app.settings import LOG_FORMATS

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

#: The fields a text line shows in place (not as key=value): a request's, and the process's.
_REQUEST_FIELDS = ("method", "path", "status", "duration_ms")
_IN_PLACE = frozenset({*_REQUEST_FIELDS, "process", "correlation_id"})


def _patch(record: Any) -> None:
    record["extra"].setdefault("correlation_id", correlation_id.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:  # inside a traced request or message: the line links to its trace
        record["extra"].setdefault("trace_id", format(span.trace_id, "032x"))


def _exception(record: Any) -> str:
    return "".join(traceback.format_exception(*record["exception"]))


def _json_sink(message: Any) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name.lower(),
        "message": record["message"],
        "logger": record["name"],
        **{k: v for k, v in record["extra"].items()},
    }
    if record["exception"] is not None:
        line["exception"] = _exception(record)
    sys.stderr.write(json.dumps(line, default=str) + "\n")


def _value(value: Any) -> str:
    """A key=value's value: bare when it is one plain word, quoted (JSON) otherwise."""
    text = str(value)
    return text if text and not any(c.isspace() or c in '="' for c in text) else json.dumps(text)


def text_line(record: Any) -> str:
    """`12:03:04.512 INFO    api    POST /api/v1/transfers 201 12.3 ms req=3f2a…  request completed k=v`: the
    time, level and process, a request's method, path, status and duration, the request id, the message, the
    other bound fields as key=value, and the traceback of an exception on the lines after."""
    extra = record["extra"]
    parts = [record["time"].strftime("%H:%M:%S.%f")[:-3], f"{record['level'].name:<7}",
             f"{extra.get('process') or '-':<6}"]
    if all(extra.get(name) is not None for name in _REQUEST_FIELDS):
        parts.append(f"{extra['method']} {extra['path']} {extra['status']} {float(extra['duration_ms']):.1f} ms")
    if extra.get("correlation_id") is not None:
        parts.append(f"req={extra['correlation_id']}")
    line = " ".join(parts) + "  " + str(record["message"])
    fields = [f"{key}={_value(value)}" for key, value in extra.items() if key not in _IN_PLACE]
    if fields:
        line += "  " + " ".join(fields)
    if record["exception"] is not None:
        line += "\n" + _exception(record).rstrip("\n")
    return line + "\n"


def _text_sink(message: Any) -> None:
    sys.stderr.write(text_line(message.record))


def resolve_format(fmt: str, stream: TextIO | None = None) -> str:
    """`json` or `text`: `auto` is `text` when `stream` (the logs' stream, stderr) is a terminal."""
    if fmt != "auto":
        return fmt
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no stream, or a closed one: not a person reading
        return "json"


class _InterceptHandler(logging.Handler):
    """Routes stdlib logging (Sanic, asyncpg, dramatiq) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "info", fmt: str = "auto", **static: Any) -> None:
    """Replace loguru's default sink with lines on stderr, in `fmt` (`auto`, `json` or `text`; see
    `resolve_format`); `static` fields (e.g. process="api") go on every line."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    logger.remove()
    logger.configure(patcher=_patch, extra=static)
    sink = _json_sink if resolve_format(fmt) == "json" else _text_sink
    logger.add(sink, level=level.upper(), backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.access"):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
        std.setLevel(logging.INFO if name != "sanic.access" else logging.WARNING)
