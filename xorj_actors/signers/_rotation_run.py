"""``xorj-actors keys rotate``: rotate vault keys offline, one vault at a time, audited at every step.

Per vault (docs/SIGNERS.md, "Key rotation"): audit "started" with the old key; make (or reuse)
the pending key inside the store and audit it; move every token account and then every lamport
of the old key to the new key (:func:`xorj_actors.signers._rotation.move_all`), auditing each
finalized transaction; once the chain shows the old key owns nothing and holds 0 lamports, swap
the names in the store and audit "rotated". The engine's data-directory lock is held throughout,
so the engine cannot start (and trade) while a vault's key is half rotated.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from solders.pubkey import Pubkey

from xorj_actors.data_dir import DataDirError, lock_data_dir
from xorj_actors.signers._backend import SignerError
from xorj_actors.signers._rotation import JsonRpc, MoveError, Moved, move_all
from xorj_actors.signers.settings import KeySettings

__all__ = ["DEV_KEY_REFUSED", "RotationKeys", "open_rotation_keys", "rotate_vaults"]

#: Why a ``dev_key`` store is not rotated.
DEV_KEY_REFUSED = (
    "dev_key keys are derived from a seed, so there is no new key to make inside the store; "
    "a development vault gets a new key with a new dev_key.seed_file (and its funds moved by hand)"
)

#: Appends one KEY_OPERATION entry (details, severity) and returns once it is durable.
Audit = Callable[[dict[str, Any], str], None]


class RotationKeys(Protocol):
    """A key store's rotation calls (PKCS#11: ``Pkcs11Rotation``; KMS: ``KmsRotation``)."""

    name: str

    def state(self, vault: str) -> tuple[Pubkey | None, Pubkey | None, bool]:
        """(the vault's key, its pending key, whether the name swap has begun)."""

    def make_pending(self, vault: str) -> Pubkey:
        """Create the pending key inside the store."""

    def sign(self, vault: str, message: bytes) -> bytes:
        """Sign with the vault's (old) key, through the store's own sign call."""

    def swap(self, vault: str) -> tuple[str, Pubkey | None, Pubkey]:
        """Retire the old key's name, give the pending key the vault's: (retired name, old, new)."""

    def close(self) -> None:
        """Release the session or client."""


def open_rotation_keys(key: KeySettings, environ: Mapping[str, str]) -> RotationKeys:
    """The rotation calls of ``key``'s store. Raises SignerError (a dev_key store is refused)."""
    if key.backend == "pkcs11":
        from xorj_actors.signers._pkcs11 import Pkcs11Rotation

        return Pkcs11Rotation(key.pkcs11, environ)
    if key.backend == "kms":
        from xorj_actors.signers._kms import KmsRotation

        return KmsRotation(key.kms)
    raise SignerError(f"{key.name}: {DEV_KEY_REFUSED}")


def _rotate_one(vault: str, keys: RotationKeys, rpc: JsonRpc, audit: Audit, poll_s: float) -> Pubkey:
    """Rotate ``vault`` (or finish its rotation); its new key."""
    old, pending, swapping = keys.state(vault)
    moved: list[Moved] = []
    if not swapping:
        if old is None:
            raise SignerError(f"the key store has no key for {vault}")
        audit({"step": "started", "vault": vault, "old_public_key": str(old)}, "INFO")
        reused = pending is not None
        if pending is None:
            pending = keys.make_pending(vault)
        audit({"step": "pending_key", "vault": vault, "new_public_key": str(pending), "reused": reused}, "INFO")

        def on_moved(m: Moved) -> None:
            audit({"step": "moved", "vault": vault, "signature": m.signature, **m.what}, "INFO")

        moved = move_all(rpc, old, pending, lambda message: keys.sign(vault, message), on_moved, poll_s=poll_s)
    retired, old_key, new = keys.swap(vault)
    if pending is not None and new != pending:
        raise SignerError(f"{vault}: after the swap the store shows {new}, not the pending key {pending}")
    old_key = old_key or old  # resuming a swap: the store's retired key, if it still shows it
    audit(
        {
            "step": "rotated",
            "vault": vault,
            "old_public_key": None if old_key is None else str(old_key),
            "new_public_key": str(new),
            "retired_name": retired,
            "signatures": [m.signature for m in moved],
        },
        "INFO",
    )
    return new


def rotate_vaults(
    key: KeySettings,
    vaults: Sequence[str],
    *,
    rpc: JsonRpc,
    data_dir: Path,
    environ: Mapping[str, str],
    audit: Audit,
    poll_s: float = 0.5,
    on_vault: Callable[[str], None] | None = None,
) -> list[tuple[str, Pubkey | None, str]]:
    """Rotate ``vaults`` in ``key``'s store: (vault, new key or None, why not) per vault;
    ``on_vault(vault)`` once each is done or failed (progress).

    Nothing changes unless every vault has a key (or a rotation to finish), the RPC answers, and
    the engine's lock is free; then the vaults go one by one, a failed one reported and audited
    ("failed") while the next goes on.

    Raises:
        SignerError: refused before anything changed (lock held, dev_key store, missing key, no RPC).
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        lock = lock_data_dir(data_dir)
    except DataDirError as exc:
        raise SignerError(
            f"{exc}: stop the engine first (rotation is offline, so the vault cannot trade while its key moves)"
        ) from None
    try:
        keys = open_rotation_keys(key, environ)
        try:
            missing = [v for v in vaults if (s := keys.state(v))[0] is None and not s[2]]
            if missing:
                raise SignerError(f"the key store has no key for {', '.join(missing)} (create it with `keys init`)")
            try:
                rpc.call("getHealth", [])
            except MoveError as exc:
                raise SignerError(f"the RPC node does not answer: {exc}") from None
            out: list[tuple[str, Pubkey | None, str]] = []
            for vault in vaults:
                try:
                    out.append((vault, _rotate_one(vault, keys, rpc, audit, poll_s), ""))
                except (MoveError, SignerError) as exc:
                    audit({"step": "failed", "vault": vault, "reason": str(exc)}, "WARNING")
                    out.append((vault, None, str(exc)))
                if on_vault is not None:
                    on_vault(vault)
            return out
        finally:
            keys.close()
    finally:
        os.close(lock)
