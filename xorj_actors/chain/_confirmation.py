"""The Confirmation actor: watches sent transactions until their outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError
from solders.signature import Signature

from supervisors import LoopThread, MailboxFull
from xorj_actors.chain._messages import (
    CONFIRMATION_NAME,
    ConfirmationHealth,
    GetConfirmationHealth,
    GetWatches,
    Unwatch,
    Watches,
    WatchRefused,
    WatchSignature,
    WatchState,
)
from xorj_actors.chain._session import Session
from xorj_actors.chain.settings import ConfirmationSettings
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt
from xorj_actors.quotas import Quotas

__all__ = ["Confirmation"]

#: Seconds to start or stop the loop thread (its setup only creates tasks; its cleanup closes
#: the socket with a one-second close handshake at most).
_LOOP_TIMEOUT_S = 5.0
_NO_NODE = "no RPC node configured (ws_url, rpc_url)"


class Confirmation(Participant):
    """One WebSocket to the RPC node: ``slotSubscribe`` for the clock, ``signatureSubscribe`` per
    transaction in flight, ``getSignatureStatuses`` polls for whatever a subscription missed.

    Handlers only check and forward to the loop thread, which tells each outcome to the watch's
    ``reply_to`` directly. In-flight transactions are already sent, so a halt (graceful or
    emergency) changes nothing here: it keeps confirming them, and keeps accepting watches (a
    transaction signed before the halt may still be sent and must be followed).

    Args:
        board: the kill switch's halt board.
        settings: ``[confirmation]``.
        ws_url: the node's PubSub URL (localnet: ``urls["ws"]``).
        rpc_url: the node's JSON-RPC URL (localnet: ``urls["rpc"]``).
        on_outcome: called with ``(status, elapsed_s)`` on the loop thread for every outcome
            (metrics); it must not block.
        trace: benchmark hook, called on the loop thread with ``(signature, perf_counter at frame
            arrival)`` for every signature notification; it must not block.
        on_reconnect: called on each new connection after the first (metrics).
        on_slot: called on the loop thread for each slot notification (metrics); it must not block.
        quotas: the budgets its polls (``rpc_read``) and subscriptions (``ws_subscriptions``)
            take turns in; None: unbudgeted (the in-process localnet).
    """

    # Starting and stopping the loop thread waits (bounded); that must not hold a pool worker.
    dedicated_thread: ClassVar[bool] = True
    # Executors may watch bursts as large as max_in_flight (default 20,000).
    mailbox_capacity: ClassVar[int | None] = 32_768

    def __init__(
        self,
        board: HaltBoard,
        settings: ConfirmationSettings | None = None,
        *,
        ws_url: str | None = None,
        rpc_url: str | None = None,
        on_outcome: Callable[[str, float], None] | None = None,
        trace: Callable[[str, float], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_slot: Callable[[], None] | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        super().__init__(board)
        settings = settings or ConfirmationSettings()
        settings.validate()
        ws_url, rpc_url = ws_url or None, rpc_url or None  # "" from the config: no node
        if (ws_url is None) != (rpc_url is None):
            raise ValueError("ws_url, rpc_url: give both (a node) or neither (no node: watches are refused)")
        if ws_url is not None and not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url: must be a ws:// or wss:// URL, got {ws_url!r}")
        if rpc_url is not None and not rpc_url.startswith(("http://", "https://")):
            raise ValueError(f"rpc_url: must be an http:// or https:// URL, got {rpc_url!r}")
        self.settings = settings
        self._node = (ws_url, rpc_url) if ws_url is not None and rpc_url is not None else None
        self._on_outcome, self._trace, self._on_reconnect = on_outcome, trace, on_reconnect
        self._on_slot = on_slot
        self._quotas = quotas
        #: Made in on_start (it needs the actor's name); None without a node (no URLs): every
        #: watch is refused, so nothing trades unconfirmed.
        self.session: Session | None = None
        self._refused_here = 0
        self._loop_thread: LoopThread | None = None

    def on_start(self) -> None:
        super().on_start()
        self.runtime.register_name(CONFIRMATION_NAME, self.actor_ref)
        if self._node is None:
            logger.warning("{}: no RPC node configured (ws_url, rpc_url); every watch is refused", self.name)
            return
        ws_url, rpc_url = self._node
        self.session = Session(
            self.settings, ws_url, rpc_url, runtime=self.runtime, name=self.name,
            on_outcome=self._on_outcome, trace=self._trace, on_reconnect=self._on_reconnect, on_slot=self._on_slot,
            quotas=self._quotas,
        )
        self._loop_thread = LoopThread(f"{self.name}-loop")
        self._loop_thread.start(self.session.start(), _LOOP_TIMEOUT_S)

    def on_terminate(self) -> None:
        loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is not None and self.session is not None:
            loop_thread.stop(self.session.close, _LOOP_TIMEOUT_S)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is WatchSignature:
            self._watch(message)
            return None
        if kind is Unwatch:
            if self.session is not None:
                self.session.unwatch_threadsafe(message.signature)
            return None
        if kind is GetConfirmationHealth:
            return self._health()
        if kind is GetWatches:
            return self._watches(message.signatures)
        return super().on_receive(message)

    def _health(self) -> ConfirmationHealth:
        session = self.session
        if session is None:
            return ConfirmationHealth(
                connected=False, slot=0, seconds_since_slot=None, in_flight=0, reconnects=0, polls=0,
                last_error=_NO_NODE, poll_outcomes=0, subscribe_errors=0, malformed_frames=0,
                refused=self._refused_here,
            )
        v = session.vitals
        last = v.last_slot_at
        return ConfirmationHealth(
            connected=session.connected,
            slot=v.tip,
            seconds_since_slot=round(time.monotonic() - last, 3) if last else None,
            in_flight=session.in_flight,
            reconnects=v.reconnects,
            polls=v.polls,
            last_error=v.last_error,
            poll_outcomes=v.poll_outcomes,
            subscribe_errors=v.subscribe_errors,
            malformed_frames=v.malformed_frames,
            refused=v.refused,
        )

    def _watches(self, signatures: tuple[str, ...]) -> Watches:
        session = self.session
        states = []
        for signature in signatures:
            watch = session.watch_of(signature) if session is not None else None
            landing = watch.landing if watch is not None else None
            states.append(
                WatchState(
                    signature=signature,
                    waiters=len(watch.waiters) if watch is not None else 0,
                    landed_slot=landing.slot if landing is not None else None,
                    finalized=landing is not None and landing.finalized,
                )
            )
        return Watches(subscriptions=session.subscriptions if session is not None else 0, watches=tuple(states))

    def _watch(self, message: WatchSignature) -> None:
        received = time.monotonic()
        problem = None
        try:
            Signature.from_string(message.signature)
        except ValueError:
            problem = f"signature is not a base58 transaction signature: {message.signature!r:.100}"
        if message.last_valid_block_height < 0:
            problem = f"last_valid_block_height is negative: {message.last_valid_block_height}"
        if self.session is None:
            problem = _NO_NODE
        elif problem is None:
            self.session.watch_threadsafe(message, received)
            return
        if self.session is not None:
            self.session.refuse_threadsafe(message, problem)
            return
        self._refused_here += 1
        logger.error("{}: refused to watch {} (trade {}): {}", self.name, message.signature, message.trade_id, problem)
        try:
            message.reply_to.tell(WatchRefused(trade_id=message.trade_id, signature=message.signature, reason=problem))
        except (ActorDeadError, MailboxFull) as exc:
            logger.error("{}: refusal for trade {} not delivered: {!r}", self.name, message.trade_id, exc)

    # -- halt protocol ----------------------------------------------------------------------

    def on_halt(self, halt: Halt) -> int:
        in_flight = self.in_flight()
        logger.info("{}: halted ({}); still confirming {} signatures in flight", self.name, halt.mode.value, in_flight)
        return in_flight

    def in_flight(self) -> int:
        return self.session.in_flight if self.session is not None else 0
