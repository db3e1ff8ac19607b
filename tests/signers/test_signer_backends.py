"""The backends themselves: what never leaves the HSM, and what a signer refuses to use."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import AttributeSensitive
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from supervisors import Runtime
from xorj_actors.kill_switch import HaltBoard, HaltStatus
from xorj_actors.signers import (
    GetSignerHealth,
    KeySettings,
    Pkcs11Settings,
    SignerError,
    SignRequest,
    Signer,
    VaultKeys,
)
from xorj_actors.signers import _kms, _pkcs11, _signer
from xorj_actors.signers._kms import MAX_MESSAGE_BYTES, KmsBackend
from xorj_actors.signers._pkcs11 import Pkcs11Backend
from tests.plugins.softhsm import SoftHsmToken
from tests.signers.conftest import VAULTS, KeyCase


def session(token: SoftHsmToken) -> Any:
    """A logged-in session on the test token (one login per process: close it before a signer)."""
    return _pkcs11._session(Pkcs11Settings(token_label=token.label, pin_env=token.pin_env), token.environ)


def test_the_private_key_cannot_be_read_out_of_the_token(
    key_pkcs11: KeyCase, softhsm_token: SoftHsmToken, hsm_key_label: str
) -> None:
    with session(softhsm_token) as s:
        for vault in VAULTS:  # one key pair per vault, labelled by its id
            private, public = _pkcs11._key_pair(s, f"{hsm_key_label}{vault}")
            assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
            with pytest.raises(AttributeSensitive):
                private[Attribute.VALUE]
            assert _pkcs11._pubkey(public) == key_pkcs11.keys[vault]  # only the public half is readable
    assert key_pkcs11.keys[VAULTS[0]] != key_pkcs11.keys[VAULTS[1]]


def test_init_never_replaces_a_vault_key_and_show_names_the_missing(
    key_pkcs11: KeyCase, softhsm_token: SoftHsmToken, hsm_key_label: str
) -> None:
    settings = Pkcs11Settings(token_label=softhsm_token.label, label_prefix=hsm_key_label, pin_env=softhsm_token.pin_env)
    rows = _pkcs11.init_keys(settings, softhsm_token.environ, (*VAULTS, "vault-0002"))
    assert [(v, pk is None) for v, pk, _ in rows] == [("vault-0000", True), ("vault-0001", True), ("vault-0002", False)]
    assert "already exists" in rows[0][2]
    shown = _pkcs11.show_keys(settings, softhsm_token.environ, (*VAULTS, "vault-0002", "vault-0003"))
    assert [pk for _, pk, _ in shown[:2]] == [key_pkcs11.keys[v] for v in VAULTS] and shown[2][1] == rows[2][1]
    assert shown[3][1] is None and "no Ed25519 key pair" in shown[3][2]


def test_an_extractable_key_is_refused(softhsm_token: SoftHsmToken, hsm_key_label: str) -> None:
    with session(softhsm_token) as s:
        s.generate_keypair(
            KeyType.EC_EDWARDS,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            store=True,
            label=f"{hsm_key_label}vault-0000",
            public_template={Attribute.EC_PARAMS: _pkcs11._ED25519_PARAMS},
            private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    settings = Pkcs11Settings(token_label=softhsm_token.label, label_prefix=hsm_key_label, pin_env=softhsm_token.pin_env)
    backend = Pkcs11Backend.open(settings, softhsm_token.environ)
    try:
        with pytest.raises(SignerError, match="could leave the HSM"):
            backend.public_key("vault-0000")
    finally:
        backend.close()


def test_a_wrong_pin_is_refused_with_the_variable_named(softhsm_token: SoftHsmToken) -> None:
    settings = Pkcs11Settings(token_label=softhsm_token.label, pin_env=softhsm_token.pin_env)
    with pytest.raises(SignerError, match=f"wrong PIN \\(from {softhsm_token.pin_env}\\)"):
        Pkcs11Backend.open(settings, {softhsm_token.pin_env: "not-the-pin"})
    with pytest.raises(SignerError, match="no such token"):
        Pkcs11Backend.open(Pkcs11Settings(token_label="absent", pin_env="P"), {"P": "1"})


def test_kms_refuses_messages_over_its_limit(kms_settings, key_kms: KeyCase) -> None:
    backend = KmsBackend.open(kms_settings)
    try:
        assert [backend.public_key(v) for v in VAULTS] == [key_kms.keys[v] for v in VAULTS]
        assert len(backend.sign(VAULTS[0], b"x" * MAX_MESSAGE_BYTES)) == 64
        with pytest.raises(SignerError, match="over the 4096-byte limit"):
            backend.sign(VAULTS[0], b"x" * (MAX_MESSAGE_BYTES + 1))
    finally:
        backend.close()


def test_kms_init_never_retargets_an_alias_and_each_vault_signs_with_its_own_key(kms_settings, key_kms: KeyCase) -> None:
    rows = _kms.init_keys(kms_settings, VAULTS)
    assert all(pk is None and "already exists" in why for _, pk, why in rows)
    assert [pk for _, pk, _ in _kms.show_keys(kms_settings, VAULTS)] == [key_kms.keys[v] for v in VAULTS]
    backend = KmsBackend.open(kms_settings)
    try:
        message = b"vault-0001 pays"
        signature = Signature.from_bytes(backend.sign(VAULTS[1], message))
        assert signature.verify(key_kms.keys[VAULTS[1]], message)
        assert not signature.verify(key_kms.keys[VAULTS[0]], message)
    finally:
        backend.close()


class FakeCorruptingBackend:
    """FAKE: an HSM that returns a wrong signature; no real backend can be made to do that."""

    name = "pkcs11"

    def __init__(self) -> None:
        self.key = Keypair()

    def public_key(self, vault: str) -> Pubkey:
        return self.key.pubkey()

    def sign(self, vault: str, message: bytes) -> bytes:
        return bytes(self.key.sign_message(message + b"!"))

    def close(self) -> None:
        pass


def test_a_signature_that_does_not_verify_is_never_returned(monkeypatch) -> None:
    monkeypatch.setattr(_signer, "open_backend", lambda *a, **k: FakeCorruptingBackend())
    with Runtime(workers=1, name="corrupt"):
        board = HaltBoard()
        board.publish(HaltStatus(state="ARMED", epoch=0, halted=False, factor=1.0))  # no kill switch here
        ref = Signer.start(board, KeySettings(name="k"), VaultKeys("k"), VAULTS)
        result = ref.ask(SignRequest(trade_id="t", vault_id=VAULTS[0], payload=b"message"), timeout=5)
        assert result.signature is None and "does not verify" in result.refused
        health = ref.ask(GetSignerHealth(), timeout=5)
        assert (health.signed, health.errors, health.refused) == (0, 1, 0)


def test_a_running_kms_signer_keeps_its_key_when_the_alias_is_retargeted(kms_settings, key_kms: KeyCase) -> None:
    backend = KmsBackend.open(kms_settings)
    try:
        assert backend.public_key(VAULTS[0]) == key_kms.keys[VAULTS[0]]
        other = dataclasses.replace(kms_settings, alias_prefix=kms_settings.alias_prefix + "other-")
        ((_, new, _),) = _kms.init_keys(other, VAULTS[:1])
        client = _kms._client(kms_settings)
        try:
            target = client.describe_key(KeyId=_kms.key_alias(other, VAULTS[0]))["KeyMetadata"]["KeyId"]
            client.update_alias(AliasName=_kms.key_alias(kms_settings, VAULTS[0]), TargetKeyId=target)
        finally:
            client.close()
        assert _kms.show_keys(kms_settings, VAULTS[:1])[0][1] == new
        message = b"signed after the alias moved"
        assert Signature.from_bytes(backend.sign(VAULTS[0], message)).verify(key_kms.keys[VAULTS[0]], message)
    finally:
        backend.close()
