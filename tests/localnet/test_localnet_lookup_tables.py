"""Address lookup tables against the running localnet: tables made through the real program (or
placed with given contents), read with getMultipleAccounts, cached, compiled into v0
transactions that land; refreshed when extended, deactivated, or blamed by a failure."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.chain import (
    CompiledMessage,
    CompileRefusal,
    LookupTableCache,
    LookupTableError,
    LookupTableProblem,
    RefusalReason,
    compile_v0,
    rpc_account_fetcher,
)
from xorj_actors.localnet import Localnet

LAMPORTS = 1_000_000


@pytest.fixture
def payer(localnet: Localnet) -> Keypair:
    kp = Keypair()
    localnet.call(localnet.server.chain.airdrop, kp.pubkey(), 10**10)
    return kp


def _transfers(payer: Pubkey, to: Sequence[Pubkey]) -> list:
    return [transfer(TransferParams(from_pubkey=payer, to_pubkey=k, lamports=LAMPORTS)) for k in to]


def _keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


async def _blockhash(rpc: AsyncClient) -> Hash:
    return (await rpc.get_latest_blockhash("processed")).value.blockhash


async def _send(rpc: AsyncClient, compiled: CompiledMessage | CompileRefusal, payer: Keypair) -> VersionedTransaction:
    assert isinstance(compiled, CompiledMessage), compiled
    tx = VersionedTransaction(compiled.message, [payer])
    assert len(bytes(tx)) == compiled.size
    await rpc.send_raw_transaction(bytes(tx), TxOpts(preflight_commitment="processed"))
    return tx


async def test_a_table_made_through_the_program_is_read_cached_and_used(localnet: Localnet, payer: Keypair) -> None:
    to = _keys(25)
    table_key = localnet.call(localnet.tables.create, to)
    localnet.advance(1)  # addresses appended in a slot are usable from the next one
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        (table,) = await cache.tables([table_key])
        assert table.addresses == tuple(to) and table.authority == localnet.tables.authority.pubkey()
        assert table.key in cache and cache.reads == 1
        compiled = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), [table], await _blockhash(rpc))
        assert isinstance(compiled, CompiledMessage) and compiled.tables == (table_key,)
        # Without the table the same 25 transfers do not fit in a packet.
        plain = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), [], await _blockhash(rpc))
        assert isinstance(plain, CompileRefusal) and plain.reason is RefusalReason.TOO_LARGE
        tx = await _send(rpc, compiled, payer)
        await cache.tables([table_key])
        assert cache.reads == 1  # served from the cache
        balances = (await rpc.get_multiple_accounts(to[:3], "processed")).value
        assert [a.lamports for a in balances] == [LAMPORTS] * 3
        localnet.advance(2)
        got = (await rpc.get_transaction(tx.signatures[0], commitment="confirmed", max_supported_transaction_version=0)).value
        assert got is not None and {str(k) for k in got.transaction.meta.loaded_addresses.writable} == {str(k) for k in to}


async def test_an_extended_table_is_read_again_for_an_index_past_the_cached_end(localnet: Localnet, payer: Keypair) -> None:
    first, more = _keys(3), _keys(2)
    table_key = localnet.call(localnet.tables.create, first)
    localnet.advance(1)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        await cache.tables([table_key])
        localnet.call(localnet.tables.extend, table_key, more)
        localnet.advance(1)
        # A transaction built elsewhere (as an Ultra order is) uses the new entries.
        current = localnet.call(localnet.tables.read, table_key)
        built = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), more), [current], await _blockhash(rpc))
        assert isinstance(built, CompiledMessage)
        loaded = await cache.resolve(built.message)
        assert set(loaded.writable) == set(more) and cache.reads == 2
        assert cache.cached(table_key).addresses == (*first, *more)
        await _send(rpc, built, payer)


async def test_a_deactivated_table_is_refreshed_and_left_out(localnet: Localnet, payer: Keypair) -> None:
    to = _keys(4)
    table_key = localnet.call(localnet.tables.create, to)
    localnet.advance(1)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        await cache.tables([table_key])
        localnet.call(localnet.tables.deactivate, table_key)
        localnet.advance(1)
        # A failure is blamed on a table only by the node's own words; anything else keeps it.
        assert cache.after_failure({"InstructionError": [0, {"Custom": 1}]}, [table_key]) is None
        assert table_key in cache
        (table,) = await cache.refresh([table_key])
        assert table.deactivated and table_key not in cache
        compiled = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), [table], await _blockhash(rpc))
        assert isinstance(compiled, CompiledMessage) and compiled.skipped == (table_key,) and compiled.tables == ()
        await _send(rpc, compiled, payer)


async def test_a_lookup_the_node_refuses_makes_the_cache_forget_the_table(localnet: Localnet, payer: Keypair) -> None:
    to = _keys(3)
    table_key = localnet.call(localnet.tables.create, to)
    # Same slot as the extension: the node refuses the lookup, before preflight, as Agave does.
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        (table,) = await cache.tables([table_key])
        compiled = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), [table], await _blockhash(rpc))
        assert isinstance(compiled, CompiledMessage)
        tx = VersionedTransaction(compiled.message, [payer])
        for skip in (False, True):
            with pytest.raises(RPCException) as caught:
                await rpc.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=skip, preflight_commitment="processed"))
            assert "invalid transaction: Transaction address table lookup uses an invalid index" in str(caught.value)
        assert cache.after_failure(caught.value, [table_key]) is LookupTableProblem.INDEX_OUT_OF_RANGE
        assert table_key not in cache
        localnet.advance(1)
        await _send(rpc, compiled, payer)  # the same message once the entries are warm


async def test_a_placed_table_is_served_at_its_address(localnet: Localnet, payer: Keypair) -> None:
    key, to = Keypair().pubkey(), _keys(6)
    localnet.call(localnet.tables.place, key, to)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        (table,) = await cache.tables([key])
        assert table.addresses == tuple(to) and table.authority is None
        await _send(rpc, compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), [table], await _blockhash(rpc)), payer)
        with pytest.raises(LookupTableError) as caught:
            await cache.tables([payer.pubkey()])  # an account, but not a table
        assert caught.value.problem is LookupTableProblem.WRONG_OWNER


async def test_a_static_only_account_stays_out_of_the_table_on_chain(localnet: Localnet, payer: Keypair) -> None:
    tip, *others = _keys(5)
    table_key = localnet.call(localnet.tables.create, [tip, *others])
    localnet.advance(1)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        tables = await cache.tables([table_key])
        compiled = compile_v0(
            payer.pubkey(), _transfers(payer.pubkey(), [tip, *others]), tables, await _blockhash(rpc), static_only={tip}
        )
        assert isinstance(compiled, CompiledMessage) and tip in compiled.message.account_keys
        tx = await _send(rpc, compiled, payer)
        localnet.advance(2)
        got = (await rpc.get_transaction(tx.signatures[0], commitment="confirmed", max_supported_transaction_version=0)).value
        assert got is not None
        loaded = got.transaction.meta.loaded_addresses
        assert tip not in loaded.writable and set(loaded.writable) == set(others)
        assert (await rpc.get_balance(tip, "processed")).value == LAMPORTS


def test_admin_actions_create_and_place_tables(localnet: Localnet) -> None:
    import json
    import urllib.request

    def admin(action: str, body: dict) -> dict:
        req = urllib.request.Request(
            f"{localnet.urls['rpc']}/admin/{action}", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    to = [str(k) for k in _keys(2)]
    created = Pubkey.from_string(admin("create-lookup-table", {"addresses": to})["result"])
    placed = Keypair().pubkey()
    assert admin("place-lookup-table", {"address": str(placed), "addresses": to})["result"] == str(placed)
    for key in (created, placed):
        assert [str(a) for a in localnet.call(localnet.tables.read, key).addresses] == to
    assert "addresses" in admin("place-lookup-table", {"address": str(placed), "addresses": ["nope"]})["error"]


async def test_a_closed_table_is_not_found_and_refused_by_the_node(localnet: Localnet, payer: Keypair) -> None:
    to = _keys(2)
    table_key = localnet.call(localnet.tables.create, to)
    localnet.advance(1)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        cache = LookupTableCache(rpc_account_fetcher(rpc, "processed"))
        tables = await cache.tables([table_key])
        localnet.call(localnet.tables.deactivate, table_key)
        localnet.advance(1)
        with pytest.raises(Exception, match="custom program error|Instruction"):
            localnet.call(localnet.tables.close, table_key)  # still in its cool-down
        localnet.advance(513)  # the deactivation slot leaves SlotHashes
        compiled = compile_v0(payer.pubkey(), _transfers(payer.pubkey(), to), tables, await _blockhash(rpc))
        assert isinstance(compiled, CompiledMessage)  # built from the stale cache entry
        with pytest.raises(RPCException) as caught:
            await rpc.send_raw_transaction(bytes(VersionedTransaction(compiled.message, [payer])))
        assert "address table account that doesn't exist" in str(caught.value)
        assert cache.after_failure(caught.value, [table_key]) is LookupTableProblem.NOT_FOUND
        localnet.call(localnet.tables.close, table_key)
        with pytest.raises(LookupTableError) as gone:
            await cache.tables([table_key])
        assert gone.value.problem is LookupTableProblem.NOT_FOUND
