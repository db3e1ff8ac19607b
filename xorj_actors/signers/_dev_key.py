"""Development key store: each vault's key derived from a seed, in this process. Refused in production."""

from __future__ import annotations

from pathlib import Path

from loguru import logger
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers._vault_keys import LOCALNET_DEV_SEED, dev_vault_keypair
from xorj_actors.signers.settings import DevKeySettings

__all__ = ["DevKeyBackend", "dev_seed"]


def dev_seed(settings: DevKeySettings, data_dir: Path) -> str:
    """The seed of ``settings``: the seed file's text, or the public :data:`LOCALNET_DEV_SEED`."""
    if not settings.seed_file:
        return LOCALNET_DEV_SEED
    path = data_dir / settings.seed_file
    try:
        seed = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SignerError(f"dev_key: cannot read the seed file {path}: {exc.strerror}") from None
    if not seed:
        raise SignerError(f"dev_key: the seed file {path} is empty")
    return seed


class DevKeyBackend:
    """Vault keys derived from a seed (by default the localnet's public DEVELOPMENT seed)."""

    name = "dev_key"

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._keys: dict[str, Keypair] = {}

    @classmethod
    def open(cls, settings: DevKeySettings, *, environment: str, data_dir: Path) -> DevKeyBackend:
        if environment == "production":
            raise SignerError(
                "dev_key: derived keys are for development only and are refused in production; "
                'configure backend = "pkcs11" or "kms" for this key store'
            )
        seed = dev_seed(settings, data_dir)
        if not settings.seed_file:
            logger.warning("dev_key: signing with the localnet's DEVELOPMENT vault keys, whose seed is public")
        return cls(seed)

    def _key(self, vault: str) -> Keypair:
        key = self._keys.get(vault)
        if key is None:
            key = self._keys[vault] = dev_vault_keypair(self._seed, vault)
        return key

    def public_key(self, vault: str) -> Pubkey:
        return self._key(vault).pubkey()

    def sign(self, vault: str, message: bytes) -> bytes:
        return bytes(self._key(vault).sign_message(message))

    def close(self) -> None:
        """Nothing to release."""
