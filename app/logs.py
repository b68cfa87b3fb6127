"""Loguru set-up: JSON (default) or text lines, each carrying the request's `correlation_id`."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from loguru import logger
from opentelemetry import trace

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def _patch(record: Any) -> None:
    record["extra"].setdefault("correlation_id", correlation_id.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:  # inside a traced request or message: the line links to its trace
        record["extra"].setdefault("trace_id", format(span.trace_id, "032x"))


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
        line["exception"] = "".join(__import__("traceback").format_exception(*record["exception"]))
    sys.stderr.write(json.dumps(line, default=str) + "\n")


class _InterceptHandler(logging.Handler):
    """Routes stdlib logging (Sanic, asyncpg, dramatiq) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "info", fmt: str = "json", **static: Any) -> None:
    """Replace loguru's default sink; `static` fields (e.g. process="api") go on every line."""
    logger.remove()
    logger.configure(patcher=_patch, extra=static)
    if fmt == "json":
        logger.add(_json_sink, level=level.upper(), backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level.upper(), backtrace=False, diagnose=False,
                   format="{time:HH:mm:ss.SSS} {level: <7} [{extra[correlation_id]}] {message}")
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.access"):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
        std.setLevel(logging.INFO if name != "sanic.access" else logging.WARNING)
