"""The kill switch's start: the marker, the state file and the audit log read, and decided on.

A mixin of :class:`~xorj_actors.kill_switch._actor.KillSwitch`; the decision itself is the pure
``_start_decision.decide``. A first start is recorded durably (audit log, then state file) before
anything may trade; if it cannot be, the kill switch starts halted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from dataclasses import replace

from loguru import logger

from xorj_actors.kill_switch._board import STARTING, HaltBoard
from xorj_actors.kill_switch._persistence import HaltMarker, StateFile
from xorj_actors.kill_switch._start_decision import HaltHistory, StartDecision, decide
from xorj_actors.kill_switch._state import KillSwitchState, PersistedState
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode

__all__ = ["StartingUp", "first_start_failed"]


class StartingUp:
    """The start-up half of the kill switch actor (a mixin over the attributes below)."""

    state_file: StateFile
    marker: HaltMarker
    marker_set: bool
    persist_error: str | None
    history: Callable[[], HaltHistory] | None
    start_history: HaltHistory | None
    board: HaltBoard
    trips_seen: int
    actor_ref: Any

    def _decide_start(self) -> StartDecision:
        """Read the marker, the state file and the audit log's history; decide (``_start_decision``)."""
        pending = None
        try:
            pending = self.marker.open()
        except OSError as exc:  # halts still happen; one the disk refuses could be lost
            logger.critical("kill switch: cannot open the halt marker {}: {}", self.marker.path, exc)
        self.marker_set = pending is not None
        reading = self.state_file.read()
        if reading.retired_key and reading.state is not None:
            # Written before an audit key rotation: the same state, rewritten under the current key.
            try:
                self.state_file.save(reading.state)
                logger.warning("kill switch: state file rewritten under the current audit key epoch")
            except OSError as exc:
                logger.error("kill switch: cannot rewrite the state file under the current key: {}", exc)
        history = None
        if self.history is not None:
            try:
                history = self.history()
            except Exception as exc:  # noqa: BLE001 - any failure to read it means halted
                history = HaltHistory(problem=f"{type(exc).__name__}: {exc}"[:300])
        self.start_history = history  # the downtime policy reads when the engine was last alive
        # What a previous kill switch of this process published, or a trip it did not handle.
        shown, self.trips_seen = self.actor_ref.board_at_start()
        published = shown.epoch if shown.halted and shown.state != STARTING else None
        decision = decide(reading, history, pending_halt=pending, published_halt=published)
        state = decision.state
        if decision.halt is not None:
            state = replace(state, reason=self._clean(decision.halt, REASON_LIMIT))
        elif decision.first_start:
            logger.warning("kill switch: no state file and an empty audit log: first start, ARMED")
        elif reading.state is not None and state.audit_rotation != reading.state.audit_rotation:
            try:  # a rotation at the writer's start: recorded now, so a rollback past it is caught
                self.state_file.save(state)
            except OSError as exc:
                logger.error("kill switch: cannot record the audit key rotation in the state file: {}", exc)
        return replace(decision, state=state)

    def _record_first_start(self) -> str | None:
        """ARMED at epoch 0, durable in the audit log, then in the state file; or why not."""
        try:
            self._record_durable("SYSTEM_EVENT", self._marked({"what": "first start"}))
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing trades
            return f"the audit log did not take it: {type(exc).__name__}: {exc}"
        if not self._persist():
            return f"the state file did not take it: {self.persist_error}"
        return None


def first_start_failed(failure: str) -> StartDecision:
    """A first start that could not be recorded durably starts halted instead."""
    why = f"the first start could not be recorded durably ({failure[:300]})"
    return StartDecision(
        PersistedState(state=KillSwitchState.TRIGGERED, epoch=1, mode=HaltMode.EMERGENCY.value, reason=why, source="start"), halt=why
    )
