"""The localnet's quote service: Jupiter's swap API in shape, a co-signing RFQ market maker behind it.

``GET /quote``, ``POST /swap-instructions``, ``POST /swap`` and ``GET /price`` answer as the real
aggregator does (amounts as strings, errors as ``{"error", "errorCode"}`` with status 400). The
swap itself is modelled on Jupiter Z (RFQ): an atomic two-leg transfer in which the vault pays the
market maker the input mint (``swapInstruction``, signed by the vault authority) and the market
maker pays the vault the output mint (``cleanupInstruction``, signed by the market maker).

The market maker signs a message only while its quote is valid, only if the message holds exactly
the quoted legs, and only one message per quote: ``POST /swap`` returns a transaction it already
signed, ``POST /rfq/sign`` co-signs a message the client assembled from ``/swap-instructions``.
See docs/LOCALNET.md, "Quote service and quantitative engine".
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, from_bytes_versioned, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.localnet.chain import Commitment
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID, Genesis, TokenSpec, VaultSpec
from xorj_actors.localnet.jupiter_app import register_jupiter_apis
from xorj_actors.localnet.jupiter_swap import instruction_json, parse_pubkey, parse_uint, route_plan
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.pricing import NoRoute, PriceWalk, route
from xorj_actors.localnet.quote_book import QuoteBook, QuoteRefused, OpenQuote
from xorj_actors.programs import COMPUTE_BUDGET_PROGRAM_ID, MEMO_PROGRAM_IDS

__all__ = [
    "QUOTE_SERVICE",
    "QuoteChain",
    "QuoteBook",
    "QuoteRefused",
    "QuoteService",
    "create_quote_app",
    "transfer_checked_ix",
]

log = logging.getLogger(__name__)

_U64_MAX = 2**64 - 1
_TRANSFER_CHECKED = bytes((12,))  # the SPL Token instruction index
#: Programs a co-signed message may call besides the two legs (they move no tokens).
_HARMLESS_PROGRAMS = frozenset({COMPUTE_BUDGET_PROGRAM_ID, *MEMO_PROGRAM_IDS})
#: Fields of a client's ``quoteResponse`` that must equal the quote the service gave.
_BINDING_FIELDS = (
    "inputMint",
    "inAmount",
    "outputMint",
    "outAmount",
    "otherAmountThreshold",
    "swapMode",
    "slippageBps",
)


class QuoteChain(Protocol):
    """What the quote service reads from the chain (``localnet.chain.Chain`` fits), from its thread."""

    def slot(self) -> int:
        """The current slot (``contextSlot`` of every quote)."""
        ...

    def latest_blockhash(self, commitment: Commitment) -> tuple[int, Hash, int]:
        """``(context slot, blockhash, lastValidBlockHeight)`` (for ``POST /swap``)."""
        ...


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message, "errorCode": code}, status=status)


def transfer_checked_ix(
    token: TokenSpec, source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int
) -> Instruction:
    """SPL Token ``TransferChecked``, exactly as ``spl.token.instructions.transfer_checked`` builds it.

    Built by hand because spl's builder (construct) costs ~150 us, most of a quote's time.
    """
    data = _TRANSFER_CHECKED + amount.to_bytes(8, "little") + bytes((token.decimals,))
    metas = [
        AccountMeta(source, False, True),
        AccountMeta(token.mint, False, False),
        AccountMeta(dest, False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(TOKEN_PROGRAM_ID, data, metas)


def _shape(ix: Instruction) -> tuple[Pubkey, bytes, tuple[Pubkey, ...]]:
    # Signer and writable flags follow from the message header; what must match is who and how much.
    return ix.program_id, bytes(ix.data), tuple(m.pubkey for m in ix.accounts)


class QuoteService:
    """The state behind the quote app; reach it in-process as ``app[QUOTE_SERVICE]``.

    Attributes:
        prices: the seeded price walks (``set_volatility_spike``, ``advance``).
        book: the open quotes.
    """

    def __init__(self, genesis: Genesis, chain: QuoteChain, settings: QuoteSettings) -> None:
        self.genesis = genesis
        self.chain = chain
        self.settings = settings
        self.prices = PriceWalk(
            genesis.tokens, settings.seed, settings.step_s, settings.manual_clock, settings.spike_multiplier
        )
        self.book = QuoteBook(settings.quote_ttl_s, settings.max_open_quotes)
        self._mm = genesis.market_maker
        self._mm_key = genesis.market_maker.pubkey()  # Keypair.pubkey() derives it anew each call
        self._mm_accounts = frozenset(genesis.market_maker_accounts.values())
        self._vaults = {v.vault_id: v for v in genesis.vaults}
        # Each vault has its own authority: the wallet (userPublicKey) names the vault.
        self._by_authority = {v.authority: v for v in genesis.vaults}
        self._vault_of_account = {a: v.vault_id for v in genesis.vaults for a in v.token_accounts.values()}

    # -- pricing ---------------------------------------------------------------------------

    def _token(self, query: Mapping[str, str], name: str) -> TokenSpec:
        mint = parse_pubkey(query.get(name), name)
        try:
            return self.genesis.token(mint)
        except KeyError:
            raise QuoteRefused("TOKEN_NOT_TRADABLE", f"The token {mint} is not tradable") from None

    def quote(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Answer ``GET /quote`` for these query parameters."""
        started = time.perf_counter()
        input_token = self._token(query, "inputMint")
        output_token = self._token(query, "outputMint")
        if input_token.mint == output_token.mint:
            raise QuoteRefused("CIRCULAR_ARBITRAGE_IS_DISABLED", "Circular arbitrage is disabled")
        amount = parse_uint(query.get("amount"), "amount", 1, _U64_MAX)
        slippage = query.get("slippageBps", str(self.settings.default_slippage_bps))
        slippage_bps = parse_uint(slippage, "slippageBps", 0, 10_000)
        mode = query.get("swapMode", "ExactIn")
        if mode not in ("ExactIn", "ExactOut"):
            raise QuoteRefused("INVALID_REQUEST", f"swapMode: must be ExactIn or ExactOut, got {mode!r}")
        try:
            priced = route(input_token, output_token, self.genesis.stable, amount, mode, self.prices.prices())
        except NoRoute as exc:
            raise QuoteRefused("COULD_NOT_FIND_ANY_ROUTE", f"Could not find any route: {exc}") from None
        if max(priced.in_amount, priced.out_amount) > _U64_MAX:
            raise QuoteRefused("COULD_NOT_FIND_ANY_ROUTE", "Could not find any route: amount exceeds u64")
        if mode == "ExactIn":
            threshold = priced.out_amount * (10_000 - slippage_bps) // 10_000
        else:
            threshold = -(-priced.in_amount * (10_000 + slippage_bps) // 10_000)
        quote = self.book.open(input_token, output_token, priced.in_amount, priced.out_amount)
        quote.response = {
            "inputMint": str(input_token.mint),
            "inAmount": str(priced.in_amount),
            "outputMint": str(output_token.mint),
            "outAmount": str(priced.out_amount),
            "otherAmountThreshold": str(threshold),
            "swapMode": mode,
            "slippageBps": slippage_bps,
            "platformFee": None,
            "priceImpactPct": format(priced.price_impact.normalize(), "f"),
            "routePlan": route_plan(priced.hops, self._mm_key),
            "contextSlot": self.chain.slot(),
            "quoteId": quote.id,
            "expiresAtMs": int(quote.expires_at * 1000),
            "timeTaken": time.perf_counter() - started,
        }
        return quote.response

    def price(self, ids: str | None) -> dict[str, Any]:
        """Answer ``GET /price?ids=...`` (Jupiter's price API v2 shape, USD mid prices)."""
        started = time.perf_counter()
        mints = [m for m in (ids or "").split(",") if m]
        if not mints:
            raise QuoteRefused("INVALID_REQUEST", "ids: expected a comma-separated list of mints")
        prices = self.prices.prices()
        # Decimal notation, never an exponent, as Jupiter writes prices.
        data = {
            m: {"id": m, "type": "derivedPrice", "price": format(Decimal(repr(prices[m])), "f")}
            if m in prices
            else None
            for m in mints
        }
        return {"data": data, "timeTaken": time.perf_counter() - started}

    # -- the two legs ----------------------------------------------------------------------

    def _bound_quote(self, body: Any) -> tuple[OpenQuote, VaultSpec]:
        if not isinstance(body, dict):
            raise QuoteRefused("INVALID_REQUEST", "body: expected a JSON object")
        user = parse_pubkey(body.get("userPublicKey"), "userPublicKey")
        given = body.get("quoteResponse")
        if not isinstance(given, dict):
            raise QuoteRefused("INVALID_REQUEST", "quoteResponse: expected the object /quote returned")
        quote = self.book.get(given.get("quoteId"))
        for key in _BINDING_FIELDS:
            if given.get(key) != quote.response[key]:
                raise QuoteRefused("INVALID_REQUEST", f"quoteResponse.{key}: does not match quote {quote.id}")
        vault = self._by_authority.get(user)
        if vault is None:
            raise QuoteRefused("INVALID_REQUEST", f"userPublicKey: {user} is no vault's authority")
        return quote, vault

    def legs(self, quote: OpenQuote, vault: VaultSpec) -> tuple[Instruction, Instruction]:
        """The vault's leg (vault pays the market maker) and the market maker's leg (it pays the vault)."""
        mm = self.genesis.market_maker_accounts
        pay = transfer_checked_ix(
            quote.input,
            vault.token_accounts[quote.input.symbol],
            mm[quote.input.symbol],
            vault.authority,
            quote.in_amount,
        )
        settle = transfer_checked_ix(
            quote.output,
            mm[quote.output.symbol],
            vault.token_accounts[quote.output.symbol],
            self._mm_key,
            quote.out_amount,
        )
        return pay, settle

    def _compute_budget(self) -> list[Instruction]:
        return [
            set_compute_unit_limit(self.settings.compute_unit_limit),
            set_compute_unit_price(self.settings.compute_unit_price_micro_lamports),
        ]

    def _prioritization_fee(self) -> int:
        s = self.settings
        return s.compute_unit_limit * s.compute_unit_price_micro_lamports // 1_000_000

    def swap_instructions(self, body: Any) -> dict[str, Any]:
        """Answer ``POST /swap-instructions``."""
        quote, vault = self._bound_quote(body)
        pay, settle = self.legs(quote, vault)
        return {
            "tokenLedgerInstruction": None,
            "computeBudgetInstructions": [instruction_json(ix) for ix in self._compute_budget()],
            "setupInstructions": [],
            "swapInstruction": instruction_json(pay),
            "cleanupInstruction": instruction_json(settle),
            "otherInstructions": [],
            "addressLookupTableAddresses": [],
            "prioritizationFeeLamports": self._prioritization_fee(),
            "computeUnitLimit": self.settings.compute_unit_limit,
            "quoteId": quote.id,
            "expiresAtMs": int(quote.expires_at * 1000),
        }

    def swap(self, body: Any) -> dict[str, Any]:
        """Answer ``POST /swap``: a v0 transaction signed by the market maker, the user's slot empty."""
        quote, vault = self._bound_quote(body)
        # A finalized blockhash: older than the newest, but never one a slot is still producing.
        _, blockhash, last_valid = self.chain.latest_blockhash("finalized")
        message = MessageV0.try_compile(
            vault.authority, [*self._compute_budget(), *self.legs(quote, vault)], [], blockhash
        )
        signature = self._sign(quote, to_bytes_versioned(message))
        signers = message.account_keys[: message.header.num_required_signatures]
        mm = self._mm_key
        slots = [signature if k == mm else Signature.default() for k in signers]
        tx = VersionedTransaction.populate(message, slots)
        return {
            "swapTransaction": base64.b64encode(bytes(tx)).decode(),
            "lastValidBlockHeight": last_valid,
            "prioritizationFeeLamports": self._prioritization_fee(),
            "quoteId": quote.id,
        }

    def _sign(self, quote: OpenQuote, raw: bytes) -> Signature:
        self.book.claim(quote, raw)
        return self._mm.sign_message(raw)

    # -- co-signing ------------------------------------------------------------------------

    def rfq_sign(self, body: Any) -> dict[str, Any]:
        """Answer ``POST /rfq/sign {quoteId, message}``: the market maker's signature, or a refusal."""
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            raise QuoteRefused("INVALID_REQUEST", "body: expected {quoteId, message (base64)}")
        try:
            raw = base64.b64decode(body["message"], validate=True)
            message = from_bytes_versioned(raw)
        except (binascii.Error, ValueError) as exc:
            raise QuoteRefused("INVALID_REQUEST", f"message: not a base64 Solana message: {exc}") from None
        quote = self.book.get(body.get("quoteId"))
        if to_bytes_versioned(message) != raw:
            raise QuoteRefused("RFQ_REJECTED", "message: not in canonical form")
        reason = self._check_message(quote, message)
        if reason:
            log.info("market maker refused quote %s: %s", quote.id, reason)
            raise QuoteRefused("RFQ_REJECTED", reason)
        return {"signature": str(self._sign(quote, raw)), "publicKey": str(self._mm_key)}

    def _check_message(self, quote: OpenQuote, message: Any) -> str | None:
        mm = self._mm_key
        keys = list(message.account_keys)
        if getattr(message, "address_table_lookups", None):
            return "address lookup tables are not accepted"
        if keys and keys[0] == mm:
            return "the market maker does not pay fees"
        if mm not in keys[: message.header.num_required_signatures]:
            return "the message does not need the market maker's signature"
        instructions = []
        for compiled in message.instructions:
            try:
                program = keys[compiled.program_id_index]
                accounts = tuple(keys[i] for i in bytes(compiled.accounts))
            except IndexError:
                return "an instruction names an account the message does not hold"
            instructions.append((program, bytes(compiled.data), accounts))
        vault_of = self._vault_of_account
        touched = {vault_of[a] for _, _, accounts in instructions for a in accounts if a in vault_of}
        if len(touched) != 1:
            return f"the message must touch exactly one vault, it touches {len(touched)}"
        expected = [_shape(ix) for ix in self.legs(quote, self._vaults[touched.pop()])]
        ours = {mm, *self._mm_accounts}
        for ix in instructions:
            if ix in expected:
                expected.remove(ix)
            elif ix[0] not in _HARMLESS_PROGRAMS:
                return f"unexpected instruction for program {ix[0]}: not one of the quoted legs"
            elif ours.intersection(ix[2]):
                return f"an instruction for program {ix[0]} uses the market maker's accounts"
        if expected:
            return "the message does not hold exactly the quoted legs (accounts, mints or amounts differ)"
        return None


#: The :class:`QuoteService` of a quote app, for in-process control.
QUOTE_SERVICE = web.AppKey("quote_service", QuoteService)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise QuoteRefused("INVALID_REQUEST", "body: not valid JSON") from None


def _handler(answer: Callable[[QuoteService, web.Request, Any], Any], json_body: bool) -> Callable:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await _json_body(request) if json_body else None
            return web.json_response(answer(request.app[QUOTE_SERVICE], request, body))
        except QuoteRefused as exc:
            return _error(exc.code, str(exc))

    return handle


def _admin_spike(service: QuoteService, request: web.Request, body: Any) -> dict[str, Any]:
    on = body.get("on") if isinstance(body, dict) else None
    if not isinstance(on, bool):
        raise QuoteRefused("INVALID_REQUEST", "on: expected true or false")
    service.prices.set_volatility_spike(on)
    return {"spike": service.prices.spike, "multiplier": service.settings.spike_multiplier}


def _admin_advance(service: QuoteService, request: web.Request, body: Any) -> dict[str, Any]:
    steps = body.get("steps", 1) if isinstance(body, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 1_000_000:
        raise QuoteRefused("INVALID_REQUEST", "steps: expected an integer between 0 and 1000000")
    return {"step": service.prices.advance(steps)}


def create_quote_app(genesis: Genesis, chain: QuoteChain, settings: QuoteSettings) -> web.Application:
    """The quote service as an aiohttp application (mount it on a loopback port)."""
    app = web.Application()
    app[QUOTE_SERVICE] = QuoteService(genesis, chain, settings)
    app.router.add_get("/quote", _handler(lambda s, r, _: s.quote(r.query), False))
    app.router.add_get("/price", _handler(lambda s, r, _: s.price(r.query.get("ids")), False))
    app.router.add_post("/swap-instructions", _handler(lambda s, _, b: s.swap_instructions(b), True))
    app.router.add_post("/swap", _handler(lambda s, _, b: s.swap(b), True))
    app.router.add_post("/rfq/sign", _handler(lambda s, _, b: s.rfq_sign(b), True))
    app.router.add_post("/admin/volatility-spike", _handler(_admin_spike, True))
    app.router.add_post("/admin/advance", _handler(_admin_advance, True))
    register_jupiter_apis(app, genesis, chain, app[QUOTE_SERVICE].prices, settings)
    return app
