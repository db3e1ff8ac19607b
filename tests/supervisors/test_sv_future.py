"""The runtime's Future: awaited from an event loop, waited on from threads, pykka's combinators."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pykka
import pytest

from supervisors import Actor, BlockingCallInWorker, Future, Runtime


class Slow(Actor):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        self.gate.wait(5)
        return message * 2


def test_await_does_not_block_the_loop(runtime: Runtime) -> None:
    gate = threading.Event()
    ref = Slow.start(gate)

    async def main() -> tuple[int, int]:
        ticks = 0
        pending = asyncio.ensure_future(_await(ref.ask(21, block=False)))
        while not pending.done():
            ticks += 1
            if ticks == 20:
                gate.set()  # the loop ran 20 times while the ask was outstanding
            await asyncio.sleep(0.001)
        return ticks, pending.result()

    ticks, value = asyncio.run(main())
    assert value == 42
    assert ticks >= 20


async def _await(future: Future) -> Any:
    return await future


def test_await_raises_the_actors_exception(runtime: Runtime) -> None:
    ref = Slow.start(threading.Event())
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(_await(ref.ask("boom", block=False)))


def test_done_callback_runs_once_whenever_added() -> None:
    seen: list[Any] = []
    f = Future()
    f.add_done_callback(lambda fut: seen.append(("before", fut.outcome())))
    f.set(7)
    f.add_done_callback(lambda fut: seen.append(("after", fut.outcome())))
    assert seen == [("before", (7, None)), ("after", (7, None))]
    with pytest.raises(RuntimeError):
        Future().outcome()


# -- the one-shot lock: waits, timeouts, results ------------------------------------------------


def test_set_before_get_returns_at_once_every_time() -> None:
    f = Future()
    f.set(3)
    assert [f.get(timeout=0), f.get(timeout=0), f.get()] == [3, 3, 3]


def test_many_waiters_all_wake_on_one_set() -> None:
    f = Future()
    got: list[Any] = []
    started = threading.Barrier(9)

    def wait() -> None:
        started.wait(5)
        got.append(f.get(timeout=5))

    threads = [threading.Thread(target=wait) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait(5)
    f.set("x")
    for t in threads:
        t.join(5)
    assert got == ["x"] * 8
    assert f.get(timeout=0) == "x"  # and any later get


def test_get_times_out_and_the_result_still_arrives_later() -> None:
    f = Future()
    with pytest.raises(pykka.Timeout):
        f.get(timeout=0.01)
    with pytest.raises(pykka.Timeout):
        f.get(timeout=-1)  # a deadline already past: no wait, no ValueError
    threading.Timer(0.02, f.set, args=(5,)).start()
    assert f.get(timeout=5) == 5


def test_an_exception_is_raised_from_every_get() -> None:
    f = Future()
    try:
        raise ValueError("bad")
    except ValueError:
        f.set_exception()
    for _ in range(2):
        with pytest.raises(ValueError, match="bad"):
            f.get(timeout=0)
    value, error = f.outcome()
    assert value is None and isinstance(error, ValueError)
    g = Future()
    g.set_exception((KeyError, None, None))  # a type without an instance, as pykka allows
    with pytest.raises(KeyError):
        g.get(timeout=0)


def test_a_second_result_is_refused() -> None:
    f = Future()
    f.set(1)
    with pytest.raises(queue.Full):
        f.set(2)
    with pytest.raises(queue.Full):
        f.set_exception((ValueError, ValueError(), None))
    assert f.get(timeout=0) == 1


def test_callbacks_run_once_in_order_and_a_broken_one_spares_the_rest() -> None:
    f = Future()
    seen: list[int] = []

    def broken(_: Future) -> None:
        raise RuntimeError("callback bug")

    f.add_done_callback(lambda _: seen.append(1))
    f.add_done_callback(broken)
    f.add_done_callback(lambda _: seen.append(2))
    try:
        raise ValueError("x")
    except ValueError:
        f.set_exception()
    assert seen == [1, 2]


def test_pykka_combinators_work_through_the_get_hook() -> None:
    a, b = Future(), Future()
    doubled = a.map(lambda v: v * 2)
    evens = b.filter(lambda v: v % 2 == 0)
    both = a.join(b)
    total = b.reduce(lambda x, y: x + y, 10)
    a.set(4)
    b.set([1, 2, 3, 4])
    assert doubled.get(timeout=1) == 8
    assert evens.get(timeout=1) == [2, 4]
    assert both.get(timeout=1) == [4, [1, 2, 3, 4]]
    assert total.get(timeout=1) == 20
    assert pykka.get_all([a, doubled], timeout=1) == [4, 8]
    with pytest.raises(queue.Full):
        doubled.set(1)  # a hooked future takes no result


def test_a_waiter_already_inside_get_runs_a_hook_set_meanwhile() -> None:
    f = Future()
    threading.Timer(0.02, f.set_get_hook, args=(lambda timeout: ("hooked", timeout),)).start()
    assert f.get(timeout=5) == ("hooked", 5)


def test_ask_of_a_stopped_actor_answers_actor_dead_through_the_future(runtime: Runtime) -> None:
    ref = Slow.start(threading.Event())
    ref.stop(timeout=5)
    future = ref.ask(1, block=False)
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=0)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(1)


def test_a_pooled_actor_cannot_block_on_a_future(runtime: Runtime) -> None:
    class Blocker(Actor):
        def on_receive(self, message: Any) -> Any:
            done = Future()
            done.set(1)
            assert done.get() == 1  # a set future never waits: allowed anywhere
            try:
                Future().get(timeout=0.01)
            except BlockingCallInWorker:
                return "refused"
            return "waited"

    ref = Blocker.start()
    assert ref.ask("go", timeout=5) == "refused"
