"""Kill-switch state: the validated state machine and the value that survives a restart.

Persistence (the authenticated file, the halt marker) is in ``_persistence``; the start-up
decision that reads both against the audit log is in ``_start_decision``.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode

__all__ = ["HALTED", "MAX_NONCES", "InvalidTransition", "KillSwitchState", "PersistedState", "check_transition"]

#: Digests of used recovery nonces kept, newest last (a request older than 300 s is stale anyway).
MAX_NONCES = 1000


class KillSwitchState(enum.StrEnum):
    ARMED = "ARMED"  #: trading allowed
    TRIGGERED = "TRIGGERED"  #: halted; only an authorised recovery leaves it
    RECOVERY_PENDING = "RECOVERY_PENDING"  #: recovery accepted; gradual restart under way
    MAINTENANCE = "MAINTENANCE"  #: halted on purpose by an operator
    #: halted, but trades that only reduce exposure may run (an operator's flatten)
    REDUCING = "REDUCING"


_S = KillSwitchState
TRANSITIONS: dict[KillSwitchState, frozenset[KillSwitchState]] = {
    _S.ARMED: frozenset({_S.TRIGGERED, _S.MAINTENANCE}),
    _S.TRIGGERED: frozenset({_S.TRIGGERED, _S.RECOVERY_PENDING, _S.REDUCING}),
    _S.RECOVERY_PENDING: frozenset({_S.ARMED, _S.TRIGGERED, _S.RECOVERY_PENDING}),
    _S.MAINTENANCE: frozenset({_S.TRIGGERED, _S.RECOVERY_PENDING, _S.REDUCING}),
    # Back to where the flatten started (TRIGGERED or MAINTENANCE), or a trigger.
    _S.REDUCING: frozenset({_S.TRIGGERED, _S.MAINTENANCE}),
}
#: States in which ordinary trading is refused. REDUCING is one: only exposure-reducing
#: trades pass, and an actor registering meanwhile must be told to halt, never to resume.
HALTED = frozenset({_S.TRIGGERED, _S.MAINTENANCE, _S.REDUCING})


class InvalidTransition(ValueError):
    """A transition the state machine does not allow; nothing changed."""


def check_transition(current: KillSwitchState, target: KillSwitchState) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"kill switch cannot go from {current.value} to {target.value}")


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What survives a restart. Written whole on every transition."""

    state: KillSwitchState = KillSwitchState.ARMED
    epoch: int = 0
    mode: str | None = None
    reason: str | None = None
    source: str | None = None
    triggered_at: float | None = None
    factor: float = 1.0
    #: SHA-256 (hex) of the nonces of accepted recovery requests (replay protection), newest
    #: last, bounded. Digests, not nonces: whatever an operator pasted there is never stored.
    nonce_digests: tuple[str, ...] = ()
    updated_at: float = field(default_factory=time.time)
    #: ``(sequence, new key fingerprint)`` of the audit chain's last KEY_ROTATION the kill switch
    #: saw: a log that no longer holds it was rolled back past a rotation (absent: none seen).
    audit_rotation: tuple[int, str] | None = None

    @property
    def halted(self) -> bool:
        return self.state in HALTED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["nonce_digests"] = list(self.nonce_digests)
        if self.audit_rotation is None:  # a file from before any rotation stays what it was
            del data["audit_rotation"]
        else:
            data["audit_rotation"] = list(self.audit_rotation)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> PersistedState:
        """Validate every field; raises ValueError naming the first one that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)[:5]}")
        try:
            state = KillSwitchState(data.get("state"))
        except ValueError:
            raise ValueError(f"state: unknown state {str(data.get('state'))[:40]!r}") from None
        epoch = data.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError("epoch: must be a non-negative integer")
        mode = _text(data, "mode", 16)
        if mode is not None and mode not in {m.value for m in HaltMode}:
            raise ValueError(f"mode: unknown mode {mode!r}")
        factor = _number(data, "factor", 1.0)
        if factor is None or not 0 < factor <= 1:
            raise ValueError("factor: must be in (0, 1]")
        digests = data.get("nonce_digests", [])
        if not isinstance(digests, list) or not all(_is_digest(d) for d in digests):
            raise ValueError("nonce_digests: must be a list of SHA-256 hex digests")
        return cls(
            state=state,
            epoch=epoch,
            mode=mode,
            reason=_text(data, "reason", REASON_LIMIT * 2),
            source=_text(data, "source", REASON_LIMIT),
            triggered_at=_number(data, "triggered_at", None),
            factor=factor,
            nonce_digests=tuple(digests),
            updated_at=_number(data, "updated_at", 0.0) or 0.0,
            audit_rotation=_rotation(data.get("audit_rotation")),
        )


def _text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise ValueError(f"{name}: must be a string of at most {limit} characters, or null")
    return value


def _number(data: dict[str, Any], name: str, default: float | None) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number")
    return float(value)


def _rotation(value: object) -> tuple[int, str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and not isinstance(value[0], bool)
            and value[0] > 0 and isinstance(value[1], str) and len(value[1]) <= 64):
        raise ValueError("audit_rotation: must be [sequence, fingerprint]")
    return value[0], value[1]


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
