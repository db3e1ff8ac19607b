"""Liquidation after extended downtime: the kill switch's side (the rule is ``_downtime``).

At start, when the policy judges the engine was down too long (and no halt is in force), the kill
switch starts halted instead of armed: MAINTENANCE (from RECOVERY_PENDING, which cannot go there,
TRIGGERED), so the vaults register into a halt and no ordinary round runs. Once the chosen vaults
have registered (or ``start_grace_s`` has passed) it runs the operator's flatten
(:meth:`ReducingMode._flatten`): REDUCING, the vaults sell into the stablecoin with the same trail
as ``ctl flatten``, then back to the halt. Trading resumes only by the operators' recovery (K of
M), as after any flatten: a failed or partial flatten leaves every vault out of ordinary trading.

Idempotent: a restart finds the switch halted (or TRIGGERED after a flatten cut short), and a
halt wins, so the policy is skipped (audited), never run twice for one downtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.kill_switch._downtime import DOWNTIME_OPERATOR, KILL_SWITCH_ALIVE, DowntimeAction, DowntimeVerdict, judge_downtime
from xorj_actors.kill_switch._flatten import VAULT_ROLE, Flatten, FlattenOutcome
from xorj_actors.kill_switch._messages import EnterMaintenance
from xorj_actors.kill_switch._start_decision import HaltHistory
from xorj_actors.kill_switch._state import KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.messages import HaltMode

__all__ = ["DOWNTIME_SOURCE", "Liquidating"]

#: ``source`` of the policy's halt.
DOWNTIME_SOURCE = "downtime_policy"
#: How often the start looks whether the chosen vaults have registered.
_POLL_S = 0.2
_S = KillSwitchState


class _DowntimeStep(ControlMessage):  # the flatten of a halted start waits on it: never refused
    pass


class _Alive(ControlMessage):  # the liveness record must not be lost to a full mailbox
    pass


@dataclass(frozen=True, slots=True)
class _Pending:
    verdict: DowntimeVerdict
    epoch: int
    deadline: float  # monotonic


class Liquidating:
    """The downtime half of the kill switch actor (a mixin over the attributes below)."""

    settings: KillSwitchSettings
    persisted: PersistedState
    participants: dict[str, tuple[Any, str]]
    clock: Callable[[], float]
    runtime: Any
    actor_ref: Any
    #: The history read at this start (``_starting``), and the policy's flatten waiting to run.
    start_history: HaltHistory | None
    downtime: _Pending | None

    if TYPE_CHECKING:  # defined by the actor and its other halves; a stub here would shadow them

        def _event(self, kind: str, details: dict[str, Any]) -> None: ...
        def _flatten(self, request: Flatten) -> FlattenOutcome: ...
        def _enter_maintenance(self, message: EnterMaintenance) -> Any: ...
        def _trigger(self, mode: HaltMode, reason: str, source: str, tripped: int = 0) -> None: ...

    def _downtime_at_start(self, halt: str | None) -> bool:
        """Judge this start; halt and schedule the flatten if the policy says so. True: halted here."""
        h = self.start_history
        verdict = judge_downtime(
            self.settings.downtime_liquidation, last_alive=h.last_alive if h else None,
            seen_alive=h.seen_alive if h else False, now=self.clock(), state=self.persisted.state, halt=halt,
        )
        if verdict.action is not DowntimeAction.OFF:
            logger.log("WARNING" if verdict.audited else "INFO", "kill switch: downtime policy: {}: {}", verdict.action.value, verdict.why)
        if verdict.action is DowntimeAction.SKIPPED:
            self._event("SYSTEM_EVENT", verdict.details())
        if verdict.action is not DowntimeAction.FLATTEN:
            return False
        reason = f"downtime liquidation: {verdict.why}"
        if self.persisted.state is _S.ARMED:
            self._enter_maintenance(EnterMaintenance(reason=reason, source=DOWNTIME_SOURCE))
        else:  # RECOVERY_PENDING cannot enter MAINTENANCE
            self._trigger(HaltMode.GRACEFUL, reason, DOWNTIME_SOURCE)
        self._event("SYSTEM_EVENT", {**verdict.details(), "epoch": self.persisted.epoch})
        grace = self.settings.downtime_liquidation.start_grace_s
        self.downtime = _Pending(verdict, self.persisted.epoch, time.monotonic() + grace)
        self.runtime.send_after(_POLL_S, self.actor_ref, _DowntimeStep())
        return True

    def _on_downtime_step(self) -> None:
        d = self.downtime
        if d is None:
            return
        p = self.persisted
        if p.epoch != d.epoch or p.state not in (_S.MAINTENANCE, _S.TRIGGERED):  # a halt since wins
            self.downtime = None
            self._event("SYSTEM_EVENT", {**d.verdict.details(), "what": "downtime liquidation skipped",
                                         "why": f"the kill switch moved to {p.state.value} epoch {p.epoch} first"})
            return
        wanted = d.verdict.vaults
        running = {ref.actor_inbox.name for ref, role in self.participants.values() if role == VAULT_ROLE}
        missing = [v for v in wanted if v not in running]
        if (missing or not wanted) and time.monotonic() < d.deadline:  # "all": the whole grace
            self.runtime.send_after(_POLL_S, self.actor_ref, _DowntimeStep())
            return
        self.downtime = None
        chosen = tuple(v for v in wanted if v in running)
        reason = d.verdict.why + (f"; not running on this node: {', '.join(missing)[:200]}" if missing else "")
        if wanted and not chosen:
            self._event("SYSTEM_EVENT", {**d.verdict.details(), "what": "downtime liquidation skipped", "why": reason})
            return
        outcome = self._flatten(Flatten(vaults=chosen, operator=DOWNTIME_OPERATOR, reason=reason))
        if not outcome.accepted:  # audited by _flatten; the switch stays halted
            logger.critical("kill switch: downtime liquidation refused: {}", outcome.reason)

    def _on_alive(self) -> None:
        self._event("SYSTEM_EVENT", {"what": KILL_SWITCH_ALIVE})
        self.runtime.send_after(self.settings.alive_every_s, self.actor_ref, _Alive())
