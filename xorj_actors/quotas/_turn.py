"""One budgeted call as a context manager, and who is calling (a context variable).

RPC calls are made by clients that know their JSON-RPC method but not the vault they serve; the
executor sets :func:`budget_scope` once per trade task and every call below it waits its turn
as that vault's. A call that names its ``owner`` (a component: ``"gateway"``) waits as that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xorj_actors.quotas.settings import Endpoint

if TYPE_CHECKING:
    from xorj_actors.quotas._quotas import Permit, Quotas

__all__ = ["Scope", "Turn", "budget_scope", "current_scope", "rpc_endpoint", "turn"]

#: The JSON-RPC methods with a budget class of their own; every other method is a read.
_RPC_CLASSES = {
    "sendTransaction": Endpoint.RPC_SEND,
    "simulateTransaction": Endpoint.RPC_SIMULATE,
}


def rpc_endpoint(method: str) -> Endpoint:
    """The budget class of a Solana JSON-RPC ``method`` (send, simulate, or read)."""
    return _RPC_CLASSES.get(method, Endpoint.RPC_READ)


@dataclass(frozen=True, slots=True)
class Scope:
    """Who the calls below are made for: the fair queue's ``owner`` and the work's ``kind``."""

    owner: str = ""
    #: ``"unsigned"`` marks work an emergency halt drops while it waits (docs/QUOTAS.md).
    kind: str = ""


_SCOPE: ContextVar[Scope] = ContextVar("xorj_budget_scope", default=Scope())


def current_scope() -> Scope:
    """The scope of the running task (empty outside any)."""
    return _SCOPE.get()


@contextlib.contextmanager
def budget_scope(owner: str, kind: str = "") -> Iterator[Scope]:
    """Make the calls in this block (and the tasks it starts) wait as ``owner``'s ``kind`` work."""
    scope = Scope(owner, kind)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


class Turn:
    """A granted turn; tell it the answer's HTTP status (a 429 with its ``Retry-After``).

    A turn left without :meth:`answered` reports a plain success if its block ended normally,
    and nothing if it raised (a transport failure says nothing about the budget).
    """

    __slots__ = ("endpoint", "permit", "reported", "_quotas")

    def __init__(self, quotas: Quotas | None, endpoint: Endpoint, permit: Permit | None) -> None:
        self._quotas = quotas
        self.endpoint = endpoint
        self.permit = permit
        self.reported = False

    def answered(self, status: int, retry_after: str | float | None = None) -> None:
        """The provider answered with HTTP ``status``."""
        self.reported = True
        if self._quotas is not None:
            after = None if retry_after is None else str(retry_after)
            self._quotas.report(self.endpoint, status, permit=self.permit, retry_after=after)


class _Turned:
    """``async with`` one turn of ``endpoint`` (a no-op without budgets)."""

    __slots__ = ("_quotas", "_endpoint", "_owner", "_kind", "_deadline", "_turn")

    def __init__(
        self, quotas: Quotas | None, endpoint: Endpoint, owner: str | None, kind: str | None, deadline: float | None
    ) -> None:
        self._quotas, self._endpoint = quotas, endpoint
        self._owner, self._kind, self._deadline = owner, kind, deadline
        self._turn: Turn | None = None

    async def __aenter__(self) -> Turn:
        permit = None
        quotas = self._quotas
        if quotas is not None and (permit := quotas.grant_now(self._endpoint)) is None:
            scope = _SCOPE.get()
            permit = await quotas.acquire(
                self._endpoint,
                owner=self._owner or scope.owner or "engine",
                deadline=self._deadline,
                kind=self._kind if self._kind is not None else scope.kind,
            )
        self._turn = Turn(self._quotas, self._endpoint, permit)
        return self._turn

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        t = self._turn
        if t is not None and exc_type is None and not t.reported:
            t.answered(200)


def turn(
    quotas: Quotas | None,
    endpoint: Endpoint,
    *,
    owner: str | None = None,
    kind: str | None = None,
    deadline: float | None = None,
) -> _Turned:
    """``async with turn(quotas, endpoint) as t:`` waits ``endpoint``'s fair turn, then the block
    makes the call and tells ``t`` a 429. ``quotas`` None: unbudgeted (the in-process localnet).

    The queue's owner is ``owner``, else the :func:`budget_scope`'s, else ``"engine"``; the
    kind is ``kind`` if given, else the scope's.

    Raises:
        QuotaRefused, QuotaExpired, QuotaDropped: the call did not get its turn.
    """
    return _Turned(quotas, endpoint, owner, kind, deadline)
