"""The runtime's future: the answer to an ``ask``, waited on with one lock.

pykka's ``ThreadingFuture`` waits on a ``threading.Condition``: an RLock and a waiter list per
future, and a fresh lock per wait. An ask has one answer and usually one waiter, so this future
waits on a single one-shot lock instead: taken when the future is made, released when its result
is set. A waiter that gets the lock hands it straight back, so every other waiter (and every
later ``get``) goes through too.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, Final

import pykka
from loguru import logger
from pykka import Timeout

from supervisors._scheduler import in_pool_worker

__all__ = ["DEFAULT_TIMEOUT", "BlockingCallInWorker", "Future"]

#: Every wait in this library has a timeout; this is the default one, in seconds.
DEFAULT_TIMEOUT = 5.0

#: (exception type, exception, traceback), as ``sys.exc_info()`` returns it.
ExcInfo = tuple[type[BaseException] | None, BaseException | None, Any]

#: Guards the once-only parts of every future (the result, the callbacks, the get hook). Held
#: for a few bytecodes, never while waiting or calling out: one lock for all is enough.
_GUARD: Final = threading.Lock()

_UNSET: Final = object()


class BlockingCallInWorker(RuntimeError):
    """A blocking wait on a shared pool thread would starve every actor on the pool."""


class Future(pykka.Future[Any]):
    """A pykka future that never waits forever and never blocks a shared pool thread.

    It can also be awaited from an event loop without blocking it (``await ref.ask(m, block=False)``,
    bounded with ``asyncio.wait_for``), and takes done-callbacks, so code on an event loop can
    ask actors without a thread per wait. pykka's ``map``, ``filter``, ``join`` and ``reduce``
    work (they build on the get hook).
    """

    # pykka.Future.__init__ is not called: these class defaults stand in for its two fields,
    # so a future costs its own three fields and its lock, nothing more.
    _get_hook: Callable[[float | None], Any] | None = None
    _get_hook_result: Any = _UNSET

    def __init__(self) -> None:
        #: (value, exc_info or None) once set; None until then.
        self._result: tuple[Any, ExcInfo | None] | None = None
        self._callbacks: list[Callable[[Future], None]] | None = None
        self._waiters = threading.Lock()
        self._waiters.acquire()  # released once, by whichever sets the result

    def __repr__(self) -> str:
        return "<supervisors.Future>"

    # -- setting -------------------------------------------------------------------------------

    def set(self, value: Any | None = None) -> None:
        self._complete((value, None))

    def set_exception(self, exc_info: ExcInfo | None = None) -> None:
        self._complete((None, sys.exc_info() if exc_info is None else exc_info))

    def _complete(self, result: tuple[Any, ExcInfo | None]) -> None:
        with _GUARD:
            if self._result is not None or self._get_hook is not None:
                raise queue.Full  # pykka's answer to a second result
            self._result = result
            callbacks, self._callbacks = self._callbacks, None
        self._waiters.release()
        if callbacks is not None:
            self._run(callbacks)

    def set_get_hook(self, func: Callable[[float | None], Any]) -> None:
        with _GUARD:
            if self._result is not None or self._get_hook is not None:
                raise queue.Full
            self._get_hook = func
        self._waiters.release()  # a waiter already inside get() runs the hook instead

    # -- callbacks -----------------------------------------------------------------------------

    def add_done_callback(self, callback: Callable[[Future], None]) -> None:
        """Call ``callback(self)`` once the result is set (at once if it already is).

        It runs on the thread that sets the result: keep it short and non-blocking.
        """
        with _GUARD:
            if self._result is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        self._run((callback,))

    def _run(self, callbacks: list[Callable[[Future], None]] | tuple[Callable[[Future], None]]) -> None:
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - one broken callback must not starve the others
                logger.exception("future done-callback failed")

    # -- reading -------------------------------------------------------------------------------

    def outcome(self) -> tuple[Any, BaseException | None]:
        """(value, None) or (None, exception) of a future whose result is set."""
        result = self._result
        if result is None:
            raise RuntimeError("future has no result yet")
        value, exc_info = result
        if exc_info is not None:
            exc_type, exc_value, _tb = exc_info
            return None, exc_value if exc_value is not None else exc_type()  # type: ignore[misc]
        return value, None

    def get(self, *, timeout: float | None = None) -> Any:
        """The value, or raise the exception, waiting up to ``timeout`` s (default 5 s).

        Raises:
            pykka.Timeout: no result within ``timeout``.
            BlockingCallInWorker: called on a shared pool thread before the result is there.
        """
        result = self._result
        if result is None:
            if timeout is None:
                timeout = DEFAULT_TIMEOUT
            if in_pool_worker():
                raise BlockingCallInWorker(
                    "a pooled actor must not block on a future; use tell and reply messages, "
                    "or run the actor on a dedicated thread"
                )
            if self._get_hook is None:
                waiters = self._waiters
                if not waiters.acquire(timeout=max(0.0, timeout)):
                    raise Timeout(f"{timeout} seconds")
                waiters.release()  # pass it on: the next waiter, or a later get, goes through
                result = self._result
            if result is None:  # a get hook (pykka's map, filter, join, reduce)
                return self._hooked(timeout)
        value, exc_info = result
        if exc_info is None:
            return value
        exc_type, exc_value, exc_traceback = exc_info
        if exc_value is None:
            exc_value = exc_type()  # type: ignore[misc]
        if exc_value.__traceback__ is not exc_traceback:
            raise exc_value.with_traceback(exc_traceback)
        raise exc_value

    def _hooked(self, timeout: float) -> Any:
        if self._get_hook_result is _UNSET:
            self._get_hook_result = self._get_hook(timeout)  # type: ignore[misc]
        return self._get_hook_result

    def __await__(self) -> Generator[Any, None, Any]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def transfer(_: Future) -> None:
            if not waiter.done():
                value, error = self.outcome()
                if error is None:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(error)

        self.add_done_callback(lambda f: loop.call_soon_threadsafe(transfer, f))
        return (yield from waiter.__await__())
