"""The kill switch's durability: the order of its writes, and a halt the disk refuses.

A mixin of :class:`~xorj_actors.kill_switch._actor.KillSwitch`. Two orders of writing:

- a halt (``_tighten`` in the actor) is published at once, broadcast, then written to the state
  file and told to the audit log: the disk must not delay a halt. If the state file refuses it
  (disk full, out of descriptors), the halt holds in memory, the halt marker is set through its
  descriptor opened at start, and the write is retried with backoff until it succeeds;
  ``status`` says the halt is not durable meanwhile;
- a resume (``_loosen``: a recovery, a restart step, a flatten, the first start) is durable in
  the audit log first (``on_event_durable``), then in the state file, then published: the log
  never lags a resume, and a crash between the two leaves a disagreement a start reads as halted.

Every audit entry of a transition carries ``transition: {state, epoch, factor}``
(:meth:`DurableState._marked`), which the start-up check reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.kill_switch._persistence import HaltMarker, StateFile
from xorj_actors.kill_switch._state import PersistedState, check_transition

__all__ = ["DurableState", "redact_deep"]

#: Backoff of the retries of a halt the state file refused: first delay, and the longest.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.1, 5.0


class _RetryPersist(ControlMessage):  # a timer the halt depends on: never refused
    pass


class DurableState:
    """The persistence half of the kill switch actor (a mixin over the attributes below)."""

    persisted: PersistedState
    persist_error: str | None
    state_file: StateFile
    marker: HaltMarker
    marker_set: bool
    not_durable: str | None
    retry_timer: Any
    retry_attempt: int
    redact: Callable[[str], str]
    on_event_durable: Callable[[str, dict[str, Any]], None] | None
    runtime: Any
    actor_ref: Any

    def _loosen(self, new: PersistedState, kind: str, details: dict[str, Any]) -> str | None:
        """Trading becomes possible: durable in the audit log, then in the state file, then
        published. Returns why not (nothing changed) or None.

        A crash between the two writes leaves them disagreeing, which a start reads as halted.
        """
        check_transition(self.persisted.state, new.state)
        try:
            self._record_durable(kind, self._marked(details, new))
        except Exception as exc:  # noqa: BLE001 - whatever failed, trading does not resume
            logger.critical("kill switch: {} not recorded in the audit log: {}", new.state.value, exc)
            # A timed-out entry may still be committed: this one, told after it, comes after it.
            self._not_completed(new)
            return f"the audit log did not take it: {type(exc).__name__}: {exc}"
        if not self._persist(new):
            self._not_completed(new)  # the log says `new`: say that it did not happen
            return f"the state file did not take it: {self.persist_error}"
        self._set(new)
        return None

    def _not_completed(self, new: PersistedState) -> None:
        """Record the state that holds after all, so log and file agree again."""
        self._event("HALT", self._marked({"what": "transition not completed", "refused": new.state.value}))

    def _marked(self, details: dict[str, Any], state: PersistedState | None = None) -> dict[str, Any]:
        """An audit entry recording a transition: the start-up check reads these back."""
        p = self.persisted if state is None else state
        marked = {**details, "epoch": p.epoch, "transition": {"state": p.state.value, "epoch": p.epoch, "factor": p.factor}}
        if p.halted and p.triggered_at is not None:
            marked["triggered_at"] = p.triggered_at  # when the board showed this halt (signers compare)
        return marked

    def _persist(self, state: PersistedState | None = None) -> bool:
        """Write ``state`` (default: the current one). A halt the disk refuses is marked as not
        durable (the halt marker) and retried with backoff until it is written."""
        state = self.persisted if state is None else state
        try:
            self.state_file.save(state)
        except OSError as exc:
            self.persist_error = f"{type(exc).__name__}: {exc}"
            logger.critical("kill switch: cannot persist state {}: {}", state.state.value, self.persist_error)
            if self.persisted.halted and state is self.persisted:
                self._not_durable(state)
            return False
        self.persist_error = None
        if self.not_durable is not None:
            logger.warning("kill switch: halt epoch {} is durable now", state.epoch)
            self.not_durable, self.retry_attempt = None, 0
        if self.marker_set:
            try:
                self.marker.clear()
                self.marker_set = False
            except OSError as exc:  # harmless: a restart halts once more, no less
                logger.error("kill switch: cannot clear the halt marker: {}", exc)
        return True

    def _not_durable(self, state: PersistedState) -> None:
        self.not_durable = f"halt epoch {state.epoch} ({state.state.value}) NOT DURABLE, retrying: {self.persist_error}"
        try:
            self.marker.set(f"epoch {state.epoch} {state.state.value}: {state.reason or '-'}")
            self.marker_set = True
        except OSError as exc:
            logger.critical("kill switch: cannot set the halt marker either: {}", exc)
        if self.retry_timer is None:
            delay = min(_RETRY_FIRST_S * 2**self.retry_attempt, _RETRY_MAX_S)
            self.retry_attempt += 1
            self.retry_timer = self.runtime.send_after(delay, self.actor_ref, _RetryPersist())

    def _on_retry_persist(self) -> None:
        self.retry_timer = None
        if self.not_durable is not None:
            self._persist()

    def _record_durable(self, kind: str, details: dict[str, Any]) -> None:
        if self.on_event_durable is None:
            return self._event(kind, details)
        self.on_event_durable(kind, redact_deep(self.redact, details))


def redact_deep(redact: Callable[[str], str], value: Any) -> Any:
    """Every string inside an entry's details, masked (the flatten's vault details are free text)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_deep(redact, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_deep(redact, v) for v in value]
    return value
