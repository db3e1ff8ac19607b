"""PKCS#11 backend: one Ed25519 key pair per vault, generated inside the token, never extractable.

Vault ``v``'s pair is labelled ``<label_prefix>v`` (both halves carry the label).

python-pkcs11 with SoftHSM2 is not thread-safe: every call into a token must come from one
thread (the Signer actor's dedicated thread, or the ``keys`` command's main thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PinIncorrect, PKCS11Error
from solders.pubkey import Pubkey

from xorj_actors.signers._backend import SignerError
from xorj_actors.signers.settings import Pkcs11Settings

__all__ = ["Pkcs11Backend", "Pkcs11Rotation", "init_keys", "key_label", "pending_label", "show_keys"]

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

    def close_key(self, vault: str) -> None:
        """Forget the handle of ``vault``'s key (its label now names another key: a rotation)."""
        self._keys.pop(vault, None)

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


# -- rotation (``xorj-actors keys rotate``, docs/SIGNERS.md "Key rotation") -----------------------


def pending_label(settings: Pkcs11Settings, vault: str) -> str:
    """The label of vault ``vault``'s next key while a rotation is under way."""
    return f"{key_label(settings, vault)}.next"


def _retired(session: Any, label: str) -> tuple[str, Any] | None:
    """The newest public half labelled ``<label>.retired.<unix time>`` and its label, if any."""
    prefix = f"{label}.retired."
    newest: tuple[int, str, Any] | None = None
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS}):
        name = obj[Attribute.LABEL]
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            ts = int(name[len(prefix) :])
            if newest is None or ts > newest[0]:
                newest = (ts, name, obj)
    return None if newest is None else (newest[1], newest[2])


class Pkcs11Rotation:
    """One logged-in session for a rotation: the vault's key (signing through
    :class:`Pkcs11Backend`, as the Signer does), its pending key, and the relabelling."""

    name = "pkcs11"

    def __init__(self, settings: Pkcs11Settings, environ: Mapping[str, str]) -> None:
        self._settings = settings
        self._session = _open_session(settings, environ)
        self._backend = Pkcs11Backend(self._session, settings)

    def _halves(self, label: str) -> tuple[Any | None, Any | None]:
        return _find(self._session, ObjectClass.PRIVATE_KEY, label), _find(self._session, ObjectClass.PUBLIC_KEY, label)

    def state(self, vault: str) -> tuple[Pubkey | None, Pubkey | None, bool]:
        """(the key under the vault's label, the pending key, whether the swap has begun).

        The swap starts only once the move is done, and retires both old halves before promoting
        either pending half: a vault label with a missing half beside a pending key is a swap
        under way, never a key to sign with.
        """
        label, pending = key_label(self._settings, vault), pending_label(self._settings, vault)
        try:
            cur_priv, cur_pub = self._halves(label)
            next_priv, next_pub = self._halves(pending)
            if (next_priv or next_pub) and not (cur_priv and cur_pub):
                return None, _pubkey(next_pub if next_pub is not None else cur_pub), True
            current = self._backend.public_key(vault) if cur_priv and cur_pub else None
            if (next_priv is None) != (next_pub is None):
                raise SignerError(f"pkcs11: only one half of the pending key {pending!r} is in the token; remove it")
            return current, _pubkey(next_pub) if next_pub is not None else None, False
        except PKCS11Error as exc:
            raise SignerError(f"pkcs11: key of {vault}: {type(exc).__name__} {exc}") from None

    def make_pending(self, vault: str) -> Pubkey:
        """Generate the pending key inside the token (sensitive, never extractable, as ``keys init``)."""
        try:
            return _generate(self._session, pending_label(self._settings, vault))
        except PKCS11Error as exc:
            raise SignerError(f"pkcs11: cannot generate the pending key of {vault}: {type(exc).__name__} {exc}") from None

    def sign(self, vault: str, message: bytes) -> bytes:
        """Sign with the key under the vault's label (the old key, before the swap)."""
        return self._backend.sign(vault, message)

    def swap(self, vault: str) -> tuple[str, Pubkey | None, Pubkey]:
        """Give the old pair the label ``<label>.retired.<unix time>`` and the pending pair the
        vault's label; each step is skipped when done, so a re-run after a crash finishes it.

        Returns:
            (the retired label, the old key, the vault's key now).
        """
        label, pending = key_label(self._settings, vault), pending_label(self._settings, vault)
        try:
            cur_priv, cur_pub = self._halves(label)
            next_priv, next_pub = self._halves(pending)
            if cur_pub is not None and next_pub is not None:  # the old public half, still under the label
                cur_pub[Attribute.LABEL] = f"{label}.retired.{int(time.time())}"
                cur_pub = None
            found = _retired(self._session, label)
            retired = found[0] if found else f"{label}.retired.{int(time.time())}"
            if cur_priv is not None and next_priv is not None:
                cur_priv[Attribute.LABEL] = retired
                cur_priv = None
            if cur_pub is None and next_pub is not None:
                next_pub[Attribute.LABEL] = label
            if cur_priv is None and next_priv is not None:
                next_priv[Attribute.LABEL] = label
            self._backend.close_key(vault)
            now = _vault_key(self._session, self._settings, vault)[1]
            return retired, _pubkey(found[1]) if found else None, now
        except PKCS11Error as exc:
            raise SignerError(f"pkcs11: swapping the keys of {vault}: {type(exc).__name__} {exc}") from None

    def close(self) -> None:
        self._backend.close()
