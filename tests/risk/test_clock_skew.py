"""ClockSkewMonitor against the real localnet: skew on consecutive checks halts; RPC errors do not.

The monitor's system clock is injectable (``now=``): the tests skew it by an offset they set.
Checks run on command (:class:`CheckClock`), the periodic timer set to an hour, so every check
in a test is one the test asked for.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from supervisors import Runtime
from tests.helpers import wait_until
from tests.risk.conftest import Recorded, Recorder, details, received
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.localnet import Localnet
from xorj_actors.metrics import Metrics
from xorj_actors.risk import CheckClock, ClockSkewMonitor, ClockSkewStatus, GetClockSkewStatus, RiskSettings

SETTINGS = dataclasses.replace(
    RiskSettings(),
    clock_check_interval_s=3600.0,  # only the check at start runs by itself
    max_clock_skew_s=30.0,
    clock_skew_consecutive=3,
    clock_rpc_timeout_s=0.5,
    clock_lag_allowance_s=0.25,
)


class SkewedClock:
    """The system clock plus ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def serve_get_block_time(ln: Localnet) -> None:
    """The localnet has no getBlockTime (docs/RISK.md); answer it from the chain's block times."""
    rpc = ln.server.rpc
    if "getBlockTime" not in rpc.methods:
        rpc.methods["getBlockTime"] = lambda params: rpc.chain.block_time(int(params[0]))


def st(ref: Any) -> ClockSkewStatus:
    return ref.ask(GetClockSkewStatus(), timeout=5)


def check(ref: Any) -> ClockSkewStatus:
    """Run one check and wait for its outcome (a success or an RPC error)."""
    before = st(ref)
    ref.tell(CheckClock())
    wait_until(lambda: (s := st(ref)).checks + s.errors > before.checks + before.errors, what="a clock check")
    return st(ref)


@pytest.fixture
def breaker(runtime: Runtime) -> Any:
    """Stands in for the network_connectivity breaker (xorj_actors.breakers.report finds it by name)."""
    return Recorder.start("breaker:network_connectivity")


def start(board: HaltBoard, ln: Localnet, now: SkewedClock) -> Any:
    ref = ClockSkewMonitor.start(board, SETTINGS, lambda: ln.urls["rpc"], now=now)
    wait_until(lambda: (s := st(ref)).checks + s.errors >= 1, what="the check at start")
    return ref


def test_a_clock_in_step_with_the_chain_is_not_skew(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, localnet: Localnet
) -> None:
    serve_get_block_time(localnet)
    mon = start(board, localnet, SkewedClock())
    localnet.advance(5)
    for _ in range(4):
        status = check(mon)
    assert status.errors == 0 and status.checks == 5 and status.consecutive == 0
    assert status.slot == 4  # confirmed, one slot behind processed
    assert status.skew_s is not None and abs(status.skew_s) < 5
    recorded.sync()
    assert recorded.triggers == []


def test_skew_on_consecutive_checks_triggers_once_with_its_figures(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, localnet: Localnet
) -> None:
    serve_get_block_time(localnet)
    now = SkewedClock()
    mon = start(board, localnet, now)
    now.offset = 120.0
    check(mon)
    assert check(mon).consecutive == 2
    now.offset = 0.0
    assert check(mon).consecutive == 0  # a good check ends the run
    now.offset = -120.0
    check(mon)
    check(mon)
    recorded.sync()
    assert recorded.triggers == []
    status = check(mon)
    assert status.consecutive == 3 and status.latched
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.mode.value == "graceful" and trigger.source == "risk:clock_skew"
    assert trigger.reason.startswith("clock skew -1")  # about -120 s
    assert "(system clock behind the chain) beyond max 30 s on 3 consecutive checks" in trigger.reason
    (event,) = [e for e in recorded.events if e.event_type == "SECURITY_VIOLATION"]
    assert event.severity == "CRITICAL"
    d = details(event)
    assert d["skew_s"] == pytest.approx(-120, abs=5) and d["max_clock_skew_s"] == 30
    assert d["consecutive"] == 3 and d["required_consecutive"] == 3 and d["slot"] == 0
    assert d["block_time"] == localnet.server.chain.block_time(0)
    assert [c["skew_s"] < -30 for c in d["checks"]] == [True, True, True]
    check(mon)
    check(mon)
    recorded.sync()
    assert len(recorded.triggers) == 1  # once per episode


def test_rpc_errors_are_not_skew_and_go_to_the_network_breaker(
    runtime: Runtime, board: HaltBoard, recorded: Recorded, localnet: Localnet, breaker: Any
) -> None:
    serve_get_block_time(localnet)
    now = SkewedClock()
    mon = start(board, localnet, now)
    now.offset = 600.0
    check(mon)
    assert check(mon).consecutive == 2
    localnet.set_faults(refuse_http=True)
    for _ in range(3):
        status = check(mon)
    localnet.set_faults(refuse_http=False, http_delay_s=2.0)  # beyond the 0.5 s RPC timeout
    status = check(mon)
    localnet.reset_faults()
    rpc = localnet.server.rpc
    block_time = rpc.methods.pop("getBlockTime")  # a node without the method
    status = check(mon)
    rpc.methods["getBlockTime"] = block_time
    assert status.errors == 5 and status.consecutive == 2 and not status.latched
    assert "-32601" in status.last_error
    recorded.sync()
    assert recorded.triggers == []
    wait_until(lambda: len(received(breaker)) == 5, what="five breaker events")
    events = received(breaker)
    assert all(e.breaker == "network_connectivity" and e.ok is False for e in events)
    assert "getBlockTime: JSON-RPC error -32601" in events[-1].detail
    assert "Timeout" in events[-2].detail
    # The errors neither counted nor broke the run: one more skewed check makes three.
    assert check(mon).consecutive == 3
    recorded.sync()
    (trigger,) = recorded.triggers
    assert trigger.reason.startswith("clock skew +60")  # about +600 s


def test_the_skew_gauge_follows_each_check(runtime: Runtime, board: HaltBoard, recorded: Recorded, localnet: Localnet) -> None:
    serve_get_block_time(localnet)
    metrics = Metrics()
    metrics.watch(runtime, board)

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("xorj_clock_skew_seconds")

    now = SkewedClock()
    mon = start(board, localnet, now)
    wait_until(lambda: gauge() == st(mon).skew_s, what="the first check published")
    in_step = gauge()
    now.offset = -90.0
    behind = check(mon)
    assert gauge() == behind.skew_s < in_step - 80  # signed: our clock behind the chain is negative
    checks = metrics.registry.get_sample_value("xorj_clock_checks_total")
    assert checks == st(mon).checks >= 2  # what the alerts count, whatever the scrape interval
    assert metrics.registry.get_sample_value("xorj_clock_lag_allowance_seconds") == SETTINGS.clock_lag_allowance_s
    localnet.set_faults(refuse_http=True)
    assert check(mon).errors >= 1
    localnet.reset_faults()
    assert gauge() == st(mon).skew_s  # a failed check is no measure: the last one stays
    assert metrics.registry.get_sample_value("xorj_clock_checks_total") == checks  # nor is it counted
