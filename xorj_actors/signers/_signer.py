"""The Signer actor: one key store (a key per vault), its backend on the actor's own thread,
and the halt discipline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from solders.signature import Signature

from supervisors import Message
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt
from xorj_actors.signers._backend import Backend, SignerError, open_backend
from xorj_actors.signers._vault_keys import VaultKeys
from xorj_actors.signers.settings import KeySettings

__all__ = [
    "RESULTS",
    "FindVaultKey",
    "GetSignerHealth",
    "SignRequest",
    "SignResult",
    "Signer",
    "SignerHealth",
    "VaultKeyFound",
    "signer_name",
]

#: The ``result`` label of ``xorj_hsm_operations_total``: signed, backend failed, refused.
RESULTS: tuple[str, ...] = ("ok", "error", "refused")


def signer_name(key_name: str) -> str:
    """The runtime name of the Signer actor of key store ``key_name``."""
    return f"signer:{key_name}"


class SignRequest(Message):
    """Sign ``payload`` (a serialized transaction message) for trade ``trade_id`` with the key of
    vault ``vault_id`` (its authority: no other vault's key ever signs for it)."""

    trade_id: str
    vault_id: str
    payload: bytes
    #: The trade only lowers exposure (a flatten's sell): signable in the kill switch's REDUCING mode.
    reduces_exposure: bool = False
    #: Cluster: the holding of the vault's lease the trade began under (``LeaseToken.tenure``);
    #: a signer with a fence signs only while the fence still grants that very holding.
    lease_tenure: int = 0


class SignResult(Message):
    """A signature, or the reason there is none, and what the signer saw when it decided.

    ``signed_at_ns`` is the signer's own wall clock (``time.time_ns``), read *before* the halt
    board; ``halt_epoch`` and ``halt_state`` are the board's as the signer checked them. The kill
    switch records a halt's ``triggered_at`` only after the board shows it, so a signature made
    at epoch E carries a time earlier than the halt that opened epoch E + 1 (docs/SIGNERS.md).
    """

    trade_id: str
    signature: bytes | None
    refused: str | None  # the reason, when no signature was made
    signed_at_ns: int = 0
    halt_epoch: int = -1
    halt_state: str = ""


class FindVaultKey(Message):
    """Find vault ``vault_id``'s key in the store and publish it (a vault the start did not load)."""

    vault_id: str


class VaultKeyFound(Message):
    """The answer to :class:`FindVaultKey`: the vault's authority (base58), or why there is none."""

    vault_id: str
    public_key: str | None
    reason: str | None = None


class GetSignerHealth(Message):
    """Ask a signer for its :class:`SignerHealth` (for ``/health/ready``)."""


class SignerHealth(Message):
    key_name: str
    backend: str
    #: How many vault keys this store has shown (published on its :class:`VaultKeys`).
    vault_keys: int
    #: The store is open (its start found every configured vault's key).
    ready: bool
    #: False when the last signing attempt failed in the backend.
    ok: bool
    error: str | None
    halted: bool
    signed: int
    errors: int
    refused: int


class Signer(Participant):
    """One key store, one key per vault. Refuses the moment the kill switch decides to halt.

    It opens its backend in ``on_start`` on its dedicated thread (PKCS#11 sessions are
    thread-affine), finds the key of every vault in ``vaults`` and publishes their public keys on
    ``keys``; it fails its start, fail closed, when the backend cannot be opened, refuses this
    environment, or lacks a vault's key. A request names its vault, and only that vault's key
    signs it. It checks the halt board as well as its own halted flag before every signature, so
    a signature queued behind the Halt message is refused too, and verifies every signature
    against the vault's published key before returning it.

    Args:
        board: the halt board.
        key: this key store's settings.
        keys: the board this store's vault keys are published on.
        vaults: the vaults whose keys must be there at start (others are found on first use).
        environment: ``engine.environment`` (the dev key is refused in production).
        environ: where secrets (the PKCS#11 PIN) are read; default: empty.
        data_dir: base of the dev key's relative path.
        on_operation: called with (backend, result) per request, for
            ``xorj_hsm_operations_total``; ``result`` is one of :data:`RESULTS`.
        fence: cluster mode: vault id -> its lease token, or why there is none (the engine's
            ``Fence.fence``). Checked right before the key signs, on this thread: a node paused
            after the executor's own check signs nothing once its lease is gone.
    """

    role: ClassVar[str] = "signer"
    dedicated_thread: ClassVar[bool] = True  # PKCS#11 sessions are thread-affine

    def __init__(
        self,
        board: HaltBoard,
        key: KeySettings,
        keys: VaultKeys,
        vaults: Sequence[str] = (),
        *,
        environment: str = "development",
        environ: Mapping[str, str] | None = None,
        data_dir: Path = Path("."),
        on_operation: Callable[[str, str], None] | None = None,
        fence: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__(board)
        self._fence = fence
        self.key = key
        self.key_name = key.name
        self.keys = keys
        self._vaults = tuple(vaults)
        self._environment = environment
        self._environ = dict(environ or {})
        self._data_dir = data_dir
        self._on_operation = on_operation
        self._backend: Backend | None = None
        self.counts = dict.fromkeys(RESULTS, 0)
        self.last_error: str | None = None

    def on_start(self) -> None:
        backend = open_backend(
            self.key, environment=self._environment, environ=self._environ, data_dir=self._data_dir
        )
        try:
            found = {}
            for vault in self._vaults:
                try:
                    found[vault] = backend.public_key(vault)
                except SignerError as exc:  # the first one fails the start: no guessing past it
                    raise SignerError(
                        f"{self.key_name}: {vault}: {exc} (create missing vault keys with "
                        f"`xorj-actors keys init --key {self.key_name} --vaults ...`)"
                    ) from None
            try:
                self.keys.publish(found)
            except ValueError as exc:  # a vault's key is not the one its accounts belong to
                raise SignerError(f"{self.key_name}: {exc}; refusing to sign with it") from None
        except BaseException:
            backend.close()
            raise
        self._backend = backend
        logger.info("{}: {} store ready with {} vault keys", self.name, backend.name, len(found))
        # Findable only once it can sign: the executor asks whoever holds this name.
        self.runtime.register_name(signer_name(self.key_name), self.actor_ref)
        super().on_start()  # only a signer that can sign registers for the halt protocol

    def on_terminate(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - the actor is gone either way
                logger.exception("{}: closing the {} backend failed", self.key_name, backend.name)

    def on_halt(self, halt: Halt) -> int:
        return 0  # a signature is never left half-made

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SignRequest):
            return self._sign(message)
        if isinstance(message, GetSignerHealth):
            return self.health()
        if isinstance(message, FindVaultKey):
            return self._find(message.vault_id)
        return super().on_receive(message)

    def health(self) -> SignerHealth:
        """This signer's health (also readable without a message, e.g. by a scrape)."""
        return SignerHealth(
            key_name=self.key_name,
            backend=self.key.backend,
            vault_keys=len(tuple(self.keys.known())),
            ready=self._backend is not None,
            ok=self.last_error is None,
            error=self.last_error,
            halted=self.halted or self.board.status.halted,
            signed=self.counts["ok"],
            errors=self.counts["error"],
            refused=self.counts["refused"],
        )

    def _find(self, vault: str) -> VaultKeyFound:
        if self._backend is None:
            return VaultKeyFound(vault_id=vault, public_key=None, reason=f"{self.key_name}: no key backend open")
        try:
            key = self._backend.public_key(vault)
            self.keys.publish({vault: key})  # on this actor's thread: it is the board's one writer
        except (SignerError, ValueError) as exc:
            return VaultKeyFound(vault_id=vault, public_key=None, reason=f"{self.key_name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a backend failure is an answer, never a crash
            return VaultKeyFound(vault_id=vault, public_key=None, reason=f"{self.key_name}: {type(exc).__name__}: {exc}")
        return VaultKeyFound(vault_id=vault, public_key=str(key))

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        if self._on_operation is not None:
            self._on_operation(self.key.backend, result)

    def _refuse(self, request: SignRequest, reason: str) -> SignResult:
        self._count("refused")
        return SignResult(trade_id=request.trade_id, signature=None, refused=reason)

    def _sign(self, request: SignRequest) -> SignResult:
        # The time first, then the board: whatever the board shows was published before this
        # instant was over, so a halt that opened a later epoch is recorded after it.
        signed_at_ns = time.time_ns()
        status = self.board.status
        if self.halted or status.halted:
            # While halted, only REDUCING lets anything through, and only exposure-reducing
            # trades; the board is published before any Halt is sent, so it is never behind us.
            reducing = status.reducing and status.halted and self.halt_epoch <= status.epoch
            if not reducing:
                return self._refuse(request, "halted: the kill switch is not armed")
            if not request.reduces_exposure:
                return self._refuse(request, "halted: REDUCING signs only trades that reduce exposure")
        if self._backend is None:
            return self._refuse(request, f"{self.key_name}: no key backend open")
        if not request.payload:
            return self._refuse(request, f"{self.key_name}: empty payload")
        vault = request.vault_id
        if self._fence is not None:
            token = self._fence(vault)
            if not isinstance(getattr(token, "revision", None), int):  # a FenceRefusal
                return self._refuse(request, f"fenced ({token}): this node does not hold {vault}'s lease")
            if getattr(token, "tenure", 0) != request.lease_tenure:
                return self._refuse(request, f"fenced: {vault}'s lease was lost and taken again since the trade began")
        try:
            expected = self.keys.get(vault)
            actual = self._backend.public_key(vault)
            if expected is None:
                self.keys.publish({vault: actual})  # on this actor's thread: it is the board's one writer
            elif actual != expected:
                raise SignerError(f"{vault}: the store's key is {actual}, not the published {expected}")
            signature = self._backend.sign(vault, request.payload)
            # A wrong-key or corrupted signature must never reach the chain as ours.
            if not Signature.from_bytes(signature).verify(actual, request.payload):
                raise SignerError(f"{self._backend.name}: returned a signature that does not verify")
        except Exception as exc:  # noqa: BLE001 - any failure is a counted error, never a signature
            if not isinstance(exc, SignerError):
                logger.exception("{}: unexpected signing failure", self.key_name)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._count("error")
            return SignResult(trade_id=request.trade_id, signature=None, refused=f"{self.key_name}: {exc}")
        self.last_error = None
        self._count("ok")
        return SignResult(
            trade_id=request.trade_id,
            signature=signature,
            refused=None,
            signed_at_ns=signed_at_ns,
            halt_epoch=status.epoch,
            halt_state=status.state,
        )
