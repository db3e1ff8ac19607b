"""From a quote to a versioned transaction: compute budget, the aggregator's legs, a memo."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from xorj_actors.execution._errors import ErrorClass, TradeError

__all__ = [
    "SwapPlan",
    "build_message",
    "check_quote_basics",
    "check_vault_legs",
    "message_bytes",
    "parse_instruction",
    "priority_fee",
    "signed_transaction",
    "swap_plan",
    "unsigned_transaction",
]

#: Fields of ``/swap-instructions`` holding instructions the transaction carries, in order.
_LEG_FIELDS = ("setupInstructions", "swapInstruction", "cleanupInstruction", "otherInstructions")


def _bad(why: str) -> TradeError:
    # An answer that makes no sense is not retried: something upstream is wrong.
    return TradeError(ErrorClass.UNKNOWN, f"quote service answer makes no sense: {why}")


def parse_instruction(obj: Any) -> Instruction:
    """One instruction in Jupiter's JSON shape; a malformed one raises :class:`TradeError`."""
    if not isinstance(obj, Mapping):
        raise _bad(f"instruction is {type(obj).__name__}, not an object")
    try:
        program = Pubkey.from_string(obj["programId"])
        data = base64.b64decode(obj["data"], validate=True)
        metas = [
            AccountMeta(Pubkey.from_string(a["pubkey"]), bool(a["isSigner"]), bool(a["isWritable"]))
            for a in obj["accounts"]
        ]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise _bad(f"malformed instruction: {exc!r}") from None
    return Instruction(program, data, metas)


@dataclass(frozen=True, slots=True)
class SwapPlan:
    """The aggregator's part of a swap transaction, checked."""

    quote_id: str
    legs: tuple[Instruction, ...]


def _amount(quote: Mapping[str, Any], key: str) -> int:
    try:
        value = int(quote[key])
    except (KeyError, TypeError, ValueError):
        raise _bad(f"{key} is missing or not an integer") from None
    if value < 0:
        raise _bad(f"{key} is negative")
    return value


def check_quote_basics(
    quote: Any, *, input_mint: str, output_mint: str, amount_in: int, slippage_bps: int
) -> tuple[int, int, float]:
    """The quote is for this trade, and within ``slippage_bps``; returns (in, out, impact_bps).

    The aggregator does not enforce ``otherAmountThreshold`` for us: it is checked here against
    our own limit, as is the reported price impact.
    """
    if not isinstance(quote, Mapping):
        raise _bad("quote is not an object")
    if quote.get("inputMint") != input_mint or quote.get("outputMint") != output_mint:
        raise _bad("quote is for other mints")
    if quote.get("swapMode", "ExactIn") != "ExactIn":
        raise _bad("quote is not ExactIn")
    in_amount, out_amount = _amount(quote, "inAmount"), _amount(quote, "outAmount")
    min_out = _amount(quote, "otherAmountThreshold")
    if in_amount != amount_in:
        raise _bad(f"quote is for {in_amount}, the trade is for {amount_in}")
    if out_amount == 0:
        raise TradeError(ErrorClass.NO_ROUTE, "quote buys nothing")
    try:
        impact = float(quote.get("priceImpactPct", "0"))
    except (TypeError, ValueError):
        raise _bad("priceImpactPct is not a number") from None
    if not math.isfinite(impact) or impact < 0:
        raise _bad(f"priceImpactPct {impact!r}")
    impact_bps = impact * 10_000
    if impact_bps > slippage_bps:
        raise TradeError(
            ErrorClass.SLIPPAGE, f"price impact {impact_bps:.1f} bps exceeds the limit of {slippage_bps} bps"
        )
    floor = out_amount * (10_000 - slippage_bps) // 10_000
    if min_out > out_amount or min_out < floor:
        raise TradeError(
            ErrorClass.SLIPPAGE,
            f"otherAmountThreshold {min_out} outside [{floor}, {out_amount}] for {slippage_bps} bps",
        )
    return in_amount, out_amount, impact_bps


def swap_plan(answer: Any, quote_id: str, *, fee_payer: Pubkey, forbid_signers: Sequence[Pubkey] = ()) -> SwapPlan:
    """Check ``/swap-instructions``' answer and keep the legs (their compute budget is ours to set)."""
    if not isinstance(answer, Mapping):
        raise _bad("swap-instructions answer is not an object")
    if answer.get("addressLookupTableAddresses"):
        raise _bad("address lookup tables are not supported")
    legs: list[Instruction] = []
    for name in _LEG_FIELDS:
        value = answer.get(name)
        if value is None:
            if name == "swapInstruction":
                raise _bad("no swapInstruction")
            continue
        for obj in value if isinstance(value, list) else [value]:
            legs.append(parse_instruction(obj))
    # The vault authority must sign only as itself; a leg that asks the payer to sign as a
    # writable account of another program is fine, one that names unknown signers is not ours.
    for ix in legs:
        for meta in ix.accounts:
            if meta.is_signer and meta.pubkey in forbid_signers:
                raise _bad(f"an instruction wants {meta.pubkey} to sign")
    if not any(meta.pubkey == fee_payer and meta.is_signer for ix in legs for meta in ix.accounts):
        raise _bad("no leg is signed by the vault authority")
    return SwapPlan(quote_id=quote_id, legs=tuple(legs))


#: SPL Token's TransferChecked: one tag byte, the amount (u64, little-endian), the decimals.
_TRANSFER_CHECKED_TAG = 12
_TRANSFER_CHECKED_LEN = 10


def check_vault_legs(
    legs: Sequence[Instruction],
    *,
    authority: Pubkey,
    token_program: Pubkey,
    source: Pubkey,
    destination: Pubkey,
    input_mint: str,
    output_mint: str,
    amount_in: int,
    min_out: int,
) -> None:
    """The legs move exactly what the quote says, between this vault and its counterparty.

    ``authority`` is this vault's own key, so a leg it signs can spend only this vault's tokens
    (and its SOL); still, each one must be a TransferChecked of exactly ``amount_in`` of the input mint out of
    this vault's own account, and some leg must pay at least ``min_out`` of the output mint into
    this vault's account. Legs through an aggregator program (a real Jupiter route) cannot be
    read this way and are refused: such routes need a verifier for that program.
    """
    paid_in = 0
    for ix in legs:
        authority_signs = any(m.pubkey == authority and m.is_signer for m in ix.accounts)
        transfer = (
            ix.program_id == token_program
            and len(ix.data) == _TRANSFER_CHECKED_LEN
            and ix.data[0] == _TRANSFER_CHECKED_TAG
            and len(ix.accounts) >= 4
        )
        if authority_signs:
            if not transfer:
                raise _bad(f"an instruction of {ix.program_id} needs the vault authority's signature and is not a transfer")
            amount = int.from_bytes(bytes(ix.data[1:9]), "little")
            if (ix.accounts[0].pubkey, str(ix.accounts[1].pubkey), amount) != (source, input_mint, amount_in):
                raise _bad(
                    f"the vault authority would send {amount} of {ix.accounts[1].pubkey} from {ix.accounts[0].pubkey};"
                    f" the trade sends {amount_in} of {input_mint} from {source}"
                )
        elif transfer and ix.accounts[2].pubkey == destination and str(ix.accounts[1].pubkey) == output_mint:
            paid_in += int.from_bytes(bytes(ix.data[1:9]), "little")
    if paid_in < min_out:
        raise _bad(f"the legs pay {paid_in} of {output_mint} into the vault, the quote promises at least {min_out}")


def priority_fee(fees: Sequence[int], percentile: float, cap: int) -> int:
    """Micro-lamports per compute unit: ``percentile`` of recent fees, at most ``cap``."""
    if not fees:
        return 0
    ordered = sorted(max(0, int(f)) for f in fees)
    index = min(len(ordered) - 1, int(math.ceil(percentile * len(ordered))) - 1) if percentile > 0 else 0
    return min(cap, ordered[max(0, index)])


def build_message(
    *,
    fee_payer: Pubkey,
    legs: Sequence[Instruction],
    blockhash: Hash,
    compute_units: int,
    micro_lamports: int,
    memo: str,
) -> MessageV0:
    """Compute budget, the legs, and a memo with the trade id, as one v0 message."""
    instructions = [
        set_compute_unit_limit(compute_units),
        set_compute_unit_price(micro_lamports),
        *legs,
        Instruction(MEMO_PROGRAM_ID, memo.encode("utf-8"), []),
    ]
    return MessageV0.try_compile(fee_payer, instructions, [], blockhash)


def message_bytes(message: MessageV0) -> bytes:
    """What every signer signs."""
    return bytes(to_bytes_versioned(message))


def signed_transaction(message: MessageV0, signatures: Mapping[Pubkey, Signature]) -> VersionedTransaction:
    """The transaction with each required signer's signature in the message's order."""
    required = message.account_keys[: message.header.num_required_signatures]
    missing = [str(k) for k in required if k not in signatures]
    if missing:
        raise TradeError(ErrorClass.UNKNOWN, f"missing signatures of {', '.join(missing)}")
    return VersionedTransaction.populate(message, [signatures[k] for k in required])


def unsigned_transaction(message: MessageV0) -> VersionedTransaction:
    """For a simulation without signature verification."""
    return VersionedTransaction.populate(message, [Signature.default()] * message.header.num_required_signatures)
