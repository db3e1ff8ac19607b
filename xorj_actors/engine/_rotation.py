"""Scheduled rotation of the keys the engine owns (``[secrets.rotation]``, docs/SECURITY.md, "Key rotation").

A rotation makes a new key, writes it through the source that holds the key (a file, Secrets
Manager; the environment is refused), then runs the same reload as ``ctl reload-secrets``, so the
running engine takes it. Every rotation, done, refused or failed, is one audit entry naming the
key and its fingerprints, never a value; the redactor learns the new value before it is written.
A failed rotation keeps its new key and is tried again with it, backing off; the schedule says
the same failure once. The rules (due, refusal, the retired list's merge) are in
:mod:`._rotation_rules`.

In a cluster the keys are shared: only the live node with the lowest id rotates on schedule; each
node takes a key another node rotated at its next look (``check_every_s``): its value in the
source differs from the one it holds. Such a change gets the HTTP grace only if its source holds
the rotation's mark (HMAC under the old key of the new one, ``key_rotation.rotation_mark``),
which an operator's change after a leak lacks.
"""

from __future__ import annotations

import dataclasses
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from xorj_actors.config import Config
from xorj_actors.engine._rotation_rules import (
    Due, Outcome, Trigger, backoff_s, due, merge_retired, refusal, retired_keys,
)
from xorj_actors.key_rotation import fingerprint, key_ages, new_key, owned_keys, rotation_mark
from xorj_actors.redaction import Redactor
from xorj_actors.secrets import CredentialProvider, NotWritable, OwnedKey, SecretAge, SecretSourceError

__all__ = ["KeyRotator"]

#: Writes of the retired list before it is given up (each one after another writer's change).
_RETIRE_TRIES = 5


@dataclasses.dataclass(slots=True)
class _Pending:
    """A rotation not finished: its new key (kept, so a retry teaches the redactor nothing new)."""

    old_fingerprint: str | None
    new: str
    written: bool = False
    failures: int = 0
    retry_at: float = 0.0


class KeyRotator:
    """Rotates the engine's own keys on schedule (:meth:`start`) or when asked (:meth:`rotate`).

    Args:
        provider: the engine's credential provider.
        config: the loaded configuration (``[secrets.rotation]``, the keys' names).
        reload: the engine's secrets reload (``ctl reload-secrets``), given a trigger.
        redactor: learns each new value before it is written anywhere.
        on_outcome: records each rotation's answer (the engine: an audit entry).
        may_rotate: whether this node rotates on schedule (in a cluster: the lowest live node id).
        age_of: a key's age in its source; the provider's (a test passes time by wrapping it).
        postpone: why the schedule must not rotate now (a halt, the audit log down); None: it may.
        before_ctl: records an operator's rotation before it is made (the engine: a durable audit
            entry); a reason it could not: the rotation is refused (fail closed).
        clock: monotonic seconds, for the backoff of a failed rotation.
    """

    def __init__(
        self,
        provider: CredentialProvider,
        config: Config,
        reload: Callable[[str], dict[str, Any]],
        redactor: Redactor,
        on_outcome: Callable[[dict[str, Any]], object] = lambda answer: None,
        may_rotate: Callable[[], bool] = lambda: True,
        age_of: Callable[[str], SecretAge] | None = None,
        *,
        postpone: Callable[[], str | None] = lambda: None,
        before_ctl: Callable[[OwnedKey], str | None] = lambda key: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider, self.config, self.reload, self.redactor = provider, config, reload, redactor
        self.on_outcome, self.may_rotate, self.postpone, self.before_ctl = on_outcome, may_rotate, postpone, before_ctl
        self.age_of = provider.age if age_of is None else age_of
        self.clock = clock  # the backoff's (a test passes time)
        self.settings = config.secrets.rotation
        self._lock = threading.Lock()
        self._pending: dict[OwnedKey, _Pending] = {}
        #: The schedule's last answer said per key (outcome, reason): the same is not said again.
        self._said_last: dict[OwnedKey, tuple[str, str | None]] = {}
        self._postponed: str | None = None
        self._unreadable: dict[OwnedKey, str | None] = {}  # the age problem said per key
        #: name -> (fingerprint before, fingerprint after, monotonic time): this engine's last rotation.
        self._rotated: dict[str, tuple[str | None, str | None, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one rotation ----------------------------------------------------------------------------

    def rotate(self, key: OwnedKey, trigger: Trigger = Trigger.CTL) -> dict[str, Any]:
        """Rotate ``key`` now; the answer (audited) names it and its fingerprints, never a value."""
        trigger = Trigger(trigger)
        problem = self.before_ctl(key) if trigger is Trigger.CTL else None
        with self._lock:
            answer = self._rotate(key, trigger, refused=problem and f"the audit log cannot record it: {problem}")
        return self._said(answer)

    def _said(self, answer: dict[str, Any]) -> dict[str, Any]:
        logger.log("WARNING" if answer["rotated"] else "ERROR", "key rotation ({}): {} {}: {}", answer["trigger"],
                   answer["key"], answer["outcome"], answer["reason"] or f"new key {answer['new_fingerprint']}")
        self.on_outcome(answer)
        return answer

    def _rotate(self, key: OwnedKey, trigger: Trigger, refused: str | None = None) -> dict[str, Any]:
        name = owned_keys(self.config)[key]
        source = self.provider.sources().get(name)
        old = self.provider.get(name)
        answer: dict[str, Any] = {
            "what": "key rotation", "key": key.value, "name": name, "trigger": trigger.value,
            "source": str(source) if source else None, "old_fingerprint": fingerprint(old),
            "new_fingerprint": None, "rotated": False, "outcome": Outcome.REFUSED.value, "reason": None,
        }
        refused = refused or refusal(name, old is not None, source)
        if refused is not None:
            return {**answer, "reason": refused}
        pending = self._pending.get(key)
        if pending is None or pending.old_fingerprint != fingerprint(old):
            pending = self._pending[key] = _Pending(fingerprint(old), new_key())
        elif pending.written and self.provider.read(name) != pending.new:
            pending.written = False  # written over since (an operator, another node): written again
        new = pending.new
        answer["new_fingerprint"] = fingerprint(new)
        self.redactor.add((new,))  # before any write: nothing may show a value it does not mask
        try:
            if not pending.written:
                self._write(key, name, old or "", new)
                pending.written = True
        except NotWritable as exc:
            self._pending.pop(key, None)
            return {**answer, "new_fingerprint": None, "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a source's error (SecretSourceError) or worse: said, audited
            return self._failed(key, answer, self.redactor(f"{exc}" if isinstance(exc, SecretSourceError)
                                                           else f"{type(exc).__name__}: {exc}"))
        taken = self.reload(trigger.reload_trigger)
        if not taken["reloaded"] or name not in taken["changed"]:
            why = "; ".join(taken["missing"]) or "the reload did not take the new value"
            return self._failed(key, answer, f"written to its source, not taken by this engine: {why}")
        self._pending.pop(key, None)
        return {**answer, "outcome": Outcome.ROTATED.value, "rotated": True}

    def _write(self, key: OwnedKey, name: str, old: str, new: str) -> None:
        """The audit key's old key retired first (its entries still verify), then the new key.
        A write whose answer was lost may have landed: then it counts as written."""
        if key is OwnedKey.AUDIT:
            self._retire(old, beside=name)
        self._rotated[name] = (fingerprint(old), fingerprint(new), time.monotonic())  # before the reload
        try:
            self.provider.write(name, new, mark=rotation_mark(old, new))  # the mark: other nodes' grace
        except NotWritable:
            raise
        except Exception:
            if self.provider.read(name) != new:  # not there: it failed indeed
                raise
            logger.warning("key rotation: {}: the write's confirmation failed, but the source holds the new key",
                           name)

    def _failed(self, key: OwnedKey, answer: dict[str, Any], reason: str) -> dict[str, Any]:
        pending = self._pending.get(key)
        if pending is not None:
            pending.failures += 1
            pending.retry_at = self.clock() + backoff_s(pending.failures, self.settings.check_every_s)
        return {**answer, "outcome": Outcome.FAILED.value, "reason": reason}

    def _retire(self, key: str, beside: str) -> None:
        """Make sure ``key`` is in the retired audit keys' secret (written where ``beside`` is, if
        new): a read-modify-write under the source's lock (a file), re-read after each write until
        a fresh read holds every key any read saw, and ``key`` (Secrets Manager has no lock). Raises
        :class:`SecretSourceError` when it could not: then the new key is not written."""
        name = self.config.audit.retired_hmac_keys_env
        seen: list[str] = []
        if key in retired_keys(self.provider.read(name, strict=True)):
            return  # listed: no write, no lock (a read-only mount needs neither)
        with self.provider.locked(name, beside=beside):
            for _ in range(_RETIRE_TRIES + 1):
                current = self.provider.read(name, strict=True)  # a refused read is not an empty list
                want = merge_retired(current, seen, key)
                if retired_keys(want) == retired_keys(current):
                    return  # listed already (or after our write): nothing to write
                seen = retired_keys(want)
                self.provider.write(name, want, beside=beside)
        raise SecretSourceError(f"{name}: another writer kept changing it; the key in use is not retired")

    def ages(self) -> list[dict[str, Any]]:
        """``ctl keys``: every credential's source, age and state (never a value)."""
        return [dataclasses.asdict(row) for row in key_ages(self.config, self.provider)]

    def rotated(self, name: str, before: str, after: str) -> float | None:
        """When (monotonic) this engine rotated ``name`` from ``before`` to ``after``, or took that
        rotation from another node by its mark; None: it did not (an operator's change). The HTTP
        API keeps the previous key for its grace only after such a rotation."""
        last = self._rotated.get(name)
        return last[2] if last is not None and last[:2] == (fingerprint(before), fingerprint(after)) else None

    # -- the schedule ----------------------------------------------------------------------------

    def due(self) -> list[OwnedKey]:
        """The scheduled keys to rotate now: older than ``interval_s`` (an undated one, the
        environment's: due, so that the refusal is said), or a failed rotation whose backoff is
        over. A key whose age cannot be read now is not rotated on it (logged)."""
        keys, now, out = owned_keys(self.config), self.clock(), []
        for key in self.settings.keys:
            pending = self._pending.get(key)
            if pending is not None and pending.old_fingerprint != fingerprint(self.provider.get(keys[key])):
                del self._pending[key]  # the key changed since (taken from elsewhere): not ours to finish
                pending = None
            if pending is not None:
                if now >= pending.retry_at:
                    out.append(key)
                continue
            age = self.age_of(keys[key])
            verdict = due(age, self.settings.interval_s)
            if verdict is Due.UNREADABLE:
                if self._unreadable.get(key) != age.problem:  # said once until it changes
                    logger.warning("key rotation: {}: age unreadable, not rotated on it: {}", keys[key], age.problem)
                self._unreadable[key] = age.problem
                continue
            self._unreadable.pop(key, None)
            if verdict is Due.DUE:
                out.append(key)
        return out

    def tick(self) -> list[dict[str, Any]]:
        """One look: take a key another node rotated, then rotate the keys due (this node may)."""
        for key in self.settings.keys:
            if self._stop.is_set():
                return []
            self._take(key)
        if not self.may_rotate():
            return []
        postponed = self.postpone()
        if postponed != self._postponed:
            logger.warning("key rotation: {}", f"scheduled rotations postponed: {postponed}" if postponed
                           else "scheduled rotations resumed")
            self._postponed = postponed
        if postponed is not None:
            return []
        answers = []
        for key in self.due():
            if self._stop.is_set():
                break
            with self._lock:
                answer = self._rotate(key, Trigger.SCHEDULE)
            said = (answer["outcome"], answer["reason"])
            if answer["rotated"]:
                self._said_last.pop(key, None)
            elif self._said_last.get(key) == said:
                continue  # the same refusal or failure: said once already
            else:
                self._said_last[key] = said
            answers.append(self._said(answer))
        return answers

    def _take(self, key: OwnedKey) -> None:
        """Reload if ``key``'s source holds a value this engine does not: another node's rotation
        (its mark proves it: the HTTP grace, from now), or an operator's change (none)."""
        name = owned_keys(self.config)[key]
        held, now = self.provider.get(name), self.provider.read(name)
        pending = self._pending.get(key)
        if now is None or held is None or now == held or (pending is not None and now == pending.new):
            return  # nothing new, or this engine's own rotation, which retries on its own
        with self._lock:
            if key is OwnedKey.AUDIT:  # the key this node MACs with retired first: never lost to a race
                try:
                    self._retire(held, beside=name)
                except Exception as exc:  # noqa: BLE001 - then the reload holds the new key
                    logger.error("key rotation: {} not retired before taking another node's key: {}", name,
                                 self.redactor(str(exc)))
            self._pending.pop(key, None)  # another value won: a retry must not write over it
            if hmac.compare_digest(self.provider.mark(name) or "", rotation_mark(held, now)):
                self._rotated[name] = (fingerprint(held), fingerprint(now), time.monotonic())
        self.reload(f"{key.value} rotated elsewhere")

    def start(self) -> None:
        """Look every ``check_every_s`` on a thread of its own (a look may block on Secrets Manager)."""
        if not self.settings.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="key-rotation", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():  # a first look at once: a key overdue at start is rotated now
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the schedule must outlive one bad look
                logger.error("key rotation: a scheduled look failed: {!r}", exc)
            if self._stop.wait(self.settings.check_every_s):
                return

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the schedule; False if its thread is still in a look after ``timeout`` (kept: a
        later stop joins it again)."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.error("key rotation: the schedule's thread did not stop within {} s", timeout)
            return False
        self._thread = None
        return True
