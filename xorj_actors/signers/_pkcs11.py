"""PKCS#11 backend: one Ed25519 key pair per vault, generated inside the token, never extractable.

Vault ``v``'s pair is labelled ``<label_prefix>v`` (both halves carry the label).

python-pkcs11 with SoftHSM2 is not thread-safe: every call into a token must come from one
thread (the Signer actor's dedicated thread, or the ``keys`` command's main thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PinIncorrect, PKCS11Error
from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import Pkcs11Settings

__all__ = ["Pkcs11Backend", "init_keys", "key_label", "show_keys"]

#: DER OID of Ed25519 (RFC 8410), the EC_PARAMS of an EC_EDWARDS key.
_ED25519_PARAMS = bytes.fromhex("06032b6570")

# A pkcs11.lib calls C_Finalize when it is garbage-collected, which closes every session of the
# process on that module: keep exactly one per module for the life of the process.
_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()


def _lib(module: str) -> Any:
    with _LIBS_LOCK:
        lib = _LIBS.get(module)
        if lib is None:
            try:
                lib = _LIBS[module] = pkcs11.lib(module)
            except (PKCS11Error, OSError, RuntimeError) as exc:
                raise SignerError(f"pkcs11: cannot load module {module}: {exc}") from None
        return lib


def _open_session(settings: Pkcs11Settings, environ: Mapping[str, str]) -> Any:
    pin = environ.get(settings.pin_env)
    if not pin:
        raise SignerError(f"pkcs11: the token PIN is missing: set the environment variable {settings.pin_env}")
    where = f"pkcs11 token {settings.token_label!r}"
    try:
        token = _lib(settings.module).get_token(token_label=settings.token_label)
        return token.open(user_pin=pin, rw=True)
    except NoSuchToken:
        raise SignerError(f"{where}: no such token in {settings.module}") from None
    except PinIncorrect:
        raise SignerError(f"{where}: wrong PIN (from {settings.pin_env})") from None
    except PKCS11Error as exc:
        raise SignerError(f"{where}: cannot log in: {type(exc).__name__} {exc}") from None


@contextmanager
def _session(settings: Pkcs11Settings, environ: Mapping[str, str]) -> Iterator[Any]:
    session = _open_session(settings, environ)
    try:
        yield session
    except PKCS11Error as exc:
        raise SignerError(f"pkcs11 token {settings.token_label!r}: {type(exc).__name__} {exc}") from None
    finally:
        session.close()


def _pubkey(public: Any) -> Pubkey:
    point = bytes(public[Attribute.EC_POINT])
    if len(point) == 34 and point[:2] == b"\x04\x20":  # DER OCTET STRING of 32 bytes
        point = point[2:]
    if len(point) != 32:
        raise SignerError(f"pkcs11: unexpected EC_POINT of {len(point)} bytes for an Ed25519 key")
    return Pubkey.from_bytes(point)


def _find(session: Any, cls: ObjectClass, label: str) -> Any | None:
    try:
        return session.get_key(object_class=cls, key_type=KeyType.EC_EDWARDS, label=label)
    except NoSuchKey:
        return None


def _key_pair(session: Any, label: str) -> tuple[Any, Any]:
    private = _find(session, ObjectClass.PRIVATE_KEY, label)
    public = _find(session, ObjectClass.PUBLIC_KEY, label)
    if private is None or public is None:
        raise SignerError(f"pkcs11: no Ed25519 key pair labelled {label!r} in the token; create it with `keys init`")
    return private, public


def _generate(session: Any, label: str) -> Pubkey:
    public, _ = session.generate_keypair(
        KeyType.EC_EDWARDS,
        mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        store=True,
        label=label,
        public_template={Attribute.EC_PARAMS: _ED25519_PARAMS},
        private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    return _pubkey(public)


def key_label(settings: Pkcs11Settings, vault: str) -> str:
    """The label of vault ``vault``'s key pair in the token."""
    return f"{settings.label_prefix}{vault}"


def _vault_key(session: Any, settings: Pkcs11Settings, vault: str) -> tuple[Any, Pubkey]:
    """The private key handle and public key of ``vault``; refuses a key that could leave the token."""
    label = key_label(settings, vault)
    private, public = _key_pair(session, label)
    if not private[Attribute.SENSITIVE] or private[Attribute.EXTRACTABLE]:
        raise SignerError(f"pkcs11: key {label!r} is extractable or not sensitive: it could leave the HSM")
    return private, _pubkey(public)


class Pkcs11Backend:
    """A logged-in session on one token and the handles of the vault keys found in it so far."""

    name = "pkcs11"

    def __init__(self, session: Any, settings: Pkcs11Settings) -> None:
        self._session = session
        self._settings = settings
        self._keys: dict[str, tuple[Any, Pubkey]] = {}

    @classmethod
    def open(cls, settings: Pkcs11Settings, environ: Mapping[str, str]) -> Pkcs11Backend:
        """Log in to the token (one login per process); keys are found per vault on first use."""
        return cls(_open_session(settings, environ), settings)

    def _key(self, vault: str) -> tuple[Any, Pubkey]:
        found = self._keys.get(vault)
        if found is None:
            if self._session is None:
                raise SignerError("pkcs11: the session is closed")
            try:
                found = self._keys[vault] = _vault_key(self._session, self._settings, vault)
            except PKCS11Error as exc:
                raise SignerError(f"pkcs11: key of {vault}: {type(exc).__name__} {exc}") from None
        return found

    def public_key(self, vault: str) -> Pubkey:
        return self._key(vault)[1]

    def sign(self, vault: str, message: bytes) -> bytes:
        private = self._key(vault)[0]
        try:
            return bytes(private.sign(message, mechanism=Mechanism.EDDSA))
        except PKCS11Error as exc:
            raise SignerError(f"pkcs11: sign failed: {type(exc).__name__} {exc}") from None

    def close(self) -> None:
        session, self._session = self._session, None
        self._keys.clear()
        if session is not None:
            session.close()


# -- the key ceremony (``xorj-actors keys``) ----------------------------------------------------


def init_keys(
    settings: Pkcs11Settings, environ: Mapping[str, str], vaults: Sequence[str]
) -> list[tuple[str, Pubkey | None, str]]:
    """Generate each vault's key pair inside the token, one session for all of them.

    A vault whose label is taken keeps its key: (vault, None, reason). Otherwise (vault, public
    key, ""). Never replaces a key.
    """
    out: list[tuple[str, Pubkey | None, str]] = []
    with _session(settings, environ) as session:
        for vault in vaults:
            label = key_label(settings, vault)
            try:
                if _find(session, ObjectClass.PRIVATE_KEY, label) or _find(session, ObjectClass.PUBLIC_KEY, label):
                    out.append((vault, None, f"a key labelled {label!r} already exists"))
                    continue
                out.append((vault, _generate(session, label), ""))
            except PKCS11Error as exc:  # recorded per vault: the others are done or refused alone
                out.append((vault, None, f"pkcs11: {type(exc).__name__} {exc}"))
    return out


def show_keys(
    settings: Pkcs11Settings, environ: Mapping[str, str], vaults: Sequence[str]
) -> list[tuple[str, Pubkey | None, str]]:
    """Each vault's public key, or (vault, None, why there is none)."""
    out: list[tuple[str, Pubkey | None, str]] = []
    with _session(settings, environ) as session:
        for vault in vaults:
            try:
                out.append((vault, _vault_key(session, settings, vault)[1], ""))
            except (SignerError, PKCS11Error) as exc:
                out.append((vault, None, str(exc)))
    return out
