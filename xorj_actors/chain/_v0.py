"""v0 messages compiled with address lookup tables, refused before signing when they cannot land.

How ``MessageV0.try_compile`` (solders, Agave's ``v0::Message::try_compile``) places accounts:
the payer, every signer and every program an instruction invokes stay static; every other
account is taken from the first table that holds it, else it stays static too. It has no way to
keep an ordinary account static, so :func:`compile_v0` hides the accounts that must never be
reached through a table (``static_only``: a Jito tip account) from the tables it passes in, by
putting a key no message can name at their index: every other index keeps its place, and the
table on chain is untouched. A check after compiling refuses the message if one got through
anyway.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.chain._lookup_tables import LookupTable

__all__ = [
    "PACKET_DATA_SIZE",
    "CompileRefusal",
    "CompiledMessage",
    "RefusalReason",
    "compile_v0",
    "transaction_size",
]

#: The largest transaction a node accepts: an IPv6 packet (1280) minus its header (40) and a
#: fragment header (8). Agave's ``PACKET_DATA_SIZE``; larger is refused before it is sent.
PACKET_DATA_SIZE = 1232


class RefusalReason(enum.StrEnum):
    """Why a message was not compiled."""

    #: The signed transaction would be over :data:`PACKET_DATA_SIZE` bytes.
    TOO_LARGE = "too_large"
    #: The compiler refused the accounts (over 256 keys or table indexes, a signer in a table...).
    NOT_COMPILABLE = "not_compilable"
    #: A ``static_only`` account would be loaded through a table (a compiler change; never expected).
    STATIC_ACCOUNT_IN_TABLE = "static_account_in_table"


@dataclass(frozen=True, slots=True)
class CompileRefusal:
    """The message was refused; nothing was signed."""

    reason: RefusalReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    """A message that fits, with its size once signed and the tables it uses."""

    message: MessageV0
    #: Bytes of the signed transaction (signatures included).
    size: int
    tables: tuple[Pubkey, ...]
    #: Deactivated tables left out (their accounts were placed statically).
    skipped: tuple[Pubkey, ...] = ()


def transaction_size(message: MessageV0) -> int:
    """Bytes of the transaction once every required signer has signed (signatures are 64 bytes)."""
    blank = [Signature.default()] * message.header.num_required_signatures
    return len(bytes(VersionedTransaction.populate(message, blank)))


def _mask(table: LookupTable, static_only: Collection[Pubkey]) -> AddressLookupTableAccount:
    """``table`` with every ``static_only`` entry replaced by a key no instruction names."""
    addresses = [
        Pubkey(hashlib.sha256(b"xorj:static-only:" + bytes(table.key) + bytes([i])).digest()) if a in static_only else a
        for i, a in enumerate(table.addresses)
    ]
    return AddressLookupTableAccount(table.key, addresses)


def compile_v0(
    payer: Pubkey,
    instructions: Sequence[Instruction],
    tables: Sequence[LookupTable],
    blockhash: Hash,
    *,
    static_only: Collection[Pubkey] = (),
    max_size: int = PACKET_DATA_SIZE,
) -> CompiledMessage | CompileRefusal:
    """Compile ``instructions`` into a v0 message with ``tables``; a refusal names its reason.

    Deactivated tables are left out (their accounts go static): such a table disappears once its
    cool-down is over, possibly while the transaction is still valid.
    """
    forbidden = frozenset(static_only)
    usable = [t for t in tables if not t.deactivated]
    skipped = tuple(t.key for t in tables if t.deactivated)
    try:
        message = MessageV0.try_compile(payer, list(instructions), [_mask(t, forbidden) for t in usable], blockhash)
    except Exception as exc:  # noqa: BLE001 - solders raises CompileError or ValueError
        return CompileRefusal(RefusalReason.NOT_COMPILABLE, f"{type(exc).__name__}: {exc}")
    by_key = {t.key: t for t in usable}
    for lookup in message.address_table_lookups:
        table = by_key[lookup.account_key]
        for i in (*bytes(lookup.writable_indexes), *bytes(lookup.readonly_indexes)):
            if table.addresses[i] in forbidden:
                return CompileRefusal(
                    RefusalReason.STATIC_ACCOUNT_IN_TABLE,
                    f"{table.addresses[i]} would be loaded from table {table.key} (index {i})",
                )
    size = transaction_size(message)
    if size > max_size:
        static, loaded = len(message.account_keys), sum(
            len(bytes(lk.writable_indexes)) + len(bytes(lk.readonly_indexes)) for lk in message.address_table_lookups
        )
        return CompileRefusal(
            RefusalReason.TOO_LARGE,
            f"the signed transaction would be {size} bytes, the limit is {max_size}"
            f" ({static} static accounts, {loaded} through {len(message.address_table_lookups)} tables,"
            f" {len(instructions)} instructions)",
        )
    return CompiledMessage(
        message=message,
        size=size,
        tables=tuple(lk.account_key for lk in message.address_table_lookups),
        skipped=skipped,
    )
