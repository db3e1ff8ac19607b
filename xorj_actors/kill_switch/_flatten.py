"""Flatten: the messages of the kill switch's reducing mode, and its bookkeeping of one flatten.

While halted (TRIGGERED or MAINTENANCE) an operator may ask the kill switch to *flatten* chosen
vaults: the kill switch moves to REDUCING (still halted; only trades with
``reduces_exposure=True`` may be signed), tells each vault :class:`FlattenVault`, and goes back
to the state it came from when every vault has answered :class:`FlattenDone`, or after
``kill_switch.flatten_timeout_s``. See docs/HALT_PROTOCOL.md ("Reducing mode and flatten").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from supervisors import ControlMessage, Message
from xorj_actors.kill_switch._state import KillSwitchState

__all__ = [
    "Flatten",
    "FlattenDone",
    "FlattenOutcome",
    "FlattenVault",
    "VAULT_ROLE",
    "flatten_refusal",
    "new_flatten_id",
]

#: ``Participant.role`` of vault actors: the kill switch flattens only these.
VAULT_ROLE = "vault"
#: ``kill_switch.flatten_timeout_s`` when the settings do not carry it.
#: How much of an operator's name, reason and a vault's detail is kept.
DETAIL_LIMIT = 500
#: Per-vault results in the "flatten ended" audit entry (500 chars each at most: well below 1 MB).
MAX_AUDITED_RESULTS = 1000


class Flatten(Message):
    """An operator's request: sell the volatile holdings of ``vaults`` (empty: every vault)."""

    vaults: tuple[str, ...]
    operator: str
    reason: str


class FlattenOutcome(Message):
    """The kill switch's answer to :class:`Flatten`: accepted (the flatten runs) or why not."""

    accepted: bool
    reason: str
    state: str
    flatten_id: str | None = None
    vaults: tuple[str, ...] = ()


class FlattenVault(Message):
    """Kill switch -> vault: sell every volatile holding into the stablecoin, then report.

    ``flatten_id`` names this flatten (trade ids and audit entries carry it); ``epoch`` is the
    halt epoch it belongs to: a vault refuses it when the board shows another epoch or is no
    longer reducing.
    """

    epoch: int
    flatten_id: str


class FlattenDone(ControlMessage):
    """Vault -> kill switch: this vault's flatten is over (every outcome final, or refused).

    A control message, like an ack: the kill switch's return to its halted state depends on it.
    """

    vault_id: str
    flatten_id: str
    sold: int  # trades confirmed
    failed: int  # trades that ended otherwise (failed, rejected, expired)
    detail: str  # what is left, or why nothing was sold


def flatten_refusal(
    state: KillSwitchState,
    under_way: Flattening | None,
    operator: str,
    reason: str,
    asked: tuple[str, ...],
    vaults: Collection[str],
) -> str | None:
    """Why a flatten request is refused, or None to accept it.

    Args:
        state: the kill switch's state (a flatten runs only from TRIGGERED or MAINTENANCE).
        under_way: the flatten already under way, if any.
        operator: who asks (trimmed; must not be empty).
        reason: why (trimmed; must not be empty).
        asked: the vaults named (empty: every vault).
        vaults: the names of the running vaults.
    """
    _S = KillSwitchState
    if state is _S.REDUCING:
        return f"a flatten is already under way ({under_way.flatten_id if under_way else '?'})"
    if state not in (_S.TRIGGERED, _S.MAINTENANCE):
        return f"flatten only while halted: the kill switch is {state.value} (halt first)"
    if not operator or not reason:
        return "operator and reason must not be empty"
    if unknown := [v for v in asked if v not in vaults]:
        return f"unknown vault(s), or not running: {', '.join(v[:40] for v in unknown[:10])}"
    if not vaults:
        return "no vault is running"
    return None


def new_flatten_id(epoch: int) -> str:
    """A fresh id: part of trade ids, so never reused (the executor answers a known id from its record)."""
    return f"flatten-e{epoch}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class Flattening:
    """The kill switch's record of the flatten under way (not persisted: a restart ends it)."""

    flatten_id: str
    epoch: int
    #: The state to go back to: TRIGGERED or MAINTENANCE.
    back_to: str
    operator: str
    reason: str
    vaults: tuple[str, ...]
    pending: set[str] = field(default_factory=set)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    timer: Any = None

    def report(self, vault: str, sold: int, failed: int, detail: str) -> None:
        self.pending.discard(vault)
        self.results[vault] = {"sold": sold, "failed": failed, "detail": detail[:DETAIL_LIMIT]}

    def give_up(self, detail: str) -> None:
        """Every vault yet to report gets ``detail`` as its result (none sold, none failed)."""
        for name in sorted(self.pending):
            self.report(name, 0, 0, detail)

    def status(self) -> dict[str, Any]:
        """The flatten fields of the kill switch's status."""
        return {
            "flatten_id": self.flatten_id,
            "flatten_pending": tuple(sorted(self.pending)),
            "flatten_results": tuple(
                (v, int(r["sold"]), int(r["failed"]), str(r["detail"])) for v, r in sorted(self.results.items())
            ),
        }

    def summary(self) -> dict[str, Any]:
        """Totals and per-vault results for the audit entry, kept below the entry size limit.

        Past :data:`MAX_AUDITED_RESULTS` vaults the entry keeps those that need a look (a
        failure, or a detail other than "nothing ... to sell") first; every vault audits its own
        result as well (``flatten_done``).
        """
        ordered = sorted(
            self.results.items(), key=lambda item: (not (item[1]["failed"] or not _clean(item[1])), item[0])
        )
        kept = dict(ordered[:MAX_AUDITED_RESULTS])
        return {
            "vaults": len(self.vaults),
            "sold": sum(r["sold"] for r in self.results.values()),
            "failed": sum(r["failed"] for r in self.results.values()),
            "results": kept,
            "results_omitted": len(self.results) - len(kept),
        }


def _clean(result: dict[str, Any]) -> bool:
    return str(result["detail"]).startswith(("nothing to sell", "nothing left to sell"))
