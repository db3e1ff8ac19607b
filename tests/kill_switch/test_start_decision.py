"""The kill switch's start-up decision and its files, without a runtime (issue 11 items 1-4).

The decision is pure (``_start_decision.decide``): the state file's reading, the audit log's history and
the halt marker in, the state to start in out. The files are real files in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xorj_actors.kill_switch import (
    FileReading,
    HaltHistory,
    HaltMarker,
    KillSwitchState,
    PersistedState,
    StateFile,
    Transition,
    decide,
    derive_state_key,
    env_halt_request,
    nonce_digest,
)

_S = KillSwitchState
KEY = derive_state_key(b"k" * 32)


def authentic(state: PersistedState) -> FileReading:
    return FileReading(present=True, state=state)


def history(state: KillSwitchState, epoch: int, factor: float = 1.0, **kw) -> HaltHistory:
    return HaltHistory(has_history=True, last=Transition(state, epoch, factor), max_epoch=epoch, **kw)


# -- the decision ---------------------------------------------------------------------------------


def test_only_no_file_and_an_empty_log_is_a_first_start() -> None:
    d = decide(FileReading(present=False), HaltHistory())
    assert d.first_start and d.state.state is _S.ARMED and d.state.epoch == 0 and d.halt is None


def test_a_deleted_state_file_with_history_in_the_log_starts_triggered_past_the_last_epoch() -> None:
    d = decide(FileReading(present=False), history(_S.TRIGGERED, 5))
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 6 and not d.first_start
    assert "state file is missing" in d.halt


@pytest.mark.parametrize(
    "problem", ["unreadable (Is a directory)", "corrupt: not UTF-8", "not authenticated: the mac does not verify"]
)
def test_an_untrusted_state_file_starts_triggered_and_says_why(problem: str) -> None:
    d = decide(FileReading(present=True, problem=problem), history(_S.ARMED, 3))
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 4 and problem in d.halt
    # Even with an empty log: a file exists, so this is no first start.
    d = decide(FileReading(present=True, problem=problem), HaltHistory())
    assert d.state.state is _S.TRIGGERED and not d.first_start


def test_an_authentic_but_replayed_old_file_disagrees_with_the_log() -> None:
    old = PersistedState(state=_S.ARMED, epoch=3)  # copied aside before the halt of epoch 5
    d = decide(authentic(old), history(_S.TRIGGERED, 5))
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 6
    assert "disagrees with the audit log (TRIGGERED epoch 5)" in d.halt


def test_an_authentic_file_with_an_empty_log_is_not_trusted() -> None:
    d = decide(authentic(PersistedState(state=_S.ARMED, epoch=3)), HaltHistory())
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 4


def test_a_log_that_cannot_be_trusted_halts_whatever_the_file_says() -> None:
    d = decide(authentic(PersistedState(state=_S.ARMED, epoch=2)), HaltHistory(problem="entry 7 does not verify"))
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 3 and "entry 7 does not verify" in d.halt


def test_agreement_keeps_the_state_and_unites_the_used_nonces() -> None:
    a, b = nonce_digest("n-1"), nonce_digest("n-2")
    state = PersistedState(state=_S.RECOVERY_PENDING, epoch=4, factor=0.5, nonce_digests=(a,))
    d = decide(authentic(state), history(_S.RECOVERY_PENDING, 4, 0.5, nonce_digests=frozenset({b})))
    assert d.halt is None and d.state.state is _S.RECOVERY_PENDING and d.state.factor == 0.5
    assert set(d.state.nonce_digests) == {a, b}


def test_nonces_from_the_log_survive_a_lost_file() -> None:
    a = nonce_digest("used")
    d = decide(FileReading(present=False), history(_S.ARMED, 2, nonce_digests=frozenset({a})))
    assert d.state.state is _S.TRIGGERED and a in d.state.nonce_digests


@pytest.mark.parametrize(
    ("file_state", "log_state", "why"),
    [
        # A halt: the file written, the process killed before the HALT entry was committed.
        ((_S.TRIGGERED, 5, 1.0), (_S.ARMED, 4, 1.0), "halt written to the file only"),
        # A halt: the HALT entry committed, the file refused (out of descriptors), then kill -9.
        ((_S.ARMED, 4, 1.0), (_S.TRIGGERED, 5, 1.0), "halt written to the log only"),
        # A recovery: durable in the log first, killed before the file said so.
        ((_S.TRIGGERED, 5, 1.0), (_S.RECOVERY_PENDING, 5, 0.5), "recovery written to the log only"),
        # A restart step: durable in the log first, killed before the file.
        ((_S.RECOVERY_PENDING, 5, 0.5), (_S.RECOVERY_PENDING, 5, 0.75), "restart step in the log only"),
        ((_S.RECOVERY_PENDING, 5, 0.75), (_S.ARMED, 5, 1.0), "last step in the log only"),
    ],
)
def test_every_crash_window_between_file_and_log_ends_halted(file_state, log_state, why) -> None:
    state, epoch, factor = file_state
    d = decide(authentic(PersistedState(state=state, epoch=epoch, factor=factor)), history(*log_state))
    assert d.state.state is _S.TRIGGERED, why
    assert d.state.epoch == max(epoch, log_state[1]) + 1, why


def test_a_file_saying_reducing_comes_back_triggered_in_the_same_epoch() -> None:
    d = decide(authentic(PersistedState(state=_S.REDUCING, epoch=3, reason="halt")), history(_S.REDUCING, 3))
    assert d.interrupted_flatten and d.state.state is _S.TRIGGERED and d.state.epoch == 3 and d.halt is None


def test_a_set_halt_marker_halts_even_when_file_and_log_agree() -> None:
    # Both stale the same way: the halt reached neither the file nor the log, only the marker.
    d = decide(authentic(PersistedState(state=_S.ARMED, epoch=2)), history(_S.ARMED, 2), pending_halt="epoch 3 TRIGGERED: x")
    # A new halt past the marked one: epoch 3 was decided (and maybe authorised against) already.
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 4 and "not yet durable" in d.halt
    torn = decide(authentic(PersistedState(state=_S.ARMED, epoch=2)), history(_S.ARMED, 2), pending_halt="epo\ufffd")
    assert torn.state.state is _S.TRIGGERED and torn.state.epoch == 3


def test_without_an_engine_the_authentic_file_alone_decides() -> None:
    state = PersistedState(state=_S.TRIGGERED, epoch=2, reason="r")
    assert decide(authentic(state), None).state == state
    assert decide(FileReading(present=False), None).first_start


# -- KILL_SWITCH_ACTIVE ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " yes ", "on", "Y", "t"])
def test_true_spellings_halt(value: str) -> None:
    assert env_halt_request(value) == (True, None)


@pytest.mark.parametrize("value", [None, "", "0", "false", "No", "OFF"])
def test_false_spellings_do_not(value: str | None) -> None:
    assert env_halt_request(value) == (False, None)


@pytest.mark.parametrize("value", ["tru", "halt", "2", "enable"])
def test_any_other_value_halts_with_a_warning_naming_it(value: str) -> None:
    halt, warning = env_halt_request(value)
    assert halt and repr(value) in warning


# -- the files ------------------------------------------------------------------------------------


def test_the_state_file_round_trips_and_refuses_an_edit(tmp_path: Path) -> None:
    f = StateFile(tmp_path / "kill_switch.json", KEY)
    state = PersistedState(state=_S.TRIGGERED, epoch=5, mode="emergency", reason="r", nonce_digests=(nonce_digest("n"),))
    f.save(state)
    reading = f.read()
    assert reading.problem is None and reading.state.state is _S.TRIGGERED and reading.state.epoch == 5
    data = json.loads(f.path.read_text())
    data["state"], data["epoch"] = "ARMED", 0
    f.path.write_text(json.dumps(data))
    assert f.read().problem == "not authenticated: the mac does not verify"
    del data["mac"]
    f.path.write_text(json.dumps(data))
    assert f.read().problem == "not authenticated: no mac"
    other = StateFile(f.path, derive_state_key(b"o" * 32))
    f.save(state)
    assert other.read().problem == "not authenticated: the mac does not verify"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff",
        b"[" * 30_000,
        b'{"state": "ARMED", "epoch": ' + b"9" * 5000 + b"}",
        b'{"state": "ARMED", "state": "ARMED"}',
        b'{"epoch": NaN}',
        b'{"state": "ARMED", "epoch": "5", "mac": "00"}',
        b"",
        b"x" * 300_000,
    ],
    ids=["0xff", "deep", "huge-int", "duplicate-key", "nan", "wrong-type", "empty", "oversized"],
)
def test_unreadable_content_is_a_problem_never_an_exception(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kill_switch.json"
    path.write_bytes(content)
    reading = StateFile(path, KEY).read()
    assert reading.present and reading.state is None and reading.problem


def test_wrong_types_inside_an_authentic_file_are_refused(tmp_path: Path) -> None:
    f = StateFile(tmp_path / "kill_switch.json", KEY)
    data = PersistedState(state=_S.ARMED).to_dict()
    data["reason"] = ["not", "text"]
    data["mac"] = f._mac({k: v for k, v in data.items() if k != "mac"})
    f.path.write_text(json.dumps(data))
    assert f.read().problem == "corrupt: reason: must be a string of at most 1000 characters, or null"


def test_the_halt_marker_is_written_through_the_descriptor_opened_at_start(tmp_path: Path) -> None:
    path = tmp_path / "kill_switch.json.halt"
    marker = HaltMarker(path)
    assert marker.open() is None and path.stat().st_size == HaltMarker.SIZE
    fds_before = len(os.listdir("/proc/self/fd"))
    marker.set("epoch 3 TRIGGERED: disk refused")
    assert len(os.listdir("/proc/self/fd")) == fds_before  # no descriptor needed to set it
    marker.close()
    again = HaltMarker(path)
    assert again.open() == "epoch 3 TRIGGERED: disk refused"
    again.clear()
    again.close()
    assert HaltMarker(path).open() is None


def test_a_fifo_in_place_of_the_state_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "kill_switch.json"
    os.mkfifo(path)
    reading = StateFile(path, KEY).read()  # would block for ever on open() or read()
    assert reading.present and reading.problem == "unreadable (not a regular file)"



def test_a_kill_switch_restarted_after_publishing_a_halt_it_never_wrote_stays_halted() -> None:
    """A crash between publishing a halt and writing it: the process's board still shows it.

    The file and the log agree on ARMED epoch 4; the board shows the halt of epoch 5.
    """
    d = decide(authentic(PersistedState(state=_S.ARMED, epoch=4)), history(_S.ARMED, 4), published_halt=5)
    assert d.state.state is _S.TRIGGERED and d.state.epoch == 6
    assert "epoch 5 was in force" in d.halt
    # The same restart once the halt was written: the file's own halt stands, no new epoch.
    halted = PersistedState(state=_S.TRIGGERED, epoch=5, mode="emergency", reason="r", source="s")
    kept = decide(authentic(halted), history(_S.TRIGGERED, 5), published_halt=5)
    assert kept.halt is None and kept.state.epoch == 5 and kept.state.halted
