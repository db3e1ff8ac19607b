"""``POST /swap/v1/swap-instructions``: the route as solders instructions.

Fields as in jup-ag/jupiter-swap-api-client ``swap.rs`` (``SwapInstructionsResponseInternal``)
and jup-ag/docs ``openapi-spec/swap/v1``. Each instruction is
``{programId, accounts: [{pubkey, isSigner, isWritable}], data: base64}``, decoded strictly: these
are the bytes that will be signed. ``swapInstruction`` is one instruction (singular in every
version); ``cleanupInstruction`` is null or one (the wSOL ``CloseAccount``);
``otherInstructions`` holds a Jito tip when one was asked for. Tolerated: missing
``prioritizationFeeLamports``, ``computeUnitLimit``, ``simulationError``, and any new field
(``blockhashWithMetadata``, ``simulationSlot``, ``addressesByLookupTableAddress``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from xorj_actors.jupiter import _fields as f
from xorj_actors.jupiter._errors import MalformedAnswer, trim

__all__ = ["SimulationError", "SwapInstructions", "parse_instruction", "parse_swap_instructions"]

#: A v0 message addresses at most 256 accounts; an instruction naming more is nonsense.
MAX_ACCOUNTS = 256


@dataclass(frozen=True, slots=True)
class SimulationError:
    """The API's own simulation failed (``{"errorCode", "error"}``)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SwapInstructions:
    """A Swap API route, ready to be compiled into a v0 message with its lookup tables."""

    compute_budget_instructions: tuple[Instruction, ...]
    setup_instructions: tuple[Instruction, ...]
    swap_instruction: Instruction
    cleanup_instruction: Instruction | None
    other_instructions: tuple[Instruction, ...]
    address_lookup_table_addresses: tuple[Pubkey, ...]
    prioritization_fee_lamports: int | None
    compute_unit_limit: int | None
    simulation_error: SimulationError | None

    def route_instructions(self) -> tuple[Instruction, ...]:
        """Setup, swap, cleanup, other: the route without Jupiter's compute budget (the engine
        sets its own), in the order Jupiter's docs compose them."""
        cleanup = (self.cleanup_instruction,) if self.cleanup_instruction is not None else ()
        return (*self.setup_instructions, self.swap_instruction, *cleanup, *self.other_instructions)


def _flag(obj: Mapping[str, Any], key: str, prefix: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise MalformedAnswer(f"{prefix}.{key}", f"expected true or false, got {value!r:.20}")
    return value


def parse_instruction(value: Any, prefix: str) -> Instruction:
    """One instruction, strictly: program id, every account meta, the data bytes."""
    obj = f.mapping(value, prefix)
    accounts = f.seq(obj, "accounts", prefix)
    if len(accounts) > MAX_ACCOUNTS:
        raise MalformedAnswer(f"{prefix}.accounts", f"{len(accounts)} accounts (at most {MAX_ACCOUNTS})")
    checked = f.checked_pubkey
    metas = []
    for i, raw in enumerate(accounts):
        # The common meta (a plain object, two booleans, a key already checked canonical) in a
        # few lookups; anything else takes the strict reading, which names what is wrong.
        if type(raw) is dict:
            signer, writable, key = raw.get("isSigner"), raw.get("isWritable"), checked(raw.get("pubkey"))
            if key is not None and type(signer) is bool and type(writable) is bool:
                metas.append(AccountMeta(key, signer, writable))
                continue
        metas.append(_meta(raw, f"{prefix}.accounts[{i}]"))
    return Instruction(f.pubkey(obj, "programId", prefix), f.base64_bytes(obj, "data", prefix), metas)


def _meta(raw: Any, prefix: str) -> AccountMeta:
    meta = f.mapping(raw, prefix)
    return AccountMeta(
        f.pubkey(meta, "pubkey", prefix),
        is_signer=_flag(meta, "isSigner", prefix),
        is_writable=_flag(meta, "isWritable", prefix),
    )


def _instructions(obj: Mapping[str, Any], key: str) -> tuple[Instruction, ...]:
    # A missing list is an empty one (drift); a null or a non-list is refused.
    return tuple(parse_instruction(v, f"{key}[{i}]") for i, v in enumerate(f.seq(obj, key, required=False)))


def _simulation_error(value: Any) -> SimulationError | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return SimulationError("", trim(str(value)))
    code, message = value.get("errorCode", ""), value.get("error", "")
    return SimulationError(trim(str(code)), trim(str(message)))


def parse_swap_instructions(answer: Any) -> SwapInstructions:
    """A route from a parsed ``/swap-instructions`` body; :class:`MalformedAnswer` names a bad field.

    A ``tokenLedgerInstruction`` is refused: the engine never asks for ``useTokenLedger``, and a
    route that measures its input by a ledger is not the route that was quoted.
    """
    obj = f.mapping(answer, "swapInstructions")
    if obj.get("tokenLedgerInstruction") is not None:
        raise MalformedAnswer("tokenLedgerInstruction", "not requested (useTokenLedger is off)")
    if obj.get("swapInstruction") is None:
        raise MalformedAnswer("swapInstruction", "missing")
    cleanup = obj.get("cleanupInstruction")
    tables = [
        f.pubkey_of(v, f"addressLookupTableAddresses[{i}]")
        for i, v in enumerate(f.seq(obj, "addressLookupTableAddresses", required=False))
    ]
    if len(set(tables)) != len(tables):
        raise MalformedAnswer("addressLookupTableAddresses", "a table is named twice")
    return SwapInstructions(
        compute_budget_instructions=_instructions(obj, "computeBudgetInstructions"),
        setup_instructions=_instructions(obj, "setupInstructions"),
        swap_instruction=parse_instruction(obj["swapInstruction"], "swapInstruction"),
        cleanup_instruction=None if cleanup is None else parse_instruction(cleanup, "cleanupInstruction"),
        other_instructions=_instructions(obj, "otherInstructions"),
        address_lookup_table_addresses=tuple(tables),
        prioritization_fee_lamports=f.opt_int(obj, "prioritizationFeeLamports"),
        compute_unit_limit=f.opt_int(obj, "computeUnitLimit"),
        simulation_error=_simulation_error(obj.get("simulationError")),
    )
