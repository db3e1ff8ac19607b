"""The localnet speaks Jupiter's APIs: Swap API v1 routes (lookup tables, ATAs, SOL wrapping,
multi-hop) pass the execution checks and land; Ultra orders execute once, and only as ordered;
Price v3; x-api-key; and every route fault is refused by the checks with its reason, nothing
moved."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from tests.localnet.jupiter_routes import api_get, api_post, balances, check_route, compile_route, funded_wallet, sign
from xorj_actors.jupiter import parse_execution, parse_order, parse_prices, parse_quote, parse_swap_instructions
from xorj_actors.localnet import Localnet
from xorj_actors.localnet.jupiter_desk import NATIVE_MINT
from xorj_actors.localnet.route_faults import EXPECTED_REASON, SWAP_FAULTS, RouteFault

SOL = str(NATIVE_MINT)


def _mint(ln: Localnet, symbol: str) -> str:
    return SOL if symbol == "wSOL" else str(ln.genesis.token(symbol).mint)


async def _route(ln: Localnet, wallet: Pubkey, sell: str, buy: str, amount: int) -> tuple[dict, dict]:
    status, quote = await api_get(ln, "/swap/v1/quote", {"inputMint": _mint(ln, sell), "outputMint": _mint(ln, buy), "amount": str(amount), "slippageBps": "50"})
    assert status == 200, quote
    ln.advance(1)  # the tables made for the quote are warm from the next slot
    status, answer = await api_post(ln, "/swap/v1/swap-instructions", {"userPublicKey": str(wallet), "quoteResponse": quote})
    assert status == 200, answer
    return quote, answer


_ROUTES = [
    ("USDC", "JUP", 25_000_000, 1),
    ("JUP", "BONK", 10_000_000, 2),
    ("JUP", "wSOL", 10_000_000, 2),
    ("wSOL", "USDC", 2 * 10**9, 1),
    ("USDC", "wSOL", 30_000_000, 1),
]


# Selling USDC needs USDC: those routes run only with a USDC account (no skipped combinations,
# since a skip in CI means a missing service).
@pytest.mark.parametrize(
    ("sell", "buy", "amount", "hops", "holds_usdc"),
    [(*r, holds) for r in _ROUTES for holds in (True, False) if holds or r[0] != "USDC"],
)
async def test_a_swap_api_route_passes_the_checks_and_lands(
    localnet: Localnet, sell: str, buy: str, amount: int, hops: int, holds_usdc: bool
) -> None:
    holding = {"JUP": 50_000_000, **({"USDC": 100_000_000} if holds_usdc else {})}
    wallet = funded_wallet(localnet, b"swap-" + sell.encode() + buy.encode() + bytes([holds_usdc]), holding)
    quote, answer = await _route(localnet, wallet.pubkey(), sell, buy, amount)
    parsed_quote = parse_quote(quote)
    parsed = parse_swap_instructions(answer)
    assert len(parsed_quote.route_plan) == hops
    assert answer["addressLookupTableAddresses"], "the route uses the desk's lookup tables"
    mints = [Pubkey.from_string(_mint(localnet, s)) for s in (sell, buy, "USDC")]
    message = compile_route(localnet, wallet.pubkey(), answer)
    assert message.address_table_lookups
    checked = await check_route(localnet, wallet.pubkey(), message, quote, mints=mints)
    assert checked.refusal is None, checked.refusal
    before = balances(localnet, wallet.pubkey(), mints)
    landed = localnet.call(localnet.server.chain.submit, sign(wallet, message), preflight=True)
    assert landed is not None
    after = balances(localnet, wallet.pubkey(), mints)
    sold, bought = Pubkey.from_string(quote["inputMint"]), Pubkey.from_string(quote["outputMint"])
    if sold == NATIVE_MINT:
        assert before["lamports"] - after["lamports"] >= int(quote["inAmount"])
        assert after[str(NATIVE_MINT)] == 0
    else:
        assert before[str(sold)] - after[str(sold)] == int(quote["inAmount"])
    if bought == NATIVE_MINT:
        assert after["lamports"] - before["lamports"] >= int(quote["outAmount"]) - parsed.prioritization_fee_lamports - 10_000
    else:
        assert after[str(bought)] - before[str(bought)] == int(quote["outAmount"])
    if hops == 2:
        assert after[_mint(localnet, "USDC")] == before[_mint(localnet, "USDC")]  # the intermediate nets to zero
        usdc_account = get_associated_token_address(wallet.pubkey(), Pubkey.from_string(_mint(localnet, "USDC")))
        assert localnet.call(lambda: localnet.server.chain.svm.get_account(usdc_account) is not None) == holds_usdc


async def test_an_ultra_order_executes_once_and_a_repeat_is_safe(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"ultra", {"USDC": 100_000_000})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    status, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": jup, "amount": "10000000", "taker": str(wallet.pubkey())})
    assert status == 200, order
    parsed = parse_order(order, taker=wallet.pubkey())
    assert parsed.transaction is not None and parsed.maker == localnet.genesis.market_maker.pubkey()
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    mints = [Pubkey.from_string(usdc), Pubkey.from_string(jup)]
    checked = await check_route(localnet, wallet.pubkey(), tx.message, order, mints=mints)
    assert checked.refusal is None, checked.refusal
    before = balances(localnet, wallet.pubkey(), mints)
    signed = base64.b64encode(bytes(sign(wallet, tx.message))).decode()
    body = {"signedTransaction": signed, "requestId": order["requestId"]}
    status, first = await api_post(localnet, "/ultra/v1/execute", body)
    assert status == 200 and first["status"] == "Success", first
    execution = parse_execution(first)
    assert execution.output_amount_result == int(order["outAmount"])
    status, again = await api_post(localnet, "/ultra/v1/execute", body)
    assert (status, again) == (200, first)
    after = balances(localnet, wallet.pubkey(), mints)
    assert before[usdc] - after[usdc] == 10_000_000
    assert after[jup] - before[jup] == int(order["outAmount"])
    status, missing = await api_post(localnet, "/ultra/v1/execute", {**body, "requestId": "no-such-order"})
    assert status == 400 and parse_execution(missing).code == -1


async def test_price_v3_answers_in_its_shape(localnet: Localnet) -> None:
    ids = [_mint(localnet, "JUP"), SOL, "11111111111111111111111111111111"]
    status, answer = await api_get(localnet, "/price/v3", {"ids": ",".join(ids)})
    assert status == 200
    prices = parse_prices(answer, [Pubkey.from_string(i) for i in ids])
    assert set(answer) == set(ids[:2]) and answer[SOL]["decimals"] == 9
    assert set(prices) == {Pubkey.from_string(i) for i in ids[:2]}


async def test_a_configured_api_key_is_demanded(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.plugins.localnet import start_localnet

    monkeypatch.setenv("XORJ_LOCALNET_JUPITER_API_KEY", "sekrit")
    ln = start_localnet()
    try:
        params = {"ids": SOL}
        assert (await api_get(ln, "/price/v3", params))[0] == 401
        assert (await api_get(ln, "/price/v3", params, {"x-api-key": "wrong"}))[0] == 401
        assert (await api_get(ln, "/price/v3", params, {"x-api-key": "sekrit"}))[0] == 200
    finally:
        ln.stop()


async def test_any_key_is_accepted_when_none_is_configured(localnet: Localnet) -> None:
    assert (await api_get(localnet, "/price/v3", {"ids": SOL}, {"x-api-key": "anything"}))[0] == 200


_SWAP_FAULTS = list(SWAP_FAULTS)


@pytest.mark.parametrize("mode", _SWAP_FAULTS)
async def test_each_bad_swap_route_is_refused_and_nothing_moves(localnet: Localnet, mode: RouteFault) -> None:
    # Holds BONK (a holding the trade does not touch) and an empty SOL-token account (one to close).
    wallet = funded_wallet(localnet, b"fault-" + mode.value.encode(), {"USDC": 100_000_000, "BONK": 1_000, "SOL": 0})
    status, _ = await api_post(localnet, "/admin/route-fault", {"mode": mode.value, "count": 1})
    assert status == 200
    quote, answer = await _route(localnet, wallet.pubkey(), "USDC", "JUP", 5_000_000)
    parse_swap_instructions(answer)
    mints = [Pubkey.from_string(_mint(localnet, s)) for s in ("USDC", "JUP", "BONK")]
    before = balances(localnet, wallet.pubkey(), mints)
    landed = localnet.call(lambda: len(localnet.server.chain.landed))
    message = compile_route(localnet, wallet.pubkey(), answer)
    checked = await check_route(localnet, wallet.pubkey(), message, quote, mints=mints[:2])
    stage, reason = EXPECTED_REASON[mode]
    assert checked.refusal is not None and (checked.stage, checked.refusal.reason.value) == (stage, reason), checked
    assert balances(localnet, wallet.pubkey(), mints) == before
    assert localnet.call(lambda: len(localnet.server.chain.landed)) == landed  # nothing signed, nothing sent
    # The fault served one route: the next is good again.
    quote, answer = await _route(localnet, wallet.pubkey(), "USDC", "JUP", 5_000_000)
    good = await check_route(localnet, wallet.pubkey(), compile_route(localnet, wallet.pubkey(), answer), quote, mints=mints[:2])
    assert good.refusal is None, good.refusal


async def test_an_ultra_order_whose_table_holds_another_account_is_refused(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"fault-table", {"USDC": 100_000_000})
    await api_post(localnet, "/admin/route-fault", {"mode": "table_mismatch"})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    status, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": jup, "amount": "1000000", "taker": str(wallet.pubkey())})
    assert status == 200, order
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    checked = await check_route(localnet, wallet.pubkey(), tx.message, order, mints=[Pubkey.from_string(usdc), Pubkey.from_string(jup)])
    stage, reason = EXPECTED_REASON[RouteFault.TABLE_MISMATCH]
    assert checked.refusal is not None and (checked.stage, checked.refusal.reason.value) == (stage, reason), checked


async def test_a_bad_fault_command_changes_nothing(localnet: Localnet) -> None:
    status, answer = await api_post(localnet, "/admin/route-fault", {"mode": "no-such-mode"})
    assert status == 400 and answer["errorCode"] == "INVALID_REQUEST"


def _recorded(name: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parents[1] / "data" / "jupiter" / name).read_text())


async def test_the_answers_have_the_recorded_answers_fields(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"shapes", {"USDC": 100_000_000})
    quote, answer = await _route(localnet, wallet.pubkey(), "USDC", "wSOL", 1_000_000)
    usdc = _mint(localnet, "USDC")
    status, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": SOL, "amount": "1000000", "taker": str(wallet.pubkey())})
    assert status == 200
    assert set(_recorded("quote-openapi.json")) <= set(quote)
    assert set(_recorded("swap-instructions-3-tables-wsol-shared.json")) == set(answer)
    assert set(_recorded("ultra-order-jupiterz-rfq.json")) <= set(order)
    for mine, recorded in ((quote["routePlan"][0], _recorded("quote-openapi.json")["routePlan"][0]), (order["routePlan"][0], _recorded("ultra-order-jupiterz-rfq.json")["routePlan"][0])):
        assert set(recorded["swapInfo"]) == set(mine["swapInfo"])
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    signed = base64.b64encode(bytes(sign(wallet, tx.message))).decode()
    status, execution = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": signed, "requestId": order["requestId"]})
    assert status == 200 and set(_recorded("ultra-execute-success-docs.json")) <= set(execution)


async def test_routes_asked_for_in_the_quote_s_slot_and_twice_each_land(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"twice", {"USDC": 100_000_000})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    status, quote = await api_get(localnet, "/swap/v1/quote", {"inputMint": usdc, "outputMint": jup, "amount": "3000000"})
    assert status == 200
    body = {"userPublicKey": str(wallet.pubkey()), "quoteResponse": quote}
    first = await api_post(localnet, "/swap/v1/swap-instructions", body)
    second = await api_post(localnet, "/swap/v1/swap-instructions", body)
    assert first[0] == second[0] == 200, (first, second)
    assert not first[1]["addressLookupTableAddresses"]  # made this slot: not warm yet, not offered
    mints = [Pubkey.from_string(usdc), Pubkey.from_string(jup)]
    before = balances(localnet, wallet.pubkey(), mints)
    for answer in (first[1], second[1]):
        message = compile_route(localnet, wallet.pubkey(), answer)
        assert (await check_route(localnet, wallet.pubkey(), message, quote, mints=mints)).refusal is None
        localnet.call(localnet.server.chain.submit, sign(wallet, message), preflight=True)
        localnet.advance(1)
    after = balances(localnet, wallet.pubkey(), mints)
    assert after[jup] - before[jup] == 2 * int(quote["outAmount"])


async def test_an_ultra_order_selling_sol_wraps_lands_and_unwraps(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"ultra-sol", {})
    usdc = _mint(localnet, "USDC")
    status, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": SOL, "outputMint": usdc, "amount": str(10**9), "taker": str(wallet.pubkey())})
    assert status == 200, order
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    mints = [NATIVE_MINT, Pubkey.from_string(usdc)]
    assert (await check_route(localnet, wallet.pubkey(), tx.message, order, mints=mints)).refusal is None
    before = balances(localnet, wallet.pubkey(), mints)
    signed = base64.b64encode(bytes(sign(wallet, tx.message))).decode()
    status, execution = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": signed, "requestId": order["requestId"]})
    assert status == 200 and execution["code"] == 0, execution
    after = balances(localnet, wallet.pubkey(), mints)
    rent = localnet.call(lambda: localnet.server.chain.svm.minimum_balance_for_rent_exemption(165))
    # Gasless: the market maker paid the fee; the taker paid the SOL sold and its new USDC account.
    assert before["lamports"] - after["lamports"] == 10**9 + rent
    assert after[usdc] == int(order["outAmount"]) and after[SOL] == 0


def _with_amount(ix: CompiledInstruction, delta: int) -> CompiledInstruction:
    data = bytearray(bytes(ix.data))
    data[1:9] = (int.from_bytes(data[1:9], "little") + delta).to_bytes(8, "little")
    return CompiledInstruction(ix.program_id_index, bytes(data), bytes(ix.accounts))


def _tampered(message: MessageV0, how: str, other: MessageV0) -> MessageV0:
    """The order's message changed as a taker might try: its last two instructions are the legs
    (the taker pays, then the market maker pays)."""
    if how == "another order's message":
        return other
    ixs, blockhash = list(message.instructions), message.recent_blockhash
    if how == "the market maker pays more":
        ixs[-1] = _with_amount(ixs[-1], 1)
    elif how == "the taker pays less":
        ixs[-2] = _with_amount(ixs[-2], -1)
    elif how == "the market maker's leg twice":
        ixs.append(ixs[-1])
    elif how == "the taker's leg left out":
        del ixs[-2]
    elif how == "a newer blockhash":
        blockhash = Hash.new_unique()
    return MessageV0(message.header, list(message.account_keys), blockhash, ixs, list(message.address_table_lookups))


_TAMPERS = [
    "another order's message",
    "the market maker pays more",
    "the taker pays less",
    "the market maker's leg twice",
    "the taker's leg left out",
    "a newer blockhash",
]


@pytest.mark.parametrize("how", _TAMPERS)
async def test_the_market_maker_signs_only_the_order_s_own_message(localnet: Localnet, how: str) -> None:
    wallet = funded_wallet(localnet, b"ultra-tamper-" + how.encode(), {"USDC": 10_000_000})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    params = {"inputMint": usdc, "outputMint": jup, "amount": "1000000", "taker": str(wallet.pubkey())}
    _, one = await api_get(localnet, "/ultra/v1/order", params)
    _, two = await api_get(localnet, "/ultra/v1/order", {**params, "amount": "2000000"})
    order = VersionedTransaction.from_bytes(base64.b64decode(one["transaction"])).message
    other = VersionedTransaction.from_bytes(base64.b64decode(two["transaction"])).message
    mints = [Pubkey.from_string(usdc), Pubkey.from_string(jup)]
    before = balances(localnet, wallet.pubkey(), mints)
    landed = localnet.call(lambda: len(localnet.server.chain.landed))
    bad = base64.b64encode(bytes(sign(wallet, _tampered(order, how, other)))).decode()
    status, answer = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": bad, "requestId": one["requestId"]})
    assert status == 400 and parse_execution(answer).code == -3, answer
    assert balances(localnet, wallet.pubkey(), mints) == before
    assert localnet.call(lambda: len(localnet.server.chain.landed)) == landed  # the market maker signed nothing
    # The refusal did not use the order up: its own message, signed, still executes.
    good = base64.b64encode(bytes(sign(wallet, order))).decode()
    status, answer = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": good, "requestId": one["requestId"]})
    assert status == 200 and answer["status"] == "Success", answer


async def test_execute_refuses_the_order_s_message_without_the_taker_s_signature(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"ultra-unsigned", {"USDC": 10_000_000})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    _, one = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": jup, "amount": "1000000", "taker": str(wallet.pubkey())})
    unsigned = base64.b64encode(bytes(VersionedTransaction.from_bytes(base64.b64decode(one["transaction"])))).decode()
    status, answer = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": unsigned, "requestId": one["requestId"]})
    assert status == 400 and parse_execution(answer).code == -1003


async def test_a_genesis_vault_trades_through_both_apis_with_its_own_key(localnet: Localnet) -> None:
    from xorj_actors.localnet import dev_vault_authority

    vault = localnet.genesis.vault(2)
    key = dev_vault_authority(2)
    assert key.pubkey() == vault.authority
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    mints = [Pubkey.from_string(usdc), Pubkey.from_string(jup)]
    before = balances(localnet, key.pubkey(), mints)
    quote, answer = await _route(localnet, key.pubkey(), "USDC", "JUP", 7_000_000)
    message = compile_route(localnet, key.pubkey(), answer)
    assert (await check_route(localnet, key.pubkey(), message, quote, mints=mints)).refusal is None
    localnet.call(localnet.server.chain.submit, sign(key, message), preflight=True)
    localnet.advance(1)
    status, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": jup, "amount": "3000000", "taker": str(key.pubkey())})
    assert status == 200
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    assert (await check_route(localnet, key.pubkey(), tx.message, order, mints=mints)).refusal is None
    signed = base64.b64encode(bytes(sign(key, tx.message))).decode()
    status, execution = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": signed, "requestId": order["requestId"]})
    assert status == 200 and execution["code"] == 0
    after = balances(localnet, key.pubkey(), mints)
    assert before[usdc] - after[usdc] == 10_000_000
    assert after[jup] - before[jup] == int(quote["outAmount"]) + int(order["outAmount"])
    # The vault's accounts are its key's associated accounts: the routes paid into them.
    assert vault.token_accounts["JUP"] == get_associated_token_address(key.pubkey(), Pubkey.from_string(jup))


async def test_execute_answers_ultra_s_codes_for_bad_requests_and_a_failing_order(localnet: Localnet) -> None:
    wallet = funded_wallet(localnet, b"ultra-codes", {"USDC": 1_000_000})
    usdc, jup = _mint(localnet, "USDC"), _mint(localnet, "JUP")
    _, order = await api_get(localnet, "/ultra/v1/order", {"inputMint": usdc, "outputMint": jup, "amount": "5000000", "taker": str(wallet.pubkey())})
    for body, code in (({"signedTransaction": "AA=="}, -4), ({"requestId": order["requestId"]}, -5), ({"requestId": order["requestId"], "signedTransaction": "bm90IGEgdHg="}, -2)):
        status, answer = await api_post(localnet, "/ultra/v1/execute", body)
        assert (status, parse_execution(answer).code) == (400, code), answer
    # The taker holds 1 USDC and sells 5: the order cannot land, and nothing moves.
    mints = [Pubkey.from_string(usdc), Pubkey.from_string(jup)]
    before = balances(localnet, wallet.pubkey(), mints)
    tx = VersionedTransaction.from_bytes(base64.b64decode(order["transaction"]))
    signed = base64.b64encode(bytes(sign(wallet, tx.message))).decode()
    status, answer = await api_post(localnet, "/ultra/v1/execute", {"signedTransaction": signed, "requestId": order["requestId"]})
    execution = parse_execution(answer)
    assert status == 200 and answer["status"] == "Failed" and execution.code == -2000, answer
    assert balances(localnet, wallet.pubkey(), mints) == before
