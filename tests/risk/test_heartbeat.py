"""HeartbeatWatchdog: a blocked essential actor and a dead one halt trading; healthy ones do not.

The watchdog's clock is a FakeClock the test moves: its checks run on their real timer, its
timeouts in the test's time, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from supervisors import ChildSpec, Restart, Runtime, Supervisor
from tests.helpers import wait_until
from tests.risk.conftest import FakeClock, Recorded, details
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.risk import ForgetEssential, GetHeartbeatStatus, HeartbeatStatus, HeartbeatWatchdog, RiskSettings

TIMEOUT = 10.0
SETTINGS = dataclasses.replace(
    RiskSettings(),
    essential_actors=("confirmation", "strategy_feed", "signer:*", "executor"),
    heartbeat_interval_s=0.02,
    heartbeat_timeout_s=TIMEOUT,
)


class Worker(Participant):
    """A stand-in essential actor: ``work`` is short, ``hang`` blocks until released, ``crash`` fails."""

    dedicated_thread: ClassVar[bool] = True  # its test handlers sleep and block
    gate: ClassVar[threading.Event] = threading.Event()
    entered: ClassVar[threading.Event] = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "work":
            time.sleep(0.002)
        elif message == "hang":
            self.entered.set()
            self.gate.wait(10)
        elif message == "crash":
            raise RuntimeError("crash on purpose")
        else:
            return super().on_receive(message)
        return None


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    Worker.gate.clear()
    Worker.entered.clear()
    try:
        yield Worker.gate
    finally:
        Worker.gate.set()  # never leave a worker blocked behind the test


def tree(board: HaltBoard, temporary: frozenset[str] = frozenset()) -> Any:
    names = ("confirmation", "strategy_feed", "signer:a", "signer:b", "vault-0001")
    specs = [
        ChildSpec(n, lambda: Worker.start(board), restart=Restart.TEMPORARY if n in temporary else Restart.PERMANENT)
        for n in names
    ]
    sup = Supervisor.start(specs, max_restarts=10, period=5.0, name="test-tree")
    return sup


def child(runtime: Runtime, name: str) -> Any:
    """The live actor called ``name``, or None (e.g. between a death and its restart)."""
    for info in runtime.actors():
        if info.name == name and info.ref is not None:
            return info.ref
    return None


WATCHED = ("confirmation", "signer:a", "signer:b", "strategy_feed")  # "executor" never exists here


def hb(ref: Any) -> HeartbeatStatus:
    return ref.ask(GetHeartbeatStatus(), timeout=5)


def beats(ref: Any, n: int = 3) -> HeartbeatStatus:
    """Wait until the watchdog has run ``n`` more checks; return its status."""
    start = hb(ref).checks
    wait_until(lambda: hb(ref).checks >= start + n, what=f"{n} heartbeat checks")
    return hb(ref)


def test_healthy_actors_busy_or_idle_restarted_or_absent_are_fine(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, gate: threading.Event
) -> None:
    tree(board)
    clock = FakeClock(1000.0)
    wd = HeartbeatWatchdog.start(board, SETTINGS, clock=clock)
    wait_until(lambda: hb(wd).watched == WATCHED, what="the whole tree watched")
    confirmation = child(runtime, "confirmation")
    for _ in range(100):  # busy for every check below, but making progress
        confirmation.tell("work")
    signer = child(runtime, "signer:a")
    signer.tell("crash")  # its supervisor restarts it at once
    wait_until(lambda: child(runtime, "signer:a") not in (None, signer), what="signer restarted")
    for _ in range(8):
        clock.t += TIMEOUT / 4  # two timeouts in all, with checks in between
        beats(wd, 2)
    recorded.sync()
    assert recorded.triggers == []
    status = hb(wd)
    assert status.stuck == () and status.missing == () and status.triggers == 0
    assert status.watched == WATCHED


def test_an_actor_stuck_in_a_handler_triggers_once_per_episode(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, gate: threading.Event
) -> None:
    tree(board)
    clock = FakeClock(1000.0)
    wd = HeartbeatWatchdog.start(board, SETTINGS, clock=clock)
    wait_until(lambda: hb(wd).watched == WATCHED, what="the whole tree watched")
    confirmation = child(runtime, "confirmation")
    confirmation.tell("hang")
    confirmation.tell("work")  # queued behind the stuck handler
    assert Worker.entered.wait(5)
    beats(wd)  # the watchdog has seen it stuck: its timeout starts from here
    clock.t += TIMEOUT - 0.5
    beats(wd)
    recorded.sync()
    assert recorded.triggers == []  # not yet: short of the timeout
    clock.t += 1.0
    wait_until(lambda: hb(wd).triggers == 1, what="stuck trigger")
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.mode.value == "graceful" and trigger.source == "risk:heartbeat"
    assert trigger.reason.startswith(
        "essential actor confirmation stuck: no progress for 10.5 s >= timeout 10 s (state running, 1 queued, last message str)"
    )
    (event,) = [e for e in recorded.events if e.event_type == "HALT"]
    assert event.severity == "CRITICAL"
    d = details(event)
    assert d["actor"] == "confirmation" and d["problem"] == "stuck" and d["check"] == "heartbeat"
    assert d["stalled_s"] == pytest.approx(10.5) and d["timeout_s"] == TIMEOUT and d["queued"] == 1
    assert any("gate.wait" in frame for frame in d["stack"]), d["stack"]
    clock.t += 3 * TIMEOUT  # still stuck: the same episode
    assert beats(wd).stuck == ("confirmation",)
    recorded.sync()
    assert len(recorded.triggers) == 1
    gate.set()
    wait_until(lambda: hb(wd).stuck == (), what="unstuck")
    gate.clear()
    Worker.entered.clear()
    confirmation.tell("hang")  # a new episode
    assert Worker.entered.wait(5)
    beats(wd)
    clock.t += TIMEOUT
    wait_until(lambda: hb(wd).triggers == 2, what="second stuck trigger")


def test_a_dead_actor_triggers_after_the_timeout_and_a_restarted_one_does_not(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, gate: threading.Event
) -> None:
    tree(board, temporary=frozenset({"strategy_feed"}))  # never restarted
    clock = FakeClock(1000.0)
    wd = HeartbeatWatchdog.start(board, SETTINGS, clock=clock)
    wait_until(lambda: hb(wd).watched == WATCHED, what="the whole tree watched")
    signer = child(runtime, "signer:b")
    child(runtime, "strategy_feed").tell("crash")
    signer.tell("crash")
    wait_until(lambda: "strategy_feed" not in hb(wd).watched, what="strategy_feed gone")
    wait_until(lambda: child(runtime, "signer:b") not in (None, signer), what="signer restarted")
    clock.t += TIMEOUT - 0.5
    beats(wd)
    recorded.sync()
    assert recorded.triggers == []
    clock.t += 1.0
    wait_until(lambda: hb(wd).triggers == 1, what="missing trigger")
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.reason.startswith("essential actor strategy_feed missing: no live actor for 10.5 s >= timeout 10 s")
    d = details([e for e in recorded.events if e.event_type == "HALT"][0])
    assert d["actor"] == "strategy_feed" and d["problem"] == "missing" and d["missing_s"] == pytest.approx(10.5)
    clock.t += 3 * TIMEOUT
    status = beats(wd)
    assert status.missing == ("strategy_feed",) and status.triggers == 1  # once per episode
    wd.tell(ForgetEssential(name="strategy_feed"))  # removed on purpose after all
    assert beats(wd).missing == ()
    recorded.sync()
    assert len(recorded.triggers) == 1
