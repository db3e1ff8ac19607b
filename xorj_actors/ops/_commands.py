"""The operators' commands, transport free: parsed arguments in, JSON-able results out.

The debug socket serves every command; the HTTP API calls the ones it exposes (halt, recover).
Arguments are parsed by :mod:`xorj_actors.ops._args`; a refusal is a :class:`RequestError`
with a code the transport turns into its own error reply. Commands block (they ask actors):
the transports run them off their event loops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError, Timeout

from supervisors import ChildInfo, MailboxFull, Runtime, WhichChildren
from xorj_actors.asks import ask_all, expect
from xorj_actors.breakers import BREAKERS
from xorj_actors.kill_switch import (
    KILL_SWITCH_NAME, EnterMaintenance, Flatten, FlattenOutcome, GetStatus, HaltBoard, Recover,
)
from xorj_actors.messages import Trigger
from xorj_actors.metrics import breaker_states
from xorj_actors.ops._key_commands import KeyCommands
from xorj_actors.ops._args import (
    PARSERS, ActorQuery, FlattenArgs, HaltArgs, OperatorArgs, RequestError, VaultAddArgs, VaultRemoveArgs,
)
from xorj_actors.redaction import Redactor
from xorj_actors.vaults import VaultAdmin, VaultAdminError

__all__ = ["ASK_TIMEOUT_S", "COMMANDS", "FREE_TEXT_FIELDS", "Commands", "to_jsonable"]

#: How long a command may wait for an actor's answer.
ASK_TIMEOUT_S = 2.0

COMMANDS: tuple[str, ...] = (
    "help", "tree", "actor", "stacks", "status", "progress", "trades", "breakers", "quotas", "cluster", "halt",
    "maintenance", "recover", "executor", "confirmation", "strategy", "strategy-refresh", "risk", "risk-reset",
    "reconcile", "vaults", "round", "vault-add", "vault-remove", "flatten", "reload-secrets", "keys", "rotate-key",
)


#: The operators' free-text arguments: masked before any actor, log or audit entry sees them.
#: A recovery's nonce is not among them: it is verified as given (the kill switch records it
#: masked, as a digest).
FREE_TEXT_FIELDS: tuple[str, ...] = ("reason", "operator")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and enums as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return value


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A refusal of the vault administration is the operator's refusal, code and message alike."""
    try:
        yield
    except VaultAdminError as exc:
        raise RequestError(exc.code, exc.message) from None


#: The breakers' child ids in the tree (their actors' names in ``Runtime.actors``).
_BREAKER_NAMES = frozenset(BREAKERS)

class Commands(KeyCommands):
    """The commands; blocking, so transports run them on an executor, never on their loop.

    Args:
        runtime: the engine's actors.
        endpoints: the endpoints served (``status``).
        data_dir: the engine's data directory (``status``).
        views: read-only views of engine state that need no message (boards), by command name,
            and the hook ``"vault_spec"``: ``Callable[[int], ChildSpec]``, the spec of vault ``index``.
        redactor: the engine's one redactor: it masks the free-text arguments
            (:data:`FREE_TEXT_FIELDS`) before they go anywhere, and every answer. Default: one
            that masks only labelled hex MACs (no secret values known).
        board, kill_file: what holds a trigger the kill switch cannot take (:meth:`trigger`).
    """

    #: How long the vaults together get to answer ``vaults`` (plus :attr:`VAULT_ASK_PER_VAULT_S`
    #: each, at most ``ASK_TIMEOUT_S``): one stuck vault must not hold up the table.
    VAULT_ASK_TIMEOUT_S: ClassVar[float] = 0.5
    VAULT_ASK_PER_VAULT_S: ClassVar[float] = 0.0001

    def __init__(
        self,
        runtime: Runtime,
        endpoints: Callable[[], Mapping[str, str]],
        data_dir: Path,
        views: Mapping[str, Callable[..., Any]] | None = None,
        *,
        redactor: Redactor | None = None,
        board: HaltBoard | None = None,
        kill_file: Path | None = None,
    ) -> None:
        self.runtime = runtime
        self.board = board
        self.kill_file = kill_file
        self.endpoints = endpoints
        self.data_dir = data_dir
        self.views = dict(views or {})
        self.redact = Redactor(()) if redactor is None else redactor
        self.started = time.time()

    def table(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        """Each command by name: raw JSON arguments in (parsed here), JSON-able result out."""
        return {name: self._bound(name) for name in COMMANDS}

    def _bound(self, name: str) -> Callable[[Mapping[str, Any]], Any]:
        parse, run = PARSERS[name], getattr(self, name.replace("-", "_"))

        def command(args: Mapping[str, Any]) -> Any:
            # A secret pasted into a reason reaches neither the actors nor the answer.
            return self.redact.deep(run(self.masked(parse(args))))

        command.__doc__ = run.__doc__
        return command

    def masked(self, parsed: Any) -> Any:
        """``parsed`` with its free-text arguments (:data:`FREE_TEXT_FIELDS`) masked."""
        if not dataclasses.is_dataclass(parsed) or isinstance(parsed, type):
            return parsed
        names = {f.name for f in dataclasses.fields(parsed)}
        changes = {n: self.redact(getattr(parsed, n)) for n in FREE_TEXT_FIELDS if n in names}
        return dataclasses.replace(parsed, **changes) if changes else parsed

    # -- engine state -------------------------------------------------------------------------

    def help(self, _: None) -> Any:
        """The commands, each with one line of help."""
        return {name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in self.table().items()}

    def tree(self, _: None) -> Any:
        """Every live actor: urn, name, class, parent, state, mailbox depth, restarts, last message."""
        return [actor.as_dict() for actor in self.runtime.actors()]

    def actor(self, query: ActorQuery) -> Any:
        """One actor's details and current stack, by urn or name."""
        for actor in self.runtime.actors(stack=True):
            if actor.urn == query.urn or actor.name == query.name:
                return actor.as_dict(stack=True)
        raise RequestError("not_found", f"no live actor {query.urn if query.urn is not None else query.name!r}")

    def stacks(self, _: None) -> Any:
        """The stack of every thread, with the actor it is running, if any."""
        running = {a.thread_ident: a.name for a in self.runtime.actors() if a.thread_ident is not None}
        names = {t.ident: t.name for t in threading.enumerate()}
        frames = sys._current_frames()  # noqa: SLF001 - the only way to see live stacks
        return [
            {
                "thread": names.get(ident, str(ident)),
                "ident": ident,
                "actor": running.get(ident),
                "stack": [line.rstrip("\n") for line in traceback.format_stack(frame)],
            }
            for ident, frame in frames.items()
        ]

    def breaker_states(self) -> dict[str, str]:
        """Each running breaker's state, by breaker name (a snapshot of the breakers alone: a
        health probe must not snapshot 10,000 vaults to read seven actors)."""
        return breaker_states(self.runtime.actors(named=_BREAKER_NAMES.__contains__))

    def status(self, _: None) -> Any:
        """Kill switch state, epoch, acked and missing actors, halt latency; the endpoints served;
        in a cluster, the cluster-wide halt (each node complete, incomplete or not answering)."""
        out = {
            "kill_switch": self.kill_switch_status(),
            "endpoints": dict(self.endpoints()),
            "actors": len(self.runtime),
            "pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "uptime_s": round(time.time() - self.started, 3),
        }
        if "cluster_halt" in self.views:
            out["cluster"] = self._view("cluster_halt")
        return out

    def kill_switch_status(self, timeout_s: float = ASK_TIMEOUT_S) -> dict[str, Any]:
        """The kill switch's status alone (no cluster round trip), waited for ``timeout_s`` at most."""
        status: dict[str, Any] = to_jsonable(
            self._ask(self._kill_switch(), GetStatus(), "the kill switch", timeout_s=timeout_s)
        )
        return status

    def reload_secrets(self, _: None) -> Any:
        """Read the credentials again from their sources (as SIGHUP does): changed, held, sources, missing."""
        return self._view("reload_secrets")  # its trigger: "ctl"

    def breakers(self, _: None) -> Any:
        """Every circuit breaker: state, failures in window, consecutive, probes, reason."""
        return self._view("breakers")

    def quotas(self, _: None) -> Any:
        """Every external endpoint's budget: used in its window, rate, pause, waiting, 429s."""
        return self._view("quotas")

    def cluster(self, _: None) -> Any:
        """Every cluster node: alive, last heartbeat, vaults owned, kill switch, halt ack; the halt epoch."""
        return self._view("cluster")

    def progress(self, _: None) -> Any:
        """Rounds, trades by status, open breakers, kill switch state, strategy freshness."""
        return self._view("progress")

    def trades(self, _: None) -> Any:
        """The last minute's trades: rate, outcomes by status, p50 and p99 from intent to confirmed."""
        return self._view("trades")

    # -- the kill switch ----------------------------------------------------------------------

    def _kill_switch(self) -> Any:
        ref = self.runtime.whereis(KILL_SWITCH_NAME)
        if ref is None:
            raise RequestError("unavailable", "the kill switch is not running (restarting?)")
        return ref

    def halt(self, a: HaltArgs) -> Any:
        """Trigger the kill switch: args mode (graceful|emergency), reason."""
        held = self.trigger(a, source="debug_socket")
        return {"triggered": True, "mode": a.mode.value, **({"held": held} if held else {})}

    def trigger(self, a: HaltArgs, source: str) -> str | None:
        """Trigger the kill switch for ``source`` (``halt``, the HTTP API's activate, Slack).

        A halt is never lost: if the kill switch cannot take it, the board holds it (tripped here
        when no kill switch is registered; its ref trips it before telling) and the kill file
        is written for the next kill switch. Returns None, or what was done instead; raises
        ``unavailable`` only if neither could hold it.
        """
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        try:
            if ks is None:
                raise ActorDeadError("not running")
            ks.tell(Trigger(mode=a.mode, reason=a.reason, source=source))
            return None
        except (ActorDeadError, MailboxFull) as exc:
            why = "not running (restarting?)" if ks is None else f"did not take the trigger ({type(exc).__name__})"
        held = []
        if ks is None and self.board is not None:  # a ref that raised tripped the board already
            held.append(f"the halt board tripped (epoch {self.board.trip()})")
        if self.kill_file is not None:
            try:
                self.kill_file.write_text(f"{source}: {a.reason}\n", encoding="utf-8")
                held.append(f"the kill file {self.kill_file.name} written")
            except OSError as exc:
                logger.critical("cannot write the kill file {}: {!r}", self.kill_file, exc)
        if not held and ks is None:
            raise RequestError("unavailable", f"the kill switch is {why}")
        note = f"the kill switch was {why}: " + (", ".join(held) or "its ref tripped the halt board")
        logger.critical("{} halt from {}: {}", a.mode.value, source, note)
        return note

    def maintenance(self, message: EnterMaintenance) -> Any:
        """Halt for maintenance (leave it with recover): args reason."""
        return to_jsonable(self._ask(self._kill_switch(), message, "the kill switch", changes=True))

    def recover(self, message: Recover) -> Any:
        """Recover with K-of-M authorisations: args epoch, nonce, timestamp, authorisations, operator."""
        return to_jsonable(self._ask(self._kill_switch(), message, "the kill switch", changes=True))

    def flatten(self, a: FlattenArgs, *, timeout_s: float = ASK_TIMEOUT_S) -> Any:
        """While halted, sell vaults' volatile holdings into the stablecoin (REDUCING, audited): args vaults, operator, reason."""
        outcome = self._ask(
            self._kill_switch(), Flatten(vaults=a.vaults, operator=a.operator, reason=a.reason), "the kill switch",
            changes=True, timeout_s=timeout_s,
        )
        if not isinstance(outcome, FlattenOutcome):
            raise RequestError("internal", f"the kill switch answered {type(outcome).__name__}")
        if not outcome.accepted:  # the kill switch audited the refusal
            raise RequestError("refused", f"flatten refused: {outcome.reason}")
        logger.warning(
            "debug socket: flatten {} of {} by {}: {}", outcome.flatten_id, ", ".join(outcome.vaults), a.operator, a.reason
        )
        return to_jsonable(outcome)

    # -- asking actors ------------------------------------------------------------------------

    def _named(self, name: str, what: str) -> Any:
        ref = self.runtime.whereis(name)
        if ref is None:
            raise RequestError("unavailable", f"{what} is not running (disabled in the config, or restarting)")
        return ref

    @staticmethod
    def _ask(ref: Any, message: Any, what: str, *, changes: bool = False, timeout_s: float = ASK_TIMEOUT_S) -> Any:
        """Ask with ``timeout_s``; a command that ``changes`` something says a timeout is no refusal."""
        try:
            return ref.ask(message, timeout=timeout_s)
        except Timeout:
            hint = ": it may still take effect, check before trying again" if changes else ""
            raise RequestError("timeout", f"{what} did not answer within {timeout_s:g} s{hint}") from None
        except ActorDeadError:
            raise RequestError("unavailable", f"{what} stopped (restarting?)") from None
        except MailboxFull:
            raise RequestError("unavailable", f"{what} is overloaded (mailbox full)") from None

    def _supervisor(self, name: str) -> Any:
        ref = self.runtime.supervisor(name)
        if ref is not None:
            return ref
        raise RequestError("unavailable", f"the {name} supervisor is not running (restarting?)")

    def _children(self, supervisor: str) -> tuple[ChildInfo, ...]:
        return self._ask(self._supervisor(supervisor), WhichChildren(), f"the {supervisor} supervisor")

    # -- trading ------------------------------------------------------------------------------

    def executor(self, _: None) -> Any:
        """The executor: trades accepted and in flight, unsettled vaults, outcomes by status."""
        from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus  # loaded on use: see the package

        status = self._ask(self._named(EXECUTOR_NAME, "the executor"), GetExecutorStatus(), "the executor")
        return {**to_jsonable(status), "outcomes": dict(status.outcomes)}

    def confirmation(self, _: None) -> Any:
        """The confirmation actor's connection: connected, slot, lag, watches, reconnects, errors."""
        from xorj_actors.chain import CONFIRMATION_NAME, GetConfirmationHealth

        ref = self._named(CONFIRMATION_NAME, "the confirmation actor")
        return to_jsonable(self._ask(ref, GetConfirmationHealth(), "the confirmation actor"))

    def strategy(self, _: None) -> Any:
        """The strategy feed: round, scenario, freshness, last good answer, last error, polls."""
        from xorj_actors.strategy import STRATEGY_FEED_NAME, GetStrategyStatus

        ref = self._named(STRATEGY_FEED_NAME, "the strategy feed")
        return to_jsonable(self._ask(ref, GetStrategyStatus(), "the strategy feed"))

    def strategy_refresh(self, reason: str) -> Any:
        """Make the strategy feed poll the quant engine now: args reason."""
        from xorj_actors.strategy import STRATEGY_FEED_NAME, RefreshStrategy

        reason = self.redact(reason)  # a bare string: not one of the FREE_TEXT_FIELDS
        try:
            self._named(STRATEGY_FEED_NAME, "the strategy feed").tell(RefreshStrategy(reason=f"operator: {reason}"))
        except ActorDeadError:
            raise RequestError("unavailable", "the strategy feed stopped (restarting?)") from None
        except MailboxFull:
            raise RequestError("unavailable", "the strategy feed is overloaded (mailbox full)") from None
        return {"requested": True, "reason": reason}

    def risk(self, _: None) -> Any:
        """The risk monitors (drawdown and daily loss, heartbeats, clock skew; null: not answering)
        and the correlated-exposure clusters (null: this engine keeps none)."""
        from xorj_actors.risk import CLOCK_SKEW_NAME, DRAWDOWN_NAME, HEARTBEAT_NAME, GetClockSkewStatus
        from xorj_actors.risk import GetHeartbeatStatus, GetRiskStatus

        monitors = {
            "drawdown": (DRAWDOWN_NAME, GetRiskStatus()),
            "heartbeat": (HEARTBEAT_NAME, GetHeartbeatStatus()),
            "clock_skew": (CLOCK_SKEW_NAME, GetClockSkewStatus()),
        }
        answers = ask_all({k: (self.runtime.whereis(n), m) for k, (n, m) in monitors.items()}, ASK_TIMEOUT_S)
        if all(error == "not running" for _, error in answers.values()):
            raise RequestError("unavailable", "no risk monitor is running (disabled in the config, or restarting)")
        out: dict[str, Any] = {k: to_jsonable(v) if error is None else None for k, (v, error) in answers.items()}
        out["errors"] = {k: error for k, (_, error) in answers.items() if error is not None}
        out["correlation"] = self._view("correlation") if "correlation" in self.views else None
        return out

    def risk_reset(self, a: OperatorArgs) -> Any:
        """Reset the drawdown high-water mark and day start to the current value (audited): args operator, reason."""
        from xorj_actors.risk import DRAWDOWN_NAME, ResetRiskBaseline

        ref = self._named(DRAWDOWN_NAME, "the drawdown monitor")
        # The monitor audits the reset itself (RECOVERY, with the figures before and after).
        message = ResetRiskBaseline(operator=a.operator, reason=a.reason)
        after = self._ask(ref, message, "the drawdown monitor", changes=True)
        logger.warning("debug socket: risk baseline reset by {}: {}", a.operator, a.reason)
        return {"reset": True, "operator": a.operator, "status": to_jsonable(after)}

    # -- vaults -------------------------------------------------------------------------------

    def reconcile(self, _: None) -> Any:
        """Start a statement reconciliation (one at a time); the reconciler's state, the last run's findings."""
        from xorj_actors.statements import RECONCILER_NAME, RunReconciliation, status_reply  # loaded on use
        return status_reply(self._ask(self._named(RECONCILER_NAME, "the reconciler"), RunReconciliation(), "the reconciler"))

    def _vaults(self) -> VaultAdmin:
        """The vaults as the vaults supervisor lists them now; changes are audited as ``debug_socket``."""
        children = self._children("vaults")
        return VaultAdmin(self.runtime, self._supervisor("vaults"), children, actor="debug_socket", timeout_s=ASK_TIMEOUT_S,
                          on_gone=self.views.get("vault_gone"))

    @staticmethod
    def _child(admin: VaultAdmin, vault_id: str) -> ChildInfo:
        with _refusals():
            return admin.child(vault_id)

    def vaults(self, vault_id: str | None) -> Any:
        """Every vault's status, or one's: args vault; a vault that does not answer is listed as such."""
        from xorj_actors.vaults import GetVaultStatus, VaultStatus

        admin = self._vaults()
        children = admin.children if vault_id is None else (self._child(admin, vault_id),)
        timeout = min(ASK_TIMEOUT_S, self.VAULT_ASK_TIMEOUT_S + self.VAULT_ASK_PER_VAULT_S * len(children))
        answers = ask_all({c.id: (admin.ref(c), GetVaultStatus()) for c in children}, timeout)
        rows: list[dict[str, Any]] = []
        for child in children:
            status, error = expect(answers[child.id], VaultStatus)
            row: dict[str, Any] = {"vault_id": child.id, "answered": error is None, "restarts": child.restarts}
            rows.append({**row, **to_jsonable(status)} if error is None else {**row, "error": error})
        return {
            "count": len(rows),
            "answered": sum(r["answered"] for r in rows),
            "not_answering": [r["vault_id"] for r in rows if not r["answered"]],
            "pending_trades": sum(len(r["pending"]) for r in rows if r["answered"]),
            "vaults": rows,
        }

    def round(self, vault_id: str) -> Any:
        """Run one rebalancing round of a vault now: args vault (ran: false says why not)."""
        from xorj_actors.vaults import Round

        admin = self._vaults()
        child = self._child(admin, vault_id)
        ref = admin.ref(child)
        if ref is None:
            raise RequestError("unavailable", f"{child.id} is not running (restarting?)")
        result = self._ask(ref, Round(), child.id, changes=True)
        logger.info("debug socket: operator round of {}: {}", child.id, result.reason)
        return to_jsonable(result)

    def vault_add(self, a: VaultAddArgs) -> Any:
        """Start vaults at run time (audited): args count, index (default: after the highest), operator.

        In a cluster: add them to the cluster's vault set; placement starts each on one node."""
        cluster = self.views.get("cluster_vault_add")
        if cluster is not None:
            with _refusals():
                return cluster(a)
        hook = self.views.get("vault_spec")
        if hook is None:
            raise RequestError("unavailable", "this engine cannot add vaults (no vault_spec hook)")
        with _refusals():
            done = self._vaults().add(a.count, hook, a.operator, a.index)
        logger.warning("debug socket: vaults added by {}: {}; failed: {}", a.operator, list(done.added), done.failed)
        return to_jsonable(done)

    def vault_remove(self, a: VaultRemoveArgs) -> Any:
        """Stop and remove a vault (audited); refused while trades are pending: args vault, force, operator, reason.

        In a cluster: remove it from the cluster's vault set; its owner passivates it and releases it."""
        cluster = self.views.get("cluster_vault_remove")
        if cluster is not None:
            with _refusals():
                return cluster(a, self._local_problems)
        with _refusals():
            r = self._vaults().remove(
                a.vault, operator=a.operator, reason=a.reason, force=a.force, executor_configured=self._executor_configured
            )
        problems = list(r.problems)
        if not r.removed:
            logger.warning("debug socket: removal of {} refused: {}", r.vault, "; ".join(problems))
            return {"removed": False, "vault": r.vault, "reason": "; ".join(problems), "problems": problems}
        logger.warning("debug socket: {} removed by {} ({}){}", r.vault, a.operator, a.reason, " FORCED" if r.forced else "")
        return {"removed": True, "vault": r.vault, "forced": r.forced, "problems": problems,
                "stopped": r.stopped, "unsettled_after": list(r.unsettled_after), "notes": list(r.notes)}

    def _local_problems(self, vault_id: str) -> list[str]:
        """Why removing a vault that runs here could strand a trade (none if it does not run here)."""
        admin = self._vaults()
        child = next((c for c in admin.children if c.id == vault_id), None)
        return [] if child is None else admin.pending(child, self._executor_configured)

    def _executor_configured(self) -> bool:
        try:
            return any(c.id == "executor" for c in self._children("chain"))
        except RequestError:
            return True  # cannot tell: assume it is, and refuse
