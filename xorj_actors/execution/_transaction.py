"""From a quote to a versioned transaction: compute budget, the route's legs, a memo (compiled with
the route's lookup tables by :mod:`._route`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from xorj_actors.execution._errors import ErrorClass, TradeError

__all__ = [
    "framed",
    "message_bytes",
    "signed_transaction",
    "unsigned_transaction",
]

def framed(legs: Sequence[Instruction], *, compute_units: int, micro_lamports: int, memo: str) -> list[Instruction]:
    """Our compute budget, the route's legs (setup, swap, cleanup, other), a memo with the trade id."""
    return [
        set_compute_unit_limit(compute_units),
        set_compute_unit_price(micro_lamports),
        *legs,
        Instruction(MEMO_PROGRAM_ID, memo.encode("utf-8"), []),
    ]


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
