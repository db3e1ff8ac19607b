"""``[confirmation]``: how sure the engine must be that a transaction landed, and how long it waits.

A transaction's value selects a tier (``[[confirmation.tiers]]``): the confirmations it needs,
whether it must be finalized, and how long the Confirmation actor waits before it reports
``timed_out``. See docs/CONFIRMATION.md for what a confirmation means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xorj_actors._settings import tier_of_value, validate_value_tiers

__all__ = ["DEFAULT_TIERS", "ConfirmationSettings", "Tier", "tier_for"]

#: A confirmation count past this is a typo, not a policy (mainnet finalizes after ~32 slots).
_MAX_CONFIRMATIONS = 1_000
_MAX_TIMEOUT_S = 3_600.0


@dataclass(frozen=True, slots=True)
class Tier:
    """``[[confirmation.tiers]]``: what a transaction worth at least ``min_value_usd`` needs."""

    #: Lower bound (inclusive) of the transaction's USD value for this tier.
    min_value_usd: float
    #: Slots on top of the landing slot, counted once the transaction is at ``confirmed``.
    confirmations: int
    #: Seconds from the watch request until the outcome is ``timed_out``.
    timeout_s: float
    #: Wait for the ``finalized`` commitment (then the outcome reports ``confirmations``).
    finalized: bool = False

    def validate(self) -> None:
        if not math.isfinite(self.min_value_usd) or self.min_value_usd < 0:
            raise ValueError("min_value_usd: must be a finite number >= 0")
        if not 1 <= self.confirmations <= _MAX_CONFIRMATIONS:
            raise ValueError(f"confirmations: must be between 1 and {_MAX_CONFIRMATIONS}")
        if not math.isfinite(self.timeout_s) or not 0 < self.timeout_s <= _MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s: must be in (0, {_MAX_TIMEOUT_S:g}]")

    def describe(self) -> str:
        """``">= $10000: 3 confirmations, finalized, 300 s"``, for logs and outcome errors."""
        done = f"{self.confirmations} confirmation{'s' if self.confirmations != 1 else ''}"
        return f">= ${self.min_value_usd:g}: {done}{', finalized' if self.finalized else ''}, {self.timeout_s:g} s"


#: The default policy, lowest value first.
DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(min_value_usd=0.0, confirmations=1, timeout_s=60.0),
    Tier(min_value_usd=100.0, confirmations=1, timeout_s=120.0),
    Tier(min_value_usd=1_000.0, confirmations=2, timeout_s=180.0),
    Tier(min_value_usd=10_000.0, confirmations=3, timeout_s=300.0, finalized=True),
)


def tier_for(value_usd: float, tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> Tier:
    """The tier of a transaction worth ``value_usd`` (``tiers`` sorted, the first at $0).

    A value that is not a finite number >= 0 gets the strictest tier: a bad value must never
    make a transaction look safer than it is.
    """
    return tier_of_value(value_usd, tiers)


@dataclass(frozen=True, slots=True)
class ConfirmationSettings:
    """``[confirmation]``: the Confirmation actor (one WebSocket to the RPC node)."""

    #: Value-based requirements, lowest ``min_value_usd`` first; the first must be 0.
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    #: Reconnect backoff: the first delay, doubled per failed attempt up to ``reconnect_max_s``;
    #: each delay is drawn uniformly from its upper half (jitter).
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 5.0
    #: A connected node that sends no slot for this long is a network fault: the connection is
    #: replaced, every signature in flight is polled, the network breaker is told.
    slot_stall_s: float = 10.0
    #: While disconnected (or a subscription failed), every signature concerned is polled with
    #: ``getSignatureStatuses`` this often.
    poll_interval_s: float = 2.0
    #: Signatures watched at once; past it a watch is refused with a ``WatchRefused`` reply.
    max_in_flight: int = 20_000
    #: Frames larger than this are dropped unparsed (the connection stays up); frames larger than
    #: 16 times this close the connection (the WebSocket library's hard limit), then the actor
    #: reconnects and polls.
    max_frame_bytes: int = 1 << 20
    #: Timeout of one JSON-RPC HTTP request (getSignatureStatuses, getBlockHeight).
    http_timeout_s: float = 5.0
    #: Timeout of the WebSocket opening handshake.
    connect_timeout_s: float = 5.0

    def validate(self) -> None:
        validate_value_tiers(self.tiers)
        for low, high in zip(self.tiers, self.tiers[1:]):
            # A larger trade needing less than a smaller one is a configuration mistake.
            if high.confirmations < low.confirmations or (low.finalized and not high.finalized):
                raise ValueError("tiers: requirements must not decrease as min_value_usd grows")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s <= 300:
            raise ValueError("reconnect_initial_s: must be > 0 and <= reconnect_max_s (at most 300)")
        if not 0.1 <= self.slot_stall_s <= 600:
            raise ValueError("slot_stall_s: must be between 0.1 and 600 seconds")
        if not 0.01 <= self.poll_interval_s <= 60:
            raise ValueError("poll_interval_s: must be between 0.01 and 60 seconds")
        if not 1 <= self.max_in_flight <= 1_000_000:
            raise ValueError("max_in_flight: must be between 1 and 1000000")
        if not 4_096 <= self.max_frame_bytes <= 64 << 20:
            raise ValueError("max_frame_bytes: must be between 4096 and 67108864")
        if not 0 < self.http_timeout_s <= 60:
            raise ValueError("http_timeout_s: must be in (0, 60]")
        if not 0 < self.connect_timeout_s <= 60:
            raise ValueError("connect_timeout_s: must be in (0, 60]")

    def tier_for(self, value_usd: float) -> Tier:
        """The configured tier of a transaction worth ``value_usd`` (see :func:`tier_for`)."""
        return tier_for(value_usd, self.tiers)
