"""One refresh of the live view: one bounded request per panel over the debug socket.

Each request is ``ctl``'s own (:func:`xorj_actors.ops.ctl.request`): a connection, one line, the
reply within the timeout, closed. The engine serves each on a thread of its own and answers
within its asks' 2 s, so the view can never hold up an actor. When ``status`` cannot reach the
engine the refresh stops there (DISCONNECTED) instead of trying every panel in turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from xorj_actors.ops.ctl import EXIT_UNREACHABLE, CtlError, request
from xorj_actors.top._model import Connection, ViewModel, build_view

__all__ = ["PANELS", "Poller", "Round"]

#: The commands asked each refresh, in order; ``cluster`` only on a cluster node.
PANELS: Final = ("status", "tree", "trades", "executor", "breakers", "strategy", "quotas", "cluster")

Request = Callable[..., Any]


@dataclass
class Round:
    """The replies of one refresh, by command, and the commands that failed, with why."""

    connection: Connection
    replies: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    at: float = 0.0


class Poller:
    """Asks the engine for every panel; remembers the last good round while disconnected.

    Args:
        path: the debug socket.
        timeout: seconds each request may take (``ctl``'s ``--timeout``).
        send: the request function (``ctl``'s; tests pass their own).
        clock: wall-clock seconds.
    """

    def __init__(
        self, path: Path, *, timeout: float, send: Request = request, clock: Callable[[], float] = time.time
    ) -> None:
        self.path, self.timeout, self._send, self._clock = path, timeout, send, clock
        self.last = Round(Connection.CONNECTING)
        #: The last round that reached the engine (kept on screen while disconnected).
        self.last_good: Round | None = None
        #: When the engine stopped answering (None while it answers).
        self.lost_at: float | None = None

    def ask(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """One request; raises ``CtlError`` as ``ctl`` does."""
        return self._send(self.path, cmd, args or {}, timeout=self.timeout)

    def poll(self) -> Round:
        """One refresh: every panel's command once (fewer when the engine is unreachable)."""
        now = self._clock()
        out = Round(Connection.CONNECTED, at=now)
        for cmd in PANELS:
            if cmd == "cluster" and "cluster" not in out.replies.get("status", {}):
                continue  # not clustered: no request that can only be refused
            try:
                out.replies[cmd] = self.ask(cmd)
            except CtlError as exc:
                if exc.code == EXIT_UNREACHABLE:
                    return self._lost(str(exc), now)
                out.errors[cmd] = str(exc)
            except OSError as exc:  # the connection broke mid-request (the engine went away)
                return self._lost(f"the connection to the engine broke: {exc}", now)
            except ValueError as exc:  # a reply that is not JSON
                out.errors[cmd] = f"unreadable reply: {exc}"
        self.last, self.last_good, self.lost_at = out, out, None
        return out

    def _lost(self, why: str, now: float) -> Round:
        if self.lost_at is None:
            self.lost_at = now
        self.last = Round(Connection.DISCONNECTED, errors={"engine": why}, at=now)
        return self.last

    def view(self, *, vaults_open: bool = False, text: str = "") -> ViewModel:
        """The screen: the last round, or while disconnected the last good one under DISCONNECTED."""
        shown = self.last if self.last.connection is not Connection.DISCONNECTED else (self.last_good or self.last)
        errors = dict(shown.errors)
        if self.last.connection is Connection.DISCONNECTED:
            errors = dict(self.last.errors)
        return build_view(
            shown.replies, errors, now=self._clock(), connection=self.last.connection,
            vaults_open=vaults_open, text=text,
        )
