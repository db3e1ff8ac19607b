"""DrawdownMonitor: drawdown and daily loss trigger the kill switch, once per episode, like for like."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from supervisors import Runtime
from tests.helpers import wait_until
from tests.risk.conftest import FakeClock, Recorded, Recorder, details
from xorj_actors.audit import AUDIT_NAME
from xorj_actors.kill_switch import KILL_SWITCH_NAME, GetStatus, HaltBoard, KillSwitch
from xorj_actors.risk import (
    DRAWDOWN_NAME,
    DrawdownMonitor,
    GetRiskStatus,
    ResetRiskBaseline,
    RiskSettings,
    RiskStatus,
    VaultFlow,
    VaultRemoved,
    VaultValuation,
    report_valuation,
)

#: 2026-03-10 23:00:00 UTC: an hour before a UTC day boundary.
T0 = 1773183600.0
MIDNIGHT = T0 + 3600


def value(ref, vault: str, usd: float, at: float = T0) -> None:
    ref.tell(VaultValuation(vault_id=vault, value_usd=usd, at=at))


def status(ref) -> RiskStatus:
    return ref.ask(GetRiskStatus(), timeout=5)


def start(board: HaltBoard, clock: FakeClock | None = None, **changes) -> object:
    settings = dataclasses.replace(RiskSettings(), **changes)
    settings.validate()
    return DrawdownMonitor.start(board, settings, clock=clock or FakeClock(T0))


def four_vaults(ref, each: float = 25_000.0) -> None:
    for i in range(4):
        value(ref, f"vault-{i:04d}", each)


def test_drawdown_triggers_the_real_kill_switch_with_its_figures(runtime: Runtime, tmp_path: Path) -> None:
    from xorj_actors.kill_switch import KillSwitchSettings

    board = HaltBoard()
    audit = Recorder.start(AUDIT_NAME).actor_inbox.actor
    ks = KillSwitch.start(KillSwitchSettings(), tmp_path, board, environ={})
    wait_until(lambda: board.status.state == "ARMED", what="kill switch armed")
    clock = FakeClock(T0)
    mon = start(board, clock)
    four_vaults(mon)
    value(mon, "vault-0000", 17_000.0)  # 92,000: 8 % down
    assert status(mon).drawdown == pytest.approx(0.08)
    assert ks.ask(GetStatus(), timeout=5).state == "ARMED"  # a trigger told before would be handled first
    clock.t = MIDNIGHT + 60  # a new day: the daily loss starts again from 92,000
    value(mon, "vault-0001", 17_000.0, MIDNIGHT + 60)  # 84,000: 16 % below the peak, 8.7 % today
    wait_until(lambda: ks.ask(GetStatus(), timeout=5).state == "TRIGGERED", what="kill switch triggered")
    ks_status = ks.ask(GetStatus(), timeout=5)
    assert ks_status.epoch == 1 and ks_status.mode == "emergency" and ks_status.source == "risk:drawdown"
    assert ks_status.reason.startswith(
        "drawdown 16.00% >= max 15.00%: portfolio $84,000.00 vs like-for-like peak $100,000.00 (4 vaults)"
    )
    # The monitor is a participant: it acks the halt and keeps watching.
    wait_until(lambda: ks.ask(GetStatus(), timeout=5).complete, what="halt complete")
    assert "DrawdownMonitor" in ks.ask(GetStatus(), timeout=5).acked
    st = status(mon)
    assert st.drawdown_latched and not st.daily_loss_latched and st.triggers == 1
    assert st.total_usd == pytest.approx(84_000) and st.daily_loss == pytest.approx(1 - 84 / 92)
    wait_until(lambda: any(getattr(m, "event_type", "") == "HALT" for m in list(audit.received)), what="audit entry")
    (event,) = [m for m in audit.received if getattr(m, "event_type", "") == "HALT"]
    assert event.severity == "CRITICAL" and event.actor == "DrawdownMonitor"
    d = details(event)
    assert d["check"] == "drawdown" and d["mode"] == "emergency" and set(d["figures"]) == {"drawdown"}
    fig = d["figures"]["drawdown"]
    assert fig["kind"] == "breach" and fig["value"] == pytest.approx(0.16) and fig["threshold"] == 0.15
    assert d["total_usd"] == pytest.approx(84_000) and d["peak_usd"] == pytest.approx(100_000)
    assert d["day_start_usd"] == pytest.approx(92_000) and d["vaults"] == 4
    assert d["utc_day"] == "2026-03-11" and d["at"] == MIDNIGHT + 60
    assert d["last_vault"] == "vault-0001" and d["last_vault_value_usd"] == 17_000
    assert event.correlation_id is not None and event.correlation_id in ks_status.reason


def test_both_figures_crossing_together_make_one_halt(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    mon = start(board, daily_loss_mode="graceful")
    four_vaults(mon)
    value(mon, "vault-0000", 9_000.0)  # 84,000: 16 % below the peak and today's start
    status(mon)
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.mode.value == "emergency"  # the harder of the two modes
    assert trigger.reason.startswith(
        "drawdown 16.00% >= max 15.00%; daily loss 16.00% >= max 10.00%: portfolio $84,000.00 vs "
        "like-for-like peak $100,000.00 and $100,000.00 at the start of UTC day 2026-03-10 (4 vaults)"
    )
    (event,) = [e for e in recorded.events if e.event_type == "HALT"]
    d = details(event)
    assert d["check"] == "drawdown+daily_loss"
    assert d["figures"]["daily_loss"]["mode"] == "graceful" and d["figures"]["drawdown"]["mode"] == "emergency"


def test_daily_loss_is_measured_from_the_start_of_the_utc_day(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    # Drawdown limit out of the way: this test is about the daily figure alone.
    crossing, staying = FakeClock(T0), FakeClock(T0)
    across = start(board, crossing, max_drawdown=0.5)
    same_day = start(board, staying, max_drawdown=0.5)
    for mon in (across, same_day):
        four_vaults(mon)
        value(mon, "vault-0000", 16_000.0)  # 91,000: 9 % down today
        assert status(mon).daily_loss == pytest.approx(0.09)
    recorded.sync()
    assert recorded.triggers == []

    crossing.t = MIDNIGHT + 1
    st = status(across)
    assert st.utc_day == "2026-03-11" and st.daily_loss == 0 and st.day_start_usd == pytest.approx(91_000)
    for mon in (across, same_day):
        value(mon, "vault-0001", 23_500.0)  # 89,500: 10.5 % below yesterday's start, 1.6 % below today's
    assert status(across).daily_loss == pytest.approx(1 - 89_500 / 91_000)
    assert status(same_day).daily_loss == pytest.approx(0.105)
    recorded.sync()
    assert [t.reason.split(":")[0] for t in recorded.triggers] == ["daily loss 10.50% >= max 10.00%"]

    value(across, "vault-0002", 16_500.0)  # 81,000: 10.99 % below today's start
    status(across)
    recorded.sync()
    assert len(recorded.triggers) == 2
    trigger = recorded.triggers[1]
    assert trigger.mode.value == "emergency" and trigger.source == "risk:drawdown"
    assert trigger.reason.startswith("daily loss 10.99% >= max 10.00%")
    assert "$91,000.00 at the start of UTC day 2026-03-11" in trigger.reason
    d = details([e for e in recorded.events if e.event_type == "HALT"][-1])
    assert d["check"] == "daily_loss" and d["day_start_usd"] == pytest.approx(91_000)
    assert d["figures"]["daily_loss"]["value"] == pytest.approx(1 - 81_000 / 91_000) and d["utc_day"] == "2026-03-11"

    crossing.t = T0  # a clock stepping back across midnight does not restart the day
    assert status(across).utc_day == "2026-03-11"


def test_vaults_appearing_or_leaving_are_not_losses(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    mon = start(board, max_daily_loss=0.5)  # drawdown alone: the day started with the same vaults
    value(mon, "a", 50_000.0)
    value(mon, "b", 50_000.0)
    value(mon, "c", 10_000.0)  # appears: 110,000, nothing gained
    mon.tell(VaultRemoved(vault_id="a", at=T0))  # leaves: 60,000, nothing lost
    st = status(mon)
    assert st.vaults == 2 and st.total_usd == pytest.approx(60_000)
    assert st.drawdown == 0 and st.daily_loss == 0 and st.peak_usd == pytest.approx(60_000)
    value(mon, "d", 1.0)  # a tiny new vault does not dilute anything either
    mon.tell(VaultRemoved(vault_id="d", at=T0))
    value(mon, "b", 42_000.0)  # a real loss: 52,000 of 60,000 = 13.3 %
    st = status(mon)
    assert st.drawdown == pytest.approx(8_000 / 60_000)
    recorded.sync()
    assert recorded.triggers == []
    value(mon, "c", 8_000.0)  # 50,000 of 60,000: 16.7 %
    status(mon)
    recorded.sync()
    (trigger,) = recorded.triggers
    assert "drawdown 16.67% >= max 15.00%" in trigger.reason
    assert "$50,000.00 vs like-for-like peak $60,000.00 (2 vaults)" in trigger.reason


def test_deposits_and_withdrawals_are_not_gains_or_losses(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    mon = start(board)
    four_vaults(mon)
    mon.tell(VaultFlow(vault_id="vault-0000", amount_usd=-20_000.0, at=T0))
    value(mon, "vault-0000", 5_000.0)  # the withdrawal, then the valuation that includes it
    st = status(mon)
    assert st.total_usd == pytest.approx(80_000) and st.drawdown == 0
    mon.tell(VaultFlow(vault_id="vault-0001", amount_usd=100_000.0, at=T0))  # a deposit
    value(mon, "vault-0001", 125_000.0)
    assert status(mon).peak_usd == pytest.approx(180_000)
    mon.tell(VaultFlow(vault_id="vault-0002", amount_usd=-1e9, at=T0))  # more than it holds: refused
    st = status(mon)
    assert st.refused == 1 and st.total_usd == pytest.approx(180_000)
    recorded.sync()
    assert recorded.triggers == []


@pytest.mark.parametrize(
    ("vault", "usd", "at"),
    [
        ("vault-0000", math.nan, T0),
        ("vault-0000", -1.0, T0),
        ("vault-0000", math.inf, T0),
        ("vault-0000", 0.0, math.nan),
        ("vault-0000", 0.0, T0 - 1),  # older than the valuation it would replace
        ("", 0.0, T0),
    ],
    ids=["nan", "negative", "inf", "nan-time", "out-of-order", "no-id"],
)
def test_bad_valuations_are_refused_and_change_nothing(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, vault: str, usd: float, at: float
) -> None:
    mon = start(board)
    four_vaults(mon)
    before = status(mon)
    value(mon, vault, usd, at)  # each would be a 25 % loss (or an unknown vault of 0) if taken
    after = status(mon)
    assert after.refused == 1
    assert dataclasses.replace(after, refused=0) == dataclasses.replace(before, refused=0)
    value(mon, "vault-0000", 0.0, T0)  # the same figure, well formed, is taken: the test can fail
    assert status(mon).drawdown == pytest.approx(0.25)
    recorded.sync()
    assert len(recorded.triggers) == 1


def test_one_trigger_per_episode_then_escalation_then_re_arm(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    mon = start(board, max_daily_loss=0.5)  # drawdown 15 %, re-arm below 14 %, escalate every 5 points

    def at_total(total: float) -> None:
        value(mon, "vault-0000", total - 75_000.0)
        status(mon)
        recorded.sync()

    four_vaults(mon)
    at_total(84_000.0)  # 16 %: fires
    for total in (84_000.0, 83_000.0, 85_500.0, 81_000.0, 80_000.0):  # up to 20 %, and 14.5 %: same episode
        at_total(total)
    assert len(recorded.triggers) == 1
    at_total(79_000.0)  # 21 % >= 16 % + 5: escalation
    assert len(recorded.triggers) == 2 and "worsened to 21.00%" in recorded.triggers[1].reason
    at_total(86_500.0)  # 13.5 % < 14 %: episode over
    assert not status(mon).drawdown_latched
    at_total(84_500.0)  # 15.5 %: a new episode
    assert len(recorded.triggers) == 3 and "drawdown 15.50% >= max 15.00%" in recorded.triggers[2].reason
    halts = [details(e) for e in recorded.events if e.event_type == "HALT"]
    assert [h["figures"]["drawdown"]["kind"] for h in halts] == ["breach", "escalation", "breach"]


def test_operators_reset_the_baseline(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    mon = start(board)
    four_vaults(mon)
    value(mon, "vault-0000", 9_000.0)  # 84,000
    after = mon.ask(ResetRiskBaseline(operator="alice", reason="loss accepted after review"), timeout=5)
    assert after.drawdown == 0 and after.daily_loss == 0 and not after.drawdown_latched
    assert after.peak_usd == pytest.approx(84_000) and after.day_start_usd == pytest.approx(84_000)
    value(mon, "vault-0001", 12_400.0)  # 71,400: 15 % below the new baseline
    status(mon)
    recorded.sync()
    assert len(recorded.triggers) == 2  # one before the reset, one after it
    assert "$71,400.00 vs like-for-like peak $84,000.00 and $84,000.00 at the start" in recorded.triggers[1].reason
    (reset,) = [details(e) for e in recorded.events if e.event_type == "RECOVERY"]
    assert reset["operator"] == "alice" and reset["before"]["drawdown"] == pytest.approx(0.16)


def test_an_unreachable_kill_switch_gets_the_kill_file_and_the_trigger_later(
    runtime: Runtime, board: HaltBoard, tmp_path: Path
) -> None:
    kill_file = tmp_path / "KILL"
    settings = dataclasses.replace(RiskSettings(), trigger_retry_s=0.05)
    mon = DrawdownMonitor.start(board, settings, clock=FakeClock(T0), kill_file=kill_file)
    four_vaults(mon)
    value(mon, "vault-0000", 5_000.0)  # 20 %
    status(mon)
    assert kill_file.read_text().startswith("risk:drawdown: drawdown 20.00% >= max 15.00%")
    ks = Recorder.start(KILL_SWITCH_NAME).actor_inbox.actor
    wait_until(lambda: len(ks.received) == 1, what="the held trigger delivered")
    (trigger,) = ks.received
    assert trigger.source == "risk:drawdown" and trigger.reason.startswith("drawdown 20.00% >= max 15.00%")


def test_the_state_survives_restarts_and_stale_replays_are_refused(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, tmp_path: Path
) -> None:
    path = tmp_path / "risk_drawdown.json"
    settings = dataclasses.replace(RiskSettings(), max_daily_loss=0.5, drawdown_persist_interval_s=0.1)

    def incarnation():
        return DrawdownMonitor.start(board, settings, clock=FakeClock(T0 + 60), state_file=path)

    mon = incarnation()
    four_vaults(mon)
    value(mon, "vault-0000", 35_000.0, T0 + 5)  # 110,000: the peak
    value(mon, "vault-0000", 24_000.0, T0 + 10)  # 99,000: 10 % down
    wait_until(lambda: path.exists() and len(json.loads(path.read_text())["vaults"]) == 4, what="periodic save")
    mon.stop(block=True, timeout=5)

    mon = incarnation()
    st = status(mon)
    assert st.vaults == 4 and st.total_usd == pytest.approx(99_000) and st.peak_usd == pytest.approx(110_000)
    assert st.drawdown == pytest.approx(0.10)
    value(mon, "vault-0000", 35_000.0, T0)  # a replay older than the saved valuation: refused
    assert status(mon).refused == 1 and status(mon).total_usd == pytest.approx(99_000)
    value(mon, "vault-0001", 18_400.0, T0 + 20)  # 92,400: 16 % below the peak from before the restart
    status(mon)
    recorded.sync()
    (trigger,) = recorded.triggers
    assert "drawdown 16.00% >= max 15.00%: portfolio $92,400.00 vs like-for-like peak $110,000.00" in trigger.reason
    mon.stop(block=True, timeout=5)

    mon = incarnation()  # the episode survives too: the same loss does not halt twice
    assert status(mon).drawdown_latched
    value(mon, "vault-0002", 24_500.0, T0 + 30)  # 91,900: the same episode
    status(mon)
    recorded.sync()
    assert len(recorded.triggers) == 1


_ABOVE_PEAK = json.dumps({
    "version": 1, "saved_at": T0, "index": 2.0, "peak": 1.0, "day": 20522, "day_index": 1.0,
    "peak_usd_at_zero": 0.0, "day_usd_at_zero": 0.0, "drawdown": [False, 0.0], "daily_loss": [False, 0.0],
    "vaults": {"vault-0000": [25000.0, T0]},
})


@pytest.mark.parametrize("content", ["not json", _ABOVE_PEAK, '{"version": 99}'], ids=["not-json", "above-peak", "version"])
def test_an_unreadable_state_file_halts_and_is_kept_aside(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "risk_drawdown.json"
    path.write_text(content)
    mon = DrawdownMonitor.start(board, RiskSettings(), clock=FakeClock(T0), state_file=path)
    st = status(mon)
    assert st.vaults == 0 and st.triggers == 1
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.mode.value == "graceful" and trigger.source == "risk:drawdown"
    assert trigger.reason.startswith(f"risk state {path} corrupt: ")
    (kept,) = tmp_path.glob("risk_drawdown.json.unreadable-*")
    assert kept.read_text() == content and not path.exists()
    four_vaults(mon)  # a new baseline from here on
    assert status(mon).total_usd == pytest.approx(100_000)


def test_vaults_find_the_monitor_by_name(runtime: Runtime, board: HaltBoard, recorded: Recorded) -> None:
    assert report_valuation(runtime, "vault-0000", 25_000.0, T0) is False  # not running: said, not raised
    mon = start(board)
    assert runtime.whereis(DRAWDOWN_NAME) == mon
    for i in range(4):
        assert report_valuation(runtime, f"vault-{i:04d}", 25_000.0, T0) is True
    assert report_valuation(runtime, "vault-0000", 9_000.0) is True  # at: now
    st = status(mon)
    assert st.vaults == 4 and st.total_usd == pytest.approx(84_000) and st.triggers == 1
