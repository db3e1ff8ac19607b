"""Fault injection for the crash-recovery chaos test (tests/chaos/test_crash_recovery.py): with
:data:`CRASH_AT_ENV` set to a point's name the process SIGKILLs itself there, exactly like ``kill -9``.
"""

from __future__ import annotations

import os
import signal

from loguru import logger

__all__ = ["CRASH_AT_ENV", "CRASH_POINTS", "crash_point"]

CRASH_AT_ENV = "XORJ_FAULT_CRASH_AT"
CRASH_POINTS = ("before_sign", "after_sign", "before_send", "after_send", "confirming")


def crash_point(name: str) -> None:
    """SIGKILL this process here if the environment names this point."""
    if os.environ.get(CRASH_AT_ENV) == name:
        logger.critical("fault injection: SIGKILL at {} ({} is set)", name, CRASH_AT_ENV)
        os.kill(os.getpid(), signal.SIGKILL)
