"""The halt board: the kill switch's current decision, readable by every actor at once.

Messages carry halts to actors; the board exists for the moments a message cannot be waited for:
an actor starting during a halt must start halted, and a signer must refuse the instant the kill
switch decides, even if the Halt is still queued behind the signature it is making. Only the
kill switch writes it; readers get an immutable snapshot (a single attribute read is atomic).
"""

from __future__ import annotations

from supervisors import Message

__all__ = ["STARTING", "HaltBoard", "HaltStatus"]

#: The board's state before a kill switch of this process has published anything.
STARTING = "STARTING"


class HaltStatus(Message):
    state: str
    epoch: int
    halted: bool
    factor: float  # position-limit factor; 0.0 while halted
    #: REDUCING (an operator's flatten): still ``halted``, but trades that only reduce exposure
    #: (``reduces_exposure=True``) may be signed. Readers check it only where they decide on one.
    reducing: bool = False
    #: The vaults being flattened (REDUCING only): the executor lets no other vault's trade through.
    reducing_vaults: frozenset[str] = frozenset()


class HaltBoard:
    """Holds the latest :class:`HaltStatus`. Starts halted: nothing trades before the kill
    switch has read its state file and published."""

    __slots__ = ("_status",)

    def __init__(self) -> None:
        self._status = HaltStatus(state=STARTING, epoch=0, halted=True, factor=0.0)

    @property
    def status(self) -> HaltStatus:
        return self._status

    def publish(self, status: HaltStatus) -> None:
        self._status = status
