"""The backends themselves: what never leaves the HSM, and what a signer refuses to use."""

from __future__ import annotations

from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import AttributeSensitive
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from supervisors import Runtime
from xorj_actors.kill_switch import HaltBoard, HaltStatus
from xorj_actors.signers import GetSignerHealth, KeySettings, Pkcs11Settings, SignerError, SignRequest, Signer
from xorj_actors.signers import _kms, _pkcs11, _signer
from xorj_actors.signers._kms import MAX_MESSAGE_BYTES, KmsBackend
from xorj_actors.signers._pkcs11 import Pkcs11Backend
from tests.plugins.softhsm import SoftHsmToken
from tests.signers.conftest import KeyCase


def session(token: SoftHsmToken) -> Any:
    """A logged-in session on the test token (one login per process: close it before a signer)."""
    return _pkcs11._session(Pkcs11Settings(token_label=token.label, pin_env=token.pin_env), token.environ)


def test_the_private_key_cannot_be_read_out_of_the_token(
    key_pkcs11: KeyCase, softhsm_token: SoftHsmToken, hsm_key_label: str
) -> None:
    with session(softhsm_token) as s:
        private, public = _pkcs11._key_pair(s, hsm_key_label)
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
        with pytest.raises(AttributeSensitive):
            private[Attribute.VALUE]
        assert _pkcs11._pubkey(public) == key_pkcs11.public_key  # only the public half is readable


def test_an_extractable_key_is_refused(softhsm_token: SoftHsmToken, hsm_key_label: str) -> None:
    with session(softhsm_token) as s:
        s.generate_keypair(
            KeyType.EC_EDWARDS,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            store=True,
            label=hsm_key_label,
            public_template={Attribute.EC_PARAMS: _pkcs11._ED25519_PARAMS},
            private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    settings = Pkcs11Settings(token_label=softhsm_token.label, key_label=hsm_key_label, pin_env=softhsm_token.pin_env)
    with pytest.raises(SignerError, match="could leave the HSM"):
        Pkcs11Backend.open(settings, softhsm_token.environ)


def test_a_wrong_pin_is_refused_with_the_variable_named(softhsm_token: SoftHsmToken) -> None:
    settings = Pkcs11Settings(token_label=softhsm_token.label, pin_env=softhsm_token.pin_env)
    with pytest.raises(SignerError, match=f"wrong PIN \\(from {softhsm_token.pin_env}\\)"):
        Pkcs11Backend.open(settings, {softhsm_token.pin_env: "not-the-pin"})
    with pytest.raises(SignerError, match="no such token"):
        Pkcs11Backend.open(Pkcs11Settings(token_label="absent", pin_env="P"), {"P": "1"})


def test_kms_refuses_messages_over_its_limit(kms_settings, key_kms: KeyCase) -> None:
    backend = KmsBackend.open(kms_settings)
    try:
        assert backend.public_key() == key_kms.public_key
        assert len(backend.sign(b"x" * MAX_MESSAGE_BYTES)) == 64
        with pytest.raises(SignerError, match="over the 4096-byte limit"):
            backend.sign(b"x" * (MAX_MESSAGE_BYTES + 1))
    finally:
        backend.close()


def test_a_running_kms_signer_keeps_its_key_when_the_alias_is_rotated(kms_settings, key_kms: KeyCase) -> None:
    backend = KmsBackend.open(kms_settings)
    try:
        old, new, _ = _kms.rotate_key(kms_settings)
        assert old == key_kms.public_key != new
        message = b"signed after the rotation"
        assert Signature.from_bytes(backend.sign(message)).verify(old, message)
    finally:
        backend.close()


class FakeCorruptingBackend:
    """FAKE: an HSM that returns a wrong signature; no real backend can be made to do that."""

    name = "pkcs11"

    def __init__(self) -> None:
        self.key = Keypair()

    def public_key(self) -> Pubkey:
        return self.key.pubkey()

    def sign(self, message: bytes) -> bytes:
        return bytes(self.key.sign_message(message + b"!"))

    def close(self) -> None:
        pass


def test_a_signature_that_does_not_verify_is_never_returned(monkeypatch) -> None:
    monkeypatch.setattr(_signer, "open_backend", lambda *a, **k: FakeCorruptingBackend())
    with Runtime(workers=1, name="corrupt"):
        board = HaltBoard()
        board.publish(HaltStatus(state="ARMED", epoch=0, halted=False, factor=1.0))  # no kill switch here
        ref = Signer.start(board, KeySettings(name="k"))
        result = ref.ask(SignRequest(trade_id="t", payload=b"message"), timeout=5)
        assert result.signature is None and "does not verify" in result.refused
        health = ref.ask(GetSignerHealth(), timeout=5)
        assert (health.signed, health.errors, health.refused) == (0, 1, 0)
