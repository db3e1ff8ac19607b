"""Key epoch boundaries, for every reader that acts on an entry (docs/AUDIT.md, "Key epochs").

An entry is valid only under the key of ITS epoch: a retired key verifies entries up to and
including the ``KEY_ROTATION`` entry that retired it, never one after. :func:`build_epochs` is the
pure rule (``audit verify``'s, applied to the rotation entries alone); :func:`read_epochs` reads a
chain's rotation entries (a partial index keeps that cheap) and its first entry.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from xorj_actors.audit._chain import EventType, HmacPads, chain_hash, chain_hmac, entry_bytes, hmac_template
from xorj_actors.audit._keys import KeyRing, fingerprint, rotation_target
from xorj_actors.audit._store import COLUMNS, Store, qualified_table

__all__ = ["EpochMap", "build_epochs", "read_epochs"]

KEY_ROTATION = EventType.KEY_ROTATION.value


@dataclass(frozen=True, slots=True, repr=False)
class EpochMap:
    """A chain's key epochs: epoch ``i`` ends at (and includes) the rotation entry ``ends[i]``
    and its entries verify under ``keys[i]`` (None: a key this process does not hold)."""

    ends: tuple[int, ...] = ()
    keys: tuple[bytes | None, ...] = (None,)
    #: The fingerprint each rotation names as the new key (one per ``ends``).
    rotated_to: tuple[str, ...] = ()
    _pads: tuple[HmacPads | None, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pads", tuple(None if k is None else hmac_template(k) for k in self.keys))

    def key_at(self, sequence: int) -> bytes | None:
        """The only key entry ``sequence`` may verify under (None: not a key this process holds)."""
        return self.keys[bisect.bisect_left(self.ends, sequence)]

    def pads_at(self, sequence: int) -> HmacPads | None:
        """:meth:`key_at`'s HMAC pads (made once per map)."""
        return self._pads[bisect.bisect_left(self.ends, sequence)]

    @property
    def rotations(self) -> tuple[tuple[int, str], ...]:
        """``(sequence, new fingerprint)`` of each rotation, in order."""
        return tuple(zip(self.ends, self.rotated_to))

    @property
    def last_rotation(self) -> tuple[int, str] | None:
        return self.rotations[-1] if self.ends else None

    @property
    def head_key(self) -> bytes | None:
        """The key of the open (last) epoch."""
        return self.keys[-1]

    def prior_key(self, current: bytes) -> bytes | None:
        """The key the chain used just before ``current``: the open epoch's, while a start-up
        rotation to ``current`` is still to be written; else the old key of the last rotation."""
        if self.head_key is not None and self.head_key != current:
            return self.head_key
        return self.keys[-2] if len(self.keys) > 1 else None

    def left(self, key: bytes) -> bool:
        """Whether a rotation of this chain already left ``key`` (a retired epoch's key)."""
        return key in self.keys[:-1]

    def __repr__(self) -> str:  # never the keys
        fps = [None if k is None else fingerprint(k) for k in self.keys]
        return f"EpochMap(ends={self.ends}, keys={fps})"


def build_epochs(ring: KeyRing, rotations: Sequence[tuple], first_key: bytes | None = None) -> EpochMap:
    """The epochs the chain's ``KEY_ROTATION`` rows (``COLUMNS`` order, by sequence) open, under
    ``audit verify``'s rules: each rotation hashes to its stored hash and is MACed under its
    epoch's key, which it names as the old key; no key opens two epochs. The first epoch's key is
    the first rotation's; without one, ``first_key`` (the key the chain's first entry verifies under).

    Raises:
        ValueError: a rotation breaks a rule (a forged or edited rotation: readers fail closed).
    """
    keys: list[bytes | None] = []
    ends: list[int] = []
    key: bytes | None = first_key
    fps: list[str] = []
    for n, row in enumerate(rotations):
        seq, details, prev, h, tag = row[1], row[7], row[8], row[9], row[10]
        if chain_hash(prev, entry_bytes(*row[:8])) != h:
            raise ValueError(f"KEY_ROTATION entry {seq} does not hash to its stored hash: the log was edited")
        if n == 0:
            key = ring.verifying(h, tag)
            if key is None:
                raise ValueError(f"KEY_ROTATION entry {seq} verifies under no known audit key"
                                 f" (known fingerprints: {', '.join(ring.fingerprints())})")
        elif chain_hmac(key, h) != tag:  # type: ignore[arg-type]
            raise ValueError(f"KEY_ROTATION entry {seq} is not MACed under its epoch's key {fingerprint(key)}"  # type: ignore[arg-type]
                             ": written with another epoch's key (an old key after a rotation?)")
        old_fp, new_fp = rotation_target(details)
        if old_fp != fingerprint(key):  # type: ignore[arg-type]
            raise ValueError(f"KEY_ROTATION entry {seq} names the old key {old_fp or '(none)'}, but its epoch's key is"
                             f" {fingerprint(key)}: a forged rotation")  # type: ignore[arg-type]
        new = ring.find(new_fp) if new_fp else None
        if new is not None and (new == key or new in keys):
            raise ValueError(f"KEY_ROTATION entry {seq} rotates back to the key with fingerprint {new_fp}, which an"
                             " earlier epoch already used: a key opens one epoch only")
        keys.append(key)
        ends.append(seq)
        fps.append(new_fp)
        key = new
        if key is None:  # a key this process does not hold: nothing after it can be checked here
            break
    keys.append(key)
    return EpochMap(tuple(ends), tuple(keys), tuple(fps))


def read_epochs(store: Store, ring: KeyRing) -> EpochMap:
    """``store``'s chain's epochs (:func:`build_epochs` over its rotation rows and first entry).

    Raises:
        ValueError: a rotation breaks a rule.
    """
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    # A literal, not a parameter: only then may the planner use the partial index of rotations.
    sql = f"SELECT {cols} FROM {qualified_table(store)} WHERE \"event_type\" = '{KEY_ROTATION}' ORDER BY \"sequence\""
    rotations = tuple(tuple(r) for r in store.db.execute_sql(sql).fetchall())
    first_key = None
    if not rotations:
        first = store.db.execute_sql(f'SELECT "hash", "hmac" FROM {qualified_table(store)} WHERE "sequence" = 1').fetchone()
        first_key = None if first is None else ring.verifying(first[0], first[1])
    return _cached(ring, rotations, first_key)


@functools.lru_cache(maxsize=64)
def _cached(ring: KeyRing, rotations: tuple[tuple, ...], first_key: bytes | None) -> EpochMap:
    """Built once per chain state: a new rotation changes ``rotations`` and so rebuilds it."""
    return build_epochs(ring, rotations, first_key)


def start_key(store: Store, ring: KeyRing, head_sequence: int, head_hash: str, head_hmac: str) -> bytes:
    """The key the entry after the head must be MACed with: the open epoch's (:func:`read_epochs`),
    if the head verifies under its own epoch's key.

    Raises:
        ValueError: a rotation breaks a rule, or the head verifies under no known key, under a key
            a rotation already left (a rollback: the rotation's epoch cut off and a head forged
            with the retired key), or opens an epoch whose key is not known (messages name
            fingerprints, never keys).
    """
    epochs = read_epochs(store, ring)
    key = ring.verifying(head_hash, head_hmac)
    if key is None:
        raise ValueError(f"does not verify under any known audit key (known fingerprints: {', '.join(ring.fingerprints())}):"
                         " a wrong HMAC key, a retired key missing from the retired keys, or a tampered log")
    if key != epochs.key_at(head_sequence):
        left = f", which the KEY_ROTATION entry {epochs.ends[epochs.keys.index(key)]} already left" if epochs.left(key) else ""
        raise ValueError(f"is MACed under the key with fingerprint {fingerprint(key)}{left}, not under its epoch's key:"
                         " an entry forged with a retired key, or the log rolled back past a rotation; refusing to"
                         " write after it")
    if epochs.head_key is None:
        fp = epochs.last_rotation[1] if epochs.last_rotation else "(none)"
        raise ValueError(f"is in the epoch of the key with fingerprint {fp or '(none)'}, which is not known"
                         f" (known fingerprints: {', '.join(ring.fingerprints())})")
    return epochs.head_key
