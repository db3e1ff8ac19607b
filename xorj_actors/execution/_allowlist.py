"""The program allowlist: which programs a route may call, and what System and ATA may do.

Pure. A v0 message is first resolved through its address lookup tables
(:func:`resolve_message`: what they load is an input, read by :mod:`xorj_actors.chain`'s
lookup-table cache), so every rule sees the accounts the runtime will see. Token and aggregator instructions are not read here: what
they do is checked by their simulated effects (:mod:`._effects`) and, for the aggregator's known
layouts, by decoding (:mod:`._jupiter`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from xorj_actors.chain import LoadedAddresses
from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal
from xorj_actors.execution.settings import RouteCheckSettings
from xorj_actors.programs import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    COMPUTE_BUDGET_PROGRAM_ID,
    JUPITER_ORDER_ENGINE_PROGRAM_ID,
    JUPITER_V6_PROGRAM_ID,
    MEMO_PROGRAM_IDS,
    NATIVE_MINT,
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
)

__all__ = [
    "ProgramAllowlist",
    "ResolvedMessage",
    "RouteParties",
    "associated_account",
    "check_allowlist",
    "fee_bound",
    "resolve_message",
    "tip_lamports",
]


_TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID})
#: System program instruction tags (a u32, little-endian): only Transfer is ever allowed.
_SYSTEM_TRANSFER = 2
#: Associated Token Account program: Create (empty data or 0), CreateIdempotent (1); RecoverNested (2) is refused.
_ATA_CREATE_TAGS = (b"", b"\x00", b"\x01")
#: ComputeBudget tags read by :func:`fee_bound`.
_SET_COMPUTE_UNIT_LIMIT, _SET_COMPUTE_UNIT_PRICE = 2, 3
_LAMPORTS_PER_SIGNATURE = 5_000
_DEFAULT_UNITS_PER_INSTRUCTION, _MAX_UNITS = 200_000, 1_400_000


@dataclass(frozen=True, slots=True)
class ProgramAllowlist:
    """The programs a route may call (the aggregators among them) and the tip accounts it may pay."""

    programs: frozenset[Pubkey]
    aggregators: frozenset[Pubkey]
    tip_accounts: frozenset[Pubkey] = frozenset()

    @classmethod
    def default(
        cls,
        aggregators: Iterable[Pubkey] = (JUPITER_V6_PROGRAM_ID, JUPITER_ORDER_ENGINE_PROGRAM_ID),
        tip_accounts: Iterable[Pubkey] = ()
    ) -> ProgramAllowlist:
        """ComputeBudget, System, SPL Token, Token-2022, ATA, Memo and ``aggregators``."""
        aggregators = frozenset(aggregators)
        base = {
            SYSTEM_PROGRAM_ID,
            COMPUTE_BUDGET_PROGRAM_ID,
            TOKEN_PROGRAM_ID,
            TOKEN_2022_PROGRAM_ID,
            ASSOCIATED_TOKEN_PROGRAM_ID,
            *MEMO_PROGRAM_IDS,
        }
        return cls(frozenset(base | aggregators), aggregators, frozenset(tip_accounts))

    @classmethod
    def from_settings(cls, settings: RouteCheckSettings) -> ProgramAllowlist:
        """The list ``[execution.routes]`` configures."""
        aggregators = frozenset(Pubkey.from_string(k) for k in settings.aggregator_programs)
        programs = frozenset(Pubkey.from_string(k) for k in settings.programs) | aggregators
        return cls(programs, aggregators, frozenset(Pubkey.from_string(k) for k in settings.tip_accounts))


@functools.lru_cache(maxsize=65_536)
def associated_account(owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    """``owner``'s associated token account of ``mint`` (a derivation, the same every trade: kept)."""
    return get_associated_token_address(owner, mint, token_program)


@dataclass(frozen=True, slots=True)
class RouteParties:
    """Whom a route acts for: the vault's authority and, if one is used, a separate fee payer."""

    authority: Pubkey
    fee_payer: Pubkey | None = None

    @property
    def payers(self) -> frozenset[Pubkey]:
        """The accounts whose SOL may pay fees, rent and tips."""
        return frozenset({self.authority} | ({self.fee_payer} if self.fee_payer is not None else set()))

    @property
    def wsol_account(self) -> Pubkey:
        """The vault's wrapped-SOL account: the authority's associated account of the native mint."""
        return associated_account(self.authority, NATIVE_MINT)


@dataclass(frozen=True, slots=True)
class ResolvedMessage:
    """A message with its lookup tables applied: every instruction with its real accounts."""

    account_keys: tuple[Pubkey, ...]
    #: Keys written in the message itself; the rest came from lookup tables.
    num_static: int
    num_signatures: int
    instructions: tuple[Instruction, ...]

    @property
    def writable_keys(self) -> tuple[Pubkey, ...]:
        """Every account an instruction may write, once each, in message order."""
        seen: dict[Pubkey, None] = {}
        for ix in self.instructions:
            for meta in ix.accounts:
                if meta.is_writable:
                    seen.setdefault(meta.pubkey, None)
        for key in self.account_keys[: self.num_signatures]:
            seen.setdefault(key, None)  # the fee payer is written even if no instruction names it
        return tuple(seen)


def resolve_message(message: MessageV0, loaded: LoadedAddresses | None = None) -> ResolvedMessage | RouteRefusal:
    """``message`` with its lookup tables applied: ``loaded`` is what they load
    (:meth:`xorj_actors.chain.LookupTableCache.resolve`, or :func:`xorj_actors.chain.resolve_lookups`).

    The counts must be the message's own: a table read short or long is no resolution.
    """
    header = message.header
    static = list(message.account_keys)
    loaded = loaded or LoadedAddresses((), ())
    lookups = message.address_table_lookups
    wanted = (sum(len(bytes(x.writable_indexes)) for x in lookups), sum(len(bytes(x.readonly_indexes)) for x in lookups))
    if wanted != (len(loaded.writable), len(loaded.readonly)):
        return RouteRefusal(
            RouteRefusalReason.LOOKUP_TABLE_UNRESOLVED,
            f"the message loads {wanted[0]} writable and {wanted[1]} read-only accounts; "
            f"{len(loaded.writable)} and {len(loaded.readonly)} given",
        )
    writable_loaded = loaded.writable
    keys = loaded.account_keys(message)
    signed = header.num_required_signatures
    n_static = len(static)

    def writable(i: int) -> bool:
        if i < signed:
            return i < signed - header.num_readonly_signed_accounts
        if i < n_static:
            return i < n_static - header.num_readonly_unsigned_accounts
        return i < n_static + len(writable_loaded)

    instructions = []
    for n, compiled in enumerate(message.instructions):
        indexes = bytes(compiled.accounts)
        if not 0 < compiled.program_id_index < n_static or any(i >= len(keys) for i in indexes):
            # As Agave's sanitizer: program ids are static keys and never the payer; an index
            # past the keys is no message.
            return RouteRefusal(RouteRefusalReason.MALFORMED_MESSAGE, "account index out of range", n)
        metas = [AccountMeta(keys[i], i < signed, writable(i)) for i in indexes]
        instructions.append(Instruction(keys[compiled.program_id_index], bytes(compiled.data), metas))
    return ResolvedMessage(tuple(keys), n_static, signed, tuple(instructions))


def check_allowlist(
    resolved: ResolvedMessage, allowlist: ProgramAllowlist, parties: RouteParties
) -> RouteRefusal | None:
    """``None`` if every instruction calls an allowed program, and System and ATA only as allowed."""
    loaded = set(resolved.account_keys[resolved.num_static :])
    for tip in allowlist.tip_accounts & loaded:
        return RouteRefusal(RouteRefusalReason.TIP_THROUGH_LOOKUP_TABLE, f"tip account {tip} is loaded from a lookup table")
    for n, ix in enumerate(resolved.instructions):
        program = ix.program_id
        if program not in allowlist.programs:
            return RouteRefusal(RouteRefusalReason.PROGRAM_NOT_ALLOWED, f"program {program} is not on the list", n)
        if program == SYSTEM_PROGRAM_ID:
            refusal = _system(ix, allowlist, parties)
        elif program == ASSOCIATED_TOKEN_PROGRAM_ID:
            refusal = _associated(ix, parties)
        else:
            continue
        if refusal is not None:
            return RouteRefusal(refusal.reason, refusal.detail, n)
    return None


def _system(ix: Instruction, allowlist: ProgramAllowlist, parties: RouteParties) -> RouteRefusal | None:
    data = bytes(ix.data)
    tag = int.from_bytes(data[:4], "little") if len(data) >= 4 else -1
    if tag != _SYSTEM_TRANSFER or len(data) != 12 or len(ix.accounts) < 2:
        return RouteRefusal(RouteRefusalReason.SYSTEM_INSTRUCTION_NOT_ALLOWED, f"System instruction {tag} is not a transfer")
    source, dest = ix.accounts[0].pubkey, ix.accounts[1].pubkey
    if source not in parties.payers:
        return RouteRefusal(RouteRefusalReason.SYSTEM_TRANSFER_NOT_ALLOWED, f"a transfer from {source}, not the vault's payer")
    if dest != parties.wsol_account and dest not in allowlist.tip_accounts:
        return RouteRefusal(
            RouteRefusalReason.SYSTEM_TRANSFER_NOT_ALLOWED, f"a transfer to {dest}: neither the vault's wSOL account nor a tip account"
        )
    return None


def _associated(ix: Instruction, parties: RouteParties) -> RouteRefusal | None:
    data = bytes(ix.data)
    if data not in _ATA_CREATE_TAGS:
        return RouteRefusal(RouteRefusalReason.ATA_INSTRUCTION_NOT_ALLOWED, f"ATA instruction {data.hex()} is not a create")
    if len(ix.accounts) < 6:
        return RouteRefusal(RouteRefusalReason.ATA_INSTRUCTION_NOT_ALLOWED, "ATA create with too few accounts")
    payer, address, wallet, mint, _, token_program = (m.pubkey for m in ix.accounts[:6])
    if (
        payer not in parties.payers
        or wallet != parties.authority
        or token_program not in _TOKEN_PROGRAMS
        or address != associated_account(wallet, mint, token_program)
    ):
        return RouteRefusal(
            RouteRefusalReason.ATA_FOR_ANOTHER_OWNER, f"ATA create of {address} for {wallet} paid by {payer}"
        )
    return None


def tip_lamports(resolved: ResolvedMessage, allowlist: ProgramAllowlist) -> int:
    """Lamports the route pays to tip accounts (System transfers; the allowlist checked them)."""
    total = 0
    for ix in resolved.instructions:
        data = bytes(ix.data)
        if ix.program_id == SYSTEM_PROGRAM_ID and len(data) == 12 and len(ix.accounts) >= 2:
            if int.from_bytes(data[:4], "little") == _SYSTEM_TRANSFER and ix.accounts[1].pubkey in allowlist.tip_accounts:
                total += int.from_bytes(data[4:], "little")
    return total


def fee_bound(resolved: ResolvedMessage) -> int:
    """The most the transaction's fee can be: signatures plus the priority fee its budget sets."""
    limit: int | None = None
    price = 0
    others = 0
    for ix in resolved.instructions:
        data = bytes(ix.data)
        if ix.program_id != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_LIMIT]) and len(data) == 5:
            limit = int.from_bytes(data[1:], "little")
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_PRICE]) and len(data) == 9:
            price = int.from_bytes(data[1:], "little")
    units = min(_MAX_UNITS, limit if limit is not None else _DEFAULT_UNITS_PER_INSTRUCTION * others)
    return _LAMPORTS_PER_SIGNATURE * resolved.num_signatures + math.ceil(units * price / 1_000_000)
