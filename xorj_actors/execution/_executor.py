"""The Executor: carries each trade from request to a final, recorded outcome.

The actor is the mailbox; the work runs on its own event loop thread (:class:`Pipeline`), one
task per trade, so hundreds of trades wait on the network at once without a thread each. All
trade state lives on that loop; the actor's handlers only hand messages over to it.

The order of every trade (docs/EXECUTION.md), and the module that does each step:

1. idempotency (``_admission``): an id with a recorded outcome is answered from the record,
   nothing runs; an id naming another trade is refused; the same trade in flight joins it;
2. admission and gate (``_admission``): the executor reconciled, below ``max_in_flight``, the
   vault settled and not trading another round; then the kill switch armed and the breakers
   closed (or probing);
3. intent durable in the audit log (``_pipeline``);
4. quote, checked against the slippage limit; swap instructions; blockhash; priority fee
   (``_attempt``);
5. simulate (compute units; any error refuses); build the final message; market maker co-signs
   (``_attempt``);
6. gate again, then sign through the Signer actor (it refuses on its own once halted)
   (``_attempt``);
7. the signed bytes, signature and ``lastValidBlockHeight`` durable (``_attempt``), then send
   (preflight at confirmed), watch through the Confirmation actor, rebroadcast the same bytes
   until final (``_landing``);
8. outcome durable, vault told (``_pipeline``); in a cluster only while the vault's lease is
   held: a trade of a vault whose lease went is handed over, its outcome left to the lease
   holder (``HandOverVaults``). A retry is a new attempt only once the previous
   one can no longer land (failed on chain, refused by preflight, or expired for certain).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xorj_actors.chain import SignatureOutcome, WatchRefused
from xorj_actors.execution._messages import EXECUTOR_NAME, AdoptOpenTrades, GetExecutorStatus, HandOverVaults, TradeRequest
from xorj_actors.execution._options import ExecutorOptions
from xorj_actors.execution._pipeline import Pipeline
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt

__all__ = ["EXECUTOR_NAME", "Executor"]


class Executor(Participant):
    """The trade pipeline's actor (see the module docstring).

    Args:
        board: the halt board.
        settings: ``[execution]``.
        options: the wiring: endpoints, audit store, signer, hooks.
    """

    dedicated_thread: ClassVar[bool] = True  # it blocks only to load the ledger, but then for long

    def __init__(self, board: HaltBoard, settings: ExecutionSettings, options: ExecutorOptions) -> None:
        super().__init__(board)
        self.pipeline = Pipeline(self.runtime, board, settings, options)
        self.runtime.register_name(EXECUTOR_NAME, self.actor_ref)

    def on_start(self) -> None:
        self.pipeline.start(self.actor_ref)
        super().on_start()

    def on_terminate(self) -> None:
        self.pipeline.stop()

    def on_receive(self, message: Any) -> Any:
        pipeline = self.pipeline
        if isinstance(message, TradeRequest):
            pipeline.call(pipeline.submit, message)
            return None
        if isinstance(message, SignatureOutcome):
            pipeline.call(pipeline.landing.on_signature_outcome, message)
            return None
        if isinstance(message, WatchRefused):
            pipeline.call(pipeline.landing.on_watch_refused, message)
            return None
        if isinstance(message, GetExecutorStatus):
            return pipeline.status()
        if isinstance(message, AdoptOpenTrades):
            return pipeline.adopt_vaults(message.vault_ids)  # a future: the read may take a while
        if isinstance(message, HandOverVaults):
            return pipeline.hand_over_vaults(message.vault_ids)  # a future: it waits for their writes
        return super().on_receive(message)

    def on_halt(self, halt: Halt) -> int:
        self.pipeline.call(self.pipeline.on_halt, halt.mode)
        return self.in_flight()

    def in_flight(self) -> int:
        return self.pipeline.awaiting_confirmation
