"""The localnet's DEVELOPMENT vault authority, handed to the signers as a key file.

Production code never imports the localnet: a ``dev_key`` signer without a ``path`` reads the
file this module writes (``signers.LOCALNET_DEV_KEY_FILE`` in the data directory, mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

from xorj_actors.localnet.genesis import dev_vault_authority
from xorj_actors.signers.settings import LOCALNET_DEV_KEY_FILE

__all__ = ["write_dev_key"]


def write_dev_key(data_dir: Path) -> Path:
    """Write the development vault authority as a Solana CLI keypair file; returns its path.

    Written to a temporary file and renamed, so a signer starting meanwhile never reads half of it.
    """
    path = Path(data_dir) / LOCALNET_DEV_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a stale temporary file may have had other bits
        os.write(fd, dev_vault_authority().to_json().encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path
