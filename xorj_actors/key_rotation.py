"""Which keys the engine owns and rotates, how old each key is, and what ``check`` says of it.

The engine owns the keys it made itself, which no third party issued: the kill-switch API's HMAC
key (``[http] hmac_key_env``) and the audit chain's (``[audit] hmac_key_env``). ``[secrets.rotation]``
rotates those on a schedule (:mod:`xorj_actors.engine`'s rotator). The Jupiter and strategy API
keys and the Slack signing secret are issued by others, the recovery keys are held by operators,
signing keys are rotated only by ``xorj-actors keys rotate``: the engine never rotates those, but
reports their age where their source knows it (docs/SECURITY.md, "Key rotation").
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xorj_actors.audit import fingerprint as key_fingerprint
from xorj_actors.check import CheckResult, Status
from xorj_actors.config import Config
from xorj_actors.limits import MIN_KEY_BYTES
from xorj_actors.secrets import AgeState, CredentialProvider, OwnedKey, SecretAge, Source

__all__ = [
    "KeyAge", "KeyState", "check_key_ages", "fingerprint", "key_ages", "key_state", "new_key", "owned_keys", "render_keys",
    "render_rotation", "rotation_mark",
]

#: 32 random bytes as 64 hex digits: the text ``openssl rand -hex 32`` gives (docs/OPERATIONS.md).
_NEW_KEY_BYTES = 32


def owned_keys(config: Config) -> dict[OwnedKey, str]:
    """The engine's own keys, each by its credential name."""
    return {OwnedKey.HTTP: config.http.hmac_key_env, OwnedKey.AUDIT: config.audit.hmac_key_env}


def _others(config: Config) -> dict[str, str]:
    """The credentials others issued or hold, by name: whose they are."""
    named = {k: "operator (recovery key)" for k in config.kill_switch.recovery_key_envs}
    if config.jupiter.api_key_env:
        named[config.jupiter.api_key_env] = "issued by Jupiter"
    named[config.strategy.api_key_env] = "issued by the quantitative engine"
    if config.slack is not None:
        named[config.slack.signing_secret_env] = "issued by Slack"
    return named


def new_key() -> str:
    """A fresh key's text: 64 hex digits (32 random bytes; as long as MIN_KEY_BYTES asks or more)."""
    text = secrets.token_hex(_NEW_KEY_BYTES)
    assert len(text.encode()) >= MIN_KEY_BYTES
    return text


def fingerprint(value: str | None) -> str | None:
    """A key's one-way id for the audit trail and ``ctl`` (never the value): the audit log's key
    fingerprint, so a rotation's entry and the ``KEY_ROTATION`` entry name the same key alike."""
    return key_fingerprint(value.encode()) if value else None


class KeyState(enum.StrEnum):
    """What ``ctl keys`` and ``check`` say of a credential's age."""

    OK = "ok"
    #: An owned key older than ``max_age_s``.
    OLD = "old"
    #: Its source keeps no date (the environment).
    UNKNOWN = "unknown"
    #: Its source dates it but could not be asked now (Secrets Manager away).
    UNREADABLE = "unreadable"
    #: A scheduled key in the environment: the schedule cannot rotate it.
    NOT_ROTATABLE = "not rotatable"
    MISSING = "missing"


def rotation_mark(old: str, new: str) -> str:
    """The mark a rotating engine writes with ``new`` (a file beside it, the Secrets Manager
    version's id): HMAC-SHA256 under the ``old`` key of the new one, 64 hex digits. Another node
    holding ``old`` that reads ``new`` and this mark knows an engine rotated it (the HTTP grace);
    an operator's change after a leak has no such mark, and a thief of the old key cannot make
    one for a new key it does not know."""
    return hmac.new(old.encode(), b"xorj-key-rotation\x00" + new.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyAge:
    """One credential's age and what the engine does about it (never its value)."""

    name: str
    #: The owned key's class (``http``, ``audit``); None: the engine does not own it.
    key: str | None
    owner: str
    #: Where its value was found; None: in no source.
    source: str | None
    #: Seconds since its value was written; None: unknown (the environment has no date).
    age_s: float | None
    max_age_s: float
    state: KeyState
    #: The owned keys' only: a fingerprint of a low-entropy key others hold (a recovery key)
    #: would let anyone test guesses of it offline.
    fingerprint: str | None


def key_state(source: Source | None, age: SecretAge | None, *, owned: bool, scheduled: bool,
              max_age_s: float) -> KeyState:
    """What ``ctl keys`` says of a credential found in ``source`` (None: in none) at ``age``."""
    if source is None or age is None:
        return KeyState.MISSING
    if source is Source.ENV and scheduled:
        return KeyState.NOT_ROTATABLE
    if age.state is AgeState.UNREADABLE:
        return KeyState.UNREADABLE
    if age.seconds is None:
        return KeyState.UNKNOWN
    return KeyState.OLD if owned and age.seconds > max_age_s else KeyState.OK


def key_ages(config: Config, provider: CredentialProvider) -> list[KeyAge]:
    """Every key's age: the owned ones first, then the ones others issued (reported, never rotated)."""
    rot = config.secrets.rotation
    sources = provider.sources()
    rows = []
    scheduled = set(rot.keys) if rot.enabled else set()
    named = [(name, key.value, "engine") for key, name in owned_keys(config).items()]
    named += [(name, None, owner) for name, owner in _others(config).items()]
    for name, key, owner in named:
        source = sources.get(name)
        dated = provider.age(name) if source is not None else None
        age = dated.seconds if dated is not None else None
        state = key_state(source, dated, owned=key is not None,
                          scheduled=key is not None and OwnedKey(key) in scheduled, max_age_s=rot.max_age_s)
        rows.append(KeyAge(name, key, owner, str(source) if source else None, age, rot.max_age_s, state,
                           fingerprint(provider.get(name)) if key is not None else None))
    return rows


def check_key_ages(config: Config, provider: CredentialProvider) -> CheckResult:
    """``check``'s ``key_ages``: a warning for an owned key older than ``max_age_s``, one the
    schedule cannot rotate (in the environment), or one whose age is unknown (nothing says it is
    not old); never a failure (an old key still works)."""
    rows = [r for r in key_ages(config, provider) if r.key is not None]
    old = [f"{r.name} is {r.age_s / 86400:.1f} days old (max_age_s {r.max_age_s:g} s)" for r in rows
           if r.state is KeyState.OLD and r.age_s is not None]
    stuck = [f"{r.name}: in the environment, no rotation possible (put it in a file or Secrets Manager)"
             for r in rows if r.state is KeyState.NOT_ROTATABLE]
    unknown = [f"{r.name}: age unknown ({r.state})" for r in rows
               if r.state in (KeyState.UNKNOWN, KeyState.UNREADABLE)]
    if old or stuck or unknown:
        return CheckResult("key_ages", Status.WARN, "; ".join(old + stuck + unknown))
    known = [r for r in rows if r.age_s is not None]
    schedule = "scheduled" if config.secrets.rotation.enabled else "rotation off"
    return CheckResult("key_ages", Status.OK, f"{len(known)} of {len(rows)} owned keys dated, none too old ({schedule})")


def _days(age_s: float | None) -> str:
    return "?" if age_s is None else f"{age_s / 86400:.1f} d"


def render_keys(rows: Sequence[Mapping[str, Any]]) -> str:
    """``ctl keys``: one line a credential (never a value)."""
    lines = [f"{'credential':<32} {'owner':<34} {'source':<6} {'age':>8}  state"]
    for r in rows:
        lines.append(f"{r['name']:<32} {r['owner']:<34} {r['source'] or '-':<6} {_days(r['age_s']):>8}  {r['state']}")
    return "\n".join(lines)


def render_rotation(r: Mapping[str, Any]) -> str:
    """``ctl rotate-key``: what happened, by fingerprint."""
    if r["rotated"]:
        return f"{r['name']} rotated in {r['source']}: {r['old_fingerprint']} -> {r['new_fingerprint']} (audited)"
    return f"{r['name']} rotation {r['outcome'].upper()}: {r['reason']}"
