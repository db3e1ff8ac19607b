"""What vaults tell the Executor, and what it tells them back."""

from __future__ import annotations

from enum import StrEnum

from pykka import ActorRef

from supervisors import Message
from xorj_actors.jupiter import TradeApi

__all__ = [
    "AdoptOpenTrades",
    "EXECUTOR_NAME",
    "FINAL_STATUSES",
    "ExecutorStatus",
    "GetExecutorStatus",
    "TradeOutcome",
    "TradePhase",
    "TradeRequest",
    "TradeStatus",
]

#: The Executor's registered name in the runtime.
EXECUTOR_NAME = "executor"


class TradeStatus(StrEnum):
    """Where a trade ended (its value is what the audit log and the metrics carry)."""

    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    #: Not final: the transaction may still land.
    TIMED_OUT = "timed_out"


#: Outcomes after which the trade never touches the chain again.
FINAL_STATUSES: frozenset[TradeStatus] = frozenset(
    {TradeStatus.CONFIRMED, TradeStatus.FAILED, TradeStatus.EXPIRED, TradeStatus.REJECTED}
)


class TradePhase(StrEnum):
    """Where a trade in flight is in the executor's pipeline."""

    NEW = "new"
    #: Nothing signed yet: an emergency halt drops it.
    QUOTING = "quoting"
    SIGNING = "signing"
    SENT = "sent"
    #: Preflight refused the attempt: those bytes never land.
    REFUSED = "refused"
    #: The attempt's blockhash expired for certain.
    EXPIRED = "expired"
    #: The outcome is decided and being recorded: an emergency halt no longer cancels it.
    FINISHING = "finishing"

    @property
    def unsigned(self) -> bool:
        """Nothing of this attempt is signed: an emergency halt may drop the trade."""
        return self in (TradePhase.NEW, TradePhase.QUOTING)


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
    status: TradeStatus
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
    #: The API the last attempt went through (None: nothing was built).
    api: TradeApi | None = None
    #: True when this answers a repeated request from the recorded outcome.
    replayed: bool = False


class GetExecutorStatus(Message):
    pass


class AdoptOpenTrades(Message):
    """Cluster fail-over: this node has just taken the leases of ``vault_ids``. The executor reads
    their open trades from every chain of the audit store (another node's, or its own from an
    earlier run) on its ledger thread and settles each as it settles its own after a crash; the
    vaults' new trades are refused (``unsettled``) until then.

    Asked: the answer is a ``concurrent.futures.Future`` resolved, once every trade is in the
    executor's book, with the adopted trade ids (a tuple), or with the error that kept them
    from being read (then nothing of those vaults may trade: the lease is handed back).
    """

    vault_ids: tuple[str, ...]


class HandOverVaults(Message):
    """Cluster: this node no longer holds the leases of ``vault_ids`` (the fence already refuses
    them). The executor stops carrying their trades and records no outcome for any of them: each
    is the new lease holder's to settle from the audit store and the chain (docs/CLUSTER.md,
    "Hand-over"). Their tasks are cancelled (an unsigned trade is never signed, a sent one is no
    longer rebroadcast) and every durable write of theirs already begun is waited for, so the
    lease is given up only after the last entry this node writes for them.

    Asked: the answer is a ``concurrent.futures.Future`` resolved with the trade ids let go.
    """

    vault_ids: tuple[str, ...]


class ExecutorStatus(Message):
    """What the executor is carrying, read on its loop."""

    accepted: int
    in_flight: int
    awaiting_confirmation: int
    unsettled_vaults: tuple[str, ...]
    #: Vaults with any trade in flight.
    in_flight_vaults: tuple[str, ...]
    #: Outcomes by status (the status's plain value) since the executor started.
    outcomes: tuple[tuple[str, int], ...]
    reconciled: bool
    #: Trades in flight by phase (phases with none left out).
    phases: tuple[tuple[TradePhase, int], ...] = ()
    #: Sends skipped by extra send route (``[execution] send_urls``) since the executor started.
    route_skips: tuple[tuple[str, int], ...] = ()
    #: Jito bundles of ours the block engine has given no final status yet (tracked for the record).
    open_bundles: int = 0
