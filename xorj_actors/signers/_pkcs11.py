"""PKCS#11 backend: an Ed25519 key generated inside the token, never extractable.

python-pkcs11 with SoftHSM2 is not thread-safe: every call into a token must come from one
thread (the Signer actor's dedicated thread, or the ``keys`` command's main thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PinIncorrect, PKCS11Error
from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import Pkcs11Settings

__all__ = ["Pkcs11Backend", "init_key", "rotate_key", "show_key"]

#: DER OID of Ed25519 (RFC 8410), the EC_PARAMS of an EC_EDWARDS key.
_ED25519_PARAMS = bytes.fromhex("06032b6570")
_RETIRED = ".retired-"

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


class Pkcs11Backend:
    """A logged-in session on one token and the handle of one private key in it."""

    name = "pkcs11"

    def __init__(self, session: Any, private: Any, public_key: Pubkey) -> None:
        self._session = session
        self._private = private
        self._public_key = public_key

    @classmethod
    def open(cls, settings: Pkcs11Settings, environ: Mapping[str, str]) -> Pkcs11Backend:
        """Log in and find the key pair labelled ``settings.key_label`` (one login per process)."""
        session = _open_session(settings, environ)
        try:
            private, public = _key_pair(session, settings.key_label)
            if not private[Attribute.SENSITIVE] or private[Attribute.EXTRACTABLE]:
                raise SignerError(
                    f"pkcs11: key {settings.key_label!r} is extractable or not sensitive: it could leave the HSM"
                )
            return cls(session, private, _pubkey(public))
        except BaseException as exc:
            session.close()
            if isinstance(exc, PKCS11Error):
                raise SignerError(f"pkcs11: key {settings.key_label!r}: {type(exc).__name__} {exc}") from None
            raise

    def public_key(self) -> Pubkey:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        try:
            return bytes(self._private.sign(message, mechanism=Mechanism.EDDSA))
        except PKCS11Error as exc:
            raise SignerError(f"pkcs11: sign failed: {type(exc).__name__} {exc}") from None

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()


# -- the key ceremony (``xorj-actors keys``) ----------------------------------------------------


def init_key(settings: Pkcs11Settings, environ: Mapping[str, str]) -> Pubkey:
    """Generate the key pair inside the token; refuses if the label is taken."""
    with _session(settings, environ) as session:
        if _find(session, ObjectClass.PRIVATE_KEY, settings.key_label) or _find(
            session, ObjectClass.PUBLIC_KEY, settings.key_label
        ):
            raise SignerError(f"pkcs11: a key labelled {settings.key_label!r} already exists; use `keys rotate`")
        return _generate(session, settings.key_label)


def show_key(settings: Pkcs11Settings, environ: Mapping[str, str]) -> Pubkey:
    """The active key's public key."""
    with _session(settings, environ) as session:
        return _pubkey(_key_pair(session, settings.key_label)[1])


def rotate_key(settings: Pkcs11Settings, environ: Mapping[str, str]) -> tuple[Pubkey, Pubkey, str]:
    """Make a new active key; the old pair is relabelled ``<label>.retired-<UTC time>`` and kept.

    Returns (old public key, new public key, the old pair's new label).
    """
    label = settings.key_label
    with _session(settings, environ) as session:
        old_private, old_public = _key_pair(session, label)
        old = _pubkey(old_public)
        retired = f"{label}{_RETIRED}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        if _find(session, ObjectClass.PUBLIC_KEY, retired) is not None:
            raise SignerError(f"pkcs11: {retired!r} exists already; rotate again in a second")
        # New pair first under a staging label: a failure leaves the active key untouched.
        staging = f"{label}.staging"
        if _find(session, ObjectClass.PUBLIC_KEY, staging) or _find(session, ObjectClass.PRIVATE_KEY, staging):
            raise SignerError(f"pkcs11: {staging!r} is left from an interrupted rotation; inspect and remove it")
        new = _generate(session, staging)
        for obj in (old_private, old_public):
            obj[Attribute.LABEL] = retired
        for obj in _key_pair(session, staging):
            obj[Attribute.LABEL] = label
        return old, new, retired
