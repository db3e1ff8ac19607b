"""A debug socket as ``ctl``'s ``request`` sees it, and replies of the shape the engine sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xorj_actors.ops.ctl import EXIT_UNREACHABLE, CtlError

__all__ = ["NOW", "TREE", "FakeEngine", "actor", "ks"]

NOW = 1_800_000_000.0


def actor(name: str, parent: str | None, cls: str = "Actor", state: str = "idle", **kw: Any) -> dict[str, Any]:
    return {"urn": f"urn:{name}", "name": name, "class": cls, "parent": parent and f"urn:{parent}", "state": state,
            "mailbox": kw.get("mailbox", 0), "restarts": kw.get("restarts", 0), "last_message": kw.get("last")}


TREE = [
    actor("root", None, "Supervisor"),
    actor("kill_switch", "root", "KillSwitch", last="GetStatus"),
    actor("vaults", "root", "Supervisor"),
    actor("vault-0000", "vaults", "Vault", mailbox=2),
    actor("vault-0001", "vaults", "Vault", "running", restarts=1),
    actor("vault-0002", "vaults", "Vault"),
    actor("ops", "root", "Supervisor"),
    actor("debug_socket", "ops", "DebugSocket", "running"),
]


def ks(state: str = "ARMED", **kw: Any) -> dict[str, Any]:
    base = {"state": state, "epoch": 0, "mode": None, "reason": None, "source": None, "triggered_at": None,
            "factor": 1.0, "registered": 5, "acked": [], "missing": [], "complete": False, "halt_latency_s": None}
    return {"kill_switch": {**base, **kw}, "actors": 8, "pid": 42, "uptime_s": 12.0, "endpoints": {}}


class FakeEngine:
    """The socket as ``request`` sees it: replies by command, or an error."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies, self.asked, self.down = replies, [], False
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, path: Path, cmd: str, args: dict[str, Any], *, timeout: float) -> Any:
        self.asked.append(cmd)
        self.calls.append((cmd, dict(args)))
        if self.down:
            raise CtlError(f"cannot reach the engine at {path}: No such file or directory", EXIT_UNREACHABLE)
        reply = self.replies.get(cmd)
        if isinstance(reply, Exception):
            raise reply
        return reply
