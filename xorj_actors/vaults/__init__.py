"""Vault actors: one per user vault, activated on demand.

Until the decision issue brings reconciliation and trade generation, a vault counts rounds and
refuses them while halted, so the halt protocol and the chaos tests have real traffic to stop.
"""

from __future__ import annotations

from typing import Any

from supervisors import Message
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt, HaltMode

__all__ = ["Round", "RoundResult", "Vault"]


class Round(Message):
    """Run one rebalancing round."""

    round: int


class RoundResult(Message):
    vault_id: str
    round: int
    ran: bool
    reason: str


class Vault(Participant):
    def __init__(self, board: HaltBoard, vault_id: str) -> None:
        super().__init__(board)
        self.vault_id = vault_id
        self.rounds_run = 0
        self.rounds_refused = 0
        self.pending_unsigned: tuple[int, ...] = ()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Round):
            if self.halted:
                self.rounds_refused += 1
                return RoundResult(vault_id=self.vault_id, round=message.round, ran=False, reason="halted")
            self.rounds_run += 1
            return RoundResult(vault_id=self.vault_id, round=message.round, ran=True, reason="ok")
        return super().on_receive(message)

    def on_halt(self, halt: Halt) -> int:
        if halt.mode is HaltMode.EMERGENCY:
            self.pending_unsigned = ()  # dropped at once, never signed
        return self.in_flight()
