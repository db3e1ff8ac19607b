"""The halt protocol as every engine actor speaks it."""

from __future__ import annotations

from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import Actor, MailboxFull
from xorj_actors.kill_switch._board import HaltBoard
from xorj_actors.kill_switch._lane import KillSwitchRef
from xorj_actors.messages import Halt, HaltAck, Register, Resume

__all__ = ["KILL_SWITCH_NAME", "Participant"]

#: The kill switch's registered name in the runtime (stable across its restarts).
KILL_SWITCH_NAME = "kill_switch"


class Participant(Actor):
    """Base of every engine actor: it halts on :class:`Halt`, acknowledges, and resumes.

    It starts halted if the board says so (an actor started, or restarted, during a halt is
    halted from its first message). Subclasses override :meth:`on_halt` to stop their work and
    report what is still in flight, :meth:`on_resume` to pick up again, and call
    ``super().on_start()`` if they override ``on_start``.

    Class attributes:
        role: ``"signer"`` actors are halted before everyone else.
    """

    role: ClassVar[str] = "worker"

    def __init__(self, board: HaltBoard) -> None:
        super().__init__()
        self.board = board
        status = board.status
        self.halted = status.halted
        self.halt_epoch = status.epoch
        self.position_factor = 0.0 if status.halted else status.factor

    @property
    def name(self) -> str:
        return self.actor_inbox.name

    def on_start(self) -> None:
        # What it started on: an actor already current is told nothing more.
        self._to_kill_switch(
            Register(
                urn=self.actor_urn,
                name=self.name,
                role=self.role,
                epoch=self.halt_epoch,
                halted=self.halted,
                factor=self.position_factor,
            )
        )
        if self.halted:
            self._ack(self.halt_epoch, self.in_flight())

    def _handle_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Halt:
            self.halted = True
            self.halt_epoch = max(self.halt_epoch, message.epoch)
            self.position_factor = 0.0
            self._ack(message.epoch, self.on_halt(message))
            return None
        if kind is Resume:
            if message.epoch >= self.halt_epoch:
                self.halted = False
                self.position_factor = message.factor
                self.on_resume(message)
            return None
        return super()._handle_receive(message)

    def _ack(self, epoch: int, in_flight: int) -> None:
        """Ack halt ``epoch``: into the kill switch's lane as a plain value (no message built per
        actor per halt), or as a ``HaltAck`` to a kill switch without one."""
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        if type(ks) is not KillSwitchRef:
            self._to_kill_switch(HaltAck(epoch=epoch, actor=self.actor_urn, in_flight=in_flight))
            return
        try:
            ks.ack(self.actor_urn, epoch, in_flight)
        except ActorDeadError as exc:
            logger.warning("{}: could not reach the kill switch: {!r}", self.name, exc)

    def _to_kill_switch(self, message: Any) -> None:
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        if ks is None:
            return  # it is restarting; the new one finds us and re-sends the halt
        try:
            ks.tell(message)
        except (ActorDeadError, MailboxFull) as exc:
            logger.warning("{}: could not reach the kill switch: {!r}", self.name, exc)

    # -- hooks -------------------------------------------------------------------------------

    def on_halt(self, halt: Halt) -> int:
        """Stop starting new work (drop pending unsigned work on EMERGENCY); return in-flight count."""
        return self.in_flight()

    def on_resume(self, resume: Resume) -> None:
        """Trading may go on at ``resume.factor`` of the position limits."""

    def in_flight(self) -> int:
        """Work that continues through a graceful halt (e.g. transactions awaiting confirmation)."""
        return 0
