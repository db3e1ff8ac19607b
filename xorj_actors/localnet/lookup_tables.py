"""Address lookup tables on the localnet: the real program's instructions, the chain-side rules a
node applies to a v0 message's lookups, and tables placed at given addresses (docs/LOCALNET.md).

LiteSVM ships the address-lookup-table program (the Core BPF build, owner
``BPFLoaderUpgradeab1e11111111111111111111111``): tables are created, extended, deactivated and
closed through it, by transactions that land like any other. Recorded mainnet tables cannot be
created that way (their address derives from their authority's key and a slot), so
:func:`place_table` writes such a table's account directly, as a genesis would.

The instruction data is the program's bincode ``ProgramInstruction``: a u32 tag, then the
fields (anza-xyz/agave ``sdk/program/src/address_lookup_table/instruction.rs``; the Core BPF
program, solana-program/address-lookup-table, reads the same layout).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from solders.account import Account
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    AddressLookupTable,
    SlotHashes,
    derive_lookup_table_address,
)
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import VersionedTransaction

from xorj_actors.chain import (
    LOOKUP_TABLE_ERROR_MESSAGES,
    LOOKUP_TABLE_PROGRAM_ID,
    LoadedAddresses,
    LookupTable,
    LookupTableProblem,
    encode_lookup_table,
)

__all__ = [
    "LookupFailure",
    "close_lookup_table",
    "create_lookup_table",
    "deactivate_lookup_table",
    "extend_lookup_table",
    "load_addresses",
    "place_table",
    "table_transaction",
]

_CREATE, _FREEZE, _EXTEND, _DEACTIVATE, _CLOSE = range(5)


def create_lookup_table(authority: Pubkey, payer: Pubkey, recent_slot: int) -> tuple[Instruction, Pubkey]:
    """``CreateLookupTable``: the table's address derives from ``authority`` and ``recent_slot``,
    which must be in the SlotHashes sysvar (a recent slot, not the current one)."""
    table, bump = derive_lookup_table_address(authority, recent_slot)
    data = struct.pack("<IQB", _CREATE, recent_slot, bump)
    metas = [
        AccountMeta(table, False, True),
        AccountMeta(authority, True, False),
        AccountMeta(payer, True, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, metas), table


def extend_lookup_table(table: Pubkey, authority: Pubkey, payer: Pubkey, addresses: Sequence[Pubkey]) -> Instruction:
    """``ExtendLookupTable``: append ``addresses`` (usable from the next slot on)."""
    data = struct.pack("<IQ", _EXTEND, len(addresses)) + b"".join(bytes(a) for a in addresses)
    metas = [
        AccountMeta(table, False, True),
        AccountMeta(authority, True, False),
        AccountMeta(payer, True, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, metas)


def deactivate_lookup_table(table: Pubkey, authority: Pubkey) -> Instruction:
    """``DeactivateLookupTable``: the table stays usable until its deactivation slot leaves SlotHashes."""
    return Instruction(
        LOOKUP_TABLE_PROGRAM_ID,
        struct.pack("<I", _DEACTIVATE),
        [AccountMeta(table, False, True), AccountMeta(authority, True, False)],
    )


def close_lookup_table(table: Pubkey, authority: Pubkey, recipient: Pubkey) -> Instruction:
    """``CloseLookupTable``: only once fully deactivated; the rent goes to ``recipient``."""
    return Instruction(
        LOOKUP_TABLE_PROGRAM_ID,
        struct.pack("<I", _CLOSE),
        [AccountMeta(table, False, True), AccountMeta(authority, True, False), AccountMeta(recipient, False, True)],
    )


def place_table(svm: LiteSVM, table: LookupTable) -> None:
    """Write ``table``'s account at ``table.key`` (rent-exempt, owned by the program)."""
    if len(table.addresses) > LOOKUP_TABLE_MAX_ADDRESSES:
        raise ValueError(f"a table holds at most {LOOKUP_TABLE_MAX_ADDRESSES} addresses")
    data = encode_lookup_table(table)
    lamports = svm.minimum_balance_for_rent_exemption(len(data))
    svm.set_account(table.key, Account(lamports, data, LOOKUP_TABLE_PROGRAM_ID, False, 0))


#: A table's ``deactivation_slot`` while it is active (``Slot::MAX``).
_ACTIVE = 2**64 - 1
_NO_SLOT_HASHES = SlotHashes([])


class LookupFailure(Exception):
    """A v0 message's lookups do not resolve; Agave refuses such a transaction before preflight."""

    def __init__(self, problem: LookupTableProblem) -> None:
        super().__init__(f"invalid transaction: {LOOKUP_TABLE_ERROR_MESSAGES[problem]}")
        self.problem = problem


def load_addresses(
    svm: LiteSVM, tx: VersionedTransaction, slot: int, slot_hashes: Callable[[], SlotHashes]
) -> LoadedAddresses:
    """The accounts ``tx`` loads through its tables at ``slot``, by the runtime's rules (an
    address appended in the current slot is not usable yet; a table deactivated long enough
    ago is gone); :class:`LookupFailure` otherwise. ``slot_hashes()`` (the SlotHashes sysvar,
    512 entries to build) is asked for only by a deactivated table: an active one never reads it."""
    message = tx.message
    if not isinstance(message, MessageV0):
        return LoadedAddresses((), ())
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in message.address_table_lookups:
        account = svm.get_account(lookup.account_key)
        if account is None:
            raise LookupFailure(LookupTableProblem.NOT_FOUND)
        if account.owner != LOOKUP_TABLE_PROGRAM_ID:
            raise LookupFailure(LookupTableProblem.WRONG_OWNER)
        try:
            table = AddressLookupTable.deserialize(bytes(account.data))
        except ValueError:
            raise LookupFailure(LookupTableProblem.MALFORMED) from None
        for indexes, out in ((lookup.writable_indexes, writable), (lookup.readonly_indexes, readonly)):
            if not indexes:
                continue
            try:
                hashes = _NO_SLOT_HASHES if table.meta.deactivation_slot == _ACTIVE else slot_hashes()
                out.extend(table.lookup(slot, list(bytes(indexes)), hashes))
            except ValueError as exc:  # an invalid index, or a table past its cool-down
                gone = "does not exist" in str(exc)
                raise LookupFailure(LookupTableProblem.NOT_FOUND if gone else LookupTableProblem.INDEX_OUT_OF_RANGE) from None
    return LoadedAddresses(tuple(writable), tuple(readonly))


def table_transaction(authority: Keypair, instructions: Sequence[Instruction], blockhash: Hash) -> VersionedTransaction:
    """One v0 transaction of table ``instructions``, paid and signed by ``authority``."""
    message = MessageV0.try_compile(authority.pubkey(), list(instructions), [], blockhash)
    return VersionedTransaction(message, [authority])
