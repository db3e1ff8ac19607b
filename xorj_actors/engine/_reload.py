"""``ctl reload-secrets`` and SIGHUP: read the credentials again, without a restart.

The new values go where the engine's components read them on use: the engine's environment
mapping (the HTTP API key, the Slack signing secret, the recovery keys, the quantitative
engine's API key), after the redactor learnt them. The audit HMAC key is held: a new one would need a key epoch the audit log does
not have yet (docs/AUDIT.md, "Key epochs"), so the running process keeps the old one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from loguru import logger

from xorj_actors.config import Config
from xorj_actors.credentials import required_secret_names
from xorj_actors.redaction import Redactor
from xorj_actors.secrets import CredentialProvider

__all__ = ["SecretsReload"]


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
    ) -> None:
        self.provider = provider
        self.config = config
        self.environ = environ
        self.redactor = redactor
        self.on_outcome = on_outcome
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
        res = self.provider.reload(required_secret_names(cfg), hold=(cfg.audit.hmac_key_env,), before_swap=self.redactor.add)
        if res.missing:
            problems = [m.describe() for m in res.missing]
            logger.error("secrets reload ({}) refused, the old values stay: {}", trigger, "; ".join(problems))
            return {"reloaded": False, "trigger": trigger, "missing": problems, "changed": [], "held": [], "sources": {}}
        fresh = self.provider.environ()
        for name in res.sources.keys() | set(res.changed):
            if name in fresh:
                self.environ[name] = fresh[name]
            else:  # gone from every source (an optional secret): gone here too
                self.environ.pop(name, None)
        for name in res.held:
            logger.warning(
                "secrets reload: {} changed in its source but is held: the audit HMAC key cannot change (no key "
                "epochs yet, docs/AUDIT.md); put its current value back in the source",
                name,
            )
        logger.warning("secrets reloaded ({}): changed: {}", trigger, ", ".join(res.changed) or "none")
        return {
            "reloaded": True,
            "trigger": trigger,
            "changed": list(res.changed),
            "held": list(res.held),
            "missing": [],
            "sources": {name: str(src) for name, src in sorted(res.sources.items())},
        }
