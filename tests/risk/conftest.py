"""Fixtures of the risk-monitor tests: a runtime, and recorders standing in for the kill switch
and the audit trail (registered under their real names, so the monitors find them as in the
engine)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from supervisors import Actor, Message, Runtime
from xorj_actors.audit import AUDIT_NAME, AuditEvent
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, HaltStatus
from xorj_actors.messages import Trigger


class Sync(Message):
    """A no-op asked of an actor: its reply means everything told before has been handled."""


class GetReceived(Message):
    """Ask a :class:`Recorder` for everything told to it so far (a tuple, oldest first)."""


class Recorder(Actor):
    """Keeps every message it is told; the test asks for them (:func:`received`)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.received: list[Any] = []
        if name is not None:
            self.runtime.register_name(name, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetReceived):
            return tuple(self.received)
        if not isinstance(message, Sync):
            self.received.append(message)
        return None


def received(recorder: Any) -> tuple[Any, ...]:
    """What the recorder behind ``recorder`` (a ref) has been told: an ask, so all told before."""
    return recorder.ask(GetReceived(), timeout=5)


class Recorded:
    """The kill switch's and the audit trail's recorders (refs), as the test sees them."""

    def __init__(self, ks: Any, audit: Any) -> None:
        self._ks = ks
        self._audit = audit

    def sync(self) -> None:
        """Return once both recorders have handled everything told to them before this call."""
        for recorder in (self._ks, self._audit):
            recorder.ask(Sync(), timeout=5)

    @property
    def triggers(self) -> list[Trigger]:
        return [m for m in received(self._ks) if isinstance(m, Trigger)]

    @property
    def events(self) -> list[AuditEvent]:
        return [m for m in received(self._audit) if isinstance(m, AuditEvent)]


@pytest.fixture
def board() -> HaltBoard:
    """An armed board (the kill switch would publish this once it has read its state)."""
    b = HaltBoard()
    b.publish(HaltStatus(state="ARMED", epoch=0, halted=False, factor=1.0))
    return b


@pytest.fixture
def recorded(runtime: Runtime) -> Recorded:
    """Recorders registered as ``kill_switch`` and ``audit``."""
    ks = Recorder.start(KILL_SWITCH_NAME)
    audit = Recorder.start(AUDIT_NAME)
    return Recorded(ks, audit)


class FakeClock:
    """A settable clock: ``clock()`` returns ``clock.t``."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def details(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.details_json)
