"""AWS KMS backend: one ``ECC_NIST_EDWARDS25519`` key per vault, addressed by its alias
``alias/<alias_prefix><vault id>``; signing happens inside KMS.

``ED25519_SHA_512`` with ``MessageType=RAW`` is pure Ed25519 (a valid Solana signature); the
``_PH_`` variant is not. Credentials come from the standard AWS environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import KmsSettings

__all__ = ["KmsBackend", "KmsRotation", "init_keys", "key_alias", "pending_alias", "show_keys"]

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


def key_alias(settings: KmsSettings, vault: str) -> str:
    """The alias of vault ``vault``'s key."""
    return f"alias/{settings.alias_prefix}{vault}"


def _resolve(client: Any, settings: KmsSettings, vault: str) -> tuple[str, Pubkey]:
    """The ARN and public key of ``vault``'s key (refused unless it is an enabled Ed25519 key)."""
    alias = key_alias(settings, vault)
    meta = _call(f"DescribeKey {alias}", client.describe_key, KeyId=alias)["KeyMetadata"]
    if meta.get("KeyState") != "Enabled":
        raise SignerError(f"kms: key {alias} is {meta.get('KeyState')}, not Enabled")
    return meta["Arn"], _public_key(client, meta["Arn"])


class KmsBackend:
    """A KMS client and the vault keys resolved so far; no key material is fetched but public keys."""

    name = "kms"

    def __init__(self, client: Any, settings: KmsSettings) -> None:
        self._client = client
        self._settings = settings
        self._keys: dict[str, tuple[str, Pubkey]] = {}

    @classmethod
    def open(cls, settings: KmsSettings) -> KmsBackend:
        return cls(_client(settings), settings)

    def _key(self, vault: str) -> tuple[str, Pubkey]:
        # Resolved once, then signed with by ARN: an alias retargeted under a running signer must
        # not switch the key whose public key the vault's accounts belong to.
        found = self._keys.get(vault)
        if found is None:
            found = self._keys[vault] = _resolve(self._client, self._settings, vault)
        return found

    def public_key(self, vault: str) -> Pubkey:
        return self._key(vault)[1]

    def sign(self, vault: str, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE_BYTES:
            raise SignerError(f"kms: message of {len(message)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
        arn = self._key(vault)[0]
        reply = _call(
            "Sign",
            self._client.sign,
            KeyId=arn,
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


def _init_one(client: Any, settings: KmsSettings, vault: str) -> tuple[str, Pubkey | None, str]:
    alias = key_alias(settings, vault)
    if _call(f"DescribeKey {alias}", client.describe_key, missing_ok=True, KeyId=alias) is not None:
        return vault, None, f"{alias} already exists"
    return vault, _create(client, alias, f"xorj vault authority of {vault} ({alias})"), ""


def _create(client: Any, alias: str, description: str) -> Pubkey:
    """A new Ed25519 signing key behind ``alias`` (which must not exist); its public key."""
    reply = _call("CreateKey", client.create_key, KeySpec=_KEY_SPEC, KeyUsage="SIGN_VERIFY", Description=description)
    key_id = reply["KeyMetadata"]["KeyId"]
    _call(f"CreateAlias {alias}", client.create_alias, AliasName=alias, TargetKeyId=key_id)
    return _public_key(client, key_id)


def init_keys(settings: KmsSettings, vaults: Sequence[str]) -> list[tuple[str, Pubkey | None, str]]:
    """Create each vault's key and its alias; a vault whose alias exists keeps its key
    (vault, None, reason). Never retargets an alias."""
    client = _client(settings)
    out: list[tuple[str, Pubkey | None, str]] = []
    try:
        for vault in vaults:
            try:
                out.append(_init_one(client, settings, vault))
            except SignerError as exc:  # recorded per vault: the others are done or refused alone
                out.append((vault, None, str(exc)))
    finally:
        client.close()
    return out


def show_keys(settings: KmsSettings, vaults: Sequence[str]) -> list[tuple[str, Pubkey | None, str]]:
    """Each vault's public key, or (vault, None, why there is none)."""
    client = _client(settings)
    out: list[tuple[str, Pubkey | None, str]] = []
    try:
        for vault in vaults:
            try:
                out.append((vault, _resolve(client, settings, vault)[1], ""))
            except SignerError as exc:
                out.append((vault, None, str(exc)))
    finally:
        client.close()
    return out


# -- rotation (``xorj-actors keys rotate``, docs/SIGNERS.md "Key rotation") -----------------------


def pending_alias(settings: KmsSettings, vault: str) -> str:
    """The alias of vault ``vault``'s next key while a rotation is under way (KMS aliases allow no dots)."""
    return f"{key_alias(settings, vault)}-next"


def _target(client: Any, alias: str) -> dict[str, Any] | None:
    reply = _call(f"DescribeKey {alias}", client.describe_key, missing_ok=True, KeyId=alias)
    return None if reply is None else reply["KeyMetadata"]


def _retired_aliases(client: Any, settings: KmsSettings, vault: str) -> list[tuple[int, str, str]]:
    """(unix time, alias, key id) of every ``<vault alias>-retired-<unix time>``, oldest first."""
    prefix = f"{key_alias(settings, vault)}-retired-"
    out, kwargs = [], {}
    while True:
        page = _call("ListAliases", client.list_aliases, **kwargs)
        for alias in page.get("Aliases", []):
            name = alias.get("AliasName", "")
            if name.startswith(prefix) and name[len(prefix) :].isdigit() and alias.get("TargetKeyId"):
                out.append((int(name[len(prefix) :]), name, alias["TargetKeyId"]))
        if not page.get("Truncated") or not page.get("NextMarker"):
            return sorted(out)
        kwargs = {"Marker": page["NextMarker"]}


class KmsRotation:
    """A rotation's KMS client: the vault's key (signing through :class:`KmsBackend`, as the
    Signer does), its pending key behind ``<vault alias>-next``, and the alias moves."""

    name = "kms"

    def __init__(self, settings: KmsSettings) -> None:
        self._settings = settings
        self._client = _client(settings)
        self._backend = KmsBackend(self._client, settings)

    def state(self, vault: str) -> tuple[Pubkey | None, Pubkey | None, bool]:
        """(the key the vault's alias names, the pending key, whether the swap has begun: the
        vault's alias already names the pending key)."""
        current = _target(self._client, key_alias(self._settings, vault))
        pending = _target(self._client, pending_alias(self._settings, vault))
        pending_key = None if pending is None else _public_key(self._client, pending["Arn"])
        if pending is not None and current is not None and current["KeyId"] == pending["KeyId"]:
            return None, pending_key, True
        return (None if current is None else self._backend.public_key(vault)), pending_key, False

    def make_pending(self, vault: str) -> Pubkey:
        """Create the pending key and its alias (as ``keys init`` does)."""
        alias = pending_alias(self._settings, vault)
        return _create(self._client, alias, f"xorj vault authority of {vault} (pending rotation: {alias})")

    def sign(self, vault: str, message: bytes) -> bytes:
        """Sign with the key the vault's alias names (the old key, before the swap)."""
        return self._backend.sign(vault, message)

    def swap(self, vault: str) -> tuple[str, Pubkey | None, Pubkey]:
        """Alias the old key ``<vault alias>-retired-<unix time>``, retarget the vault's alias to
        the pending key, disable the old key (never deleted), drop the pending alias; each step
        is skipped when done, so a re-run after a crash finishes it.

        Returns:
            (the retired alias, the old key if KMS still shows it, the vault's key now).
        """
        alias, pending = key_alias(self._settings, vault), pending_alias(self._settings, vault)
        current, nxt = _target(self._client, alias), _target(self._client, pending)
        if nxt is None or current is None:
            raise SignerError(f"kms: {vault} has no pending key {pending} or no key {alias}: nothing to swap")
        old_key: Pubkey | None = None
        if current["KeyId"] != nxt["KeyId"]:
            old_id = current["KeyId"]
            old_key = _public_key(self._client, current["Arn"])
            mine = [name for _, name, key in _retired_aliases(self._client, self._settings, vault) if key == old_id]
            retired = mine[-1] if mine else f"{alias}-retired-{int(time.time())}"
            if not mine:
                _call(f"CreateAlias {retired}", self._client.create_alias, AliasName=retired, TargetKeyId=old_id)
            _call(f"UpdateAlias {alias}", self._client.update_alias, AliasName=alias, TargetKeyId=nxt["KeyId"])
        else:
            found = _retired_aliases(self._client, self._settings, vault)
            if not found:
                raise SignerError(f"kms: {alias} names the pending key but no {alias}-retired-* alias names the old one")
            _, retired, old_id = found[-1]
            try:
                old_key = _public_key(self._client, old_id)
            except SignerError:  # AWS refuses GetPublicKey of a disabled key: a crash after DisableKey
                old_key = None
        _call(f"DisableKey {old_id}", self._client.disable_key, KeyId=old_id)
        _call(f"DeleteAlias {pending}", self._client.delete_alias, AliasName=pending)
        return retired, old_key, _public_key(self._client, nxt["Arn"])

    def close(self) -> None:
        self._client.close()
