"""Network faults against the real localnet: cut WebSockets, a stalled clock, 1000 in flight."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisors import Runtime
from tests.chain.conftest import (
    FAST,
    Client,
    blockhash,
    health_of,
    send,
    start_confirmation,
    subscribed,
    wait_connected,
    watch,
    with_settings,
)
from tests.chain.netfakes import TcpProxy
from tests.helpers import wait_until
from xorj_actors.breakers import BreakerEvent, BreakerName, breaker_name
from xorj_actors.chain import GetConfirmationHealth, SignatureOutcome
from xorj_actors.localnet import Localnet


@pytest.fixture
def proxy(localnet: Localnet) -> Iterator[TcpProxy]:
    p = TcpProxy(str(localnet.urls["ws"])).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def network_breaker(runtime: Runtime) -> Client:
    """An inbox registered as the network breaker; collects the BreakerEvents told to it."""
    inbox = Client()
    runtime.register_name(breaker_name(BreakerName.NETWORK_CONNECTIVITY), inbox.ref)
    return inbox


def events(breaker: Client) -> list[tuple[bool, str]]:
    return [(m.ok, m.detail) for m in breaker.received(BreakerEvent)]


def test_a_cut_websocket_reconnects_resubscribes_and_misses_nothing(
    runtime, client, localnet, make_swap, network_breaker
) -> None:
    ref = start_confirmation(localnet)
    wait_connected(ref)
    localnet.advance()
    wait_until(lambda: (True, f"slots flow from {localnet.urls['ws']} (slot 1)") in events(network_breaker))
    bh, last_valid = blockhash(localnet)
    during, after = make_swap(bh, amount_in=1), make_swap(bh, amount_in=2)
    s_during = watch(ref, client, during, last_valid=last_valid)
    s_after = watch(ref, client, after, last_valid=last_valid)
    wait_until(subscribed(ref, 2))
    assert localnet.drop_websockets() == 1
    send(localnet, [during])  # lands and confirms while the connection is being replaced
    localnet.advance()
    assert client.wait_outcome(s_during).status == "confirmed"
    wait_connected(ref)
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert health.reconnects == 1 and "connection lost" in (health.last_error or "")
    assert any(not ok and "connection lost" in detail for ok, detail in events(network_breaker))
    wait_until(subscribed(ref, 1), what="the re-subscription of the other signature")
    send(localnet, [after])
    localnet.advance()
    assert client.wait_outcome(s_after).status == "confirmed"


def test_outcomes_arrive_by_polling_while_the_websocket_stays_down(runtime, client, localnet, make_swap, proxy) -> None:
    ref = start_confirmation(localnet, ws_url=proxy.url, rpc_url=str(localnet.urls["rpc"]))
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    tx = make_swap(bh)
    s = watch(ref, client, tx, last_valid=last_valid)
    wait_until(subscribed(ref, 1))
    proxy.refuse = True
    localnet.drop_websockets()
    wait_until(lambda: not health_of(ref).connected, what="the disconnection")
    send(localnet, [tx])
    localnet.advance(2)
    outcome = client.wait_outcome(s)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("confirmed", 0, 2)
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert not health.connected and health.poll_outcomes == 1 and health.polls >= 1
    assert health.reconnects == 0  # every attempt so far was refused
    accepted = proxy.accepted
    proxy.refuse = False
    wait_connected(ref)
    assert proxy.accepted == accepted + 1 and ref.ask(GetConfirmationHealth(), timeout=5).reconnects == 1


def test_a_stalled_clock_is_a_network_fault(runtime, client, fast_localnet, make_swap, network_breaker) -> None:
    ln = fast_localnet
    settings = with_settings(slot_stall_s=0.3)
    ref = start_confirmation(ln, settings)
    wait_connected(ref)
    wait_until(lambda: any(ok for ok, _ in events(network_breaker)), what="slots to flow")
    bh, last_valid = blockhash(ln)
    tx = make_swap(bh)
    watch(ref, client, tx, last_valid=last_valid + 10_000)  # dropped below: stays in flight
    wait_until(subscribed(ref, 1))
    ln.drop_transactions(1)
    send(ln, [tx])
    polls = ref.ask(GetConfirmationHealth(), timeout=5).polls
    ln.set_faults(clock_stalled=True)
    wait_until(lambda: any(not ok and "no slot from" in detail for ok, detail in events(network_breaker)),
               what="the stall to be reported")
    wait_until(lambda: ref.ask(GetConfirmationHealth(), timeout=5).polls > polls, what="the poll after the stall")
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert health.reconnects >= 1 and health.in_flight == 1
    assert "slot_stall_s 0.3" in (health.last_error or "")
    oks = sum(ok for ok, _ in events(network_breaker))
    ln.reset_faults()
    wait_until(lambda: sum(ok for ok, _ in events(network_breaker)) > oks, what="slots flowing again to be reported")
    assert client.received(SignatureOutcome) == []


def test_a_thousand_signatures_in_flight_at_once(runtime, client, localnet, make_swap) -> None:
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    txs = [make_swap(bh, vault=i % 4, amount_in=1 + i) for i in range(1_000)]
    balance = localnet.genesis.token("USDC").vault_amount
    txs[7] = make_swap(bh, amount_in=balance + 1)  # one fails, among the others
    for tx in txs:
        watch(ref, client, tx, last_valid=last_valid)
    wait_until(subscribed(ref, 1_000), what="1000 subscriptions")
    assert ref.ask(GetConfirmationHealth(), timeout=5).in_flight == 1_000
    send(localnet, txs)
    localnet.advance()
    outcomes = {o.signature: o for o in client.wait_count(SignatureOutcome, 1_000)}
    assert len(outcomes) == 1_000
    failed = [o for o in outcomes.values() if o.status == "failed"]
    assert [o.signature for o in failed] == [str(txs[7].signatures[0])]
    assert all(o.status == "confirmed" and o.slot == 0 for o in outcomes.values() if o not in failed)
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert health.in_flight == 0 and health.reconnects == 0 and health.malformed_frames == 0



def test_a_link_fault_names_the_endpoint_but_never_the_key_in_its_url() -> None:
    """Providers carry API keys in the WebSocket URL; the fault the session and logs see masks it."""
    import asyncio

    from tests.conftest import free_port
    from xorj_actors.chain._link import Link
    from xorj_actors.chain._state import Vitals

    key = "wss-key-" + "7" * 24
    faults: list[str] = []

    class Events:
        def on_fault(self, detail: str) -> None:
            faults.append(detail)

    async def first_fault() -> None:
        link = Link(FAST, f"ws://127.0.0.1:{free_port()}/?api-key={key}", Vitals(), Events(), "test")  # type: ignore[arg-type]
        task = asyncio.create_task(link.run())
        while not faults:
            await asyncio.sleep(0.01)
        link.closing = True
        task.cancel()

    asyncio.run(asyncio.wait_for(first_fault(), 10))
    assert faults[0].startswith("cannot connect to ws://127.0.0.1:") and "?api-key=***" in faults[0], faults
    assert all(key not in f for f in faults)
