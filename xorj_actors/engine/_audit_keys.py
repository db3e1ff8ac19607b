"""The engine's side of audit key epochs and key rotation: the kill switch's state keys, a live
rotation of the audit writer (then of the state file), which node rotates shared keys, and the
audit entry of a reload or rotation (docs/AUDIT.md, "Key epochs"; docs/SECURITY.md, "Key rotation")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger
from pykka import ActorDeadError

from xorj_actors.audit import (
    AUDIT_NAME,
    AuditEntry,
    AuditSettings,
    AuditUnavailable,
    KeyRing,
    RotateKey,
    audit_event,
    chain_state_keys,
    fingerprint,
    load_key_ring,
    record,
)
from xorj_actors.engine._reload import RotationRefused
from xorj_actors.kill_switch import KILL_SWITCH_NAME, RekeyStateFile

__all__ = ["audit_secrets_answer", "rotate_audit_key", "rotates_shared_keys", "state_keys_now"]


def audit_secrets_answer(runtime: Any, answer: dict[str, Any], *, ok: bool) -> None:
    """One SYSTEM_EVENT for a secrets reload or a key rotation (names, sources, fingerprints:
    never a value); ERROR when it did not happen."""
    if runtime is not None:
        record(runtime, audit_event("SYSTEM_EVENT", "secrets", answer, severity="WARNING" if ok else "ERROR"))


def rotates_shared_keys(cluster: Any) -> bool:
    """Whether this node rotates the shared keys on schedule: alone, yes; in a cluster, only
    the live node with the lowest id (the others take its keys at their next look)."""
    if cluster is None:
        return True
    try:
        live = cluster.call(cluster.live(), timeout=10.0)
    except Exception as exc:  # noqa: BLE001 - NATS away: nobody rotates, the old key stays
        logger.warning("key rotation: cluster members unknown ({!r}): not rotating now", exc)
        return False
    return bool(live) and min(live) == cluster.settings.node_id


def state_keys_now(settings: AuditSettings, environment: str, data_dir: Path, environ: Any) -> dict[str, Any]:
    """The kill switch's state file keys, from the audit keys now (the current one writes, the
    retired ones read); none without an audit key (the kill switch then cannot authenticate its
    file, and starts halted unless this is a first start)."""
    try:
        ring = load_key_ring(settings, environment, environ)
        key, retired = chain_state_keys(settings, data_dir, ring)
    except ValueError as exc:
        logger.critical("kill switch: no state key: {}", exc)
        return {"state_key": None}
    return {"state_key": key, "retired_state_keys": retired}


def rotate_audit_key(runtime: Any, settings: AuditSettings, data_dir: Path, keys: KeyRing, reason: str) -> AuditEntry | None:
    """Rotate the audit writer to ``keys.current`` (its ``KEY_ROTATION`` entry committed),
    then the kill switch's state file; the entry, or None if the writer already used it.

    Raises:
        RotationRefused: the writer refused it (nothing queued); TimeoutError, AuditUnavailable:
            not confirmed (queued: the writer may be on either key).
    """
    wait = settings.append_timeout_s
    ref = None if runtime is None else runtime.whereis(AUDIT_NAME)
    try:
        if ref is None:
            raise ActorDeadError("audit actor not running")
        rotation = ref.ask(RotateKey(keys=keys, reason=reason), timeout=wait)
    except (AuditUnavailable, ActorDeadError, ValueError) as exc:  # nothing queued: the writer keeps its key
        raise RotationRefused(f"{type(exc).__name__}: {exc}") from exc
    entry = None if rotation is None else rotation.result(timeout=wait)
    ks = runtime.whereis(KILL_SWITCH_NAME)
    try:  # the rotation is committed: nothing below may undo it
        key, retired = chain_state_keys(settings, data_dir, keys)
        committed = None if entry is None else (entry.sequence, fingerprint(keys.current))
        rekeyed = ks is not None and ks.ask(RekeyStateFile(key=key, retired=retired, rotation=committed), timeout=wait)
    except Exception:  # noqa: BLE001 - the kill switch busy or gone
        rekeyed = False
    if not rekeyed:
        # Not fatal: the file is read under the retired keys too, and rewritten at the next save.
        logger.error("audit key rotated, but the kill switch's state file was not rewritten under the new key")
    return entry
