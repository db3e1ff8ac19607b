"""Keys for the signer tests: one real key per backend, and a real Solana message to sign."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.signers import KmsSettings, Pkcs11Settings
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


@dataclass(frozen=True)
class KeyCase:
    """One configured key of a backend: its TOML, the secrets it needs, its public key."""

    backend: str
    public_key: Pubkey
    settings: str  # the lines of a [[signers.keys]] entry after `backend`
    environ: dict[str, str] = field(default_factory=dict)

    def toml(self, name: str = "vault-authority", public_key: str | None = None) -> str:
        pk = str(self.public_key) if public_key is None else public_key
        return f'\n[[signers.keys]]\nname = "{name}"\nbackend = "{self.backend}"\npublic_key = "{pk}"\n{self.settings}'


@pytest.fixture
def key_pkcs11(softhsm_token: SoftHsmToken, hsm_key_label: str) -> KeyCase:
    settings = Pkcs11Settings(softhsm_token.module, softhsm_token.label, hsm_key_label, softhsm_token.pin_env)
    pubkey = _pkcs11.init_key(settings, softhsm_token.environ)
    return KeyCase("pkcs11", pubkey, softhsm_token.settings_toml(hsm_key_label), softhsm_token.environ)


@pytest.fixture
def kms_settings(ministack_endpoint: str, aws_env: None) -> KmsSettings:
    return KmsSettings(key_id=f"alias/xorj-test-{uuid.uuid4().hex[:10]}", endpoint_url=ministack_endpoint)


@pytest.fixture
def key_kms(kms_settings: KmsSettings) -> KeyCase:
    pubkey = _kms.init_key(kms_settings)
    toml = f'kms.key_id = "{kms_settings.key_id}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    return KeyCase("kms", pubkey, toml)


@pytest.fixture
def key_dev_key(tmp_path: Path) -> KeyCase:
    keypair = Keypair()
    path = tmp_path / "dev-signer.json"
    path.write_text(keypair.to_json())
    return KeyCase("dev_key", keypair.pubkey(), f'dev_key.path = "{path}"\n')


@pytest.fixture(params=["pkcs11", "kms", "dev_key"])
def signing_key(request: pytest.FixtureRequest) -> Iterator[KeyCase]:
    """Each backend in turn, with a fresh key."""
    yield request.getfixturevalue(f"key_{request.param}")
