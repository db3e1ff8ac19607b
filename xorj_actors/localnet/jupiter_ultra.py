"""The localnet's Ultra API: ``GET /ultra/v1/order`` and ``POST /ultra/v1/execute`` (Jupiter Z, RFQ).

``/order`` builds the market maker's RFQ transaction, unsigned, as mainnet's JupiterZ orders are
(tests/data/jupiter/ultra-order-jupiterz-rfq.json): the market maker pays the fee ("gasless") and
signs first, the taker signs second. Legs: the taker pays the input to the market maker, the
market maker pays the output to the taker's associated account; setup creates that account
(paid by the taker) and wraps SOL, a ``CloseAccount`` unwraps it. Compiled with the desk's warm
lookup tables. ``/execute`` checks the taker signed exactly the order's message, adds the market
maker's signature and lands it; the same bytes and ``requestId`` again answer the same outcome.
Error codes and bodies are Ultra's (``{"code", "error"}``, docs: ultra/response.mdx).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.chain import compile_v0
from xorj_actors.localnet.chain import PreflightFailure
from xorj_actors.localnet.jupiter_desk import (
    NATIVE_MINT,
    associated_account,
    close_account_ix,
    create_ata_ix,
    sync_native_ix,
    system_transfer_ix,
    transfer_ix,
)
from xorj_actors.localnet.jupiter_swap import QuoteRefused, SwapApi, parse_pubkey

__all__ = ["UltraApi", "UltraOrderState"]

#: Ultra lets a client repeat ``/execute`` for two minutes (docs: "Execute Order").
_REPEAT_S = 120.0


@dataclass(slots=True)
class UltraOrderState:
    """An order given out: its exact message and, once executed, the answer (repeated as is)."""

    request_id: str
    taker: Pubkey
    message: bytes
    in_amount: int
    out_amount: int
    input_mint: Pubkey
    output_mint: Pubkey
    expires_at: float
    answer: dict[str, Any] | None = None
    answered_at: float = field(default=0.0)


class UltraApi:
    """Orders and executions; the market maker's key signs only the message it built."""

    def __init__(self, swap: SwapApi) -> None:
        self.swap = swap
        self.desk = swap.desk
        self._orders: OrderedDict[str, UltraOrderState] = OrderedDict()
        #: Set by the route faults: compile the next order against a table that differs on chain.
        self.faults: Any = None

    def order(self, query: Any) -> dict[str, Any] | tuple[int, dict[str, Any]]:
        """Answer ``GET /ultra/v1/order?inputMint&outputMint&amount&taker``."""
        started = time.perf_counter()
        q = self.swap.price_route({k: v for k, v in query.items() if k != "swapMode"})
        if self.faults is not None and self.faults.ultra_no_route():
            return 400, {"error": "Failed to get quotes"}  # Ultra's own answer (ultra-order-failed-400.json)
        taker = parse_pubkey(query.get("taker"), "taker") if query.get("taker") is not None else None
        desk = self.desk
        desk.prepare_tables()
        request_id = str(uuid.uuid4())
        mm = desk.mm_key
        prices = self.swap.prices.prices()
        in_usd, out_usd = (
            self.swap.usd_value(q.input_mint, q.route.in_amount, prices),
            self.swap.usd_value(q.output_mint, q.route.out_amount, prices),
        )
        answer: dict[str, Any] = {
            "mode": "ultra",
            "inputMint": str(q.input_mint),
            "outputMint": str(q.output_mint),
            "inAmount": str(q.route.in_amount),
            "outAmount": str(q.route.out_amount),
            "otherAmountThreshold": str(q.route.out_amount),  # an RFQ fills at its quote
            "swapMode": "ExactIn",
            "slippageBps": 0,
            # Ultra signs a loss negative (ultra-order-jupiterz-rfq.json), the Swap API positive.
            "priceImpactPct": format((-q.route.price_impact).normalize(), "f"),
            "routePlan": [
                {
                    "swapInfo": {
                        "ammKey": str(mm),
                        "label": "JupiterZ",
                        "inputMint": str(q.input_mint),
                        "outputMint": str(q.output_mint),
                        "inAmount": str(q.route.in_amount),
                        "outAmount": str(q.route.out_amount),
                        "feeAmount": "0",
                        "feeMint": "11111111111111111111111111111111",
                    },
                    "percent": 100,
                    "bps": 10_000,
                }
            ],
            "feeBps": 0,
            "transaction": None,
            "gasless": True,
            "signatureFeeLamports": 0,
            "prioritizationFeeLamports": 0,
            "rentFeeLamports": 0,
            "requestId": request_id,
            "swapType": "rfq",
            "router": "jupiterz",
            "quoteId": str(uuid.uuid4()),
            "maker": str(mm),
            "taker": None if taker is None else str(taker),
            "expireAt": str(int(time.time() + self.swap.settings.quote_ttl_s)),
            "platformFee": {"amount": "0", "feeBps": 0},
            "inUsdValue": in_usd,
            "outUsdValue": out_usd,
            "priceImpact": float(-q.route.price_impact * 100),
            "swapUsdValue": in_usd,
            "totalTime": 0,
        }
        if taker is not None:
            message = self._message(taker, q)
            raw = to_bytes_versioned(message)
            blank = [Signature.default()] * message.header.num_required_signatures
            answer["transaction"] = base64.b64encode(bytes(VersionedTransaction.populate(message, blank))).decode()
            self._remember(
                UltraOrderState(
                    request_id, taker, raw, q.route.in_amount, q.route.out_amount, q.input_mint, q.output_mint,
                    self.swap.clock() + self.swap.settings.quote_ttl_s,
                )
            )
        answer["totalTime"] = round((time.perf_counter() - started) * 1000)
        return answer

    def _message(self, taker: Pubkey, q: Any) -> MessageV0:
        desk = self.desk
        desk.ready()
        a_in, a_out = associated_account(taker, q.input_mint), associated_account(taker, q.output_mint)
        ixs = [*self.swap.compute_budget(), create_ata_ix(taker, taker, q.output_mint)]
        if q.input_mint == NATIVE_MINT:
            ixs += [create_ata_ix(taker, taker, NATIVE_MINT), system_transfer_ix(taker, a_in, q.route.in_amount), sync_native_ix(a_in)]
        ixs.append(transfer_ix(a_in, q.input_mint, desk.mm_account(q.input_mint), taker, q.route.in_amount, desk.decimals(q.input_mint)))
        ixs.append(transfer_ix(desk.mm_account(q.output_mint), q.output_mint, a_out, desk.mm_key, q.route.out_amount, desk.decimals(q.output_mint)))
        if NATIVE_MINT in (q.input_mint, q.output_mint):
            ixs.append(close_account_ix(associated_account(taker, NATIVE_MINT), taker, taker))
        _, blockhash, _ = desk.chain.latest_blockhash("confirmed")
        tables = [t for t in (desk.tables.read(k) for k in desk.warm_tables(taker)) if t is not None]
        if self.faults is not None:
            tables = self.faults.ultra_tables(self, taker, q.output_mint, tables)
        compiled = compile_v0(desk.mm_key, ixs, tables, blockhash)
        if not hasattr(compiled, "message"):
            raise QuoteRefused("COULD_NOT_FIND_ANY_ROUTE", f"the order does not compile: {compiled}")
        return compiled.message  # type: ignore[union-attr]

    def _remember(self, order: UltraOrderState) -> None:
        now = self.swap.clock()
        while self._orders and (len(self._orders) >= self.swap.settings.max_open_quotes or self._stale(next(iter(self._orders.values())), now)):
            self._orders.popitem(last=False)
        self._orders[order.request_id] = order

    @staticmethod
    def _stale(order: UltraOrderState, now: float) -> bool:
        return order.expires_at + _REPEAT_S < now

    def execute(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /ultra/v1/execute {signedTransaction, requestId}``: (HTTP status, body).

        Route faults: ``execute_silent`` answers a gateway's 500 (no code) and lands nothing;
        ``execute_lands_silent`` lands the transaction and then answers that 500.
        """
        request_id = body.get("requestId") if isinstance(body, dict) else None
        silent = self.faults.execute_fault(request_id) if self.faults is not None and isinstance(request_id, str) else None
        if silent == "execute_silent":
            return 500, {"error": "Internal Server Error"}
        status, answer = self._execute(body)
        if silent == "execute_lands_silent":
            return 500, {"error": "Internal Server Error"}
        return status, answer

    def _execute(self, body: Any) -> tuple[int, dict[str, Any]]:
        # Codes and meanings: Jupiter's Ultra docs, "Execute Response Codes" (-4 missing request
        # id, -5 missing signed transaction, -2 invalid signed transaction, -3 invalid message
        # bytes, -1 missing cached order, -1003 not fully signed, -2000/-2003 RFQ not landed/expired).
        if not isinstance(body, dict) or not isinstance(body.get("requestId"), str) or not body["requestId"]:
            return 400, {"code": -4, "error": "Missing request ID"}
        if not isinstance(body.get("signedTransaction"), str) or not body["signedTransaction"]:
            return 400, {"code": -5, "error": "Missing signed transaction"}
        order = self._orders.get(body["requestId"])
        if order is None:
            return 400, {"code": -1, "error": "Order not found, it might have expired"}
        try:
            tx = VersionedTransaction.from_bytes(base64.b64decode(body["signedTransaction"], validate=True))
        except (binascii.Error, ValueError):
            return 400, {"code": -2, "error": "Invalid signed transaction"}
        if to_bytes_versioned(tx.message) != order.message:
            return 400, {"code": -3, "error": "Invalid message bytes: not the order's transaction"}
        if order.answer is not None:
            return 200, order.answer  # the same bytes again: the same outcome, nothing sent twice
        if order.expires_at < self.swap.clock():
            return 400, {"code": -2003, "error": "RFQ quote expired"}
        signers = list(tx.message.account_keys[: tx.message.header.num_required_signatures])
        i_taker = signers.index(order.taker)
        if not tx.signatures[i_taker].verify(order.taker, order.message):
            return 400, {"code": -1003, "error": "Transaction not fully signed: the taker's signature is missing or invalid"}
        slots = list(tx.signatures)
        slots[signers.index(self.desk.mm_key)] = self.desk.mm.sign_message(order.message)
        signed = VersionedTransaction.populate(tx.message, slots)
        chain = self.desk.chain
        try:
            # The taker's signature was checked above and the market maker's made here: when they
            # are the only ones, nothing is left to verify.
            landed = chain.land(signed, verified=len(signers) == 2)
        except PreflightFailure as exc:
            answer = {"status": "Failed", "signature": str(slots[0]), "slot": "0", "code": -2000, "error": f"RFQ failed to land: {exc}"[:300]}
            return 200, answer
        answer = {
            "status": "Success",
            "signature": str(slots[0]),
            "slot": str(landed.slot),
            "code": 0,
            "inputAmountResult": str(order.in_amount),
            "outputAmountResult": str(order.out_amount),
            "totalInputAmount": str(order.in_amount),
            "totalOutputAmount": str(order.out_amount),
            "swapEvents": [
                {
                    "inputMint": str(order.input_mint),
                    "inputAmount": str(order.in_amount),
                    "outputMint": str(order.output_mint),
                    "outputAmount": str(order.out_amount),
                }
            ],
        }
        order.answer, order.answered_at = answer, self.swap.clock()
        return 200, answer
