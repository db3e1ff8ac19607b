"""One logging configuration for the whole process (loguru)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from loguru import logger

__all__ = ["configure_logging"]


class _InterceptHandler(logging.Handler):
    """Route the standard library's logging (pykka, aiohttp, botocore) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(*, json_lines: bool | None = None, level: str = "INFO", log_dir: Path | None = None) -> None:
    """Human lines on a terminal, JSON lines otherwise (or as ``json_lines`` says).

    Args:
        json_lines: force JSON lines (True) or human lines (False); None: decide by the terminal.
        level: the minimum level.
        log_dir: also write JSON lines to ``log_dir/engine.log`` (rotated), under the data dir.
    """
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json_lines, backtrace=False, diagnose=False)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        logger.add(
            log_dir / "engine.log", level=level, serialize=True, rotation="50 MB", retention=10,
            backtrace=False, diagnose=False, enqueue=True,
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
