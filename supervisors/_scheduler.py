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


#: A worker's ``get`` timed out: nothing to run.
_IDLE = object()


class Scheduler:
    """A pool of worker threads draining a shared run queue of actors.

    A handler that never returns would hold its worker for good, and with it every actor of a
    small pool. So :meth:`check_stall` (called periodically by the runtime's timer) lends the
    pool one more worker when every worker has been inside one slice for ``stall_after_s``, up
    to ``max_extra`` extra workers; an extra worker retires after ``retire_after_s`` idle.

    Args:
        name: prefix of the worker thread names.
        workers: number of threads (M).
        batch: messages an actor may process before yielding its worker, for fairness.
        shared: a shared pool refuses blocking waits on its threads (see ``in_pool_worker``).
        max_extra: extra workers lent to a stalled pool (0: none).
        stall_after_s: how long every worker must be busy before one is added.
        retire_after_s: how long an extra worker waits for work before it retires.
    """

    def __init__(
        self,
        name: str,
        workers: int,
        *,
        batch: int = 64,
        shared: bool = True,
        max_extra: int = 0,
        stall_after_s: float = 0.1,
        retire_after_s: float = 2.0,
    ) -> None:
        if workers < 1:
            raise ValueError("a scheduler needs at least one worker")
        self.name = name
        self.batch = batch
        self.shared = shared
        self.workers = workers
        self.max_extra = max_extra
        self.stall_after_s = stall_after_s
        self.retire_after_s = retire_after_s
        self._queue: queue.SimpleQueue[Runnable | None] = queue.SimpleQueue()
        #: Put an actor with work on the run queue (the queue's own put: no Python frame per call).
        self.schedule: Callable[[Runnable], None] = self._queue.put
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        #: thread -> monotonic time its current slice began (absent: idle)
        self._busy_since: dict[threading.Thread, float] = {}
        self._counter = itertools.count()
        self._closing = False
        self.worker_deaths = 0
        self.stalls = 0
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        # Started under the lock: ``shutdown`` must never see (and join) a thread not yet
        # started, and no worker may be added once it has begun. ``start`` returns once the
        # thread runs; the thread takes the lock only later, in ``_work``.
        with self._lock:
            if self._closing:
                return
            t = threading.Thread(target=self._work, name=f"{self.name}-{next(self._counter)}", daemon=True)
            self._threads.add(t)
            t.start()

    def check_stall(self) -> bool:
        """Add a worker if every worker is stuck in a slice; True if one was added."""
        now = time.monotonic()
        with self._lock:
            if self._closing or len(self._threads) >= self.workers + self.max_extra:
                return False
            busy = [self._busy_since.get(t) for t in self._threads]
            if not busy or any(b is None or now - b < self.stall_after_s for b in busy):
                return False
            self.stalls += 1
        logger.warning("{}: all {} workers busy for over {} s: adding a worker", self.name, len(busy), self.stall_after_s)
        self._spawn()
        return True

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        with self._lock:
            return tuple(self._threads)

    def _work(self) -> None:
        _local.shared_pool = self.shared
        get = self._queue.get
        batch = self.batch
        workers = self.workers
        threads = self._threads
        monotonic = time.monotonic
        me = threading.current_thread()
        busy = self._busy_since
        died = False
        calm_since: float | None = None  # since when the pool has had a spare worker
        try:
            while True:
                # Only while a worker is lent (read without the lock: the check below is under
                # it) does a worker wait with a timeout and check whether one can retire; the
                # pool's own workers otherwise pay nothing per slice for the lending.
                if len(threads) > workers:
                    try:
                        item = get(timeout=self.retire_after_s)
                    except queue.Empty:
                        item = _IDLE
                    retired, calm_since = self._retire(me, item, calm_since)
                    if retired:
                        return
                else:
                    item = get()
                    calm_since = None
                if item is _IDLE:
                    continue
                if item is None:
                    return
                busy[me] = monotonic()
                item.run_slice(batch)
                del busy[me]
        except BaseException as exc:  # the actor has already been marked dead by run_slice
            died = True
            logger.warning("worker {} died: {!r}; replacing it", me.name, exc)
        finally:
            with self._lock:
                self._threads.discard(me)
                busy.pop(me, None)
                replace = died and not self._closing
                if died:
                    self.worker_deaths += 1
            if replace:
                self._spawn()

    def _retire(self, me: threading.Thread, item: object, calm_since: float | None) -> tuple[bool, float | None]:
        """Retire the calling worker if the pool has had a spare one long enough.

        An extra worker retires once the pool has had a spare worker (workers stuck in a slice
        do not count) for ``retire_after_s``, idle or not: under steady traffic no worker is
        ever idle that long, and the lent workers would stay for good. What it took from the
        queue is handed on, not dropped.

        Returns:
            (retired, since when the pool has had a spare worker, or None).
        """
        with self._lock:
            now = time.monotonic()
            stuck = sum(now - b > self.stall_after_s for b in list(self._busy_since.values()))
            if len(self._threads) - stuck <= self.workers:
                return False, None
            if calm_since is None:
                calm_since = now
            if item is not _IDLE and now - calm_since < self.retire_after_s:
                return False, calm_since
            self._threads.discard(me)  # decided and removed atomically
            if item is not _IDLE and item is not None:
                self._queue.put(item)  # type: ignore[arg-type]
        return True, calm_since

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


class Timer:
    """One thread running short callbacks at given times (timeouts, deadlines, polls).

    Callbacks must be quick and must not block: they normally just ``tell`` an actor.
    """

    def __init__(self, name: str) -> None:
        # (when, seq, handle): heapq compares the tuples in C; seq breaks ties in call order
        # and never lets a comparison reach the handles.
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name=f"{name}-timer", daemon=True)
        self.thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        when = time.monotonic() + max(0.0, delay)
        handle = TimerHandle(when, callback)
        with self._cond:
            if self._closed:
                handle.cancelled = True
                return handle
            heap = self._heap
            heapq.heappush(heap, (when, next(self._seq), handle))
            if heap[0][2] is handle:
                self._cond.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._cond:
                heap = self._heap
                while not self._closed:
                    now = time.monotonic()
                    if heap and heap[0][0] <= now:
                        handle = heapq.heappop(heap)[2]
                        break
                    self._cond.wait(heap[0][0] - now if heap else None)
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
