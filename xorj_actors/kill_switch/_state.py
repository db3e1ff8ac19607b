"""Kill-switch state: the validated state machine and its atomic, fail-closed persistence."""

from __future__ import annotations

import enum
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from loguru import logger

__all__ = ["InvalidTransition", "KillSwitchState", "PersistedState", "StateFile", "check_transition"]


class KillSwitchState(str, enum.Enum):
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
    #: Nonces of accepted recovery requests (replay protection), newest last, bounded.
    used_nonces: tuple[str, ...] = ()
    updated_at: float = field(default_factory=time.time)

    @property
    def halted(self) -> bool:
        return self.state in HALTED

    def to_json(self) -> str:
        data = asdict(self)
        data["state"] = self.state.value
        data["used_nonces"] = list(self.used_nonces)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PersistedState:
        data: dict[str, Any] = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("state file is not a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        state = KillSwitchState(data.get("state"))
        epoch = data.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError("epoch must be a non-negative integer")
        factor = data.get("factor", 1.0)
        if not isinstance(factor, int | float) or not 0 < factor <= 1:
            raise ValueError("factor must be in (0, 1]")
        nonces = data.get("used_nonces", [])
        if not isinstance(nonces, list) or not all(isinstance(n, str) for n in nonces):
            raise ValueError("used_nonces must be a list of strings")
        return cls(
            state=state,
            epoch=epoch,
            mode=data.get("mode"),
            reason=data.get("reason"),
            source=data.get("source"),
            triggered_at=data.get("triggered_at"),
            factor=float(factor),
            used_nonces=tuple(nonces),
            updated_at=float(data.get("updated_at", time.time())),
        )


class StateFile:
    """The kill switch's state on disk: temp file, fsync, rename, fsync of the directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: The last :meth:`load` found REDUCING and turned it into TRIGGERED.
        self.interrupted_flatten = False

    def load(self) -> PersistedState:
        """Load the state; anything unreadable means halted (fail closed).

        A state of REDUCING (a flatten was under way) comes back TRIGGERED, same epoch: the
        vaults' flatten work is gone with the process, and nothing may be more permissive after
        a restart than before it.
        """
        self.interrupted_flatten = False
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.warning("kill switch: no state file at {}: first start, ARMED", self.path)
            return PersistedState()
        except OSError as exc:
            return self._fail_closed(f"state file unreadable: {exc.strerror}")
        try:
            state = PersistedState.from_json(text)
        except (ValueError, TypeError) as exc:
            return self._fail_closed(f"state file corrupt: {exc}")
        if state.state is KillSwitchState.REDUCING:
            logger.critical("kill switch: state file says REDUCING (a flatten was interrupted): starting TRIGGERED")
            self.interrupted_flatten = True
            reason = f"restarted during a flatten (REDUCING); before it: {state.reason or '-'}"
            return replace(state, state=KillSwitchState.TRIGGERED, reason=reason[:500], source="state_file")
        return state

    def _fail_closed(self, reason: str) -> PersistedState:
        logger.critical("kill switch: {} ({}): starting TRIGGERED", reason, self.path)
        return PersistedState(
            state=KillSwitchState.TRIGGERED,
            epoch=1,
            mode="emergency",
            reason=reason,
            source="state_file",
            triggered_at=time.time(),
        )

    def save(self, state: PersistedState) -> None:
        """Replace the file atomically; raises OSError if it cannot be made durable."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kill_switch.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(replace(state, updated_at=time.time()).to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
