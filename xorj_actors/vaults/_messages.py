"""What a vault is told and what it answers, and the phases its status reports."""

from __future__ import annotations

import enum

from supervisors import ControlMessage, Message

__all__ = ["FlattenPhase", "GetVaultStatus", "Round", "RoundResult", "VaultPhase", "VaultStatus"]


class VaultPhase(enum.StrEnum):
    """Where a vault's round is (the values ``ctl vaults`` prints)."""

    IDLE = "idle"
    #: The first snapshot: balances and prices to plan the sells on.
    READING = "reading"
    SELLING = "selling"
    #: Every sell is final: the snapshot the buys are planned on.
    SELLING_DONE = "selling_done"
    BUYING = "buying"
    #: The last snapshot: what arrived, for the realised slippage.
    CLOSING = "closing"


#: Phases that wait for a snapshot (a late or lost one ends the round).
READING_PHASES: frozenset[VaultPhase] = frozenset({VaultPhase.READING, VaultPhase.SELLING_DONE, VaultPhase.CLOSING})


class FlattenPhase(enum.StrEnum):
    """Where a vault's flatten is."""

    #: For the round under way to end.
    WAITING = "waiting"
    READING = "reading"
    SELLING = "selling"


class Round(ControlMessage):
    """Run one rebalancing round now (timers send it; so may an operator or a test).

    A control message: a vault busy with outcomes still hears its timer. The answer to an ask
    is a :class:`RoundResult` saying whether the round started.
    """

    round: int = 0


class RoundResult(Message):
    vault_id: str
    round: int
    ran: bool
    reason: str  # "started", or why not ("halted", "strategy feed stale ...", "round in flight")


class GetVaultStatus(Message):
    pass


class VaultStatus(Message):
    vault_id: str
    profile: str
    phase: VaultPhase
    rounds: int
    rounds_skipped: int
    trades_confirmed: int
    trades_other: int
    last_skip: str
    value_usd: float
    #: The trades this round handed over whose outcome is not final yet.
    pending: tuple[str, ...]
    #: The flatten under way (its id), or "".
    flatten: str = ""
