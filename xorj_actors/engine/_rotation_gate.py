"""When the engine lets its keys be rotated (docs/SECURITY.md, "Key rotation"): the schedule
waits while the kill switch is not ARMED or the audit log cannot be written; an operator's
``ctl rotate-key`` goes on, but only once its audit entry is committed (fail closed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xorj_actors.audit import AUDIT_NAME, AuditState, append_durable, audit_event
from xorj_actors.kill_switch import HaltBoard, KillSwitchState
from xorj_actors.secrets import OwnedKey

__all__ = ["ctl_rotation_recorded", "schedule_postponed"]


def schedule_postponed(board: HaltBoard, runtime: Any) -> str | None:
    """Why the schedule must not rotate now (None: it may): a halt is no time to change the keys
    the recovery and the audit trail depend on."""
    state = board.status.state
    if state != KillSwitchState.ARMED:
        return f"the kill switch is {state}, not ARMED"
    if runtime is None or runtime.whereis(AUDIT_NAME) is None:
        return "the audit writer is not running"
    for actor in runtime.actors():
        status = actor.status
        if isinstance(status, AuditState) and status.fail_closed:
            return f"the audit log cannot be written ({status.reason})"
    return None


def ctl_rotation_recorded(runtime_of: Callable[[], Any], timeout_s: float) -> Callable[[OwnedKey], str | None]:
    """``before_ctl``: commit a ``key rotation requested`` entry before an operator's rotation;
    why it could not be (the rotation is then refused), or None."""

    def recorded(key: OwnedKey) -> str | None:
        runtime = runtime_of()
        if runtime is None:
            return "the engine is not running"
        event = audit_event("SYSTEM_EVENT", "secrets", {"what": "key rotation requested", "key": key.value,
                                                        "trigger": "ctl"}, severity="WARNING")
        try:
            append_durable(runtime, event, timeout_s)
        except Exception as exc:  # noqa: BLE001 - no audit actor, unavailable, timed out: not rotated
            return f"{type(exc).__name__}: {exc}"
        return None

    return recorded
