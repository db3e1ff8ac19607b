"""The effect check's pure rules: SOL legs, a separate fee payer, created accounts, decoding."""

from __future__ import annotations

import dataclasses

import pytest
from solders.account import Account
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import TokenAccount, TokenAccountState

from xorj_actors.execution import AccountState, EffectTerms, RouteRefusalReason, RouteParties, TokenState, check_effects, decode_account
from xorj_actors.programs import NATIVE_MINT, SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

AUTHORITY, PAYER, STRANGER = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
USDC = Pubkey.new_unique()
WSOL = get_associated_token_address(AUTHORITY, NATIVE_MINT)
USDC_ATA = get_associated_token_address(AUTHORITY, USDC)
RENT = 2_039_280
FEE = 10_000
SOL = 10**9


def sol(lamports: int) -> AccountState:
    return AccountState(lamports, SYSTEM_PROGRAM_ID, None)


def token(mint: Pubkey, amount: int, *, owner: Pubkey = AUTHORITY, lamports: int = RENT, **changes: object) -> AccountState:
    state = TokenState(mint, owner, amount, None, 0, TokenAccountState.Initialized, None, mint == NATIVE_MINT)
    return AccountState(lamports, TOKEN_PROGRAM_ID, dataclasses.replace(state, **changes))  # type: ignore[arg-type]


def terms(input_mint: Pubkey, output_mint: Pubkey, amount_in: int, min_out: int, **changes: object) -> EffectTerms:
    base = EffectTerms(
        parties=RouteParties(AUTHORITY),
        input_mint=input_mint,
        output_mint=output_mint,
        amount_in=amount_in,
        min_out=min_out,
        holdings=frozenset({WSOL, USDC_ATA}),
        fee_lamports=FEE,
        tip_lamports=0,
        max_sol_spend=5_000_000,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- selling SOL: wrapped into a temporary wSOL account, the USDC account created -----------------

def sell_sol(authority_after: int, usdc_after: int = 100_000_000) -> tuple[dict, dict]:
    pre = {AUTHORITY: sol(10 * SOL), WSOL: None, USDC_ATA: None, STRANGER: sol(SOL)}
    post = {AUTHORITY: sol(authority_after), WSOL: None, USDC_ATA: token(USDC, usdc_after), STRANGER: sol(SOL)}
    return pre, post


def test_selling_sol_passes_net_of_fee_and_the_new_account_rent() -> None:
    pre, post = sell_sol(10 * SOL - SOL - FEE - RENT)
    assert check_effects(pre, post, terms(NATIVE_MINT, USDC, SOL, 99_000_000)) is None


@pytest.mark.parametrize(
    ("authority_after", "usdc_after", "reason"),
    [
        (10 * SOL - SOL - FEE - RENT - 1, 100_000_000, RouteRefusalReason.SOL_OVERSPEND),
        (10 * SOL - SOL + 1, 100_000_000, RouteRefusalReason.INPUT_NOT_EXACT),
        (10 * SOL - SOL - FEE - RENT, 98_999_999, RouteRefusalReason.OUTPUT_SHORT),
    ],
)
def test_selling_sol_refusals(authority_after: int, usdc_after: int, reason: RouteRefusalReason) -> None:
    pre, post = sell_sol(authority_after, usdc_after)
    refusal = check_effects(pre, post, terms(NATIVE_MINT, USDC, SOL, 99_000_000))
    assert refusal is not None and refusal.reason is reason


def test_the_cap_bounds_the_spend_even_within_fee_and_rent() -> None:
    pre, post = sell_sol(10 * SOL - SOL - FEE - RENT)
    refusal = check_effects(pre, post, terms(NATIVE_MINT, USDC, SOL, 99_000_000, max_sol_spend=FEE))
    assert refusal is not None and refusal.reason is RouteRefusalReason.SOL_OVERSPEND


# -- buying SOL into an existing wSOL account ----------------------------------------------------

def test_buying_sol_counts_native_and_wsol_together() -> None:
    pre = {AUTHORITY: sol(SOL), USDC_ATA: token(USDC, 500), WSOL: token(NATIVE_MINT, 0, lamports=RENT)}
    good = {AUTHORITY: sol(SOL - FEE), USDC_ATA: token(USDC, 400), WSOL: token(NATIVE_MINT, 7_000, lamports=RENT + 7_000)}
    assert check_effects(pre, good, terms(USDC, NATIVE_MINT, 100, 7_000)) is None
    short = {**good, WSOL: token(NATIVE_MINT, 6_000, lamports=RENT + 6_000)}
    refusal = check_effects(pre, short, terms(USDC, NATIVE_MINT, 100, 7_000))
    assert refusal is not None and refusal.reason is RouteRefusalReason.OUTPUT_SHORT
    # Unwrapped into the authority's own account: the wSOL account closes, nothing is lost.
    unwrapped = {AUTHORITY: sol(SOL - FEE + RENT + 7_000), USDC_ATA: token(USDC, 400), WSOL: None}
    assert check_effects(pre, unwrapped, terms(USDC, NATIVE_MINT, 100, 7_000)) is None


# -- a separate fee payer --------------------------------------------------------------------------

def test_a_separate_fee_payer_spends_only_the_fee() -> None:
    other = Pubkey.new_unique()
    holdings = frozenset({USDC_ATA, other})
    parties = RouteParties(AUTHORITY, PAYER)
    pre = {AUTHORITY: sol(SOL), PAYER: sol(SOL), USDC_ATA: token(USDC, 500), other: token(STRANGER, 0)}
    post = {AUTHORITY: sol(SOL), PAYER: sol(SOL - FEE), USDC_ATA: token(USDC, 400), other: token(STRANGER, 9)}
    t = terms(USDC, STRANGER, 100, 9, parties=parties, holdings=holdings)
    assert check_effects(pre, post, t) is None
    refusal = check_effects(pre, {**post, PAYER: sol(SOL - FEE - 1)}, t)
    assert refusal is not None and refusal.reason is RouteRefusalReason.SOL_OVERSPEND


# -- controlled accounts that must not change -----------------------------------------------------

@pytest.mark.parametrize(
    ("after", "reason"),
    [
        (token(STRANGER, 3, close_authority=STRANGER), RouteRefusalReason.CLOSE_AUTHORITY_CHANGED),
        (token(STRANGER, 3, state=TokenAccountState.Frozen), RouteRefusalReason.STATE_CHANGED),
        (token(STRANGER, 3, owner=STRANGER), RouteRefusalReason.OWNER_CHANGED),
        (token(STRANGER, 2), RouteRefusalReason.OTHER_ACCOUNT_CHANGED),
        (AccountState(RENT, STRANGER, None), RouteRefusalReason.OWNER_CHANGED),
        (None, RouteRefusalReason.ACCOUNT_CLOSED),
    ],
)
def test_other_controlled_accounts_stay_as_they_were(after: AccountState | None, reason: RouteRefusalReason) -> None:
    elsewhere = Pubkey.new_unique()
    pre = {AUTHORITY: sol(SOL), USDC_ATA: token(USDC, 500), WSOL: None, elsewhere: token(STRANGER, 3)}
    post = {AUTHORITY: sol(SOL - FEE), USDC_ATA: token(USDC, 400), WSOL: token(NATIVE_MINT, 50, lamports=RENT + 50), elsewhere: after}
    refusal = check_effects(pre, post, terms(USDC, NATIVE_MINT, 100, 50))
    assert refusal is not None and refusal.reason is reason


def test_an_account_created_for_someone_else_under_our_control_is_refused() -> None:
    made = Pubkey.new_unique()
    pre = {AUTHORITY: sol(SOL), USDC_ATA: token(USDC, 500), WSOL: token(NATIVE_MINT, 0), made: None}
    post = {AUTHORITY: sol(SOL - FEE), USDC_ATA: token(USDC, 400), WSOL: token(NATIVE_MINT, 50, lamports=RENT + 50),
            made: token(USDC, 0, owner=STRANGER, delegate=AUTHORITY, delegated_amount=1)}
    refusal = check_effects(pre, post, terms(USDC, NATIVE_MINT, 100, 50))
    assert refusal is not None and refusal.reason is RouteRefusalReason.FOREIGN_ACCOUNT_CREATED


# -- decoding --------------------------------------------------------------------------------------

def test_decode_token_and_token_2022_accounts() -> None:
    base = bytes(TokenAccount(USDC, AUTHORITY, 42, STRANGER, TokenAccountState.Initialized, None, 7, AUTHORITY))
    state = decode_account(Account(RENT, base, TOKEN_PROGRAM_ID, False, 0))
    assert state is not None and state.token == TokenState(USDC, AUTHORITY, 42, STRANGER, 7, TokenAccountState.Initialized, AUTHORITY, False)
    extended = decode_account(Account(RENT, base + bytes([2, 0, 0, 0]), TOKEN_2022_PROGRAM_ID, False, 0))
    assert extended is not None and extended.token is not None and extended.token.amount == 42
    a_mint = decode_account(Account(RENT, base + bytes([1, 0, 0, 0]), TOKEN_2022_PROGRAM_ID, False, 0))
    assert a_mint is not None and a_mint.token is None
    assert decode_account(Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)) is None  # closed: gone
    assert decode_account(None) is None
