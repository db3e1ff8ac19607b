"""Vault keys: one authority key per vault, its name in each key store, and the board of them.

Pure but for :class:`VaultKeys`, a board (docs/ARCHITECTURE.md, "Boards"): the key store's
Signer actor publishes each vault's public key once it has found the key; the vaults and the
executor read it without asking.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from solders.keypair import Keypair
from solders.pubkey import Pubkey

__all__ = [
    "LOCALNET_DEV_SEED",
    "MAX_VAULTS_PER_COMMAND",
    "VaultKeys",
    "dev_vault_keypair",
    "parse_vault_ids",
    "vault_id",
]

#: The DEVELOPMENT seed every vault key of the localnet is derived from. It is in this source
#: file, so every key derived from it is public: for development and tests only.
LOCALNET_DEV_SEED = "xorj-localnet DEVELOPMENT vault keys, never fund on a real cluster"
#: ``keys init``/``show`` handle at most this many vaults in one command.
MAX_VAULTS_PER_COMMAND = 100_000
_VAULT_ID = re.compile(r"^vault-(\d{4,9})$")
_RANGE = re.compile(r"^((?:vault-)?\d+)-((?:vault-)?\d+)$")


def vault_id(index: int) -> str:
    """The id of vault ``index`` (``vault-0007``): the PKCS#11 label and KMS alias suffix of its key."""
    if index < 0:
        raise ValueError(f"vault index {index} is negative")
    return f"vault-{index:04d}"


def dev_vault_keypair(seed: str, vault: str) -> Keypair:
    """The development key of vault ``vault``: ``Keypair.from_seed(sha256(f"{seed}:vault-authority:{vault}"))``."""
    return Keypair.from_seed(hashlib.sha256(f"{seed}:vault-authority:{vault}".encode()).digest())


def _index(part: str) -> int:
    match = _VAULT_ID.match(part)
    text = match.group(1) if match else part
    if not text.isdigit() or len(text) > 9:
        raise ValueError(f"{part!r} is neither a vault index nor a vault id (vault-0007)")
    return int(text)


def parse_vault_ids(spec: str) -> tuple[str, ...]:
    """Vault ids from ``"0-99,120,vault-0200"``: indexes, ranges (inclusive) and ids, in order.

    Raises ``ValueError`` naming the bad part; duplicates are refused, not merged.
    """
    out: list[str] = []
    for raw in spec.split(","):
        part = raw.strip()
        bounds = _RANGE.match(part)
        if bounds is None:
            out.append(vault_id(_index(part)))
            continue
        first, last = _index(bounds.group(1)), _index(bounds.group(2))
        if last < first:
            raise ValueError(f"range {part!r} runs backwards")
        if last - first + 1 + len(out) > MAX_VAULTS_PER_COMMAND:
            raise ValueError(f"more than {MAX_VAULTS_PER_COMMAND} vaults in {spec!r}")
        out.extend(vault_id(i) for i in range(first, last + 1))
    if len(set(out)) != len(out):
        raise ValueError(f"a vault appears twice in {spec!r}")
    return tuple(out)


class VaultKeys:
    """Vault id -> the public key of its authority in one key store.

    Written by that store's Signer only (and filled up front for derived development keys);
    read by anyone. A vault with no published key has no authority here: whoever needs it fails
    closed.

    Args:
        store: the key store's name (``[[signers.keys]] name``), for messages.
        derive: for derived keys, vault id -> public key (then every vault is known at once).
    """

    def __init__(self, store: str, derive: Callable[[str], Pubkey] | None = None) -> None:
        self.store = store
        self._derive = derive
        self._keys: Mapping[str, Pubkey] = MappingProxyType({})
        self._published = threading.Condition()
        # Set when a wait ran out; cleared by the next publish. Until then nobody waits again:
        # a store that failed to open must not hold every starting vault for wait_s each.
        self._waits_ran_out = False

    def get(self, vault: str) -> Pubkey | None:
        """The vault's authority, or None if the store has not shown one."""
        key = self._keys.get(vault)
        if key is None and self._derive is not None:
            key = self._derive(vault)
            self.publish({vault: key})
        return key

    def require(self, vault: str, wait_s: float = 0.0) -> Pubkey:
        """The vault's authority; ``KeyError`` naming the store if there is none.

        ``wait_s``: wait that long for the store's Signer to publish it (a vault starting beside
        a Signer that is still opening its store).
        """
        key = self.get(vault)
        if key is None and wait_s > 0 and not self._waits_ran_out:
            with self._published:
                if not self._published.wait_for(lambda: vault in self._keys, timeout=wait_s):
                    self._waits_ran_out = True
            key = self._keys.get(vault)
        if key is None:
            raise KeyError(f"key store {self.store!r} has no key for {vault} (create it with `keys init`)")
        return key

    def publish(self, keys: Mapping[str, Pubkey]) -> None:
        """Add vault keys (the owner only). A vault's key never changes under a reader."""
        with self._published:
            current = dict(self._keys)
            for vault, key in keys.items():
                if current.get(vault, key) != key:
                    raise ValueError(f"{vault}: key store {self.store!r} shows {key}, published {current[vault]}")
                current[vault] = key
            self._keys = MappingProxyType(current)
            self._waits_ran_out = False
            self._published.notify_all()

    def known(self) -> Iterable[str]:
        """The vaults published so far."""
        return tuple(self._keys)
