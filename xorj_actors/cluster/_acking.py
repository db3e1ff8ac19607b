"""This node's ack of a cluster halt: published once its local halt is complete.

Event-driven: the engine hands the node every kill-switch event, and the node wakes the pending
acks (:meth:`ClusterAcks.changed`); the ack then reads the kill switch's status again. The events
that matter are ``halt complete`` and ``halt not acknowledged`` (an actor given up at the kill
switch's ack deadline); a change of the halt record wakes them too (a cleared or overtaken epoch
ends its ack). A slow poll (:data:`SAFETY_POLL_S`) is only the safety net for a missed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from loguru import logger

from xorj_actors.cluster._errors import ClusterError
from xorj_actors.cluster._halt import HaltBoard
from xorj_actors.cluster._local import LocalKillSwitch

__all__ = ["ClusterAcks", "SAFETY_POLL_S"]

#: How often a pending ack reads the kill switch's status when no event woke it.
SAFETY_POLL_S = 2.0


class ClusterAcks:
    """The acks this node publishes (on the node's loop).

    Args:
        board: the cluster halt board (where the acks are published).
        kill_switch: the local kill switch.
        local_ack_deadline_s: the kill switch's ``ack_deadline_s``: an incomplete local halt is
            published with its missing actors once it has passed.
        retry_s: how long to wait before publishing again after NATS did not take an ack.
    """

    def __init__(self, board: HaltBoard, kill_switch: LocalKillSwitch, local_ack_deadline_s: float, retry_s: float) -> None:
        self._board = board
        self._kill_switch = kill_switch
        self._local_ack_deadline_s = local_ack_deadline_s
        self._retry_s = retry_s
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """The kill switch reported an event, or the halt record changed (on the loop): every
        pending ack reads the status again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # the woken acks hold this one; later waits take the new one

    async def ack(
        self, epoch: int, local_epoch: int, pending: Callable[[], bool], halted: Callable[[int], None]
    ) -> None:
        """Publish the ack of cluster ``epoch`` once the local halt (``local_epoch`` or later) is
        complete, or with the missing actors once the local ack deadline has passed (again when
        it completes). ``pending``: whether the epoch is still the open one; ``halted(local
        epoch)`` is told the local halt this node is in for it, once the kill switch shows it."""
        kill_switch = self._kill_switch
        deadline = time.monotonic() + self._local_ack_deadline_s
        sent_incomplete = False
        while pending():
            changed = self._changed  # taken before the read: an event during it is not lost
            wait_s = SAFETY_POLL_S if sent_incomplete else max(0.0, deadline - time.monotonic())
            status = await asyncio.to_thread(kill_switch.status)
            if status is not None and status.epoch >= local_epoch and kill_switch.halted:
                halted(status.epoch)
                if status.complete or (not sent_incomplete and time.monotonic() >= deadline):
                    try:
                        ack = await self._board.publish_ack(epoch, len(status.acked), status.missing)
                    except ClusterError as exc:
                        logger.warning("cluster: ack of halt epoch {} not published yet: {}", epoch, exc)
                        await asyncio.sleep(self._retry_s)
                        continue
                    logger.info("cluster: halt epoch {} acked: {} actors, missing {}", epoch, ack.acked, list(ack.missing))
                    if status.complete:
                        return
                    sent_incomplete = True
                    wait_s = SAFETY_POLL_S
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(wait_s, SAFETY_POLL_S) or SAFETY_POLL_S)
