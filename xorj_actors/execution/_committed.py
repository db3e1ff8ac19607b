"""A durable audit append awaited with one wake of the executor's loop: when it is committed.

``ref.ask(AppendDurable(...), block=False)`` answers, on the Audit actor's thread, with the
writer's future, which resolves on the writer's thread once the entry's transaction has
committed. Awaiting the two one after the other wakes the loop twice (the actor's answer, then
the commit) and runs a task in between; here the answer's callback hangs the commit's callback on
the writer's future directly, so the loop hears only the end: committed, or why not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

__all__ = ["committed"]


def committed(loop: asyncio.AbstractEventLoop, answer: Any, timeout: float) -> asyncio.Future[None]:
    """A future on ``loop`` that resolves once the entry behind ``answer`` is committed.

    Args:
        loop: the awaiting loop (the caller runs on it).
        answer: the Audit actor's answer to :class:`AppendDurable` (a ``supervisors.Future``
            whose value is the writer's ``concurrent.futures.Future``).
        timeout: seconds until the future gives up with :class:`TimeoutError` (the entry may
            still be committed later: the caller takes it for not durable).

    The future fails with the actor's error (the log unavailable: nothing was queued) or the
    writer's (the entry not written). Cancelling it cancels nothing on the way to the log.
    """
    waiter: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:  # on the loop
        if waiter.done():  # given up (timed out, cancelled) before the answer came
            return
        timer.cancel()
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def expire() -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError(f"not committed within {timeout} s"))

    timer = loop.call_later(timeout, expire)

    def wake(error: BaseException | None) -> None:  # on the actor's or the writer's thread
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    # Each callback's own failure wakes the waiter too: raised here it would reach only a logger,
    # and the trade would wait for its timeout.
    def on_commit(future: concurrent.futures.Future[Any]) -> None:  # the writer's thread
        try:
            error = future.exception()
        except BaseException as exc:  # noqa: BLE001 - cancelled, or anything: not committed
            error = exc
        wake(error)

    def on_answer(future: Any) -> None:  # the Audit actor's thread
        try:
            value, error = future.outcome()
            if error is not None:
                wake(error)
            elif not isinstance(value, concurrent.futures.Future):
                wake(TypeError(f"the audit actor answered {type(value).__name__}, not the commit's future"))
            else:
                value.add_done_callback(on_commit)
        except BaseException as exc:  # noqa: BLE001 - see above
            wake(exc)

    answer.add_done_callback(on_answer)
    return waiter
