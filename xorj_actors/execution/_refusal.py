"""Why a route is refused before it is signed: one enum of reasons, one value per refusal.

The allowlist (:mod:`._allowlist`), the aggregator decoding (:mod:`._jupiter`) and the effect
check (:mod:`._effects`) all answer with a :class:`RouteRefusal` or ``None``; the executor
records the reason in the audit log and never signs (docs/EXECUTION.md, "The effect check").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xorj_actors.execution._errors import ErrorClass, TradeError

__all__ = ["RouteRefusalReason", "RouteRefusal"]


class RouteRefusalReason(enum.StrEnum):
    """Named reasons a route is refused (the values go to the audit log)."""

    # -- the message itself
    MALFORMED_MESSAGE = "malformed_message"
    LOOKUP_TABLE_UNRESOLVED = "lookup_table_unresolved"
    # -- the allowlist
    PROGRAM_NOT_ALLOWED = "program_not_allowed"
    SYSTEM_INSTRUCTION_NOT_ALLOWED = "system_instruction_not_allowed"
    SYSTEM_TRANSFER_NOT_ALLOWED = "system_transfer_not_allowed"
    TIP_THROUGH_LOOKUP_TABLE = "tip_through_lookup_table"
    ATA_INSTRUCTION_NOT_ALLOWED = "ata_instruction_not_allowed"
    ATA_FOR_ANOTHER_OWNER = "ata_for_another_owner"
    # -- the aggregator's instruction
    AGGREGATOR_EXACT_OUT = "aggregator_exact_out"
    AGGREGATOR_TOKEN_LEDGER = "aggregator_token_ledger"
    AGGREGATOR_MALFORMED = "aggregator_malformed"
    AGGREGATOR_AMOUNT_MISMATCH = "aggregator_amount_mismatch"
    AGGREGATOR_SLIPPAGE = "aggregator_slippage"
    AGGREGATOR_PLATFORM_FEE = "aggregator_platform_fee"
    AGGREGATOR_ACCOUNT_MISMATCH = "aggregator_account_mismatch"
    # -- the simulated effects
    SIMULATION_FAILED = "simulation_failed"
    STATE_UNREADABLE = "state_unreadable"
    INPUT_NOT_EXACT = "input_not_exact"
    OUTPUT_SHORT = "output_short"
    OTHER_ACCOUNT_CHANGED = "other_account_changed"
    OWNER_CHANGED = "owner_changed"
    DELEGATE_CHANGED = "delegate_changed"
    CLOSE_AUTHORITY_CHANGED = "close_authority_changed"
    STATE_CHANGED = "state_changed"
    ACCOUNT_CLOSED = "account_closed"
    FOREIGN_ACCOUNT_CREATED = "foreign_account_created"
    SOL_OVERSPEND = "sol_overspend"


@dataclass(frozen=True, slots=True)
class RouteRefusal:
    """A refused route: the reason, the instruction (or account) concerned, and what was seen."""

    reason: RouteRefusalReason
    detail: str
    #: Index of the instruction in the message, when one instruction is to blame.
    instruction: int | None = None

    def to_error(self) -> TradeError:
        """The trade's error: never retried with the same route (a new quote may be fine)."""
        where = "" if self.instruction is None else f" (instruction {self.instruction})"
        return TradeError(ErrorClass.UNKNOWN, f"route refused: {self.reason.value}{where}: {self.detail}")
