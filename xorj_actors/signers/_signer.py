"""The Signer actor and its halt discipline."""

from __future__ import annotations

from typing import Any, ClassVar

from supervisors import Message
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt

__all__ = ["SignRequest", "SignResult", "Signer"]


class SignRequest(Message):
    """Sign ``payload`` (a serialized transaction message) for trade ``trade_id``."""

    trade_id: str
    payload: bytes


class SignResult(Message):
    trade_id: str
    signature: bytes | None
    refused: str | None  # the reason, when no signature was made


class Signer(Participant):
    """One key. Refuses the moment the kill switch decides to halt.

    It checks the halt board as well as its own halted flag before every signature, so a
    signature queued behind the Halt message is refused too.
    """

    role: ClassVar[str] = "signer"
    dedicated_thread: ClassVar[bool] = True  # PKCS#11 sessions are thread-affine

    def __init__(self, board: HaltBoard, key_name: str) -> None:
        super().__init__(board)
        self.key_name = key_name
        self.operations = 0
        self.refusals = 0

    def on_halt(self, halt: Halt) -> int:
        return 0  # a signature is never left half-made

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SignRequest):
            return self._sign(message)
        return super().on_receive(message)

    def _sign(self, request: SignRequest) -> SignResult:
        if self.halted or self.board.status.halted:
            self.refusals += 1
            return SignResult(trade_id=request.trade_id, signature=None, refused="halted: the kill switch is not armed")
        self.refusals += 1
        return SignResult(trade_id=request.trade_id, signature=None, refused=f"{self.key_name}: no key backend configured")
