"""The localnet's Swap API v1 (``/swap/v1/quote``, ``/swap/v1/swap-instructions``) and Price API v3.

Shapes as Jupiter's (checked field by field against tests/data/jupiter/, and parsed by
:mod:`xorj_actors.jupiter` in tests/localnet/test_localnet_jupiter.py). The route is the desk's
(:mod:`.jupiter_desk`): setup creates the wallet's associated accounts idempotently, wraps SOL and
takes each hop's output from the wallet's escrow (signed by the wallet as the escrow's multisig
signer), ``swapInstruction`` pays the input to the market maker, ``cleanupInstruction`` unwraps
SOL; a route through the stablecoin passes the intermediate mint through the wallet's account,
net zero. Only the wallet signs. See docs/LOCALNET.md, "Jupiter's APIs on the localnet".
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from xorj_actors.localnet.jupiter_desk import (
    NATIVE_MINT,
    Desk,
    Leg,
    associated_account,
    close_account_ix,
    create_ata_ix,
    sync_native_ix,
    system_transfer_ix,
    transfer_ix,
)
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.pricing import Hop, NoRoute, PriceWalk, Route, route

__all__ = [
    "LABEL",
    "PricedQuote",
    "QuoteRefused",
    "SwapApi",
    "instruction_json",
    "parse_pubkey",
    "parse_uint",
    "route_plan",
]

_U64_MAX = 2**64 - 1
LABEL = "XORJ Localnet RFQ"
#: Fields of a ``quoteResponse`` that decide money: they must be the quote's, byte for byte.
_BINDING = ("inputMint", "inAmount", "outputMint", "outAmount", "otherAmountThreshold", "swapMode", "slippageBps")


class QuoteRefused(Exception):
    """A request the quote service refuses; ``code`` is the ``errorCode`` the client sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def instruction_json(ix: Instruction) -> dict[str, Any]:
    """An instruction as Jupiter writes it: ``{programId, accounts[{pubkey,isSigner,isWritable}], data}``."""
    return {
        "programId": str(ix.program_id),
        "accounts": [{"pubkey": str(m.pubkey), "isSigner": m.is_signer, "isWritable": m.is_writable} for m in ix.accounts],
        "data": base64.b64encode(bytes(ix.data)).decode(),
    }


def route_plan(hops: Sequence[Hop], amm_key: Pubkey, label: str = LABEL) -> list[dict[str, Any]]:
    """``routePlan``: one step per hop, all of it through the market maker (``percent`` 100)."""
    return [
        {
            "swapInfo": {
                "ammKey": str(amm_key),
                "label": label,
                "inputMint": str(hop.input.mint),
                "outputMint": str(hop.output.mint),
                "inAmount": str(hop.in_amount),
                "outAmount": str(hop.out_amount),
                "feeAmount": "0",
                "feeMint": str(hop.input.mint),
            },
            "percent": 100,
            "bps": 10_000,
        }
        for hop in hops
    ]


def parse_pubkey(value: Any, name: str) -> Pubkey:
    """``value`` as a public key; ``QuoteRefused(INVALID_REQUEST)`` naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise QuoteRefused("INVALID_REQUEST", f"{name}: expected a base58 public key")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise QuoteRefused("INVALID_REQUEST", f"{name}: not a base58 public key: {value!r:.60}") from None


def parse_uint(value: Any, name: str, low: int, high: int) -> int:
    """``value`` (a decimal string) as an integer in ``low..high``; ``QuoteRefused`` otherwise."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise QuoteRefused("INVALID_REQUEST", f"{name}: expected an integer, got {value!r:.40}")
    number = int(value)
    if not low <= number <= high:
        raise QuoteRefused("INVALID_REQUEST", f"{name}: must be between {low} and {high}, got {number}")
    return number


@dataclass(frozen=True, slots=True)
class PricedQuote:
    """A quote the service gave: the route, its real mints (SOL legs: the native mint), its answer."""

    input_mint: Pubkey
    output_mint: Pubkey
    route: Route
    #: The mint of each point of the route: input, intermediate (if any), output.
    path: tuple[Pubkey, ...]
    threshold: int
    slippage_bps: int
    response: dict[str, Any]
    expires_at: float

    def legs(self, desk: Desk) -> list[Leg]:
        """What the market maker pays the wallet per hop (intermediate first)."""
        return [Leg(self.path[i + 1], desk.decimals(self.path[i + 1]), hop.out_amount) for i, hop in enumerate(self.route.hops)]


class SwapApi:
    """Quotes and routes; state is the open quotes (at most ``max_open_quotes``, by expiry).

    ``clock`` (seconds, monotonic) decides expiry, here and in Ultra; a test may replace it.
    """

    def __init__(
        self, desk: Desk, prices: PriceWalk, settings: QuoteSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.desk = desk
        self.prices = prices
        self.settings = settings
        self.clock = clock
        self._quotes: OrderedDict[tuple[Any, ...], PricedQuote] = OrderedDict()

    # -- quote -------------------------------------------------------------------------------

    def _mint(self, query: Mapping[str, str], name: str) -> Pubkey:
        mint = parse_pubkey(query.get(name), name)
        try:
            self.desk.token(mint)
        except KeyError:
            raise QuoteRefused("TOKEN_NOT_TRADABLE", f"The token {mint} is not tradable") from None
        return mint

    def price_route(self, query: Mapping[str, str]) -> PricedQuote:
        """Price ``inputMint``/``outputMint``/``amount``/``slippageBps`` (ExactIn only, as we trade)."""
        input_mint, output_mint = self._mint(query, "inputMint"), self._mint(query, "outputMint")
        a, b = self.desk.token(input_mint), self.desk.token(output_mint)
        if a.mint == b.mint:
            raise QuoteRefused("CIRCULAR_ARBITRAGE_IS_DISABLED", "Circular arbitrage is disabled")
        amount = parse_uint(query.get("amount"), "amount", 1, _U64_MAX)
        slippage_bps = parse_uint(query.get("slippageBps", str(self.settings.default_slippage_bps)), "slippageBps", 0, 10_000)
        if query.get("swapMode", "ExactIn") != "ExactIn":
            raise QuoteRefused("NOT_SUPPORTED", "swapMode: the localnet quotes ExactIn only")
        stable = next(t for t in self.desk.genesis.tokens if t.stable)
        try:
            priced = route(a, b, stable, amount, "ExactIn", self.prices.prices())
        except NoRoute as exc:
            raise QuoteRefused("COULD_NOT_FIND_ANY_ROUTE", f"Could not find any route: {exc}") from None
        if priced.out_amount > _U64_MAX:
            raise QuoteRefused("COULD_NOT_FIND_ANY_ROUTE", "Could not find any route: amount exceeds u64")
        path = (input_mint, *(h.output.mint for h in priced.hops[:-1]), output_mint)
        # The SOL token stands in for the native mint on SOL legs: the hops name the real mints.
        hops = tuple(replace(h, input=replace(h.input, mint=path[i]), output=replace(h.output, mint=path[i + 1])) for i, h in enumerate(priced.hops))
        priced = replace(priced, hops=hops)
        threshold = priced.out_amount * (10_000 - slippage_bps) // 10_000
        return PricedQuote(input_mint, output_mint, priced, path, threshold, slippage_bps, {}, self.clock() + self.settings.quote_ttl_s)

    def quote(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Answer ``GET /swap/v1/quote`` (recorded shape: tests/data/jupiter/quote-openapi.json)."""
        started = time.perf_counter()
        q = self.price_route(query)
        self.desk.prepare_tables()  # made now, warm by the time the route is asked for (next slot)
        mm = self.desk.mm_key
        response = {
            "inputMint": str(q.input_mint),
            "inAmount": str(q.route.in_amount),
            "outputMint": str(q.output_mint),
            "outAmount": str(q.route.out_amount),
            "otherAmountThreshold": str(q.threshold),
            "swapMode": "ExactIn",
            "slippageBps": q.slippage_bps,
            "platformFee": None,
            "priceImpactPct": format(q.route.price_impact.normalize(), "f"),
            "routePlan": route_plan(q.route.hops, mm),
            "contextSlot": self.desk.chain.slot(),
            "timeTaken": round(time.perf_counter() - started, 6),
        }
        q = replace(q, response=response)
        self._remember(q)
        return response

    def _key(self, response: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(response.get(k) for k in _BINDING)

    def _remember(self, q: PricedQuote) -> None:
        now = self.clock()
        while self._quotes and (len(self._quotes) >= self.settings.max_open_quotes or next(iter(self._quotes.values())).expires_at < now):
            self._quotes.popitem(last=False)
        self._quotes[self._key(q.response)] = q

    def bound_quote(self, given: Any) -> PricedQuote:
        """The quote a ``quoteResponse`` is: refused unless its money fields are one we gave, unexpired."""
        if not isinstance(given, dict):
            raise QuoteRefused("INVALID_REQUEST", "quoteResponse: expected the object /swap/v1/quote returned")
        q = self._quotes.get(self._key(given))
        if q is None:
            raise QuoteRefused("INVALID_REQUEST", "quoteResponse: not a quote this service gave (amounts, mints or slippage differ)")
        if q.expires_at < self.clock():
            raise QuoteRefused("INVALID_REQUEST", "quoteResponse: the quote has expired, quote again")
        return q

    # -- the route ---------------------------------------------------------------------------

    def route_instructions(self, wallet: Pubkey, q: PricedQuote, *, wrap_and_unwrap: bool = True) -> dict[str, Any]:
        """Setup, swap and cleanup instructions of ``q`` for ``wallet``; funds its escrows."""
        desk = self.desk
        desk.ready()
        ata = {m: associated_account(wallet, m) for m in q.path}
        setup: list[Instruction] = []
        wrap_input = q.input_mint == NATIVE_MINT and wrap_and_unwrap
        # The input account must exist already (it holds what is sold), except wSOL, wrapped now.
        for mint in q.path[0 if wrap_input else 1 :]:
            setup.append(create_ata_ix(wallet, wallet, mint))
        if wrap_input:
            setup += [system_transfer_ix(wallet, ata[NATIVE_MINT], q.route.in_amount), sync_native_ix(ata[NATIVE_MINT])]
        legs = q.legs(desk)
        multisig = desk.multisig(wallet)
        for leg in legs[:-1]:
            # Intermediate mint: in from the escrow, straight out to the market maker, net zero;
            # an account made for it is closed again (the effect check allows no stray account).
            mint = leg.mint
            setup.append(transfer_ix(desk.escrow(wallet, mint), mint, ata[mint], multisig, leg.amount, leg.decimals, [wallet]))
            setup.append(transfer_ix(ata[mint], mint, desk.mm_account(mint), wallet, leg.amount, leg.decimals))
            if not desk.exists(ata[mint]):
                setup.append(close_account_ix(ata[mint], wallet, wallet))
        out = legs[-1]
        setup.append(transfer_ix(desk.escrow(wallet, out.mint), out.mint, ata[out.mint], multisig, out.amount, out.decimals, [wallet]))
        pay = transfer_ix(ata[q.input_mint], q.input_mint, desk.mm_account(q.input_mint), wallet, q.route.in_amount, desk.decimals(q.input_mint))
        cleanup = None
        if wrap_and_unwrap and NATIVE_MINT in (q.input_mint, q.output_mint):
            cleanup = close_account_ix(ata[NATIVE_MINT], wallet, wallet)
        desk.fund_escrows(wallet, legs)
        desk.prepare_tables(wallet)
        return {"setup": setup, "swap": pay, "cleanup": cleanup, "tables": desk.warm_tables(wallet)}

    def compute_budget(self) -> list[Instruction]:
        s = self.settings
        return [set_compute_unit_limit(s.compute_unit_limit * 4), set_compute_unit_price(s.compute_unit_price_micro_lamports)]

    def swap_instructions(self, body: Any, faults: Any = None) -> dict[str, Any]:
        """Answer ``POST /swap/v1/swap-instructions`` (recorded shape:
        tests/data/jupiter/swap-instructions-3-tables-wsol-shared.json)."""
        if not isinstance(body, dict):
            raise QuoteRefused("INVALID_REQUEST", "body: expected a JSON object")
        wallet = parse_pubkey(body.get("userPublicKey"), "userPublicKey")
        q = self.bound_quote(body.get("quoteResponse"))
        wrap = body.get("wrapAndUnwrapSol", True)
        if not isinstance(wrap, bool):
            raise QuoteRefused("INVALID_REQUEST", "wrapAndUnwrapSol: expected true or false")
        built = self.route_instructions(wallet, q, wrap_and_unwrap=wrap)
        if faults is not None:
            built = faults.apply(self, wallet, q, built)
        budget = self.compute_budget()
        s = self.settings
        _, blockhash, last_valid = self.desk.chain.latest_blockhash("confirmed")
        now = time.time()
        return {
            "tokenLedgerInstruction": None,
            "otherInstructions": [],
            "computeBudgetInstructions": [instruction_json(ix) for ix in budget],
            "setupInstructions": [instruction_json(ix) for ix in built["setup"]],
            "swapInstruction": instruction_json(built["swap"]),
            "cleanupInstruction": None if built["cleanup"] is None else instruction_json(built["cleanup"]),
            "addressLookupTableAddresses": [str(k) for k in built["tables"]],
            "prioritizationFeeLamports": s.compute_unit_limit * 4 * s.compute_unit_price_micro_lamports // 1_000_000,
            "computeUnitLimit": s.compute_unit_limit * 4,
            "prioritizationType": {"computeBudget": {"microLamports": s.compute_unit_price_micro_lamports, "estimatedMicroLamports": 0}},
            "simulationSlot": self.desk.chain.slot(),
            "dynamicSlippageReport": None,
            "simulationError": None,
            "addressesByLookupTableAddress": None,
            "blockhashWithMetadata": {
                "blockhash": list(bytes(blockhash)),
                "lastValidBlockHeight": last_valid,
                "fetchedAt": {"secs_since_epoch": int(now), "nanos_since_epoch": int(now % 1 * 1e9)},
            },
        }

    # -- prices ------------------------------------------------------------------------------

    def usd_value(self, mint: Pubkey, amount: int, prices: Mapping[str, float]) -> float:
        """``amount`` base units of ``mint`` in USD at the mid price."""
        token = self.desk.token(mint)
        return amount * prices[str(token.mint)] / 10 ** self.desk.decimals(mint)

    def price_v3(self, ids: str | None) -> dict[str, Any]:
        """Answer ``GET /price/v3?ids=...`` (recorded shape: tests/data/jupiter/price-v3-docs.json);
        unknown mints are left out, as Jupiter does."""
        mints = [m for m in (ids or "").split(",") if m]
        if not mints or len(mints) > 50:
            raise QuoteRefused("INVALID_REQUEST", "ids: expected 1 to 50 comma-separated mints")
        prices = self.prices.prices()
        slot = self.desk.chain.slot()
        answer: dict[str, Any] = {}
        for m in mints:
            try:
                token = self.desk.token(Pubkey.from_string(m))
            except (KeyError, ValueError):
                continue
            answer[m] = {
                "usdPrice": float(Decimal(repr(prices[str(token.mint)]))),
                "blockId": slot,
                "decimals": 9 if m == str(NATIVE_MINT) else token.decimals,
                "priceChange24h": 0.0,
            }
        return answer
