"""Escalation to a real KillSwitch: HSM trips, re-trips, concurrent openings; config switches them."""

from __future__ import annotations

from dataclasses import replace

from tests.breakers.conftest import ks_status, limits_with, send, status
from tests.helpers import wait_until
from xorj_actors.breakers import BREAKERS, CLOSED, HALF_OPEN, OPEN, BreakerSettings, EscalationSettings
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.messages import HaltMode, Trigger

H, T, N = "hsm_failure_rate", "trade_failure_rate", "network_connectivity"


def trip(ref, clock, name: str, t: float) -> None:
    for _ in range(BreakerSettings().limits(name).max_failures):
        send(ref, clock, t, False, name, "boom")
        if status(ref).state == OPEN:
            return
    raise AssertionError(f"{name} did not open")


def with_escalation(settings: BreakerSettings | None = None, **changes) -> BreakerSettings:
    settings = BreakerSettings() if settings is None else settings
    return replace(settings, escalation=replace(settings.escalation, **changes))


def test_an_hsm_trip_triggers_an_emergency_halt(runtime, start_kill_switch, start_breaker, clock, audit) -> None:
    start_kill_switch()
    ref = start_breaker(H)
    trip(ref, clock, H, 1000.0)
    s = ks_status(runtime)
    assert (s.state, s.mode, s.source) == ("TRIGGERED", "emergency", "breaker:hsm_failure_rate")
    assert s.reason.startswith("breaker hsm_failure_rate OPEN (3 failures in 600 s (last: boom)); every trip")
    wait_until(lambda: any(d.get("what") == "escalated to the kill switch" for d in audit.details()), 5, "audited")
    (entry,) = [d for d in audit.details() if d.get("what") == "escalated to the kill switch"]
    assert (entry["_severity"], entry["mode"]) == ("CRITICAL", "emergency")


def test_config_can_switch_the_hsm_rule_off(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    ref = start_breaker(H, with_escalation(on_trip=()))
    trip(ref, clock, H, 1000.0)
    assert ks_status(runtime).state == "ARMED"


def test_config_can_escalate_another_breaker_gracefully(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    ref = start_breaker(N, with_escalation(on_trip=(N,), on_trip_mode="graceful"))
    trip(ref, clock, N, 1000.0)
    s = ks_status(runtime)
    assert (s.state, s.mode, s.source) == ("TRIGGERED", "graceful", "breaker:network_connectivity")


def _close_after_a_trip(ref, clock, board) -> float:
    trip(ref, clock, T, 1000.0)
    wait_until(lambda: board.status(T).state == HALF_OPEN, 5, "cool-off over")
    send(ref, clock, 1010.0, True, T)
    assert status(ref).state == CLOSED
    return 1010.0


def test_a_retrip_within_the_window_triggers(runtime, start_kill_switch, start_breaker, clock, board) -> None:
    start_kill_switch()
    settings = with_escalation(limits_with(T, cool_off_s=0.05, probe_trades=1), retrip_window_s=100.0)
    ref = start_breaker(T, settings)
    closed_at = _close_after_a_trip(ref, clock, board)
    assert ks_status(runtime).state == "ARMED", "a first trip does not escalate"
    trip(ref, clock, T, closed_at + 100.0)  # the window's edge counts
    s = ks_status(runtime)
    assert (s.state, s.mode, s.source) == ("TRIGGERED", "graceful", "breaker:trade_failure_rate")
    assert "tripped again 100 s after closing" in s.reason


def test_a_retrip_after_the_window_does_not(runtime, start_kill_switch, start_breaker, clock, board) -> None:
    start_kill_switch()
    settings = with_escalation(limits_with(T, cool_off_s=0.05, probe_trades=1), retrip_window_s=100.0)
    ref = start_breaker(T, settings)
    closed_at = _close_after_a_trip(ref, clock, board)
    trip(ref, clock, T, closed_at + 100.5)
    assert ks_status(runtime).state == "ARMED"


def test_the_retrip_rule_can_be_switched_off(runtime, start_kill_switch, start_breaker, clock, board) -> None:
    start_kill_switch()
    settings = with_escalation(limits_with(T, cool_off_s=0.05, probe_trades=1), on_retrip=False)
    ref = start_breaker(T, settings)
    closed_at = _close_after_a_trip(ref, clock, board)
    trip(ref, clock, T, closed_at + 1)
    assert ks_status(runtime).state == "ARMED"


def test_two_breakers_open_at_once_trigger(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    refs = {name: start_breaker(name) for name in BREAKERS}
    trip(refs["slippage_rejections"], clock, "slippage_rejections", 1000.0)
    assert ks_status(runtime).state == "ARMED"
    trip(refs[N], clock, N, 1001.0)
    s = ks_status(runtime)
    assert (s.state, s.mode, s.source) == ("TRIGGERED", "graceful", "breaker:network_connectivity")
    assert s.reason.endswith("2 breakers not closed: network_connectivity, slippage_rejections")


def test_the_concurrent_rule_follows_its_count_and_switch(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    settings = with_escalation(concurrent_open=3, concurrent_mode="emergency")
    refs = {name: start_breaker(name, settings) for name in BREAKERS}
    trip(refs["slippage_rejections"], clock, "slippage_rejections", 1000.0)
    trip(refs[N], clock, N, 1000.0)
    assert ks_status(runtime).state == "ARMED"
    trip(refs[T], clock, T, 1000.0)
    s = ks_status(runtime)
    assert (s.state, s.mode, s.source) == ("TRIGGERED", "emergency", "breaker:trade_failure_rate")


def test_the_concurrent_rule_can_be_switched_off(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    settings = with_escalation(on_concurrent=False)
    refs = {name: start_breaker(name, settings) for name in BREAKERS}
    for name in ("slippage_rejections", N, T, "confirmation_timeouts"):
        trip(refs[name], clock, name, 1000.0)
    assert ks_status(runtime).state == "ARMED"


def test_several_rules_send_one_trigger_in_the_harshest_mode(runtime, start_kill_switch, start_breaker, clock) -> None:
    start_kill_switch()
    refs = {name: start_breaker(name) for name in BREAKERS}
    trip(refs[N], clock, N, 1000.0)
    trip(refs[H], clock, H, 1000.0)  # on_trip (emergency) and concurrent (graceful)
    s = ks_status(runtime)
    assert (s.epoch, s.mode, s.source) == (1, "emergency", "breaker:hsm_failure_rate")
    assert "every trip of this breaker escalates" in s.reason and "2 breakers not closed" in s.reason


def test_no_escalation_while_already_halted(runtime, start_kill_switch, start_breaker, clock, audit) -> None:
    ks = start_kill_switch()
    ref = start_breaker(H)
    ks.tell(Trigger(mode=HaltMode.GRACEFUL, reason="operator", source="test"))
    wait_until(lambda: ks_status(runtime).complete, 5, "halt complete")
    trip(ref, clock, H, 1000.0)
    s = ks_status(runtime)
    assert (s.epoch, s.source) == (1, "test"), "a new epoch would reset the cooldown and void authorisations"
    assert status(ref).state == OPEN
    wait_until(lambda: any(d.get("what") == "escalation not sent: already halted" for d in audit.details()), 5, "audited")


def test_an_unreachable_kill_switch_gets_the_trigger_when_it_is_back(runtime, armed, start_breaker, clock, tmp_path) -> None:
    from xorj_actors.kill_switch import KillSwitchSettings
    from xorj_actors.kill_switch import KillSwitch

    ref = start_breaker(H, with_escalation(retry_s=0.02))
    trip(ref, clock, H, 1000.0)
    assert runtime.whereis(KILL_SWITCH_NAME) is None
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    KillSwitch.start(KillSwitchSettings(ack_deadline_s=0.5), data_dir, armed, environ={})
    wait_until(lambda: ks_status(runtime).state == "TRIGGERED", 5, "the retried trigger")
    assert ks_status(runtime).source == "breaker:hsm_failure_rate"


def test_a_halt_is_acked_and_breaker_state_survives_it(runtime, start_kill_switch, start_breaker, clock, board) -> None:
    ks = start_kill_switch()
    refs = {name: start_breaker(name, with_escalation(on_trip=())) for name in BREAKERS}
    wait_until(lambda: ks_status(runtime).registered == len(BREAKERS), 5, "breakers registered")
    trip(refs[H], clock, H, 1000.0)
    send(refs[T], clock, 1000.0, False, T)
    before = board.snapshot.statuses
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="test", source="test"))
    wait_until(lambda: ks_status(runtime).complete, 5, "every breaker acked")
    s = ks_status(runtime)
    assert len(s.acked) == len(BREAKERS) and s.missing == ()
    assert board.snapshot.statuses == before
    assert all(ref.actor_inbox.actor.halted for ref in refs.values())
    send(refs[T], clock, 1001.0, False, T)  # events still count while halted
    assert status(refs[T]).consecutive == 2
