"""The localnet's block engine: bundles land in order and atomically or not at all, the
``jitodontfront`` rule, Jito's statuses, and dropped or delayed bundles on command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from solana.rpc.async_api import AsyncClient
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.jito import (
    BlockEngineClient,
    BlockEngineRefused,
    InflightStatus,
    JitoSettings,
    RefusalReason,
    TipPercentile,
    bundle_id,
    tip_transfer,
    with_dont_front,
)
from xorj_actors.config import ConfigError, parse_config
from xorj_actors.localnet import Localnet, dev_vault_authority

MARK = Pubkey.from_string("jitodontfront111111111111111111111111111111")
SOL = 10**9


@pytest.fixture
async def jito(localnet: Localnet) -> AsyncIterator[BlockEngineClient]:
    url = localnet.urls["block_engine"]
    assert url is not None
    async with BlockEngineClient(JitoSettings(enabled=True), block_engine_url=url) as client:
        yield client


async def blockhash(localnet: Localnet) -> Hash:
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        return (await rpc.get_latest_blockhash()).value.blockhash


async def balances(localnet: Localnet, *keys: Pubkey) -> list[int]:
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        return [(await rpc.get_balance(k)).value for k in keys]


async def landed(localnet: Localnet, *sigs: Signature) -> list[int | None]:
    """The slot each signature landed in (``None``: it did not)."""
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        statuses = (await rpc.get_signature_statuses(list(sigs), search_transaction_history=True)).value
    return [s.slot if s is not None else None for s in statuses]


def signed(payer: Keypair, ixs: list[Instruction], recent: Hash) -> VersionedTransaction:
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], recent), [payer])


def pay(source: Keypair, dest: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source.pubkey(), to_pubkey=dest, lamports=lamports))


async def protected_pair(localnet: Localnet, jito: BlockEngineClient) -> tuple[VersionedTransaction, VersionedTransaction, Keypair, Pubkey]:
    """Ours: vault 0's authority funds a fresh key, tips, and carries the mark; then the fresh key
    pays on (it exists only if ours ran first)."""
    recent, tips = await blockhash(localnet), await jito.tip_accounts()
    ours_key, fresh, dest = dev_vault_authority(0), Keypair(), Keypair().pubkey()
    ours = signed(ours_key, [with_dont_front(pay(ours_key, fresh.pubkey(), 2 * SOL), MARK), tip_transfer(ours_key.pubkey(), tips[0], 10_000)], recent)
    then = signed(fresh, [pay(fresh, dest, SOL)], recent)
    return ours, then, fresh, dest


async def test_tip_accounts_exist_and_the_tip_floor_has_jitos_shape(localnet: Localnet, jito: BlockEngineClient) -> None:
    tips = await jito.tip_accounts()
    assert len(tips) == 8
    assert all(b > 0 for b in await balances(localnet, *tips))
    assert (await jito.tip_floor()).at(TipPercentile.P50) == 10_000


async def test_a_protected_bundle_lands_atomically_and_in_order(localnet: Localnet, jito: BlockEngineClient) -> None:
    ours, then, fresh, dest = await protected_pair(localnet, jito)
    tip_before = (await balances(localnet, (await jito.tip_accounts())[0]))[0]
    ident = await jito.send_bundle([ours, then])
    slots = await landed(localnet, ours.signatures[0], then.signatures[0])
    assert slots[0] is not None and slots == [slots[0], slots[0]]
    assert await balances(localnet, fresh.pubkey(), dest) == [SOL - 5_000, SOL]
    assert (await balances(localnet, (await jito.tip_accounts())[0]))[0] == tip_before + 10_000
    _, found = await jito.bundle_statuses([ident])
    assert found[ident].signatures == (ours.signatures[0], then.signatures[0]) and found[ident].err is None
    assert found[ident].confirmation == "processed"
    localnet.advance(4)
    assert (await jito.bundle_statuses([ident]))[1][ident].confirmation == "finalized"
    inflight = (await jito.inflight_statuses([ident]))[1][ident]
    assert inflight.status is InflightStatus.LANDED and inflight.landed_slot == slots[0]


async def test_a_bundle_that_would_front_run_us_is_refused_and_nothing_lands(localnet: Localnet, jito: BlockEngineClient) -> None:
    ours, _, fresh, _ = await protected_pair(localnet, jito)
    attacker = dev_vault_authority(1)
    front = signed(attacker, [pay(attacker, Keypair().pubkey(), SOL), tip_transfer(attacker.pubkey(), (await jito.tip_accounts())[1], 50_000)], await blockhash(localnet))
    before = await balances(localnet, ours.message.account_keys[0], attacker.pubkey())
    with pytest.raises(BlockEngineRefused) as caught:
        await jito.send_bundle([front, ours])
    assert caught.value.refusal.reason is RefusalReason.REJECTED and "jitodontfront" in caught.value.refusal.message
    assert await landed(localnet, front.signatures[0], ours.signatures[0]) == [None, None]
    assert await balances(localnet, ours.message.account_keys[0], attacker.pubkey()) == before
    assert await balances(localnet, fresh.pubkey()) == [0]
    refused = bundle_id([front, ours])
    assert (await jito.inflight_statuses([refused]))[1][refused].status is InflightStatus.INVALID


async def test_a_failing_second_transaction_lands_nothing_and_leaves_no_trace(localnet: Localnet, jito: BlockEngineClient) -> None:
    ours, _, fresh, dest = await protected_pair(localnet, jito)
    overdraw = signed(fresh, [pay(fresh, dest, 3 * SOL)], await blockhash(localnet))  # it gets 2 SOL
    ident = await jito.send_bundle([ours, overdraw])
    assert (await jito.inflight_statuses([ident]))[1][ident].status is InflightStatus.FAILED
    assert (await jito.bundle_statuses([ident]))[1] == {}
    assert await landed(localnet, ours.signatures[0], overdraw.signatures[0]) == [None, None]
    assert await balances(localnet, fresh.pubkey(), dest) == [0, 0]
    # Nothing of the simulation stayed behind: our transaction alone still lands through the RPC.
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        await rpc.send_raw_transaction(bytes(ours))
    assert (await landed(localnet, ours.signatures[0]))[0] is not None


async def test_order_matters_and_a_bundle_must_tip(localnet: Localnet, jito: BlockEngineClient) -> None:
    ours, then, _, _ = await protected_pair(localnet, jito)
    key = dev_vault_authority(2)
    untipped = signed(key, [pay(key, Keypair().pubkey(), SOL)], await blockhash(localnet))
    # Unmarked, the pair may be reordered: then the fresh key pays before it exists.
    reversed_ident = await jito.send_bundle([then, signed(dev_vault_authority(0), [pay(dev_vault_authority(0), then.message.account_keys[0], 2 * SOL)], await blockhash(localnet))])
    no_tip = await jito.send_bundle([untipped])
    _, found = await jito.inflight_statuses([reversed_ident, no_tip])
    assert {found[reversed_ident].status, found[no_tip].status} == {InflightStatus.FAILED}
    assert await landed(localnet, then.signatures[0], untipped.signatures[0]) == [None, None]


async def fault(localnet: Localnet, body: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{localnet.urls['block_engine']}/admin/bundle-fault", json=body) as resp:
            return resp.status, await resp.json()


async def test_dropped_bundles_never_land_and_bad_faults_change_nothing(localnet: Localnet, jito: BlockEngineClient) -> None:
    for bad in ({"mode": "explode"}, {"mode": "drop", "count": -1}, {"mode": "delay", "count": 1}, {"mode": "drop", "delay_ms": 5}, [1]):
        status, answer = await fault(localnet, bad)
        assert status == 400 and "error" in answer
    assert (await fault(localnet, {"mode": "drop", "count": 1}))[1]["result"]["drop_next"] == 1
    ours, then, _, _ = await protected_pair(localnet, jito)
    dropped = await jito.send_bundle([ours, then])
    localnet.advance(2)
    assert await landed(localnet, ours.signatures[0]) == [None]
    assert (await jito.inflight_statuses([dropped]))[1][dropped].status is InflightStatus.PENDING
    # Only the next one was dropped: the same transactions through the RPC land once.
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        await rpc.send_raw_transaction(bytes(ours))
    assert (await landed(localnet, ours.signatures[0]))[0] is not None
    # It can never land now (its first transaction is processed): Failed, as Jito says, not landed.
    assert (await jito.inflight_statuses([dropped]))[1][dropped].status is InflightStatus.FAILED
    assert (await jito.bundle_statuses([dropped]))[1] == {}
    key = dev_vault_authority(3)
    nxt = signed(key, [tip_transfer(key.pubkey(), (await jito.tip_accounts())[2], 5_000)], await blockhash(localnet))
    await jito.send_bundle([nxt])
    assert (await landed(localnet, nxt.signatures[0]))[0] is not None


async def test_a_delayed_bundle_lands_late(localnet: Localnet, jito: BlockEngineClient) -> None:
    await fault(localnet, {"mode": "delay", "count": 1, "delay_ms": 50})
    ours, then, _, _ = await protected_pair(localnet, jito)
    ident = await jito.send_bundle([ours, then])
    assert (await jito.inflight_statuses([ident]))[1][ident].status is InflightStatus.PENDING

    async def until_landed() -> None:
        while (await jito.inflight_statuses([ident]))[1][ident].status is InflightStatus.PENDING:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until_landed(), 10)
    assert (await jito.inflight_statuses([ident]))[1][ident].status is InflightStatus.LANDED
    assert None not in await landed(localnet, ours.signatures[0], then.signatures[0])


async def test_send_transaction_bundle_only_or_plain(localnet: Localnet, jito: BlockEngineClient) -> None:
    tips = await jito.tip_accounts()
    key = dev_vault_authority(1)
    recent = await blockhash(localnet)
    bundled = signed(key, [with_dont_front(pay(key, Keypair().pubkey(), SOL), MARK), tip_transfer(key.pubkey(), tips[3], 10_000)], recent)
    sent = await jito.send_transaction(bundled)
    assert sent.bundle_id is not None
    assert (await jito.inflight_statuses([sent.bundle_id]))[1][sent.bundle_id].status is InflightStatus.LANDED
    plain = signed(key, [pay(key, Keypair().pubkey(), SOL)], recent)
    sent = await jito.send_transaction(plain, bundle_only=False)
    assert sent.bundle_id is None and (await landed(localnet, plain.signatures[0]))[0] is not None
    untipped = signed(key, [pay(key, Keypair().pubkey(), 2 * SOL)], recent)
    sent = await jito.send_transaction(untipped)
    assert sent.bundle_id is not None and await landed(localnet, untipped.signatures[0]) == [None]


@pytest.mark.parametrize(
    "bad", ["landed_tips_lamports = [1, 2]", "landed_tips_lamports = [6, 5, 4, 3, 2, 1]", "lookback_s = 0", "port = 70000"]
)
def test_block_engine_settings_are_checked(bad: str) -> None:
    with pytest.raises(ConfigError, match="localnet.block_engine"):
        parse_config(f"[localnet.block_engine]\n{bad}\n")
