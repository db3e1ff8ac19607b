"""What vaults tell the Executor, and what it tells them back."""

from __future__ import annotations

from pykka import ActorRef

from supervisors import Message

__all__ = ["FINAL_STATUSES", "GetExecutorStatus", "ExecutorStatus", "TradeOutcome", "TradeRequest"]

#: Outcomes after which the trade never touches the chain again.
FINAL_STATUSES: frozenset[str] = frozenset({"confirmed", "failed", "expired", "rejected"})


class TradeRequest(Message):
    """Swap ``amount_in`` base units of ``input_mint`` for ``output_mint`` in vault ``vault_id``.

    ``trade_id`` is deterministic for the vault and its rebalancing round: a request whose id
    already has an outcome is answered with that outcome and executes nothing. The id is an
    opaque key: the vault, the round and the trade's place in it travel as their own fields.
    """

    trade_id: str
    vault_id: str
    #: The vault's round (plan) this trade belongs to: a vault never has two rounds in flight.
    round_key: str
    #: The trade's place in its round's plan.
    index: int
    input_mint: str
    output_mint: str
    amount_in: int
    #: The profile's limit: the quote is checked against it before anything is signed.
    slippage_bps: int
    #: USD value of the input at the vault's prices: selects the confirmation tier.
    value_usd: float
    #: A trade that only lowers exposure (flatten): allowed in the kill switch's reducing mode.
    reduces_exposure: bool = False
    reply_to: ActorRef | None = None


class TradeOutcome(Message):
    """Where a trade ended.

    ``status``: ``confirmed``, ``failed`` (landed with an on-chain error), ``expired`` (certainly
    never landed), ``rejected`` (refused before it was sent: halt, breaker, slippage, simulation,
    a non-retryable error), or ``timed_out`` (not final: the transaction may still land; the
    executor keeps watching it and refuses the vault's new trades until it is settled).
    """

    trade_id: str
    vault_id: str
    #: The request's mints, so the vault needs no record of what it sent.
    input_mint: str
    output_mint: str
    status: str
    signature: str | None = None
    slot: int | None = None
    confirmations: int = 0
    #: The on-chain error (JSON) or why it was rejected/expired.
    error: str | None = None
    error_class: str | None = None
    in_amount: int = 0
    #: The quoted output (the chain's balance change is what actually arrived).
    out_amount: int = 0
    attempts: int = 0
    #: True when this answers a repeated request from the recorded outcome.
    replayed: bool = False


class GetExecutorStatus(Message):
    pass


class ExecutorStatus(Message):
    accepted: int
    in_flight: int
    awaiting_confirmation: int
    unsettled_vaults: tuple[str, ...]
    #: Vaults with any trade in flight.
    in_flight_vaults: tuple[str, ...]
    outcomes: tuple[tuple[str, int], ...]
    reconciled: bool
