"""The kill switch's start-up decision: a pure function of the state file, the audit log and the marker.

At every start (the first, and every supervisor restart) the kill switch reads its state file
(``_persistence.FileReading``), the halt marker, and the audit log's kill-switch history
(:class:`HaltHistory`, read by ``xorj_actors.audit.read_halt_history``, every entry's hash and
HMAC checked). :func:`decide` says what it starts as. Fail closed:

- no file and an empty log: a first start, ``ARMED`` at epoch 0;
- the log unreadable, the marker set, or, when the log holds any history, a file that is
  missing, unreadable, unauthenticated or disagrees with the log's last transition: a new halt,
  ``TRIGGERED``, its reason says which, at epoch ``max(file, log) + 1``;
- otherwise the file's state (``REDUCING`` comes back ``TRIGGERED``: the flatten died with the
  process). The used recovery nonces are the union of the file's and the log's.

Every crash window between "state file written" and "audit entry written" ends in a
disagreement, hence halted: halts write the file first, resumes the log first (durably).

``KILL_SWITCH_ACTIVE`` is read here too (:func:`env_halt_request`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from xorj_actors.kill_switch._persistence import FileReading, marked_epoch
from xorj_actors.kill_switch._state import HALTED, MAX_NONCES, KillSwitchState, PersistedState
from xorj_actors.messages import HaltMode

__all__ = ["HaltHistory", "StartDecision", "Transition", "decide", "env_halt_request"]

_S = KillSwitchState
#: Spellings of ``KILL_SWITCH_ACTIVE`` (case-insensitive, stripped). Anything else non-empty halts.
TRUE_SPELLINGS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_SPELLINGS = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Transition:
    """A state the kill switch recorded in the audit log."""

    state: KillSwitchState
    epoch: int
    factor: float


@dataclass(frozen=True, slots=True)
class HaltHistory:
    """The audit log's kill-switch history, as the start-up decision needs it."""

    #: The log holds entries other than the kill switch's own start-up markers.
    has_history: bool = False
    #: The last transition recorded, if any.
    last: Transition | None = None
    #: The highest epoch any kill-switch entry names.
    max_epoch: int = 0
    #: SHA-256 digests of the nonces of accepted recoveries.
    nonce_digests: frozenset[str] = frozenset()
    #: The log could not be read, or an entry did not verify: nothing above can be trusted.
    problem: str | None = None
    #: Wall-clock time (epoch s) of the last kill-switch entry before this start's marker: when
    #: the engine was last known alive (the downtime policy, ``_downtime``). None: no entry.
    last_alive: float | None = None
    #: The log holds an ``alive`` entry: the previous runs recorded their liveness.
    seen_alive: bool = False
    #: ``(sequence, new key fingerprint)`` of every audit key rotation in the chain, in order
    #: (None: not read). One the state file records and the log lacks: a rollback.
    key_rotations: tuple[tuple[int, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class StartDecision:
    state: PersistedState
    #: Why a new halt starts now (a new epoch, to be recorded and broadcast); None: no new halt.
    halt: str | None = None
    #: A truly first start: ARMED at epoch 0, to be recorded before anything trades.
    first_start: bool = False
    #: The file said REDUCING: the flatten was interrupted, the state is back to TRIGGERED.
    interrupted_flatten: bool = False


def _agrees(state: PersistedState, last: Transition) -> bool:
    if state.epoch != last.epoch:
        return False
    if state.halted and last.state in HALTED:
        return True  # REDUCING and where it came from share an epoch; both are halted
    return state.state is last.state and state.factor == last.factor


def decide(
    reading: FileReading,
    history: HaltHistory | None,
    *,
    pending_halt: str | None = None,
    published_halt: int | None = None,
) -> StartDecision:
    """What the kill switch starts as.

    Args:
        reading: the state file's reading.
        history: the audit log's history; None only for a kill switch without an engine (tests,
            benchmarks), where the authenticated file alone decides.
        pending_halt: what the halt marker holds, if it is set.
        published_halt: the epoch of the halt the halt board showed when a kill switch of this
            process restarted (None on a process's first start, or if the board showed no
            halt). A kill switch that crashed between publishing a halt and writing it must not
            come back less halted than the board it left.
    """
    file_state = reading.state if reading.problem is None else None
    digests = list(file_state.nonce_digests if file_state is not None else ())  # newest last
    epoch = max(
        file_state.epoch if file_state is not None else 0,
        published_halt or 0,
        marked_epoch(pending_halt) if pending_halt is not None else 0,
    )
    if history is not None:
        digests += sorted(history.nonce_digests - set(digests))
        epoch = max(epoch, history.max_epoch, history.last.epoch if history.last is not None else 0)
    base = replace(file_state or PersistedState(), nonce_digests=tuple(digests[-MAX_NONCES:]))

    def halt(why: str) -> StartDecision:
        return StartDecision(
            replace(
                base,
                state=_S.TRIGGERED,
                epoch=epoch + 1,
                mode=HaltMode.EMERGENCY.value,
                reason=why,
                source="start",
                triggered_at=None,
                factor=base.factor,
            ),
            halt=why,
        )

    has_history = history is not None and history.has_history
    if history is not None and history.problem is not None:
        return halt(f"the audit log's kill-switch history cannot be trusted: {history.problem}")
    if history is not None and history.key_rotations is not None:
        seen = file_state.audit_rotation if file_state is not None else None
        if seen is not None and seen not in history.key_rotations:
            return halt(f"the state file records the audit key rotation at entry {seen[0]} (to the key {seen[1]}), which the"
                        " audit log no longer holds: the log was rolled back past a key rotation (`audit verify`)")
        base = replace(base, audit_rotation=history.key_rotations[-1] if history.key_rotations else seen)
    if pending_halt is not None:
        return halt(f"a halt was not yet durable when the kill switch stopped ({pending_halt[:200]})")
    if published_halt is not None and not (file_state is not None and file_state.halted and file_state.epoch >= published_halt):
        return halt(f"the kill switch restarted while the halt of epoch {published_halt} was in force, and its state file does not hold it")
    if not reading.present:
        if not has_history:
            return StartDecision(PersistedState(), first_start=True)
        return halt("the state file is missing, but the audit log holds kill-switch history")
    if reading.problem is not None or file_state is None:
        return halt(f"the state file is {reading.problem or 'unreadable'}")
    if history is not None:
        if not has_history or history.last is None:
            return halt("a state file exists, but the audit log records no kill-switch transition")
        last = history.last
        if not _agrees(file_state, last):
            return halt(
                f"the state file ({file_state.state.value} epoch {file_state.epoch}) disagrees with the"
                f" audit log ({last.state.value} epoch {last.epoch})"
            )
    if file_state.state is _S.REDUCING:
        reason = f"restarted during a flatten (REDUCING); before it: {file_state.reason or '-'}"
        return StartDecision(
            replace(base, state=_S.TRIGGERED, reason=reason[:500], source="state_file"), interrupted_flatten=True
        )
    return StartDecision(base)


def env_halt_request(value: str | None) -> tuple[bool, str | None]:
    """``KILL_SWITCH_ACTIVE``: (halt?, warning). An unclear value halts, with a warning naming it."""
    if value is None:
        return False, None
    word = value.strip().lower()
    if word in TRUE_SPELLINGS:
        return True, None
    if word in FALSE_SPELLINGS:
        return False, None
    return True, f"KILL_SWITCH_ACTIVE={value[:40]!r} is neither true nor false: halting (the safe reading)"
