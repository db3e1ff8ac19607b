"""Vault administration at run time: start vaults under the vaults supervisor, remove one.

The rules: vault ids are ``vault-0007`` (index below 10**6); an add starts every vault or says
which did not start and which were not tried; a removal is refused while the vault or the
executor holds trades of it (whatever cannot be checked counts too: fail closed) unless forced;
the risk monitors hear that a removed vault left on purpose; every change is audited. Transport
free: the operators' commands (debug socket, HTTP) call it and turn :class:`VaultAdminError`
into their own error replies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from loguru import logger
from pykka import ActorDeadError, Timeout

from supervisors import ChildInfo, ChildSpec, MailboxFull, Runtime, StartChild, StartChildren, TerminateChild
from xorj_actors.asks import ask_all, expect
from xorj_actors.audit import EventType, Severity, audit_event, record

__all__ = [
    "MAX_VAULTS_PER_ADD",
    "MAX_VAULT_INDEX",
    "VAULT_ID",
    "VaultAdmin",
    "VaultAdminError",
    "VaultRemoval",
    "VaultsAdded",
    "new_vault_indices",
]

#: Vault ids as the engine makes them (``vault-0007``); the index stays below 10**6.
VAULT_ID: Final = re.compile(r"vault-([0-9]{4,6})")
MAX_VAULT_INDEX: Final = 999_999
#: Vaults one add may start.
MAX_VAULTS_PER_ADD: Final = 1000


class VaultAdminError(Exception):
    """A refused change: ``code`` (bad_request, not_found, unavailable, timeout) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_vault_indices(existing: Iterable[str], count: int, index: int | None = None) -> range:
    """The indices of ``count`` vaults to add from ``index`` (default: after the highest of the
    ``existing`` vault ids); VaultAdminError (bad_request) if one exists already or the indices
    run past :data:`MAX_VAULT_INDEX`: then nothing is added."""
    have = {int(m.group(1)) for v in existing if (m := VAULT_ID.fullmatch(v))}
    first = max(have, default=-1) + 1 if index is None else index
    if first + count - 1 > MAX_VAULT_INDEX:
        raise VaultAdminError("bad_request", f"vault indices stop at {MAX_VAULT_INDEX}")
    taken = sorted(have & set(range(first, first + count)))
    if taken:
        names = ", ".join(f"vault-{i:04d}" for i in taken[:10])
        raise VaultAdminError("bad_request", f"{len(taken)} of these vaults exist already: {names}; nothing added")
    return range(first, first + count)


@dataclass(frozen=True, slots=True)
class VaultsAdded:
    """What an add did: started, failed to start (id: why), not tried after a failure."""

    added: tuple[str, ...]
    failed: dict[str, str]
    not_tried: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VaultRemoval:
    """What a removal did; ``removed`` false: refused for ``problems``, nothing changed."""

    removed: bool
    vault: str
    problems: tuple[str, ...]
    forced: bool = False
    stopped: bool = False
    unsettled_after: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


class VaultAdmin:
    """Adds and removes the vaults of one vaults supervisor.

    Args:
        runtime: finds the vaults, the executor and the risk monitors; records the audit.
        supervisor: the vaults supervisor's ref.
        children: its children as it last listed them (``WhichChildren``).
        actor: who the audit trail says made the change.
        timeout_s: how long each ask may take.
        on_gone: told the id of each vault stopped for good here (the exposure board forgets its stake).
    """

    def __init__(
        self, runtime: Runtime, supervisor: Any, children: tuple[ChildInfo, ...], *, actor: str, timeout_s: float,
        on_gone: Callable[[str], object] | None = None,
    ) -> None:
        self.runtime = runtime
        self.on_gone = on_gone
        self.supervisor = supervisor
        self.children = children
        self.actor = actor
        self.timeout_s = timeout_s

    # -- add ----------------------------------------------------------------------------------

    def add(self, count: int, make_spec: Callable[[int], ChildSpec], operator: str, index: int | None = None) -> VaultsAdded:
        """Start ``count`` vaults from ``index`` (default: after the highest); audited."""
        indices = new_vault_indices((c.id for c in self.children), count, index)
        # Every spec first: a hook that fails must not leave half of the vaults started.
        specs: list[ChildSpec] = [make_spec(i) for i in indices]
        for i, spec in zip(indices, specs):
            if spec.id != f"vault-{i:04d}":
                raise RuntimeError(f"vault_spec({i}) made a child named {spec.id!r}")
        added: list[str] = []
        failed: dict[str, str] = {}
        for spec in specs:
            try:
                self.supervisor.ask(StartChild(spec), timeout=self.timeout_s)
            except Timeout:
                # Not a refusal: it may start yet. Stop here rather than pile up more.
                failed[spec.id] = f"the vaults supervisor did not answer within {self.timeout_s} s: it may still start"
                break
            except (ActorDeadError, MailboxFull) as exc:
                failed[spec.id] = f"the vaults supervisor is unavailable: {exc!r}"
                break
            except Exception as exc:  # noqa: BLE001 - id taken meanwhile, or the vault failed to start
                failed[spec.id] = f"{type(exc).__name__}: {exc}"
                continue
            added.append(spec.id)
        not_tried = [s.id for s in specs if s.id not in added and s.id not in failed]
        self._audit(
            "vaults added",
            {"operator": operator, "vaults": added, "failed": failed, "not_tried": not_tried},
            Severity.WARNING if failed or not_tried else Severity.INFO,
        )
        return VaultsAdded(tuple(added), failed, tuple(not_tried))

    # -- cluster: activation and passivation by lease ---------------------------------------

    def activate_many(self, specs: Sequence[tuple[ChildSpec, dict[str, Any]]]) -> dict[str, str]:
        """Start vaults whose leases this node now holds, in one ask of the supervisor; each started
        one audited (``vault activated``, with ``detail``). ``{vault: why}`` for each that did not
        start (one already running counts as started: an earlier activation whose answer came late).

        Raises VaultAdminError when the supervisor did not answer: then none is known started.
        """
        if not specs:
            return {}
        timeout = self.timeout_s + 0.01 * len(specs)  # starting each takes its time
        try:
            answers = self.supervisor.ask(StartChildren(tuple(spec for spec, _ in specs)), timeout=timeout)
        except Timeout:
            raise VaultAdminError("timeout", f"the vaults supervisor did not answer within {timeout:.1f} s") from None
        except (ActorDeadError, MailboxFull) as exc:
            raise VaultAdminError("unavailable", f"the vaults supervisor is unavailable: {exc!r}") from None
        failed: dict[str, str] = {}
        for (spec, detail), why in zip(specs, answers):
            if why is None:
                self._audit("vault activated", {"vault": spec.id, **detail}, Severity.INFO)
            elif "in use" not in why:
                failed[spec.id] = why
        return failed

    def passivate(self, vault_id: str, reason: str) -> bool:
        """Stop a vault whose lease this node no longer holds (or gives up); audited. False: it
        was not running.

        Never refused for pending trades, unlike :meth:`remove`: the fence already keeps anything
        new from being signed for it, and the trades the executor carries stay the executor's (it
        confirms what was signed and sent). The vault only stops planning rounds.
        """
        try:
            self.supervisor.ask(TerminateChild(vault_id), timeout=self.timeout_s)
        except KeyError:
            return False
        except Timeout:
            raise VaultAdminError("timeout", f"{vault_id}: the vaults supervisor did not answer within {self.timeout_s} s") from None
        except (ActorDeadError, MailboxFull) as exc:
            raise VaultAdminError("unavailable", f"the vaults supervisor is unavailable: {exc!r}") from None
        notes = self._forget(vault_id)
        self._audit("vault passivated", {"vault": vault_id, "reason": reason, "notes": notes}, Severity.INFO)
        return True

    # -- remove -------------------------------------------------------------------------------

    def child(self, vault_id: str) -> ChildInfo:
        """The vault named ``vault_id``; ``not_found`` if the supervisor has no such child."""
        for child in self.children:
            if child.id == vault_id:
                return child
        raise VaultAdminError("not_found", f"no vault {vault_id!r}")

    def ref(self, child: ChildInfo) -> Any:
        """The live vault's ref, or None (not running)."""
        return self.runtime.lookup(child.urn) if child.alive and child.urn else None

    def remove(
        self, vault_id: str, *, operator: str, reason: str, force: bool, executor_configured: Callable[[], bool]
    ) -> VaultRemoval:
        """Stop and remove a vault; refused while trades are pending unless ``force``; audited.

        ``executor_configured`` says whether a missing executor is a problem (it is configured,
        so it is restarting) or not (this engine runs without execution).
        """
        child = self.child(vault_id)
        name = child.id
        problems = self.pending(child, executor_configured)
        if problems and not force:
            return VaultRemoval(removed=False, vault=name, problems=tuple(problems))
        ref = self.ref(child)
        try:
            self.supervisor.ask(TerminateChild(name), timeout=self.timeout_s)
        except KeyError:
            raise VaultAdminError("not_found", f"no vault {name!r} (removed meanwhile?)") from None
        except Timeout:
            raise VaultAdminError(
                "timeout", f"the vaults supervisor did not answer within {self.timeout_s} s: {name} may still be removed"
            ) from None
        except (ActorDeadError, MailboxFull) as exc:
            raise VaultAdminError("unavailable", f"the vaults supervisor is unavailable: {exc!r}; nothing removed") from None
        stopped = ref is None or ref.join(self.timeout_s)
        notes = self._forget(name)
        if not stopped:
            notes.append(f"{name} did not finish stopping within {self.timeout_s} s (see ctl tree)")
        # A trade handed over between the check and the stop.
        unsettled = self.pending(child, executor_configured, vault=False)
        self._audit(
            "vault removed",
            {"operator": operator, "reason": reason, "vault": name, "forced": bool(problems), "problems": problems,
             "unsettled_after": unsettled, "notes": notes},
            Severity.WARNING if problems or unsettled or notes else Severity.INFO,
        )
        return VaultRemoval(
            removed=True, vault=name, problems=tuple(problems), forced=bool(problems), stopped=stopped,
            unsettled_after=tuple(unsettled), notes=tuple(notes),
        )

    def pending(self, child: ChildInfo, executor_configured: Callable[[], bool], *, vault: bool = True) -> list[str]:
        """Why removing the vault could strand a trade: its own pending trades, the executor's
        unsettled ones; whatever cannot be checked counts too (fail closed)."""
        from xorj_actors.execution import EXECUTOR_NAME, ExecutorStatus, GetExecutorStatus
        from xorj_actors.vaults._vault import GetVaultStatus, VaultStatus

        asks: dict[str, tuple[Any, Any]] = {"executor": (self.runtime.whereis(EXECUTOR_NAME), GetExecutorStatus())}
        if vault:
            asks["vault"] = (self.ref(child), GetVaultStatus())
        answers = ask_all(asks, self.timeout_s)
        problems: list[str] = []
        if vault:
            status, error = expect(answers["vault"], VaultStatus)
            if error is not None:
                problems.append(f"{child.id}: {error}: cannot tell whether trades are pending")
            elif status.pending:
                problems.append(f"{len(status.pending)} trade(s) pending: {', '.join(status.pending[:5])}")
        status, error = expect(answers["executor"], ExecutorStatus)
        if error is None:
            if child.id in status.unsettled_vaults:
                problems.append(f"the executor has unsettled trades of {child.id}")
        elif error != "not running" or executor_configured():
            problems.append(f"the executor: {error}: cannot tell whether trades are unsettled")
        return problems

    def _forget(self, name: str) -> list[str]:
        """Tell the risk monitors the vault left on purpose: its value is not a loss, its silence no fault."""
        from xorj_actors.risk import DRAWDOWN_NAME, HEARTBEAT_NAME, ForgetEssential, VaultRemoved

        notes: list[str] = []
        if self.on_gone is not None:
            self.on_gone(name)
        for monitor, message in ((DRAWDOWN_NAME, VaultRemoved(vault_id=name, at=time.time())),
                                 (HEARTBEAT_NAME, ForgetEssential(name=name))):
            ref = self.runtime.whereis(monitor)
            if ref is None:
                notes.append(f"{monitor} not running: not told")
                continue
            try:
                ref.tell(message)
            except (ActorDeadError, MailboxFull) as exc:
                notes.append(f"{monitor} not told: {exc!r}")
        return notes

    def _audit(self, what: str, details: dict[str, Any], severity: Severity) -> None:
        event = audit_event(EventType.CONFIG_CHANGE, self.actor, {"what": what, **details}, severity=severity)
        if not record(self.runtime, event):
            logger.error("{}: {} not audited: {}", self.actor, what, details)
