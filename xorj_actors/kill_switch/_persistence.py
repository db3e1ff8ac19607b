"""The kill switch on disk: the authenticated state file, and the marker of a halt not yet durable.

The state file is a JSON object, the fields of :class:`PersistedState` plus ``mac``:
HMAC-SHA256, under the state key, of the canonical JSON of the other fields. The engine derives
the state key from the audit HMAC key with domain separation (:func:`derive_state_key`), so an
operator manages no extra secret, and whoever can forge the file can forge the audit log anyway.

Reading never raises: anything short of a well-formed, authentic file is a :class:`FileReading`
with a ``problem``, and the start-up decision (``_start_decision``) turns that into a halt.

The halt marker (``<state file>.halt``) covers the window in which a halt is decided but the
state file cannot be written (the disk refuses, the process is out of descriptors): it is opened
once at start and kept open, so setting it later needs no new descriptor, only a ``pwrite`` of a
fixed-size record into blocks already allocated and an ``fsync``.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path

from loguru import logger

from xorj_actors import strict_json
from xorj_actors.durable_file import atomic_write, fsync_dir
from xorj_actors.kill_switch._state import PersistedState

__all__ = ["FileReading", "HaltMarker", "STANDALONE_STATE_KEY", "StateFile", "derive_state_key", "read_regular"]

STATE_KEY_CONTEXT = b"xorj-actors/kill-switch/state/v1"
#: Used only by a kill switch started without an engine (tests, benchmarks): it authenticates
#: nothing, as anyone can read it here. The engine always passes a key derived from the audit key.
STANDALONE_STATE_KEY = hashlib.sha256(b"xorj-actors/kill-switch/state/standalone").digest()
#: A state file is a few hundred bytes; more is not ours.
MAX_FILE_BYTES = 256 * 1024


def derive_state_key(audit_key: bytes) -> bytes:
    """The state file's HMAC key: HMAC-SHA256(audit key, "xorj-actors/kill-switch/state/v1")."""
    return hmac.new(audit_key, STATE_KEY_CONTEXT, hashlib.sha256).digest()


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file. Never blocks: a FIFO put in its place is
    refused (OSError), not waited on, so the kill switch always starts."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _canonical(data: dict[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class FileReading:
    """What the state file said: nothing (absent), a state, or why it cannot be trusted."""

    present: bool
    state: PersistedState | None = None
    #: Unreadable, not strict JSON, a wrong field, or not authentic (the MAC does not verify).
    problem: str | None = None
    #: Authentic under the key of a retired audit key epoch: to be rewritten under the current one.
    retired_key: bool = False


class StateFile:
    """The kill switch's state on disk: temp file, fsync, rename, fsync of the directory."""

    def __init__(self, path: Path, key: bytes, retired: tuple[bytes, ...] = ()) -> None:
        self.path = path
        #: The current key first (it writes), then the retired epochs' (they only read): one tuple,
        #: swapped whole by :meth:`rekey`.
        self._keys = (key, *retired)

    def rekey(self, key: bytes, retired: tuple[bytes, ...] = ()) -> None:
        """Write under ``key`` from now on; read under it or a ``retired`` one (an audit key rotation)."""
        self._keys = (key, *retired)

    def _mac(self, data: dict[str, object], key: bytes | None = None) -> str:
        return hmac.new(self._keys[0] if key is None else key, _canonical(data), hashlib.sha256).hexdigest()

    def read(self) -> FileReading:
        """Read and authenticate the file; never raises."""
        try:
            raw = read_regular(self.path, MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return FileReading(present=False)
        except OSError as exc:
            return FileReading(present=True, problem=f"unreadable ({exc.strerror or type(exc).__name__})")
        if len(raw) > MAX_FILE_BYTES:
            return FileReading(present=True, problem=f"larger than {MAX_FILE_BYTES} bytes")
        try:
            data = strict_json.loads(raw)
        except ValueError as exc:
            return FileReading(present=True, problem=f"corrupt: {str(exc)[:200]}")
        if not isinstance(data, dict):
            return FileReading(present=True, problem="corrupt: not a JSON object")
        mac = data.pop("mac", None)
        if not isinstance(mac, str):
            return FileReading(present=True, problem="not authenticated: no mac")
        keys = self._keys
        try:
            which = next((i for i, k in enumerate(keys) if hmac.compare_digest(self._mac(data, k), mac)), None)
        except (TypeError, ValueError) as exc:
            return FileReading(present=True, problem=f"corrupt: {exc}")
        if which is None:
            return FileReading(present=True, problem="not authenticated: the mac does not verify")
        try:
            return FileReading(present=True, state=PersistedState.from_dict(data), retired_key=which > 0)
        except ValueError as exc:
            return FileReading(present=True, problem=f"corrupt: {exc}")

    def save(self, state: PersistedState) -> None:
        """Replace the file atomically; raises OSError if it cannot be made durable."""
        data = replace(state, updated_at=time.time()).to_dict()
        data["mac"] = self._mac(data)
        atomic_write(self.path, _canonical(data))


_MARKED_EPOCH = re.compile(r"epoch (\d{1,18}) ")


def marked_epoch(held: str) -> int:
    """The epoch a set marker names (0 if its record is torn: it still halts)."""
    m = _MARKED_EPOCH.match(held)
    return int(m[1]) if m else 0


class HaltMarker:
    """A fixed-size record, blank when clear, naming a halt that is not durable yet.

    :meth:`open` creates the file (at start, while descriptors are plentiful) and keeps its
    descriptor; :meth:`set` and :meth:`clear` write through it. A restart that finds it set
    starts halted, whatever the state file says.
    """

    SIZE = 512

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> str | None:
        """Open (creating) and keep the marker; return what it holds if set, else None.

        Raises:
            OSError: it cannot be opened or prepared.
        """
        self.close()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            held = os.pread(fd, self.SIZE * 2, 0).decode("utf-8", errors="replace").strip(" \n\x00")
            if not held and os.fstat(fd).st_size < self.SIZE:  # allocate the record's blocks now
                os.pwrite(fd, b" " * self.SIZE, 0)
                os.fsync(fd)
                fsync_dir(self.path.parent)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return held or None

    def set(self, text: str) -> None:
        """Mark a halt as not durable; raises OSError (or if the marker was never opened).

        ``text`` starts ``epoch N ``: a restart continues the epochs past it (:func:`marked_epoch`).
        """
        self._write(text.encode("utf-8", errors="replace")[: self.SIZE - 1] + b"\n")

    def clear(self) -> None:
        self._write(b"")

    def _write(self, record: bytes) -> None:
        if self._fd is None:
            raise OSError(f"halt marker {self.path} is not open")
        os.pwrite(self._fd, record.ljust(self.SIZE, b" "), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as exc:  # already closed under us: nothing left to release
                logger.warning("kill switch: closing the halt marker: {}", exc)
            self._fd = None
