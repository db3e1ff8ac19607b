"""Address lookup tables, pure: decode a table account, resolve a v0 message's lookups, and
recognise the errors a node gives for a table (docs/EXECUTION.md, "Address lookup tables").

A table only grows: ``ExtendLookupTable`` appends, nothing rewrites an entry, and a closed table
cannot be recreated at its address (the address derives from a recent slot that is no longer
recent once the table's cool-down is over). So a cached prefix of a table stays true for as
long as the table exists; what a cache can miss is an extension (an index past its end) and a
deactivation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM_ID
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    LOOKUP_TABLE_META_SIZE,
    AddressLookupTable,
    AddressLookupTableAccount,
)
from solders.message import MessageV0
from solders.pubkey import Pubkey

__all__ = [
    "ACTIVE_TABLE",
    "LOOKUP_TABLE_ERROR_MESSAGES",
    "LOOKUP_TABLE_PROGRAM_ID",
    "LoadedAddresses",
    "LookupTable",
    "LookupTableError",
    "LookupTableProblem",
    "decode_lookup_table",
    "encode_lookup_table",
    "lookup_table_fault",
    "by_key",
    "resolve_lookups",
    "table_keys",
]

#: ``deactivation_slot`` of a table that was never deactivated (u64::MAX).
ACTIVE_TABLE = 2**64 - 1
_PUBKEY = 32
#: ``ProgramState::LookupTable``: bincode's u32 enum tag (0 is ``Uninitialized``).
_LOOKUP_TABLE_TAG = 1


class LookupTableProblem(enum.StrEnum):
    """Why a lookup table cannot be used; the first four are Agave's ``TransactionError`` names."""

    #: No account at the table's address (never created, or closed).
    NOT_FOUND = "AddressLookupTableNotFound"
    #: The account is not owned by the address-lookup-table program.
    WRONG_OWNER = "InvalidAddressLookupTableOwner"
    #: The account's data is not an initialised lookup table.
    MALFORMED = "InvalidAddressLookupTableData"
    #: A lookup names an index past the table's (active) end.
    INDEX_OUT_OF_RANGE = "InvalidAddressLookupTableIndex"
    #: The table's authority deactivated it: it disappears after its cool-down.
    DEACTIVATED = "Deactivated"
    #: The table could not be read (transport, RPC error, an answer of the wrong shape).
    UNREADABLE = "Unreadable"


#: Agave's ``Display`` of each error: what a ``-32602 "invalid transaction: ..."`` answer to
#: ``sendTransaction``/``simulateTransaction`` says (the address loader runs before preflight,
#: ``skipPreflight`` or not). Source: anza-xyz/solana-sdk ``transaction-error/src/lib.rs``.
LOOKUP_TABLE_ERROR_MESSAGES: Mapping[LookupTableProblem, str] = {
    LookupTableProblem.NOT_FOUND: "Transaction loads an address table account that doesn't exist",
    LookupTableProblem.WRONG_OWNER: "Transaction loads an address table account with an invalid owner",
    LookupTableProblem.MALFORMED: "Transaction loads an address table account with invalid data",
    LookupTableProblem.INDEX_OUT_OF_RANGE: "Transaction address table lookup uses an invalid index",
}


class LookupTableError(Exception):
    """A table that cannot be used, with the named reason and the table's address."""

    def __init__(self, problem: LookupTableProblem, key: Pubkey, detail: str = "") -> None:
        super().__init__(f"lookup table {key}: {problem.value}" + (f": {detail}" if detail else ""))
        self.problem = problem
        self.key = key


@dataclass(frozen=True, slots=True)
class LookupTable:
    """One decoded table account (the fields of Agave's ``LookupTableMeta`` that matter here)."""

    key: Pubkey
    addresses: tuple[Pubkey, ...]
    authority: Pubkey | None = None
    deactivation_slot: int = ACTIVE_TABLE
    last_extended_slot: int = 0
    last_extended_slot_start_index: int = 0
    #: The context slot of the read that produced this value (0 when unknown).
    read_slot: int = 0

    @property
    def deactivated(self) -> bool:
        """The authority has deactivated the table (it may still be in its cool-down)."""
        return self.deactivation_slot != ACTIVE_TABLE

    def account(self) -> AddressLookupTableAccount:
        """What ``MessageV0.try_compile`` takes."""
        return AddressLookupTableAccount(self.key, list(self.addresses))


def decode_lookup_table(key: Pubkey, owner: Pubkey, data: bytes, read_slot: int = 0) -> LookupTable:
    """Decode an account read at ``key``; :class:`LookupTableError` if it is not a table."""
    if owner != LOOKUP_TABLE_PROGRAM_ID:
        raise LookupTableError(LookupTableProblem.WRONG_OWNER, key, f"owned by {owner}")
    extra = len(data) - LOOKUP_TABLE_META_SIZE
    if extra < 0 or extra % _PUBKEY or extra // _PUBKEY > LOOKUP_TABLE_MAX_ADDRESSES:
        raise LookupTableError(LookupTableProblem.MALFORMED, key, f"{len(data)} bytes")
    try:
        table = AddressLookupTable.deserialize(bytes(data))
    except ValueError as exc:  # solders: InvalidAccountData (uninitialised, wrong tag)
        raise LookupTableError(LookupTableProblem.MALFORMED, key, str(exc)) from None
    meta = table.meta
    return LookupTable(
        key=key,
        addresses=tuple(table.addresses),
        authority=meta.authority,
        deactivation_slot=meta.deactivation_slot,
        last_extended_slot=meta.last_extended_slot,
        last_extended_slot_start_index=meta.last_extended_slot_start_index,
        read_slot=read_slot,
    )


def encode_lookup_table(table: LookupTable) -> bytes:
    """The account data the program writes for ``table`` (``ProgramState::LookupTable``, bincode,
    the metadata padded to 56 bytes, then the addresses); the inverse of :func:`decode_lookup_table`."""
    authority = b"\x01" + bytes(table.authority) if table.authority is not None else b"\x00"
    meta = (
        _LOOKUP_TABLE_TAG.to_bytes(4, "little")
        + table.deactivation_slot.to_bytes(8, "little")
        + table.last_extended_slot.to_bytes(8, "little")
        + table.last_extended_slot_start_index.to_bytes(1, "little")
        + authority
    )
    return meta.ljust(LOOKUP_TABLE_META_SIZE, b"\0") + b"".join(bytes(a) for a in table.addresses)


@dataclass(frozen=True, slots=True)
class LoadedAddresses:
    """The accounts a v0 message loads through its tables, in the runtime's order."""

    writable: tuple[Pubkey, ...]
    readonly: tuple[Pubkey, ...]

    def account_keys(self, message: MessageV0) -> tuple[Pubkey, ...]:
        """Every account of ``message``: static keys, then loaded writable, then loaded read-only."""
        return (*message.account_keys, *self.writable, *self.readonly)


def resolve_lookups(message: MessageV0, tables: Mapping[Pubkey, LookupTable]) -> LoadedAddresses:
    """Resolve ``message``'s lookups with ``tables``.

    :class:`LookupTableError`: a table missing from ``tables`` (``NOT_FOUND``) or an index past a
    table's cached end (``INDEX_OUT_OF_RANGE``: re-read the table, it may have been extended).
    """
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in message.address_table_lookups:
        table = tables.get(lookup.account_key)
        if table is None:
            raise LookupTableError(LookupTableProblem.NOT_FOUND, lookup.account_key, "not among the tables read")
        for indexes, out in ((lookup.writable_indexes, writable), (lookup.readonly_indexes, readonly)):
            for i in bytes(indexes):
                if i >= len(table.addresses):
                    raise LookupTableError(
                        LookupTableProblem.INDEX_OUT_OF_RANGE, table.key, f"index {i}, {len(table.addresses)} known"
                    )
                out.append(table.addresses[i])
    return LoadedAddresses(tuple(writable), tuple(readonly))


def lookup_table_fault(error: Any) -> LookupTableProblem | None:
    """The table problem an RPC or simulation error reports, else ``None``.

    Reads a transaction error in Agave's JSON (``"InvalidAddressLookupTableIndex"``), a solders
    ``TransactionErrorFieldless``, or the text of a JSON-RPC error (``-32602 invalid transaction:
    Transaction address table lookup uses an invalid index``).
    """
    text = str(error)
    for problem, message in LOOKUP_TABLE_ERROR_MESSAGES.items():
        if problem.value in text or message in text:
            return problem
    return None


def table_keys(message: MessageV0) -> tuple[Pubkey, ...]:
    """The tables ``message`` looks up, in order."""
    return tuple(lookup.account_key for lookup in message.address_table_lookups)


def by_key(tables: Sequence[LookupTable]) -> dict[Pubkey, LookupTable]:
    return {table.key: table for table in tables}
