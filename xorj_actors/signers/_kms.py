"""AWS KMS backend: an ``ECC_NIST_EDWARDS25519`` key; signing happens inside KMS.

``ED25519_SHA_512`` with ``MessageType=RAW`` is pure Ed25519 (a valid Solana signature); the
``_PH_`` variant is not. Credentials come from the standard AWS environment variables.
"""

from __future__ import annotations

import time
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import KmsSettings

__all__ = ["KmsBackend", "init_key", "rotate_key", "show_key"]

_KEY_SPEC = "ECC_NIST_EDWARDS25519"
_ALGORITHM = "ED25519_SHA_512"
#: KMS signs RAW messages of at most this many bytes.
MAX_MESSAGE_BYTES = 4096


def _client(settings: KmsSettings) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
    )
    return boto3.client("kms", endpoint_url=settings.endpoint_url or None, region_name=settings.region, config=config)


def _call(what: str, fn: Any, *, missing_ok: bool = False, **kwargs: Any) -> Any:
    """``fn(**kwargs)`` with every AWS failure as a :class:`SignerError`; None if missing and ok."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        if missing_ok and err.get("Code") == "NotFoundException":
            return None
        raise SignerError(f"kms {what}: {err.get('Code', 'error')}: {err.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise SignerError(f"kms {what}: {type(exc).__name__}: {exc}") from None


def _public_key(client: Any, key_id: str) -> Pubkey:
    reply = _call(f"GetPublicKey {key_id}", client.get_public_key, KeyId=key_id)
    if reply.get("KeySpec") != _KEY_SPEC:
        raise SignerError(f"kms: key {key_id} is {reply.get('KeySpec')}, not {_KEY_SPEC}")
    der = bytes(reply["PublicKey"])
    if len(der) != 44:  # SubjectPublicKeyInfo of Ed25519: 12-byte header + 32-byte key
        raise SignerError(f"kms: unexpected public key of {len(der)} bytes for {key_id}")
    return Pubkey.from_bytes(der[-32:])


class KmsBackend:
    """A KMS client and one key id; no key material is ever fetched but the public key."""

    name = "kms"

    def __init__(self, client: Any, key_id: str, public_key: Pubkey) -> None:
        self._client = client
        self._key_id = key_id
        self._public_key = public_key

    @classmethod
    def open(cls, settings: KmsSettings) -> KmsBackend:
        client = _client(settings)
        try:
            # Sign with the key's own ARN: an alias retargeted by a rotation must not switch the
            # key under a running signer whose public key was checked at start.
            meta = _call(f"DescribeKey {settings.key_id}", client.describe_key, KeyId=settings.key_id)["KeyMetadata"]
            if meta.get("KeyState") != "Enabled":
                raise SignerError(f"kms: key {settings.key_id} is {meta.get('KeyState')}, not Enabled")
            return cls(client, meta["Arn"], _public_key(client, meta["Arn"]))
        except BaseException:
            client.close()
            raise

    def public_key(self) -> Pubkey:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE_BYTES:
            raise SignerError(f"kms: message of {len(message)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
        reply = _call(
            "Sign",
            self._client.sign,
            KeyId=self._key_id,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm=_ALGORITHM,
        )
        signature = bytes(reply["Signature"])
        if len(signature) != 64:
            raise SignerError(f"kms: Sign returned {len(signature)} bytes, not a 64-byte Ed25519 signature")
        return signature

    def close(self) -> None:
        self._client.close()


# -- the key ceremony (``xorj-actors keys``) ----------------------------------------------------


def _alias(settings: KmsSettings) -> str:
    if not settings.key_id.startswith("alias/"):
        raise SignerError(f"kms: key_id must be an alias (alias/...) to create or rotate keys, not {settings.key_id!r}")
    return settings.key_id


def _create(client: Any, description: str) -> str:
    reply = _call(
        "CreateKey", client.create_key, KeySpec=_KEY_SPEC, KeyUsage="SIGN_VERIFY", Description=description
    )
    return reply["KeyMetadata"]["KeyId"]


def init_key(settings: KmsSettings) -> Pubkey:
    """Create the key and point ``key_id`` (an alias) at it; refuses if the alias exists."""
    alias = _alias(settings)
    client = _client(settings)
    try:
        if _call(f"DescribeKey {alias}", client.describe_key, missing_ok=True, KeyId=alias) is not None:
            raise SignerError(f"kms: {alias} already exists; use `keys rotate`")
        key_id = _create(client, f"xorj vault authority ({alias})")
        _call(f"CreateAlias {alias}", client.create_alias, AliasName=alias, TargetKeyId=key_id)
        return _public_key(client, key_id)
    finally:
        client.close()


def show_key(settings: KmsSettings) -> Pubkey:
    client = _client(settings)
    try:
        return _public_key(client, settings.key_id)
    finally:
        client.close()


def rotate_key(settings: KmsSettings) -> tuple[Pubkey, Pubkey, str]:
    """Create a new key, retarget the alias to it; the old key stays enabled under a new alias.

    Returns (old public key, new public key, the old key's alias ``<alias>-retired-<UTC time>``).
    """
    alias = _alias(settings)
    client = _client(settings)
    try:
        old_id = _call(f"DescribeKey {alias}", client.describe_key, KeyId=alias)["KeyMetadata"]["KeyId"]
        old = _public_key(client, old_id)
        retired = f"{alias}-retired-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        _call(f"CreateAlias {retired}", client.create_alias, AliasName=retired, TargetKeyId=old_id)
        new_id = _create(client, f"xorj vault authority ({alias}), replaces {old_id}")
        _call(f"UpdateAlias {alias}", client.update_alias, AliasName=alias, TargetKeyId=new_id)
        return old, _public_key(client, new_id), retired
    finally:
        client.close()
