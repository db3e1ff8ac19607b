"""The Vault actor: one user vault, its rounds, and nothing in flight twice.

A round (FR-2, FR-3):

1. skip it if the engine is halted, the strategy is stale, the profile selects no trader, or
   the previous round is still running (a vault never has two rounds in flight);
2. read the vault's balances and prices (the RPC gateway), value the vault (the drawdown
   monitor hears it), plan the trades that close the gap to the trader's allocation;
3. hand the sells to the Executor and wait for every outcome;
4. read the balances again (the sells' proceeds are now real), plan again, hand over the buys
   only, wait for every outcome;
5. read the balances a last time and record the realised slippage of what was bought and sold
   against the quotes.

Outcomes that do not arrive (an executor restarted meanwhile) are asked for again with the same
trade ids: the executor answers from its record, it never executes an id twice.

A flatten (the kill switch's REDUCING mode, docs/HALT_PROTOCOL.md) runs beside the halted
rounds: on :class:`FlattenVault` the vault waits for its round to be idle, reads its balances,
plans a sell of every volatile holding into the stablecoin (dust below ``min_trade_usd`` left),
hands the sells over as ``reduces_exposure`` trades, reads again once every outcome is final,
and repeats (at most :data:`FLATTEN_PASSES` passes) while something is left; then it tells the
kill switch :class:`FlattenDone`. No round starts while a flatten runs.

Who owns what (docs/RECONCILIATION.md): the kill switch owns the halt state and the position
factor (the vault reads its :class:`HaltBoard`, never a copy); the executor owns the trades
handed to it (in flight, settled, one round per vault); the strategy feed owns the target
(:meth:`StrategyBoard.target_for`, read once per round). The vault owns its round's record: the
phase, and which of the trades it asked for still owe it an outcome.

The round's steps are in :mod:`._round`, the flatten's in :mod:`._flatten`; this module is the
actor: its state, its messages, and the two hands it reaches out with (gateway and executor).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import MailboxFull
from xorj_actors.chain import GATEWAY_NAME, GetVaultSnapshot, VaultSnapshot
from xorj_actors.correlation import ExposureBoard
from xorj_actors.execution import EXECUTOR_NAME, TradeOutcome, TradeRequest
from xorj_actors.kill_switch import VAULT_ROLE, FlattenVault, HaltBoard, Participant
from xorj_actors.messages import Halt, HaltMode, Resume
from xorj_actors.strategy import DEFAULT_PROFILES, RiskProfile, StrategyBoard
from xorj_actors.vaults._flatten import FlattenOverdue, FlattenSteps
from xorj_actors.vaults._messages import FlattenPhase, GetVaultStatus, Round, RoundResult, VaultPhase, VaultStatus
from xorj_actors.vaults._round import EMPTY, NO_OUTCOMES, Overdue, ReadOverdue, RoundSteps
from xorj_actors.vaults.settings import VaultSettings

__all__ = ["Stats", "Vault"]


class Vault(RoundSteps, FlattenSteps, Participant):
    """One vault (see the module docstring).

    Args:
        board: the halt board.
        vault_id: ``vault-0007``.
        profile: its owner's risk profile (slippage limit, trust-score threshold).
        settings: ``[vaults]``.
        strategy: the StrategyFeed's board.
        accounts: mint -> the vault's token account for it.
        decimals: mint -> decimals.
        stable_mint: the stablecoin.
        on_round: ``(result)`` per round for metrics: ``done``, ``skipped``.
        exposure: the correlated-exposure board (clusters, engine-wide stakes); None: no such limit.
    """

    role: ClassVar[str] = VAULT_ROLE  # the kill switch flattens vaults by this role

    def __init__(
        self,
        board: HaltBoard,
        vault_id: str,
        *,
        profile: RiskProfile = DEFAULT_PROFILES[0],
        settings: VaultSettings = VaultSettings(),
        strategy: StrategyBoard | None = None,
        accounts: Mapping[str, str] | None = None,
        decimals: Mapping[str, int] | None = None,
        stable_mint: str = "",
        on_round: Callable[[str], None] | None = None,
        on_slippage: Callable[[float], None] | None = None,
        exposure: ExposureBoard | None = None,
    ) -> None:
        super().__init__(board)
        self.vault_id = vault_id
        self.profile = profile
        self.settings = settings
        # Without a strategy board (a bare vault in a test or benchmark) it holds: never fresh.
        self.strategy = strategy if strategy is not None else _NO_STRATEGY
        self.accounts = tuple(sorted((accounts or {}).items()))
        self.decimals = decimals if decimals is not None else EMPTY  # shared by every vault, read-only
        self.stable_mint = stable_mint
        self.on_round, self.on_slippage = on_round, on_slippage
        self.exposure = exposure
        self.phase = VaultPhase.IDLE
        self.phase_id = 0
        # Counters live in one slotted object: past 30 attributes an instance loses CPython's
        # shared-key dict, and 10,000 vaults would each pay a 1.6 KB dict.
        self.stats = Stats()
        self.round_key = ""
        # A round's state is made when it starts: an idle vault (most of 10,000) shares empties.
        self.target = EMPTY
        self.pending = EMPTY  # type: ignore[assignment]
        self.done = NO_OUTCOMES  # type: ignore[assignment]
        self.before = EMPTY
        self.flatten = None
        self.flatten_next = None

    # -- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        # Spread the vaults' rounds over the interval instead of all at once.
        interval = self.settings.round_interval_s
        first = (zlib.crc32(self.vault_id.encode()) % 1000) / 1000 * interval
        self.runtime.send_after(min(first, interval), self.actor_ref, _FIRST_ROUND)
        if self.exposure is not None:
            self.exposure.expect((self.vault_id,))  # added at run time: counted before it trades
            self._publish_holdings()

    def on_halt(self, halt: Halt) -> int:
        if halt.mode is _EMERGENCY and self.phase in _UNHANDED_PHASES:
            self._end_round("halted")  # nothing handed over yet: drop the round
        f = self.flatten
        if f is not None and halt.epoch > f.epoch and not f.pending:
            self._flatten_end(f"a new halt (epoch {halt.epoch}) ended the reducing mode")
        # The trades handed over are the executor's: it settles them through the halt and
        # counts them in its own acknowledgement. The vault has none of its own in flight.
        return self.in_flight()

    def on_resume(self, resume: Resume) -> None:
        # DEBUG: a recovery resumes every vault at each step; the kill switch logs the step once.
        logger.debug("{}: resumed at {:.2f} of position limits", self.vault_id, resume.factor)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Round):
            reason = self._round()
            return RoundResult(vault_id=self.vault_id, round=message.round, ran=reason == "started", reason=reason)
        f = self.flatten
        if isinstance(message, VaultSnapshot):
            # Answers are matched to the request they answer; a late one is ignored.
            if f is not None and f.phase is FlattenPhase.READING and message.request_id == f.snapshot_id():
                self._flatten_snapshot(f, message)
            elif message.request_id == f"r:{self.phase_id}":
                self._on_snapshot(message)
            elif message.request_id.startswith("p:"):
                self._on_published(message)
        elif isinstance(message, TradeOutcome):
            if f is not None and message.trade_id in f.pending:
                self._flatten_outcome(f, message)
            else:
                self._on_outcome(message)
        elif isinstance(message, Overdue):
            self._on_overdue(message)
        elif isinstance(message, ReadOverdue):
            self._on_read_overdue(message)
        elif isinstance(message, FlattenVault):
            self._on_flatten(message)
        elif isinstance(message, FlattenOverdue):
            self._on_flatten_overdue(message)
        elif isinstance(message, GetVaultStatus):
            return self.status()
        else:
            return super().on_receive(message)
        return None

    def status(self) -> VaultStatus:
        return VaultStatus(
            vault_id=self.vault_id,
            profile=self.profile.name,
            phase=self.phase,
            rounds=self.stats.rounds,
            rounds_skipped=self.stats.rounds_skipped,
            trades_confirmed=self.stats.confirmed,
            trades_other=self.stats.other,
            last_skip=self.stats.last_skip,
            value_usd=self.stats.value_usd,
            pending=tuple(sorted(self.pending)),
            flatten=self.flatten.flatten_id if self.flatten is not None else "",
        )

    # -- the gateway and the executor (rounds and flattens alike) --------------------------------

    def _ask_snapshot(self, mints: set[str], request_id: str) -> str | None:
        """Ask the RPC gateway for this vault's balances and the prices of its mints and
        ``mints``; the answer comes as a :class:`VaultSnapshot`. Why it could not be asked, or None."""
        gateway = self.runtime.whereis(GATEWAY_NAME)
        priced = tuple(sorted({m for m, _ in self.accounts} | mints))
        try:
            if gateway is None:
                raise ActorDeadError("rpc gateway not running")
            gateway.tell(
                GetVaultSnapshot(
                    vault_id=self.vault_id, accounts=self.accounts, mints=priced, reply_to=self.actor_ref,
                    request_id=request_id,
                )
            )
        except (ActorDeadError, MailboxFull) as exc:
            return f"cannot read the chain: {exc!r}"
        return None

    def _hand_to_executor(self, requests: Iterable[TradeRequest]) -> None:
        """Tell the executor each request; one not handed over is asked again when overdue
        (the same id: never executed twice)."""
        executor = self.runtime.whereis(EXECUTOR_NAME)
        for request in list(requests):
            try:
                if executor is None:
                    raise ActorDeadError("executor not running")
                executor.tell(request)
            except (ActorDeadError, MailboxFull) as exc:
                logger.warning("{}: trade {} not handed over yet: {!r}", self.vault_id, request.trade_id, exc)


class Stats:
    """A vault's counters (see :class:`VaultStatus`)."""

    __slots__ = ("asked_at", "confirmed", "incarnation", "last_skip", "other", "rounds", "rounds_skipped", "value_usd")

    def __init__(self) -> None:
        #: The exposure board's tick when this vault last asked for its balances.
        self.asked_at = 0
        self.rounds = self.rounds_skipped = self.confirmed = self.other = 0
        self.last_skip = ""
        self.value_usd = 0.0
        #: This actor's start in ms, base 36: part of every round key (ids never repeat across restarts).
        self.incarnation = _incarnation()


#: A board nobody publishes to: a vault without a strategy holds (tests, benchmarks).
_NO_STRATEGY = StrategyBoard()
#: The timer's first Round of every vault (a message is immutable: one serves them all).
_FIRST_ROUND = Round()
# Read by every vault on every halt: module globals, as an enum member read off its class costs
# a descriptor call each time.
_EMERGENCY = HaltMode.EMERGENCY
#: A round in these phases has handed nothing over yet: an emergency halt drops it.
_UNHANDED_PHASES = (VaultPhase.READING, VaultPhase.CLOSING)
#: (ms, its base-36 string) of the last incarnation made: vaults started in the same
#: millisecond (thousands at start-up) share one string instead of one each.
_last_incarnation: tuple[int, str] = (-1, "")


def _incarnation() -> str:
    """The current time in ms, base 36 (one shared string per millisecond)."""
    global _last_incarnation  # noqa: PLW0603 - a cache; a race only costs a duplicate string
    ms = time.time_ns() // 1_000_000
    last = _last_incarnation
    if last[0] == ms:
        return last[1]
    text = _base36(ms)
    _last_incarnation = (ms, text)
    return text


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
