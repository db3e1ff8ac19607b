"""The kill switch's pure rules, without a runtime: halt acks, the kill file, flatten admission."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xorj_actors.kill_switch import KillSwitchState
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._flatten import Flattening, flatten_refusal
from xorj_actors.kill_switch._kill_file import KillFile

_S = KillSwitchState


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_halt_completes_once_every_participant_acked_and_records_its_latency() -> None:
    clock = _Clock()
    acks = HaltAcks(clock)
    acks.triggered()
    acks.start_epoch(["a", "b"])
    assert not acks.completed()
    acks.ack("a")
    clock.now = 100.25
    assert not acks.completed()
    acks.ack("b")
    assert acks.completed() and acks.halt_latency == pytest.approx(0.25)
    assert not acks.completed()  # reported once
    assert acks.status({"a": "alpha", "b": "beta"}, halted=True) == {
        "acked": ("alpha", "beta"), "missing": (), "complete": True, "halt_latency_s": 0.25, "replaced": (),
    }


def test_a_silent_actor_given_up_on_holds_the_halt_until_its_replacement_acks() -> None:
    acks = HaltAcks(_Clock())
    acks.start_epoch(["a", "silent"])
    acks.ack("a")
    acks.give_up("silent", "worker")
    assert not acks.completed()
    status = acks.status({"a": "alpha"}, halted=True)
    assert status["missing"] == ("worker",) and status["replaced"] == ("worker",) and not status["complete"]
    acks.expect("new")  # the replacement registers during the halt
    acks.ack("new")
    assert not acks.completed()  # matched by name, as the runtime names it now
    acks.settle({"a": "alpha", "new": "worker"})
    assert acks.completed()


def test_a_participant_that_ends_is_no_longer_waited_for() -> None:
    acks = HaltAcks(_Clock())
    acks.start_epoch(["a", "gone"])
    acks.ack("a")
    acks.forget("gone")
    assert acks.completed()


def test_a_late_registration_is_expected_only_if_it_has_not_acked() -> None:
    acks = HaltAcks(_Clock())
    acks.start_epoch(["a"])
    acks.ack("a")
    assert not acks.expect("a")
    assert acks.expect("b") and acks.pending == {"b"}


def test_no_completion_before_a_halt_or_after_recovery() -> None:
    acks = HaltAcks(_Clock())
    acks.start_epoch([])
    assert acks.completed()  # nobody to wait for
    acks.clear()
    assert not acks.completed() and acks.trigger_mono is None


def test_the_kill_file_triggers_once_when_it_appears(tmp_path: Path) -> None:
    kill = KillFile(tmp_path / "KILL")
    assert kill.poll() is None and not kill.exists()
    kill.path.write_text("disk full on the signer host\nmore\n")
    assert kill.poll() == f"kill file {kill.path}: disk full on the signer host"
    assert kill.poll() is None  # still there: not a new trigger
    kill.path.unlink()
    assert kill.poll() is None
    kill.path.write_text("")
    assert kill.poll() == f"kill file {kill.path}"  # back again: triggers again


@pytest.mark.parametrize(
    ("state", "operator", "asked", "refusal"),
    [
        (_S.ARMED, "op", (), "flatten only while halted: the kill switch is ARMED (halt first)"),
        (_S.RECOVERY_PENDING, "op", (), "flatten only while halted: the kill switch is RECOVERY_PENDING (halt first)"),
        (_S.REDUCING, "op", (), "a flatten is already under way (?)"),
        (_S.TRIGGERED, "", (), "operator and reason must not be empty"),
        (_S.TRIGGERED, "op", ("v1", "nope"), "unknown vault(s), or not running: nope"),
        (_S.MAINTENANCE, "op", ("v1",), None),
        (_S.TRIGGERED, "op", (), None),
    ],
)
def test_flatten_admission(state: KillSwitchState, operator: str, asked: tuple[str, ...], refusal: str | None) -> None:
    assert flatten_refusal(state, None, operator, "why", asked, {"v1", "v2"}) == refusal


def test_flatten_is_refused_with_no_vault_running() -> None:
    assert flatten_refusal(_S.TRIGGERED, None, "op", "why", (), set()) == "no vault is running"


def test_a_flatten_gives_up_on_the_vaults_yet_to_report() -> None:
    f = Flattening(flatten_id="f1", epoch=3, back_to="TRIGGERED", operator="op", reason="why",
                   vaults=("v1", "v2", "v3"), pending={"v1", "v2", "v3"})
    f.report("v2", 2, 1, "sold 2")
    f.give_up("timed out")
    assert f.status() == {
        "flatten_id": "f1",
        "flatten_pending": (),
        "flatten_results": (("v1", 0, 0, "timed out"), ("v2", 2, 1, "sold 2"), ("v3", 0, 0, "timed out")),
    }
    assert flatten_refusal(_S.REDUCING, f, "op", "why", (), {"v1"}) == "a flatten is already under way (f1)"


def test_a_fifo_as_the_kill_file_still_halts_at_once(tmp_path: Path) -> None:
    path = tmp_path / "KILL"
    os.mkfifo(path)
    assert KillFile(path).poll() == f"kill file {path}"  # reading a FIFO would block the halt
