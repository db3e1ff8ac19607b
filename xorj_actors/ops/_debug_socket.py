"""The debug socket: newline-delimited JSON over a Unix domain socket (mode 0600).

Each request is one line: ``{"id": <any>, "cmd": "<command>", "args": {...}}``; each reply is one
line: ``{"id": <same>, "ok": true, "result": ...}`` or ``{"id": ..., "ok": false, "error":
{"code": ..., "message": ...}}``. Bad input gets an error reply and changes nothing; an oversized
line, an idle or a slow client gets a reply where possible and the connection is closed. The
server runs on its own thread and event loop, so a stuck actor cannot make it unresponsive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError, Timeout

from supervisors import ChildInfo, ChildSpec, MailboxFull, Runtime, StartChild, TerminateChild, WhichChildren
from xorj_actors.audit import EventType, Severity, audit_event, record
from supervisors import LoopThread
from xorj_actors.kill_switch import (
    KILL_SWITCH_NAME,
    EnterMaintenance,
    GetStatus,
    HaltBoard,
    Participant,
    Recover,
)
from xorj_actors.messages import HaltMode, Trigger

from xorj_actors.ops.settings import DebugSocketSettings

__all__ = ["DebugSocket", "DebugSocketServer", "RequestError", "COMMANDS"]

#: How long a command may wait for an actor's answer.
ASK_TIMEOUT_S = 2.0
#: How long a reply may take to drain to a slow client before it is dropped.
WRITE_TIMEOUT_S = 5.0


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _args(args: Mapping[str, Any], spec: Mapping[str, tuple[type | tuple[type, ...], bool]]) -> dict[str, Any]:
    """Check ``args`` against {name: (type, required)}; refuse unknown keys and wrong types."""
    unknown = set(args) - set(spec)
    if unknown:
        raise RequestError("bad_request", f"unknown argument(s): {', '.join(sorted(unknown))}")
    out = {}
    for name, (tp, required) in spec.items():
        if name not in args:
            if required:
                raise RequestError("bad_request", f"missing argument: {name}")
            continue
        value = args[name]
        if not isinstance(value, tp) or (isinstance(value, bool) and tp is int):
            raise RequestError("bad_request", f"argument {name} has the wrong type")
        out[name] = value
    return out


def _expect(answer: tuple[Any, str | None], kind: type) -> tuple[Any, str | None]:
    """An answer of the wrong kind is no answer (decisions are made on it: fail closed)."""
    value, error = answer
    if error is None and not isinstance(value, kind):
        return None, f"unexpected answer {type(value).__name__}"
    return value, error


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return value


class Commands:
    """The commands, run on the server's thread; blocking asks go to an executor."""

    #: How long the vaults together get to answer ``vaults`` (plus :attr:`VAULT_ASK_PER_VAULT_S`
    #: each, at most ``ASK_TIMEOUT_S``): one stuck vault must not hold up the table.
    VAULT_ASK_TIMEOUT_S: ClassVar[float] = 0.5
    VAULT_ASK_PER_VAULT_S: ClassVar[float] = 0.0001
    #: Vaults one ``vault-add`` may start.
    MAX_VAULTS_PER_ADD: ClassVar[int] = 1000
    #: Vault ids as ``vault_spec`` makes them (``vault-0007``); the index stays below 10**6.
    VAULT_ID: ClassVar[re.Pattern[str]] = re.compile(r"vault-([0-9]{4,6})")
    MAX_VAULT_INDEX: ClassVar[int] = 999_999
    #: What the drawdown monitor keeps of an operator's name and reason; longer is refused.
    MAX_OPERATOR_CHARS: ClassVar[int] = 100
    MAX_REASON_CHARS: ClassVar[int] = 500

    def __init__(
        self,
        runtime: Runtime,
        endpoints: Callable[[], Mapping[str, str]],
        data_dir: Path,
        views: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.endpoints = endpoints
        self.data_dir = data_dir
        #: Read-only views of engine state that need no message (boards), by command name, and
        #: the hook ``"vault_spec"``: ``Callable[[int], ChildSpec]``, the spec of vault ``index``.
        self.views = dict(views or {})
        self.started = time.time()

    def _kill_switch(self) -> Any:
        ref = self.runtime.whereis(KILL_SWITCH_NAME)
        if ref is None:
            raise RequestError("unavailable", "the kill switch is not running (restarting?)")
        return ref

    def _ask_kill_switch(self, message: Any) -> Any:
        try:
            return self._kill_switch().ask(message, timeout=ASK_TIMEOUT_S)
        except Timeout:
            raise RequestError("timeout", f"the kill switch did not answer within {ASK_TIMEOUT_S} s") from None
        except ActorDeadError:
            raise RequestError("unavailable", "the kill switch stopped while answering") from None

    def help(self, args: Mapping[str, Any]) -> Any:
        """The commands, each with one line of help."""
        _args(args, {})
        return {name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in self.table().items()}

    def tree(self, args: Mapping[str, Any]) -> Any:
        """Every live actor: urn, name, class, parent, state, mailbox depth, restarts, last message."""
        _args(args, {})
        return [actor.as_dict() for actor in self.runtime.actors()]

    def actor(self, args: Mapping[str, Any]) -> Any:
        """One actor's details and current stack, by urn or name."""
        a = _args(args, {"urn": (str, False), "name": (str, False)})
        if len(a) != 1:
            raise RequestError("bad_request", "give exactly one of urn or name")
        for actor in self.runtime.actors(stack=True):
            if actor.urn == a.get("urn") or actor.name == a.get("name"):
                return actor.as_dict(stack=True)
        raise RequestError("not_found", f"no live actor {next(iter(a.values()))!r}")

    def stacks(self, args: Mapping[str, Any]) -> Any:
        """The stack of every thread, with the actor it is running, if any."""
        _args(args, {})
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

    def status(self, args: Mapping[str, Any]) -> Any:
        """Kill switch state, epoch, acked and missing actors, halt latency; the endpoints served."""
        _args(args, {})
        return {
            "kill_switch": to_jsonable(self._ask_kill_switch(GetStatus())),
            "endpoints": dict(self.endpoints()),
            "actors": len(self.runtime),
            "pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "uptime_s": round(time.time() - self.started, 3),
        }

    def halt(self, args: Mapping[str, Any]) -> Any:
        """Trigger the kill switch: args mode (graceful|emergency), reason."""
        a = _args(args, {"mode": (str, False), "reason": (str, False)})
        mode = a.get("mode", "emergency")
        if mode not in ("graceful", "emergency"):
            raise RequestError("bad_request", "mode must be graceful or emergency")
        reason = a.get("reason", "operator halt over the debug socket")[:500]
        self._kill_switch().tell(Trigger(mode=HaltMode(mode), reason=reason, source="debug_socket"))
        return {"triggered": True, "mode": mode}

    def maintenance(self, args: Mapping[str, Any]) -> Any:
        """Halt for maintenance (leave it with recover): args reason."""
        a = _args(args, {"reason": (str, False)})
        outcome = self._ask_kill_switch(EnterMaintenance(reason=a.get("reason", "maintenance"), source="debug_socket"))
        return to_jsonable(outcome)

    def recover(self, args: Mapping[str, Any]) -> Any:
        """Recover with K-of-M authorisations: args epoch, nonce, timestamp, authorisations, operator."""
        a = _args(
            args,
            {
                "epoch": (int, True),
                "nonce": (str, True),
                "timestamp": (int, True),
                "authorisations": (list, True),
                "operator": (str, False),
            },
        )
        auths = []
        for item in a["authorisations"]:
            if not (isinstance(item, dict) and set(item) == {"key_id", "hmac"}
                    and all(isinstance(v, str) for v in item.values())):
                raise RequestError("bad_request", 'each authorisation is {"key_id": str, "hmac": str}')
            auths.append((item["key_id"], item["hmac"]))
        outcome = self._ask_kill_switch(
            Recover(
                epoch=a["epoch"],
                nonce=a["nonce"],
                timestamp=a["timestamp"],
                authorisations=tuple(auths),
                operator=a.get("operator", "debug_socket"),
            )
        )
        return to_jsonable(outcome)

    def flatten(self, args: Mapping[str, Any]) -> Any:
        """While halted, sell vaults' volatile holdings into the stablecoin (REDUCING, audited): args vaults, operator, reason."""
        a = _args(args, {"vaults": (list, False), "operator": (str, True), "reason": (str, True)})
        operator = self._text(a, "operator", self.MAX_OPERATOR_CHARS)
        reason = self._text(a, "reason", self.MAX_REASON_CHARS)
        vaults = a.get("vaults", [])
        if len(vaults) > self.MAX_VAULT_INDEX + 1 or not all(isinstance(v, str) and self.VAULT_ID.match(v) for v in vaults):
            raise RequestError("bad_request", "vaults must be a list of vault ids (vault-0007); empty: every vault")
        from xorj_actors.kill_switch import Flatten, FlattenOutcome

        outcome = self._ask(
            self._kill_switch(), Flatten(vaults=tuple(vaults), operator=operator, reason=reason), "the kill switch",
            changes=True,
        )
        if not isinstance(outcome, FlattenOutcome):
            raise RequestError("internal", f"the kill switch answered {type(outcome).__name__}")
        if not outcome.accepted:  # the kill switch audited the refusal
            raise RequestError("refused", f"flatten refused: {outcome.reason}")
        logger.warning("debug socket: flatten {} of {} by {}: {}", outcome.flatten_id, ", ".join(outcome.vaults), operator, reason)
        return to_jsonable(outcome)

    def _view(self, name: str) -> Any:
        view = self.views.get(name)
        if view is None:
            raise RequestError("unavailable", f"this engine has no {name}")
        return view()

    def breakers(self, args: Mapping[str, Any]) -> Any:
        """Every circuit breaker: state, failures in window, consecutive, probes, reason."""
        _args(args, {})
        return self._view("breakers")

    def progress(self, args: Mapping[str, Any]) -> Any:
        """Rounds, trades by status, open breakers, kill switch state, strategy freshness."""
        _args(args, {})
        return self._view("progress")

    # -- trading: helpers ---------------------------------------------------------------------

    def _named(self, name: str, what: str) -> Any:
        ref = self.runtime.whereis(name)
        if ref is None:
            raise RequestError("unavailable", f"{what} is not running (disabled in the config, or restarting)")
        return ref

    @staticmethod
    def _ask(ref: Any, message: Any, what: str, *, changes: bool = False) -> Any:
        """Ask with ``ASK_TIMEOUT_S``; a command that ``changes`` something says a timeout is no refusal."""
        try:
            return ref.ask(message, timeout=ASK_TIMEOUT_S)
        except Timeout:
            hint = ": it may still take effect, check before trying again" if changes else ""
            raise RequestError("timeout", f"{what} did not answer within {ASK_TIMEOUT_S} s{hint}") from None
        except ActorDeadError:
            raise RequestError("unavailable", f"{what} stopped (restarting?)") from None
        except MailboxFull:
            raise RequestError("unavailable", f"{what} is overloaded (mailbox full)") from None

    @staticmethod
    def _gather(asks: Mapping[str, tuple[Any, Any]], timeout: float) -> dict[str, tuple[Any, str | None]]:
        """Ask every ``(ref or None, message)`` at once; ``{key: (answer, None) or (None, why not)}``."""
        out: dict[str, tuple[Any, str | None]] = {}
        futures: dict[str, Any] = {}
        for key, (ref, message) in asks.items():
            if ref is None:
                out[key] = (None, "not running")
                continue
            try:
                futures[key] = ref.ask(message, block=False)
            except ActorDeadError:
                out[key] = (None, "not running")
            except MailboxFull:
                out[key] = (None, "mailbox full")
        deadline = time.monotonic() + timeout
        for key, future in futures.items():
            try:
                out[key] = (future.get(timeout=max(0.0, deadline - time.monotonic())), None)
            except Timeout:
                out[key] = (None, f"no answer within {timeout:.3g} s")
            except ActorDeadError:
                out[key] = (None, "stopped")
            except Exception as exc:  # noqa: BLE001 - the actor's own failure: one row, logged, not the table
                logger.error("debug socket: {} failed to answer {}: {!r}", key, type(asks[key][1]).__name__, exc)
                out[key] = (None, f"failed: {type(exc).__name__}: {exc}")
        return {key: out[key] for key in asks}

    def _text(self, a: Mapping[str, Any], name: str, limit: int, default: str | None = None) -> str:
        value = a.get(name, default)
        if value is None or not value.strip():
            raise RequestError("bad_request", f"argument {name} must not be empty")
        if len(value) > limit:
            raise RequestError("bad_request", f"argument {name} is longer than {limit} characters")
        return value.strip()

    def _supervisor(self, name: str) -> Any:
        ref = self.runtime.supervisor(name)
        if ref is not None:
            return ref
        raise RequestError("unavailable", f"the {name} supervisor is not running (restarting?)")

    def _children(self, supervisor: str) -> tuple[ChildInfo, ...]:
        return self._ask(self._supervisor(supervisor), WhichChildren(), f"the {supervisor} supervisor")

    def _vault_child(self, children: tuple[ChildInfo, ...], name: str) -> ChildInfo:
        if not self.VAULT_ID.fullmatch(name):
            raise RequestError("bad_request", f"vault {name[:40]!r} is not a vault id (vault-0007)")
        for child in children:
            if child.id == name:
                return child
        raise RequestError("not_found", f"no vault {name!r}")

    def _ref(self, child: ChildInfo) -> Any:
        return self.runtime.lookup(child.urn) if child.alive and child.urn else None

    def _audit(self, what: str, details: dict[str, Any], severity: Severity) -> None:
        if not record(self.runtime, audit_event(EventType.CONFIG_CHANGE, "debug_socket", {"what": what, **details},
                                                severity=severity)):
            logger.error("debug socket: {} not audited: {}", what, details)

    # -- trading: commands ----------------------------------------------------------------------

    def executor(self, args: Mapping[str, Any]) -> Any:
        """The executor: trades accepted and in flight, unsettled vaults, outcomes by status."""
        _args(args, {})
        from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus  # loaded on use: see the package

        status = self._ask(self._named(EXECUTOR_NAME, "the executor"), GetExecutorStatus(), "the executor")
        return {**to_jsonable(status), "outcomes": dict(status.outcomes)}

    def confirmation(self, args: Mapping[str, Any]) -> Any:
        """The confirmation actor's connection: connected, slot, lag, watches, reconnects, errors."""
        _args(args, {})
        from xorj_actors.chain import CONFIRMATION_NAME, GetConfirmationHealth

        ref = self._named(CONFIRMATION_NAME, "the confirmation actor")
        return to_jsonable(self._ask(ref, GetConfirmationHealth(), "the confirmation actor"))

    def strategy(self, args: Mapping[str, Any]) -> Any:
        """The strategy feed: round, scenario, freshness, last good answer, last error, polls."""
        _args(args, {})
        from xorj_actors.strategy import STRATEGY_FEED_NAME, GetStrategyStatus

        ref = self._named(STRATEGY_FEED_NAME, "the strategy feed")
        return to_jsonable(self._ask(ref, GetStrategyStatus(), "the strategy feed"))

    def strategy_refresh(self, args: Mapping[str, Any]) -> Any:
        """Make the strategy feed poll the quant engine now: args reason."""
        a = _args(args, {"reason": (str, False)})
        reason = self._text(a, "reason", self.MAX_REASON_CHARS, "operator refresh over the debug socket")
        from xorj_actors.strategy import STRATEGY_FEED_NAME, RefreshStrategy

        try:
            self._named(STRATEGY_FEED_NAME, "the strategy feed").tell(RefreshStrategy(reason=f"operator: {reason}"))
        except ActorDeadError:
            raise RequestError("unavailable", "the strategy feed stopped (restarting?)") from None
        except MailboxFull:
            raise RequestError("unavailable", "the strategy feed is overloaded (mailbox full)") from None
        return {"requested": True, "reason": reason}

    def risk(self, args: Mapping[str, Any]) -> Any:
        """The risk monitors: drawdown and daily loss, heartbeats, clock skew (null: not answering)."""
        _args(args, {})
        from xorj_actors.risk import (
            CLOCK_SKEW_NAME,
            DRAWDOWN_NAME,
            HEARTBEAT_NAME,
            GetClockSkewStatus,
            GetHeartbeatStatus,
            GetRiskStatus,
        )

        monitors = {
            "drawdown": (DRAWDOWN_NAME, GetRiskStatus()),
            "heartbeat": (HEARTBEAT_NAME, GetHeartbeatStatus()),
            "clock_skew": (CLOCK_SKEW_NAME, GetClockSkewStatus()),
        }
        answers = self._gather({k: (self.runtime.whereis(n), m) for k, (n, m) in monitors.items()}, ASK_TIMEOUT_S)
        if all(error == "not running" for _, error in answers.values()):
            raise RequestError("unavailable", "no risk monitor is running (disabled in the config, or restarting)")
        out: dict[str, Any] = {k: to_jsonable(v) if error is None else None for k, (v, error) in answers.items()}
        out["errors"] = {k: error for k, (_, error) in answers.items() if error is not None}
        return out

    def risk_reset(self, args: Mapping[str, Any]) -> Any:
        """Reset the drawdown high-water mark and day start to the current value (audited): args operator, reason."""
        a = _args(args, {"operator": (str, True), "reason": (str, True)})
        operator = self._text(a, "operator", self.MAX_OPERATOR_CHARS)
        reason = self._text(a, "reason", self.MAX_REASON_CHARS)
        from xorj_actors.risk import DRAWDOWN_NAME, ResetRiskBaseline

        ref = self._named(DRAWDOWN_NAME, "the drawdown monitor")
        # The monitor audits the reset itself (RECOVERY, with the figures before and after).
        after = self._ask(ref, ResetRiskBaseline(operator=operator, reason=reason), "the drawdown monitor", changes=True)
        logger.warning("debug socket: risk baseline reset by {}: {}", operator, reason)
        return {"reset": True, "operator": operator, "status": to_jsonable(after)}

    def vaults(self, args: Mapping[str, Any]) -> Any:
        """Every vault's status, or one's: args vault; a vault that does not answer is listed as such."""
        a = _args(args, {"vault": (str, False)})
        from xorj_actors.vaults import GetVaultStatus, VaultStatus

        children = self._children("vaults")
        if "vault" in a:
            children = (self._vault_child(children, a["vault"]),)
        timeout = min(ASK_TIMEOUT_S, self.VAULT_ASK_TIMEOUT_S + self.VAULT_ASK_PER_VAULT_S * len(children))
        answers = self._gather({c.id: (self._ref(c), GetVaultStatus()) for c in children}, timeout)
        rows: list[dict[str, Any]] = []
        for child in children:
            status, error = _expect(answers[child.id], VaultStatus)
            row: dict[str, Any] = {"vault_id": child.id, "answered": error is None, "restarts": child.restarts}
            rows.append({**row, **to_jsonable(status)} if error is None else {**row, "error": error})
        return {
            "count": len(rows),
            "answered": sum(r["answered"] for r in rows),
            "not_answering": [r["vault_id"] for r in rows if not r["answered"]],
            "pending_trades": sum(len(r["pending"]) for r in rows if r["answered"]),
            "vaults": rows,
        }

    def round(self, args: Mapping[str, Any]) -> Any:
        """Run one rebalancing round of a vault now: args vault (ran: false says why not)."""
        a = _args(args, {"vault": (str, True)})
        from xorj_actors.vaults import Round

        child = self._vault_child(self._children("vaults"), a["vault"])
        ref = self._ref(child)
        if ref is None:
            raise RequestError("unavailable", f"{child.id} is not running (restarting?)")
        result = self._ask(ref, Round(), child.id, changes=True)
        logger.info("debug socket: operator round of {}: {}", child.id, result.reason)
        return to_jsonable(result)

    def vault_add(self, args: Mapping[str, Any]) -> Any:
        """Start vaults at run time (audited): args count, index (default: after the highest), operator."""
        a = _args(args, {"count": (int, True), "index": (int, False), "operator": (str, False)})
        count = a["count"]
        if not 1 <= count <= self.MAX_VAULTS_PER_ADD:
            raise RequestError("bad_request", f"count must be between 1 and {self.MAX_VAULTS_PER_ADD}")
        if "index" in a and a["index"] < 0:
            raise RequestError("bad_request", "index must be >= 0")
        operator = self._text(a, "operator", self.MAX_OPERATOR_CHARS, "debug_socket")
        hook = self.views.get("vault_spec")
        if hook is None:
            raise RequestError("unavailable", "this engine cannot add vaults (no vault_spec hook)")
        children = self._children("vaults")
        existing = {int(m.group(1)) for c in children if (m := self.VAULT_ID.fullmatch(c.id))}
        first = a.get("index", max(existing, default=-1) + 1)
        if first + count - 1 > self.MAX_VAULT_INDEX:
            raise RequestError("bad_request", f"vault indices stop at {self.MAX_VAULT_INDEX}")
        taken = sorted(existing & set(range(first, first + count)))
        if taken:
            names = ", ".join(f"vault-{i:04d}" for i in taken[:10])
            raise RequestError("bad_request", f"{len(taken)} of these vaults exist already: {names}; nothing added")
        # Every spec first: a hook that fails must not leave half of the vaults started.
        specs: list[ChildSpec] = [hook(i) for i in range(first, first + count)]
        for i, spec in zip(range(first, first + count), specs):
            if spec.id != f"vault-{i:04d}":
                raise RuntimeError(f"vault_spec({i}) made a child named {spec.id!r}")
        supervisor = self._supervisor("vaults")
        added: list[str] = []
        failed: dict[str, str] = {}
        for spec in specs:
            try:
                supervisor.ask(StartChild(spec), timeout=ASK_TIMEOUT_S)
            except Timeout:
                # Not a refusal: it may start yet. Stop here rather than pile up more.
                failed[spec.id] = f"the vaults supervisor did not answer within {ASK_TIMEOUT_S} s: it may still start"
                break
            except (ActorDeadError, MailboxFull) as exc:
                failed[spec.id] = f"the vaults supervisor is unavailable: {exc!r}"
                break
            except Exception as exc:  # noqa: BLE001 - id taken meanwhile, or the vault failed to start
                failed[spec.id] = f"{type(exc).__name__}: {exc}"
                continue
            added.append(spec.id)
        not_tried = [s.id for s in specs if s.id not in added and s.id not in failed]
        logger.warning("debug socket: vaults added by {}: {}; failed: {}", operator, added, failed)
        self._audit(
            "vaults added",
            {"operator": operator, "vaults": added, "failed": failed, "not_tried": not_tried},
            Severity.WARNING if failed or not_tried else Severity.INFO,
        )
        return {"added": added, "failed": failed, "not_tried": not_tried}

    def vault_remove(self, args: Mapping[str, Any]) -> Any:
        """Stop and remove a vault (audited); refused while trades are pending: args vault, force, operator, reason."""
        a = _args(args, {"vault": (str, True), "force": (bool, False), "operator": (str, False), "reason": (str, False)})
        force = a.get("force", False)
        operator = self._text(a, "operator", self.MAX_OPERATOR_CHARS, "debug_socket")
        reason = self._text(a, "reason", self.MAX_REASON_CHARS, "operator removal over the debug socket")
        child = self._vault_child(self._children("vaults"), a["vault"])
        name = child.id
        problems = self._pending(child)
        if problems and not force:
            logger.warning("debug socket: removal of {} refused: {}", name, "; ".join(problems))
            return {"removed": False, "vault": name, "reason": "; ".join(problems), "problems": problems}
        ref = self._ref(child)
        try:
            self._supervisor("vaults").ask(TerminateChild(name), timeout=ASK_TIMEOUT_S)
        except KeyError:
            raise RequestError("not_found", f"no vault {name!r} (removed meanwhile?)") from None
        except Timeout:
            raise RequestError(
                "timeout", f"the vaults supervisor did not answer within {ASK_TIMEOUT_S} s: {name} may still be removed"
            ) from None
        except (ActorDeadError, MailboxFull) as exc:
            raise RequestError("unavailable", f"the vaults supervisor is unavailable: {exc!r}; nothing removed") from None
        stopped = ref is None or ref.join(ASK_TIMEOUT_S)
        notes = self._forget_vault(name)
        if not stopped:
            notes.append(f"{name} did not finish stopping within {ASK_TIMEOUT_S} s (see ctl tree)")
        unsettled = self._pending(child, vault=False)  # a trade handed over between the check and the stop
        logger.warning("debug socket: {} removed by {} ({}){}", name, operator, reason, " FORCED" if problems else "")
        self._audit(
            "vault removed",
            {"operator": operator, "reason": reason, "vault": name, "forced": bool(problems), "problems": problems,
             "unsettled_after": unsettled, "notes": notes},
            Severity.WARNING if problems or unsettled or notes else Severity.INFO,
        )
        return {"removed": True, "vault": name, "forced": bool(problems), "problems": problems,
                "stopped": stopped, "unsettled_after": unsettled, "notes": notes}

    def _pending(self, child: ChildInfo, *, vault: bool = True) -> list[str]:
        """Why removing the vault could strand a trade: its own pending trades, the executor's
        unsettled ones; whatever cannot be checked counts too (fail closed)."""
        from xorj_actors.execution import EXECUTOR_NAME, ExecutorStatus, GetExecutorStatus
        from xorj_actors.vaults import GetVaultStatus, VaultStatus

        asks: dict[str, tuple[Any, Any]] = {"executor": (self.runtime.whereis(EXECUTOR_NAME), GetExecutorStatus())}
        if vault:
            asks["vault"] = (self._ref(child), GetVaultStatus())
        answers = self._gather(asks, ASK_TIMEOUT_S)
        problems: list[str] = []
        if vault:
            status, error = _expect(answers["vault"], VaultStatus)
            if error is not None:
                problems.append(f"{child.id}: {error}: cannot tell whether trades are pending")
            elif status.pending:
                problems.append(f"{len(status.pending)} trade(s) pending: {', '.join(status.pending[:5])}")
        status, error = _expect(answers["executor"], ExecutorStatus)
        if error is None:
            if child.id in status.unsettled_vaults:
                problems.append(f"the executor has unsettled trades of {child.id}")
        elif error != "not running" or self._executor_configured():
            problems.append(f"the executor: {error}: cannot tell whether trades are unsettled")
        return problems

    def _executor_configured(self) -> bool:
        try:
            return any(c.id == "executor" for c in self._children("chain"))
        except RequestError:
            return True  # cannot tell: assume it is, and refuse

    def _forget_vault(self, name: str) -> list[str]:
        """Tell the risk monitors the vault left on purpose: its value is not a loss, its silence no fault."""
        from xorj_actors.risk import DRAWDOWN_NAME, HEARTBEAT_NAME, ForgetEssential, VaultRemoved

        notes: list[str] = []
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

    def table(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        return {n: getattr(self, n.replace("-", "_")) for n in COMMANDS}


COMMANDS: tuple[str, ...] = (
    "help", "tree", "actor", "stacks", "status", "progress", "breakers", "halt", "maintenance", "recover",
    "executor", "confirmation", "strategy", "strategy-refresh", "risk", "risk-reset",
    "vaults", "round", "vault-add", "vault-remove",
    "flatten",
)


class DebugSocketServer:
    """Serves :class:`Commands` on a Unix socket from a thread of its own."""

    def __init__(self, path: Path, settings: DebugSocketSettings, commands: Commands) -> None:
        self.path = path
        self.settings = settings
        self.commands = commands
        self._table = commands.table()
        self._server: asyncio.base_events.Server | None = None
        self._loop_thread: LoopThread | None = None
        self._clients = 0
        self._path_lock: int | None = None

    def start(self, timeout: float = 5.0) -> None:
        self._lock_path(timeout)
        try:
            _claim_socket_path(self.path)
            self._loop_thread = LoopThread("debug-socket")
            try:
                self._loop_thread.start(self._serve(), timeout)
            except Exception as exc:
                raise RuntimeError(f"debug socket failed to start: {exc!r}") from exc
        except BaseException:
            self._unlock_path()
            raise

    def _lock_path(self, timeout: float) -> None:
        """Own the socket path: a server still shutting down (or another process) holds it.

        The kernel releases the lock when a process dies, so a crash leaves no stale owner.
        """
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._path_lock = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RuntimeError(f"debug socket {self.path} is held by another server") from None
                time.sleep(0.01)

    def _unlock_path(self) -> None:
        fd, self._path_lock = self._path_lock, None
        if fd is not None:
            os.close(fd)

    async def _serve(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._client, path=str(self.path), limit=self.settings.max_line_bytes + 1
        )
        os.chmod(self.path, 0o600)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks():  # the clients' connections
            if task is not asyncio.current_task():
                task.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is None:
            self._unlock_path()
            return
        loop_thread.stop(self._close, timeout)
        try:
            self.path.unlink()  # ours: we hold the path lock
        except FileNotFoundError:
            pass
        self._unlock_path()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        try:
            if self._clients > self.settings.max_clients:
                await self._send(writer, _error(None, "busy", f"too many clients (max {self.settings.max_clients})"))
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.settings.idle_timeout_s)
                except asyncio.TimeoutError:
                    await self._send(writer, _error(None, "idle_timeout", "no request within the idle timeout"))
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    await self._send(
                        writer, _error(None, "line_too_long", f"request longer than {self.settings.max_line_bytes} bytes")
                    )
                    return
                if not line:
                    return
                if len(line) > self.settings.max_line_bytes:
                    await self._send(
                        writer, _error(None, "line_too_long", f"request longer than {self.settings.max_line_bytes} bytes")
                    )
                    return
                if not line.strip():
                    continue
                reply = await self._handle(line)
                if not await self._send(writer, reply):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients -= 1
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(None, "bad_json", f"not valid JSON: {exc}")
        if not isinstance(request, dict):
            return _error(None, "bad_request", "a request is a JSON object")
        req_id = request.get("id")
        unknown = set(request) - {"id", "cmd", "args"}
        if unknown:
            return _error(req_id, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
        cmd = request.get("cmd")
        args = request.get("args", {})
        if not isinstance(cmd, str):
            return _error(req_id, "bad_request", "cmd must be a string")
        if not isinstance(args, dict):
            return _error(req_id, "bad_request", "args must be an object")
        handler = self._table.get(cmd)
        if handler is None:
            return _error(req_id, "unknown_command", f"unknown command {cmd[:50]!r}; try help")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, handler, args)
        except RequestError as exc:
            return _error(req_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the engine goes on
            logger.exception("debug socket: command {} failed", cmd)
            return _error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        return {"id": req_id, "ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> bool:
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            return False
        return True


def _error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket file, but never one a live process still serves."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: stale
        return
    finally:
        probe.close()
    raise RuntimeError(f"debug socket {path} is served by another process (same data directory?)")


class DebugSocket(Participant):
    """The debug socket in the tree: it halts and acks like every actor, and keeps serving."""

    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        board: HaltBoard,
        path: Path,
        settings: DebugSocketSettings,
        endpoints: Callable[[], Mapping[str, str]],
        data_dir: Path,
        views: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        super().__init__(board)
        self.server = DebugSocketServer(path, settings, Commands(self.runtime, endpoints, data_dir, views))

    def on_start(self) -> None:
        self.server.start()
        logger.info("debug socket listening on {}", self.server.path)
        super().on_start()

    def on_terminate(self) -> None:
        self.server.stop()
