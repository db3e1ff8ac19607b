"""An asyncio event loop on a thread of its own, beside the actor pool.

An actor whose work waits on the network (a WebSocket, an HTTP server, many requests at once)
keeps that work on a loop of its own, so it answers whatever the pool is doing and blocks no
pool worker; this is the one place that starts and stops such a loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

__all__ = ["LoopThread"]


class LoopThread:
    """Runs an event loop on a daemon thread named ``name``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self, setup: Coroutine[Any, Any, Any], timeout: float) -> None:
        """Start the thread and run ``setup`` (bind the server) on it; raise what it raises."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(setup, self.loop).result(timeout)
        except BaseException:
            self.stop(None, timeout)
            raise

    def stop(self, cleanup: Callable[[], Coroutine[Any, Any, Any]] | None, timeout: float) -> None:
        """Run ``cleanup()`` on the loop, then stop the loop and wait for the thread."""
        if not self._thread.is_alive():
            if self._thread.ident is None and not self.loop.is_closed():
                self.loop.close()  # never started
            return
        if cleanup is not None:
            try:
                asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout)
            except Exception:  # noqa: BLE001 - stopping anyway
                logger.exception("{}: cleanup failed", self._thread.name)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
