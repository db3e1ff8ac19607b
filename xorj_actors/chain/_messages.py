"""Messages of the Confirmation actor, and the name it registers under."""

from __future__ import annotations

from supervisors import Message, Ref
from xorj_actors.chain._book import OutcomeStatus

__all__ = [
    "CONFIRMATION_NAME",
    "ConfirmationHealth",
    "GetConfirmationHealth",
    "GetWatches",
    "SignatureOutcome",
    "Unwatch",
    "WatchRefused",
    "WatchSignature",
    "WatchState",
    "Watches",
]

#: The actor's registered name in the runtime (stable across its restarts).
CONFIRMATION_NAME = "confirmation"


class WatchSignature(Message):
    """Watch a sent transaction until its outcome; ``reply_to`` gets a :class:`SignatureOutcome`
    (or a :class:`WatchRefused` if the watch cannot be taken)."""

    trade_id: str
    signature: str  # base58
    value_usd: float  # selects the confirmation tier
    last_valid_block_height: int  # from the blockhash the transaction was signed with
    # supervisors.Ref (the runtime's ActorRef): a field typed pykka.ActorRef accepts only that
    # exact class, and every ref the runtime hands out is a Ref.
    reply_to: Ref


class Unwatch(Message):
    """The executor gave up on (or replaced) ``signature``: stop watching it, no reply."""

    signature: str


class SignatureOutcome(Message):
    """How a watched transaction ended, told to the watch's ``reply_to``.

    ``status``: ``confirmed`` (landed without error at the tier's depth), ``failed`` (landed with
    an on-chain error at the tier's depth; the fee was charged), ``expired`` (its blockhash
    expired at ``confirmed`` and the node does not know the signature: it can never land, the one
    safe moment to re-sign), ``timed_out`` (no outcome within the tier's timeout: it may still
    land, do not re-sign).
    """

    trade_id: str
    signature: str
    status: OutcomeStatus
    slot: int | None  # slot the transaction landed in
    confirmations: int  # seen when delivered (finalized counts as the tier's number)
    error: str | None  # on-chain error as compact JSON, or why expired / timed out
    elapsed_s: float  # from WatchSignature received to outcome sent


class WatchRefused(Message):
    """A :class:`WatchSignature` that was not taken (``max_in_flight`` reached, a signature that
    is not base58, a negative ``last_valid_block_height``). Nothing watches it: the sender must."""

    trade_id: str
    signature: str
    reason: str


class GetConfirmationHealth(Message):
    """Ask for a :class:`ConfirmationHealth`."""


class ConfirmationHealth(Message):
    """The Confirmation actor's view of its connection."""

    connected: bool  # the WebSocket is open and slotSubscribe was accepted
    slot: int  # newest slot seen (slot notifications and polls); 0 before any
    seconds_since_slot: float | None  # since the last slot notification; None before any
    in_flight: int  # signatures watched
    reconnects: int  # connections opened after the first
    polls: int  # successful getSignatureStatuses requests
    last_error: str | None
    poll_outcomes: int  # outcomes decided by a poll rather than a notification
    subscribe_errors: int
    malformed_frames: int  # frames dropped: not JSON, wrong shape, oversized
    refused: int  # WatchRefused replies sent


class GetWatches(Message):
    """Ask for a :class:`Watches`: what is subscribed on the node, and how ``signatures`` stand
    (for tests and debugging; the answer is read while the loop thread runs on)."""

    signatures: tuple[str, ...] = ()


class WatchState(Message):
    """One signature as the Confirmation actor sees it."""

    signature: str
    waiters: int  # WatchSignature requests waiting for its outcome; 0: not watched
    landed_slot: int | None  # seen at confirmed or finalized in this slot; None: not yet
    finalized: bool


class Watches(Message):
    subscriptions: int  # signatureSubscribe subscriptions open on the node
    watches: tuple[WatchState, ...]  # one per signature asked about, in order
