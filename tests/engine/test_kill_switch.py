"""The kill switch in a running engine: halts, acks, silent actors, persistence, recovery."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from supervisors import ChildSpec, StartChild, WhichChildren
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant, Recover, nonce_digest
from xorj_actors.messages import Halt, HaltMode, Resume, Trigger
from xorj_actors.ops.ctl import render_status, request
from xorj_actors.signers import SignRequest
from xorj_actors.vaults import Round, Vault
from tests.helpers import audit_rows_in
from tests.plugins.engine import FAST, RECOVERY_KEYS, Silent, authorise, ks_status, wait_until


def trigger(engine: Engine, mode: HaltMode = HaltMode.EMERGENCY, source: str = "test") -> int:
    before = ks_status(engine).epoch
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=mode, reason="test halt", source=source))
    wait_until(lambda: ks_status(engine).epoch == before + 1 and ks_status(engine).complete, what="halt complete")
    return before + 1


def named(engine: Engine, name: str):
    for info in engine.runtime.actors():
        if info.name == name and info.ref is not None:
            return info.ref
    raise KeyError(name)


def participant_names(engine: Engine) -> set[str]:
    return {a.name for a in engine.runtime.actors() if a.ref is not None and issubclass(a.actor_class, Participant)}


def recover(engine: Engine, **auth) -> object:
    return engine.runtime.whereis(KILL_SWITCH_NAME).ask(Recover(operator="test", **auth), timeout=5)


def test_every_live_actor_acks_a_halt(engine: Engine) -> None:
    assert ks_status(engine).state == "ARMED"
    # Armed: a round is not refused for the halt (it holds for other reasons: no strategy here).
    assert named(engine, "vault-0003").ask(Round(1), timeout=2).reason != "halted"
    epoch = trigger(engine)
    status = ks_status(engine)
    assert status.state == "TRIGGERED" and status.mode == "emergency"
    assert set(status.acked) == participant_names(engine) and status.missing == ()
    assert status.halt_latency_s is not None and status.halt_latency_s > 0
    result = named(engine, "vault-0003").ask(Round(2), timeout=2)
    assert not result.ran and result.reason == "halted"
    assert engine.board.status.halted and engine.board.status.epoch == epoch


def test_a_signature_queued_before_the_halt_is_refused(engine: Engine) -> None:
    signer = named(engine, "signer:vault-authority")
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    # Queue the halt and the signature together: whichever the signer sees first, it refuses.
    ks.tell(Trigger(mode=HaltMode.GRACEFUL, reason="race", source="test"))
    reply = signer.ask(SignRequest(vault_id="vault-0000", trade_id="t-1", payload=b"msg"), timeout=2)
    wait_until(lambda: ks_status(engine).state == "TRIGGERED")
    reply = signer.ask(SignRequest(vault_id="vault-0000", trade_id="t-2", payload=b"msg"), timeout=2)
    assert reply.signature is None and reply.refused.startswith("halted")


def test_a_silent_actor_is_reported_replaced_and_its_replacement_acks(engine: Engine) -> None:
    Silent.gate.clear()
    Silent.entered.clear()
    vaults = named(engine, "vaults")
    silent = vaults.ask(StartChild(ChildSpec("silent", lambda: Silent.start(engine.board), shutdown_timeout=0.3)), timeout=2)
    wait_until(lambda: "silent" in ks_status(engine).acked or ks_status(engine).registered == len(participant_names(engine)))
    silent.tell("hang")
    wait_until(Silent.entered.is_set, what="silent actor stuck in its handler")  # before the halt
    trigger_at = time.monotonic()
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="x", source="test"))
    wait_until(lambda: ks_status(engine).replaced == ("silent",), what="silent actor reported")
    wait_until(lambda: ks_status(engine).complete, what="halt complete after replacement")
    status = ks_status(engine)
    assert "silent" in status.acked and status.missing == ()
    assert time.monotonic() - trigger_at < 5
    (child,) = [c for c in vaults.ask(WhichChildren(), timeout=2) if c.id == "silent"]
    assert child.urn != silent.actor_urn and child.restarts == 1
    replacement = engine.runtime.lookup(child.urn)
    assert replacement.ask("halted?", timeout=2), "the replacement starts halted"
    Silent.gate.set()


def test_an_actor_started_during_a_halt_starts_halted(engine: Engine) -> None:
    epoch = trigger(engine)
    vaults = named(engine, "vaults")
    late = vaults.ask(StartChild(ChildSpec("vault-late", lambda: Vault.start(engine.board, "vault-late"))), timeout=2)
    assert late.ask(Round(1), timeout=2).reason == "halted"
    wait_until(lambda: "vault-late" in ks_status(engine).acked)
    assert ks_status(engine).epoch == epoch and ks_status(engine).complete


def test_a_restarted_process_comes_back_halted(engine_factory, tmp_path) -> None:
    first = engine_factory(data_dir=tmp_path / "d")
    epoch = trigger(first)
    first.stop()
    second = engine_factory(data_dir=tmp_path / "d")
    status = ks_status(second)
    assert status.state == "TRIGGERED" and status.epoch == epoch
    wait_until(lambda: ks_status(second).complete)
    assert named(second, "vault-0000").ask(Round(1), timeout=2).reason == "halted"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"state": "ARMED", "epoch": -1}), json.dumps([1])])
def test_a_corrupt_state_file_means_halted(engine_factory, tmp_path, content: str) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "kill_switch.json").write_text(content)
    engine = engine_factory(data_dir=d)
    status = ks_status(engine)
    assert status.state == "TRIGGERED" and "state file" in status.reason
    assert named(engine, "vault-0000").ask(Round(1), timeout=2).reason == "halted"


def test_an_unreadable_state_file_means_halted(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    (d / "kill_switch.json").mkdir(parents=True)  # reading a directory fails with an OSError
    engine = engine_factory(data_dir=d)
    assert ks_status(engine).state == "TRIGGERED"


def test_kill_switch_active_in_the_environment_halts_at_start(engine_factory) -> None:
    from tests.plugins.engine import RECOVERY_KEYS

    engine = engine_factory(environ={**RECOVERY_KEYS, "KILL_SWITCH_ACTIVE": "true"})
    status = ks_status(engine)
    assert status.state == "TRIGGERED" and status.source == "environment"


def test_the_kill_file_halts_and_blocks_recovery_until_removed(engine: Engine) -> None:
    kill_file = engine.data_dir / "KILL"
    kill_file.write_text("market crash, halting\n")
    wait_until(lambda: ks_status(engine).state == "TRIGGERED", timeout=2, what="kill file noticed")
    status = ks_status(engine)
    assert status.source == "kill_file" and "market crash" in status.reason and status.mode == "graceful"
    outcome = recover(engine, **authorise(status.epoch))
    assert not outcome.accepted and "kill file" in outcome.reason
    kill_file.unlink()
    outcome = recover(engine, **authorise(status.epoch))
    assert outcome.accepted, outcome.reason


def test_recovery_needs_k_of_m_fresh_authorisations_for_this_epoch(engine: Engine) -> None:
    epoch = trigger(engine)
    state_file = engine.data_dir / "kill_switch.json"
    cases = {
        "too few": authorise(epoch, keys=("XORJ_RECOVERY_KEY_1",)),
        "same key twice": authorise(epoch, keys=("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_1")),
        "other epoch": authorise(epoch - 1 if epoch > 1 else epoch + 5),
        "stale": authorise(epoch, ts=int(time.time()) - 3600),
    }
    forged = authorise(epoch)
    forged["authorisations"] = (forged["authorisations"][0], ("XORJ_RECOVERY_KEY_2", "00" * 32))
    cases["forged"] = forged
    unknown = authorise(epoch)
    unknown["authorisations"] = (unknown["authorisations"][0], ("NOT_A_KEY", "00" * 32))
    cases["unknown key"] = unknown
    for name, auth in cases.items():
        before = state_file.read_text()
        outcome = recover(engine, **auth)
        assert not outcome.accepted, name
        assert outcome.reason, name
        assert ks_status(engine).state == "TRIGGERED", name
        assert state_file.read_text() == before, f"{name}: a refused recovery must change nothing"
    good = authorise(epoch, nonce="fresh")
    outcome = recover(engine, **good)
    assert outcome.accepted and outcome.state == "RECOVERY_PENDING" and outcome.factor == 0.5
    # The same request again is a replay.
    trigger(engine)
    replay = recover(engine, **authorise(ks_status(engine).epoch, nonce="fresh"))
    assert not replay.accepted and "replay" in replay.reason


class FactorProbe(Participant):
    """A participant like any vault; asked ``"state?"``: (halted, position factor, factors resumed at)."""

    def __init__(self, board: HaltBoard) -> None:
        super().__init__(board)
        self.seen: list[float] = []

    def on_resume(self, resume: Resume) -> None:
        self.seen.append(resume.factor)

    def on_receive(self, message: object) -> object:
        if message == "state?":
            return self.halted, self.position_factor, tuple(self.seen)
        return super().on_receive(message)


def test_gradual_restart_tells_every_actor_the_position_factor(engine: Engine) -> None:
    epoch = trigger(engine)
    board: HaltBoard = engine.board
    probe = named(engine, "vaults").ask(StartChild(ChildSpec("probe", lambda: FactorProbe.start(board))), timeout=2)
    wait_until(lambda: "probe" in ks_status(engine).acked, what="the probe acked the halt")
    assert probe.ask("state?", timeout=2) == (True, 0.0, ())
    assert named(engine, "vault-0002").ask(Round(4), timeout=2).reason == "halted"
    outcome = recover(engine, **authorise(epoch))
    assert outcome.accepted
    wait_until(lambda: ks_status(engine).state == "ARMED", what="armed")
    halted, factor, seen = probe.ask("state?", timeout=2)
    assert factor == 1.0 and not halted
    assert 0.5 in seen or 0.75 in seen, seen
    assert named(engine, "vault-0002").ask(Round(5), timeout=2).reason != "halted"
    persisted = json.loads((engine.data_dir / "kill_switch.json").read_text())
    assert persisted["state"] == "ARMED" and persisted["factor"] == 1.0


def test_a_restart_of_one_full_step_arms_at_once_through_recovery_pending(tmp_path) -> None:
    """``[1.0, 1.0]`` with no step time is the way to arm at once; the state machine's path stays."""
    toml = FAST.format(vaults=2, cooldown=0, step=0, max_restarts=10, environment="development")
    config = parse_config(toml.replace("restart_step_s = 0\n", "restart_step_s = 0\nrestart_factors = [1.0, 1.0]\n"))
    assert config.kill_switch.restart_factors == (1.0, 1.0)
    engine = Engine(config, tmp_path / "var", environ=dict(RECOVERY_KEYS))
    engine.start()
    try:
        epoch = trigger(engine)
        assert recover(engine, **authorise(epoch)).accepted
        wait_until(lambda: ks_status(engine).state == "ARMED", what="armed")
        states = [d["transition"]["state"] for t, _, d in audit_rows_in(engine.data_dir) if t == "RECOVERY"]
        assert states == ["RECOVERY_PENDING", "ARMED"], states
    finally:
        assert not engine.stop(timeout=10)


def test_recovery_waits_for_the_cooldown(engine_factory) -> None:
    engine = engine_factory(cooldown=300)
    epoch = trigger(engine)
    outcome = recover(engine, **authorise(epoch))
    assert not outcome.accepted and "cooldown" in outcome.reason


def test_recovery_without_configured_keys_is_refused(engine_factory) -> None:
    engine = engine_factory(environ={})
    epoch = trigger(engine)
    outcome = recover(engine, **authorise(epoch))
    assert not outcome.accepted and "recovery keys" in outcome.reason


def test_a_restarted_kill_switch_finds_every_actor_again(engine: Engine) -> None:
    registered = ks_status(engine).registered
    old = engine.runtime.whereis(KILL_SWITCH_NAME)
    old.stop(timeout=2)
    wait_until(lambda: engine.runtime.whereis(KILL_SWITCH_NAME) not in (None, old), what="kill switch restarted")
    assert ks_status(engine).registered == registered
    trigger(engine)
    assert set(ks_status(engine).acked) == participant_names(engine)


class Recorder(Participant):
    """Reports 3 trades in flight with each ack; asked ``"halts?"``, the epochs it was halted in."""

    def __init__(self, board: HaltBoard) -> None:
        super().__init__(board)
        self.halts: list[int] = []

    def on_halt(self, halt: Halt) -> int:
        self.halts.append(halt.epoch)
        return 3

    def on_receive(self, message: object) -> object:
        if message == "halts?":
            return tuple(self.halts)
        return super().on_receive(message)


def test_in_flight_work_is_reported_with_the_ack(engine: Engine) -> None:
    board: HaltBoard = engine.board
    recorder = named(engine, "vaults").ask(StartChild(ChildSpec("recorder", lambda: Recorder.start(board))), timeout=2)
    wait_until(lambda: ks_status(engine).registered == len(participant_names(engine)))
    epoch = trigger(engine)
    assert recorder.ask("halts?", timeout=2)[-1] == epoch


# -- issue 11: the halt survives anything short of the recovery keys ------------------------------


def audit_rows(engine: Engine) -> list[tuple[str, str, dict]]:
    return audit_rows_in(engine.data_dir)


def test_an_edited_state_file_does_not_lift_a_halt(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    first = engine_factory(data_dir=d)
    for _ in range(5):
        epoch = trigger(first)
    first.stop()
    state_file = d / "kill_switch.json"
    data = json.loads(state_file.read_text())
    assert data["state"] == "TRIGGERED" and data["epoch"] == epoch == 5
    # A well-formed ARMED file, as the adversarial run wrote it (with or without the old mac).
    data.update(state="ARMED", epoch=5, reason=None, mode=None, source=None)
    state_file.write_text(json.dumps(data))
    second = engine_factory(data_dir=d)
    status = ks_status(second)
    assert status.state == "TRIGGERED" and status.epoch == 6
    assert "not authenticated" in status.reason and status.source == "start"
    assert named(second, "vault-0000").ask(Round(1), timeout=2).reason == "halted"


def test_a_replayed_authentic_state_file_does_not_lift_a_halt(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    first = engine_factory(data_dir=d)
    armed = (d / "kill_switch.json").read_bytes()  # authentic, ARMED epoch 0: kept aside
    epoch = trigger(first)
    first.stop()
    (d / "kill_switch.json").write_bytes(armed)
    second = engine_factory(data_dir=d)
    status = ks_status(second)
    assert status.state == "TRIGGERED" and status.epoch == epoch + 1
    assert f"disagrees with the audit log (TRIGGERED epoch {epoch})" in status.reason


def test_a_deleted_state_file_does_not_lift_a_halt_nor_forget_used_nonces(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    first = engine_factory(data_dir=d)
    epoch = trigger(first)
    assert recover(first, **authorise(epoch, nonce="used-once")).accepted
    epoch = trigger(first)
    first.stop()
    (d / "kill_switch.json").unlink()
    second = engine_factory(data_dir=d)
    status = ks_status(second)
    assert status.state == "TRIGGERED" and status.epoch == epoch + 1 and "missing" in status.reason
    replay = recover(second, **authorise(status.epoch, nonce="used-once"))
    assert not replay.accepted and "replay" in replay.reason
    assert recover(second, **authorise(status.epoch, nonce="fresh")).accepted


def test_only_a_truly_first_start_comes_up_armed_and_it_is_recorded_first(engine_factory, tmp_path) -> None:
    engine = engine_factory(data_dir=tmp_path / "d")
    assert ks_status(engine).state == "ARMED" and ks_status(engine).epoch == 0
    (first,) = [dt for t, a, dt in audit_rows(engine) if a == "kill_switch" and dt.get("what") == "first start"]
    assert first["transition"] == {"state": "ARMED", "epoch": 0, "factor": 1.0}


def test_a_recovery_is_durable_in_the_audit_log_when_the_state_file_says_so(engine: Engine) -> None:
    epoch = trigger(engine)
    assert recover(engine, **authorise(epoch, nonce="n-durable")).accepted
    # No wait: the entry was committed before the state file was written.
    (entry,) = [dt for t, a, dt in audit_rows(engine) if t == "RECOVERY" and dt.get("what") == "recovery accepted"]
    assert entry["transition"]["epoch"] == epoch and entry["transition"]["state"] == "RECOVERY_PENDING"
    assert entry["nonce_sha256"] == nonce_digest("n-durable") and "n-durable" not in json.dumps(entry)
    assert json.loads((engine.data_dir / "kill_switch.json").read_text())["nonce_digests"] == [nonce_digest("n-durable")]


@pytest.mark.parametrize(("value", "halts"), [("1", True), ("yes", True), ("On", True), ("tru", True), ("0", False), ("false", False), ("", False)])
def test_kill_switch_active_spellings(engine_factory, value: str, halts: bool) -> None:
    from tests.plugins.engine import RECOVERY_KEYS

    engine = engine_factory(environ={**RECOVERY_KEYS, "KILL_SWITCH_ACTIVE": value})
    status = ks_status(engine)
    assert (status.state == "TRIGGERED") is halts, value
    if halts:
        assert status.source == "environment"
    if value == "tru":
        assert "'tru'" in status.reason  # the warning names the value


def test_a_halt_the_state_file_refuses_is_kept_marked_retried_and_shown(engine: Engine) -> None:
    state_file = engine.data_dir / "kill_switch.json"
    state_file.unlink()
    (state_file / "in-the-way").mkdir(parents=True)  # rename onto a non-empty directory fails
    epoch = trigger(engine)
    wait_until(lambda: not ks_status(engine).durable, what="halt shown not durable")
    status = ks_status(engine)
    assert status.state == "TRIGGERED" and f"halt epoch {epoch} (TRIGGERED) NOT DURABLE" in status.persist_error
    shown = render_status(request(engine.socket_path, "status"))  # what `ctl status` prints
    assert f"PERSIST ERROR halt epoch {epoch} (TRIGGERED) NOT DURABLE, retrying" in shown
    marker = engine.data_dir / "kill_switch.json.halt"
    assert marker.read_text().strip().startswith(f"epoch {epoch} TRIGGERED")
    (state_file / "in-the-way").rmdir()
    state_file.rmdir()
    wait_until(lambda: ks_status(engine).durable, what="the retry made it durable")
    assert ks_status(engine).persist_error is None and marker.read_text().strip() == ""
    data = json.loads(state_file.read_text())
    assert data["state"] == "TRIGGERED" and data["epoch"] == epoch


def test_secrets_in_free_text_are_masked_in_status_state_file_and_audit_log(engine: Engine) -> None:
    from tests.plugins.engine import RECOVERY_KEYS

    secret = RECOVERY_KEYS["XORJ_RECOVERY_KEY_2"]
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason=f"pasted {secret}", source=secret))
    wait_until(lambda: ks_status(engine).state == "TRIGGERED")
    epoch = ks_status(engine).epoch
    refused = engine.runtime.whereis(KILL_SWITCH_NAME).ask(
        Recover(operator=f"op {secret}", **authorise(epoch, nonce=f"nonce {secret}", keys=("XORJ_RECOVERY_KEY_1",))),
        timeout=5,
    )
    assert not refused.accepted
    status = ks_status(engine)
    assert secret not in repr(status) and "***" in status.reason
    assert secret not in (engine.data_dir / "kill_switch.json").read_text()
    wait_until(lambda: any(dt.get("what") == "recovery refused" for _, _, dt in audit_rows(engine)))
    entries = json.dumps([dt for _, a, dt in audit_rows(engine) if a == "kill_switch"])
    assert secret not in entries and "op ***" in entries


def test_the_halt_entry_records_the_halt_time_and_its_transition(engine: Engine) -> None:
    epoch = trigger(engine)
    status = ks_status(engine)
    def entries() -> list[dict]:
        return [dt for t, a, dt in audit_rows(engine) if t == "HALT" and dt.get("what") == "triggered"]

    wait_until(entries, what="the HALT entry committed (it is told, not waited for)")
    (entry,) = entries()
    assert entry["triggered_at"] == status.triggered_at
    assert entry["transition"] == {"state": "TRIGGERED", "epoch": epoch, "factor": 1.0}


def test_an_edited_kill_switch_entry_in_the_audit_log_means_halted(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    first = engine_factory(data_dir=d)
    epoch = trigger(first)
    assert recover(first, **authorise(epoch)).accepted
    wait_until(lambda: ks_status(first).state == "ARMED", what="armed")
    first.stop()
    db = sqlite3.connect(d / "audit.db")
    with db:  # the RECOVERY entry now names another operator: its hash no longer recomputes
        db.execute("UPDATE audit_entries SET details = replace(details, '\"test\"', '\"mallory\"') WHERE event_type = 'RECOVERY'")
    db.close()
    second = engine_factory(data_dir=d)
    status = ks_status(second)
    assert status.state == "TRIGGERED" and "cannot be trusted" in status.reason and "does not verify" in status.reason


def test_a_restarted_kill_switch_in_a_quiet_engine_stays_armed(engine: Engine) -> None:
    old = engine.runtime.whereis(KILL_SWITCH_NAME)
    old.stop(timeout=2)
    wait_until(lambda: engine.runtime.whereis(KILL_SWITCH_NAME) not in (None, old), what="kill switch restarted")
    status = ks_status(engine)
    assert status.state == "ARMED" and status.epoch == 0, status.reason
