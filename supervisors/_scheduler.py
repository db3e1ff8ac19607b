"""M:N scheduling: many actors run on a few worker threads, plus one timer thread.

An actor with work is put once on the run queue; a worker takes it, runs up to ``batch`` of its
messages, and puts it back if more arrived. The run queue is a C ``SimpleQueue``, so scheduling
costs a put, not a thread switch per message.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from loguru import logger

__all__ = ["Runnable", "Scheduler", "Timer", "TimerHandle", "in_pool_worker"]

_local = threading.local()


def in_pool_worker() -> bool:
    """True on a thread of a *shared* pool, where blocking waits would starve other actors."""
    return getattr(_local, "shared_pool", False)


class Runnable(Protocol):
    def run_slice(self, batch: int) -> None: ...


class WorkerKilled(BaseException):
    """Raised inside a worker to kill the thread under an actor (chaos testing).

    A BaseException, so it escapes the actor's ordinary failure handling exactly as a real
    thread death would.
    """


class Scheduler:
    """A pool of worker threads draining a shared run queue of actors.

    Args:
        name: prefix of the worker thread names.
        workers: number of threads (M).
        batch: messages an actor may process before yielding its worker, for fairness.
        shared: a shared pool refuses blocking waits on its threads (see ``in_pool_worker``).
    """

    def __init__(self, name: str, workers: int, *, batch: int = 64, shared: bool = True) -> None:
        if workers < 1:
            raise ValueError("a scheduler needs at least one worker")
        self.name = name
        self.batch = batch
        self.shared = shared
        self._queue: queue.SimpleQueue[Runnable | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._counter = itertools.count()
        self._closing = False
        self.worker_deaths = 0
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        t = threading.Thread(target=self._work, name=f"{self.name}-{next(self._counter)}", daemon=True)
        with self._lock:
            self._threads.add(t)
        t.start()

    def schedule(self, item: Runnable) -> None:
        self._queue.put(item)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        with self._lock:
            return tuple(self._threads)

    def _work(self) -> None:
        _local.shared_pool = self.shared
        get = self._queue.get
        batch = self.batch
        me = threading.current_thread()
        died = False
        try:
            while True:
                item = get()
                if item is None:
                    return
                item.run_slice(batch)
        except BaseException as exc:  # the actor has already been marked dead by run_slice
            died = True
            logger.warning("worker {} died: {!r}; replacing it", me.name, exc)
        finally:
            with self._lock:
                self._threads.discard(me)
                replace = died and not self._closing
                if died:
                    self.worker_deaths += 1
            if replace:
                self._spawn()

    def shutdown(self, timeout: float = 5.0) -> list[str]:
        """Stop every worker; returns the names of threads still running after ``timeout``."""
        with self._lock:
            self._closing = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive() and t is not threading.current_thread()]


class TimerHandle:
    """A scheduled call; ``cancel()`` prevents it if it has not run yet."""

    __slots__ = ("cancelled", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class Timer:
    """One thread running short callbacks at given times (timeouts, deadlines, polls).

    Callbacks must be quick and must not block: they normally just ``tell`` an actor.
    """

    def __init__(self, name: str) -> None:
        self._heap: list[TimerHandle] = []
        self._cond = threading.Condition()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name=f"{name}-timer", daemon=True)
        self.thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback)
        with self._cond:
            if self._closed:
                handle.cancelled = True
                return handle
            heapq.heappush(self._heap, handle)
            if self._heap[0] is handle:
                self._cond.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0].when <= now:
                        handle = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0].when - now if self._heap else None)
                else:
                    return
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:  # noqa: BLE001 - a bad callback must not stop every timeout
                logger.exception("timer callback failed")

    def shutdown(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
