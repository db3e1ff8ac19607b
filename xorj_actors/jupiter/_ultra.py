"""Ultra: ``GET /ultra/v1/order`` and ``POST /ultra/v1/execute``, typed.

Fields as in jup-ag/docs ``openapi-spec/ultra/ultra.yaml`` and ``ultra/response.mdx``. The order
carries an unsigned v0 ``transaction`` (base64) and a ``requestId``; ``/execute`` takes both back
(signed) and answers with a ``status``, a ``code`` and the amounts that resulted. Strict: mints,
amounts, threshold, ``slippageBps``, ``feeBps``, ``platformFee``, ``priceImpactPct``, swap mode,
the transaction, ``requestId``; on execute the code, status, signature, slot and amounts.
Tolerated: USD values, fee payers, ``router``/``swapType``, ``taker`` (the one we asked for is
checked against the transaction's signers instead), new fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.jupiter import _fields as f
from xorj_actors.jupiter._errors import ORDER_CODES, JupiterApi, MalformedAnswer, Refusal, RefusalReason, trim
from xorj_actors.jupiter._quote import Terms, parse_terms

__all__ = [
    "ExecuteOutcome",
    "ExecuteStatus",
    "SwapEvent",
    "UltraExecution",
    "UltraOrder",
    "execute_outcome",
    "parse_execution",
    "parse_order",
]


@dataclass(frozen=True, slots=True)
class UltraOrder(Terms):
    """An Ultra order. ``transaction`` is ``None`` when the API built none (``error`` says why)."""

    request_id: str
    #: Ultra's fee (its default or the integrator's) in basis points.
    fee_bps: int
    transaction: VersionedTransaction | None
    error: Refusal | None
    #: ``metis``, ``jupiterz`` (RFQ), ``dflow``, ``okx``..., as the API names it.
    router: str | None
    #: The RFQ market maker, when the route is one.
    maker: Pubkey | None
    gasless: bool | None
    #: Unix seconds after which an RFQ quote is void, when given.
    expire_at: int | None
    signature_fee_lamports: int | None
    prioritization_fee_lamports: int | None
    rent_fee_lamports: int | None


def _transaction(obj: Mapping[str, Any], taker: Pubkey | None) -> VersionedTransaction | None:
    value = obj.get("transaction")
    if value is None or value == "":
        return None
    raw = f.base64_bytes(obj, "transaction")
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise MalformedAnswer("transaction", f"not a versioned transaction: {exc}") from None
    if taker is not None:
        message = tx.message
        signers = message.account_keys[: message.header.num_required_signatures]
        if taker not in signers:
            raise MalformedAnswer("transaction", f"the taker {taker} is not among its signers")
    return tx


def _order_error(obj: Mapping[str, Any]) -> Refusal | None:
    code = f.opt_int(obj, "errorCode")
    if code is None:
        return None
    message = obj.get("errorMessage")
    reason = ORDER_CODES.get(code, RefusalReason.SERVER_ERROR)
    return Refusal(JupiterApi.ORDER, reason, str(code), trim(message) if isinstance(message, str) else "")


def parse_order(answer: Any, *, taker: Pubkey | None = None) -> UltraOrder:
    """An order from a parsed ``/ultra/v1/order`` body.

    Args:
        answer: the body.
        taker: the taker we asked for; when given, it must sign the transaction.

    Raises:
        MalformedAnswer: a strict field is wrong, or the transaction does not need our signature.
    """
    obj = f.mapping(answer, "order")
    request_id = obj.get("requestId")
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 200:
        raise MalformedAnswer("requestId", f"expected a non-empty string, got {request_id!r:.40}")
    terms = parse_terms(obj)
    transaction = _transaction(obj, taker)
    error = _order_error(obj)
    if transaction is None and error is None and taker is not None:
        error = Refusal(JupiterApi.ORDER, RefusalReason.SERVER_ERROR, "", "no transaction and no errorCode")
    gasless = obj.get("gasless")
    return UltraOrder(
        **terms,
        request_id=request_id,
        fee_bps=f.bps(obj, "feeBps"),
        transaction=transaction,
        error=error if transaction is None else None,
        router=f.opt_str(obj, "router"),
        maker=f.opt_pubkey(obj, "maker"),
        gasless=gasless if isinstance(gasless, bool) else None,
        expire_at=f.opt_int(obj, "expireAt"),
        signature_fee_lamports=f.opt_int(obj, "signatureFeeLamports"),
        prioritization_fee_lamports=f.opt_int(obj, "prioritizationFeeLamports"),
        rent_fee_lamports=f.opt_int(obj, "rentFeeLamports"),
    )


class ExecuteStatus(enum.StrEnum):
    """``/execute``'s ``status``."""

    SUCCESS = "Success"
    FAILED = "Failed"


class ExecuteOutcome(enum.StrEnum):
    """What an ``/execute`` answer means for the trade (ultra/response.mdx, "Execute Response Codes")."""

    #: Code 0: landed; the amounts are the result.
    LANDED = "landed"
    #: Landed and failed in a program (positive code, e.g. 6001 slippage): fees were paid.
    FAILED_ON_CHAIN = "failed_on_chain"
    #: Jupiter says it did not land (-1000, -1004, -1005 expired, -2000): it is still only
    #: Jupiter's word; re-sign only after the blockhash expired.
    NOT_LANDED = "not_landed"
    #: The order is gone (-1 missing cached order, -2003 RFQ quote expired): order again.
    ORDER_EXPIRED = "order_expired"
    #: The RFQ maker or the wallet was refused (-2004, -1007).
    REJECTED = "rejected"
    #: Our request was wrong (-2..-5, -1002, -1003, -2002): a bug, never retried as is.
    INVALID_REQUEST = "invalid_request"
    #: Anything else (-1001, -1006 timed out, -2001, -2005, unknown codes): watch the signature.
    UNKNOWN = "unknown"


_OUTCOMES: Mapping[int, ExecuteOutcome] = {
    0: ExecuteOutcome.LANDED,
    -1: ExecuteOutcome.ORDER_EXPIRED,
    -2: ExecuteOutcome.INVALID_REQUEST,
    -3: ExecuteOutcome.INVALID_REQUEST,
    -4: ExecuteOutcome.INVALID_REQUEST,
    -5: ExecuteOutcome.INVALID_REQUEST,
    -1000: ExecuteOutcome.NOT_LANDED,
    -1001: ExecuteOutcome.UNKNOWN,
    -1002: ExecuteOutcome.INVALID_REQUEST,
    -1003: ExecuteOutcome.INVALID_REQUEST,
    -1004: ExecuteOutcome.NOT_LANDED,
    -1005: ExecuteOutcome.NOT_LANDED,
    -1006: ExecuteOutcome.UNKNOWN,  # timed out: it may still land within its blockhash
    -1007: ExecuteOutcome.REJECTED,
    -2000: ExecuteOutcome.NOT_LANDED,
    -2001: ExecuteOutcome.UNKNOWN,
    -2002: ExecuteOutcome.INVALID_REQUEST,
    -2003: ExecuteOutcome.ORDER_EXPIRED,
    -2004: ExecuteOutcome.REJECTED,
    -2005: ExecuteOutcome.UNKNOWN,
}


def execute_outcome(code: int, status: ExecuteStatus | None) -> ExecuteOutcome:
    """The outcome an ``/execute`` code means; a positive code is a program's error on chain."""
    if code == 0:
        return ExecuteOutcome.LANDED if status is not ExecuteStatus.FAILED else ExecuteOutcome.UNKNOWN
    if code > 0:
        return ExecuteOutcome.FAILED_ON_CHAIN
    return _OUTCOMES.get(code, ExecuteOutcome.UNKNOWN)


@dataclass(frozen=True, slots=True)
class SwapEvent:
    """One swap the landed transaction made."""

    input_mint: Pubkey
    input_amount: int
    output_mint: Pubkey
    output_amount: int


@dataclass(frozen=True, slots=True)
class UltraExecution:
    """An ``/execute`` answer."""

    code: int
    outcome: ExecuteOutcome
    status: ExecuteStatus | None
    signature: Signature | None
    #: The slot it landed in; ``None`` for ``"0"`` (not landed) or when absent.
    slot: int | None
    input_amount_result: int | None
    output_amount_result: int | None
    total_input_amount: int | None
    total_output_amount: int | None
    swap_events: tuple[SwapEvent, ...]
    error: str | None


def _signature(obj: Mapping[str, Any]) -> Signature | None:
    value = obj.get("signature")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedAnswer("signature", f"expected a base58 signature, got {value!r:.40}")
    try:
        signature = Signature.from_string(value)
    except ValueError:
        raise MalformedAnswer("signature", f"not a base58 signature: {value!r:.100}") from None
    return signature


def _slot(obj: Mapping[str, Any]) -> int | None:
    if obj.get("slot") is None:
        return None
    slot = f.opt_int(obj, "slot")
    if slot is None:
        raise MalformedAnswer("slot", f"expected a slot number, got {obj.get('slot')!r:.40}")
    return slot or None


def parse_execution(answer: Any) -> UltraExecution:
    """An execution from a parsed ``/ultra/v1/execute`` body (HTTP 200, or 400/500 with a ``code``)."""
    obj = f.mapping(answer, "execute")
    code = obj.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise MalformedAnswer("code", f"expected an integer, got {code!r:.40}")
    status: ExecuteStatus | None = None
    if obj.get("status") is not None:
        try:
            status = ExecuteStatus(obj["status"])
        except ValueError:
            raise MalformedAnswer("status", f"expected Success or Failed, got {obj['status']!r:.40}") from None
    signature = _signature(obj)
    if status is ExecuteStatus.SUCCESS and (code != 0 or signature is None):
        raise MalformedAnswer("status", f"Success with code {code} and signature {signature}")
    events = []
    for i, raw in enumerate(f.seq(obj, "swapEvents", required=False)):
        prefix = f"swapEvents[{i}]"
        event = f.mapping(raw, prefix)
        events.append(
            SwapEvent(
                input_mint=f.pubkey(event, "inputMint", prefix),
                input_amount=f.amount(event, "inputAmount", prefix),
                output_mint=f.pubkey(event, "outputMint", prefix),
                output_amount=f.amount(event, "outputAmount", prefix),
            )
        )
    error = obj.get("error")
    return UltraExecution(
        code=code,
        outcome=execute_outcome(code, status),
        status=status,
        signature=signature,
        slot=_slot(obj),
        input_amount_result=f.opt_amount(obj, "inputAmountResult"),
        output_amount_result=f.opt_amount(obj, "outputAmountResult"),
        total_input_amount=f.opt_amount(obj, "totalInputAmount"),
        total_output_amount=f.opt_amount(obj, "totalOutputAmount"),
        swap_events=tuple(events),
        error=trim(error) if isinstance(error, str) else None,
    )
