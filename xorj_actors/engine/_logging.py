"""One logging configuration for the whole process (loguru).

Human lines on a terminal, one compact JSON object per line otherwise. Every line passes a
redactor (:class:`xorj_actors.redaction.Redactor`) on its way to a sink: the values of secret environment variables and any hex
MAC that follows "hmac", "signature" or "key" are masked, in the message, the extras and the
exception text alike. Lines about a trade carry its ``correlation_id`` (see :func:`trade_logger`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import timezone
from pathlib import Path
from typing import IO, Any

from loguru import logger

from xorj_actors.redaction import MASK, Redactor

__all__ = ["MASK", "Redactor", "configure_logging", "trade_logger"]

#: Extras the JSON line lifts to the top level.
_TOP_LEVEL_EXTRAS = ("correlation_id",)
_LINE_KEY = "_xorj_line"


def trade_logger(trade_id: str) -> Any:
    """The logger for everything about one trade: every line carries ``correlation_id``."""
    return logger.bind(correlation_id=trade_id)


def _exception_text(record: Mapping[str, Any]) -> str | None:
    exc = record["exception"]
    if exc is None:
        return None
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip("\n")


def _extras(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record["extra"].items() if k != _LINE_KEY}


def json_line(record: Mapping[str, Any], redact: Redactor) -> str:
    """One compact JSON object for a loguru record."""
    extra = _extras(record)
    out: dict[str, Any] = {
        "time": record["time"].astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "message": redact(record["message"]),
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
        "thread": record["thread"].name,
    }
    for key in _TOP_LEVEL_EXTRAS:
        if key in extra:
            out[key] = redact.deep(extra.pop(key))
    if extra:
        out["extra"] = redact.deep(extra)
    exception = _exception_text(record)
    if exception is not None:
        out["exception"] = redact(exception)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=repr)


def human_line(record: Mapping[str, Any], redact: Redactor) -> str:
    """``time | LEVEL | where - message | key=value ...`` and the traceback, if any."""
    extra = _extras(record)
    line = (
        f"{record['time']:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f" | {record['level'].name:<8} | {record['name']}:{record['function']}:{record['line']} - {record['message']}"
    )
    if extra:
        line += " | " + " ".join(f"{k}={v}" for k, v in extra.items())
    exception = _exception_text(record)
    if exception is not None:
        line += "\n" + exception
    return redact(line)


def _formatter(render: Callable[[Mapping[str, Any], Redactor], str], redact: Redactor) -> Callable[[Any], str]:
    def fmt(record: Any) -> str:
        # loguru formats the returned template with the record: hand it the finished line.
        record["extra"][_LINE_KEY] = render(record, redact)
        return "{extra[" + _LINE_KEY + "]}\n"

    return fmt


class _InterceptHandler(logging.Handler):
    """Route the standard library's logging (pykka, aiohttp, botocore) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(
    *,
    json_lines: bool | None = None,
    level: str = "INFO",
    log_dir: Path | None = None,
    secret_envs: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
) -> Redactor:
    """Human lines on a terminal, JSON lines otherwise (or as ``json_lines`` says).

    Args:
        json_lines: force JSON lines (True) or human lines (False); None: decide by the terminal.
        level: the minimum level.
        log_dir: also write JSON lines to ``log_dir/engine.log`` (rotated), under the data dir.
        secret_envs: environment variables whose values are masked (besides every variable
            whose name contains KEY, SECRET, TOKEN, PASSWORD, HMAC or CREDENTIAL); pass
            ``xorj_actors.check.secret_env_names(config)``.
        environ: where the secret values are read; default ``os.environ``.
        stream: where lines go; default ``sys.stderr``.

    Returns:
        the redactor every sink uses.
    """
    stream = sys.stderr if stream is None else stream
    if json_lines is None:
        json_lines = not stream.isatty()
    redact = Redactor.from_environ(os.environ if environ is None else environ, secret_envs)
    logger.remove()
    logger.add(
        stream, level=level, format=_formatter(json_line if json_lines else human_line, redact), colorize=False,
        backtrace=False, diagnose=False,
    )
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        logger.add(
            log_dir / "engine.log", level=level, format=_formatter(json_line, redact), rotation="50 MB",
            retention=10, backtrace=False, diagnose=False, enqueue=True,
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    # solana-py's HTTP client logs every request at INFO: thousands a second while trading.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    return redact
