"""The comparison rules of a statement reconciliation (pure: milliseconds)."""

from __future__ import annotations

import pytest

from xorj_actors.statements import LAMPORTS, Cause, ChainTx, LedgerTrade, Opening, VaultAccounts, compare_vault, tx_effect

USDC, JUP = "USDCmint", "JUPmint"
OPEN = Opening(slot=10, balances={LAMPORTS: 10_000_000, USDC: 1_000_000, JUP: 0})


def _swap(sig: str = "s1", slot: int = 20, *, fee: int = 5_000, spent: int = 400_000, got: int = 470_000) -> ChainTx:
    return ChainTx(sig, found=True, slot=slot, deltas={LAMPORTS: -fee, USDC: -spent, JUP: got})


def _trade(sig: str = "s1", **changes: object) -> LedgerTrade:
    fields: dict[str, object] = dict(trade_id="t1", input_mint=USDC, output_mint=JUP, signatures=(sig,),
                                     status="confirmed", signature=sig, in_amount=400_000, out_amount=470_000,
                                     slippage_bps=50)
    fields.update(changes)
    return LedgerTrade(**fields)  # type: ignore[arg-type]


AFTER = {LAMPORTS: 9_995_000, USDC: 600_000, JUP: 470_000}


def test_clean_vault_matches_to_the_unit_with_fees_in_sol() -> None:
    st = compare_vault("v", OPEN, AFTER, 30, [_trade()], {"s1": _swap()})
    assert st.mismatches == ()
    assert st.expected == AFTER and st.transactions == 1


@pytest.mark.parametrize("asset", [LAMPORTS, USDC, JUP])
def test_one_base_unit_moved_behind_the_ledger_is_a_mismatch(asset: str) -> None:
    actual = {**AFTER, asset: AFTER[asset] - 1}
    st = compare_vault("v", OPEN, actual, 30, [_trade()], {"s1": _swap()})
    [m] = st.mismatches
    assert (m.asset, m.cause, m.expected, m.actual, m.difference) == (asset, Cause.UNLEDGERED, AFTER[asset], actual[asset], -1)
    assert "unexplained" in m.detail


def test_foreign_signatures_are_named_in_the_cause() -> None:
    st = compare_vault("v", OPEN, {**AFTER, JUP: 0}, 30, [_trade()], {"s1": _swap()}, unledgered=["evil"])
    assert [m.detail for m in st.mismatches] == ["the chain lists transactions the ledger lacks: evil"]


def test_a_trade_missing_from_the_ledger_leaves_its_change_unexplained() -> None:
    st = compare_vault("v", OPEN, AFTER, 30, [], {})
    assert {(m.asset, m.cause, m.difference) for m in st.mismatches} == {
        (LAMPORTS, Cause.UNLEDGERED, -5_000), (USDC, Cause.UNLEDGERED, -400_000), (JUP, Cause.UNLEDGERED, 470_000)}


def test_a_ledger_trade_the_chain_lacks() -> None:
    st = compare_vault("v", OPEN, OPEN.balances, 30, [_trade()], {"s1": ChainTx("s1", found=False)})
    [m] = st.mismatches
    assert (m.cause, m.trade_id, m.signature, m.expected, m.actual) == (Cause.NOT_ON_CHAIN, "t1", "s1", -400_000, 0)


def test_confirmed_in_the_ledger_but_failed_on_chain() -> None:
    failed = ChainTx("s1", found=True, slot=20, err='{"InstructionError":[1,{"Custom":1}]}', deltas={LAMPORTS: -5_000})
    st = compare_vault("v", OPEN, {**OPEN.balances, LAMPORTS: 9_995_000}, 30, [_trade()], {"s1": failed})
    assert [(m.cause, m.asset) for m in st.mismatches] == [(Cause.NOT_ON_CHAIN, USDC)]


def test_a_failed_trade_that_landed_still_pays_its_fee() -> None:
    failed = ChainTx("s1", found=True, slot=20, err="x", deltas={LAMPORTS: -5_000})
    st = compare_vault("v", OPEN, {**OPEN.balances, LAMPORTS: 9_995_000}, 30, [_trade(status="failed")], {"s1": failed})
    assert st.mismatches == ()


@pytest.mark.parametrize(("changes", "asset"), [({"in_amount": 400_001}, USDC), ({"in_amount": 399_999}, USDC),
                                                ({"out_amount": 480_000}, JUP)])
def test_an_amount_that_differs(changes: dict[str, int], asset: str) -> None:
    st = compare_vault("v", OPEN, AFTER, 30, [_trade(**changes)], {"s1": _swap()})
    [m] = st.mismatches
    assert (m.cause, m.asset, m.trade_id) == (Cause.AMOUNT_DIFFERS, asset, "t1")


def test_output_within_the_slippage_limit_is_not_a_mismatch() -> None:
    # quoted 470,000, 50 bps limit: 467,650 is the least acceptable credit
    st = compare_vault("v", OPEN, {**AFTER, JUP: 467_650}, 30, [_trade()], {"s1": _swap(got=467_650)})
    assert st.mismatches == ()
    st = compare_vault("v", OPEN, {**AFTER, JUP: 467_649}, 30, [_trade()], {"s1": _swap(got=467_649)})
    assert [(m.cause, m.asset) for m in st.mismatches] == [(Cause.AMOUNT_DIFFERS, JUP)]


def test_transactions_outside_the_window_are_not_counted() -> None:
    # at or before the opening: already in the opening balances; after the read: not in it yet
    before = compare_vault("v", Opening(20, AFTER), AFTER, 30, [_trade()], {"s1": _swap(slot=20)})
    assert before.mismatches == () and before.transactions == 0
    # its amounts too are the opening's (a rotated key's old accounts no longer hold them)
    moved = compare_vault("v", Opening(20, AFTER), AFTER, 30, [_trade()], {"s1": _swap(slot=20, spent=0, got=0)})
    assert moved.mismatches == ()
    later = compare_vault("v", OPEN, OPEN.balances, 19, [_trade()], {"s1": _swap(slot=20)})
    assert later.mismatches == () and later.transactions == 0


def test_every_attempt_counts_once() -> None:
    expired_then_landed = _trade(signatures=("s0", "s1", "s1"))
    chain = {"s0": ChainTx("s0", found=False), "s1": _swap()}
    st = compare_vault("v", OPEN, AFTER, 30, [expired_then_landed], chain)
    assert st.mismatches == () and st.transactions == 1


SOL = "So11111111111111111111111111111111111111112"


def test_a_sol_leg_wrapped_and_closed_in_the_swap_reconciles_clean() -> None:
    """Swap SOL->USDC with wrapAndUnwrapSol: the vault's wSOL account is created and closed in the
    transaction, so it is in neither pre- nor postTokenBalances (getTransaction ``json`` shape,
    written by hand after Solana's meta layout). The debit is the authority's lamports, its fee
    added back; the balance figure keeps the fee."""
    authority, usdc_ata, wsol_ata = "Auth1111", "UsdcAta1", "WsolAta1"
    vault = VaultAccounts("v", authority, {USDC: usdc_ata, SOL: wsol_ata})
    fee, rent, spent, got = 5_000, 2_039_280, 1_000_000_000, 150_000_000
    record = {
        "slot": 20,
        "transaction": {"message": {"accountKeys": [authority, wsol_ata, usdc_ata, "Pool1111"]}},
        "meta": {
            "err": None, "fee": fee,
            # rent for the wSOL account is paid and refunded within the transaction
            "preBalances": [5_000_000_000, 0, rent, 10 ** 9], "postBalances": [5_000_000_000 - spent - fee, 0, rent, 10 ** 9],
            "preTokenBalances": [{"accountIndex": 2, "mint": USDC, "owner": authority, "uiTokenAmount": {"amount": "0"}}],
            "postTokenBalances": [{"accountIndex": 2, "mint": USDC, "owner": authority, "uiTokenAmount": {"amount": str(got)}}],
        },
    }
    tx = tx_effect("s1", record, vault)
    assert tx.deltas == {LAMPORTS: -spent - fee, USDC: got}
    opening = Opening(10, {LAMPORTS: 5_000_000_000, USDC: 0, SOL: 0})
    trade = LedgerTrade("t1", SOL, USDC, ("s1",), "confirmed", "s1", spent, got, 50)
    after = {LAMPORTS: 5_000_000_000 - spent - fee, USDC: got, SOL: 0}
    st = compare_vault("v", opening, after, 30, [trade], {"s1": tx})
    assert st.mismatches == ()
    # and one lamport more debited than the ledger says is still caught
    st = compare_vault("v", opening, after, 30, [LedgerTrade("t1", SOL, USDC, ("s1",), "confirmed", "s1", spent - 1, got, 50)],
                       {"s1": tx})
    assert [(m.cause, m.asset, m.difference) for m in st.mismatches] == [(Cause.AMOUNT_DIFFERS, SOL, -1)]
    # USDC->SOL the other way: the credit is the lamports gained plus the fee paid
    back = tx_effect("s2", {**record, "meta": {**record["meta"], "preBalances": [5_000_000_000, 0, rent, 1],
                                               "postBalances": [5_000_000_000 + spent - fee, 0, rent, 1],
                                               "preTokenBalances": record["meta"]["postTokenBalances"],
                                               "postTokenBalances": record["meta"]["preTokenBalances"]}}, vault)
    assert back.swap_change(SOL) == spent and back.swap_change(USDC) == -got


@pytest.mark.parametrize("status", ["expired", "failed", "rejected"])
def test_a_trade_the_ledger_closed_unconfirmed_that_landed(status: str) -> None:
    st = compare_vault("v", OPEN, AFTER, 30, [_trade(status=status, signature=None)], {"s1": _swap()})
    [m] = st.mismatches
    assert (m.cause, m.trade_id, m.signature, m.asset, m.expected, m.actual) == (
        Cause.OUTCOME_DIFFERS, "t1", "s1", USDC, 0, -400_000)
    # one that landed with an error (its fee only) or never landed is what the ledger says
    failed = ChainTx("s1", found=True, slot=20, err="x", deltas={LAMPORTS: -5_000})
    assert compare_vault("v", OPEN, {**OPEN.balances, LAMPORTS: 9_995_000}, 30, [_trade(status=status)],
                         {"s1": failed}).mismatches == ()
    assert compare_vault("v", OPEN, OPEN.balances, 30, [_trade(status=status)], {"s1": ChainTx("s1", found=False)}).mismatches == ()
