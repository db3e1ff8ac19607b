"""Helpers for the tests of the localnet's Jupiter APIs: requests to the quote service, a funded
wallet, the route checks of xorj_actors.execution run on a route, a client's route signed over
JSON-RPC, and balances read from the chain."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import aiohttp
from solana.rpc.async_api import AsyncClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from xorj_actors.chain import LookupTableCache, compile_v0, resolve_lookups, rpc_account_fetcher
from xorj_actors.execution import (
    EffectReader,
    EffectTerms,
    ProgramAllowlist,
    RouteParties,
    RouteRefusal,
    RouteTerms,
    SimulatedEffects,
    check_aggregator,
    check_allowlist,
    check_effects,
    fee_bound,
    resolve_message,
)
from xorj_actors.jupiter import parse_quote
from xorj_actors.localnet import Localnet
from xorj_actors.localnet.jupiter_desk import create_ata_ix, transfer_ix
from xorj_actors.programs import NATIVE_MINT

MAX_SOL_SPEND = 50_000_000


async def api_get(ln: Localnet, path: str, params: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """``GET {quote}{path}``: (status, JSON body)."""
    async with aiohttp.ClientSession() as http, http.get(ln.urls["quote"] + path, params=params, headers=headers or {}) as r:
        return r.status, await r.json()


async def api_post(ln: Localnet, path: str, body: Any) -> tuple[int, Any]:
    """``POST {quote}{path}`` with a JSON body: (status, JSON body)."""
    async with aiohttp.ClientSession() as http, http.post(ln.urls["quote"] + path, json=body) as r:
        return r.status, await r.json()


async def get_quote(ln: Localnet, sell: Pubkey | str, buy: Pubkey | str, amount: int, **more: str) -> dict[str, Any]:
    """``GET /swap/v1/quote`` for ``amount`` base units of ``sell``; asserts it is answered."""
    params = {"inputMint": str(sell), "outputMint": str(buy), "amount": str(amount), **more}
    status, body = await api_get(ln, "/swap/v1/quote", params)
    assert status == 200, body
    return body


async def signed_route(ln: Localnet, rpc: AsyncClient, wallet: Keypair, quote: dict[str, Any]) -> tuple[dict[str, Any], VersionedTransaction]:
    """A client's route for ``quote``, as a wallet does it on mainnet: ``POST
    /swap/v1/swap-instructions``, the lookup tables read over JSON-RPC, a v0 message compiled with
    them on the confirmed blockhash, signed by ``wallet``. Returns (the answer, the transaction)."""
    status, answer = await api_post(ln, "/swap/v1/swap-instructions", {"userPublicKey": str(wallet.pubkey()), "quoteResponse": quote})
    assert status == 200, answer
    keys = [Pubkey.from_string(k) for k in answer["addressLookupTableAddresses"]]
    tables = await LookupTableCache(rpc_account_fetcher(rpc, "processed")).tables(keys)
    blockhash = (await rpc.get_latest_blockhash("confirmed")).value.blockhash
    compiled = compile_v0(wallet.pubkey(), route_instructions(answer), tables, blockhash)
    assert hasattr(compiled, "message"), compiled
    return answer, sign(wallet, compiled.message)  # type: ignore[union-attr]


def funded_wallet(ln: Localnet, seed: bytes, tokens: dict[str, int], sol: int = 10 * 10**9) -> Keypair:
    """A fresh wallet with ``sol`` lamports and ``tokens`` (base units) in its associated accounts,
    paid by the market maker in a real transaction."""
    wallet = Keypair.from_seed(seed.ljust(32, b"\0")[:32])
    g = ln.genesis
    mm = g.market_maker

    def fund() -> None:
        chain = ln.server.chain
        chain.airdrop(wallet.pubkey(), sol)
        ixs = []
        for symbol, amount in tokens.items():
            t = g.token(symbol)
            ixs.append(create_ata_ix(mm.pubkey(), wallet.pubkey(), t.mint))
            ata = get_associated_token_address(wallet.pubkey(), t.mint)
            ixs.append(transfer_ix(g.market_maker_accounts[symbol], t.mint, ata, mm.pubkey(), amount, t.decimals))
        if ixs:
            blockhash = chain.latest_blockhash("processed")[1]
            chain.land(VersionedTransaction(MessageV0.try_compile(mm.pubkey(), ixs, [], blockhash), [mm]))

    ln.call(fund)
    ln.advance(1)
    return wallet


def instruction(obj: dict[str, Any]) -> Instruction:
    metas = [AccountMeta(Pubkey.from_string(a["pubkey"]), a["isSigner"], a["isWritable"]) for a in obj["accounts"]]
    return Instruction(Pubkey.from_string(obj["programId"]), base64.b64decode(obj["data"]), metas)


def route_instructions(answer: dict[str, Any]) -> list[Instruction]:
    """computeBudget + setup + swap + cleanup + other, as Jupiter's examples assemble them."""
    parts = [*answer["computeBudgetInstructions"], *answer["setupInstructions"], answer["swapInstruction"]]
    if answer.get("cleanupInstruction"):
        parts.append(answer["cleanupInstruction"])
    return [instruction(p) for p in [*parts, *answer.get("otherInstructions", [])]]


def tables(ln: Localnet, keys: list[str]) -> dict[Pubkey, Any]:
    def read() -> dict[Pubkey, Any]:
        return {Pubkey.from_string(k): ln.server.tables.read(Pubkey.from_string(k)) for k in keys}

    return ln.call(read)


def unsigned(message: MessageV0) -> VersionedTransaction:
    return VersionedTransaction.populate(message, [Signature.default()] * message.header.num_required_signatures)


@dataclass
class Checked:
    tx: VersionedTransaction
    refusal: RouteRefusal | None
    stage: str


def holdings(wallet: Pubkey, mints: list[Pubkey]) -> frozenset[Pubkey]:
    return frozenset(get_associated_token_address(wallet, m) for m in {*mints, NATIVE_MINT})


async def check_route(ln: Localnet, wallet: Pubkey, message: MessageV0, quote: dict[str, Any], *, mints: list[Pubkey], aggregator_terms: bool = True) -> Checked:
    """Allowlist, aggregator decoding, then the simulated effects, as the executor will: the first refusal."""
    tx = unsigned(message)
    loaded = resolve_lookups(message, tables(ln, [str(lk.account_key) for lk in message.address_table_lookups]))
    resolved = resolve_message(message, loaded)
    assert not isinstance(resolved, RouteRefusal), resolved
    parties = RouteParties(wallet)
    allowlist = ProgramAllowlist.default()
    refusal = check_allowlist(resolved, allowlist, parties)
    if refusal is not None:
        return Checked(tx, refusal, "allowlist")
    in_mint, out_mint = Pubkey.from_string(quote["inputMint"]), Pubkey.from_string(quote["outputMint"])
    terms = RouteTerms.from_terms(
        parse_quote(quote),
        authority=wallet,
        source=get_associated_token_address(wallet, in_mint),
        destination=get_associated_token_address(wallet, out_mint),
        max_slippage_bps=500,
    )
    refusal, _ = check_aggregator(resolved, allowlist.aggregators, terms)
    if refusal is not None:
        return Checked(tx, refusal, "decode")
    async with aiohttp.ClientSession() as session:
        effects = await EffectReader(ln.urls["rpc"], session, commitment="processed").read(tx, resolved.writable_keys)
    if isinstance(effects, RouteRefusal):
        return Checked(tx, effects, "effects")
    assert isinstance(effects, SimulatedEffects)
    effect_terms = EffectTerms(
        parties=parties,
        input_mint=in_mint,
        output_mint=out_mint,
        amount_in=int(quote["inAmount"]),
        min_out=int(quote["otherAmountThreshold"]),
        holdings=holdings(wallet, mints),
        fee_lamports=fee_bound(resolved),
        tip_lamports=0,
        max_sol_spend=MAX_SOL_SPEND,
    )
    return Checked(tx, check_effects(effects.pre, effects.post, effect_terms), "effects")


def compile_route(ln: Localnet, wallet: Pubkey, answer: dict[str, Any]) -> MessageV0:
    keys = answer["addressLookupTableAddresses"]
    blockhash = ln.call(lambda: ln.server.chain.latest_blockhash("processed")[1])
    compiled = compile_v0(wallet, route_instructions(answer), [t for t in tables(ln, keys).values() if t], blockhash)
    assert hasattr(compiled, "message"), compiled
    return compiled.message  # type: ignore[union-attr]


def sign(wallet: Keypair, message: MessageV0) -> VersionedTransaction:
    raw = to_bytes_versioned(message)
    signers = message.account_keys[: message.header.num_required_signatures]
    return VersionedTransaction.populate(message, [wallet.sign_message(raw) if k == wallet.pubkey() else Signature.default() for k in signers])


def balances(ln: Localnet, wallet: Pubkey, mints: list[Pubkey]) -> dict[str, int]:
    def read() -> dict[str, int]:
        svm = ln.server.chain.svm
        out = {"lamports": svm.get_balance(wallet) or 0}
        for m in mints:
            account = svm.get_account(get_associated_token_address(wallet, m))
            out[str(m)] = 0 if account is None or account.lamports == 0 else int.from_bytes(bytes(account.data)[64:72], "little")
        return out

    return ln.call(read)
