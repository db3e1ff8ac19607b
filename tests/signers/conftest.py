"""Keys for the signer tests: one real key store per backend with two vault keys, and a real
Solana message to sign."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.signers import KmsSettings, Pkcs11Settings, dev_vault_keypair
from xorj_actors.signers import _kms, _pkcs11
from tests.plugins.softhsm import SoftHsmToken


def transfer_message(payer: Pubkey) -> MessageV0:
    """A real versioned transaction message paid and signed by ``payer``."""
    ix = transfer(TransferParams(from_pubkey=payer, to_pubkey=Pubkey.new_unique(), lamports=1_000))
    return MessageV0.try_compile(payer, [ix], [], Hash.new_unique())


def assert_valid_solana_signature(message: MessageV0, signature: bytes | None) -> None:
    """``signature`` makes ``message`` a transaction the Solana runtime accepts as signed."""
    assert signature is not None and len(signature) == 64
    tx = VersionedTransaction.populate(message, [Signature.from_bytes(signature)])
    assert tx.verify_with_results() == [True]


#: The vaults every key case holds keys for.
VAULTS = ("vault-0000", "vault-0001")


@dataclass(frozen=True)
class KeyCase:
    """One configured key store of a backend: its TOML, the secrets it needs, its vault keys."""

    backend: str
    keys: dict[str, Pubkey]
    settings: str  # the lines of a [[signers.keys]] entry after `backend`
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def public_key(self) -> Pubkey:
        """vault-0000's key."""
        return self.keys[VAULTS[0]]

    def toml(self, name: str = "vault-authority") -> str:
        return f'\n[[signers.keys]]\nname = "{name}"\nbackend = "{self.backend}"\n{self.settings}'


def created(rows: list[tuple[str, Pubkey | None, str]]) -> dict[str, Pubkey]:
    assert all(pk is not None for _, pk, _ in rows), rows
    return {v: pk for v, pk, _ in rows}


@pytest.fixture
def key_pkcs11(softhsm_token: SoftHsmToken, hsm_key_label: str) -> KeyCase:
    settings = Pkcs11Settings(softhsm_token.module, softhsm_token.label, hsm_key_label, softhsm_token.pin_env)
    keys = created(_pkcs11.init_keys(settings, softhsm_token.environ, VAULTS))
    return KeyCase("pkcs11", keys, softhsm_token.settings_toml(hsm_key_label), softhsm_token.environ)


@pytest.fixture
def kms_settings(ministack_endpoint: str, aws_env: None) -> KmsSettings:
    return KmsSettings(alias_prefix=f"xorj-test-{uuid.uuid4().hex[:10]}-", endpoint_url=ministack_endpoint)


@pytest.fixture
def key_kms(kms_settings: KmsSettings) -> KeyCase:
    keys = created(_kms.init_keys(kms_settings, VAULTS))
    toml = f'kms.alias_prefix = "{kms_settings.alias_prefix}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    return KeyCase("kms", keys, toml)


@pytest.fixture
def key_dev_key(tmp_path: Path) -> KeyCase:
    seed = uuid.uuid4().hex
    path = tmp_path / "dev-seed"
    path.write_text(seed)
    keys = {v: dev_vault_keypair(seed, v).pubkey() for v in VAULTS}
    return KeyCase("dev_key", keys, f'dev_key.seed_file = "{path}"\n')


@pytest.fixture(params=["pkcs11", "kms", "dev_key"])
def signing_key(request: pytest.FixtureRequest) -> Iterator[KeyCase]:
    """Each backend in turn, with fresh keys."""
    yield request.getfixturevalue(f"key_{request.param}")
