"""Scheduled rotation of the keys the engine owns (``[secrets.rotation]``, docs/SECURITY.md, "Key rotation").

A rotation makes a new key, writes it through the source that holds the key (a file, Secrets
Manager; the environment is refused), then runs the same reload as ``ctl reload-secrets``, so the
running engine takes it. Every rotation, done, refused or failed, is one audit entry naming the
key and its fingerprints, never a value; the redactor learns the new value before it is written.

In a cluster the keys are shared: only the live node with the lowest id rotates on schedule; each
node takes a key another node rotated at its next look (``check_every_s``): its value in the
source differs from the one it holds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from xorj_actors.config import Config
from xorj_actors.key_rotation import fingerprint, key_ages, new_key, owned_keys
from xorj_actors.redaction import Redactor
from xorj_actors.secrets import CredentialProvider, NotWritable, OwnedKey, SecretSourceError, Source

__all__ = ["KeyRotator", "retire"]


def retire(retired: str | None, old: str) -> str:
    """The retired-keys secret's new text: ``old`` added (comma-separated, each key once)."""
    keys = [k for k in (retired or "").split(",") if k]
    return ",".join(keys if old in keys else [*keys, old])


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
    """

    def __init__(
        self,
        provider: CredentialProvider,
        config: Config,
        reload: Callable[[str], dict[str, Any]],
        redactor: Redactor,
        on_outcome: Callable[[dict[str, Any]], object] = lambda answer: None,
        may_rotate: Callable[[], bool] = lambda: True,
        age_of: Callable[[str], float | None] | None = None,
    ) -> None:
        self.provider, self.config, self.reload, self.redactor = provider, config, reload, redactor
        self.on_outcome, self.may_rotate = on_outcome, may_rotate
        self.age_of = provider.age if age_of is None else age_of
        self.settings = config.secrets.rotation
        self._lock = threading.Lock()
        self._refused: dict[OwnedKey, str] = {}  # the schedule's refusals, each audited once
        #: name -> (fingerprint before, fingerprint after, monotonic time): the last rotation.
        self._rotated: dict[str, tuple[str | None, str | None, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one rotation ----------------------------------------------------------------------------

    def rotate(self, key: OwnedKey, trigger: str) -> dict[str, Any]:
        """Rotate ``key`` now; the answer (audited) names it and its fingerprints, never a value."""
        with self._lock:
            answer = self._rotate(key, trigger)
        return self._said(answer)

    def _said(self, answer: dict[str, Any]) -> dict[str, Any]:
        logger.log("WARNING" if answer["rotated"] else "ERROR", "key rotation ({}): {} {}: {}", answer["trigger"],
                   answer["key"], answer["outcome"], answer["reason"] or f"new key {answer['new_fingerprint']}")
        self.on_outcome(answer)
        return answer

    def _rotate(self, key: OwnedKey, trigger: str) -> dict[str, Any]:
        name = owned_keys(self.config)[key]
        source = self.provider.sources().get(name)
        old = self.provider.get(name)
        answer: dict[str, Any] = {
            "what": "key rotation", "key": key.value, "name": name, "trigger": trigger,
            "source": str(source) if source else None, "old_fingerprint": fingerprint(old),
            "new_fingerprint": None, "rotated": False, "outcome": "refused", "reason": None,
        }
        refusal = self._refusal(key, name, old)
        if refusal is not None:
            return {**answer, "reason": refusal}
        new = new_key()
        self.redactor.add((new,))  # before any write: nothing may show a value it does not mask
        try:
            if key is OwnedKey.AUDIT:  # the old key retired first: its entries still verify
                self._retire(old or "", beside=name)
            self._rotated[name] = (fingerprint(old), fingerprint(new), time.monotonic())  # before the reload
            self.provider.write(name, new)
        except NotWritable as exc:
            return {**answer, "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a source's error (SecretSourceError) or worse: said, audited
            return {**answer, "outcome": "failed", "reason": self.redactor(f"{exc}" if isinstance(exc, SecretSourceError)
                                                                          else f"{type(exc).__name__}: {exc}")}
        taken = self.reload("scheduled" if trigger == "schedule" else "rotate-key")  # an audit key epoch's reason
        if not taken["reloaded"] or name not in taken["changed"]:
            why = "; ".join(taken["missing"]) or "the reload did not take the new value"
            return {**answer, "outcome": "failed", "new_fingerprint": fingerprint(new),
                    "reason": f"written to its source, not taken by this engine: {why}"}
        return {**answer, "outcome": "rotated", "rotated": True, "new_fingerprint": fingerprint(new)}

    def _retire(self, key: str, beside: str) -> None:
        """Add ``key`` to the retired audit keys' secret (written where ``beside`` is, if new)."""
        retired = self.config.audit.retired_hmac_keys_env
        self.provider.write(retired, retire(self.provider.read(retired) or self.provider.get(retired), key), beside=beside)

    def _refusal(self, key: OwnedKey, name: str, old: str | None) -> str | None:
        """Why ``key`` cannot be rotated here (None: it can)."""
        if old is None:
            return f"{name} is in no source: nothing to rotate"
        if self.provider.sources().get(name) is Source.ENV:  # before any write (the audit key's retired list)
            return str(NotWritable.environment(name))
        return None

    def ages(self) -> list[dict[str, Any]]:
        """``ctl keys``: every credential's source, age and state (never a value)."""
        return [dataclasses.asdict(row) for row in key_ages(self.config, self.provider)]

    def rotated(self, name: str, before: str, after: str) -> float | None:
        """When (monotonic) this engine rotated ``name`` from ``before`` to ``after`` (or took that
        rotation from another node); None: it did not (an operator's change). The HTTP API keeps
        the previous key for its grace only after such a rotation."""
        last = self._rotated.get(name)
        return last[2] if last is not None and last[:2] == (fingerprint(before), fingerprint(after)) else None

    # -- the schedule ----------------------------------------------------------------------------

    def due(self) -> list[OwnedKey]:
        """The scheduled keys whose value in their source is older than ``interval_s`` (an
        unknown age, the environment's: due, so that the refusal is said)."""
        keys = owned_keys(self.config)
        return [k for k in self.settings.keys if (age := self.age_of(keys[k])) is None or age >= self.settings.interval_s]

    def tick(self) -> list[dict[str, Any]]:
        """One look: take a key another node rotated, then rotate the keys due (this node may)."""
        keys = owned_keys(self.config)
        for key in self.settings.keys:
            name, held = keys[key], self.provider.get(keys[key])
            now = self.provider.read(name)
            if now is None or held is None or now == held or key in self._refused:
                continue
            with self._lock:
                if key is OwnedKey.AUDIT:  # the key this node MACs with retired first: never lost to a race
                    try:
                        self._retire(held, beside=name)
                    except Exception as exc:  # noqa: BLE001 - then the reload holds the new key
                        logger.error("key rotation: {} not retired before taking another node's key: {}", name,
                                     self.redactor(str(exc)))
                if self.config.cluster is not None:  # alone, a change not ours is an operator's: no grace
                    # Another node's rotation: its grace too (from now: when it rotated is not known).
                    self._rotated[name] = (fingerprint(held), fingerprint(now), time.monotonic())
            self.reload(f"{key.value} rotated elsewhere")
        if not self.may_rotate():
            return []
        answers = []
        for key in self.due():
            with self._lock:
                answer = self._rotate(key, "schedule")
            if answer["outcome"] == "refused":
                if self._refused.get(key) == answer["reason"]:
                    continue  # said once already
                self._refused[key] = answer["reason"]
            else:
                self._refused.pop(key, None)
            answers.append(self._said(answer))
        return answers

    def start(self) -> None:
        """Look every ``check_every_s`` on a thread of its own (a look may block on Secrets Manager)."""
        if not self.settings.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="key-rotation", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:  # a first look at once: a key overdue at start is rotated now
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the schedule must outlive one bad look
                logger.error("key rotation: a scheduled look failed: {!r}", exc)
            if self._stop.wait(self.settings.check_every_s):
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
