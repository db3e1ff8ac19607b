"""Development key backend: the secret key is in this process. Refused in production."""

from __future__ import annotations

from pathlib import Path

from loguru import logger
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import LOCALNET_DEV_KEY_FILE, DevKeySettings

__all__ = ["DevKeyBackend"]


class DevKeyBackend:
    """A keypair read from a Solana CLI keypair file (by default the one the localnet writes)."""

    name = "dev_key"

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair

    @classmethod
    def open(cls, settings: DevKeySettings, *, environment: str, data_dir: Path) -> DevKeyBackend:
        if environment == "production":
            raise SignerError(
                "dev_key: a key file is for development only and is refused in production; "
                'configure backend = "pkcs11" or "kms" for this key'
            )
        path = data_dir / (settings.path or LOCALNET_DEV_KEY_FILE)
        try:
            keypair = Keypair.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            hint = "" if settings.path else " (the localnet writes it when it starts)"
            raise SignerError(f"dev_key: cannot read {path}: {exc.strerror}{hint}") from None
        except ValueError as exc:
            raise SignerError(f"dev_key: {path} is not a Solana keypair file (JSON array of 64 bytes): {exc}") from None
        if not settings.path:
            logger.warning("dev_key: signing with the localnet's DEVELOPMENT key, whose secret is public")
        return cls(keypair)

    def public_key(self) -> Pubkey:
        return self._keypair.pubkey()

    def sign(self, message: bytes) -> bytes:
        return bytes(self._keypair.sign_message(message))

    def close(self) -> None:
        """Nothing to release."""
