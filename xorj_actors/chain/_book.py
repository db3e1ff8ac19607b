"""The confirmation rule (docs/CONFIRMATION.md), pure: sightings, slots, tiers and times in,
verdicts out. No I/O, no clock, no actor: the session feeds it what the node said and when.

A tier of N confirmations is met when the transaction is at ``confirmed`` and the newest slot
seen is at least N slots past its landing slot; a ``finalized`` tier is met by a ``finalized``
sighting, and reports N. A transaction is ``expired`` only when the block height at
``confirmed`` is past its last valid block height and a status lookup made after that reading
does not know it; ``timed_out`` once the tier's time is up without either.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from xorj_actors.chain.settings import Tier

__all__ = [
    "Commitment",
    "Landing",
    "OutcomeStatus",
    "Verdict",
    "deadline",
    "depth_slot",
    "expiry",
    "judge",
    "land",
    "may_have_expired",
    "subscriptions_needed",
    "time_out",
]


class Commitment(enum.StrEnum):
    """A node's commitment levels, as the JSON-RPC API spells them."""

    PROCESSED = "processed"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"


class OutcomeStatus(enum.StrEnum):
    """Every ``SignatureOutcome.status`` (see the message for what each allows the sender)."""

    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    TIMED_OUT = "timed_out"

    def __repr__(self) -> str:
        # An undelivered outcome is audited as repr(message): it must read as it did when the
        # status was a plain string ('confirmed', not <OutcomeStatus.CONFIRMED: 'confirmed'>).
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a transaction was seen at ``confirmed`` or ``finalized``."""

    slot: int
    err: str | None  # compact JSON of the on-chain error, None on success
    finalized: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decided outcome, everything of the ``SignatureOutcome`` but who and how long."""

    status: OutcomeStatus
    slot: int | None  # the landing slot, None when it was never seen landed
    confirmations: int
    error: str | None


def land(previous: Landing | None, slot: int, err: str | None, commitment: Commitment) -> Landing | None:
    """What is known after a sighting at ``commitment`` (a notification or a poll).

    ``processed`` proves nothing (a fork may drop it): the previous landing stands. Finality,
    once seen, is never lost; the newest slot and error win otherwise.
    """
    if commitment == Commitment.PROCESSED:
        return previous
    finalized = commitment == Commitment.FINALIZED or (previous is not None and previous.finalized)
    return Landing(slot, err, finalized)


def judge(landing: Landing | None, tier: Tier, tip: int) -> Verdict | None:
    """The outcome once ``tier`` is met with the newest slot at ``tip``; None while it waits."""
    if landing is None:
        return None
    status = OutcomeStatus.CONFIRMED if landing.err is None else OutcomeStatus.FAILED
    if landing.finalized:
        return Verdict(status, landing.slot, tier.confirmations, landing.err)  # finalized counts as N
    if tier.finalized:
        return None
    depth = tip - landing.slot
    if depth >= tier.confirmations:
        return Verdict(status, landing.slot, depth, landing.err)
    return None


def depth_slot(landing: Landing, tier: Tier) -> int | None:
    """The tip at which :func:`judge` can next say yes; None when only finality can."""
    return None if tier.finalized else landing.slot + tier.confirmations


def subscriptions_needed(tiers: Iterable[Tier], landing: Landing | None) -> set[Commitment]:
    """The commitments still worth a ``signatureSubscribe`` for waiters under ``tiers``."""
    wanted = set()
    for tier in tiers:
        if tier.finalized:
            if landing is None or not landing.finalized:
                wanted.add(Commitment.FINALIZED)
        elif landing is None:
            wanted.add(Commitment.CONFIRMED)
    return wanted


def may_have_expired(last_valid_block_height: int, tip: int) -> bool:
    """Whether an expiry check is worth a lookup: block height never exceeds the slot, so a
    transaction whose last valid height is not below the tip cannot have expired."""
    return last_valid_block_height < tip


def expiry(landing: Landing | None, found: bool, height: int, last_valid_block_height: int) -> Verdict | None:
    """The expiry verdict of a status lookup (``searchTransactionHistory``) made after the block
    height at ``confirmed`` read ``height``; None when the transaction may still land.

    ``found``: the lookup knew the signature at any commitment, ``processed`` included.
    """
    if found or landing is not None or height <= last_valid_block_height:
        return None
    error = (
        f"blockhash expired: block height {height} at confirmed is past last valid block height "
        f"{last_valid_block_height} and the node does not know the signature (searchTransactionHistory): "
        "it can never land; safe to re-sign"
    )
    return Verdict(OutcomeStatus.EXPIRED, None, 0, error)


def deadline(received: float, tier: Tier) -> float:
    """When a watch received at ``received`` (monotonic seconds) times out under ``tier``."""
    return received + tier.timeout_s


def time_out(landing: Landing | None, tier: Tier, tip: int, poll_error: str | None = None) -> Verdict:
    """The ``timed_out`` verdict at the tier's deadline (after the last look found nothing final).

    ``poll_error``: why that last status check failed, if it did.
    """
    error = f"no outcome within {tier.timeout_s:g} s (tier {tier.describe()})"
    if landing is not None:
        wanted = "finalized" if tier.finalized else f"{tier.confirmations} confirmations deep"
        error += f"; landed in slot {landing.slot} at confirmed, not yet {wanted}"
    error += "; the transaction may still land: do not re-sign before it expires"
    if poll_error is not None:
        error += f" (final status check failed: {poll_error})"
    if landing is None:
        return Verdict(OutcomeStatus.TIMED_OUT, None, 0, error)
    return Verdict(OutcomeStatus.TIMED_OUT, landing.slot, max(tip - landing.slot, 0), error)
