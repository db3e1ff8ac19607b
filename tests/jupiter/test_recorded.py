"""Recorded real answers parse (tests/data/jupiter/README.md names each file's source)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from solders.pubkey import Pubkey

from tests.jupiter.recorded import DATA, DOCS_TAKER, JUP, SOL, USDC, load
from xorj_actors.jupiter import (
    AGGREGATOR_V6,
    ExecuteOutcome,
    ExecuteStatus,
    JupiterApi,
    MalformedAnswer,
    RefusalReason,
    SwapMode,
    parse_execution,
    parse_order,
    parse_prices,
    parse_quote,
    parse_swap_instructions,
    refusal_from_answer,
)

TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")
SHARED_ACCOUNTS_ROUTE = bytes.fromhex("c1209b3341d69c81")


def test_every_recorded_file_is_named_in_the_readme() -> None:
    readme = (DATA / "README.md").read_text()
    missing = [p.name for p in DATA.glob("*.json") if f"`{p.name}`" not in readme]
    assert not missing, f"files without a source in README.md: {missing}"


@pytest.mark.parametrize("name", ["quote-docs-meteora.json", "quote-openapi.json", "quote-humidifi-bps-null.json"])
def test_recorded_quotes_parse(name: str) -> None:
    quote = parse_quote(load(name))
    assert (quote.input_mint, quote.output_mint, quote.swap_mode) == (SOL, USDC, SwapMode.EXACT_IN)
    assert 0 < quote.other_amount_threshold <= quote.out_amount
    assert quote.route_plan[0].swap_info.in_amount == quote.in_amount
    assert quote.answer_json() == load(name)  # posted back to /swap-instructions as received


def test_the_2026_quote_has_null_bps_and_no_fee_fields() -> None:
    quote = parse_quote(load("quote-humidifi-bps-null.json"))
    step = quote.route_plan[0]
    assert step.bps is None and step.percent == 100
    assert quote.other_amount_threshold == 72521721 and quote.slippage_bps == 50
    assert quote.price_impact_pct == Decimal("0.0000830250516874543128485761")


def test_three_tables_wsol_setup_and_cleanup_and_a_multi_hop_shared_accounts_route() -> None:
    route = parse_swap_instructions(load("swap-instructions-3-tables-wsol-shared.json"))
    assert len(route.address_lookup_table_addresses) == 3
    user = Pubkey.from_string("BXzmfHxfEMcMj8hDccUNdrwXVNeybyfb2iV2nktE1VnJ")
    wsol = Pubkey.from_string("6HUmUcydeHuUWdcQazrSJkL9JNdYUnFz3PR5D3zipCiT")
    create_wsol, wrap, sync, create_out = route.setup_instructions
    assert create_wsol.program_id == ATA and create_wsol.data == b"\x01"  # CreateIdempotent
    assert [m.pubkey for m in create_wsol.accounts][:4] == [user, wsol, user, SOL]
    assert wrap.program_id == SYSTEM and wrap.data == struct.pack("<IQ", 2, 100_000)  # transfer in_amount
    assert [m.pubkey for m in wrap.accounts] == [user, wsol]
    assert sync.program_id == TOKEN and sync.data == b"\x11"  # SyncNative
    assert create_out.accounts[3].pubkey == JUP
    cleanup = route.cleanup_instruction
    assert cleanup is not None and cleanup.program_id == TOKEN and cleanup.data == b"\x09"  # CloseAccount
    assert [m.pubkey for m in cleanup.accounts] == [wsol, user, user]
    swap = route.swap_instruction
    assert str(swap.program_id) == AGGREGATOR_V6 and len(swap.accounts) == 69
    assert swap.data[:8] == SHARED_ACCOUNTS_ROUTE
    assert struct.unpack_from("<I", swap.data, 9)[0] == 3  # three route-plan steps
    assert struct.unpack_from("<QQHB", swap.data, len(swap.data) - 19) == (100_000, 24_256, 250, 0)
    assert route.compute_unit_limit == 335_433 and route.prioritization_fee_lamports == 999
    assert route.simulation_error is None and route.other_instructions == ()
    assert route.route_instructions() == (*route.setup_instructions, swap, cleanup)


def test_the_recorded_single_hop_route_parses() -> None:
    route = parse_swap_instructions(load("swap_instructions_route.json"))
    assert route.swap_instruction.data[:8] == bytes.fromhex("e517cb977ae3ad2a")  # route
    assert len(route.address_lookup_table_addresses) == 1 and len(route.setup_instructions) == 3
    assert route.cleanup_instruction is not None and route.cleanup_instruction.data == b"\x09"


def test_a_jito_tip_arrives_in_other_instructions() -> None:
    route = parse_swap_instructions(load("swap-instructions-jito-tip.json"))
    (tip,) = route.other_instructions
    assert tip.program_id == SYSTEM and tip.data == struct.pack("<IQ", 2, 1_000)
    assert len(route.compute_budget_instructions) == 1 and len(route.address_lookup_table_addresses) == 2
    assert route.route_instructions()[-1] == tip


@pytest.mark.parametrize("name", ["ultra-order-metis.json", "ultra-order-jupiterz-rfq.json"])
def test_recorded_ultra_orders_parse_with_their_transactions(name: str) -> None:
    order = parse_order(load(name), taker=DOCS_TAKER)
    assert order.transaction is not None and order.error is None
    assert (order.input_mint, order.output_mint, order.in_amount) == (USDC, SOL, 100_000_000)
    assert order.request_id == load(name)["requestId"]
    message = order.transaction.message
    assert DOCS_TAKER in message.account_keys[: message.header.num_required_signatures]


def test_the_rfq_order_is_paid_by_its_maker_whose_signature_jupiter_adds() -> None:
    order = parse_order(load("ultra-order-jupiterz-rfq.json"), taker=DOCS_TAKER)
    assert order.router == "jupiterz" and order.maker is not None
    assert order.transaction is not None
    assert order.transaction.message.account_keys[0] == order.maker  # the fee payer signs first
    assert order.platform_fee is not None and (order.platform_fee.fee_bps, order.platform_fee.amount) == (2, 92050)
    assert order.other_amount_threshold == order.out_amount and order.slippage_bps == 0


def test_the_metis_order_uses_three_lookup_tables() -> None:
    order = parse_order(load("ultra-order-metis.json"), taker=DOCS_TAKER)
    assert order.transaction is not None and len(order.transaction.message.address_table_lookups) == 3
    assert order.router == "metis" and order.slippage_bps == 26 and order.fee_bps == 2


def test_an_order_whose_transaction_another_wallet_signs_is_refused() -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_order(load("ultra-order-metis.json"), taker=SOL)
    assert refused.value.field == "transaction"


def test_recorded_executions() -> None:
    ok = parse_execution(load("ultra-execute-success-openapi.json"))
    assert (ok.status, ok.outcome, ok.slot) == (ExecuteStatus.SUCCESS, ExecuteOutcome.LANDED, 324307186)
    assert (ok.input_amount_result, ok.output_amount_result) == (100_000_000, 17_057_460)
    assert ok.swap_events[0].output_mint == USDC
    gone = parse_execution(load("ultra-execute-order-not-found.json"))
    assert (gone.code, gone.outcome, gone.status) == (-1, ExecuteOutcome.ORDER_EXPIRED, None)
    rfq = parse_execution(load("ultra-execute-rfq-internal-error.json"))
    assert (rfq.outcome, rfq.slot, rfq.signature) == (ExecuteOutcome.UNKNOWN, None, None)


@pytest.mark.parametrize(
    "name", ["ultra-execute-success-docs.json", "ultra-execute-aggregator-expired.json", "ultra-execute-program-error.json"]
)
def test_the_docs_placeholder_signature_is_refused_by_name(name: str) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_execution(load(name))
    assert refused.value.field == "signature"


def test_the_program_error_execution_with_a_real_signature_is_a_failure_on_chain() -> None:
    answer = load("ultra-execute-program-error.json")
    answer["signature"] = load("ultra-execute-success-openapi.json")["signature"]
    failed = parse_execution(answer)
    assert (failed.code, failed.outcome) == (6001, ExecuteOutcome.FAILED_ON_CHAIN)
    assert len(failed.swap_events) == 2 and failed.output_amount_result == 4648441


@pytest.mark.parametrize("name", ["price-v3-docs.json", "price-v3-openapi.json"])
def test_recorded_prices_parse(name: str) -> None:
    prices = parse_prices(load(name), [SOL, USDC, JUP])
    assert prices[SOL].usd_price > 100 and prices[SOL].decimals == 9
    assert set(prices) == {SOL, USDC, JUP} & {Pubkey.from_string(k) for k in load(name)}


def test_recorded_errors_become_refusals() -> None:
    bad = refusal_from_answer(JupiterApi.QUOTE, 400, load("quote-error-bad-amount.json"))
    assert bad.reason is RefusalReason.BAD_REQUEST and "amount" in bad.message
    none = refusal_from_answer(JupiterApi.ORDER, 400, load("ultra-order-failed-400.json"))
    assert none.reason is RefusalReason.NO_ROUTE
