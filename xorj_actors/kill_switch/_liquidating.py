"""Liquidation after extended downtime: the kill switch's side (the rule is ``_downtime``).

At start, when the policy judges the engine was down too long (and no halt is in force), the kill
switch starts halted instead of armed: MAINTENANCE (from RECOVERY_PENDING, which cannot go there,
TRIGGERED; either halt is this node's alone: no cluster halt, docs/CLUSTER.md), so the vaults
register into a halt and no ordinary round runs. The wall clock alone never flattens: the chain's
clock is read (``chain_time``: getBlockTime of a recent confirmed slot, on a thread of its own)
and must confirm the downtime too; if it cannot, the switch stays halted and nothing is sold.
Once confirmed and the chosen vaults have registered (or ``start_grace_s`` has passed) it runs the
operator's flatten (:meth:`ReducingMode._flatten`): REDUCING, the vaults sell into the stablecoin
with the same trail as ``ctl flatten``, then back to the halt. Trading resumes only by the
operators' recovery (K of M), as after any flatten: a failed or partial flatten leaves every vault
out of ordinary trading.

Idempotent: a restart finds the switch halted (or TRIGGERED after a flatten cut short), and a
halt wins, so the policy is skipped (audited), never run twice for one downtime.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage
from xorj_actors.kill_switch._downtime import DOWNTIME_OPERATOR, KILL_SWITCH_ALIVE, DowntimeAction, DowntimeVerdict, judge_downtime
from xorj_actors.kill_switch._flatten import VAULT_ROLE, Flatten, FlattenOutcome
from xorj_actors.kill_switch._messages import EnterMaintenance
from xorj_actors.kill_switch._start_decision import HaltHistory
from xorj_actors.kill_switch._state import KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.messages import HaltMode

__all__ = ["DOWNTIME_SOURCE", "ChainClock", "Liquidating"]

#: ``source`` of the policy's halt.
DOWNTIME_SOURCE = "downtime_policy"
#: How often the start looks whether the chosen vaults have registered.
_POLL_S = 0.2
#: How long past ``start_grace_s`` the flatten waits for the chain's clock (its read is bounded
#: by ``[risk] clock_rpc_timeout_s``; this only guards against a read that never returns).
_CHAIN_WAIT_S = 60.0
#: The chain's time now (Unix seconds; blocking, raises if the chain cannot tell): the engine reads
#: getBlockTime of a recent confirmed slot (``xorj_actors.risk.read_chain_time``).
ChainClock = Callable[[], float]
_S = KillSwitchState


class _DowntimeStep(ControlMessage):  # the flatten of a halted start waits on it: never refused
    pass


class _Alive(ControlMessage):  # the liveness record must not be lost to a full mailbox
    pass


class _ChainAnswer(ControlMessage):  # the chain's clock, told back from its reading thread
    block_time: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class DowntimePending:
    """The policy's flatten of this start, waiting for the chain's clock and its vaults."""

    verdict: DowntimeVerdict
    epoch: int
    deadline: float  # monotonic
    last_alive: float
    now: float  # the wall clock that judged
    #: The chain's time once it confirmed the downtime (None: not yet).
    block_time: float | None = None


class Liquidating:
    """The downtime half of the kill switch actor (a mixin over the attributes below)."""

    settings: KillSwitchSettings
    persisted: PersistedState
    participants: dict[str, tuple[Any, str]]
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    chain_time: ChainClock | None
    runtime: Any
    actor_ref: Any
    #: The history read at this start (``_starting``), and the policy's flatten waiting to run.
    start_history: HaltHistory | None
    downtime: DowntimePending | None

    if TYPE_CHECKING:  # defined by the actor and its other halves; a stub here would shadow them

        def _event(self, kind: str, details: dict[str, Any]) -> None: ...
        def _flatten(self, request: Flatten) -> FlattenOutcome: ...
        def _enter_maintenance(self, message: EnterMaintenance) -> Any: ...
        def _trigger(self, mode: HaltMode, reason: str, source: str, tripped: int = 0) -> None: ...

    def _downtime_at_start(self, halt: str | None) -> bool:
        """Judge this start; halt and schedule the flatten if the policy says so. True: halted here."""
        h = self.start_history
        last_alive, now = h.last_alive if h else None, self.clock()
        verdict = judge_downtime(
            self.settings.downtime_liquidation, last_alive=last_alive,
            seen_alive=h.seen_alive if h else False, now=now, state=self.persisted.state, halt=halt,
        )
        if verdict.action is not DowntimeAction.OFF:
            logger.log("WARNING" if verdict.audited else "INFO", "kill switch: downtime policy: {}: {}", verdict.action.value, verdict.why)
        if verdict.audited and verdict.action is not DowntimeAction.FLATTEN:
            self._event("SYSTEM_EVENT", verdict.details())
        if verdict.action is not DowntimeAction.FLATTEN or last_alive is None:
            return False
        reason = f"downtime liquidation: {verdict.why}"
        if self.persisted.state is _S.ARMED:
            self._enter_maintenance(EnterMaintenance(reason=reason, source=DOWNTIME_SOURCE))
        else:  # RECOVERY_PENDING cannot enter MAINTENANCE
            self._trigger(HaltMode.GRACEFUL, reason, DOWNTIME_SOURCE)
        self._event("SYSTEM_EVENT", {**verdict.details(), "epoch": self.persisted.epoch})
        grace = self.settings.downtime_liquidation.start_grace_s
        self.downtime = DowntimePending(verdict, self.persisted.epoch, self.monotonic() + grace, last_alive, now)
        self._read_chain_time()
        self.runtime.send_after(_POLL_S, self.actor_ref, _DowntimeStep())
        return True

    def _read_chain_time(self) -> None:
        """Read the chain's clock on a thread of its own (a halt must never wait on the network)."""
        read, ref = self.chain_time, self.actor_ref

        def run() -> None:
            try:
                if read is None:
                    raise RuntimeError("no chain clock (no engine)")
                answer = _ChainAnswer(block_time=float(read()), error=None)
            except Exception as exc:  # noqa: BLE001 - any failure: the chain did not confirm
                answer = _ChainAnswer(block_time=None, error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(ActorDeadError):  # stopped meanwhile: its successor starts halted
                ref.tell(answer)  # a control message: never refused

        threading.Thread(target=run, name="kill-switch-chain-time", daemon=True).start()

    def _on_chain_answer(self, answer: _ChainAnswer) -> None:
        """Confirm the downtime against the chain's clock, or skip the flatten (staying halted)."""
        d = self.downtime
        if d is None or d.block_time is not None:
            return
        limit = d.verdict.limit_s
        figures = {"last_alive": d.last_alive, "now": round(d.now, 3), "block_time": answer.block_time}
        if answer.block_time is not None:
            chain_down = answer.block_time - d.last_alive
            figures["chain_down_s"] = round(chain_down, 3)
            if chain_down > limit:
                self.downtime = replace(d, block_time=answer.block_time)
                self._event("SYSTEM_EVENT", {**d.verdict.details(), **figures, "what": "downtime confirmed by the chain"})
                return
            why = f"the chain's clock says down {chain_down:.1f} s, not over {limit:g} s"
        else:
            why = f"no answer: {answer.error}"
        self._skip_downtime(d, f"the chain's clock could not confirm the downtime ({why})", figures)

    def _skip_downtime(self, d: DowntimePending, why: str, extra: dict[str, Any] | None = None) -> None:
        self.downtime = None
        logger.critical("kill switch: downtime liquidation skipped (staying {}): {}", self.persisted.state.value, why)
        self._event("SYSTEM_EVENT", {**d.verdict.details(), **(extra or {}), "what": "downtime liquidation skipped", "why": why[:500]})

    def _on_downtime_step(self) -> None:
        d = self.downtime
        if d is None:
            return
        p = self.persisted
        if p.epoch != d.epoch or p.state not in (_S.MAINTENANCE, _S.TRIGGERED):  # a halt since wins
            return self._skip_downtime(d, f"the kill switch moved to {p.state.value} epoch {p.epoch} first")
        now = self.monotonic()
        if d.block_time is None:  # the chain's clock has not confirmed yet: nothing is sold before
            if now >= d.deadline + _CHAIN_WAIT_S:
                return self._skip_downtime(d, "the chain's clock could not confirm the downtime (no answer)",
                                           {"last_alive": d.last_alive, "now": round(d.now, 3)})
            self.runtime.send_after(_POLL_S, self.actor_ref, _DowntimeStep())
            return None
        wanted = d.verdict.vaults
        running = {ref.actor_inbox.name for ref, role in self.participants.values() if role == VAULT_ROLE}
        missing = [v for v in wanted if v not in running]
        if (missing or not wanted) and now < d.deadline:  # "all": the whole grace
            self.runtime.send_after(_POLL_S, self.actor_ref, _DowntimeStep())
            return None
        self.downtime = None
        chosen = tuple(v for v in wanted if v in running)
        reason = d.verdict.why + (f"; not running on this node: {', '.join(missing)[:200]}" if missing else "")
        if wanted and not chosen:
            return self._skip_downtime(d, reason)
        outcome = self._flatten(Flatten(vaults=chosen, operator=DOWNTIME_OPERATOR, reason=reason))
        if not outcome.accepted:  # audited by _flatten; the switch stays halted
            logger.critical("kill switch: downtime liquidation refused: {}", outcome.reason)
        return None

    def _on_alive(self) -> None:
        self._event("SYSTEM_EVENT", {"what": KILL_SWITCH_ALIVE})
        self.runtime.send_after(self.settings.alive_every_s, self.actor_ref, _Alive())
