"""The cluster's fence in the signing path (docs/CLUSTER.md, docs/EXECUTION.md): intent, fence,
sign, fence again, send; on the localnet, with leases on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solders.signature import Signature

from supervisors import LoopThread
from tests.cluster.nodes import CLUSTER_TOML
from tests.execution.conftest import BASE, Harness, merged_config
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS
from tests.plugins.nats_server import NatsServer
from xorj_actors.audit import AuditLog, EventType, open_store, select_entries
from xorj_actors.cluster import (
    ClusterStore,
    Fence,
    FenceRefusal,
    LeaseClock,
    LeaseGrant,
    LeaseToken,
    Leases,
    NodeIdentity,
    Ownership,
)
from xorj_actors.engine import Engine
from xorj_actors.execution import AdoptOpenTrades, HandOverVaults
from xorj_actors.signers import GetSignerHealth

pytestmark = pytest.mark.nats

#: The cluster tests' short timings, as node "a".
CLUSTER = CLUSTER_TOML.replace("{lost}", "2.0") + 'node_id = "a"\n'


class RecordingFence(Fence):
    """The engine's fence, remembering every revision granted."""

    def __init__(self, clock: LeaseClock) -> None:
        super().__init__(clock)
        self.revisions: set[int] = set()

    def grant(self, grant: LeaseGrant) -> None:
        self.revisions.add(grant.revision)
        super().grant(grant)


class LostAfterCheck(RecordingFence):
    """Fault injection (a pause we cannot place between two lines for real): the lease is lost
    right after fence check number ``LOST_AFTER`` of a trade. The checks, in order: 1 before the
    intent, 2 the executor's before the signature, 3 the signer's own, 4 before the send."""

    LOST_AFTER = 0

    def __init__(self, clock: LeaseClock) -> None:
        super().__init__(clock)
        self.calls = 0

    def fence(self, vault_id: str) -> LeaseToken | FenceRefusal:
        answer = super().fence(vault_id)
        self.calls += 1
        if self.calls == self.LOST_AFTER:
            self.revoke(vault_id)
        return answer


class LostBeforeSend(LostAfterCheck):
    """Lost after the signer's check: the signature is made, the check before the send refuses."""

    LOST_AFTER = 3


class LostBeforeSignature(LostAfterCheck):
    """Lost after the executor's check, before the signer's: the signer refuses."""

    LOST_AFTER = 2


class RetakenBeforeSign(RecordingFence):
    """Fault injection (a lease lost and taken back between two lines, which we cannot time for
    real): right before the signature the lease is revoked and granted again, a new holding."""

    def __init__(self, clock: LeaseClock) -> None:
        super().__init__(clock)
        self.calls = 0

    def fence(self, vault_id: str) -> LeaseToken | FenceRefusal:
        self.calls += 1
        if self.calls == 2:  # 1: before the intent, 2: before the signature
            grant = self.revoke(vault_id)
            assert grant is not None
            self.grant(grant)
        return super().fence(vault_id)


class Cluster:
    """The cluster side of one node, on a loop thread of its own (as the node runtime runs it)."""

    def __init__(self, url: str, engine: Engine) -> None:
        assert engine.config.cluster is not None
        self.thread = LoopThread("test-cluster")
        self.settings = engine.config.cluster
        self.store: ClusterStore | None = None
        self.thread.start(self._open(), timeout=15)
        self.me = NodeIdentity.new("a")
        assert self.store is not None
        self.leases = Leases(self.store, self.me)

    async def _open(self) -> None:
        self.store = await ClusterStore.open(self.settings)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.thread.loop).result(15)

    def close(self) -> None:
        store = self.store
        self.thread.stop(store.close if store is not None else None, timeout=10)


@pytest.fixture
def make(tmp_path: Path, nats_server: NatsServer) -> Iterator[Callable[..., tuple[Harness, Cluster]]]:
    made: list[tuple[Engine, Cluster]] = []

    def build(fence: type[Fence] = RecordingFence, extra: str = "") -> tuple[Harness, Cluster]:
        config = merged_config(BASE, CLUSTER.format(nats=nats_server.url) + extra)
        engine = Engine(config, tmp_path / "var", environ=dict(RECOVERY_KEYS))
        assert engine.fence is not None
        engine.fence = fence(engine.fence.clock)
        engine.start()
        cluster = Cluster(nats_server.url, engine)
        made.append((engine, cluster))
        h = Harness(engine)
        wait_until(h.reconciled, 10, "executor reconciled")
        return h, cluster

    yield build
    for engine, cluster in made:
        cluster.close()
        assert not engine.stop(timeout=15)


def signatures(h: Harness) -> int:
    """Signatures the signers made (``xorj_hsm_operations_total{result="ok"}``)."""
    return int(sum(
        s.value for m in h.engine.metrics.registry.collect() if m.name == "xorj_hsm_operations"
        for s in m.samples if s.name.endswith("_total") and s.labels.get("result") == "ok"
    ))


def executions(h: Harness, trade_id: str, phase: str) -> list[dict[str, Any]]:
    return [d for kind, d in h.entries(trade_id) if kind == "TRADE_EXECUTION" and d.get("phase") == phase]


def outcomes(h: Harness, trade_id: str) -> list[dict[str, Any]]:
    return [d for kind, d in h.entries(trade_id) if kind == "TRADE_CONFIRMATION"]


def handed_over(h: Harness) -> list[str]:
    """The trade ids the executor's ``executor_handing_over`` entries name."""
    events = [d for _, d in h.entries(None, "SYSTEM_EVENT") if d.get("event") == "executor_handing_over"]
    return [t["trade_id"] for d in events for t in d["trades"]]


def adopt(h: Harness, vault: str) -> tuple[str, ...]:
    """What a new owner's activation does first (engine/_leased.py): adopt the vault's open trades."""
    return tuple(h.executor.ask(AdoptOpenTrades(vault_ids=(vault,)), timeout=5).result(15))


def landed(h: Harness, signature: str) -> Any:
    async def read() -> Any:
        async with AsyncClient(h.localnet.urls["rpc"]) as rpc:
            sig = Signature.from_string(signature)
            return (await rpc.get_signature_statuses([sig], search_transaction_history=True)).value[0]

    return asyncio.run(read())


def test_signatures_carry_the_lease_revision_and_a_paused_node_signs_nothing(make: Callable[..., tuple[Harness, Cluster]]) -> None:
    h, cluster = make()
    fence = h.engine.fence
    assert isinstance(fence, RecordingFence)
    vault = h.genesis.vaults[0].vault_id

    async def alone() -> tuple[str, ...]:
        return ("a",)

    own = Ownership(cluster.leases, fence, cluster.me, [vault], alone, lambda grants: {}, lambda v, why: None)
    own.start(cluster.thread.loop)
    wait_until(lambda: fence.usable() == (vault,), 10, "the lease held")

    done = h.execute(h.request(f"{vault}:r1:0"))
    assert done.status == "confirmed", done
    assert signatures(h) == 1
    [intent] = [d for kind, d in h.entries(f"{vault}:r1:0") if kind == "TRADE_INTENT"]
    [signed] = executions(h, f"{vault}:r1:0", "signed")
    assert intent["lease_revision"] in fence.revisions and signed["lease_revision"] in fence.revisions
    assert intent["lease_revision"] <= signed["lease_revision"]

    # The node pauses: its renewals stop, its fence keeps the grant until the deadline passes.
    assert own._task is not None
    own._task.cancel()
    wait_until(lambda: fence.fence(vault) is FenceRefusal.EXPIRED, 5, "the fence expired")
    before = signatures(h)
    refused = h.execute(h.request(f"{vault}:r2:0"))
    assert (refused.status, refused.error_class) == ("rejected", "fenced"), refused
    assert signatures(h) == before
    assert h.entries(f"{vault}:r2:0") == []  # not this node's vault: nothing recorded
    again = h.execute(h.request(f"{vault}:r2:0"), count=2)  # asked again (an overdue outcome)
    assert (again.status, again.error_class) == ("rejected", "fenced") and signatures(h) == before
    # And once the TTL has run out another node takes the vault.
    other = Leases(cluster.store, NodeIdentity.new("b"))  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while True:
        try:
            cluster.run(other.acquire(vault))
            break
        except Exception:  # noqa: BLE001 - still held until the TTL
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(0.1)


def test_a_transaction_fenced_between_signature_and_send_is_never_sent(make: Callable[..., tuple[Harness, Cluster]]) -> None:
    h, cluster = make(LostBeforeSend)
    fence = h.engine.fence
    assert isinstance(fence, LostBeforeSend)
    vault = h.genesis.vaults[0].vault_id
    grant = cluster.run(cluster.leases.acquire(vault))
    fence.grant(grant)
    usdc = h.balance(0, "USDC")
    before = signatures(h)

    tid = f"{vault}:r1:0"
    told = h.execute(h.request(tid))
    # Not this node's to record any more: handed over, no outcome written here.
    assert (told.status, told.error_class) == ("timed_out", "fenced"), told
    assert signatures(h) == before + 1  # signed once ...
    [signed] = executions(h, tid, "signed")
    [fenced] = executions(h, tid, "fenced")
    assert signed["lease_revision"] == grant.revision
    assert (fenced["attempt"], fenced["sent"], fenced["signature"]) == (1, False, signed["signature"])
    assert not executions(h, tid, "sent")
    assert outcomes(h, tid) == []
    time.sleep(1.0)  # 50 slots: a copy sent would have landed by now
    assert landed(h, signed["signature"]) is None  # ... and never sent
    assert h.balance(0, "USDC") == usdc

    # The lease holder (here this node again, as a new owner would) settles it from the log:
    # one outcome in the whole store, never sent.
    fence.grant(cluster.run(cluster.leases.acquire(vault)))  # held again (or anew after the TTL)
    assert adopt(h, vault) == (tid,)
    wait_until(lambda: outcomes(h, tid), 10, "the handed-over trade settled by the lease holder")
    [outcome] = outcomes(h, tid)
    assert (outcome["status"], outcome["error_class"]) == ("rejected", "fenced")
    assert signatures(h) == before + 1 and h.balance(0, "USDC") == usdc


def test_a_lease_lost_after_the_executors_check_is_refused_by_the_signer_itself(
    make: Callable[..., tuple[Harness, Cluster]],
) -> None:
    h, cluster = make(LostBeforeSignature)
    fence = h.engine.fence
    vault = h.genesis.vaults[0].vault_id
    fence.grant(cluster.run(cluster.leases.acquire(vault)))
    before, hsm = signatures(h), h.engine.runtime.whereis("signer:vault-authority").ask(GetSignerHealth(), timeout=5)
    tid = f"{vault}:r1:0"
    told = h.execute(h.request(tid))
    assert (told.status, told.error_class) == ("timed_out", "fenced"), told  # handed over, nothing recorded
    after = h.engine.runtime.whereis("signer:vault-authority").ask(GetSignerHealth(), timeout=5)
    assert (after.signed, after.refused) == (hsm.signed, hsm.refused + 1)  # the key never signed
    assert signatures(h) == before and executions(h, tid, "signed") == [] and outcomes(h, tid) == []


def test_a_trade_begun_before_its_vault_was_lost_and_taken_back_signs_nothing(
    make: Callable[..., tuple[Harness, Cluster]],
) -> None:
    # In between, another node may have held the vault and settled the trade as never sent.
    h, cluster = make(RetakenBeforeSign)
    fence = h.engine.fence
    vault = h.genesis.vaults[0].vault_id
    fence.grant(cluster.run(cluster.leases.acquire(vault)))
    before = signatures(h)
    tid = f"{vault}:r1:0"
    told = h.execute(h.request(tid))
    assert (told.status, told.error_class) == ("timed_out", "fenced"), told  # handed over
    assert signatures(h) == before and executions(h, tid, "signed") == []
    assert outcomes(h, tid) == []
    # A new trade of the vault, begun under this holding, goes through.
    assert h.execute(h.request(f"{vault}:r2:0")).status == "confirmed"


def test_a_vault_handed_over_while_its_trade_lands_gets_one_outcome_from_the_lease_holder(
    make: Callable[..., tuple[Harness, Cluster]],
) -> None:
    h, cluster = make()
    fence = h.engine.fence
    vault = h.genesis.vaults[0].vault_id
    grant = cluster.run(cluster.leases.acquire(vault))
    fence.grant(grant)
    usdc = h.balance(0, "USDC")
    h.localnet.drop_transactions(1_000)  # sent and rebroadcast, never landing while the lease goes
    tid = f"{vault}:r1:0"
    h.executor.tell(h.request(tid))
    wait_until(lambda: executions(h, tid, "signed"), 10, "the attempt signed")
    signed = signatures(h)

    fence.revoke(vault)  # the lease loop revokes first, then the engine passivates and hands over
    assert h.executor.ask(HandOverVaults(vault_ids=(vault,)), timeout=5).result(10) == (tid,)
    told = h.wait(tid)
    assert (told.status, told.error_class) == ("timed_out", "fenced"), told
    h.localnet.reset_faults()
    time.sleep(1.5)  # a rebroadcast or a retry from this node would have landed or signed by now
    assert outcomes(h, tid) == [] and signatures(h) == signed
    assert h.balance(0, "USDC") == usdc  # the old owner stopped rebroadcasting
    wait_until(lambda: handed_over(h) == [tid], 5, "the hand-over audited")

    # The lease holder adopts it: the same signed bytes land once, one outcome in the store.
    fence.grant(cluster.run(cluster.leases.acquire(vault)))  # held again (or anew after the TTL)
    assert adopt(h, vault) == (tid,)
    wait_until(lambda: outcomes(h, tid), 60, "the handed-over trade settled by the lease holder")
    [outcome] = outcomes(h, tid)
    assert outcome["status"] == "confirmed", outcome
    assert h.balance(0, "USDC") == usdc - 10_000_000  # landed once


def test_an_open_trade_fenced_before_its_send_is_settled_as_never_sent(exec_engine_factory: Any, tmp_path: Path) -> None:
    h = exec_engine_factory()
    vault = h.genesis.vaults[0].vault_id
    done = h.execute(h.request(f"{vault}:r1:0"))  # a real signed transaction, to copy
    assert done.status == "confirmed"
    [intent] = [d for kind, d in h.entries(f"{vault}:r1:0") if kind == "TRADE_INTENT"]
    [signed] = executions(h, f"{vault}:r1:0", "signed")
    assert not h.engine.stop(timeout=15)  # one runtime per process

    # Another data directory whose log holds a trade signed, fenced and left open (a crash
    # before its outcome was written).
    data = tmp_path / "other"
    trade = f"{vault}:r9:0"
    log = AuditLog.open(h.engine.config.audit, data, h.engine.config.engine.environment)
    try:
        for kind, details in (
            (EventType.TRADE_INTENT, {**intent, "trade_id": trade, "round_key": "r9"}),
            (EventType.TRADE_EXECUTION, {**signed, "lease_revision": 7}),
            (EventType.TRADE_EXECUTION, {"phase": "fenced", "attempt": 1, "signature": signed["signature"],
                                         "lease_revision": 7, "sent": False, "reason": "fenced (expired)"}),
        ):
            log.append(kind, actor="executor", details=details, correlation_id=trade)
    finally:
        log.close()
    again = exec_engine_factory(data_dir=data)
    wait_until(lambda: any(k == "TRADE_CONFIRMATION" for k, _ in again.entries(trade)), 10, "the open trade settled")
    [outcome] = [d for k, d in again.entries(trade) if k == "TRADE_CONFIRMATION"]
    assert (outcome["status"], outcome["error_class"]) == ("rejected", "fenced")
    assert not executions(again, trade, "sent")


def test_cluster_mode_starts_a_vault_only_under_its_lease_and_stops_it_when_given_up(
    make: Callable[..., tuple[Harness, Cluster]]
) -> None:
    h, cluster = make(extra="[vaults]\ncount = 2\n")
    engine, fence = h.engine, h.engine.fence
    assert fence is not None and engine.runtime is not None

    def vaults() -> list[str]:
        return [c.id for c in engine.runtime.which_children("vaults") if c.alive]  # type: ignore[union-attr]

    # No vault starts with the tree: each one is started by the lease loop once its lease is held
    # (audited below with its lease revision).
    own = engine.ownership  # the engine's own lease loop, on its cluster node's loop
    assert own is not None
    wait_until(lambda: vaults() == ["vault-0000", "vault-0001"], 15, "both vaults activated")
    assert own.owned() == ("vault-0000", "vault-0001") == fence.usable()
    assert engine.cluster is not None and engine.cluster._owned() == 2  # the member record's count
    own.stop(15, release=True)  # the node stops: passivated, then released
    engine.ownership = None
    assert vaults() == [] and fence.held() == () and own.owned() == ()
    assert cluster.run(cluster.leases.all()) == {}
    expected = sorted(
        [("vault activated", "vault-0000"), ("vault activated", "vault-0001"),
         ("vault passivated", "vault-0000"), ("vault passivated", "vault-0001")]
    )

    def changes() -> list[tuple[str, str]]:
        return sorted(
            (d["what"], d["vault"]) for kind, d in _log(h)
            if kind == "CONFIG_CHANGE" and d.get("what", "").startswith("vault ")
        )

    wait_until(lambda: changes() == expected, 5, f"audited activations and passivations: {changes()}")


def _log(h: Harness) -> list[tuple[str, dict[str, Any]]]:
    store = open_store(h.engine.config.audit, h.engine.data_dir, create=False)
    try:
        return [(e.event_type, json.loads(e.details)) for e in select_entries(store)]
    finally:
        store.close()
