"""The one-wake wait for a durable append (execution/_committed.py): it ends with the writer's
commit, with the actor's or the writer's error, or at its timeout; never before the commit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from supervisors import Future
from xorj_actors.execution._committed import committed


def _answer_from_thread(value: object = None, error: BaseException | None = None) -> Future:
    answer = Future()

    def run() -> None:
        if error is None:
            answer.set(value)
        else:
            try:
                raise error
            except BaseException:  # noqa: BLE001 - handed to the future
                answer.set_exception()

    threading.Thread(target=run).start()
    return answer


def test_it_resolves_only_once_the_writer_commits() -> None:
    async def run() -> None:
        commit: concurrent.futures.Future[object] = concurrent.futures.Future()
        waiter = committed(asyncio.get_running_loop(), _answer_from_thread(commit), timeout=5)
        await asyncio.sleep(0.05)
        assert not waiter.done()  # the actor answered; nothing is committed yet
        threading.Thread(target=commit.set_result, args=("entry",)).start()
        await asyncio.wait_for(waiter, 5)

    asyncio.run(run())


@pytest.mark.parametrize("where", ["actor", "writer"])
def test_the_actors_or_the_writers_error_fails_it(where: str) -> None:
    async def run() -> None:
        commit: concurrent.futures.Future[object] = concurrent.futures.Future()
        if where == "actor":
            answer = _answer_from_thread(error=RuntimeError("log unavailable"))
        else:
            answer = _answer_from_thread(commit)
            commit.set_exception(RuntimeError("not written"))
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(committed(asyncio.get_running_loop(), answer, timeout=5), 5)

    asyncio.run(run())


def test_no_answer_times_out() -> None:
    async def run() -> None:
        with pytest.raises(TimeoutError):
            await committed(asyncio.get_running_loop(), Future(), timeout=0.05)

    asyncio.run(run())


def test_a_cancelled_commit_fails_it_at_once_not_at_its_timeout() -> None:
    """A failure inside the callbacks (here, the writer's future cancelled: ``exception()`` raises)
    wakes the waiter with it; it used to reach only a logger and leave the trade to its timeout."""

    async def run() -> None:
        commit: concurrent.futures.Future[object] = concurrent.futures.Future()
        waiter = committed(asyncio.get_running_loop(), _answer_from_thread(commit), timeout=30)
        await asyncio.sleep(0.05)
        commit.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            await asyncio.wait_for(waiter, 5)

    asyncio.run(run())
