"""The downtime policy at a kill switch's start, against a real localnet's clock (no engine).

The kill switch's clocks are injected (``clock=``, ``monotonic=``): a wall clock jumped forward or
set back is the test's own, the chain's clock is the localnet's (getBlockTime of a confirmed slot,
read as the engine reads it: ``xorj_actors.risk.read_chain_time``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisors import Runtime
from tests.helpers import wait_until
from xorj_actors.cluster import opens_cluster_halt
from xorj_actors.kill_switch import (
    DOWNTIME_SOURCE,
    VAULT_ROLE,
    DowntimeLiquidationSettings,
    GetStatus,
    HaltBoard,
    HaltHistory,
    KillSwitch,
    KillSwitchSettings,
    KillSwitchState,
    Participant,
    PersistedState,
    StateFile,
    Transition,
    derive_state_key,
)
from xorj_actors.localnet import Localnet
from xorj_actors.risk import read_chain_time

_S = KillSwitchState
KEY = derive_state_key(b"k" * 32)
LIMIT = 600.0
SETTINGS = KillSwitchSettings(
    cooldown_s=0, alive_every_s=60.0,
    downtime_liquidation=DowntimeLiquidationSettings(enabled=True, max_downtime_s=LIMIT, vaults=("vault-0001",), start_grace_s=1),
)


class Events:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, details: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append((kind, details))

    def what(self, what: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for _, d in self.seen if d.get("what") == what]


class Monotonic:
    """``time.monotonic`` plus what the test skipped ahead."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


class Vault0001(Participant):
    """A vault that registers as ``vault-0001`` (the policy's chosen vault) and does nothing else."""

    role = VAULT_ROLE

    def __init__(self, board: HaltBoard) -> None:
        super().__init__(board)
        self.actor_inbox.name = "vault-0001"


def chain_clock(ln: Localnet, answer: threading.Event | None = None) -> Callable[[], float]:
    """The localnet's time as the engine reads it; with ``answer``: read only once it is set (a slow node)."""

    def read() -> float:
        if answer is not None:
            assert answer.wait(10)
        return read_chain_time(ln.urls["rpc"], commitment="confirmed", timeout_s=2.0).block_time

    return read


def start(tmp_path: Path, state: PersistedState, *, last_alive: float, chain: Callable[[], float] | None,
          clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
          board: HaltBoard | None = None) -> tuple[Any, Events]:
    StateFile(tmp_path / SETTINGS.state_file, KEY).save(state)
    history = HaltHistory(has_history=True, last=Transition(state.state, state.epoch, state.factor), max_epoch=state.epoch,
                          last_alive=last_alive, seen_alive=True)
    events = Events()
    ks = KillSwitch.start(SETTINGS, tmp_path, board or HaltBoard(), history=lambda: history, state_key=KEY, on_event=events,
                          clock=clock, monotonic=monotonic, chain_time=chain)
    return ks, events


ARMED = PersistedState(state=_S.ARMED, epoch=3)


def test_from_recovery_pending_the_policy_halts_this_node_alone_and_the_chain_confirms(
    runtime: Runtime, tmp_path: Path, localnet: Localnet
) -> None:
    mono = Monotonic()
    pending = PersistedState(state=_S.RECOVERY_PENDING, epoch=4, factor=0.5)
    ks, events = start(tmp_path, pending, last_alive=time.time() - 2 * LIMIT, chain=chain_clock(localnet), monotonic=mono)
    status = ks.ask(GetStatus(), timeout=5)
    assert status.state == "TRIGGERED" and status.source == DOWNTIME_SOURCE and status.epoch == 5
    (triggered,) = events.what("triggered")
    assert triggered["source"] == DOWNTIME_SOURCE and not opens_cluster_halt(triggered["source"])  # no cluster halt
    wait_until(lambda: events.what("downtime confirmed by the chain"), 10, "the chain's clock")
    (confirmed,) = events.what("downtime confirmed by the chain")
    assert confirmed["chain_down_s"] > LIMIT and confirmed["block_time"] == localnet.server.rpc.chain.block_time(0)
    mono.ahead = 60.0  # the grace is over: vault-0001 never registered here
    wait_until(lambda: events.what("downtime liquidation skipped"), 10, "the grace")
    (skipped,) = events.what("downtime liquidation skipped")
    assert "not running on this node: vault-0001" in skipped["why"]
    assert ks.ask(GetStatus(), timeout=5).state == "TRIGGERED"  # still halted: a recovery resumes it


def test_a_wall_clock_jumped_forward_flattens_nothing_the_chain_does_not_confirm(
    runtime: Runtime, tmp_path: Path, localnet: Localnet
) -> None:
    # A bad RTC at boot: the wall clock says a day passed; the chain says 5 s, and answers late.
    board, answer = HaltBoard(), threading.Event()
    ks, events = start(tmp_path, ARMED, last_alive=time.time() - 5, chain=chain_clock(localnet, answer),
                       clock=lambda: time.time() + 86_400, board=board)
    assert ks.ask(GetStatus(), timeout=5).state == "MAINTENANCE"  # halted at once, before the chain answers
    (decided,) = events.what("downtime liquidation decided")
    assert decided["down_s"] > 86_000
    Vault0001.start(board)  # the chosen vault registers at once...
    wait_until(lambda: ks.ask(GetStatus(), timeout=5).registered == 1, 10, "vault-0001 registered")
    time.sleep(0.6)  # ...and the start's polls pass: nothing is sold before the chain confirms
    assert ks.ask(GetStatus(), timeout=5).flatten_id is None and not events.what("flatten started")
    answer.set()
    wait_until(lambda: events.what("downtime liquidation skipped"), 10, "the chain's answer")
    (skipped,) = events.what("downtime liquidation skipped")
    assert skipped["why"].startswith("the chain's clock could not confirm the downtime (the chain's clock says down ")
    assert skipped["chain_down_s"] < LIMIT and skipped["block_time"] == localnet.server.rpc.chain.block_time(0)
    time.sleep(1.5)  # past the grace: nothing more happens
    status = ks.ask(GetStatus(), timeout=5)
    assert status.state == "MAINTENANCE" and status.flatten_id is None  # halted: fail closed, nothing sold
    assert not events.what("downtime confirmed by the chain")


def test_a_chain_that_cannot_tell_its_time_flattens_nothing(runtime: Runtime, tmp_path: Path, localnet: Localnet) -> None:
    localnet.server.rpc.methods.pop("getBlockTime")  # a node that does not serve the method
    ks, events = start(tmp_path, ARMED, last_alive=time.time() - 2 * LIMIT, chain=chain_clock(localnet))
    wait_until(lambda: events.what("downtime liquidation skipped"), 10, "the chain's answer")
    (skipped,) = events.what("downtime liquidation skipped")
    assert skipped["why"].startswith("the chain's clock could not confirm the downtime (no answer: RpcFailure: getBlockTime")
    assert skipped["down_s"] > LIMIT and skipped["block_time"] is None
    time.sleep(1.5)
    status = ks.ask(GetStatus(), timeout=5)
    assert status.state == "MAINTENANCE" and status.flatten_id is None


@pytest.mark.parametrize("behind", [30.0, 86_400.0])
def test_a_wall_clock_behind_the_last_alive_entry_flattens_nothing_and_is_audited(
    runtime: Runtime, tmp_path: Path, behind: float
) -> None:
    now = time.time()
    ks, events = start(tmp_path, ARMED, last_alive=now, chain=None, clock=lambda: time.time() - behind)
    status = ks.ask(GetStatus(), timeout=5)
    assert status.state == "ARMED"
    (skipped,) = events.what("downtime liquidation skipped")
    assert skipped["down_s"] < 0 and "the wall clock is" in skipped["why"] and "behind the last entry" in skipped["why"]
    assert not events.what("downtime liquidation decided")
