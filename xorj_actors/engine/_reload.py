"""``ctl reload-secrets`` and SIGHUP: read the credentials again, without a restart.

The new values go where the engine's components read them on use: the engine's environment
mapping (the HTTP API key, the Slack signing secret, the recovery keys, the quantitative
engine's API key), after the redactor learnt them. A new audit HMAC key starts a key epoch
(docs/AUDIT.md, "Key epochs"): taken only if the key in use is among the retired keys (else
``audit verify`` could not check the old epoch: held, as before), by ``rotate_audit_key``, which
has the audit writer append the ``KEY_ROTATION`` entry and switch keys after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from loguru import logger

from xorj_actors.audit import AuditEntry, KeyRing, RotationReason, fingerprint, key_problem, parse_retired
from xorj_actors.config import Config
from xorj_actors.credentials import required_secret_names
from xorj_actors.redaction import Redactor
from xorj_actors.secrets import CredentialProvider

__all__ = ["RotationRefused", "SecretsReload"]


class RotationRefused(RuntimeError):
    """The audit writer refused a key rotation before queueing it: it stays on the key in use."""


class SecretsReload:
    """Re-resolves the engine's credentials on request; one reload at a time.

    Args:
        provider: the engine's credential provider (resolved once at start).
        config: the loaded configuration (which credentials are required, which are held).
        environ: the engine's environment mapping, updated in place.
        redactor: the process's redactor; it learns every new value before anything could show it.
        on_outcome: records each reload's answer (the engine: a SYSTEM_EVENT audit entry).
    """

    def __init__(
        self,
        provider: CredentialProvider,
        config: Config,
        environ: MutableMapping[str, str],
        redactor: Redactor,
        on_outcome: Callable[[dict[str, Any]], object] = lambda answer: None,
        *,
        rotate_audit_key: Callable[[KeyRing, str], AuditEntry | None] | None = None,
        writer_fingerprint: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.environ = environ
        self.redactor = redactor
        self.on_outcome = on_outcome
        self.rotate_audit_key = rotate_audit_key
        #: The fingerprint of the key the audit writer uses now (None: unknown), after an unconfirmed rotation.
        self.writer_fingerprint = writer_fingerprint
        self._lock = threading.Lock()

    def __call__(self, trigger: str = "ctl") -> dict[str, Any]:
        """Reload; the answer names credentials and sources, never a value."""
        with self._lock:
            answer = self._reload(trigger)
        self.on_outcome({"what": "secrets reloaded" if answer["reloaded"] else "secrets reload refused", **answer})
        return answer

    def _reload(self, trigger: str) -> dict[str, Any]:
        cfg = self.config
        # The redactor learns the values read before the provider swaps them in: a reader on
        # another thread never gets a value it would not mask.
        try:
            res = self.provider.reload(required_secret_names(cfg), hold=(cfg.audit.hmac_key_env,), before_swap=self._checked)
            problems = [m.describe() for m in res.missing]
        except ValueError as exc:  # raised before the swap: every old value stays
            problems = [str(exc)]
        if problems:
            logger.error("secrets reload ({}) refused, the old values stay: {}", trigger, "; ".join(problems))
            return {"reloaded": False, "trigger": trigger, "missing": problems, "changed": [], "held": [], "sources": {}}
        fresh = self.provider.environ()
        for name in res.sources.keys() | set(res.changed):
            if name in fresh:
                self.environ[name] = fresh[name]
            else:  # gone from every source (an optional secret): gone here too
                self.environ.pop(name, None)
        changed, held, epoch = list(res.changed), list(res.held), {}
        if cfg.audit.hmac_key_env in held:
            epoch = self._new_epoch(trigger)
            if "new_fingerprint" in epoch:
                held.remove(cfg.audit.hmac_key_env)
                changed.append(cfg.audit.hmac_key_env)
            else:
                logger.warning("secrets reload: {} changed in its source but is held: {}", cfg.audit.hmac_key_env,
                               epoch["refused"])
        logger.warning("secrets reloaded ({}): changed: {}", trigger, ", ".join(changed) or "none")
        answer = {
            "reloaded": True,
            "trigger": trigger,
            "changed": changed,
            "held": held,
            "missing": [],
            "sources": {name: str(src) for name, src in sorted(res.sources.items())},
        }
        return {**answer, "audit_key": epoch} if epoch else answer

    def _checked(self, values: Iterable[str]) -> None:
        """``before_swap``: the redactor learns the values; a retired audit key list that does
        not parse raises ValueError, which refuses the whole reload before anything is swapped
        (every reader of the audit log would fail on it)."""
        self.redactor.add(values)
        audit = self.config.audit
        parse_retired(self.provider.read(audit.retired_hmac_keys_env), audit.retired_hmac_keys_env)

    def _new_epoch(self, trigger: str) -> dict[str, Any]:
        """The audit key's source holds a new key: rotate to it if the key in use is retired.
        The answer names fingerprints, never keys: ``refused`` (why it is held), or the rotation."""
        audit, name = self.config.audit, self.config.audit.hmac_key_env
        old, new = self.provider.get(name) or "", self.provider.read(name) or ""
        self.redactor.add((new,))
        try:
            retired = parse_retired(self.provider.get(audit.retired_hmac_keys_env), audit.retired_hmac_keys_env)
        except ValueError as exc:
            return {"refused": str(exc)}
        old_key, new_key = old.encode("utf-8"), new.encode("utf-8")
        problem = key_problem(new_key, name)
        if problem is None and new_key in retired:
            problem = (f"the new key (fingerprint {fingerprint(new_key)}) is among the retired keys: a key opens one "
                       "epoch only (a retired key may have leaked); choose a fresh key")
        if problem is None and old_key not in retired:
            problem = (f"the key in use (fingerprint {fingerprint(old_key)}) is not among the retired keys "
                       f"({audit.retired_hmac_keys_env}): add it there first, or `audit verify` could not check "
                       "the entries MACed under it")
        if problem is None and self.rotate_audit_key is None:
            problem = "this engine has no audit writer to rotate"
        if problem is not None:
            return {"refused": problem}
        reason = (RotationReason.SCHEDULED if trigger == "scheduled" else RotationReason.RELOAD).value  # messages carry str
        # The new key first, so an audit writer (re)opened meanwhile starts in the new epoch.
        self._adopt(name, new)
        try:
            entry = self.rotate_audit_key(KeyRing(new_key, retired), reason)  # type: ignore[misc]
        except RotationRefused as exc:  # refused, not queued: the old key stays
            self._adopt(name, old)
            logger.error("secrets reload: the audit writer refused the key rotation, the old key stays: {}", exc)
            return {"refused": f"the audit writer did not rotate: {exc}"}
        except Exception as exc:  # noqa: BLE001 - queued, perhaps committed: the provider follows the writer
            return self._unconfirmed(name, old, new, reason, exc)
        logger.warning("audit key rotated ({}): fingerprint {} -> {}", reason, fingerprint(old_key), fingerprint(new_key))
        return {"old_fingerprint": fingerprint(old_key), "new_fingerprint": fingerprint(new_key), "reason": reason,
                "sequence": None if entry is None else entry.sequence}

    def _adopt(self, name: str, value: str) -> None:
        self.provider.adopt(name, value)
        self.environ[name] = value

    def _unconfirmed(self, name: str, old: str, new: str, reason: str, exc: Exception) -> dict[str, Any]:
        """A rotation queued but not confirmed: the provider takes the key the writer is on, so an
        audit writer (re)opened later and this one never MAC under different keys."""
        old_fp, new_fp = fingerprint(old.encode("utf-8")), fingerprint(new.encode("utf-8"))
        writer = self.writer_fingerprint()
        why = f"{type(exc).__name__}: {exc}"
        if writer == old_fp:
            self._adopt(name, old)
            logger.error("secrets reload: the audit key rotation failed ({}); the writer is on the old key, which stays", why)
            return {"refused": f"the audit writer did not rotate: {why}"}
        logger.error("secrets reload: the audit key rotation is not confirmed ({}); the writer's key: {}; the new key"
                     " stays (a writer opened with it rotates at its start)", why, writer or "unknown")
        return {"old_fingerprint": old_fp, "new_fingerprint": new_fp, "reason": reason, "sequence": None,
                "confirmed": False}
