"""Address lookup tables, pure parts: decoding, resolving, the error classifier, compiling v0
messages (size limit, accounts kept static) and the cache's bounds (docs/EXECUTION.md)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction_status import TransactionErrorFieldless

from xorj_actors.chain import (
    ACTIVE_TABLE,
    LOOKUP_TABLE_PROGRAM_ID,
    PACKET_DATA_SIZE,
    CompiledMessage,
    CompileRefusal,
    LookupTable,
    LookupTableCache,
    LookupTableError,
    LookupTableProblem,
    LookupTableSettings,
    RawAccount,
    RefusalReason,
    compile_v0,
    decode_lookup_table,
    encode_lookup_table,
    lookup_table_fault,
    resolve_lookups,
)

PAYER = Keypair().pubkey()
BLOCKHASH = Hash.new_unique()


def _keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


def _table(addresses: Sequence[Pubkey], **changes: object) -> LookupTable:
    return LookupTable(key=Keypair().pubkey(), addresses=tuple(addresses), **changes)  # type: ignore[arg-type]


def _transfers(to: Sequence[Pubkey]) -> list:
    return [transfer(TransferParams(from_pubkey=PAYER, to_pubkey=k, lamports=1)) for k in to]


# -- decoding --------------------------------------------------------------------------------


def test_a_table_encodes_and_decodes_back() -> None:
    table = _table(_keys(5), authority=PAYER, deactivation_slot=77, last_extended_slot=9, last_extended_slot_start_index=3)
    decoded = decode_lookup_table(table.key, LOOKUP_TABLE_PROGRAM_ID, encode_lookup_table(table), read_slot=12)
    assert decoded == LookupTable(**{**_fields(table), "read_slot": 12})
    assert decoded.deactivated and not _table(_keys(1)).deactivated


def _fields(table: LookupTable) -> dict[str, object]:
    return {name: getattr(table, name) for name in LookupTable.__slots__}


def test_an_account_of_another_program_is_not_a_table() -> None:
    table = _table(_keys(2))
    with pytest.raises(LookupTableError) as caught:
        decode_lookup_table(table.key, Keypair().pubkey(), encode_lookup_table(table))
    assert caught.value.problem is LookupTableProblem.WRONG_OWNER and caught.value.key == table.key


@pytest.mark.parametrize("data", [b"", b"\0" * 56, encode_lookup_table(_table(_keys(2)))[:-1]])
def test_malformed_table_data_is_refused(data: bytes) -> None:
    with pytest.raises(LookupTableError) as caught:
        decode_lookup_table(PAYER, LOOKUP_TABLE_PROGRAM_ID, data)
    assert caught.value.problem is LookupTableProblem.MALFORMED


# -- the error classifier --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        ("InvalidAddressLookupTableIndex", LookupTableProblem.INDEX_OUT_OF_RANGE),
        (TransactionErrorFieldless.AddressLookupTableNotFound, LookupTableProblem.NOT_FOUND),
        (
            {"code": -32602, "message": "invalid transaction: Transaction address table lookup uses an invalid index"},
            LookupTableProblem.INDEX_OUT_OF_RANGE,
        ),
        ("invalid transaction: Transaction loads an address table account with an invalid owner", LookupTableProblem.WRONG_OWNER),
        ("Transaction loads an address table account with invalid data", LookupTableProblem.MALFORMED),
        ({"InstructionError": [2, {"Custom": 1}]}, None),
        ("Blockhash not found", None),
    ],
)
def test_table_failures_are_recognised(error: object, problem: LookupTableProblem | None) -> None:
    assert lookup_table_fault(error) is problem


# -- compiling -------------------------------------------------------------------------------


def test_accounts_in_a_table_are_loaded_through_it_and_the_message_shrinks() -> None:
    to = _keys(30)
    table = _table([*_keys(3), *to])
    plain = compile_v0(PAYER, _transfers(to), [], BLOCKHASH, max_size=10**6)
    with_table = compile_v0(PAYER, _transfers(to), [table], BLOCKHASH)
    assert isinstance(plain, CompiledMessage) and isinstance(with_table, CompiledMessage)
    assert with_table.tables == (table.key,) and with_table.size <= PACKET_DATA_SIZE
    # 32 bytes per address out of the static keys; in: the table key, 30 one-byte indexes, two lengths.
    assert with_table.size == plain.size - 30 * 32 + (32 + 30 + 2)
    loaded = resolve_lookups(with_table.message, {table.key: table})
    assert set(loaded.writable) == set(to) and not loaded.readonly
    assert set(loaded.account_keys(with_table.message)) >= {PAYER, *to}


def test_a_static_only_account_is_never_loaded_from_a_table() -> None:
    tip, *others = _keys(4)
    table = _table([*others, tip])
    free = compile_v0(PAYER, _transfers([tip, *others]), [table], BLOCKHASH)
    kept = compile_v0(PAYER, _transfers([tip, *others]), [table], BLOCKHASH, static_only={tip})
    assert isinstance(free, CompiledMessage) and isinstance(kept, CompiledMessage)
    # Without the rule the compiler takes the tip account from the table (so this test can fail)...
    assert tip not in free.message.account_keys
    assert tip in resolve_lookups(free.message, {table.key: table}).writable
    # ...with it the account is static and every other index still resolves to its own address.
    assert tip in kept.message.account_keys
    loaded = resolve_lookups(kept.message, {table.key: table})
    assert tip not in loaded.writable and set(loaded.writable) == set(others)


def test_an_oversized_transaction_is_refused_with_its_size() -> None:
    refusal = compile_v0(PAYER, _transfers(_keys(40)), [], BLOCKHASH)
    assert isinstance(refusal, CompileRefusal) and refusal.reason is RefusalReason.TOO_LARGE
    assert f"the limit is {PACKET_DATA_SIZE}" in refusal.detail and "42 static accounts" in refusal.detail


def test_a_deactivated_table_is_left_out() -> None:
    to = _keys(5)
    table = _table(to, deactivation_slot=100)
    compiled = compile_v0(PAYER, _transfers(to), [table], BLOCKHASH)
    assert isinstance(compiled, CompiledMessage)
    assert compiled.tables == () and compiled.skipped == (table.key,) and set(to) <= set(compiled.message.account_keys)


def test_too_many_accounts_is_a_refusal_not_an_exception() -> None:
    refusal = compile_v0(PAYER, _transfers(_keys(300)), [_table(_keys(256))], BLOCKHASH, max_size=10**6)
    assert isinstance(refusal, CompileRefusal) and refusal.reason is RefusalReason.NOT_COMPILABLE


def test_an_index_past_the_known_end_names_its_table() -> None:
    to = _keys(4)
    table = _table(to)
    compiled = compile_v0(PAYER, _transfers(to), [table], BLOCKHASH)
    assert isinstance(compiled, CompiledMessage)
    short = LookupTable(key=table.key, addresses=table.addresses[:2])
    with pytest.raises(LookupTableError) as caught:
        resolve_lookups(compiled.message, {table.key: short})
    assert caught.value.problem is LookupTableProblem.INDEX_OUT_OF_RANGE and caught.value.key == table.key


# -- the cache's bounds ------------------------------------------------------------------------


class _Accounts:
    """Table accounts held in a dict and served as getMultipleAccounts would (the localnet tests
    read real ones; this one checks only the cache's bookkeeping)."""

    def __init__(self) -> None:
        self.accounts: dict[Pubkey, RawAccount] = {}
        self.calls: list[int] = []

    def put(self, table: LookupTable) -> None:
        self.accounts[table.key] = RawAccount(LOOKUP_TABLE_PROGRAM_ID, encode_lookup_table(table))

    async def __call__(self, keys: Sequence[Pubkey]) -> tuple[int, list[RawAccount | None]]:
        self.calls.append(len(keys))
        return 1, [self.accounts.get(k) for k in keys]


async def test_the_cache_is_bounded_and_reads_in_chunks_of_100() -> None:
    source = _Accounts()
    tables = [_table(_keys(1)) for _ in range(150)]
    for t in tables:
        source.put(t)
    cache = LookupTableCache(source, LookupTableSettings(capacity=120))
    got = await cache.tables([t.key for t in tables])
    assert got == tuple(LookupTable(**{**_fields(t), "read_slot": 1}) for t in tables)
    assert source.calls == [100, 50] and len(cache) == 120
    assert tables[0].key not in cache and tables[-1].key in cache  # least recently used out first


async def test_the_cache_serves_fresh_tables_and_reads_old_ones_again() -> None:
    source, now = _Accounts(), [0.0]
    table = _table(_keys(2))
    source.put(table)
    cache = LookupTableCache(source, LookupTableSettings(max_age_s=10), clock=lambda: now[0])
    await cache.tables([table.key])
    await cache.tables([table.key])
    assert source.calls == [1]
    now[0] = 11.0
    await cache.tables([table.key])
    assert source.calls == [1, 1]


async def test_a_missing_table_is_named_and_a_deactivated_one_is_not_kept() -> None:
    source = _Accounts()
    gone, old = _table(_keys(1)), _table(_keys(1), deactivation_slot=5)
    source.put(old)
    cache = LookupTableCache(source)
    with pytest.raises(LookupTableError) as caught:
        await cache.tables([gone.key])
    assert caught.value.problem is LookupTableProblem.NOT_FOUND and caught.value.key == gone.key
    assert (await cache.tables([old.key]))[0].deactivation_slot == 5 and old.key not in cache
    assert ACTIVE_TABLE == 2**64 - 1


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LookupTableSettings(capacity=0).validate()
    with pytest.raises(ValueError, match="max_age_s"):
        LookupTableSettings(max_age_s=-1).validate()
