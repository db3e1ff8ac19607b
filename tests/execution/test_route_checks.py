"""The allowlist and the aggregator decoding, on recorded real Jupiter routes (tests/data/jupiter)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from xorj_actors.chain import LoadedAddresses, LookupTable, resolve_lookups
from xorj_actors.execution._allowlist import (
    ProgramAllowlist,
    ResolvedMessage,
    RouteParties,
    check_allowlist,
    fee_bound,
    resolve_message,
    tip_lamports,
)
from xorj_actors.execution._jupiter import DecodedRoute, RouteKind, RouteTerms, check_aggregator, check_route, decode_route
from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal
from xorj_actors.jupiter import parse_instruction
from xorj_actors.programs import JUPITER_V6_PROGRAM_ID, NATIVE_MINT, SYSTEM_PROGRAM_ID

DATA = Path(__file__).parents[1] / "data" / "jupiter"
USDC = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
TIP = Pubkey.from_string("96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5")  # a Jito tip account


def _placeholder(table: Pubkey, index: int) -> Pubkey:
    return Pubkey(hashlib.sha256(bytes(table) + bytes([index])).digest())


def _tables(message: MessageV0) -> dict[Pubkey, LookupTable]:
    """The recorded transaction's tables: placeholders, but for the entry it proves (README)."""
    tables = {}
    for lookup in message.address_table_lookups:
        addresses = [_placeholder(lookup.account_key, i) for i in range(256)]
        if str(lookup.account_key) == "HJ5StCvsDU4JsvK39VcsHjaoTRTtQU749MQ9qUsJaG1m":
            addresses[110] = NATIVE_MINT
        tables[lookup.account_key] = LookupTable(lookup.account_key, tuple(addresses))
    return tables


# -- the recorded shared_accounts_route transaction -------------------------------------------

@pytest.fixture(scope="module")
def shared_tx() -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode((DATA / "shared_accounts_route_tx.b64").read_text().strip()))


@pytest.fixture(scope="module")
def shared(shared_tx: VersionedTransaction) -> ResolvedMessage:
    resolved = resolve_message(shared_tx.message, resolve_lookups(shared_tx.message, _tables(shared_tx.message)))
    assert isinstance(resolved, ResolvedMessage)
    return resolved


def test_the_recorded_v0_route_resolves_through_three_tables(shared_tx: VersionedTransaction, shared: ResolvedMessage) -> None:
    assert len(shared_tx.message.address_table_lookups) == 3
    assert shared.num_static == 16 and len(shared.account_keys) == 16 + 11 + 10
    programs = [str(ix.program_id) for ix in shared.instructions]
    assert programs.count(str(JUPITER_V6_PROGRAM_ID)) == 1 and len(programs) == 7


def test_the_recorded_shared_accounts_route_decodes(shared: ResolvedMessage) -> None:
    payer = shared.account_keys[0]
    route = decode_route(shared.instructions[5])
    assert isinstance(route, DecodedRoute)
    assert route.kind is RouteKind.SHARED_ACCOUNTS_ROUTE and route.steps == 3
    assert (route.in_amount, route.quoted_out_amount, route.slippage_bps, route.platform_fee_bps) == (10**9, 102_012_566, 50, 0)
    # The System transfer that wraps the SOL moves exactly the decoded in_amount.
    wrap = shared.instructions[3]
    assert wrap.program_id == SYSTEM_PROGRAM_ID and int.from_bytes(bytes(wrap.data)[4:], "little") == route.in_amount
    assert route.authority == payer
    assert route.source == get_associated_token_address(payer, NATIVE_MINT) and route.source_mint == NATIVE_MINT


def test_the_allowlist_accepts_the_recorded_route(shared: ResolvedMessage) -> None:
    parties = RouteParties(shared.account_keys[0])
    assert check_allowlist(shared, ProgramAllowlist.default(), parties) is None
    assert tip_lamports(shared, ProgramAllowlist.default()) == 0
    # 5,000 for the signature; 1,400,000 units at 71,428 micro-lamports, rounded up: 100,000.
    assert fee_bound(shared) == 5_000 + 100_000


def test_the_allowlist_refuses_what_it_does_not_list(shared: ResolvedMessage) -> None:
    parties = RouteParties(shared.account_keys[0])
    no_jupiter = ProgramAllowlist.default(aggregators=())
    refusal = check_allowlist(shared, no_jupiter, parties)
    assert refusal == RouteRefusal(RouteRefusalReason.PROGRAM_NOT_ALLOWED, f"program {JUPITER_V6_PROGRAM_ID} is not on the list", 5)
    # Another vault's authority: the wSOL account created and funded is not its own.
    other = check_allowlist(shared, ProgramAllowlist.default(), RouteParties(Pubkey.new_unique()))
    assert other is not None and other.reason is RouteRefusalReason.ATA_FOR_ANOTHER_OWNER and other.instruction == 2


def test_a_tip_account_reached_through_a_lookup_table_is_refused(shared: ResolvedMessage) -> None:
    loaded_key = shared.account_keys[20]
    allowlist = ProgramAllowlist.default(tip_accounts=[loaded_key])
    refusal = check_allowlist(shared, allowlist, RouteParties(shared.account_keys[0]))
    assert refusal is not None and refusal.reason is RouteRefusalReason.TIP_THROUGH_LOOKUP_TABLE


def test_loaded_addresses_that_are_not_the_message_s_are_refused(shared_tx: VersionedTransaction) -> None:
    assert resolve_message(shared_tx.message).reason is RouteRefusalReason.LOOKUP_TABLE_UNRESOLVED  # type: ignore[union-attr]
    loaded = resolve_lookups(shared_tx.message, _tables(shared_tx.message))
    short = LoadedAddresses(loaded.writable[:-1], loaded.readonly)
    refusal = resolve_message(shared_tx.message, short)
    assert isinstance(refusal, RouteRefusal) and refusal.reason is RouteRefusalReason.LOOKUP_TABLE_UNRESOLVED


def _terms(route: DecodedRoute, **changes: object) -> RouteTerms:
    terms = RouteTerms(
        authority=route.authority,
        source=route.source,
        destination=route.destination,
        input_mint=NATIVE_MINT,
        output_mint=route.destination_mint,
        in_amount=route.in_amount,
        quoted_out_amount=route.quoted_out_amount,
        slippage_bps=50,
        platform_fee_bps=0,
        max_slippage_bps=100,
    )
    return dataclasses.replace(terms, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"in_amount": 10**9 - 1}, RouteRefusalReason.AGGREGATOR_AMOUNT_MISMATCH),
        ({"quoted_out_amount": 102_012_567}, RouteRefusalReason.AGGREGATOR_AMOUNT_MISMATCH),
        ({"slippage_bps": 30}, RouteRefusalReason.AGGREGATOR_SLIPPAGE),
        ({"max_slippage_bps": 49}, RouteRefusalReason.AGGREGATOR_SLIPPAGE),
        ({"platform_fee_bps": 20}, RouteRefusalReason.AGGREGATOR_PLATFORM_FEE),
        ({"destination": Pubkey.new_unique()}, RouteRefusalReason.AGGREGATOR_ACCOUNT_MISMATCH),
        ({"authority": Pubkey.new_unique()}, RouteRefusalReason.AGGREGATOR_ACCOUNT_MISMATCH),
        ({"input_mint": USDC}, RouteRefusalReason.AGGREGATOR_ACCOUNT_MISMATCH),
    ],
)
def test_the_decoded_route_must_be_the_quoted_trade(shared: ResolvedMessage, changes: dict, reason: RouteRefusalReason | None) -> None:
    route = decode_route(shared.instructions[5])
    assert isinstance(route, DecodedRoute)
    refusal = check_route(route, _terms(route, **changes))
    assert (refusal.reason if refusal else None) is reason
    found, decoded = check_aggregator(shared, frozenset({JUPITER_V6_PROGRAM_ID}), _terms(route, **changes))
    assert (found.reason if found else None) is reason and (found is None) == (decoded == 1)
    if found is not None:
        assert found.instruction == 5


# -- the recorded /swap-instructions answer with a route ----------------------------------------

@pytest.fixture(scope="module")
def answer() -> dict:
    return json.loads((DATA / "swap_instructions_route.json").read_text())


def test_the_recorded_route_instruction_decodes_against_its_own_quote(answer: dict) -> None:
    swap = parse_instruction(answer["swapInstruction"], "swapInstruction")
    route = decode_route(swap)
    assert isinstance(route, DecodedRoute) and route.kind is RouteKind.ROUTE and route.steps == 1
    assert (route.in_amount, route.quoted_out_amount, route.slippage_bps, route.platform_fee_bps) == (1_980_000, 247_566, 50, 0)
    user = Pubkey.from_string("7R52mJ9sgGiwEGXBBm7ehQ5qz5uexpaJQtAkSUiwwQtH")
    # destination_token_account absent (the program id): the user's USDC account is paid.
    assert route.authority == user and route.destination == get_associated_token_address(user, USDC)
    assert route.source == get_associated_token_address(user, NATIVE_MINT) and route.destination_mint == USDC
    terms = RouteTerms(
        authority=user, source=route.source, destination=route.destination, input_mint=NATIVE_MINT, output_mint=USDC,
        in_amount=1_980_000, quoted_out_amount=247_566, slippage_bps=50, platform_fee_bps=0, max_slippage_bps=50,
    )
    assert check_route(route, terms) is None


def test_the_recorded_answer_passes_the_allowlist(answer: dict) -> None:
    user = Pubkey.from_string("7R52mJ9sgGiwEGXBBm7ehQ5qz5uexpaJQtAkSUiwwQtH")
    fields = ("computeBudgetInstructions", "setupInstructions", "swapInstruction", "cleanupInstruction")
    ixs = [parse_instruction(o, f) for f in fields for o in (answer[f] if isinstance(answer[f], list) else [answer[f]])]
    resolved = resolve_message(MessageV0.try_compile(user, ixs, [], Hash.default()))
    assert isinstance(resolved, ResolvedMessage)
    assert check_allowlist(resolved, ProgramAllowlist.default(), RouteParties(user)) is None
    # The same wrap to a stranger's account instead of the vault's own wSOL account is refused.
    ixs[3] = Instruction(SYSTEM_PROGRAM_ID, ixs[3].data, [ixs[3].accounts[0], AccountMeta(Pubkey.new_unique(), False, True)])
    bad = resolve_message(MessageV0.try_compile(user, ixs, [], Hash.default()))
    refusal = check_allowlist(bad, ProgramAllowlist.default(), RouteParties(user))  # type: ignore[arg-type]
    assert refusal is not None and refusal.reason is RouteRefusalReason.SYSTEM_TRANSFER_NOT_ALLOWED and refusal.instruction == 3


def _with_discriminator(ix: Instruction, name: str) -> Instruction:
    data = hashlib.sha256(f"global:{name}".encode()).digest()[:8] + bytes(ix.data)[8:]
    return Instruction(ix.program_id, data, ix.accounts)


def test_exact_out_token_ledger_unknown_and_truncated_layouts(answer: dict) -> None:
    swap = parse_instruction(answer["swapInstruction"], "swapInstruction")
    for name, reason in (
        ("exact_out_route", RouteRefusalReason.AGGREGATOR_EXACT_OUT),
        ("shared_accounts_exact_out_route", RouteRefusalReason.AGGREGATOR_EXACT_OUT),
        ("route_with_token_ledger", RouteRefusalReason.AGGREGATOR_TOKEN_LEDGER),
    ):
        refusal = decode_route(_with_discriminator(swap, name))
        assert isinstance(refusal, RouteRefusal) and refusal.reason is reason
    assert decode_route(_with_discriminator(swap, "route_v2")) is None  # unknown: the effect check decides
    truncated = Instruction(swap.program_id, bytes(swap.data)[:20], swap.accounts)
    assert decode_route(truncated).reason is RouteRefusalReason.AGGREGATOR_MALFORMED  # type: ignore[union-attr]
    many_steps = bytearray(bytes(swap.data))
    many_steps[8:12] = (50).to_bytes(4, "little")
    assert decode_route(Instruction(swap.program_id, bytes(many_steps), swap.accounts)).reason is RouteRefusalReason.AGGREGATOR_MALFORMED  # type: ignore[union-attr]


def test_the_configured_list_is_the_default_list() -> None:
    from xorj_actors.config import ConfigError, parse_config

    config = parse_config(f'[execution.routes]\ntip_accounts = ["{TIP}"]\nmax_sol_spend_lamports = 5000000\n')
    routes = config.execution.routes
    assert ProgramAllowlist.from_settings(routes) == ProgramAllowlist.default(tip_accounts=[TIP])
    assert routes.max_sol_spend_lamports == 5_000_000
    with pytest.raises(ConfigError, match="execution.routes.tip_accounts"):
        parse_config('[execution.routes]\ntip_accounts = ["not a key!"]\n')


def test_a_program_that_is_the_payer_or_past_the_static_keys_is_no_message(shared_tx: VersionedTransaction, shared: ResolvedMessage) -> None:
    from solders.instruction import CompiledInstruction

    m = shared_tx.message
    loaded = resolve_lookups(m, _tables(m))
    for program_index in (0, 16, 30):  # the payer, the first loaded key, a loaded key
        bad = MessageV0(m.header, m.account_keys, m.recent_blockhash, [CompiledInstruction(program_index, b"", b"")], m.address_table_lookups)
        refusal = resolve_message(bad, loaded)
        assert isinstance(refusal, RouteRefusal) and refusal.reason is RouteRefusalReason.MALFORMED_MESSAGE


async def test_the_recorded_route_s_tables_are_read_from_the_localnet_and_pass(shared_tx: VersionedTransaction, localnet) -> None:
    """The tables at the recorded addresses (contents as README says), read over JSON-RPC."""
    from solana.rpc.async_api import AsyncClient

    from xorj_actors.chain import LookupTableCache, rpc_account_fetcher
    from xorj_actors.localnet.lookup_tables import place_table

    message = shared_tx.message
    for table in _tables(message).values():
        localnet.call(place_table, localnet.server.chain.svm, table)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        loaded = await LookupTableCache(rpc_account_fetcher(rpc, "processed")).resolve(message)
    resolved = resolve_message(message, loaded)
    assert isinstance(resolved, ResolvedMessage)
    assert check_allowlist(resolved, ProgramAllowlist.default(), RouteParties(message.account_keys[0])) is None
    route = decode_route(resolved.instructions[5])
    assert isinstance(route, DecodedRoute) and route.source_mint == NATIVE_MINT and route.in_amount == 10**9
