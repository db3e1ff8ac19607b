"""The effect check: what a simulated route does to the accounts the vault's keys control. Pure.

Input: the pre-state and the simulated post-state of every account the transaction may write
(read at the same slot, :mod:`._effects_io`), and the trade's terms. Output: ``None``, or the
first :class:`RouteRefusal` found. The rules are in docs/EXECUTION.md, "The effect check".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from solders.account import Account
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount, TokenAccountState

from xorj_actors.execution._allowlist import RouteParties
from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal
from xorj_actors.programs import NATIVE_MINT, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

__all__ = ["AccountState", "EffectTerms", "TokenState", "balances", "check_effects", "decode_account"]

_TOKEN_ACCOUNT_LEN = 165
_TOKEN_2022_ACCOUNT_TYPE = 2  # the byte after the base layout in an extended Token-2022 account


@dataclass(frozen=True, slots=True)
class TokenState:
    """The fields of an SPL Token (or Token-2022) account that the effect check compares."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    delegated_amount: int
    state: TokenAccountState
    close_authority: Pubkey | None
    is_native: bool


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account as the check sees it: lamports, program owner and, for a token account, its fields."""

    lamports: int
    program: Pubkey
    token: TokenState | None


def decode_account(account: Account | None) -> AccountState | None:
    """``None`` for an absent account; a token account's base layout decoded, else lamports only.

    An account with no lamports is absent: the runtime drops it after the transaction (a
    simulation reports a closed account that way).
    """
    if account is None or account.lamports == 0:
        return None
    data = bytes(account.data)
    token = None
    is_token = account.owner == TOKEN_PROGRAM_ID and len(data) == _TOKEN_ACCOUNT_LEN
    is_token_2022 = account.owner == TOKEN_2022_PROGRAM_ID and (
        len(data) == _TOKEN_ACCOUNT_LEN or (len(data) > _TOKEN_ACCOUNT_LEN and data[_TOKEN_ACCOUNT_LEN] == _TOKEN_2022_ACCOUNT_TYPE)
    )
    if is_token or is_token_2022:
        raw = TokenAccount.from_bytes(data[:_TOKEN_ACCOUNT_LEN])
        token = TokenState(
            mint=raw.mint,
            owner=raw.owner,
            amount=raw.amount,
            delegate=raw.delegate,
            delegated_amount=raw.delegated_amount,
            state=raw.state,
            close_authority=raw.close_authority,
            is_native=raw.is_native is not None,
        )
    return AccountState(account.lamports, account.owner, token)


def balances(states: Mapping[Pubkey, AccountState | None]) -> dict[str, list[int | None]]:
    """Accounts as a settle-by-state record keeps them: ``[lamports, token amount or None]``
    (an absent account: ``[0, None]``), keyed by address."""
    return {
        str(key): [s.lamports if s is not None else 0, s.token.amount if s is not None and s.token is not None else None]
        for key, s in states.items()
    }


@dataclass(frozen=True, slots=True)
class EffectTerms:
    """The trade the route must perform, and what it may cost."""

    parties: RouteParties
    input_mint: Pubkey
    output_mint: Pubkey
    amount_in: int
    #: ``otherAmountThreshold``: the least output accepted.
    min_out: int
    #: This vault's token accounts (its input, output and wSOL accounts, existing or to be created).
    holdings: frozenset[Pubkey]
    #: Upper bound of the fee (:func:`._allowlist.fee_bound`) and the tips the route pays.
    fee_lamports: int
    tip_lamports: int
    #: The most SOL the payers may spend on fee, tip and rent together.
    max_sol_spend: int


States = Mapping[Pubkey, AccountState | None]


def check_effects(pre: States, post: States, terms: EffectTerms) -> RouteRefusal | None:
    """``None`` if the route does exactly the trade to the accounts the vault's keys control."""
    parties = terms.parties
    controllers = parties.payers
    rent = 0
    for key in pre.keys() | post.keys():
        before, after = pre.get(key), post.get(key)
        if not (_controlled(key, before, controllers) or _controlled(key, after, controllers)):
            continue
        if before is None:
            if after is None:
                continue
            if not _ours(key, after, terms):
                return RouteRefusal(RouteRefusalReason.FOREIGN_ACCOUNT_CREATED, f"{key} is created and is not this vault's")
            rent += after.lamports - (after.token.amount if after.token is not None and after.token.is_native else 0)
            continue
        refusal = _unchanged(key, before, after, terms)
        if refusal is not None:
            return refusal
    overhead = terms.fee_lamports + terms.tip_lamports + rent
    sol_in = _sol(pre, terms) - _sol(post, terms)
    payer_spend = sum(_lamports(pre, k) - _lamports(post, k) for k in controllers - {parties.authority})
    if terms.input_mint == NATIVE_MINT:
        if sol_in < terms.amount_in:
            return RouteRefusal(RouteRefusalReason.INPUT_NOT_EXACT, f"SOL holding down by {sol_in}, the trade sells {terms.amount_in}")
        spend = sol_in - terms.amount_in + payer_spend
    else:
        sold = _holding(pre, terms.input_mint, terms) - _holding(post, terms.input_mint, terms)
        if sold != terms.amount_in:
            return RouteRefusal(RouteRefusalReason.INPUT_NOT_EXACT, f"input holding down by {sold}, the trade sells {terms.amount_in}")
        spend = None if terms.output_mint == NATIVE_MINT else sol_in + payer_spend
    if terms.output_mint == NATIVE_MINT:
        # SOL bought and SOL spent on fees share one holding: it must gain the threshold net of
        # at most the overhead, which itself stays under the cap.
        bought = -sol_in
        if bought + overhead < terms.min_out:
            return RouteRefusal(RouteRefusalReason.OUTPUT_SHORT, f"SOL holding up by {bought}, the quote promises {terms.min_out}")
        spend = max(overhead, payer_spend)
    else:
        bought = _holding(post, terms.output_mint, terms) - _holding(pre, terms.output_mint, terms)
        if bought < terms.min_out:
            return RouteRefusal(RouteRefusalReason.OUTPUT_SHORT, f"output holding up by {bought}, the quote promises {terms.min_out}")
    assert spend is not None
    if spend > overhead or spend > terms.max_sol_spend:
        return RouteRefusal(
            RouteRefusalReason.SOL_OVERSPEND,
            f"the payers spend {spend} lamports; fee {terms.fee_lamports} + tip {terms.tip_lamports} + rent {rent}, cap {terms.max_sol_spend}",
        )
    return None


def _controlled(key: Pubkey, state: AccountState | None, controllers: frozenset[Pubkey]) -> bool:
    if state is None:
        return False
    if state.token is None:
        return key in controllers
    t = state.token
    return t.owner in controllers or t.delegate in controllers or t.close_authority in controllers


def _ours(key: Pubkey, state: AccountState, terms: EffectTerms) -> bool:
    t = state.token
    return (
        t is not None
        and key in terms.holdings
        and t.owner == terms.parties.authority
        and t.delegate is None
        and t.close_authority is None
        and t.mint in (terms.input_mint, terms.output_mint, NATIVE_MINT)
    )


def _unchanged(key: Pubkey, before: AccountState, after: AccountState | None, terms: EffectTerms) -> RouteRefusal | None:
    """The rules for a controlled account that existed: only the trade's holdings move."""
    b = before.token
    if after is None:
        # Only a wSOL account of this vault may close (its lamports come back to the authority).
        if b is not None and b.is_native and key in terms.holdings and b.owner == terms.parties.authority:
            return None
        return RouteRefusal(RouteRefusalReason.ACCOUNT_CLOSED, f"{key} is closed")
    a = after.token
    if after.program != before.program or (a is None) != (b is None):
        return RouteRefusal(RouteRefusalReason.OWNER_CHANGED, f"{key} now belongs to program {after.program}")
    if a is None or b is None:
        return None  # a payer's own SOL account: the SOL rules judge it
    if a.owner != b.owner or a.mint != b.mint:
        return RouteRefusal(RouteRefusalReason.OWNER_CHANGED, f"{key}: owner {b.owner} -> {a.owner}")
    if (a.delegate, a.delegated_amount) != (b.delegate, b.delegated_amount):
        return RouteRefusal(
            RouteRefusalReason.DELEGATE_CHANGED, f"{key}: delegate {b.delegate} ({b.delegated_amount}) -> {a.delegate} ({a.delegated_amount})"
        )
    if a.close_authority != b.close_authority:
        return RouteRefusal(RouteRefusalReason.CLOSE_AUTHORITY_CHANGED, f"{key}: close authority {b.close_authority} -> {a.close_authority}")
    if a.state != b.state:
        return RouteRefusal(RouteRefusalReason.STATE_CHANGED, f"{key}: {b.state} -> {a.state}")
    traded = key in terms.holdings and b.mint in (terms.input_mint, terms.output_mint, NATIVE_MINT)
    if not traded and (a.amount != b.amount or after.lamports != before.lamports):
        return RouteRefusal(RouteRefusalReason.OTHER_ACCOUNT_CHANGED, f"{key} ({b.mint}): {b.amount} -> {a.amount}")
    return None


def _lamports(states: States, key: Pubkey) -> int:
    state = states.get(key)
    return 0 if state is None else state.lamports


def _holding(states: States, mint: Pubkey, terms: EffectTerms) -> int:
    """This vault's balance of ``mint`` across its holdings (SOL: see :func:`_sol`)."""
    total = 0
    for key in terms.holdings:
        state = states.get(key)
        if state is not None and state.token is not None and state.token.mint == mint and state.token.owner == terms.parties.authority:
            total += state.token.amount
    return total


def _sol(states: States, terms: EffectTerms) -> int:
    """The authority's SOL: its native lamports plus every lamport in its wSOL holdings."""
    total = _lamports(states, terms.parties.authority)
    for key in terms.holdings:
        state = states.get(key)
        if state is not None and state.token is not None and state.token.is_native and state.token.owner == terms.parties.authority:
            total += state.lamports
    return total
