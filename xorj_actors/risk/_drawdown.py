"""DrawdownMonitor: portfolio drawdown and daily loss across every vault.

Like for like: the portfolio is followed as a unit value (a time-weighted index, as a fund's
value per share). A vault's new valuation moves the index by the portfolio's return,
``(total - old + new) / total``; a vault appearing, a vault removed and a deposit or withdrawal
change the total but not the index. Drawdown is ``1 - index / peak index``, daily loss
``1 - index / index at the start of the UTC day``. With a fixed set of vaults and no flows this is
exactly ``1 - total / peak total`` and ``1 - total / day-start total``. O(1) per valuation.

The state (unit value, peak, day start, episodes, each vault's last value) is kept in a file so
that a restart neither forgets a loss nor restarts the day; see docs/RISK.md.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.messages import HaltMode
from xorj_actors.redaction import Redactor
from xorj_actors.risk._messages import (
    GetRiskStatus,
    ResetRiskBaseline,
    RiskStatus,
    VaultFlow,
    VaultRemoved,
    VaultValuation,
)
from xorj_actors.risk._drawdown_state import (
    MAX_VAULT_ID,
    CorruptState,
    DrawdownState,
    Episode,
    decode_state,
    encode_state,
)
from xorj_actors.risk._monitor import RiskMonitor
from xorj_actors.durable_file import atomic_write
from xorj_actors.risk.settings import RiskSettings

__all__ = ["DRAWDOWN_NAME", "DrawdownMonitor", "report_valuation"]

#: The DrawdownMonitor's registered name in the runtime.
DRAWDOWN_NAME = "risk_drawdown"

_DAY_S = 86_400  # POSIX time has no leap seconds: t // 86400 is the UTC date
_RESUM_EVERY = 4096  # recompute the total exactly this often (incremental float sums drift)


class _Persist(ControlMessage):  # the state file's timer: never refused
    pass


def report_valuation(runtime: Any, vault_id: str, value_usd: float, at: float | None = None) -> bool:
    """Tell the DrawdownMonitor a vault's value; False (and a log line) if it cannot. Never raises."""
    try:
        ref = runtime.whereis(DRAWDOWN_NAME)
        if ref is None:
            raise ActorDeadError("risk drawdown monitor not running")
        ref.tell(VaultValuation(vault_id=vault_id, value_usd=value_usd, at=time.time() if at is None else at))
        return True
    except (ActorDeadError, MailboxFull) as exc:
        logger.error("risk: valuation of {} not delivered: {!r}", vault_id, exc)
    except Exception:  # noqa: BLE001 - a reporter's bug must not break the vault that reports
        logger.exception("risk: valuation of {} not sent", vault_id)
    return False


def _utc_day(day: int | None) -> str:
    return "" if day is None else (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


class DrawdownMonitor(RiskMonitor):
    """Halts trading when the portfolio's drawdown or daily loss reaches its threshold.

    Messages: :class:`VaultValuation` (from each vault after each round), :class:`VaultRemoved`,
    :class:`VaultFlow`, :class:`ResetRiskBaseline` and :class:`GetRiskStatus` (both answer a
    :class:`RiskStatus`).

    Args:
        board: the halt board.
        settings: the ``[risk]`` section.
        clock: wall clock (``time.time``) that places the UTC day boundary.
        state_file: where the monitor keeps its state across restarts (None: nowhere). An
            unreadable file halts trading (fail closed) and is kept aside for inspection.
        kill_file: written when the kill switch cannot be reached (see :class:`RiskMonitor`).
        redactor: the engine's one redactor, for the operator and reason of a reset (the
            engine injects it; default: one that knows no secret value).
    """

    monitor: ClassVar[str] = "drawdown"
    registered_name: ClassVar[str] = DRAWDOWN_NAME
    #: Every vault reports after each round: room for a whole round of 10,000 vaults, and more.
    mailbox_capacity: ClassVar[int | None] = 100_000

    def __init__(
        self,
        board: HaltBoard,
        settings: RiskSettings,
        *,
        clock: Callable[[], float] = time.time,
        state_file: Path | None = None,
        kill_file: Path | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(board, retry_s=settings.trigger_retry_s, kill_file=kill_file)
        self.settings = settings
        self.redact = Redactor(()) if redactor is None else redactor
        self.clock = clock
        self.state_file = state_file
        self._dirty = False
        self._persist_armed = False
        self._persist_failing = False
        self._values: dict[str, float] = {}
        self._at: dict[str, float] = {}
        self._total = 0.0
        self._updates = 0
        self._index = 1.0
        self._peak = 1.0
        self._day: int | None = None
        self._day_index = 1.0
        self._peak_usd_at_zero = 0.0  # the last like-for-like peak while the index was above zero
        self._day_usd_at_zero = 0.0
        self._drawdown = Episode(settings.max_drawdown)
        self._daily = Episode(settings.max_daily_loss)
        self.refused = 0
        self._refusal_logged: dict[str, float] = {}

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is VaultValuation:
            return self._on_valuation(message)
        if kind is GetRiskStatus:
            self._roll_day()
            self._evaluate(None)
            return self.status()
        if kind is _Persist:
            self._persist_armed = False
            return self._save()
        if kind is VaultRemoved:
            return self._on_removed(message)
        if kind is VaultFlow:
            return self._on_flow(message)
        if kind is ResetRiskBaseline:
            return self._on_reset(message)
        return super().on_receive(message)

    def _on_valuation(self, m: VaultValuation) -> None:
        vid, value, at = m.vault_id, m.value_usd, m.at
        if not isinstance(vid, str) or not 0 < len(vid) <= MAX_VAULT_ID:
            return self._refuse(str(vid)[:MAX_VAULT_ID], f"bad vault id {vid!r}")
        if not math.isfinite(value) or value < 0:
            return self._refuse(vid, f"value_usd {value!r} is not a finite amount >= 0")
        if not math.isfinite(at):
            return self._refuse(vid, f"at {at!r} is not a finite time")
        last_at = self._at.get(vid)
        if last_at is not None and at < last_at:
            return self._refuse(vid, f"out of order: at {at!r} is older than the last valuation's {last_at!r}")
        self._roll_day()
        value = float(value)
        old = self._values.get(vid)
        if old is None:
            self._total += value  # a vault appearing: the portfolio grows, its unit value does not
        else:
            before = self._total
            after = max(before - old + value, 0.0)
            if before > 0:
                self._index *= after / before
            self._total = after
        self._values[vid] = value
        self._at[vid] = at
        self._resum()
        self._evaluate(m)
        self._changed()

    def _on_removed(self, m: VaultRemoved) -> None:
        value = self._values.pop(m.vault_id, None)
        if value is None:
            logger.warning("risk drawdown: removal of unknown vault {!r} ignored", m.vault_id)
            return
        del self._at[m.vault_id]
        self._total = max(self._total - value, 0.0)
        self._resum(force=not self._values)
        self._changed()
        logger.info("risk drawdown: vault {} removed (${:,.2f}); {} vaults left", m.vault_id, value, len(self._values))

    def _on_flow(self, m: VaultFlow) -> None:
        old = self._values.get(m.vault_id)
        if old is None:
            # Its first valuation will count as its appearance, flow included.
            logger.info("risk drawdown: flow for vault {!r} before its first valuation ignored", m.vault_id)
            return
        if not math.isfinite(m.amount_usd) or not math.isfinite(m.at):
            return self._refuse(m.vault_id, f"flow {m.amount_usd!r} at {m.at!r} is not finite")
        new = old + m.amount_usd
        if new < 0:
            return self._refuse(m.vault_id, f"withdrawal {m.amount_usd!r} exceeds the known value {old!r}")
        self._values[m.vault_id] = new
        self._total = max(self._total + m.amount_usd, 0.0)
        self._changed()

    def _on_reset(self, m: ResetRiskBaseline) -> RiskStatus:
        before = self.status()
        self._roll_day()
        if self._index <= 0:
            self._index = 1.0  # a portfolio that went to zero starts a new unit value
        self._peak = self._day_index = self._index
        self._drawdown.latched = self._daily.latched = False
        self._save()
        after = self.status()
        operator, reason = self.redact(m.operator[:100]), self.redact(m.reason[:500])
        logger.warning("risk drawdown: baseline reset by {}: {}", operator, reason)
        record(
            self.runtime,
            audit_event(
                EventType.RECOVERY,
                self.name,
                {
                    "what": "risk baseline reset",
                    "operator": operator,
                    "reason": reason,
                    "before": {"total_usd": before.total_usd, "peak_usd": before.peak_usd,
                               "drawdown": before.drawdown, "daily_loss": before.daily_loss},
                    "after": {"peak_usd": after.peak_usd, "day_start_usd": after.day_start_usd},
                },
                severity=Severity.WARNING,
            ),
        )
        return after

    # -- bookkeeping ---------------------------------------------------------------------------

    def _refuse(self, vid: str, why: str) -> None:
        self.refused += 1
        now = time.monotonic()
        last = self._refusal_logged.get(vid)
        if last is None or now - last >= 60.0:  # one line per vault per minute: a bad vault must not flood the log
            self._refusal_logged[vid] = now
            logger.warning("risk drawdown: valuation of {} refused, nothing changed: {} ({} refused so far)", vid, why, self.refused)

    def _resum(self, force: bool = False) -> None:
        self._updates += 1
        if force or self._updates % _RESUM_EVERY == 0:
            self._total = math.fsum(self._values.values())

    def _roll_day(self) -> None:
        day = int(self.clock() // _DAY_S)
        if self._day is None or day > self._day:
            if self._day is not None:
                logger.info("risk drawdown: new UTC day {}: daily loss measured from ${:,.2f}", _utc_day(day), self._total)
            self._day = day
            self._day_index = self._index
            self._changed()
        elif day < self._day:
            logger.warning("risk drawdown: the clock went back to UTC day {} (was {}); keeping the later day",
                           _utc_day(day), _utc_day(self._day))

    def _figures(self) -> tuple[float, float, float, float]:
        """(drawdown, daily loss, like-for-like peak USD, like-for-like day-start USD)."""
        index, total = self._index, self._total
        drawdown = max(0.0, 1.0 - index / self._peak) if self._peak > 0 else 0.0
        daily = max(0.0, 1.0 - index / self._day_index) if self._day_index > 0 else 0.0
        if index > 0:
            self._peak_usd_at_zero = peak_usd = total * self._peak / index
            self._day_usd_at_zero = day_usd = total * self._day_index / index
        else:
            peak_usd, day_usd = self._peak_usd_at_zero, self._day_usd_at_zero
        return drawdown, daily, peak_usd, day_usd

    def _evaluate(self, cause: VaultValuation | None) -> None:
        if self._index > self._peak:
            self._peak = self._index
        drawdown, daily, peak_usd, day_usd = self._figures()
        s = self.settings
        firing: list[tuple[str, str, float, Episode, HaltMode]] = []
        for check, episode, value, mode in (
            ("drawdown", self._drawdown, drawdown, s.drawdown_mode),
            ("daily_loss", self._daily, daily, s.daily_loss_mode),
        ):
            was = episode.latched
            kind = episode.update(value, s.rearm_margin, s.escalation_step)
            if was and not episode.latched:
                logger.warning("risk {}: back to {:.2%} (re-armed below {:.2%})", check, value, episode.threshold - s.rearm_margin)
            if kind is not None:
                firing.append((check, kind, value, episode, HaltMode(mode)))
        if firing:
            # Both figures crossing on one valuation make one halt (one epoch), not two.
            self._fire(firing, drawdown, daily, peak_usd, day_usd, cause)

    def _fire(
        self,
        firing: list[tuple[str, str, float, Episode, HaltMode]],
        drawdown: float,
        daily: float,
        peak_usd: float,
        day_usd: float,
        cause: VaultValuation | None,
    ) -> None:
        total, n, day = self._total, len(self._values), _utc_day(self._day)
        step = self.settings.escalation_step
        heads, versus, figures = [], [], {}
        for check, kind, value, episode, mode in firing:
            label = "drawdown" if check == "drawdown" else "daily loss"
            if kind == "breach":
                heads.append(f"{label} {value:.2%} >= max {episode.threshold:.2%}")
            else:
                heads.append(f"{label} worsened to {value:.2%} (max {episode.threshold:.2%}, escalation step {step:.2%})")
            if check == "drawdown":
                versus.append(f"like-for-like peak ${peak_usd:,.2f}")
            else:
                versus.append(f"${day_usd:,.2f} at the start of UTC day {day}")
            figures[check] = {
                "kind": kind,
                "value": value,
                "threshold": episode.threshold,
                "rearm_below": episode.threshold - self.settings.rearm_margin,
                "mode": mode.value,
            }
        mode = HaltMode.EMERGENCY if any(f[4] is HaltMode.EMERGENCY for f in firing) else HaltMode.GRACEFUL
        check = "+".join(f[0] for f in firing)
        reason = f"{'; '.join(heads)}: portfolio ${total:,.2f} vs {' and '.join(versus)} ({n} vaults)"
        details: dict[str, Any] = {
            "figures": figures,
            "escalation_step": step,
            "total_usd": total,
            "peak_usd": peak_usd,
            "day_start_usd": day_usd,
            "drawdown": drawdown,
            "daily_loss": daily,
            "vaults": n,
            "utc_day": day,
            "at": self.clock(),
        }
        if cause is not None:
            details.update(
                {
                    "last_vault": cause.vault_id,
                    "last_vault_value_usd": cause.value_usd,
                    "last_valuation_at": cause.at,
                }
            )
        self.fire(check, mode, reason, details, event_type=EventType.HALT)
        self._save()  # the episode must survive a restart: no second halt for the same loss

    # -- persistence ---------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        if self.state_file is not None:
            self._load(self.state_file)

    def on_stop(self) -> None:
        if self._dirty:
            self._save()

    def _changed(self) -> None:
        self._dirty = True
        if self.state_file is not None and not self._persist_armed:
            self._persist_armed = True
            self.runtime.send_after(self.settings.drawdown_persist_interval_s, self.actor_ref, _Persist())

    def _state(self) -> DrawdownState:
        return DrawdownState(
            index=self._index,
            peak=self._peak,
            day=self._day,
            day_index=self._day_index,
            peak_usd_at_zero=self._peak_usd_at_zero,
            day_usd_at_zero=self._day_usd_at_zero,
            drawdown=(self._drawdown.latched, self._drawdown.level),
            daily_loss=(self._daily.latched, self._daily.level),
            vaults={vid: (value, self._at[vid]) for vid, value in self._values.items()},
        )

    def _save(self) -> None:
        path = self.state_file
        if path is None:
            self._dirty = False
            return
        try:
            atomic_write(path, encode_state(self._state(), saved_at=self.clock()))
        except (OSError, ValueError) as exc:
            # Kept in memory; retried at the next change. Loud once per failing streak.
            if not self._persist_failing:
                self._persist_failing = True
                logger.critical("risk drawdown: cannot save {}: {!r}; a restart would forget the peak", path, exc)
                record(self.runtime, audit_event(EventType.ERROR_EVENT, self.name,
                                                 {"what": "risk state not saved", "path": str(path), "error": repr(exc)},
                                                 severity=Severity.ERROR))
            return
        if self._persist_failing:
            logger.warning("risk drawdown: {} saved again", path)
        self._persist_failing = False
        self._dirty = False

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.info("risk drawdown: no state at {}: a new high-water mark starts with the first valuations", path)
            return
        except OSError as exc:
            return self._unreadable(path, f"unreadable: {exc!r}")
        try:
            self._restore(decode_state(text))
        except (ValueError, TypeError, KeyError, CorruptState) as exc:
            return self._unreadable(path, f"corrupt: {exc}")
        logger.info(
            "risk drawdown: state restored from {}: {} vaults, ${:,.2f}, drawdown {:.2%}, daily loss {:.2%}",
            path, len(self._values), self._total, *self._figures()[:2],
        )

    def _restore(self, state: DrawdownState) -> None:
        """Take a decoded state whole (a corrupt file changes nothing: :meth:`_load`)."""
        self._index, self._peak, self._day, self._day_index = state.index, state.peak, state.day, state.day_index
        self._peak_usd_at_zero, self._day_usd_at_zero = state.peak_usd_at_zero, state.day_usd_at_zero
        (self._drawdown.latched, self._drawdown.level) = state.drawdown
        (self._daily.latched, self._daily.level) = state.daily_loss
        self._values = {vid: value for vid, (value, _) in state.vaults.items()}
        self._at = {vid: at for vid, (_, at) in state.vaults.items()}
        self._total = math.fsum(self._values.values())

    def _unreadable(self, path: Path, why: str) -> None:
        """Fail closed: the peak and the day start are unknown, so halt and start a new baseline."""
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            path.replace(aside)
        except OSError as exc:
            logger.error("risk drawdown: cannot move {} aside: {!r}", path, exc)
            aside = path
        reason = f"risk state {path} {why}: peak and day start unknown; kept as {aside.name}"
        self.fire("state", HaltMode.GRACEFUL, reason, {"path": str(path), "kept_as": str(aside), "problem": why})

    def status(self) -> RiskStatus:
        drawdown, daily, peak_usd, day_usd = self._figures()
        return RiskStatus(
            total_usd=self._total,
            peak_usd=peak_usd,
            drawdown=drawdown,
            daily_loss=daily,
            vaults=len(self._values),
            day_start_usd=day_usd,
            utc_day=_utc_day(self._day),
            drawdown_latched=self._drawdown.latched,
            daily_loss_latched=self._daily.latched,
            refused=self.refused,
            triggers=self.triggers,
        )
