"""The KillSwitch actor on a runtime of its own: the order of its writes (issue 11 items 1 and 6).

No engine: the audit side is injected. ``RefusingAudit`` is a named fake, for the one fault that
cannot be caused for real in a test without breaking the engine around it: an audit log that
refuses a durable entry while the kill switch itself is fine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from supervisors import Runtime
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS, authorise
from xorj_actors.kill_switch import GetStatus, HaltBoard, HaltStatus, KillSwitch, KillSwitchSettings, Recover
from xorj_actors.messages import HaltMode, Trigger


class BoardWatchingClock:
    """The wall clock, recording at every reading whether the halt board showed a halt then."""

    def __init__(self, board: HaltBoard) -> None:
        self.board = board
        self.readings: list[tuple[float, int, bool]] = []

    def __call__(self) -> float:
        now = time.time()
        status = self.board.status
        self.readings.append((now, status.epoch, status.halted))
        return now


def test_the_halt_time_is_read_after_the_board_shows_the_halt(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    clock = BoardWatchingClock(board)
    ks = KillSwitch.start(KillSwitchSettings(), tmp_path, board, environ={}, clock=clock)
    wait_until(lambda: board.status.state == "ARMED", what="armed")
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="t", source="test"))
    wait_until(lambda: ks.ask(GetStatus(), timeout=5).state == "TRIGGERED", what="triggered")
    triggered_at = ks.ask(GetStatus(), timeout=5).triggered_at
    (reading,) = [r for r in clock.readings if r[0] == triggered_at]
    # A signer that saw epoch 0 unhalted saw it before this reading: the board already said epoch 1.
    assert reading[1:] == (1, True)


class RefusingAudit:
    """FAKE audit log: takes ordinary entries, refuses every durable one (as a log that is down)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, details: dict[str, Any]) -> None:
        self.entries.append((kind, details))

    def durable(self, kind: str, details: dict[str, Any]) -> None:
        raise RuntimeError("audit log unavailable")


def test_a_recovery_the_audit_log_refuses_changes_nothing(runtime: Runtime, tmp_path: Path) -> None:
    board, audit = HaltBoard(), RefusingAudit()
    settings = KillSwitchSettings(cooldown_s=0)
    ks = KillSwitch.start(
        settings, tmp_path, board, environ=RECOVERY_KEYS, on_event=audit.event, on_event_durable=audit.durable
    )
    wait_until(lambda: board.status.state == "TRIGGERED", what="a first start it cannot record starts halted")
    status = ks.ask(GetStatus(), timeout=5)
    assert "first start could not be recorded durably" in status.reason
    before = (tmp_path / "kill_switch.json").read_text()
    outcome = ks.ask(Recover(operator="op", **authorise(status.epoch)), timeout=5)
    assert not outcome.accepted and "audit log did not take it" in outcome.reason
    assert board.status.halted and (tmp_path / "kill_switch.json").read_text() == before
    assert json.loads(before)["state"] == "TRIGGERED"


def test_a_kill_switch_that_dies_between_publishing_a_halt_and_writing_it_restarts_halted(
    runtime: Runtime, tmp_path: Path
) -> None:
    """The supervisor's restart must not read the older ARMED file and undo the published halt.

    The crash is staged: the first kill switch is stopped while ARMED, and the board is then made
    to show what it would have published just before dying (the halt of epoch 1, not yet written).
    """
    board = HaltBoard()
    first = KillSwitch.start(KillSwitchSettings(), tmp_path, board, environ={})
    wait_until(lambda: board.status.state == "ARMED", what="armed")
    first.stop()
    board.publish(HaltStatus(state="TRIGGERED", epoch=1, halted=True, factor=0.0))
    assert json.loads((tmp_path / "kill_switch.json").read_text())["state"] == "ARMED"
    second = KillSwitch.start(KillSwitchSettings(), tmp_path, board, environ={})
    status = second.ask(GetStatus(), timeout=5)
    assert status.state == "TRIGGERED" and status.epoch == 2, status
    assert "epoch 1 was in force" in status.reason
    assert board.status.halted and board.status.epoch == 2
