"""The keys of ``xorj-actors top`` on textual's headless screen: no single key changes the engine."""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.top.fakes import TREE, FakeEngine, ks
from xorj_actors.top import CONFIRM_WORD, Poller, TopApp

#: Every key an operator could hit by mistake, except q (quits the view, not the engine).
KEYS = [c for c in string.ascii_lowercase + string.digits + "/.-" if c != "q"] + ["enter", "space", "up", "down"]


def run(scenario: Callable[[Any, FakeEngine], Awaitable[None]]) -> FakeEngine:
    engine = FakeEngine({"status": ks(), "tree": TREE, "trades": {}, "executor": {}, "breakers": [], "quotas": {},
                         "actor": {"name": "root", "class": "Supervisor", "state": "idle", "mailbox": 0, "restarts": 0,
                                   "stack": None}})

    async def main() -> None:
        app = TopApp(Poller(Path("/x.sock"), timeout=1.0, send=engine), refresh_s=0.1)
        async with app.run_test(size=(160, 50)) as pilot:
            await scenario(pilot, engine)

    asyncio.run(main())
    return engine


async def until(pilot: Any, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def halts(engine: FakeEngine) -> list[dict[str, Any]]:
    return [args for cmd, args in engine.calls if cmd == "halt"]


def test_no_single_key_and_no_unconfirmed_prompt_halts() -> None:
    async def scenario(pilot: Any, engine: FakeEngine) -> None:
        await until(pilot, lambda: "tree" in engine.asked)
        for key in KEYS:
            await pilot.press(key)
            await pilot.pause()
            await pilot.press("escape")  # closes the prompt a key opened, if any
            await pilot.pause()
        for word in ("", "halt", "HALT!", "yes"):  # anything but the word itself
            await pilot.press("h", *word, "enter")
            await pilot.pause()

    engine = run(scenario)
    assert halts(engine) == []


def test_h_and_g_with_the_typed_word_halt_in_their_mode() -> None:
    async def scenario(pilot: Any, engine: FakeEngine) -> None:
        await until(pilot, lambda: "tree" in engine.asked)
        await pilot.press("h", *CONFIRM_WORD, "enter")
        await until(pilot, lambda: len(halts(engine)) == 1)
        await pilot.press("g", *CONFIRM_WORD, "enter")
        await until(pilot, lambda: len(halts(engine)) == 2)

    engine = run(scenario)
    assert [a["mode"] for a in halts(engine)] == ["emergency", "graceful"]
    assert all("xorj-actors top" in a["reason"] for a in halts(engine))
