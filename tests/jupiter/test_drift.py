"""Drift is tolerated; a bad money field is refused by name (issue 12, "Field drift is normal")."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.jupiter.recorded import DOCS_TAKER as TAKER
from tests.jupiter.recorded import JUP, SOL, USDC, load
from xorj_actors.jupiter import MalformedAnswer, SwapMode, parse_execution, parse_order, parse_prices, parse_quote, parse_swap_instructions


QUOTE = load("quote-openapi.json")
ROUTE = load("swap-instructions-3-tables-wsol-shared.json")
ORDER = load("ultra-order-metis.json")


def changed(base: Any, edit: Any) -> Any:
    answer = copy.deepcopy(base)
    edit(answer)
    return answer


@pytest.mark.parametrize(
    "edit",
    [
        lambda q: q.pop("contextSlot"),
        lambda q: q.pop("timeTaken"),
        lambda q: q.update(contextSlot=None, timeTaken=None),
        lambda q: q["routePlan"][0].update(bps=None),
        lambda q: q["routePlan"][0].update(percent=None),
        lambda q: q["routePlan"][0]["swapInfo"].pop("feeAmount"),
        lambda q: q["routePlan"][0]["swapInfo"].update(feeMint=None, label=None),
        lambda q: q.update(newField={"nested": [1, 2]}, mostReliableAmmsQuoteReport=None),
        lambda q: q.pop("platformFee"),
        lambda q: q.update(platformFee={"feeBps": 0}),
    ],
    ids=[
        "no-contextSlot", "no-timeTaken", "null-slot-and-time", "null-bps", "null-percent", "no-feeAmount",
        "null-feeMint-label", "new-fields", "no-platformFee", "fee-without-amount",
    ],
)
def test_quote_drift_is_tolerated(edit: Any) -> None:
    quote = parse_quote(changed(QUOTE, edit))
    assert quote.other_amount_threshold == 16886885 and quote.swap_mode is SwapMode.EXACT_IN


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda q: q.update(inAmount=100000000), "inAmount"),  # a number, not a decimal string
        (lambda q: q.update(inAmount="1e8"), "inAmount"),
        (lambda q: q.update(outAmount="-5"), "outAmount"),
        (lambda q: q.update(outAmount="0"), "outAmount"),
        (lambda q: q.update(inAmount=str(2**64)), "inAmount"),
        (lambda q: q.pop("otherAmountThreshold"), "otherAmountThreshold"),
        (lambda q: q.update(otherAmountThreshold="17057461"), "otherAmountThreshold"),  # above outAmount
        (lambda q: q.update(inputMint="not-a-mint"), "inputMint"),
        (lambda q: q.update(outputMint=q["inputMint"]), "outputMint"),
        (lambda q: q.update(slippageBps=None), "slippageBps"),
        (lambda q: q.update(slippageBps=10_001), "slippageBps"),
        (lambda q: q.update(slippageBps=1.5), "slippageBps"),
        (lambda q: q.update(slippageBps=True), "slippageBps"),
        (lambda q: q.update(swapMode="exactIn"), "swapMode"),
        (lambda q: q.update(priceImpactPct=0.0001), "priceImpactPct"),
        (lambda q: q.update(priceImpactPct="NaN"), "priceImpactPct"),
        (lambda q: q.update(platformFee={"amount": "5"}), "platformFee.feeBps"),
        (lambda q: q.update(platformFee={"amount": 5, "feeBps": 10}), "platformFee.amount"),
        (lambda q: q.update(routePlan=[]), "routePlan"),
        (lambda q: q["routePlan"][0]["swapInfo"].update(inAmount="x"), "routePlan[0].swapInfo.inAmount"),
        (lambda q: q["routePlan"][0]["swapInfo"].pop("outputMint"), "routePlan[0].swapInfo.outputMint"),
        (lambda q: q["routePlan"][0]["swapInfo"].update(outputMint=q["inputMint"]), "routePlan"),
    ],
    ids=[
        "amount-as-number", "amount-exponent", "negative", "zero-out", "above-u64", "no-threshold",
        "threshold-above-out", "bad-mint", "same-mints", "null-slippage", "slippage-over-100pct",
        "float-slippage", "bool-slippage", "mode-spelling", "impact-as-number", "impact-nan",
        "fee-without-bps", "fee-amount-number", "empty-route", "step-amount", "step-mint", "route-never-ends",
    ],
)
def test_bad_money_fields_in_a_quote_are_refused_by_name(edit: Any, field: str) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_quote(changed(QUOTE, edit))
    assert refused.value.field == field


def test_exact_out_threshold_is_a_maximum_input() -> None:
    exact_out = changed(QUOTE, lambda q: q.update(swapMode="ExactOut", otherAmountThreshold="101000000"))
    assert parse_quote(exact_out).swap_mode is SwapMode.EXACT_OUT
    with pytest.raises(MalformedAnswer, match="otherAmountThreshold"):
        parse_quote(changed(exact_out, lambda q: q.update(otherAmountThreshold="99999999")))


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: [r.pop(k) for k in ("prioritizationFeeLamports", "computeUnitLimit", "simulationError")],
        lambda r: [r.pop(k) for k in ("blockhashWithMetadata", "simulationSlot", "prioritizationType")],
        lambda r: r.pop("otherInstructions"),
        lambda r: r.update(cleanupInstruction=None, newThing=[{"x": 1}]),
        lambda r: r.update(computeUnitLimit="lots"),
    ],
    ids=["no-fee-fields", "no-metadata", "no-otherInstructions", "null-cleanup-new-field", "odd-limit"],
)
def test_swap_instructions_drift_is_tolerated(edit: Any) -> None:
    route = parse_swap_instructions(changed(ROUTE, edit))
    assert len(route.address_lookup_table_addresses) == 3 and len(route.swap_instruction.accounts) == 69


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r.pop("swapInstruction"), "swapInstruction"),
        (lambda r: r["swapInstruction"].update(programId="nope"), "swapInstruction.programId"),
        (lambda r: r["swapInstruction"].update(data="%%%"), "swapInstruction.data"),
        (lambda r: r["swapInstruction"]["accounts"][2].update(isSigner="true"), "swapInstruction.accounts[2].isSigner"),
        (lambda r: r["swapInstruction"]["accounts"][5].pop("isWritable"), "swapInstruction.accounts[5].isWritable"),
        (lambda r: r["setupInstructions"][1]["accounts"][1].update(pubkey="x"), "setupInstructions[1].accounts[1].pubkey"),
        (lambda r: r["cleanupInstruction"].update(accounts=None), "cleanupInstruction.accounts"),
        (lambda r: r.update(setupInstructions=None), "setupInstructions"),
        (lambda r: r["addressLookupTableAddresses"].append("bad"), "addressLookupTableAddresses[3]"),
        (lambda r: r["addressLookupTableAddresses"].append(r["addressLookupTableAddresses"][0]), "addressLookupTableAddresses"),
        (lambda r: r.update(tokenLedgerInstruction=r["setupInstructions"][2]), "tokenLedgerInstruction"),
    ],
    ids=[
        "no-swap", "bad-program", "bad-data", "signer-as-string", "no-writable", "bad-account", "null-accounts",
        "null-setup", "bad-table", "table-twice", "token-ledger",
    ],
)
def test_bad_instructions_are_refused_by_name(edit: Any, field: str) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_swap_instructions(changed(ROUTE, edit))
    assert refused.value.field == field


def test_a_simulation_error_is_kept_as_a_value() -> None:
    route = parse_swap_instructions(changed(ROUTE, lambda r: r.update(simulationError={"errorCode": "X", "error": "boom"})))
    assert route.simulation_error is not None and (route.simulation_error.code, route.simulation_error.message) == ("X", "boom")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda o: o.update(requestId=""), "requestId"),
        (lambda o: o.pop("requestId"), "requestId"),
        (lambda o: o.update(feeBps=None), "feeBps"),
        (lambda o: o.update(slippageBps=-1), "slippageBps"),
        (lambda o: o.update(otherAmountThreshold=460024271), "otherAmountThreshold"),
        (lambda o: o.update(transaction="AAAA"), "transaction"),
        (lambda o: o.update(transaction="###"), "transaction"),
    ],
    ids=["empty-request-id", "no-request-id", "null-fee", "negative-slippage", "threshold-number", "not-a-tx", "not-base64"],
)
def test_bad_order_fields_are_refused_by_name(edit: Any, field: str) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_order(changed(ORDER, edit), taker=TAKER)
    assert refused.value.field == field


def test_order_drift_and_an_order_without_transaction() -> None:
    tolerant = changed(ORDER, lambda o: [o.pop(k) for k in ("inUsdValue", "priceImpact", "totalTime", "swapType")])
    assert parse_order(tolerant, taker=TAKER).transaction is not None
    broke = changed(ORDER, lambda o: o.update(transaction="", errorCode=1, errorMessage="Insufficient funds"))
    order = parse_order(broke, taker=TAKER)
    assert order.transaction is None and order.error is not None and order.error.code == "1"
    assert order.error.reason.value == "insufficient_funds"


def test_execution_fields_are_strict() -> None:
    ok = load("ultra-execute-success-openapi.json")
    for edit, field in [
        (lambda e: e.update(code="0"), "code"),
        (lambda e: e.update(status="Done"), "status"),
        (lambda e: e.update(code=-1000), "status"),  # Success with a failure code
        (lambda e: e.update(outputAmountResult=17057460), "outputAmountResult"),
        (lambda e: e.update(slot="soon"), "slot"),
        (lambda e: e["swapEvents"][0].update(inputMint="x"), "swapEvents[0].inputMint"),
    ]:
        with pytest.raises(MalformedAnswer) as refused:
            parse_execution(changed(ok, edit))
        assert refused.value.field == field
    assert parse_execution(changed(ok, lambda e: e.update(newField=1, slot=324307186))).slot == 324307186


def test_prices_refuse_a_bad_price_and_omit_the_missing() -> None:
    answer = load("price-v3-openapi.json")
    usdc, other = USDC, JUP
    assert set(parse_prices(answer, [SOL, usdc, other])) == {SOL, usdc}
    assert set(parse_prices(changed(answer, lambda a: a.update({str(SOL): None})), [SOL, usdc])) == {usdc}
    drift = changed(answer, lambda a: [a[str(SOL)].pop(k) for k in ("blockId", "decimals", "liquidity", "createdAt")])
    assert parse_prices(drift, [SOL])[SOL].block_id is None
    for bad in (0, -1.0, "147.48", None, float("inf")):
        with pytest.raises(MalformedAnswer) as refused:
            parse_prices(changed(answer, lambda a, bad=bad: a[str(SOL)].update(usdPrice=bad)), [SOL])
        assert refused.value.field == f"{SOL}.usdPrice"
