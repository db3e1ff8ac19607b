"""The effect check against the real localnet: a plain swap passes, each bad route is refused.

The routes are built here from raw SPL Token instructions around the localnet's two-leg swap;
they are simulated unsigned (``sigVerify: false``) and never signed or sent: the balances on
the chain are the same afterwards.
"""

from __future__ import annotations

import aiohttp
import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from xorj_actors.execution._allowlist import (
    ProgramAllowlist,
    RouteParties,
    check_allowlist,
    fee_bound,
    resolve_message,
)
from xorj_actors.execution import TradeError
from xorj_actors.execution._effects import EffectTerms, check_effects
from xorj_actors.execution._effects_io import EffectReader, SimulatedEffects
from xorj_actors.execution._refusal import RouteRefusalReason
from xorj_actors.localnet import Localnet
from xorj_actors.programs import ASSOCIATED_TOKEN_PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID

STRANGER = Pubkey.from_string("Stranger11111111111111111111111111111111111")


def _ix(data: bytes, *metas: tuple[Pubkey, bool, bool]) -> Instruction:
    return Instruction(TOKEN_PROGRAM_ID, data, [AccountMeta(k, s, w) for k, s, w in metas])


def transfer_checked(source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int, decimals: int) -> Instruction:
    data = bytes([12]) + amount.to_bytes(8, "little") + bytes([decimals])
    return _ix(data, (source, False, True), (mint, False, False), (dest, False, True), (owner, True, False))


def approve(account: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return _ix(bytes([4]) + amount.to_bytes(8, "little"), (account, False, True), (delegate, False, False), (owner, True, False))


def set_owner(account: Pubkey, owner: Pubkey, new_owner: Pubkey) -> Instruction:
    return _ix(bytes([6, 2, 1]) + bytes(new_owner), (account, False, True), (owner, True, False))


def close_account(account: Pubkey, dest: Pubkey, owner: Pubkey) -> Instruction:
    return _ix(bytes([9]), (account, False, True), (dest, False, True), (owner, True, False))


def create_ata(payer: Pubkey, wallet: Pubkey, mint: Pubkey) -> Instruction:
    address = get_associated_token_address(wallet, mint)
    metas = [(payer, True, True), (address, False, True), (wallet, False, False), (mint, False, False),
             (SYSTEM_PROGRAM_ID, False, False), (TOKEN_PROGRAM_ID, False, False)]
    return Instruction(ASSOCIATED_TOKEN_PROGRAM_ID, b"\x01", [AccountMeta(k, s, w) for k, s, w in metas])


class Route:
    """A USDC -> JUP swap of vault 0 against the market maker, plus ``extra`` instructions."""

    AMOUNT_IN, AMOUNT_OUT = 1_000_000, 1_100_000

    def __init__(self, ln: Localnet) -> None:
        g = ln.genesis
        self.ln = ln
        self.vault = g.vault(0)
        self.other = g.vault(1)
        self.authority = self.vault.authority  # vault 0's own key
        self.mm = g.market_maker.pubkey()
        self.usdc, self.jup = g.token("USDC"), g.token("JUP")

    def legs(self, *, pay_to: Pubkey | None = None) -> list[Instruction]:
        v, mm = self.vault.token_accounts, self.ln.genesis.market_maker_accounts
        return [
            transfer_checked(v["USDC"], self.usdc.mint, mm["USDC"], self.authority, self.AMOUNT_IN, self.usdc.decimals),
            transfer_checked(mm["JUP"], self.jup.mint, pay_to or v["JUP"], self.mm, self.AMOUNT_OUT, self.jup.decimals),
        ]

    def transaction(self, blockhash: Hash, instructions: list[Instruction]) -> VersionedTransaction:
        message = MessageV0.try_compile(self.authority, instructions, [], blockhash)
        # Unsigned: the effect check runs before anything is signed.
        return VersionedTransaction.populate(message, [Signature.default()] * message.header.num_required_signatures)

    def terms(self, tx: VersionedTransaction, *, cap: int = 1_000_000) -> EffectTerms:
        resolved = resolve_message(tx.message)
        assert not isinstance(resolved, Exception) and hasattr(resolved, "instructions")
        return EffectTerms(
            parties=RouteParties(self.authority),
            input_mint=self.usdc.mint,
            output_mint=self.jup.mint,
            amount_in=self.AMOUNT_IN,
            min_out=self.AMOUNT_OUT,
            holdings=frozenset(self.vault.token_accounts.values()),
            fee_lamports=fee_bound(resolved),  # type: ignore[arg-type]
            tip_lamports=0,
            max_sol_spend=cap,
        )


@pytest.fixture
def route(localnet: Localnet) -> Route:
    return Route(localnet)


async def _effects(ln: Localnet, tx: VersionedTransaction) -> SimulatedEffects:
    resolved = resolve_message(tx.message)
    assert not isinstance(resolved, type(None))
    async with aiohttp.ClientSession() as session:
        reader = EffectReader(ln.urls["rpc"], session, commitment="confirmed")
        effects = await reader.read(tx, resolved.writable_keys)  # type: ignore[union-attr]
    assert isinstance(effects, SimulatedEffects), effects
    return effects


async def _blockhash(ln: Localnet) -> Hash:
    return ln.call(lambda: ln.server.chain.latest_blockhash("confirmed")[1])


async def _balances(ln: Localnet, route: Route) -> list[int | None]:
    def read() -> list[int | None]:
        svm = ln.server.chain.svm
        keys = [*route.vault.token_accounts.values(), *route.other.token_accounts.values(), route.authority]
        return [None if (a := svm.get_account(k)) is None else (a.lamports, bytes(a.data)) for k in keys]  # type: ignore[misc]

    return ln.call(read)


async def test_a_plain_transfer_swap_passes(localnet: Localnet, route: Route) -> None:
    tx = route.transaction(await _blockhash(localnet), route.legs())
    effects = await _effects(localnet, tx)
    assert effects.slot == localnet.slot()
    assert check_effects(effects.pre, effects.post, route.terms(tx)) is None
    resolved = resolve_message(tx.message)
    assert check_allowlist(resolved, ProgramAllowlist.default(), RouteParties(route.authority)) is None  # type: ignore[arg-type]


async def _refused(ln: Localnet, route: Route, instructions: list[Instruction], **terms: int) -> RouteRefusalReason:
    before = await _balances(ln, route)
    tx = route.transaction(await _blockhash(ln), instructions)
    effects = await _effects(ln, tx)
    refusal = check_effects(effects.pre, effects.post, route.terms(tx, **terms))
    assert refusal is not None
    assert await _balances(ln, route) == before  # simulated only: nothing moved
    assert ln.call(lambda: len(ln.server.chain.landed)) == 0  # nothing signed, nothing sent
    return refusal.reason


async def test_another_vaults_tokens_cannot_be_moved_by_this_vaults_key(localnet: Localnet, route: Route) -> None:
    # Each vault its own key: vault 0's authority is not the owner of vault 1's accounts, so
    # the token program itself refuses the theft (the simulation fails; nothing is signed).
    mm_usdc = localnet.genesis.market_maker_accounts["USDC"]
    theft = transfer_checked(route.other.token_accounts["USDC"], route.usdc.mint, mm_usdc, route.authority, 5, route.usdc.decimals)
    tx = route.transaction(await _blockhash(localnet), [*route.legs(), theft])
    with pytest.raises(TradeError, match="owner does not match"):
        await _effects(localnet, tx)


async def test_a_transfer_out_of_another_vault_is_refused(localnet: Localnet, route: Route) -> None:
    # The one way left: vault 1 once made vault 0's authority its delegate (really, on chain).
    from xorj_actors.localnet import dev_vault_authority

    other_key = dev_vault_authority(1)
    grant = approve(route.other.token_accounts["USDC"], route.authority, other_key.pubkey(), 5)
    setup = MessageV0.try_compile(other_key.pubkey(), [grant], [], await _blockhash(localnet))
    localnet.call(localnet.server.chain.submit, VersionedTransaction(setup, [other_key]), preflight=True)
    localnet.advance(2)
    localnet.call(lambda: localnet.server.chain.landed.clear())
    mm_usdc = localnet.genesis.market_maker_accounts["USDC"]
    theft = transfer_checked(route.other.token_accounts["USDC"], route.usdc.mint, mm_usdc, route.authority, 3, route.usdc.decimals)
    # Spent as a delegate, the other vault's account changes its delegated amount first.
    assert await _refused(localnet, route, [*route.legs(), theft]) is RouteRefusalReason.DELEGATE_CHANGED


async def test_an_approval_left_behind_is_refused(localnet: Localnet, route: Route) -> None:
    left = approve(route.vault.token_accounts["USDC"], STRANGER, route.authority, 1)
    assert await _refused(localnet, route, [*route.legs(), left]) is RouteRefusalReason.DELEGATE_CHANGED


async def test_set_authority_is_refused(localnet: Localnet, route: Route) -> None:
    handover = set_owner(route.vault.token_accounts["JUP"], route.authority, STRANGER)
    assert await _refused(localnet, route, [*route.legs(), handover]) is RouteRefusalReason.OWNER_CHANGED


async def test_close_account_to_a_stranger_is_refused(localnet: Localnet, route: Route) -> None:
    # An empty account of the authority's, created (really, on chain) before the route (genesis
    # made it already: the create is idempotent).
    from xorj_actors.localnet import dev_vault_authority

    key = dev_vault_authority(0)
    bonk = localnet.genesis.token("BONK").mint
    setup = MessageV0.try_compile(key.pubkey(), [create_ata(key.pubkey(), key.pubkey(), bonk)], [], await _blockhash(localnet))
    localnet.call(localnet.server.chain.submit, VersionedTransaction(setup, [key]), preflight=True)
    localnet.advance(2)
    localnet.call(lambda: localnet.server.chain.landed.clear())
    empty = get_associated_token_address(key.pubkey(), bonk)
    closing = close_account(empty, STRANGER, route.authority)
    assert await _refused(localnet, route, [*route.legs(), closing]) is RouteRefusalReason.ACCOUNT_CLOSED


async def test_sol_overspend_is_refused(localnet: Localnet, route: Route) -> None:
    drain = transfer(TransferParams(from_pubkey=route.authority, to_pubkey=STRANGER, lamports=2_000_000))
    assert await _refused(localnet, route, [*route.legs(), drain]) is RouteRefusalReason.SOL_OVERSPEND
    tx = route.transaction(await _blockhash(localnet), [*route.legs(), drain])
    allowlist = check_allowlist(resolve_message(tx.message), ProgramAllowlist.default(), RouteParties(route.authority))  # type: ignore[arg-type]
    assert allowlist is not None and allowlist.reason is RouteRefusalReason.SYSTEM_TRANSFER_NOT_ALLOWED


async def test_sol_spend_over_the_cap_is_refused_even_within_the_fee(localnet: Localnet, route: Route) -> None:
    assert await _refused(localnet, route, route.legs(), cap=1_000) is RouteRefusalReason.SOL_OVERSPEND


async def test_output_paid_elsewhere_is_refused(localnet: Localnet, route: Route) -> None:
    elsewhere = localnet.genesis.market_maker_accounts["JUP"]
    assert await _refused(localnet, route, route.legs(pay_to=elsewhere)) is RouteRefusalReason.OUTPUT_SHORT


async def test_pre_and_post_state_come_from_one_slot(localnet: Localnet, route: Route) -> None:
    localnet.advance(3)
    tx = route.transaction(await _blockhash(localnet), route.legs())
    effects = await _effects(localnet, tx)
    assert effects.slot == localnet.slot()
    usdc = route.vault.token_accounts["USDC"]
    before, after = effects.pre[usdc], effects.post[usdc]
    assert before is not None and after is not None and before.token and after.token
    assert before.token.amount - after.token.amount == Route.AMOUNT_IN


async def test_on_a_running_clock_pre_and_post_state_still_meet_at_one_slot(fast_localnet: Localnet) -> None:
    route = Route(fast_localnet)
    for _ in range(5):  # slots move every 20 ms: the reader asks again until both answers agree
        tx = route.transaction(await _blockhash(fast_localnet), route.legs())
        effects = await _effects(fast_localnet, tx)
        assert check_effects(effects.pre, effects.post, route.terms(tx)) is None
