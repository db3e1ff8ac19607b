"""The trip (a Trigger halts the board on the sender's thread) and the participant lane (issue 15).

Real kill switches on a runtime of their own; the kill switch is held busy where a test needs it
to lag (its ``status`` made to wait on an event), so what happens before it runs is observable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pykka import ActorDeadError

from supervisors import Runtime
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS, authorise
from xorj_actors.kill_switch import (
    GetStatus,
    HaltBoard,
    HaltStatus,
    KillSwitch,
    KillSwitchSettings,
    KillSwitchStatus,
    Participant,
    Recover,
)
from xorj_actors.kill_switch._lane import ParticipantLane
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Resume, Trigger


def _trigger(reason: str = "t") -> Trigger:
    return Trigger(mode=HaltMode.EMERGENCY, reason=reason, source="test")


def _status(ks: Any) -> KillSwitchStatus:
    return ks.ask(GetStatus(), timeout=5)


def _start(tmp_path: Path, board: HaltBoard, **kw: Any) -> Any:
    ks = KillSwitch.start(KillSwitchSettings(cooldown_s=0), tmp_path, board, environ=RECOVERY_KEYS, **kw)
    wait_until(lambda: board.status.state != "STARTING", what="kill switch started")
    return ks


@contextmanager
def busy(ks: Any) -> Iterator[Any]:
    """Hold the kill switch inside a handler until the block ends; yields the actor."""
    actor = ks.actor_inbox.actor
    entered, gate = threading.Event(), threading.Event()
    real = actor.status

    def held() -> KillSwitchStatus:
        entered.set()
        gate.wait(10)
        return real()

    actor.status = held
    answer = ks.ask(GetStatus(), block=False)
    assert entered.wait(5), "the kill switch did not take the message"
    try:
        yield actor
    finally:
        gate.set()
        answer.get(timeout=5)
        del actor.status


class Worker(Participant):
    """A participant that records what it was told."""

    def __init__(self, board: HaltBoard, register: bool = True) -> None:
        super().__init__(board)
        self.register = register
        self.told: list[Any] = []

    def on_start(self) -> None:
        if self.register:
            super().on_start()

    def on_halt(self, halt: Halt) -> int:
        self.told.append(halt)
        return 0

    def on_resume(self, resume: Resume) -> None:
        self.told.append(resume)


# -- the board ---------------------------------------------------------------------------------


def test_a_trip_halts_at_the_next_epoch_and_an_older_decision_is_dropped() -> None:
    board = HaltBoard()
    assert board.publish(HaltStatus(state="ARMED", epoch=3, halted=False, factor=1.0), trips_seen=0)
    assert board.trip() == 4
    assert (board.status.state, board.status.epoch, board.status.halted) == ("TRIGGERED", 4, True)
    # A recovery decided at epoch 3 just before the trip cannot loosen it.
    assert not board.publish(HaltStatus(state="RECOVERY_PENDING", epoch=3, halted=False, factor=0.5), trips_seen=1)
    # Nor can a later decision from a kill switch that has not handled the trip yet.
    assert not board.publish(HaltStatus(state="ARMED", epoch=9, halted=False, factor=1.0), trips_seen=0)
    assert board.status.epoch == 4 and board.status.halted
    assert board.publish(HaltStatus(state="TRIGGERED", epoch=4, halted=True, factor=0.0), trips_seen=1)
    assert board.publish(HaltStatus(state="RECOVERY_PENDING", epoch=4, halted=False, factor=0.5), trips_seen=1)


def test_the_board_is_decided_only_once_a_kill_switch_has_published() -> None:
    """The executor settles read-back trades only once ``decided`` (a STARTING board refuses the
    signature a trade whose blockhash expired while down needs): a trip alone does not decide it."""
    board = HaltBoard()
    assert not board.decided and board.status.state == "STARTING"
    board.trip()
    assert not board.decided
    assert board.publish(HaltStatus(state="TRIGGERED", epoch=1, halted=True, factor=0.0), trips_seen=1)
    assert board.decided


def test_the_lane_wakes_once_per_drain_and_keeps_the_order() -> None:
    lane = ParticipantLane()
    acks = [HaltAck(epoch=1, actor=f"u{i}", in_flight=0) for i in range(3)]
    assert [lane.push(a) for a in acks] == [True, False, False]
    assert list(lane.drain()) == acks and len(lane) == 0
    assert lane.push(acks[0])  # the first since the drain wakes again


# -- the trip ----------------------------------------------------------------------------------


def test_a_trigger_trips_the_board_before_the_kill_switch_runs(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    ks = _start(tmp_path, board)
    assert board.status.state == "ARMED"
    with busy(ks) as actor:
        ks.tell(_trigger())
        # Shown at once, on this thread; the kill switch has not handled the Trigger yet.
        assert (board.status.halted, board.status.epoch) == (True, 1)
        assert actor.persisted.state.value == "ARMED"
    wait_until(lambda: _status(ks).state == "TRIGGERED", what="triggered")
    status = _status(ks)
    assert status.epoch == 1 and board.status == HaltStatus(state="TRIGGERED", epoch=1, halted=True, factor=0.0)


class RecordingBoard(HaltBoard):
    """A real board that also records every status it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[HaltStatus] = []

    def publish(self, status: HaltStatus, *, trips_seen: int | None = None) -> bool:
        accepted = super().publish(status, trips_seen=trips_seen)
        if accepted:
            self.shown.append(status)
        return accepted


def test_a_recovery_decided_just_before_a_trip_does_not_loosen_the_board(runtime: Runtime, tmp_path: Path) -> None:
    board = RecordingBoard()
    ks_box: list[Any] = []

    def durable(kind: str, details: dict[str, Any]) -> None:
        if details.get("what") == "recovery accepted":  # decided, durable, not yet published
            ks_box[0].tell(_trigger("during the recovery"))

    ks = _start(tmp_path, board, on_event_durable=durable)
    ks_box.append(ks)
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).state == "TRIGGERED", what="triggered")
    since = len(board.shown)
    outcome = ks.ask(Recover(operator="op", **authorise(1)), timeout=5)
    assert outcome.accepted, outcome.reason
    wait_until(lambda: _status(ks).epoch == 2, what="the trip's halt")
    assert _status(ks).state == "TRIGGERED" and board.status.halted
    assert board.shown[since:] and all(s.halted for s in board.shown[since:]), board.shown  # never loosened


def test_a_trigger_to_a_dead_kill_switch_raises_and_the_next_one_starts_halted(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    dead = _start(tmp_path, board)
    dead.stop()
    with pytest.raises(ActorDeadError, match="not found"):  # the original error, as before
        dead.tell(_trigger())
    assert board.status.halted and board.status.epoch == 1
    successor = _start(tmp_path, board)
    wait_until(lambda: _status(successor).state == "TRIGGERED", what="started halted")
    assert board.status.halted


def test_a_trigger_to_a_replaced_kill_switch_goes_on_to_its_successor(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    old = _start(tmp_path, board)
    old.stop()
    successor = _start(tmp_path, board)
    old.tell(_trigger("to the old one"))  # no error: the successor takes it
    wait_until(lambda: _status(successor).state == "TRIGGERED", what="the successor halted")
    assert _status(successor).reason == "to the old one"


# -- the participant lane --------------------------------------------------------------------


def test_every_ack_is_counted_over_three_consecutive_halts(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    ks = _start(tmp_path, board)
    workers = [Worker.start(board) for _ in range(300)]
    wait_until(lambda: _status(ks).registered == len(workers), what="every worker registered")
    ks_box = ks.actor_inbox
    for n in (1, 2, 3):
        before = ks_box.processed
        ks.tell(_trigger(f"halt {n}"))
        wait_until(lambda: (s := _status(ks)).epoch == n and s.complete, what=f"halt {n} complete")
        status = _status(ks)
        assert len(status.acked) == len(workers) and status.missing == ()
        # The acks came in batches: far fewer kill-switch messages than acks.
        assert ks_box.processed - before < len(workers)
    assert all(len([m for m in w.actor_inbox.actor.told if isinstance(m, Halt)]) == 3 for w in workers)


def test_a_batch_is_drained_in_order_with_one_broadcast_per_kind(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    ks = _start(tmp_path, board)
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).complete, what="halted")
    late = [Worker.start(board, register=False) for _ in range(5)]
    calls: list[tuple[int, str]] = []
    real = runtime.broadcast

    def counted(refs: Any, message: Any) -> Any:
        refs = list(refs)
        calls.append((len(refs), type(message).__name__))
        return real(refs, message)

    with busy(ks):
        runtime.broadcast = counted  # type: ignore[method-assign]
        for w in late:  # each registered as if before the halt: it must be told the halt
            ks.tell(Register(urn=w.actor_urn, name="Worker", role="worker", epoch=0, halted=False, factor=1.0))
        assert len(ks.actor_inbox) == 1  # one wake for the whole batch
    try:
        wait_until(lambda: (s := _status(ks)).registered == 5 and s.complete, what="the late ones acked")
    finally:
        runtime.broadcast = real  # type: ignore[method-assign]
    assert calls == [(5, "Halt")]
    assert all(any(isinstance(m, Halt) for m in w.actor_inbox.actor.told) for w in late)


def test_a_participant_started_on_the_current_decision_is_told_nothing(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    ks = _start(tmp_path, board)
    armed = Worker.start(board)
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).complete and _status(ks).registered == 1, what="halted")
    halted = Worker.start(board)  # starts halted on epoch 1: its own ack, no Halt
    wait_until(lambda: (s := _status(ks)).registered == 2 and s.complete, what="registered and acked")
    assert halted.actor_inbox.actor.told == []
    assert [type(m) for m in armed.actor_inbox.actor.told] == [Halt]


def test_participants_are_named_as_the_runtime_names_them_now(runtime: Runtime, tmp_path: Path) -> None:
    board = HaltBoard()
    ks = _start(tmp_path, board)
    with busy(ks):
        worker = Worker.start(board)  # registers as "Worker" ...
        wait_until(lambda: len(ks.actor_inbox.actor.lane) == 1, what="its registration")
        worker.actor_inbox.name = "audit"  # ... then its supervisor names it
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).complete and _status(ks).registered == 1, what="acked")
    assert _status(ks).acked == ("audit",)


def test_a_registration_told_past_the_lane_is_still_counted(runtime: Runtime, tmp_path: Path) -> None:
    """A Register that reaches the mailbox itself (a plain ref, not KillSwitchRef) is not dropped:
    that actor would never be told a Halt."""
    from pykka._envelope import Envelope

    board = HaltBoard()
    ks = _start(tmp_path, board)
    worker = Worker.start(board, register=False)
    ks.actor_inbox.put(Envelope(Register(urn=worker.actor_urn, name="w", role="worker")))
    wait_until(lambda: _status(ks).registered == 1, what="registered")
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).complete, what="the halt acked")
    # A Register without its start decision gets the current one (a Resume), then the Halt.
    assert [type(m) for m in worker.actor_inbox.actor.told] == [Resume, Halt]


def test_a_trigger_cannot_carry_an_epoch_past_the_board(runtime: Runtime, tmp_path: Path) -> None:
    """Only a trip sets a Trigger's epoch; one told past the ref with a made-up epoch is clamped."""
    from pykka._envelope import Envelope

    board = HaltBoard()
    ks = _start(tmp_path, board)
    before = board.status.epoch
    ks.actor_inbox.put(Envelope(Trigger(mode=HaltMode.EMERGENCY, reason="t", source="test", epoch=10**6)))
    wait_until(lambda: _status(ks).state == "TRIGGERED", what="halted")
    assert _status(ks).epoch == before + 1 == board.status.epoch


def test_a_replacement_that_acked_before_it_was_named_completes_the_halt_at_the_deadline(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Nothing pending, a replacement awaited by name: its ack came while it still had its class
    name. The next ack deadline looks again (it used to return early: the halt never completed)."""
    from pykka._envelope import Envelope

    from xorj_actors.kill_switch._roll import _AckDeadline

    board = HaltBoard()
    ks = _start(tmp_path, board)
    worker = Worker.start(board)
    wait_until(lambda: _status(ks).registered == 1, what="registered")
    ks.tell(_trigger())
    wait_until(lambda: _status(ks).complete, what="halted")
    with busy(ks) as actor:  # as the race leaves it: acked as "Worker", awaited as "audit"
        actor.acks.halt_latency = None
        actor.acks.awaiting_replacement = {"audit"}
        worker.actor_inbox.name = "audit"  # its supervisor names it now
        ks.actor_inbox.put(Envelope(_AckDeadline(epoch=board.status.epoch)))
    wait_until(lambda: _status(ks).complete, what="the halt completed at the deadline")
    assert _status(ks).acked == ("audit",) and _status(ks).missing == ()
