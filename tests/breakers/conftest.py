"""Fixtures of the breaker tests: a runtime, a settable clock, an audit recorder, a real kill switch."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from supervisors import Actor, Runtime
from tests.helpers import wait_until
from xorj_actors.audit import AUDIT_NAME, AuditEvent
from xorj_actors.breakers import BREAKERS, Breaker, BreakerBoard, BreakerEvent, BreakerSettings, GetBreakerStatus
from xorj_actors.kill_switch import KillSwitchSettings
from xorj_actors.kill_switch import KILL_SWITCH_NAME, GetStatus, HaltBoard, HaltStatus, KillSwitch, KillSwitchStatus


class Clock:
    """A clock the test sets; the breaker reads it when it handles a message."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class AuditRecorder(Actor):
    """Registered as the audit actor: keeps every AuditEvent told to it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[AuditEvent] = []
        self.runtime.register_name(AUDIT_NAME, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, AuditEvent):
            self.events.append(message)
        return None

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(e.details_json) | {"_severity": e.severity, "_type": e.event_type} for e in list(self.events)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def halt_board() -> HaltBoard:
    return HaltBoard()


@pytest.fixture
def armed(halt_board: HaltBoard) -> HaltBoard:
    """A halt board saying ARMED, for tests without a kill switch."""
    halt_board.publish(HaltStatus(state="ARMED", epoch=0, halted=False, factor=1.0))
    return halt_board


@pytest.fixture
def board() -> BreakerBoard:
    return BreakerBoard(BREAKERS)


@pytest.fixture
def solo() -> BreakerBoard:
    """A board with the one slot of trade_failure_rate, for tests of one breaker alone."""
    return BreakerBoard(("trade_failure_rate",))


@pytest.fixture
def audit(runtime: Runtime) -> AuditRecorder:
    ref = AuditRecorder.start()
    return ref.actor_inbox.actor


@pytest.fixture
def start_breaker(runtime: Runtime, halt_board: HaltBoard, board: BreakerBoard, clock: Clock) -> Callable[..., Any]:
    def start(name: str, settings: BreakerSettings | None = None, **kw: Any) -> Any:
        kw.setdefault("breakers", board)
        kw.setdefault("clock", clock)
        return Breaker.start(halt_board, name, settings, **kw)

    return start


@pytest.fixture
def start_kill_switch(runtime: Runtime, halt_board: HaltBoard, tmp_path: Path) -> Callable[[], Any]:
    """A real KillSwitch on a private data directory; waits until it has published ARMED."""

    def start() -> Any:
        data_dir = tmp_path / "var"
        data_dir.mkdir(exist_ok=True)
        ref = KillSwitch.start(KillSwitchSettings(ack_deadline_s=0.5), data_dir, halt_board, environ={})
        wait_until(lambda: halt_board.status.state == "ARMED", 5, "kill switch armed")
        return ref

    return start


def ks_status(runtime: Runtime) -> KillSwitchStatus:
    ref = runtime.whereis(KILL_SWITCH_NAME)
    assert ref is not None
    return ref.ask(GetStatus(), timeout=5)


def send(ref: Any, clock: Clock, t: float, ok: bool, name: str, detail: str = "") -> None:
    """Set the clock to ``t`` and have the breaker handle one event (ask: handled on return)."""
    clock.t = t
    ref.ask(BreakerEvent(breaker=name, ok=ok, detail=detail), timeout=5)


def status(ref: Any) -> Any:
    return ref.ask(GetBreakerStatus(), timeout=5)


def limits_with(name: str, **changes: Any) -> BreakerSettings:
    """Default settings with some limits of breaker ``name`` changed."""
    base = BreakerSettings()
    return replace(base, **{name: replace(base.limits(name), **changes)})
