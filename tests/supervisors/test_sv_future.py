"""Futures awaited from an event loop: the loop keeps running while an actor works."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from supervisors import Actor, Future, Runtime


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
